"""One stored version's graph, or some of its layers, as a GraphML or GEXF file for Gephi,
Cytoscape and networkx users. networkx writes both formats; nodes are the neurons (id: their
uid), with their layer, index, layer name and every stored number (strength, s_in, bias,
pagerank, ns_mean...); links carry their weight.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from nngraph.errors import NNGraphError

from .run import select_versions
from .version_graph import fetch

NEURONS = """
MATCH (n:Neuron {version: $version})
WHERE n.layer IN $layers
RETURN n.layer AS layer, n.index AS index, properties(n) AS properties"""
LAYER_NAMES = """
MATCH (l:Layer {version: $version})
RETURN l.index AS index, l.name AS name"""
CYPHER = [NEURONS, LAYER_NAMES]
FORMATS = (".graphml", ".gexf")
MAX_LINKS = 2_000_000  # networkx keeps a few hundred bytes a link: choose layers above this
IDENTITY = {"uid", "version", "layer", "index"}


def write_graph(store, model: str, tag: str, path: Path, layers: tuple[int, ...] | None = None,
                force: bool = False) -> tuple[int, int]:
    """Write the version's graph to `path` (its suffix picks the format); (nodes, links) written."""
    import networkx as nx

    if path.suffix not in FORMATS:
        raise NNGraphError(f"--to {path}: give a file ending in .graphml or .gexf (the format follows the name)")
    if path.exists() and not force:
        raise NNGraphError(f"{path} already exists: pass --force to replace it, or choose another --to")
    (version,) = select_versions(store, model, (tag,))
    graph = fetch(store, version["uid"], layers)
    if len(graph.weights) > MAX_LINKS:
        raise NNGraphError(f"{model} {tag} has {len(graph.weights):,} links between the chosen layers; a graph file "
                           f"holds at most {MAX_LINKS:,}: choose fewer layers with --layers")
    names = {row["index"]: row["name"] for row in store.read(LAYER_NAMES, {"version": version["uid"]})}
    network = nx.DiGraph(model=model, version=tag)
    for row in store.read(NEURONS, {"version": version["uid"], "layers": graph.layers}):
        numbers = {key: value for key, value in row["properties"].items()
                   if key not in IDENTITY and isinstance(value, (int, float)) and not isinstance(value, bool)}
        network.add_node(f"{version['uid']}:{row['layer']}:{row['index']}", layer=row["layer"], index=row["index"],
                         layer_name=names.get(row["layer"], ""), **numbers)
    ids = graph.uids(range(graph.nodes))
    network.add_weighted_edges_from((ids[s], ids[t], float(w)) for s, t, w in
                                    zip(graph.sources.tolist(), graph.targets.tolist(), graph.weights.tolist()))
    _write_atomically(network, path)
    return network.number_of_nodes(), network.number_of_edges()


def _write_atomically(network, path: Path) -> None:
    """Into a temporary file beside `path`, then renamed: an interrupted write leaves no half file."""
    import networkx as nx

    writer = nx.write_graphml if path.suffix == ".graphml" else nx.write_gexf
    try:
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
        os.close(handle)
        try:
            writer(network, temporary)
            os.replace(temporary, path)
        finally:
            if os.path.exists(temporary):
                os.unlink(temporary)
    except OSError as exc:
        raise NNGraphError(f"cannot write {path} ({exc.strerror or exc}): choose a writable --to") from None

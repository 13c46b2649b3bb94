"""One stored version's graph (or some of its layers) as arrays, fetched from the store.

Nodes are numbered layer by layer (node id = first id of its layer + neuron index), so
a neuron's uid follows from its id and no neuron rows need to be read. Links are read
grouped per target neuron, `[target, [sources], [weights]]`, the shape that is cheapest
to decode (bench/analysis.py measures it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nngraph.errors import NNGraphError

LAYERS = """
MATCH (l:Layer {version: $version})
RETURN l.index AS index, l.nodes AS nodes, l.kind AS kind, l.edge_policy AS edge_policy
ORDER BY index"""
LINKS = """
MATCH (b:Neuron {version: $version, layer: $layer})
MATCH (a:Neuron)-[r:LINK]->(b)
RETURN b.index AS target, a.layer AS source_layer, collect(a.index) AS sources, collect(r.weight) AS weights"""
CYPHER = [LAYERS, LINKS]


@dataclass
class VersionGraph:
    version: str
    layers: list[int]
    sizes: list[int]
    sources: np.ndarray
    targets: np.ndarray
    weights: np.ndarray  # as stored (signed)

    @property
    def nodes(self) -> int:
        return int(sum(self.sizes))

    def positions(self) -> tuple[np.ndarray, np.ndarray]:
        """(layer, index) of every node id."""
        layer = np.repeat(self.layers, self.sizes)
        index = np.concatenate([np.arange(size) for size in self.sizes]) if self.sizes else np.empty(0, int)
        return layer, index

    def uids(self, ids) -> list[str]:
        layer, index = self.positions()
        return [f"{self.version}:{layer[i]}:{index[i]}" for i in ids]

    def edges(self, policy: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The links and weights under a sign policy (see algorithms.py)."""
        w = self.weights
        if policy == "abs":
            keep, values = slice(None), np.abs(w)
        elif policy == "positive":
            keep = w > 0
            values = w[keep]
        elif policy == "negative":
            keep = w < 0
            values = -w[keep]
        else:
            keep, values = slice(None), w
        return self.sources[keep], self.targets[keep], values


def check_layers(stored: list[dict], layers: tuple[int, ...] | None) -> list[int]:
    """The chosen layer indices (all when None), each checked against the version's stored layers."""
    available = [row["index"] for row in stored]
    chosen = available if layers is None else list(layers)
    outside = sorted(set(chosen) - set(available))
    if outside:
        shown = ", ".join(map(str, outside[:5])) + (", ..." if len(outside) > 5 else "")
        raise NNGraphError(f"layers [{shown}] are outside this model: its layers are 0..{max(available, default=0)}")
    return chosen


def fetch(store, version: str, layers: tuple[int, ...] | None = None) -> VersionGraph:
    """The version's graph over `layers` (all when None): every neuron, the links between them."""
    stored = store.read(LAYERS, {"version": version})
    chosen = check_layers(stored, layers)
    sizes = {row["index"]: row["nodes"] for row in stored}
    first, offset = {}, 0
    for index in chosen:
        first[index], offset = offset, offset + sizes[index]
    sources, targets, weights = [], [], []
    for layer in chosen:
        for row in store.read(LINKS, {"version": version, "layer": layer}):
            if row["source_layer"] not in first:
                continue  # a link from a layer outside the selection
            sources.append(first[row["source_layer"]] + np.asarray(row["sources"], dtype=np.int64))
            targets.append(np.full(len(row["sources"]), first[layer] + row["target"], dtype=np.int64))
            weights.append(np.asarray(row["weights"], dtype=np.float64))
    if not sources and len(chosen) > 1:
        policies = {row["edge_policy"] for row in stored if row.get("edge_policy")}
        raise NNGraphError("this version has no stored links between the chosen layers (ingested with "
                           f"--edges {'/'.join(sorted(policies)) or 'none'}): graph algorithms need links; "
                           "ingest it again with --replace --edges all, topk:K or backbone:ALPHA "
                           "(conv layers: --conv-edges pixel)")
    join = lambda parts, kind: np.concatenate(parts) if parts else np.empty(0, kind)  # noqa: E731
    return VersionGraph(version, chosen, [sizes[i] for i in chosen], join(sources, np.int64),
                        join(targets, np.int64), join(weights, np.float64))

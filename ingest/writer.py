"""One network version into the store, whole or not at all.

The Version node is written first with status 'loading' and no link from its Model, then
layers, neurons and links in UNWIND batches of lists; one last transaction links it to
the Model and marks it 'complete' (and, with replace, unlinks the version it replaces).
Queries reach versions through (:Model)-[:HAS_VERSION]->, so a half-written version is
never seen; the next ingest of the same (model, tag) deletes what an interrupted one left.
Conv layers store their neurons; their pixel-level links are not written yet.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from .edges import EdgePolicy
from .metrics import NetworkMetrics
from .network import Network

BATCH_ROWS = 10_000

UNFINISHED = """
MATCH (v:Version {model: $model, tag: $tag})
WHERE v.status IN ['loading', 'deleting']
RETURN v.uid AS uid"""
EXISTING = """
MATCH (:Model {name: $model})-[:HAS_VERSION]->(v:Version {tag: $tag})
RETURN v.uid AS uid"""
CREATE_VERSION = """
CREATE (v:Version {uid: $uid, model: $model, tag: $tag, status: 'loading'})
SET v += $properties"""
CREATE_LAYERS = """
MATCH (v:Version {uid: $version})
UNWIND $rows AS row
CREATE (l:Layer {uid: row.uid, version: $version})
SET l += row.properties
CREATE (v)-[:HAS_LAYER]->(l)"""
CREATE_NEXT = """
UNWIND $rows AS r
MATCH (a:Layer {uid: r[0]})
MATCH (b:Layer {uid: r[1]})
CREATE (a)-[:NEXT {name: r[2], kind: r[3], edges: r[4], edges_stored: r[5]}]->(b)"""
CREATE_NEURONS = """
UNWIND $rows AS r
CREATE (:Neuron {uid: r[0], version: $version, layer: r[1], index: r[2],
                 s_in: r[3], s_out: r[4], strength: r[5], bias: r[6]})"""
CREATE_LINKS = """
UNWIND $rows AS r
MATCH (a:Neuron {uid: r[0]})
MATCH (b:Neuron {uid: r[1]})
CREATE (a)-[:LINK {weight: r[2]}]->(b)"""
RETIRE_OLD = """
MATCH (:Model {name: $model})-[r:HAS_VERSION]->(old:Version {tag: $tag})
SET old.status = 'deleting'
DELETE r"""
PUBLISH = """
MATCH (v:Version {uid: $uid})
MERGE (m:Model {name: $model})
CREATE (m)-[:HAS_VERSION]->(v)
SET v.status = 'complete'"""
DELETE_BATCH = {
    "links": "MATCH (:Neuron {version: $version})-[r:LINK]->() WITH r LIMIT $limit DELETE r RETURN count(*) AS n",
    "neurons": "MATCH (n:Neuron {version: $version}) WITH n LIMIT $limit DETACH DELETE n RETURN count(*) AS n",
    "layers": "MATCH (l:Layer {version: $version}) WITH l LIMIT $limit DETACH DELETE l RETURN count(*) AS n",
    "version": "MATCH (v:Version {uid: $version}) DETACH DELETE v RETURN count(*) AS n",
}
WRITE_QUERIES = [UNFINISHED, EXISTING, CREATE_VERSION, CREATE_LAYERS, CREATE_NEXT, CREATE_NEURONS,
                 CREATE_LINKS, RETIRE_OLD, PUBLISH, *DELETE_BATCH.values()]


@dataclass
class IngestResult:
    model: str
    tag: str
    uid: str | None
    status: str  # "stored", "replaced" or "exists"
    neurons: int = 0
    links: int = 0


def write_version(store, network: Network, metrics: NetworkMetrics, *, model: str, tag: str,
                  properties: dict | None = None, edges: EdgePolicy = EdgePolicy(), replace: bool = False,
                  progress: bool = True) -> IngestResult:
    """Store one version; `properties` (step, epoch, metric_* ...) go on its Version node."""
    for stale in store.read(UNFINISHED, {"model": model, "tag": tag}):
        delete_version(store, stale["uid"])
    existing = store.read(EXISTING, {"model": model, "tag": tag})
    if existing and not replace:
        return IngestResult(model, tag, existing[0]["uid"], "exists")
    uid = secrets.token_hex(8)
    store.write(CREATE_VERSION, {"uid": uid, "model": model, "tag": tag, "properties": properties or {}})
    store.write(CREATE_LAYERS, {"version": uid, "rows": _layer_rows(uid, metrics, edges)})
    neurons = _write_rows(store, CREATE_NEURONS, uid, _neuron_rows(uid, metrics), "neurons", progress)
    links = _write_rows(store, CREATE_LINKS, uid, _link_rows(uid, network, metrics, edges), "links", progress)
    with store.transaction() as run:
        if replace:
            run(RETIRE_OLD, {"model": model, "tag": tag})
        run(PUBLISH, {"uid": uid, "model": model})
    for old in existing:
        delete_version(store, old["uid"])
    return IngestResult(model, tag, uid, "replaced" if existing else "stored", neurons, links)


def delete_version(store, uid: str) -> None:
    """Delete a version's nodes and links in bounded batches (a big version at once would not fit)."""
    for query in DELETE_BATCH.values():
        while store.write(query, {"version": uid, "limit": BATCH_ROWS})[0]["n"]:
            pass


def _layer_uid(version: str, index: int) -> str:
    return f"{version}:{index}"


def _layer_rows(uid: str, metrics: NetworkMetrics, edges: EdgePolicy) -> list[dict]:
    rows = []
    feeding = {m.layer.dst: m for m in metrics.weight_layers}
    for node_layer in metrics.node_layers:
        summary = node_layer.summary()
        properties = {key: summary[key] for key in ("index", "name", "kind", "shape", "nodes", "fluctuation",
                                                     "mean_strength", "min_strength", "max_strength")}
        weights = feeding.get(node_layer.layer.index)
        if weights is not None:  # the weight layer that feeds this node layer: its link statistics
            stats = weights.link_weights
            properties.update({f"w_{key}": stats[key] for key in ("count", "mean", "std", "min", "max")})
            properties.update({f"w_{key}": value for key, value in stats["quantiles"].items()})
            properties.update({"w_hist_edges": stats["histogram"]["edges"],
                               "w_hist_counts": stats["histogram"]["counts"],
                               "w_sampled": stats["sampled"], "edges": weights.edges,
                               "neural_persistence": weights.neural_persistence,
                               "neural_persistence_normalized": weights.neural_persistence_normalized,
                               "edge_policy": edges.kind if not weights.layer.is_conv else "none (conv)"})
        rows.append({"uid": _layer_uid(uid, node_layer.layer.index),
                     "properties": {k: v for k, v in properties.items() if v is not None}})
    return rows


def _neuron_rows(uid: str, metrics: NetworkMetrics):
    for layer in metrics.node_layers:
        n = layer.strength.size
        columns = [layer.s_in, layer.s_out, layer.strength, layer.bias]
        columns = [c.tolist() if c is not None else [None] * n for c in columns]
        prefix = f"{uid}:{layer.layer.index}:"
        for i in range(n):
            yield [prefix + str(i), layer.layer.index, i, columns[0][i], columns[1][i], columns[2][i], columns[3][i]]


def _link_rows(uid: str, network: Network, metrics: NetworkMetrics, edges: EdgePolicy):
    for weights in metrics.weight_layers:
        layer = weights.layer
        if layer.is_conv:
            continue
        sources, targets, values = edges.select(network.weight(layer))
        src, dst = f"{uid}:{layer.src}:", f"{uid}:{layer.dst}:"
        for i, j, w in zip(sources.tolist(), targets.tolist(), values.tolist()):
            yield [src + str(i), dst + str(j), w]


def _write_rows(store, query: str, uid: str, rows, unit: str, progress: bool) -> int:
    from tqdm import tqdm

    written = 0
    batch = []
    with tqdm(unit=f" {unit}", disable=not progress, leave=False, desc=unit) as bar:
        for row in rows:
            batch.append(row)
            if len(batch) == BATCH_ROWS:
                store.write(query, {"version": uid, "rows": batch})
                written += len(batch)
                bar.update(len(batch))
                batch = []
        if batch:
            store.write(query, {"version": uid, "rows": batch})
            written += len(batch)
            bar.update(len(batch))
    return written

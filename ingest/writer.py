"""One network version into the store, whole or not at all.

The Version node is written first with status 'loading' and no link from its Model, then
layers, neurons and links in UNWIND batches of lists; one last query links it to the
Model and marks it 'complete' (and, with replace, unlinks the version it replaces).
Queries reach versions through (:Model)-[:HAS_VERSION]->, so a half-written version is
never seen. What becomes of conv layers (--conv-edges channel|pixel) is described in graph_rows.

Leftovers are removed only when their writer is provably gone. An unfinished version
carries its writer (host, pid and the process's start time) and a lease that the writer
renews from a heartbeat thread (server time, timestamp()). Another ingest of the same
(model, tag) removes it only once the lease has expired, or at once when the writer ran
on this host and that process no longer exists; while the writer lives, it waits, saying so.
"""

from __future__ import annotations

import os
import secrets
import socket
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from nngraph.errors import NNGraphError
from nngraph.limits import check_name

from .edges import EdgePolicy
from .graph_rows import GraphOptions, channel_layers, channel_link_rows, channel_rows, link_blocks, neuron_columns
from .metrics import NetworkMetrics
from .network import Network

BATCH_ROWS = 10_000  # neuron rows per UNWIND over Bolt
BATCH_EDGES = 20_000  # link weights per UNWIND over Bolt
LINK_BLOCK = 1 << 20  # weights selected at a time: bounds the rows held in Python (~100 MB)

LEASE_SECONDS = 60.0  # an unfinished version whose writer stopped renewing is removable after this
RENEW_EVERY = LEASE_SECONDS / 6
WAIT_POLL = 0.5

UNFINISHED = """
MATCH (v:Version {model: $model, tag: $tag})
WHERE v.status IN ['loading', 'deleting']
RETURN v.uid AS uid, v.writer AS writer, coalesce(v.lease_until < timestamp(), true) AS expired"""
RENEW = """
MATCH (v:Version {model: $model, tag: $tag, writer: $writer})
WHERE v.status IN ['loading', 'deleting']
SET v.lease_until = timestamp() + $lease_ms"""
EXISTING = """
MATCH (:Model {name: $model})-[:HAS_VERSION]->(v:Version {tag: $tag})
RETURN v.uid AS uid"""
CREATE_VERSION = """
CREATE (v:Version {uid: $uid, model: $model, tag: $tag, status: 'loading', writer: $writer,
                   lease_until: timestamp() + $lease_ms})
SET v += $properties"""
CREATE_LAYERS = """
MATCH (v:Version {uid: $version})
UNWIND $rows AS row
CREATE (l:Layer {uid: row.uid, version: $version})
SET l += row.properties
CREATE (v)-[:HAS_LAYER]->(l)"""
CREATE_SKIPPED = """
MATCH (v:Version {uid: $version})
UNWIND $rows AS r
CREATE (v)-[:SKIPPED]->(:Skipped {version: $version, name: r[0], kind: r[1], reason: r[2]})"""
CREATE_NEXT = """
UNWIND $rows AS r
MATCH (a:Layer {uid: r[0]})
MATCH (b:Layer {uid: r[1]})
CREATE (a)-[:NEXT {name: r[2], kind: r[3], edges: r[4]}]->(b)"""
CREATE_NEURONS = """
UNWIND $rows AS r
CREATE (:Neuron {uid: r[0], version: $version, layer: r[1], index: r[2],
                 s_in: r[3], s_out: r[4], strength: r[5], bias: r[6], channel: r[7], row: r[8], col: r[9],
                 ns_mean: r[10], ns_std: r[11], na_mean: r[12], na_std: r[13]})"""
CREATE_CHANNELS = """
UNWIND $rows AS r
CREATE (:Channel {uid: $version + ':' + toString(r[0]) + ':c' + toString(r[1]), version: $version,
                  layer: r[0], channel: r[1], nodes: r[2], strength: r[3], mean_strength: r[4]})"""
CREATE_CHANNEL_LINKS = """
UNWIND $rows AS r
MATCH (a:Channel {uid: $version + ':' + toString(r[0]) + ':c' + toString(r[1])})
MATCH (b:Channel {uid: $version + ':' + toString(r[2]) + ':c' + toString(r[3])})
CREATE (a)-[:CHANNEL_LINK {weight: r[4], abs_weight: r[5], taps: r[6]}]->(b)"""
CREATE_LINKS = """
MATCH (a:Neuron {version: $version, layer: $src_layer})
WITH a ORDER BY a.index
WITH collect(a) AS sources
UNWIND $rows AS r
MATCH (b:Neuron {uid: $dst_prefix + toString(r[0])})
UNWIND range(0, size(r[1]) - 1) AS k
WITH sources[r[1][k]] AS a, b, r[2][k] AS weight
CREATE (a)-[:LINK {weight: weight}]->(b)"""
PUBLISH = """
MATCH (v:Version {uid: $uid, writer: $writer})
WHERE v.status = 'loading'
MERGE (m:Model {name: $model})
SET m.publications = coalesce(m.publications, 0) + 1
WITH m, v
OPTIONAL MATCH (m)-[old:HAS_VERSION]->(previous:Version {tag: $tag})
WITH m, v, collect(old) AS olds, collect(previous) AS previous
WHERE size(olds) = 0 OR $replace
FOREACH (r IN olds | DELETE r)
FOREACH (p IN previous | SET p.status = 'deleting', p.writer = $writer, p.lease_until = timestamp() + $lease_ms)
CREATE (m)-[:HAS_VERSION]->(v)
SET v.status = 'complete'
REMOVE v.writer, v.lease_until
RETURN [p IN previous | p.uid] AS replaced"""
OWNED = """
MATCH (v:Version {uid: $uid, writer: $writer})
RETURN v.status AS status"""
DELETE_BATCH = {
    "links": "MATCH (:Neuron {version: $version})-[r:LINK]->() WITH r LIMIT $limit DELETE r RETURN count(*) AS n",
    "neurons": "MATCH (n:Neuron {version: $version}) WITH n LIMIT $limit DETACH DELETE n RETURN count(*) AS n",
    "channels": "MATCH (c:Channel {version: $version}) WITH c LIMIT $limit DETACH DELETE c RETURN count(*) AS n",
    "layers": "MATCH (l:Layer {version: $version}) WITH l LIMIT $limit DETACH DELETE l RETURN count(*) AS n",
    "skipped": "MATCH (s:Skipped {version: $version}) WITH s LIMIT $limit DETACH DELETE s RETURN count(*) AS n",
    "version": "MATCH (v:Version {uid: $version}) DETACH DELETE v RETURN count(*) AS n",
}
CYPHER = [UNFINISHED, RENEW, OWNED, EXISTING, CREATE_VERSION, CREATE_LAYERS, CREATE_SKIPPED, CREATE_NEXT, CREATE_NEURONS,
          CREATE_LINKS,
          CREATE_CHANNELS, CREATE_CHANNEL_LINKS, PUBLISH, *DELETE_BATCH.values()]


@dataclass
class IngestResult:
    model: str
    tag: str
    uid: str | None
    status: str  # "stored", "replaced" or "exists"
    neurons: int = 0
    links: int = 0
    skipped: list = field(default_factory=list)  # modules without links of their own: name, kind, reason


def write_version(store, network: Network, metrics: NetworkMetrics, *, model: str, tag: str,
                  properties: dict | None = None, edges: EdgePolicy = EdgePolicy(), conv_edges: str = "channel",
                  replace: bool = False, progress: bool = True, announce=None) -> IngestResult:
    """Store one version; `properties` (step, epoch, metric_* ...) go on its Version node."""
    options = GraphOptions(edges, conv_edges)
    check_name(model, "model name")
    check_name(tag, "version tag")
    store.ensure_schema()
    writer = writer_id()
    lease = {"model": model, "tag": tag, "writer": writer, "lease_ms": int(LEASE_SECONDS * 1000)}
    with Heartbeat(store, lease):
        _clear_leftovers(store, model, tag, writer, announce)
        existing = store.read(EXISTING, {"model": model, "tag": tag})
        if existing and not replace:
            return IngestResult(model, tag, existing[0]["uid"], "exists", skipped=[vars(s) for s in metrics.skipped])
        uid = secrets.token_hex(8)
        store.write(CREATE_VERSION, {**lease, "uid": uid, "properties": properties or {}})
        store.write(CREATE_LAYERS, {"version": uid, "rows": layer_rows(uid, metrics, options)}, retries=5)
        store.write(CREATE_SKIPPED, {"version": uid, "rows": skipped_rows(metrics)})
        store.write(CREATE_NEXT, {"rows": [[layer_uid(uid, m.layer.src), layer_uid(uid, m.layer.dst), m.layer.name,
                                            m.layer.kind, m.edges] for m in metrics.weight_layers]})
        with _progress_bar(f"{model}/{tag}", metrics, options, progress) as bar:
            neurons = _write_neurons(store, uid, metrics)
            links = _write_links(store, uid, network, metrics, options, bar)
        if options.conv_edges == "channel":
            _write_channels(store, uid, network, metrics)
        # one query links the version last; writing the Model node first serialises two publishers of one
        # model, so of two ingests of the same version exactly one is published (the other is removed)
        published = store.write(PUBLISH, {**lease, "uid": uid, "replace": replace}, retries=5)
        if not published:
            if not store.read(OWNED, {"uid": uid, "writer": writer}):
                raise NNGraphError(f"{model} {tag}: this ingest's unfinished version was removed by another "
                                   f"command (its lease of {LEASE_SECONDS:.0f} s ran out); run it again")
            delete_version(store, uid)
            return IngestResult(model, tag, store.read(EXISTING, {"model": model, "tag": tag})[0]["uid"], "exists")
        for old in published[0]["replaced"]:
            delete_version(store, old)
    return IngestResult(model, tag, uid, "replaced" if published[0]["replaced"] else "stored", neurons, links,
                        [vars(s) for s in metrics.skipped])


def _clear_leftovers(store, model: str, tag: str, writer: str, announce) -> None:
    """Remove unfinished versions of (model, tag) whose writers are gone; wait for live ones."""
    waited = False
    while True:
        live = []
        for stale in store.read(UNFINISHED, {"model": model, "tag": tag}):
            if stale["writer"] != writer and (stale["expired"] or writer_gone(stale["writer"])):
                delete_version(store, stale["uid"])
            elif stale["writer"] != writer:
                live.append(stale["writer"])
        if not live:
            return
        if not waited and announce:
            announce(f"{model} {tag}: another ingest of this version is under way ({live[0]}); waiting for it")
        waited = True
        time.sleep(WAIT_POLL)


_ACTIVE = set()  # this process's writers still at work (a process may write from several threads)


def writer_id() -> str:
    """host:pid:process start time:call token: enough to tell, on this host, that a writer is gone."""
    return f"{socket.gethostname()}:{os.getpid()}:{_start_time(os.getpid())}:{secrets.token_hex(4)}"


def writer_gone(writer: str | None) -> bool:
    """True only when the writer provably no longer runs: on this host, its process is gone (or the pid
    now belongs to a process started at another time), or it is this process and the call has ended.
    A writer on another host is waited for until its lease runs out."""
    try:
        host, pid, started, _ = (writer or "").rsplit(":", 3)
        pid = int(pid)
    except ValueError:
        return False
    if host != socket.gethostname():
        return False
    if pid == os.getpid() and started == _start_time(pid):
        return writer not in _ACTIVE
    return _start_time(pid) != started


def _start_time(pid: int) -> str:
    """The process's start time in clock ticks since boot (/proc/PID/stat field 22); '' if none."""
    try:
        stat = open(f"/proc/{pid}/stat").read()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[1].split()[19]


class Heartbeat:
    """Renews this writer's lease on its unfinished versions until the with-block ends."""

    def __init__(self, store, lease: dict):
        self._store, self._lease = store, lease
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="nngraph-lease", daemon=True)

    def __enter__(self):
        _ACTIVE.add(self._lease["writer"])
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        _ACTIVE.discard(self._lease["writer"])

    def _run(self):
        while not self._stop.wait(RENEW_EVERY):
            try:
                self._store.write(RENEW, self._lease)
            except NNGraphError:
                pass  # a missed renewal is harmless while the lease runs; the next one tries again


def delete_version(store, uid: str) -> None:
    """Delete a version's nodes and links in bounded batches (a big version at once would not fit)."""
    for query in DELETE_BATCH.values():
        while store.write(query, {"version": uid, "limit": BATCH_ROWS})[0]["n"]:
            pass


def layer_uid(version: str, index: int) -> str:
    return f"{version}:{index}"


def skipped_rows(metrics: NetworkMetrics) -> list[list[str]]:
    """[name, kind, reason] of every module with no links of its own (stored as Skipped nodes)."""
    return [[s.name, s.kind, s.reason] for s in metrics.skipped]


def layer_rows(uid: str, metrics: NetworkMetrics, options: GraphOptions) -> list[dict]:
    rows = []
    feeding = {}  # a layer's link statistics: those of the first stored weights entering it, counted once
    for m in metrics.weight_layers:
        if m.layer.learned and m.layer.tied_to is None:
            feeding.setdefault(m.layer.dst, m)
    for node_layer in metrics.node_layers:
        summary = node_layer.summary()
        properties = {key: summary[key] for key in ("index", "name", "kind", "group", "shape", "nodes", "fluctuation",
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
                               "edge_policy": _policy_name(weights.layer, options)})
        if metrics.data is not None:
            properties.update(metrics.data.layer_properties(node_layer.layer.index))
        rows.append({"uid": layer_uid(uid, node_layer.layer.index),
                     "properties": {k: v for k, v in properties.items() if v is not None and v != ""}})
    return rows


def _policy_name(layer, options: GraphOptions) -> str:
    if layer.is_conv and options.conv_edges == "channel":
        return "channel"
    policy = options.edges.kind + ("" if options.edges.value is None else f":{options.edges.value:g}")
    return f"pixel {policy}" if layer.is_conv else policy


def _write_neurons(store, uid: str, metrics: NetworkMetrics) -> int:
    written = 0
    for layer in metrics.node_layers:
        index, n = layer.layer.index, layer.strength.size
        columns = neuron_columns(layer, metrics.data_of(index))
        values = [c.tolist() if c is not None else [None] * n for c in columns.values()]
        for start in range(0, n, BATCH_ROWS):
            rows = [[f"{uid}:{index}:{i}", index, *(v[i] for v in values)]
                    for i in range(start, min(n, start + BATCH_ROWS))]
            store.write(CREATE_NEURONS, {"version": uid, "rows": rows})
            written += len(rows)
    return written


def _write_links(store, uid: str, network: Network, metrics: NetworkMetrics, options: GraphOptions, bar) -> int:
    written = 0
    with _Writers(store, bar) as writers:
        for number, weights in enumerate(metrics.weight_layers, 1):
            bar.set_postfix_str(f"layer {number}/{len(metrics.weight_layers)}")
            layer = weights.layer
            parameters = {"version": uid, "src_layer": layer.src, "dst_prefix": f"{uid}:{layer.dst}:"}
            for sources, targets, values in link_blocks(network, weights, options, max_elements=LINK_BLOCK):
                for rows, count in link_batches(sources, targets, values):
                    writers.submit(CREATE_LINKS, {**parameters, "rows": rows}, count)
                    written += count
    return written


class _Writers:
    """Link batches written on store.concurrent_writes threads, at most two batches in flight per
    thread (memory stays bounded); an error in any batch ends the load, as a serial one would."""

    def __init__(self, store, bar):
        self._store, self._bar = store, bar
        self._workers = store.concurrent_writes
        self._pending = deque()
        self._pool = ThreadPoolExecutor(self._workers, "nngraph-links") if self._workers > 1 else None

    def submit(self, query: str, parameters: dict, count: int) -> None:
        if self._pool is None:
            self._store.write(query, parameters)
            self._bar.update(count)
            return
        while len(self._pending) >= 2 * self._workers:
            self._finish_oldest()
        self._pending.append((self._pool.submit(self._store.write, query, parameters), count))

    def _finish_oldest(self) -> None:
        future, count = self._pending.popleft()
        future.result()
        self._bar.update(count)

    def __enter__(self):
        return self

    def __exit__(self, kind, error, trace):
        try:
            while self._pending and error is None:
                self._finish_oldest()
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True, cancel_futures=True)


def _write_channels(store, uid: str, network: Network, metrics: NetworkMetrics) -> None:
    rows = [row for layer in channel_layers(metrics) for row in channel_rows(layer)]
    links = [row for m in metrics.weight_layers if m.layer.is_conv for row in channel_link_rows(network, m.layer)]
    for query, batch in ((CREATE_CHANNELS, rows), (CREATE_CHANNEL_LINKS, links)):
        for start in range(0, len(batch), BATCH_ROWS):
            store.write(query, {"version": uid, "rows": batch[start:start + BATCH_ROWS]})


def link_batches(sources: np.ndarray, targets: np.ndarray, values: np.ndarray, edges_per_batch: int = BATCH_EDGES):
    """Bolt rows, one per target neuron: [target, [source, ...], [weight, ...]], about
    `edges_per_batch` edges per batch. Lists of numbers encode far faster than a row per edge."""
    order = np.argsort(targets, kind="stable")
    sources, targets, values = sources[order], targets[order], values[order]
    starts = np.flatnonzero(np.diff(targets, prepend=-1))
    ends = np.append(starts[1:], len(targets))
    rows, count = [], 0
    for start, end in zip(starts.tolist(), ends.tolist()):
        rows.append([int(targets[start]), sources[start:end].tolist(), values[start:end].tolist()])
        count += end - start
        if count >= edges_per_batch:
            yield rows, count
            rows, count = [], 0
    if rows:
        yield rows, count


def _progress_bar(name: str, metrics: NetworkMetrics, options: GraphOptions, show: bool):
    from tqdm import tqdm

    total = None
    if options.edges.kind == "all":
        total = sum(m.edges for m in metrics.weight_layers if options.stores_links(m.layer))
    return tqdm(total=total, desc=name, unit=" edges", unit_scale=True, disable=not show, leave=False)

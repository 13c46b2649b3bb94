"""`nngraph analyze`: pick the versions and the engine, run each algorithm per version, and
write the results back: a property per Neuron, and a summary on the Version.

Everything is checked before anything is written (the model, the versions, the layers,
that links exist, GDS when asked for), and each version's results are written in one
transaction, so a failure leaves what was stored as it was.
"""

from __future__ import annotations

import json
import time

import numpy as np

from nngraph.errors import NNGraphError, closest
from nngraph.queries import unknown_model

from . import gds as gds_engine
from . import local
from .algorithms import ALGORITHMS, Request
from .version_graph import LAYERS, check_layers, fetch

VERSIONS = """
MATCH (:Model {name: $model})-[:HAS_VERSION]->(v:Version)
RETURN v.uid AS uid, v.tag AS tag, v.step AS step
ORDER BY step, tag"""
WRITE_NEURONS = """
UNWIND $rows AS r
MATCH (n:Neuron {uid: r[0]})
SET n += r[1]"""
WRITE_SUMMARY = """
MATCH (v:Version {uid: $version})
SET v += $summary"""
CYPHER = [VERSIONS, WRITE_NEURONS, WRITE_SUMMARY]
TOP = 10
BATCH = 10_000


def select_versions(store, model: str, tags: tuple[str, ...] = (), all_versions: bool = False) -> list[dict]:
    """The versions to analyze: the tags given, all of them, or else the latest (by step)."""
    versions = store.read(VERSIONS, {"model": model})
    if not versions:
        raise unknown_model(store, model)
    if all_versions:
        return versions
    if not tags:
        return versions[-1:]
    by_tag = {v["tag"]: v for v in versions}
    missing = [t for t in tags if t not in by_tag]
    if missing:
        raise NNGraphError(f"model {model!r} has no version {', '.join(map(repr, missing))}"
                           f"{closest(missing[0], by_tag)}; `nngraph versions --model {model}` lists its versions")
    return [by_tag[t] for t in tags]


def choose_engine(store, engine: str, announce) -> str:
    if engine == "local":
        return "local"
    if gds_engine.available(store):
        if engine == "auto":
            announce("engine: gds (the server answers gds.version())")
        return "gds"
    if engine == "gds":
        raise NNGraphError(f"--engine gds: {store.where} has no Graph Data Science library (RETURN gds.version() "
                           "failed); use --engine local, or the Neo4j with GDS from docker/compose.yml")
    announce("engine: local (no GDS on this server)")
    return "local"


def analyze(store, versions: list[dict], requests: list[Request], engine: str, progress: bool = True) -> list[dict]:
    """Run every request on every version; the rows of the summary table."""
    from tqdm import tqdm

    for version in versions:  # every layer selection checked before any engine allocates or projects
        stored = store.read(LAYERS, {"version": version["uid"]})
        for request in requests:
            chosen = set(check_layers(stored, request.layers))
            neurons = sum(row["nodes"] for row in stored if row["index"] in chosen)
            if (request.parameters.get("samples") or 0) > neurons:
                raise NNGraphError(f"--samples {request.parameters['samples']}: version {version['tag']} has "
                                   f"{neurons} neurons in the chosen layers; sample at most that many "
                                   "(or leave --samples out for the exact betweenness)")
    client = gds_engine.client(gds_engine.store_query_runner(store)) if engine == "gds" else None
    rows = []
    with tqdm(total=len(versions) * len(requests), desc="analyze", unit=" runs", disable=not progress,
              leave=False) as bar:
        for version in versions:
            prepared, graphs = [], {}

            def graph_of(request):  # each version's graph is read once per layer selection
                if request.layers not in graphs:
                    graphs[request.layers] = fetch(store, version["uid"], request.layers)
                return graphs[request.layers]

            for request in requests:
                start = time.perf_counter()
                if engine == "gds":
                    uids, outcome, links = gds_engine.run(request, client, version["uid"])
                else:
                    graph = graph_of(request)
                    sources, targets, weights = graph.edges(request.weights)
                    outcome = local.run(request, graph.nodes, sources, targets, weights)
                    uids, links = graph.uids(range(graph.nodes)), len(weights)
                prepared.append((request, uids, outcome))
                rows.append(_table_row(version, request, engine, uids, outcome, links, time.perf_counter() - start))
                bar.update()
            _write(store, version["uid"], prepared, engine)
    return rows


def _write(store, version: str, prepared, engine: str) -> None:
    """All results of one version in one transaction."""
    with store.transaction() as run:
        for request, uids, outcome in prepared:
            values = outcome.values.tolist()
            for start in range(0, len(uids), BATCH):
                run(WRITE_NEURONS, {"rows": [[uid, {request.prop: value}] for uid, value in
                                             zip(uids[start:start + BATCH], values[start:start + BATCH])]})
            run(WRITE_SUMMARY, {"version": version, "summary": _summary(request, uids, outcome, engine)})


def _summary(request: Request, uids: list[str], outcome, engine: str) -> dict:
    prop = request.prop
    summary = {f"{prop}_parameters": json.dumps({**request.describe(), "engine": engine}, sort_keys=True)}
    if request.algorithm.family == "centrality":
        top = np.argsort(-outcome.values, kind="stable")[:TOP]
        summary[f"{prop}_top"] = [uids[i] for i in top]
    else:
        summary.update({f"{prop}_{key}": value for key, value in outcome.summary.items()})
    return summary


def _table_row(version, request, engine, uids, outcome, links, seconds) -> dict:
    row = {"version": version["tag"], "algorithm": request.algorithm.name, "property": request.prop,
           "engine": engine, "nodes": len(uids), "links": links, "seconds": round(seconds, 3)}
    if request.algorithm.family == "centrality":
        best = np.argsort(-outcome.values, kind="stable")[:3]
        row["top"] = ", ".join(f"{':'.join(uids[i].split(':')[1:])}={outcome.values[i]:.4g}" for i in best)
    else:
        row.update(communities=outcome.summary["communities"],
                   modularity=round(outcome.summary.get("modularity", float("nan")), 4))
    return row


def build_requests(family: str, names: tuple[str, ...], **options) -> list[Request]:
    """Requests for the named algorithms of one family; options not taken by an algorithm are left out."""
    names = names or ({"centrality": ("pagerank",), "communities": ("louvain",)}[family])
    requests = []
    for name in names:
        algorithm = ALGORITHMS.get(name)
        if algorithm is None or algorithm.family != family:
            choices = [a.name for a in ALGORITHMS.values() if a.family == family]
            raise NNGraphError(f"{name!r} is not a {family} algorithm; choose from {', '.join(choices)}")
        common = {k: options[k] for k in ("weights", "orientation", "layers") if k in options}
        extra = {k: v for k, v in options.items() if k not in common and k in algorithm.defaults and v is not None}
        requests.append(Request.build(name, **common, **extra))
    return requests

"""The gds engine: Neo4j Graph Data Science through the graphdatascience client (2.x typed API).

The client builds the GDS calls; they run through nngraph's Store (StoreQueryRunner), so
the store stays the only code that touches the driver and tests can record the calls.
Per version: a Cypher projection of exactly that version's neurons and links (weights
under the sign policy, orientation as asked; isolated neurons included), a memory
estimate checked against the heap, the algorithm in stream mode (community algorithms
mutate the projection, and GDS scores the partition's modularity there), then the
projection is dropped whatever happened. Results become (uid, value) pairs, written like
the local engine's.
"""

from __future__ import annotations

import inspect
import secrets

import numpy as np

from nngraph.errors import NNGraphError

from .algorithms import Request
from .outcome import Outcome

ENGINE = "gds"
PROJECT = """
MATCH (a:Neuron {version: $version})
WHERE $layers IS NULL OR a.layer IN $layers
OPTIONAL MATCH (a)-[r:LINK]->(b:Neuron)
WHERE ($layers IS NULL OR b.layer IN $layers)
  AND (($weights <> 'positive' OR r.weight > 0) AND ($weights <> 'negative' OR r.weight < 0))
WITH CASE WHEN $reverse AND b IS NOT NULL THEN b ELSE a END AS source,
     CASE WHEN b IS NULL THEN null WHEN $reverse THEN a ELSE b END AS target,
     CASE $weights WHEN 'abs' THEN abs(r.weight) WHEN 'negative' THEN -r.weight ELSE r.weight END AS weight
RETURN gds.graph.project($graph, source, target, {relationshipProperties: {weight: coalesce(weight, 0.0)}},
                         {undirectedRelationshipTypes: $undirected})"""
UIDS = """
UNWIND $ids AS id
RETURN id, gds.util.asNode(id).uid AS uid"""
COMMUNITY = "community"  # the in-memory property a community algorithm writes in the projection
PARTITION = """
CALL gds.graph.nodeProperty.stream($graph, 'community')
YIELD nodeId, propertyValue
RETURN nodeId, propertyValue AS value"""
# one thread: OpenGDS 2.13.9's parallel modularity.stats once failed in the test suite on a Louvain
# partition of MiniLM ("ArrayIndexOutOfBoundsException: Index -1 out of bounds for length 66", from
# its community mapping; the same test passed when run again); the score is one cheap pass either way
MODULARITY = """
CALL gds.modularity.stats($graph, {communityProperty: 'community', relationshipWeightProperty: 'weight',
                                   concurrency: 1})
YIELD modularity
RETURN modularity"""
VERSION_CHECK = "RETURN gds.version() AS version"
CYPHER = [PROJECT, UIDS, PARTITION, MODULARITY, VERSION_CHECK]

# algorithm -> (client endpoint attribute, stream arguments from the request's parameters)
CALLS = {
    "pagerank": ("page_rank", lambda p: {"damping_factor": p["damping"], "max_iterations": p["max_iterations"],
                                         "tolerance": p["tolerance"]}),
    "articlerank": ("article_rank", lambda p: {"damping_factor": p["damping"],
                                               "max_iterations": p["max_iterations"], "tolerance": p["tolerance"]}),
    "eigenvector": ("eigenvector", lambda p: {"max_iterations": p["max_iterations"], "tolerance": p["tolerance"]}),
    "degree": ("degree", lambda p: {"orientation": "NATURAL"}),
    "strength": ("degree", lambda p: {"orientation": "NATURAL"}),
    "betweenness": ("betweenness", lambda p: {"sampling_size": p["samples"], "sampling_seed": p["seed"]}
                    if p["samples"] else {}),
    "harmonic": ("harmonic", lambda p: {}),
    "louvain": ("louvain", lambda p: {"consecutive_ids": True, "concurrency": 1}),
    "leiden": ("leiden", lambda p: {"consecutive_ids": True, "random_seed": p["seed"], "concurrency": 1}),
    "label_propagation": ("label_propagation", lambda p: {"consecutive_ids": True, "concurrency": 1}),
    "wcc": ("wcc", lambda p: {"consecutive_ids": True}),
}


def available(store) -> bool:
    """Whether the server answers `RETURN gds.version()`; asked once per store (a server without
    GDS logs a stack trace for every unknown-function error)."""
    if "gds" not in store.facts:
        try:
            store.read(VERSION_CHECK)
            store.facts["gds"] = True
        except NNGraphError:
            store.facts["gds"] = False
    return store.facts["gds"]


def client(runner):
    from graphdatascience import GraphDataScience

    return GraphDataScience(runner, arrow=False)


def run(request: Request, gds, version: str) -> tuple[list[str], Outcome, int]:
    """(uids, outcome, links projected) for one version."""
    name = f"nngraph-{version}-{secrets.token_hex(4)}"
    graph, result = gds.graph.project.cypher(
        PROJECT, graph=name, version=version, layers=list(request.layers) if request.layers else None,
        weights=request.weights, reverse=request.orientation == "reverse",
        undirected=["*"] if request.orientation == "undirected" else [])
    try:
        if result.relationship_count == 0:
            raise NNGraphError("this version has no stored links between the chosen layers: graph algorithms "
                               "need links; ingest it again with --replace --edges all, topk:K or backbone:ALPHA")
        endpoint_name, arguments = CALLS[request.algorithm.name]
        endpoint = getattr(gds, endpoint_name)
        arguments = arguments(request.parameters)
        if request.algorithm.weighted:
            arguments["relationship_weight_property"] = "weight"
        _check_memory(endpoint, graph, arguments, request.algorithm.name)
        summary = {}
        if request.algorithm.family == "communities":
            # the partition stays in the projection, so GDS scores it there: no second read of the links
            endpoint.mutate(graph, mutate_property=COMMUNITY, **arguments)
            frame = gds.run_cypher(PARTITION, params={"graph": name})
            modularity = gds.run_cypher(MODULARITY, params={"graph": name})["modularity"][0]
            summary = {"communities": int(frame["value"].nunique()), "modularity": float(modularity)}
        else:
            frame = endpoint.stream(graph, **arguments)
    finally:
        gds.graph.drop(graph, fail_if_missing=False)
    ids = frame["nodeId"].tolist()
    values = frame[[c for c in frame.columns if c != "nodeId"][0]].to_numpy()
    uids = dict(gds.run_cypher(UIDS, params={"ids": ids}).itertuples(index=False, name=None))
    outcome = Outcome(values.astype(np.float64) if request.algorithm.family == "centrality" else values)
    outcome.summary = summary
    return [uids[i] for i in ids], outcome, int(result.relationship_count)


NO_ESTIMATE = {"harmonic"}  # GDS has no estimate procedure for these (the Cypher check caught it)


def _check_memory(endpoint, graph, arguments: dict, name: str) -> None:
    if name in NO_ESTIMATE:
        return  # harmonic closeness needs O(nodes) beside the projection
    accepted = inspect.signature(endpoint.estimate).parameters
    estimate = endpoint.estimate(graph, **{k: v for k, v in arguments.items() if k in accepted})
    if estimate.heap_percentage_max > 100:
        raise NNGraphError(f"not enough GDS memory for {name}: it needs up to {estimate.required_memory} "
                           f"({estimate.heap_percentage_max:.0f}% of the heap); raise the Neo4j heap "
                           "(server.memory.heap.max_size, docker/compose.yml) or analyze fewer --layers")


def store_query_runner(store):
    """A graphdatascience QueryRunner whose queries run through nngraph's Store (the client is
    imported only when the gds engine runs, so the class is built here)."""
    from graphdatascience.query_runner.query_mode import QueryMode
    from graphdatascience.query_runner.query_runner import QueryRunner
    from graphdatascience.versions import ServerVersion
    from pandas import DataFrame

    class Runner(QueryRunner):
        def __init__(self):
            self._version = None

        def execute(self, query: str, params: dict, write: bool) -> list[dict]:
            """The one place queries leave the client: overridden by the tests' recording runner."""
            return store.write(query, params) if write else store.read(query, params)

        def call_procedure(self, endpoint, query_type=None, params=None, yields=None, database=None,
                           mode=QueryMode.READ, logging=False, retryable=False, custom_error=True):
            placeholders = params.placeholder_str() if params else ""
            query = f"CALL {endpoint}({placeholders})" + (f" YIELD {', '.join(yields)}" if yields else "")
            return DataFrame(self.execute(query, dict(params or {}), mode == QueryMode.WRITE))

        def call_function(self, endpoint, query_type=None, params=None):
            placeholders = params.placeholder_str() if params else ""
            rows = self.execute(f"RETURN {endpoint}({placeholders}) AS result", dict(params or {}), False)
            return rows[0]["result"]

        def run_cypher(self, query, query_type=None, params=None, database=None, mode=None, custom_error=True):
            return DataFrame(self.execute(query, dict(params or {}), mode == QueryMode.WRITE))

        run_retryable_cypher = run_cypher

        def server_version(self):
            if self._version is None:
                self._version = ServerVersion.from_string(self.call_function("gds.version"))
            return self._version

        def driver_config(self):
            return {}

        def db_driver(self):
            raise NNGraphError("the gds engine runs its queries through the nngraph store, not a driver")

        def encrypted(self):
            return False

        def set_database(self, database):
            pass

        def set_bookmarks(self, bookmarks):
            pass

        def database(self):
            return store.database

        def bookmarks(self):
            return None

        def last_bookmarks(self):
            return None

        def set_show_progress(self, show_progress):
            pass

        def cloneWithoutRouting(self, host, port):  # noqa: N802 (the client's name)
            return self

        def read_connection_info(self):
            raise NNGraphError("no direct connection: queries go through the nngraph store")

    return Runner()

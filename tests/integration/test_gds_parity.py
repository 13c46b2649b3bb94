"""The gds engine on the real Neo4j with OpenGDS against the local engine, on the same stored
versions: an MLP, a CNN's pixel graph and Zachary's karate club. Centralities agree within 1e-6
relative (harmonic too: the local engine sums over incoming paths and divides by n - 1 as GDS
does), WCC is the same partition, label propagation is a valid partition, and Louvain and Leiden
reach modularities close to each other's (heuristics: see COMMUNITY_GAP)."""

import networkx as nx
import numpy as np
import pytest
import torch
from sklearn.metrics import adjusted_rand_score

from models import small_cnn, small_mlp
from nngraph.analysis.algorithms import Request
from nngraph.analysis.run import analyze, select_versions
from nngraph.config import resolve_connection
from nngraph.ingest import ingest_module
from nngraph.store import Store
from servers import apply, environment

# Heuristics, measured against GDS 2.13 (and in the README): on karate both engines find the same
# modularity; GDS's Louvain stops after one level on the small layered graphs, whatever its maxLevels,
# maxIterations or tolerance, 3.7% (MLP) and 2.9% (CNN pixels) below networkit's PLM; GDS's Leiden
# equals leidenalg on the MLP and is 4.3%-6.0% below it on the CNN pixel graph: its result moves
# with the projection's node order, which follows the storage order two concurrent link writers
# leave (0.5915 in one CI run, 0.602 in others).
COMMUNITY_GAP = {"louvain": 0.05, "leiden": 0.08}  # measured gaps: README, "Louvain and Leiden are heuristics"
CENTRALITY = ["pagerank", "articlerank", "eigenvector", "degree", "strength", "betweenness", "harmonic"]
KARATE = """
MERGE (m:Model {name: $model})
CREATE (v:Version {uid: $uid, model: $model, tag: 'karate', status: 'complete', step: 0})
CREATE (m)-[:HAS_VERSION]->(v)
CREATE (l:Layer {uid: $uid + ':0', version: $uid, index: 0, name: 'members', kind: 'input', nodes: $n})
CREATE (v)-[:HAS_LAYER]->(l)
WITH v
UNWIND range(0, $n - 1) AS i
CREATE (:Neuron {uid: $uid + ':0:' + toString(i), version: $uid, layer: 0, index: i})
WITH count(*) AS created
UNWIND $edges AS e
MATCH (a:Neuron {uid: $uid + ':0:' + toString(e[0])}), (b:Neuron {uid: $uid + ':0:' + toString(e[1])})
CREATE (a)-[:LINK {weight: e[2]}]->(b)"""


@pytest.fixture(scope="module")
def neo4j_store(server_homes):
    with pytest.MonkeyPatch.context() as patch:
        apply(environment("neo4j", server_homes("neo4j")), patch)
        with Store.open(resolve_connection()) as store:
            yield store


@pytest.fixture(scope="module", params=["mlp", "cnn-pixels", "karate"])
def version(request, neo4j_store):
    model = f"parity-{request.param}-{torch.randint(1 << 30, ()).item()}"
    torch.manual_seed(0)
    if request.param == "mlp":
        ingest_module(small_mlp(), model_name=model, version="v", store=neo4j_store)
    elif request.param == "cnn-pixels":
        ingest_module(small_cnn().eval(), model_name=model, version="v", input_shape=(1, 8, 8), conv_edges="pixel",
                      store=neo4j_store)
    else:
        graph = nx.karate_club_graph()
        edges = [[u, v, float(graph[u][v]["weight"])] for u, v in graph.edges()]
        neo4j_store.write(KARATE, {"model": model, "uid": f"karate-{model}", "n": graph.number_of_nodes(),
                                   "edges": edges})
    [chosen] = select_versions(neo4j_store, model)
    return chosen


def values(store, request, version, engine):
    [row] = analyze(store, [version], [request], engine, progress=False)
    rows = store.read("MATCH (n:Neuron {version: $v}) RETURN n.uid AS uid, n[$p] AS value ORDER BY uid",
                      {"v": version["uid"], "p": request.prop})
    return np.array([r["value"] for r in rows], dtype=float), row


@pytest.mark.parametrize("name", CENTRALITY)
def test_centrality_agrees_within_1e_6(neo4j_store, version, name):
    request = Request.build(name)
    local, _ = values(neo4j_store, request, version, "local")
    gds, row = values(neo4j_store, request, version, "gds")
    assert row["engine"] == "gds"
    np.testing.assert_allclose(gds, local, rtol=1e-6, atol=1e-9)


def test_communities_agree(neo4j_store, version):
    local_wcc, _ = values(neo4j_store, Request.build("wcc"), version, "local")
    gds_wcc, _ = values(neo4j_store, Request.build("wcc"), version, "gds")
    assert adjusted_rand_score(local_wcc, gds_wcc) == 1.0
    for name in ("louvain", "leiden"):
        _, local = values(neo4j_store, Request.build(name, seed=42), version, "local")
        _, gds = values(neo4j_store, Request.build(name, seed=42), version, "gds")
        assert gds["modularity"] == pytest.approx(local["modularity"], rel=COMMUNITY_GAP[name], abs=1e-3), name
    labels, summary = values(neo4j_store, Request.build("label_propagation"), version, "gds")
    assert not np.isnan(labels).any() and summary["communities"] == len(np.unique(labels)) >= 1

"""The local engine against networkx (the reference implementation) and against GDS's
formulas solved directly, on Zachary's karate club and on a small MLP graph."""

import networkx as nx
import numpy as np
import pytest

from nngraph.analysis import local
from nngraph.analysis.algorithms import Request
from nngraph.analysis.outcome import modularity
from nngraph.errors import NNGraphError

CONVERGED = {"max_iterations": 10_000, "tolerance": 1e-13}


def karate():
    graph = nx.karate_club_graph()
    edges = np.array(graph.edges())
    weights = np.array([graph[u][v]["weight"] for u, v in edges], dtype=float)
    return graph, graph.number_of_nodes(), edges[:, 0], edges[:, 1], weights


def mlp_graph(sizes=(5, 6, 4, 3), seed=0):
    """A fully connected layered graph with |weights| (what --weights abs gives the engines)."""
    rng = np.random.default_rng(seed)
    offsets = np.cumsum((0,) + sizes)
    sources, targets = [], []
    for k in range(len(sizes) - 1):
        grid = np.array(np.meshgrid(np.arange(sizes[k]), np.arange(sizes[k + 1]), indexing="ij")).reshape(2, -1)
        sources.append(grid[0] + offsets[k])
        targets.append(grid[1] + offsets[k + 1])
    sources, targets = np.concatenate(sources), np.concatenate(targets)
    weights = np.abs(rng.standard_normal(len(sources))) + 0.01
    graph = nx.DiGraph()
    graph.add_nodes_from(range(offsets[-1]))
    graph.add_weighted_edges_from(zip(sources.tolist(), targets.tolist(), weights.tolist()))
    return graph, int(offsets[-1]), sources, targets, weights


def as_array(values: dict, n: int) -> np.ndarray:
    return np.array([values[i] for i in range(n)])


def run(name, graph, **options):
    _, n, sources, targets, weights = graph
    return local.run(Request.build(name, **options), n, sources, targets, weights)


def test_pagerank_equals_networkx_on_graphs_without_sinks():
    """GDS scores are networkx's times n where no node is a sink (karate; the MLP undirected)."""
    for graph, orientation in ((karate(), "undirected"), (mlp_graph(), "undirected")):
        reference = nx.pagerank(graph[0].to_undirected(), weight="weight", tol=1e-15, max_iter=100_000)
        scores = run("pagerank", graph, orientation=orientation, **CONVERGED).values
        np.testing.assert_allclose(scores / graph[1], as_array(reference, graph[1]), atol=1e-6)


def test_pagerank_and_articlerank_solve_gds_equations_on_the_feed_forward_graph():
    """Directed, the output layer is a sink that keeps its mass (GDS): x = (1-d) + d M x, solved directly."""
    _, n, sources, targets, weights = graph = mlp_graph()
    for name, extra in (("pagerank", 0.0), ("articlerank", len(sources) / n)):  # + the mean unweighted degree
        out = np.bincount(sources, weights, n) + extra
        matrix = np.zeros((n, n))
        np.add.at(matrix, (targets, sources), weights / out[sources])
        expected = np.linalg.solve(np.eye(n) - 0.85 * matrix, np.full(n, 0.15))
        np.testing.assert_allclose(run(name, graph).values, expected, atol=1e-9)  # GDS defaults: 20 iterations


def test_betweenness_equals_networkx():
    for graph, orientation in ((karate(), "undirected"), (mlp_graph(), "natural")):
        reference = nx.betweenness_centrality(graph[0] if orientation == "natural" else graph[0].to_undirected(),
                                              normalized=False)
        np.testing.assert_allclose(run("betweenness", graph, orientation=orientation).values,
                                   as_array(reference, graph[1]), atol=1e-6)


def test_sampled_betweenness_is_seeded_and_close_to_exact():
    graph = karate()
    exact = run("betweenness", graph, orientation="undirected").values
    first = run("betweenness", graph, orientation="undirected", samples=20, seed=7).values
    again = run("betweenness", graph, orientation="undirected", samples=20, seed=7).values
    np.testing.assert_array_equal(first, again)
    assert np.corrcoef(first, exact)[0, 1] > 0.9


def test_harmonic_eigenvector_degree_strength_equal_networkx():
    graph, n = karate()[:2]
    np.testing.assert_allclose(run("harmonic", karate(), orientation="undirected").values,
                               as_array(nx.harmonic_centrality(graph), n) / (n - 1), atol=1e-12)
    # GDS divides each weight by the sender's strength: undirected, W D^-1 s = W 1 = s, so the converged
    # scores are the strengths, unit length
    strength = as_array(dict(graph.degree(weight="weight")), n)
    np.testing.assert_allclose(run("eigenvector", karate(), orientation="undirected", **CONVERGED).values,
                               strength / np.linalg.norm(strength), atol=1e-6)
    mlp = mlp_graph()
    # GDS sums 1 / hops over the nodes that reach a node, as networkx does (distances *to* the node)
    np.testing.assert_allclose(run("harmonic", mlp).values,
                               as_array(nx.harmonic_centrality(mlp[0]), mlp[1]) / (mlp[1] - 1), atol=1e-12)
    np.testing.assert_allclose(run("degree", mlp).values, as_array(dict(mlp[0].out_degree()), mlp[1]))
    np.testing.assert_allclose(run("strength", mlp).values,
                               as_array(dict(mlp[0].out_degree(weight="weight")), mlp[1]), atol=1e-12)


@pytest.mark.parametrize("name", ["louvain", "leiden"])
@pytest.mark.parametrize("make", [karate, mlp_graph])
def test_louvain_and_leiden_partitions_are_valid_and_as_good_as_networkx(name, make):
    graph = make()
    nx_graph, n, sources, targets, weights = graph
    undirected = nx_graph.to_undirected()
    outcome = run(name, graph, seed=42)
    membership = outcome.values
    assert membership.shape == (n,) and set(membership) == set(range(outcome.summary["communities"]))
    communities = [set(np.flatnonzero(membership == c).tolist()) for c in range(outcome.summary["communities"])]
    ours = nx.community.modularity(undirected, communities, weight="weight")
    assert outcome.summary["modularity"] == pytest.approx(ours, abs=1e-9)
    assert modularity(membership, n, sources, targets, weights) == pytest.approx(ours, abs=1e-9)
    # heuristics: compare their average over five seeds with networkx's Louvain over five seeds
    seeds = range(5)
    mean = np.mean([run(name, graph, seed=seed).summary["modularity"] for seed in seeds])
    reference = np.mean([nx.community.modularity(undirected, nx.community.louvain_communities(
        undirected, weight="weight", seed=seed), weight="weight") for seed in seeds])
    assert mean >= reference * 0.99
    np.testing.assert_array_equal(run(name, graph, seed=42).values, membership)  # seeded: the same again


def test_components_and_label_propagation():
    graph = karate()
    assert run("wcc", graph).summary["communities"] == 1
    labels = run("label_propagation", graph, seed=1)
    assert labels.values.shape == (34,) and labels.summary["communities"] >= 1


def test_results_are_keyed_by_parameters():
    assert Request.build("pagerank").prop == "pagerank"
    assert Request.build("louvain").prop == "community_louvain"
    other = Request.build("pagerank", damping=0.9)
    assert other.prop.startswith("pagerank_") and other.prop != "pagerank"
    assert Request.build("pagerank", damping=0.9).prop == other.prop
    assert Request.build("pagerank", weights="positive").prop not in (other.prop, "pagerank")
    assert Request.build("pagerank", layers=(1, 2)).prop != Request.build("pagerank", layers=(2, 3)).prop


@pytest.mark.parametrize("name,options,message", [
    ("pagerank", {"weights": "signed"}, "non-negative"),
    ("louvain", {"orientation": "natural"}, "undirected"),
    ("pagerank", {"weights": "both"}, "--weights"),
    ("nope", {}, "unknown algorithm"),
    ("pagerank", {"samples": 3}, "takes no parameter"),
])
def test_bad_requests_are_refused(name, options, message):
    with pytest.raises(NNGraphError, match=message):
        Request.build(name, **options)

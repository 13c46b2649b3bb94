"""The gds engine through the graphdatascience client, with a recording query runner:
the Cypher it sends passes Neo4j's parser with GDS signatures, the parameters are right,
the projection is always dropped, and too little memory is refused before running."""

import numpy as np
import pytest

from gds_recorder import Recorder
from nngraph.analysis import gds as gds_engine
from nngraph.analysis.algorithms import ALGORITHMS, Request
from nngraph.errors import NNGraphError
from test_cypher_lint import lint

VERSION = "0123456789abcdef"
UIDS = [f"{VERSION}:{layer}:{i}" for layer, size in enumerate((3, 2)) for i in range(size)]


def run(request, recorder):
    return gds_engine.run(request, gds_engine.client(recorder.runner()), VERSION)


def test_every_algorithm_sends_valid_cypher_and_returns_the_canned_values():
    sent = {}
    for name in ALGORITHMS:
        values = [0.5, 1.5, 2.5, 3.5, 4.5] if ALGORITHMS[name].family == "centrality" else [0, 0, 1, 1, 2]
        recorder = Recorder(UIDS, values)
        uids, outcome, links = run(Request.build(name), recorder)
        assert uids == UIDS and links == 15
        np.testing.assert_array_equal(outcome.values, values)
        assert_projection_dropped(recorder)
        sent.update({query: query for query, _ in recorder.queries()})
    assert any("gds.betweenness.stream" in query for query in sent)
    assert {query: found for query, found in lint(sent).items() if found} == {}


def assert_projection_dropped(recorder):
    graph_names = {params["graph"] for _, params in recorder.queries("gds.graph.project(")}
    dropped = {name for _, params in recorder.queries("gds.graph.drop") for name in params["graphName"]}
    assert len(graph_names) == 1 and dropped == graph_names


def test_pagerank_parameters_and_projection_of_one_version():
    recorder = Recorder(UIDS, [1.0] * 5)
    run(Request.build("pagerank", weights="positive", orientation="reverse", layers=(0, 1), damping=0.9), recorder)
    [(_, projection)] = recorder.queries("gds.graph.project(")
    assert projection["version"] == VERSION and projection["weights"] == "positive"
    assert projection["reverse"] is True and projection["undirected"] == [] and projection["layers"] == [0, 1]
    [(query, params)] = recorder.queries("gds.pageRank.stream")
    assert params["graph_name"] == projection["graph"]
    assert params["config"] == {"dampingFactor": 0.9, "maxIterations": 20, "tolerance": 1e-7,
                                "relationshipWeightProperty": "weight"} | {k: v for k, v in params["config"].items()
                                                                           if k not in ("dampingFactor", "maxIterations",
                                                                                        "tolerance",
                                                                                        "relationshipWeightProperty")}
    assert recorder.queries("gds.pageRank.stats.estimate")


def test_communities_project_undirected_and_seed_leiden():
    recorder = Recorder(UIDS, [0, 0, 1, 1, 1])
    run(Request.build("leiden", seed=7), recorder)
    [(_, projection)] = recorder.queries("gds.graph.project(")
    assert projection["undirected"] == ["*"] and projection["reverse"] is False
    [(_, params)] = recorder.queries("gds.leiden.mutate")
    assert params["config"]["randomSeed"] == 7 and params["config"]["relationshipWeightProperty"] == "weight"
    [(_, scored)] = recorder.queries("gds.modularity.stats")  # the partition is scored in the projection
    assert scored["graph"] == projection["graph"]


def test_too_little_memory_is_refused_and_the_projection_dropped():
    recorder = Recorder(UIDS, [1.0] * 5, heap_percentage=180.0)
    with pytest.raises(NNGraphError, match="not enough GDS memory"):
        run(Request.build("betweenness"), recorder)
    assert not recorder.queries(".stream(") and recorder.queries("gds.graph.drop")


def test_a_failing_stream_still_drops_the_projection():
    recorder = Recorder(UIDS, [1.0] * 5, fail_stream=True)
    with pytest.raises(RuntimeError):
        run(Request.build("pagerank"), recorder)
    assert recorder.queries("gds.graph.drop")

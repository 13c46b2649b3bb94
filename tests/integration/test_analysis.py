"""`nngraph analyze` end to end on a real store: results written per neuron and version,
equal to the engine run on the model's own weights; bad input changes nothing."""

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from gds_recorder import Recorder
from models import save_small_mlp
from nngraph.analysis import gds as gds_engine
from nngraph.analysis import local
from nngraph.analysis.algorithms import Request
from nngraph.analysis.run import analyze, select_versions
from nngraph.cli import cli


@pytest.fixture
def checkpoints(tmp_path):
    return [save_small_mlp(tmp_path / f"mlp-epoch{epoch}.pt", seed=epoch) for epoch in range(3)]


def run(cli_env, *args):
    return CliRunner().invoke(cli, [str(a) for a in args], env=cli_env)


def expected_pagerank(path) -> np.ndarray:
    """The local engine on the file's own weights (|w|), nodes numbered layer by layer."""
    weights = [w.double().abs().numpy() for key, w in torch.load(path).items() if key.endswith("weight")]
    sizes = [weights[0].shape[1]] + [w.shape[0] for w in weights]
    offsets = np.cumsum([0] + sizes)
    sources, targets, values = [], [], []
    for k, w in enumerate(weights):
        j, i = np.nonzero(np.ones_like(w))
        sources.append(offsets[k] + i)
        targets.append(offsets[k + 1] + j)
        values.append(w[j, i])
    return local.run(Request.build("pagerank"), int(offsets[-1]), np.concatenate(sources), np.concatenate(targets),
                     np.concatenate(values)).values


def stored(store, version_uid, prop):
    rows = store.read("MATCH (n:Neuron {version: $v}) RETURN n.layer AS layer, n.index AS i, n[$p] AS value "
                      "ORDER BY layer, i", {"v": version_uid, "p": prop})
    return np.array([row["value"] for row in rows], dtype=float)


ENGINE = {"arcadedb": "local", "neo4j": "gds", "external": "gds"}  # what `--engine auto` picks on each


def test_analyze_every_version_then_rank_neurons_with_cypher(cli_env, target, store, checkpoints, model_name):
    assert run(cli_env, "ingest", checkpoints[0].parent, "--model", model_name).exit_code == 0
    done = run(cli_env, "analyze", "centrality", "--model", model_name, "--all-versions",
               "--algorithm", "pagerank", "--algorithm", "betweenness", "--format", "json")
    assert done.exit_code == 0, done.output
    assert f"engine: {ENGINE[target]}" in done.output
    versions = select_versions(store, model_name, all_versions=True)
    tolerance = 1e-9 if ENGINE[target] == "local" else 1e-6  # GDS stops at its tolerance of 1e-7
    for version, path in zip(versions, checkpoints):
        np.testing.assert_allclose(stored(store, version["uid"], "pagerank"), expected_pagerank(path), rtol=tolerance)
    ranked = run(cli_env, "query", "MATCH (:Model {name: $m})-[:HAS_VERSION]->(v:Version {tag: 'mlp-epoch2'}) "
                 "MATCH (n:Neuron {version: v.uid}) RETURN n.layer AS layer, n.index AS i, n.pagerank AS pr "
                 "ORDER BY pr DESC LIMIT 3", "-p", f"m={model_name}", "--format", "json")
    assert ranked.exit_code == 0
    top = [row["pr"] for row in json.loads(ranked.output)]
    np.testing.assert_allclose(top, np.sort(expected_pagerank(checkpoints[2]))[::-1][:3], rtol=1e-9)


def test_communities_summary_and_parameters_keep_analyses_apart(cli_env, store, checkpoints, model_name):
    assert run(cli_env, "ingest", checkpoints[0], "--model", model_name, "--version", "v").exit_code == 0
    assert run(cli_env, "analyze", "communities", "--model", model_name).exit_code == 0
    assert run(cli_env, "analyze", "communities", "--model", model_name, "--seed", "3",
               "--weights", "positive").exit_code == 0
    [version] = select_versions(store, model_name)
    summary = store.read("MATCH (v:Version {uid: $v}) RETURN properties(v) AS p", {"v": version["uid"]})[0]["p"]
    keys = [k for k in summary if k.startswith("community_louvain") and k.endswith("_modularity")]
    assert len(keys) == 2 and "community_louvain_modularity" in keys
    assert 0 < summary["community_louvain_communities"] <= 20
    default = stored(store, version["uid"], "community_louvain")
    assert len(default) == 20 and not np.isnan(default).any()


def test_the_gds_path_writes_what_the_local_engine_writes(store, checkpoints, model_name, cli_env, monkeypatch):
    assert run(cli_env, "ingest", checkpoints[1], "--model", model_name, "--version", "v").exit_code == 0
    versions = select_versions(store, model_name)
    request = Request.build("pagerank", damping=0.8)
    analyze(store, versions, [request], "local", progress=False)
    local_values = stored(store, versions[0]["uid"], request.prop)
    uids = [f"{versions[0]['uid']}:{layer}:{i}" for layer, size in enumerate((6, 8, 4, 2)) for i in range(size)]
    recorder = Recorder(uids, (local_values + 1.0).tolist())  # canned GDS frame: different numbers, same nodes
    runner = recorder.runner()
    monkeypatch.setattr(gds_engine, "store_query_runner", lambda _: runner)
    rows = analyze(store, versions, [request], "gds", progress=False)
    assert rows[0]["engine"] == "gds" and rows[0]["property"] == request.prop
    np.testing.assert_allclose(stored(store, versions[0]["uid"], request.prop), local_values + 1.0)
    [(_, projection)] = recorder.queries("gds.graph.project(")
    assert projection["version"] == versions[0]["uid"]


@pytest.mark.parametrize("args,message", [
    (["--model", "no-such-model"], "no model 'no-such-model'"),
    (["--model", "{model}", "--version", "nope"], "has no version 'nope'"),
    (["--model", "{model}", "--version", "v2"], "has no version 'v2' (did you mean 'v'?)"),
    (["--model", "{model}", "--layers", "2:9"], "outside this model"),
    (["--model", "{model}", "--algorithm", "louvain"], "not a centrality algorithm"),
])
def test_bad_input_is_one_clear_line_and_changes_nothing(cli_env, store, checkpoints, model_name, args, message):
    assert run(cli_env, "ingest", checkpoints[0], "--model", model_name, "--version", "v").exit_code == 0
    done = run(cli_env, "analyze", "centrality", *[a.format(model=model_name) for a in args])
    assert done.exit_code != 0 and message in done.output, done.output
    [version] = select_versions(store, model_name)
    assert np.isnan(stored(store, version["uid"], "pagerank")).all()


def test_engine_gds_runs_where_the_server_has_gds_and_says_so_where_not(cli_env, target, store, checkpoints,
                                                                        model_name):
    assert run(cli_env, "ingest", checkpoints[0], "--model", model_name, "--version", "v").exit_code == 0
    done = run(cli_env, "analyze", "centrality", "--model", model_name, "--engine", "gds")
    [version] = select_versions(store, model_name)
    if ENGINE[target] == "gds":
        assert done.exit_code == 0, done.output
        np.testing.assert_allclose(stored(store, version["uid"], "pagerank"), expected_pagerank(checkpoints[0]),
                                   rtol=1e-6)
    else:
        assert done.exit_code == 1 and "no Graph Data Science" in done.output, done.output
        assert np.isnan(stored(store, version["uid"], "pagerank")).all()


def test_a_version_without_links_says_how_to_ingest_them(cli_env, store, checkpoints, model_name):
    assert run(cli_env, "ingest", checkpoints[0], "--model", model_name, "--edges", "none").exit_code == 0
    done = run(cli_env, "analyze", "centrality", "--model", model_name)
    assert done.exit_code == 1 and "need links" in done.output and "--edges all" in done.output

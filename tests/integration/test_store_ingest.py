"""Ingest into a real Bolt server and read it back."""

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from models import save_small_mlp, small_mlp
from nngraph.cli import cli
from nngraph.config import resolve_connection
from nngraph.errors import NNGraphError
from nngraph.ingest import compute_metrics, ingest_module, load_network
from nngraph.ingest import writer
from nngraph.ingest.edges import EdgePolicy
from nngraph.servers import managed_server
from nngraph.store import Store
from servers import KINDS, apply, environment, seed_neo4j


@pytest.fixture
def mlp_file(tmp_path):
    return save_small_mlp(tmp_path / "mlp-epoch3.pt")


def run(cli_env, *args):
    return CliRunner().invoke(cli, [str(a) for a in args], env=cli_env)


def stored_layers(store, model):
    return store.read("""MATCH (:Model {name: $model})-[:HAS_VERSION]->(v:Version)-[:HAS_LAYER]->(l:Layer)
                         RETURN l.index AS index, l.fluctuation AS fluctuation, l.nodes AS nodes
                         ORDER BY index""", {"model": model})


def test_ingest_then_query_equals_metrics(store, cli_env, mlp_file, model_name):
    result = run(cli_env, "ingest", mlp_file, "--model", model_name, "--metric", "test_accuracy=0.75")
    assert result.exit_code == 0, result.output
    expected = compute_metrics(load_network(mlp_file))
    layers = stored_layers(store, model_name)
    assert [row["nodes"] for row in layers] == [m.layer.nodes for m in expected.node_layers]
    assert [row["fluctuation"] for row in layers] == pytest.approx([m.fluctuation for m in expected.node_layers])
    for metrics in expected.node_layers:
        rows = store.read("""MATCH (:Model {name: $model})-[:HAS_VERSION]->(v:Version)
                             MATCH (n:Neuron {version: v.uid, layer: $layer})
                             RETURN n.strength AS s ORDER BY n.index""",
                          {"model": model_name, "layer": metrics.layer.index})
        np.testing.assert_allclose([r["s"] for r in rows], metrics.strength, rtol=1e-9)
    version = store.read("MATCH (:Model {name: $m})-[:HAS_VERSION]->(v) RETURN v.step AS step, "
                         "v.metric_test_accuracy AS acc, v.status AS status", {"m": model_name})
    assert version == [{"step": 3, "acc": 0.75, "status": "complete"}]
    links = store.read("MATCH (n:Neuron)-[r:LINK]->() WHERE n.version STARTS WITH '' AND "
                       "EXISTS { MATCH (:Model {name: $m})-[:HAS_VERSION]->(v:Version) WHERE v.uid = n.version } "
                       "RETURN count(r) AS c", {"m": model_name})
    assert links == [{"c": 6 * 8 + 8 * 4 + 4 * 2}]


def test_reingest_is_idempotent_and_replace_keeps_one_copy(store, cli_env, mlp_file, model_name):
    assert run(cli_env, "ingest", mlp_file, "--model", model_name).exit_code == 0
    again = run(cli_env, "ingest", mlp_file, "--model", model_name)
    assert again.exit_code == 0 and "already stored" in again.output
    replaced = run(cli_env, "ingest", mlp_file, "--model", model_name, "--replace")
    assert replaced.exit_code == 0 and "replaced" in replaced.output
    versions = store.read("MATCH (v:Version {model: $m}) RETURN v.status AS status", {"m": model_name})
    assert versions == [{"status": "complete"}]
    assert len(stored_layers(store, model_name)) == 4


def test_interrupted_ingest_is_invisible_then_cleaned(store, mlp_file, model_name, monkeypatch):
    network = load_network(mlp_file)
    metrics = compute_metrics(network)
    original = EdgePolicy.select
    calls = []

    def select_then_crash(self, weight):
        calls.append(weight.shape)
        if len(calls) == 2:  # the first layer's links are stored by now
            raise KeyboardInterrupt  # as if the process were stopped mid-way
        return original(self, weight)

    monkeypatch.setattr(EdgePolicy, "select", select_then_crash)
    with pytest.raises(KeyboardInterrupt):
        writer.write_version(store, network, metrics, model=model_name, tag="v1", progress=False)
    assert stored_layers(store, model_name) == []
    assert store.read("MATCH (v:Version {model: $m}) RETURN v.status AS s", {"m": model_name}) == [{"s": "loading"}]
    monkeypatch.setattr(EdgePolicy, "select", original)
    result = writer.write_version(store, network, metrics, model=model_name, tag="v1", progress=False)
    assert result.status == "stored" and result.links == 88
    assert store.read("MATCH (v:Version {model: $m}) RETURN v.status AS s", {"m": model_name}) == [{"s": "complete"}]
    leftovers = store.read("MATCH (n:Neuron) WHERE n.version STARTS WITH '' AND NOT EXISTS "
                           "{ MATCH (v:Version) WHERE v.uid = n.version } RETURN count(n) AS c")
    assert leftovers == [{"c": 0}]


def test_a_constraint_index_left_without_its_constraint_is_replaced(store, target, model_name):
    """An ingest killed while Neo4j built the index of the `model_name` constraint can leave that
    index behind without the constraint (seen in the kill test); the next ingest's schema step drops
    it and creates the constraint (a plain index of that name stands in for the orphan here)."""
    if target != "neo4j":
        pytest.skip("a Neo4j behaviour: ArcadeDB builds a constraint and its index as one step")
    store.write("DROP CONSTRAINT model_name IF EXISTS")
    store.write("CREATE INDEX model_name FOR (m:Model) ON (m.name)")
    with Store.open(resolve_connection()) as fresh:
        fresh.ensure_schema()
        fresh.write("CREATE (:Model {name: $m})", {"m": model_name})
        try:
            with pytest.raises(NNGraphError, match="already exists"):  # the uniqueness constraint is back
                fresh.write("CREATE (:Model {name: $m})", {"m": model_name})
        finally:
            fresh.write("MATCH (m:Model {name: $m}) DELETE m", {"m": model_name})


@pytest.mark.parametrize("policy,expected", [
    ("none", 0), ("topk:2", 8 * 2 + 4 * 2 + 2 * 2), ("threshold:0", 88), ("all", 88)])
def test_edge_policies_store_the_right_counts(store, mlp_file, model_name, policy, expected):
    result = ingest_module(load_module(mlp_file), model_name=model_name, version=policy, edges=policy, store=store)
    assert result.links == expected
    count = store.read("MATCH (n:Neuron {version: $v})-[r:LINK]->() RETURN count(r) AS c", {"v": result.uid})
    assert count == [{"c": expected}]


def test_backbone_keeps_a_dominant_edge():
    weight = torch.full((3, 4), 0.01)
    weight[1, 2] = 5.0
    sources, targets, values = EdgePolicy.parse("backbone:0.05").select(weight)
    assert list(zip(sources.tolist(), targets.tolist())) == [(2, 1)] and values.tolist() == [5.0]


def load_module(path):
    module = small_mlp()
    module.load_state_dict(torch.load(path, weights_only=True))
    return module


def test_query_is_read_only_without_write(store, cli_env, model_name):
    refused = run(cli_env, "query", "CREATE (:Model {name: $n})", "-p", f"n={model_name}")
    assert refused.exit_code == 1 and "--write" in refused.output
    assert store.read("MATCH (m:Model {name: $n}) RETURN count(m) AS c", {"n": model_name}) == [{"c": 0}]
    allowed = run(cli_env, "query", "CREATE (:Model {name: $n}) RETURN 1 AS ok", "-p", f"n={model_name}", "--write")
    assert allowed.exit_code == 0, allowed.output
    assert store.read("MATCH (m:Model {name: $n}) RETURN count(m) AS c", {"n": model_name}) == [{"c": 1}]
    store.write("MATCH (m:Model {name: $n}) DELETE m", {"n": model_name})


def test_names_with_quotes_are_stored_exactly(store, cli_env, mlp_file):
    name = "it's a `model` \"with\" quotes; MATCH (n) DETACH DELETE n //"
    assert run(cli_env, "ingest", mlp_file, "--model", name, "--version", "ü-1").exit_code == 0
    listed = run(cli_env, "versions", "--model", name, "--format", "json")
    assert '"version": "\\u00fc-1"' in listed.output or '"version": "ü-1"' in listed.output


def test_bad_input_one_line_each(cli_env, tmp_path, model_name):
    unknown = run(cli_env, "versions", "--model", model_name)
    assert unknown.exit_code == 1 and f"no model {model_name!r} is stored" in unknown.output
    assert len(unknown.output.strip().splitlines()) == 1
    syntax = run(cli_env, "query", "MATCH (n RETURN n")
    assert syntax.exit_code == 1 and "syntax" in syntax.output.lower()
    not_a_model = tmp_path / "notes.pt"
    not_a_model.write_bytes(b"hello")
    bad_file = run(cli_env, "ingest", not_a_model, "--model", model_name)
    assert bad_file.exit_code == 1 and "truncated or corrupt" in bad_file.output
    bad_edges = run(cli_env, "ingest", not_a_model, "--model", model_name, "--edges", "top:3")
    assert bad_edges.exit_code == 1 and "--edges" in bad_edges.output


def test_unreachable_server_fails_fast(tmp_path):
    env = {"NNGRAPH_HOME": str(tmp_path), "NEO4J_URI": None, "NEO4J_USERNAME": None}
    result = CliRunner().invoke(cli, ["models", "--uri", "bolt://127.0.0.1:9", "--password", "x"], env=env)
    assert result.exit_code == 1 and "cannot reach" in result.output
    assert len(result.output.strip().splitlines()) == 1


@pytest.fixture
def managed(cli_env, target, monkeypatch):
    """The managed server of this target (its home and kind from cli_env)."""
    if target == "external":
        pytest.skip("NEO4J_URI names a server nngraph does not manage: nothing of its own to check here")
    apply(cli_env, monkeypatch)
    return managed_server()


def test_wrong_password_is_refused(managed):
    info = managed.status()
    result = CliRunner().invoke(cli, ["models", "--uri", info.uri, "--user", managed.user, "--password", "wrong-one"])
    assert result.exit_code == 1 and "refused the user name or password" in result.output


def test_password_file_is_private(managed):
    assert managed.password_file.stat().st_mode & 0o077 == 0


def test_stored_links_are_the_weights(store, mlp_file, model_name):
    network = load_network(mlp_file)
    result = writer.write_version(store, network, compute_metrics(network), model=model_name, tag="v1",
                                  progress=False)
    rows = store.read("MATCH (a:Neuron {version: $v})-[r:LINK]->(b) "
                      "RETURN a.layer AS layer, a.index AS i, b.index AS j, r.weight AS w", {"v": result.uid})
    weights = [w.double() for key, w in torch.load(mlp_file).items() if key.endswith("weight")]
    assert len(rows) == sum(w.numel() for w in weights) == 88
    assert all(row["w"] == weights[row["layer"]][row["j"], row["i"]].item() for row in rows)


@pytest.mark.parametrize("kind", KINDS)
def test_the_managed_server_survives_kill_9_with_its_data(tmp_path, mlp_file, monkeypatch, kind):
    import os
    import signal
    import time

    from nngraph.config import resolve_connection
    from nngraph.managed import alive
    from nngraph.store import Store

    apply(environment(kind, tmp_path / "home"), monkeypatch)
    seed_neo4j(tmp_path / "home")
    server = managed_server()
    try:
        with Store.open(resolve_connection()) as store:
            network = load_network(mlp_file)
            writer.write_version(store, network, compute_metrics(network), model="survivor", tag="v1", progress=False)
        pid = server.status().pid
        os.kill(pid, signal.SIGKILL)
        while alive(pid):  # the kill lands asynchronously
            time.sleep(0.05)
        announced = []
        with Store.open(resolve_connection(), announce=announced.append) as store:
            assert announced and f"starting {server.label}" in announced[0], announced
            version = store.read("MATCH (:Model {name: 'survivor'})-[:HAS_VERSION]->(v) RETURN v.uid AS uid")
            assert len(version) == 1
            links = store.read("MATCH (:Neuron {version: $v})-[r:LINK]->() RETURN count(r) AS n", {"v": version[0]["uid"]})
            layers = store.read("MATCH (l:Layer {version: $v}) RETURN count(l) AS n", {"v": version[0]["uid"]})
            assert links == [{"n": 88}] and layers == [{"n": 4}]
    finally:
        server.stop()


@pytest.mark.parametrize("conv_edges", ["pixel", "channel"])
def test_cnn_links_in_both_conv_modes(store, model_name, conv_edges):
    from models import small_cnn
    from nngraph.ingest import network_from_module

    torch.manual_seed(0)
    model = small_cnn().eval()
    network = network_from_module(model, (1, 8, 8))
    metrics = compute_metrics(network)
    result = ingest_module(model, model_name=model_name, version=conv_edges, input_shape=(1, 8, 8),
                           conv_edges=conv_edges, store=store)
    counts = store.read("MATCH (a:Neuron {version: $v})-[r:LINK]->() RETURN a.layer AS layer, count(r) AS links "
                        "ORDER BY layer", {"v": result.uid})
    stored = {row["layer"]: row["links"] for row in counts}
    expected = {m.layer.src: m.edges for m in metrics.weight_layers
                if conv_edges == "pixel" or not m.layer.is_conv}
    assert stored == expected and result.links == sum(expected.values())
    rebuilt = store.read("MATCH (a:Neuron {version: $v})-[r:LINK]->(b) WITH b, sum(r.weight) AS w "
                         "RETURN w + coalesce(b.bias, 0.0) AS rebuilt, b.s_in AS s_in", {"v": result.uid})
    assert rebuilt and all(row["rebuilt"] == pytest.approx(row["s_in"], rel=1e-5, abs=1e-6) for row in rebuilt)
    channels = store.read("MATCH (a:Channel {version: $v})-[r:CHANNEL_LINK]->(b:Channel) RETURN a.layer AS src, "
                          "a.channel AS ci, b.channel AS co, r.weight AS w ORDER BY src, ci, co", {"v": result.uid})
    if conv_edges == "pixel":
        assert channels == []
        return
    # the kernels as the links carry them: the first conv with its BatchNorm folded in
    kernels = [network.weight(m.layer).double() for m in metrics.weight_layers if m.layer.is_conv]
    assert len(channels) == 1 * 3 + 3 * 4
    sources = sorted({row["src"] for row in channels})
    for row in channels:
        kernel = kernels[sources.index(row["src"])]
        assert row["w"] == pytest.approx(kernel[row["co"], row["ci"]].sum().item(), abs=1e-9)
    neuron = store.read("MATCH (n:Neuron {version: $v, layer: 1, index: 70}) RETURN n.channel AS c, n.row AS r, "
                        "n.col AS x", {"v": result.uid})
    assert neuron == [{"c": 1, "r": 0, "x": 6}]  # 70 = 1 * 64 + 0 * 8 + 6 in a 3x8x8 map


def test_a_database_that_does_not_exist(managed):
    done = CliRunner().invoke(cli, ["models", "--uri", managed.status().uri, "--user", managed.user,
                                    "--password", managed.password(), "--database", "no_such_db"])
    assert done.exit_code == 1 and "database 'no_such_db' does not exist" in done.output, done.output

"""Faults against the local default: the server killed during an ingest, an analysis or a
report; the ingesting process killed at random points; concurrent ingests. Afterwards every
version is complete and correct or invisible, and the next run cleans up or resumes."""

import random
import signal
import time

import numpy as np
import pytest

from conftest import kill_server, mlp_file, nngraph
from nngraph.analysis import local, report_data
from nngraph.analysis.algorithms import Request
from nngraph.analysis.run import analyze, select_versions
from nngraph.config import resolve_connection
from nngraph.errors import NNGraphError
from nngraph.ingest import compute_metrics, load_network, writer
from nngraph.store import Store

VISIBLE = """
MATCH (m:Model {name: $model})-[:HAS_VERSION]->(v:Version)
OPTIONAL MATCH (n:Neuron {version: v.uid})
WITH v, count(n) AS neurons
OPTIONAL MATCH (:Neuron {version: v.uid})-[r:LINK]->()
RETURN v.tag AS tag, v.status AS status, neurons, count(r) AS links"""


def visible(store, model):
    return store.read(VISIBLE, {"model": model})


def assert_complete_or_invisible(store, model, neurons, links):
    for version in visible(store, model):
        assert version == {"tag": version["tag"], "status": "complete", "neurons": neurons, "links": links}


def test_server_killed_mid_ingest(home, tmp_path, monkeypatch):
    path, links, neurons = mlp_file(tmp_path / "mlp.pt")
    network = load_network(path)
    metrics = compute_metrics(network)
    original, batches = writer.link_batches, []

    def kill_after_first_batch(*args, **kwargs):
        for batch in original(*args, **kwargs):
            if len(batches) == 1:
                kill_server()
            batches.append(batch)
            yield batch

    monkeypatch.setattr(writer, "link_batches", kill_after_first_batch)
    with Store.open(resolve_connection()) as store:
        with pytest.raises(NNGraphError, match="cannot reach|database"):
            writer.write_version(store, network, metrics, model="m", tag="v", progress=False)
    monkeypatch.setattr(writer, "link_batches", original)
    with Store.open(resolve_connection()) as store:  # starts the server again
        assert visible(store, "m") == []
        result = writer.write_version(store, network, metrics, model="m", tag="v", progress=False)
        assert result.status == "stored"
        assert visible(store, "m") == [{"tag": "v", "status": "complete", "neurons": neurons, "links": links}]
        assert store.read("MATCH (v:Version {model: 'm'}) RETURN count(v) AS n") == [{"n": 1}]  # cleaned up


def test_server_killed_mid_analysis_and_mid_report(home, tmp_path, monkeypatch):
    path, links, neurons = mlp_file(tmp_path / "mlp.pt", sizes=(20, 10, 5))
    network = load_network(path)
    with Store.open(resolve_connection()) as store:
        writer.write_version(store, network, compute_metrics(network), model="m", tag="v", progress=False)
        versions = select_versions(store, "m")
    original = local.run

    def run_then_kill(*args, **kwargs):
        outcome = original(*args, **kwargs)
        kill_server()
        return outcome

    monkeypatch.setattr(local, "run", run_then_kill)
    with Store.open(resolve_connection()) as store, pytest.raises(NNGraphError):
        analyze(store, versions, [Request.build("pagerank")], "local", progress=False)
    monkeypatch.setattr(local, "run", original)
    with Store.open(resolve_connection()) as store:
        written = store.read("MATCH (n:Neuron) WHERE n.pagerank IS NOT NULL RETURN count(n) AS n")
        assert written == [{"n": 0}]  # the version's results are written in one transaction: none
        analyze(store, versions, [Request.build("pagerank")], "local", progress=False)
        assert store.read("MATCH (n:Neuron) WHERE n.pagerank IS NOT NULL RETURN count(n) AS n") == [{"n": neurons}]

    from nngraph.analysis import reports

    reading = report_data.neuron_values

    def kill_then_read(*args):
        kill_server()
        return reading(*args)

    monkeypatch.setattr(reports, "neuron_values", kill_then_read)
    with Store.open(resolve_connection()) as store, pytest.raises(NNGraphError, match="cannot reach"):
        reports.build(store, "strength", "m", reports.Options())
    monkeypatch.setattr(reports, "neuron_values", reading)
    with Store.open(resolve_connection()) as store:
        built = reports.build(store, "strength", "m", reports.Options())
        assert len(built.tables["extremes"]) == 3
        assert_complete_or_invisible(store, "m", neurons, links)


def test_ingest_process_killed_at_random_points(home, tmp_path):
    path, links, neurons = mlp_file(tmp_path / "mlp.pt", sizes=(300, 200, 200, 10))
    assert nngraph("db", "start").wait(timeout=120) == 0
    chooser = random.Random(7)
    kills = 0
    for _ in range(4):
        child = nngraph("ingest", path, "--model", "m", "--version", "v")
        time.sleep(chooser.uniform(0.5, 6.0))
        if child.poll() is None:
            child.send_signal(signal.SIGKILL)
            kills += 1
        child.wait(timeout=120)
        with Store.open(resolve_connection()) as store:
            assert_complete_or_invisible(store, "m", neurons, links)
    assert kills >= 1
    final = nngraph("ingest", path, "--model", "m", "--version", "v")
    output, _ = final.communicate(timeout=300)
    assert final.returncode == 0, output
    with Store.open(resolve_connection()) as store:
        assert visible(store, "m") == [{"tag": "v", "status": "complete", "neurons": neurons, "links": links}]
        assert store.read("MATCH (v:Version {model: 'm'}) WHERE v.status <> 'complete' RETURN count(v) AS n") \
            == [{"n": 0}]
        stored = store.read("MATCH (n:Neuron {layer: 2}) WHERE n.version IN $v RETURN n.strength AS s ORDER BY n.index",
                            {"v": [r["uid"] for r in store.read(writer.EXISTING, {"model": "m", "tag": "v"})]})
    expected = compute_metrics(load_network(path)).node_layers[2].strength
    np.testing.assert_allclose([row["s"] for row in stored], expected, rtol=1e-9)


@pytest.mark.parametrize("same_version", [False, True])
def test_two_ingests_at_once(home, tmp_path, same_version):
    path, links, neurons = mlp_file(tmp_path / "mlp.pt", sizes=(100, 80, 10))
    assert nngraph("db", "start").wait(timeout=120) == 0
    children = [nngraph("ingest", path, "--model", "m", "--version", "v" if same_version else f"v{k}")
                for k in range(2)]
    outputs = [child.communicate(timeout=300)[0] for child in children]
    assert [child.returncode for child in children] == [0, 0], outputs
    with Store.open(resolve_connection()) as store:
        versions = visible(store, "m")
        assert len(versions) == (1 if same_version else 2)
        assert_complete_or_invisible(store, "m", neurons, links)
        assert store.read("MATCH (v:Version {model: 'm'}) RETURN count(v) AS n") == [{"n": len(versions)}]
    if same_version:
        assert sum("already stored" in output for output in outputs) == 1

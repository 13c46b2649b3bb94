"""`nngraph export`: neo4j-admin import files that hold exactly the graph `ingest` stores."""

import errno
import shlex

import numpy as np
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest
import torch
import yaml
from click.testing import CliRunner

from models import save_small_mlp
from nngraph.cli import cli
from nngraph.ingest import compute_metrics, load_network
from nngraph.ingest import export as export_module

GROUPS = ("Model", "Version", "Layer", "Neuron", "HAS_VERSION", "HAS_LAYER", "NEXT", "LINK")


@pytest.fixture
def mlp_file(tmp_path):
    return save_small_mlp(tmp_path / "mlp-step7.pt")


def read_group(directory, group, fmt):
    if fmt == "parquet":
        return pq.read_table(directory / f"{group}.parquet").to_pydict()
    names = (directory / f"{group}.header.csv").read_text().strip().split(",")
    options = pcsv.ReadOptions(column_names=names)
    return pcsv.read_csv(directory / f"{group}.csv", read_options=options).to_pydict()


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_export_holds_the_stored_graph(tmp_path, mlp_file, fmt):
    out = tmp_path / "import"
    done = CliRunner().invoke(cli, ["export", str(mlp_file), "--to", str(out), "--format", fmt, "--model", "m",
                                    "--metric", "test_accuracy=0.9"])
    assert done.exit_code == 0, done.output
    command = shlex.split(done.output.strip().splitlines()[-1])
    assert command[:6] == ["neo4j-admin", "database", "import", "full", "neo4j", "--overwrite-destination"]
    assert f"--input-type={fmt}" in command
    for group in GROUPS:
        assert any(arg.startswith(f"--nodes={group}=") or arg.startswith(f"--relationships={group}=")
                   for arg in command), group

    version = read_group(out, "Version", fmt)
    assert version["tag"] == ["mlp-step7"] and version["step:long"] == [7]
    assert version["metric_test_accuracy:double"] == [0.9]
    neurons = read_group(out, "Neuron", fmt)
    metrics = compute_metrics(load_network(mlp_file))
    expected = np.concatenate([layer.strength for layer in metrics.node_layers])
    np.testing.assert_allclose(neurons["strength:double"], expected, rtol=1e-12)
    assert len(set(neurons[":ID(Neuron)"])) == 6 + 8 + 4 + 2
    position = {i: (layer, index) for i, layer, index in
                zip(neurons[":ID(Neuron)"], neurons["layer:int"], neurons["index:int"])}
    links = read_group(out, "LINK", fmt)
    weights = [w.double() for key, w in torch.load(mlp_file).items() if key.endswith("weight")]
    assert len(links["weight:double"]) == 88
    for start, end, weight in zip(links[":START_ID(Neuron)"], links[":END_ID(Neuron)"], links["weight:double"]):
        (layer, i), (next_layer, j) = position[start], position[end]
        assert next_layer == layer + 1 and weight == weights[layer][j, i].item()
    layers = read_group(out, "Layer", fmt)
    np.testing.assert_allclose(layers["fluctuation:double"], [m.fluctuation for m in metrics.node_layers])


def test_export_refuses_a_non_empty_directory(tmp_path, mlp_file):
    (tmp_path / "keep.txt").write_text("mine")
    done = CliRunner().invoke(cli, ["export", str(mlp_file), "--to", str(tmp_path), "--model", "m"])
    assert done.exit_code == 1 and "not empty" in done.output
    assert (tmp_path / "keep.txt").read_text() == "mine"


def test_a_full_disk_removes_the_partial_export(tmp_path, mlp_file, monkeypatch):
    original = export_module._Stream._write
    writes = []

    def fill_up(self, table):
        writes.append(self.path)
        if len(writes) == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        original(self, table)

    monkeypatch.setattr(export_module._Stream, "_write", fill_up)
    out = tmp_path / "import"
    done = CliRunner().invoke(cli, ["export", str(mlp_file), "--to", str(out), "--model", "m"])
    assert done.exit_code == 1 and "No space left on device" in done.output and "removed" in done.output
    assert not out.exists()


def test_compose_runs_neo4j_526_with_gds_and_a_gds_healthcheck():
    from pathlib import Path

    compose = yaml.safe_load((Path(__file__).parent.parent / "docker" / "compose.yml").read_text())
    neo4j = compose["services"]["neo4j"]
    assert neo4j["image"].startswith("neo4j:5.26")
    assert "graph-data-science" in neo4j["environment"]["NEO4J_PLUGINS"]
    assert "RETURN gds.version()" in " ".join(neo4j["healthcheck"]["test"])
    assert all(port.startswith("127.0.0.1:") for port in neo4j["ports"])
    assert {"/data", "/import"} <= {volume.split(":")[1] for volume in neo4j["volumes"]}


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_export_of_a_cnn_has_channels(tmp_path, fmt):
    from models import small_cnn

    torch.manual_seed(0)
    path = tmp_path / "cnn.pt"
    torch.save(small_cnn().state_dict(), path)
    out = tmp_path / "import"
    done = CliRunner().invoke(cli, ["export", str(path), "--to", str(out), "--format", fmt, "--model", "cnn",
                                    "--arch", "models:small_cnn", "--input-shape", "1,8,8"])
    assert done.exit_code == 0, done.output
    assert "--nodes=Channel=" in done.output and "--relationships=CHANNEL_LINK=" in done.output
    channels = read_group(out, "Channel", fmt)
    assert sorted(channels["layer:int"]) == [0] + [1] * 3 + [2] * 3 + [3] * 4
    assert len(read_group(out, "CHANNEL_LINK", fmt)[":START_ID(Channel)"]) == 1 * 3 + 3 * 4
    assert len(read_group(out, "LINK", fmt)["weight:double"]) == 4 * 5 + 5 * 3  # dense layers only

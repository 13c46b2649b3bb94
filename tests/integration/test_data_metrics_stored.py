"""Neurons Strength and Activation in the database: what `nngraph ingest --data` stores equals
what `nngraph metrics --data` prints for the same file and inputs; a training loop passes its
data once and every recorded epoch carries the metrics, measured on the same inputs."""

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from models import digits_cnn
from nngraph import digits
from nngraph.cli import cli
from nngraph.ingest import EpochRecorder

DATA = ("--data", "digits-test", "--samples", "200", "--seed", "3")
LAYERS = """MATCH (:Model {name: $model})-[:HAS_VERSION]->(v:Version {tag: $tag})-[:HAS_LAYER]->(l:Layer)
WHERE l.ns_mean IS NOT NULL
RETURN l.index AS index, l.name AS name, l.activation AS activation, l.ns_mean AS ns_mean, l.ns_std AS ns_std,
       l.ns_min AS ns_min, l.ns_max AS ns_max, l.ns_q50 AS ns_q50, l.na_mean AS na_mean, l.na_std AS na_std,
       l.na_zero_fraction AS na_zero_fraction, l.na_hist_counts AS na_hist_counts
ORDER BY index"""
NEURONS = """MATCH (:Model {name: $model})-[:HAS_VERSION]->(v:Version {tag: $tag})
MATCH (n:Neuron {version: v.uid, layer: $layer})
RETURN n.ns_mean AS ns_mean, n.ns_std AS ns_std, n.na_mean AS na_mean, n.na_std AS na_std ORDER BY n.index"""
VERSION = """MATCH (:Model {name: $model})-[:HAS_VERSION]->(v:Version)
RETURN v.tag AS tag, v.data_source AS source, v.data_samples AS samples, v.data_seed AS seed,
       v.data_hash AS hash, v.data_bias_in_strength AS bias ORDER BY v.step"""


def run(cli_env, *args):
    return CliRunner().invoke(cli, [str(a) for a in args], env=cli_env, catch_exceptions=False)


def test_ingested_data_metrics_equal_nngraph_metrics(store, cli_env, model_name, tmp_path):
    path = tmp_path / "cnn-epoch2.pt"
    torch.manual_seed(0)
    torch.save(digits_cnn().state_dict(), path)
    source = ("--arch", "models:digits_cnn", "--input-shape", "1,8,8")
    printed = run(cli_env, "metrics", path, *source, *DATA, "--format", "json", "--no-persistence")
    assert printed.exit_code == 0, printed.output
    expected = json.loads(printed.stdout)["data_metrics"]
    stored = run(cli_env, "ingest", path, "--model", model_name, *source, *DATA)
    assert stored.exit_code == 0, stored.output
    (version,) = store.read(VERSION, {"model": model_name})
    assert {k: version[k] for k in ("source", "samples", "seed", "hash")} == expected["data"]
    assert version["bias"] is True
    layers = store.read(LAYERS, {"model": model_name, "tag": "cnn-epoch2"})
    assert [(row["index"], row["name"]) for row in layers] == [(e["index"], e["name"]) for e in expected["layers"]]
    for row, layer in zip(layers, expected["layers"]):
        ns, na = layer["neurons_strength"], layer["neurons_activation"]
        assert row["activation"] == layer["activation"]
        assert [row[f"ns_{k}"] for k in ("mean", "std", "min", "max")] == pytest.approx([ns[k] for k in
                                                                                      ("mean", "std", "min", "max")])
        assert row["ns_q50"] == pytest.approx(ns["quantiles"]["q50"])
        assert (row["na_mean"], row["na_std"], row["na_zero_fraction"]) == pytest.approx(
            (na["mean"], na["std"], na["zero_fraction"]))
        assert row["na_hist_counts"] == na["histogram"]["counts"]
    # per neuron: the module's own pre-activations of the first conv, over the same 200 inputs
    module = digits_cnn()
    module.load_state_dict(torch.load(path))
    inputs = digits.load().test_x[np.sort(torch.randperm(540, generator=torch.Generator().manual_seed(3))[:200])]
    with torch.no_grad():
        first = module[0](inputs).flatten(1).double()
    neurons = store.read(NEURONS, {"model": model_name, "tag": "cnn-epoch2", "layer": layers[0]["index"]})
    np.testing.assert_allclose([n["ns_mean"] for n in neurons], first.mean(0).numpy(), atol=1e-5)
    np.testing.assert_allclose([n["ns_std"] for n in neurons], first.std(0, unbiased=False).numpy(), atol=1e-5)
    np.testing.assert_allclose([n["na_mean"] for n in neurons], first.relu().mean(0).numpy(), atol=1e-5)


def test_a_training_loop_passes_its_data_once(store, model_name):
    model = digits.build("mlp", seed=1)
    data = digits.load()
    optimiser = torch.optim.SGD(model.parameters(), lr=0.5)
    with EpochRecorder(model_name, store=store, data=data.test_x, samples=100, seed=2) as record:
        for epoch in range(3):
            loss = torch.nn.functional.cross_entropy(model(data.train_x), data.train_y)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            record(model, epoch=epoch)
    versions = store.read(VERSION, {"model": model_name})
    assert [v["tag"] for v in versions] == ["epoch0", "epoch1", "epoch2"]
    assert len({v["hash"] for v in versions}) == 1 and {v["samples"] for v in versions} == {100}
    means = [store.read(LAYERS, {"model": model_name, "tag": f"epoch{e}"})[0]["ns_mean"] for e in range(3)]
    assert len(set(means)) == 3  # each epoch measured with its own weights


def test_data_without_code_to_run_is_one_line(cli_env, model_name, tmp_path):
    path = tmp_path / "mlp.pt"
    torch.save(digits.build("mlp").state_dict(), path)
    result = CliRunner().invoke(cli, ["ingest", str(path), "--model", model_name, "--data", "digits"], env=cli_env)
    assert result.exit_code != 0
    assert "a state_dict holds no code: give --arch" in result.output


def test_activations_and_ensemble_reports_read_ns_and_na(store, cli_env, model_name, tmp_path):
    """Four seeds trained for a few epochs, each epoch measured on the same inputs: the activations
    report in every format, the ensemble report with NS and NA divergences between accuracy bins,
    and a refusal for versions measured on other inputs (unless --mixed-data)."""
    data = digits.load()
    inputs = data.test_x[:120]
    for seed in range(3):
        model = digits.build("mlp", seed=seed, init_scale=0.5 + seed)
        optimiser = torch.optim.Adam(model.parameters(), lr=0.03)
        with EpochRecorder(model_name, store=store, data=inputs) as record:
            for epoch in range(2 + seed):
                for _ in range(3):  # full-batch steps: test accuracies from 0.15 to 0.77, three bins of 0.3
                    loss = torch.nn.functional.cross_entropy(model(data.train_x), data.train_y)
                    optimiser.zero_grad()
                    loss.backward()
                    optimiser.step()
                accuracy, _ = digits.evaluate(model, data.test_x, data.test_y)
                record(model, version=f"s{seed}-e{epoch}", step=epoch, metrics={"test_accuracy": accuracy})
    for fmt in ("html", "md", "json", "csv"):
        out = tmp_path / f"activations-{fmt}"
        result = run(cli_env, "report", "activations", "--model", model_name, "--out", out, "--format", fmt)
        assert result.exit_code == 0, result.output
    report = json.loads(next((tmp_path / "activations-json").glob("*.json")).read_text())
    layers = report["tables"]["layers"]
    assert len(layers) == (2 + 3 + 4) * 3 and {row["activation"] for row in layers} == {"relu", "identity"}
    stored = store.read(LAYERS, {"model": model_name, "tag": "s1-e2"})
    row = next(r for r in layers if r["version"] == "s1-e2" and r["layer"] == stored[0]["index"])
    assert row["ns_std"] == pytest.approx(stored[0]["ns_std"]) and row["na_mean"] == pytest.approx(stored[0]["na_mean"])
    assert any("NS spread grew" in line for line in report["findings"])
    ensemble = run(cli_env, "report", "ensemble", "--model", model_name, "--bin-width", "0.3", "--out",
                   tmp_path / "ensemble", "--format", "json")
    assert ensemble.exit_code == 0, ensemble.output
    divergences = json.loads(next((tmp_path / "ensemble").glob("*.json")).read_text())["tables"]["divergences"]
    quantities = {row["quantity"] for row in divergences}
    assert {"neurons strength", "neurons activation", "strength", "link weight"} <= quantities
    assert all(0 <= row["jensen_shannon"] <= 1 for row in divergences)
    # one more version measured on other inputs: refused, then compared when asked
    with EpochRecorder(model_name, store=store, data=inputs[:50]) as record:
        record(digits.build("mlp", seed=9), version="other-inputs", step=99, metrics={"test_accuracy": 0.1})
    refused = run(cli_env, "report", "activations", "--model", model_name, "--out", tmp_path / "refused")
    assert refused.exit_code != 0 and "2 different sets of inputs" in refused.output
    assert "--mixed-data" in refused.output
    mixed = run(cli_env, "report", "activations", "--model", model_name, "--mixed-data", "--out", tmp_path / "mixed")
    assert mixed.exit_code == 0, mixed.output


def test_activations_report_without_data_is_one_line(cli_env, store, model_name, tmp_path):
    from nngraph.ingest import ingest_module

    ingest_module(digits.build("mlp"), model_name=model_name, version="v1", store=store)
    result = run(cli_env, "report", "activations", "--model", model_name, "--out", tmp_path)
    assert result.exit_code != 0 and "carries Neurons Strength or Activation: ingest it with --data" in result.output


def test_bad_data_stores_nothing(store, cli_env, model_name, tmp_path):
    path = tmp_path / "cnn.pt"
    torch.save(digits_cnn().state_dict(), path)
    source = ("--arch", "models:digits_cnn", "--input-shape", "1,8,8")
    for data, message in ((("--data", "digits", "--samples", "5000"), "holds only 1257 samples"),
                          (("--data", "no_such_module:inputs"), "cannot import it"),
                          (("--data", str(path)), "expected one tensor of inputs")):
        result = CliRunner().invoke(cli, ["ingest", str(path), "--model", model_name, *source, *data], env=cli_env)
        assert result.exit_code != 0 and message in result.output, result.output
        assert len(result.output.strip().splitlines()) == 1
    assert not store.read("MATCH (v:Version {model: $model}) RETURN v.uid AS uid", {"model": model_name})

"""Every report in every format on versions of small networks trained on real digits,
checked against `nngraph metrics` on the same snapshots and against direct computations;
the HTML opens in headless Chromium and its screenshot shows the plots."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner
from scipy.spatial.distance import jensenshannon
from sklearn.metrics import adjusted_rand_score

from nngraph import digits
from nngraph.analysis import render, reports
from nngraph.analysis import divergence as dv
from nngraph.cli import cli
from nngraph.demo import tag
from nngraph.ingest import EpochRecorder, compute_metrics, load_network
from report_pages import check_report_page, chromium_page

REPORTS = ["learning-dynamics", "strength", "link-weights", "ensemble", "centrality", "communities", "compare"]
FORMATS = ["html", "md", "json", "csv"]


def run(cli_env, *args):
    return CliRunner().invoke(cli, [str(a) for a in args], env=cli_env)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, cli_env):
    """Two tiny MLPs trained for 3 epochs on digits, every epoch stored and saved to a file."""
    import os
    import uuid

    saved = os.environ.copy()
    os.environ.update({k: v for k, v in cli_env.items() if v is not None})
    for key in [k for k, v in cli_env.items() if v is None]:
        os.environ.pop(key, None)
    model, folder = f"digits-{uuid.uuid4().hex[:6]}", tmp_path_factory.mktemp("snapshots")
    files, data = {}, digits.load()
    try:
        with EpochRecorder(model, input_shape=(1, 8, 8)) as record:
            for seed in (0, 1):
                def snapshot(epoch, network, metrics, seed=seed):
                    name = tag(seed, 1.0, epoch)
                    files[name] = folder / f"{name}.pt"
                    torch.save({k: v.clone() for k, v in network.state_dict().items()}, files[name])
                    record(network, version=name, step=epoch, metrics=metrics)
                digits.train(digits.build("mlp", 1.0, seed), data, 3, snapshot, seed=seed)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    for family in ("centrality", "communities"):
        assert run(cli_env, "analyze", family, "--model", model, "--all-versions").exit_code == 0
    return model, files


def metrics_of(cli_env, path):
    done = run(cli_env, "metrics", path, "--format", "json")
    assert done.exit_code == 0, done.output
    return json.loads(done.output)


def report_json(cli_env, out, name, model, *extra):
    done = run(cli_env, "report", name, "--model", model, "--out", out, "--format", "json", *extra)
    assert done.exit_code == 0, done.output
    return json.loads((out / f"{name}.json").read_text())


def test_every_report_in_every_format(cli_env, trained, tmp_path):
    model, _ = trained
    for name in REPORTS:
        extra = ["--versions", "s0-x1-e00,s0-x1-e03"] if name == "compare" else []
        for fmt in FORMATS:
            done = run(cli_env, "report", name, "--model", model, "--out", tmp_path / fmt, "--format", fmt, *extra)
            assert done.exit_code == 0, (name, fmt, done.output)
        page = (tmp_path / "html" / f"{name}.html").read_text()
        assert "vegaEmbed('#figure-1'" in page and "<table" in page and "Skipped" in page and "What to look for" in page
        markdown = (tmp_path / "md" / f"{name}.md").read_text()
        assert "![" in markdown and "\n| " in markdown
        document = json.loads((tmp_path / "json" / f"{name}.json").read_text())
        assert document["meaning"] and document["versions"] and document["layers"]
        for table, rows in document["tables"].items():  # the CSVs carry the same numbers
            from_csv = pd.read_csv(tmp_path / "csv" / f"{name}-{table}.csv")
            assert len(from_csv) == len(rows)
            numeric = from_csv.select_dtypes("number").columns
            if len(rows) and len(numeric):
                np.testing.assert_allclose(from_csv[numeric].to_numpy(dtype=float),
                                           pd.DataFrame(rows)[numeric].to_numpy(dtype=float), rtol=1e-9)


def test_learning_dynamics_strength_and_link_weights_equal_nngraph_metrics(cli_env, trained, tmp_path):
    model, files = trained
    fluctuation = report_json(cli_env, tmp_path, "learning-dynamics", model)["tables"]["fluctuation"]
    extremes = report_json(cli_env, tmp_path, "strength", model)["tables"]["extremes"]
    statistics = report_json(cli_env, tmp_path, "link-weights", model)["tables"]["statistics"]
    assert {row["version"] for row in fluctuation} == set(files)
    for version, path in files.items():
        reference = metrics_of(cli_env, path)
        layers = {layer["index"]: layer for layer in reference["layers"]}
        for row in (r for r in fluctuation if r["version"] == version):
            assert row["fluctuation"] == pytest.approx(layers[row["layer"]]["fluctuation"], rel=1e-9)
        for row in (r for r in extremes if r["version"] == version):
            assert row["min"] == pytest.approx(layers[row["layer"]]["min_strength"], rel=1e-9)
            assert row["max"] == pytest.approx(layers[row["layer"]]["max_strength"], rel=1e-9)
        feeding = {w["to"]: w["link_weights"] for w in reference["weight_layers"]}
        for row in (r for r in statistics if r["version"] == version):
            assert row["mean"] == pytest.approx(feeding[row["layer"]]["mean"], rel=1e-9)
            assert row["std"] == pytest.approx(feeding[row["layer"]]["std"], rel=1e-9)


def test_ensemble_divergence_equals_a_direct_computation(cli_env, trained, tmp_path):
    model, files = trained
    document = report_json(cli_env, tmp_path, "ensemble", model, "--bin-width", "0.5")
    accuracy = {v: metrics["test_accuracy"] for v, metrics in _stored_accuracy(cli_env, model).items()}
    bins = {v: "[0, 0.5)" if a < 0.5 else "[0.5, 1)" for v, a in accuracy.items()}
    assert sum(r["versions"] for r in document["tables"]["bins"] if r["layer"] == 0) == len(files)
    layer = 2
    pooled = {b: np.concatenate([compute_metrics(load_network(files[v])).node_layers[layer].strength
                                 for v in files if bins[v] == b]) for b in sorted(set(bins.values()))}
    if len(pooled) < 2:
        pytest.fail(f"the trained versions fall in one accuracy bin: {accuracy}")
    grid = dv.shared_grid(list(pooled.values()), int(np.clip(2 * np.sqrt(min(map(len, pooled.values()))), 8, 64)))
    p, q = (np.histogram(pooled[b], grid)[0] / len(pooled[b]) for b in sorted(pooled))
    [row] = [r for r in document["tables"]["divergences"] if r["quantity"] == "strength" and r["layer"] == layer]
    assert row["jensen_shannon"] == pytest.approx(jensenshannon(p, q, base=2) ** 2, abs=1e-9)


def _stored_accuracy(cli_env, model):
    done = run(cli_env, "query", "MATCH (:Model {name: $m})-[:HAS_VERSION]->(v) RETURN v.tag AS tag, "
               "v.metric_test_accuracy AS a", "-p", f"m={model}", "--format", "json")
    return {row["tag"]: {"test_accuracy": row["a"]} for row in json.loads(done.output)}


def test_centrality_and_communities_reports_match_the_stored_results(cli_env, trained, tmp_path):
    model, _ = trained
    centrality = report_json(cli_env, tmp_path, "centrality", model)
    assert any("share a step" in finding for finding in centrality["findings"])  # two seeds side by side
    top = centrality["tables"]["top"]
    stored = json.loads(run(cli_env, "query", "MATCH (:Model {name: $m})-[:HAS_VERSION]->(v {tag: 's1-x1-e03'}) "
                            "MATCH (n:Neuron {version: v.uid, layer: 3}) RETURN n.index AS i, n.pagerank AS pr "
                            "ORDER BY pr DESC LIMIT 1", "-p", f"m={model}", "--format", "json").output)
    [best] = [r for r in top if r["version"] == "s1-x1-e03" and r["layer"] == 3 and r["rank"] == 1]
    assert best["neuron"] == stored[0]["i"] and best["pagerank"] == pytest.approx(stored[0]["pr"])
    one_network = report_json(cli_env, tmp_path, "communities", model, "--versions", "s0-*")
    assert not any("share a step" in finding for finding in one_network["findings"])
    stability = one_network["tables"]["stability"]
    memberships = {}
    for version in ("s0-x1-e00", "s0-x1-e01"):
        rows = json.loads(run(cli_env, "query", "MATCH (:Model {name: $m})-[:HAS_VERSION]->(v {tag: $t}) "
                              "MATCH (n:Neuron {version: v.uid}) RETURN n.community_louvain AS c "
                              "ORDER BY n.layer, n.index", "-p", f"m={model}", "-p", f"t={version}",
                              "--format", "json").output)
        memberships[version] = [r["c"] for r in rows]
    [row] = [r for r in stability if r["from"] == "s0-x1-e00" and r["to"] == "s0-x1-e01"]
    assert row["adjusted_rand"] == pytest.approx(adjusted_rand_score(*memberships.values()), abs=1e-12)


def test_every_html_report_reads_in_headless_chromium(store, trained, tmp_path):
    model, _ = trained
    with chromium_page() as page:
        for name in REPORTS:
            options = reports.Options(versions="s0-x1-e00,s0-x1-e03" if name == "compare" else None)
            report = reports.build(store, name, model, options)
            render.write(report, tmp_path, "html")
            check_report_page(page, tmp_path / f"{name}.html")


@pytest.mark.parametrize("args,message", [
    (["learning-dynamics", "--model", "nope"], "no model 'nope'"),
    (["no-such-report", "--model", "{model}"], "no report 'no-such-report'"),
    (["strength", "--model", "{model}", "--step-range", "100:200"], "no version matches steps 100:200: the model "
     "holds 8 versions, s0-x1-e00 to s1-x1-e03, steps 0 to 3"),
    (["strength", "--model", "{model}", "--versions", "s7-*"], "no version matches s7-*"),
    (["strength", "--model", "{model}", "--layers", "*conv*"], "--layers '*conv*' matches no layer; the layers are "
     "0 input, 1 1, 2 3, 3 5"),
    (["ensemble", "--model", "{model}", "--layers", "9:12"], "--layers '9:12' matches no layer"),
    (["ensemble", "--model", "{model}", "--metric", "f1"], "no metric 'f1'"),
    (["strength", "--model", "{model}", "--versions", "s0-x1-e00..nope"], "no version 'nope'"),
    (["strength", "--model", "{model}", "--versions", "s0-x1-eO1"], "did you mean 's0-x1-e01'"),
])
def test_bad_input_gets_one_clear_line(cli_env, trained, tmp_path, args, message):
    model, _ = trained
    done = run(cli_env, "report", *[a.format(model=model) for a in args], "--out", tmp_path / "r")
    assert done.exit_code != 0 and message in done.output, done.output
    assert "Traceback" not in done.output and not (tmp_path / "r").exists()


def test_an_unwritable_output_directory_is_refused(cli_env, trained, tmp_path):
    model, _ = trained
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    done = run(cli_env, "report", "strength", "--model", model, "--out", blocker / "reports")
    assert done.exit_code == 1 and "cannot write the report" in done.output

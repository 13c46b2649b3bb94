"""A reduced demo end to end on the local default: every report exists, holds the versions
trained and reads in Chromium; an existing output folder is refused; a rerun resumes without
duplicates."""

import json

from click.testing import CliRunner

from nngraph.cli import cli
from nngraph.demo import tag
from report_pages import check_report_page, chromium_page

REPORTS = ("learning-dynamics", "strength", "link-weights", "activations", "ensemble", "centrality", "communities")


def run(cli_env, *args):
    return CliRunner().invoke(cli, [str(a) for a in args], env=cli_env)


def versions(cli_env, model):
    done = run(cli_env, "versions", "--model", model, "--format", "json")
    return [row["version"] for row in json.loads(done.output)] if done.exit_code == 0 else []


def test_reduced_demo_end_to_end(cli_env, tmp_path, monkeypatch):
    # a model name of its own per run of the suite: the demo's models are digits-mlp and digits-cnn
    monkeypatch.setattr("nngraph.demo.model_name", lambda architecture: f"test-demo-{architecture}-{tmp_path.name}")
    out = tmp_path / "demo"
    arguments = ["demo", "--out", out, "--epochs", "2", "--seeds", "0", "--scales", "0.5,1", "--bin-width", "0.25"]
    done = run(cli_env, *arguments)
    assert done.exit_code == 0, done.output
    trained = {tag(0, scale, epoch) for scale in (0.5, 1.0) for epoch in range(3)}
    for architecture in ("mlp", "cnn"):
        model = f"test-demo-{architecture}-{tmp_path.name}"
        assert set(versions(cli_env, model)) == trained
        with chromium_page() as browser:
            for name in REPORTS:
                page = (out / model / f"{name}.html").read_text()
                assert "vegaEmbed('#figure-1'" in page and "What to look for" in page
                check_report_page(browser, out / model / f"{name}.html")
        ensemble = (out / model / "ensemble.html").read_text()
        assert all(version in ensemble for version in sorted(trained)[:3])
        assert "mean fluctuation" in ensemble
    assert "mean layer fluctuation per test-accuracy bin" in done.output and "reports:" in done.output
    findings = json.loads((out / "finding.json").read_text())
    assert set(findings) == {f"test-demo-{a}-{tmp_path.name}" for a in ("mlp", "cnn")}
    # every epoch measured on the 540 test images: NS and NA per accuracy bin, printed and kept
    assert "neurons strength (NS) and activation (NA) on the data, per test-accuracy bin" in done.output
    for finding in findings.values():
        assert set(finding["neurons"]) == set(finding["versions_per_bin"])
        assert all(0 <= values["na_zero_fraction"] <= 1 for values in finding["neurons"].values())
    measured = run(cli_env, "query", "--format", "json", "-p", f"model=test-demo-mlp-{tmp_path.name}",
                   "MATCH (:Model {name: $model})-[:HAS_VERSION]->(v:Version) "
                   "RETURN DISTINCT v.data_source AS source, v.data_samples AS samples, v.data_hash AS hash")
    assert measured.exit_code == 0, measured.output
    assert [(r["source"], r["samples"]) for r in json.loads(measured.output)] == [("digits-test", 540)]

    refused = run(cli_env, *arguments)
    assert refused.exit_code == 1 and "already exists" in refused.output
    again = run(cli_env, *arguments, "--force")
    assert again.exit_code == 0 and "already stored: resumed" in again.output
    for architecture in ("mlp", "cnn"):
        model = f"test-demo-{architecture}-{tmp_path.name}"
        assert sorted(versions(cli_env, model)) == sorted(trained)  # no duplicates


def test_the_tutorial_queries_answer_on_demo_data(cli_env, tmp_path, monkeypatch):
    monkeypatch.setattr("nngraph.demo.model_name", lambda architecture: f"tutorial-{architecture}-{tmp_path.name}")
    done = run(cli_env, "demo", "--out", tmp_path / "demo", "--epochs", "1", "--seeds", "0", "--scales", "1",
               "--architectures", "mlp")
    assert done.exit_code == 0, done.output
    model = f"tutorial-mlp-{tmp_path.name}"
    queries = {
        "strongest-paths-through": {"model": model, "version": "s0-x1-e01", "layer": 1, "neuron": 3, "limit": 5},
        "strength-growth": {"model": model, "before": "s0-x1-e00", "after": "s0-x1-e01", "limit": 5},
        "last-layer-communities": {"model": model, "version": "s0-x1-e01"},
    }
    answers = {}
    for name, parameters in queries.items():
        answer = run(cli_env, "query", "--name", name, "--format", "json",
                     *[item for key, value in parameters.items() for item in ("-p", f"{key}={value}")])
        assert answer.exit_code == 0, answer.output
        answers[name] = json.loads(answer.output)
    paths = answers["strongest-paths-through"]
    assert len(paths) == 5 and all(p["neurons"][1] == "1:3" and p["neurons"][0].startswith("0:")
                                   and p["neurons"][2].startswith("2:") for p in paths)
    assert [abs(p["product"]) for p in paths] == sorted((abs(p["product"]) for p in paths), reverse=True)
    growth = [row["growth"] for row in answers["strength-growth"]]
    assert len(growth) == 5 and growth == sorted(growth, reverse=True)
    assert sum(row["size"] for row in answers["last-layer-communities"]) == 10

"""The notebook API: nngraph.connect() gives DataFrames equal to what `nngraph query` and
`nngraph versions` print, reports that render inline and save, and one-line errors for
wrong names."""

import json

import pytest
from click.testing import CliRunner

import nngraph
from models import save_small_mlp
from nngraph.cli import cli
from nngraph.errors import NNGraphError
from servers import apply


def run(cli_env, *args):
    return CliRunner().invoke(cli, [str(a) for a in args], env=cli_env)


def test_dataframes_equal_the_cli(cli_env, model_name, tmp_path, monkeypatch):
    for step in (1, 2):
        path = save_small_mlp(tmp_path / f"mlp-{step}.pt", seed=step)
        assert run(cli_env, "ingest", path, "--model", model_name, "--metric", f"test_accuracy={step / 4}").exit_code == 0
    apply(cli_env, monkeypatch)
    with nngraph.connect() as db:
        assert model_name in set(db.models()["model"])
        versions = db.versions(model_name)
        printed = json.loads(run(cli_env, "versions", "--model", model_name, "--format", "json").output)
        assert versions.drop(columns="uid").to_dict(orient="records") == printed
        layers = db.layers(model_name, "mlp-2")
        assert list(layers["index"]) == [0, 1, 2, 3] and list(layers["nodes"]) == [6, 8, 4, 2]
        neurons = db.neurons(model_name, "mlp-2", 1)
        cypher = ("MATCH (:Model {name: $model})-[:HAS_VERSION]->(v:Version {tag: 'mlp-2'}) "
                  "MATCH (n:Neuron {version: v.uid, layer: 1}) RETURN n.index AS index, n.strength AS strength "
                  "ORDER BY index")
        printed = json.loads(run(cli_env, "query", cypher, "-p", f"model={model_name}", "--format", "json").output)
        assert neurons[["index", "strength"]].to_dict(orient="records") == printed
        assert db.query(cypher, model=model_name).to_dict(orient="records") == printed
        report = db.report("learning-dynamics", model_name)
        page = report._repr_html_()
        assert "<html>" in page and "vegaEmbed('#figure-1'" in page and "mlp-2" in page
        assert [p.name for p in report.save(tmp_path / "r", "json")] == ["learning-dynamics.json"]
        with pytest.raises(NNGraphError, match="did you mean 'mlp-2'"):
            db.layers(model_name, "mlp-3")
        with pytest.raises(NNGraphError, match=f"did you mean '{model_name}'"):
            db.versions(model_name + "x")
        with pytest.raises(NNGraphError, match="has no layer 9"):
            db.neurons(model_name, "mlp-1", 9)
        with pytest.raises(NNGraphError, match="read-only"):
            db.query("CREATE (:Model {name: 'x'})")

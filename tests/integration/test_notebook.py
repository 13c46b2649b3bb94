"""docs/notebook.ipynb, executed by nbclient in a real Python kernel against each managed server:
it runs from top to bottom, its report draws inline, and its DataFrames equal `nngraph query`."""

import json
from pathlib import Path

import nbformat
from click.testing import CliRunner
from nbclient import NotebookClient

from models import save_small_mlp
from nngraph.cli import cli
from servers import apply

NOTEBOOK = Path(__file__).resolve().parents[2] / "docs" / "notebook.ipynb"
# appended by the test, not part of the example: what the notebook computed, as JSON on stdout
DUMP = """import json
print(json.dumps({"last": last, "versions": list(versions["version"]),
                  "neurons": neurons.sort_values("index")[["index", "strength"]].to_dict("records"),
                  "strongest": strongest.to_dict("records")}))"""


def run(cli_env, *args):
    return CliRunner().invoke(cli, [str(a) for a in args], env=cli_env)


def query(cli_env, cypher, **parameters):
    done = run(cli_env, "query", cypher, *[a for k, v in parameters.items() for a in ("-p", f"{k}={v}")],
               "--format", "json")
    assert done.exit_code == 0, done.output
    return json.loads(done.output)


def test_the_example_notebook_runs_and_equals_the_cli(cli_env, model_name, tmp_path, monkeypatch):
    for step in (1, 2, 3):
        path = save_small_mlp(tmp_path / f"mlp-{step}.pt", seed=step)
        done = run(cli_env, "ingest", path, "--model", model_name, "--metric", f"test_accuracy={step / 4}")
        assert done.exit_code == 0, done.output
    apply(cli_env, monkeypatch)
    monkeypatch.setenv("NNGRAPH_EXAMPLE_MODEL", model_name)  # the kernel inherits the environment
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    notebook.cells.append(nbformat.v4.new_code_cell(DUMP))
    NotebookClient(notebook, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()

    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    computed = json.loads(notebook.cells[-1].outputs[0]["text"])
    report_page = next(o for o in outputs if "vegaEmbed('#figure-1'" in o.get("data", {}).get("text/html", ""))
    assert "Learning dynamics" in report_page["data"]["text/html"]
    assert (tmp_path / "notebook-reports" / "learning-dynamics.md").exists()

    tags = query(cli_env, "MATCH (:Model {name: $m})-[:HAS_VERSION]->(v) RETURN v.tag AS tag ORDER BY v.step, tag",
                 m=model_name)
    assert computed["versions"] == [row["tag"] for row in tags] and computed["last"] == tags[-1]["tag"]
    neurons = query(cli_env, "MATCH (:Model {name: $m})-[:HAS_VERSION]->(v {tag: $t}) MATCH (n:Neuron "
                    "{version: v.uid, layer: 1}) RETURN n.index AS index, n.strength AS strength ORDER BY index",
                    m=model_name, t=computed["last"])
    assert computed["neurons"] == neurons
    strongest = query(cli_env, "MATCH (:Model {name: $model})-[:HAS_VERSION]->(v:Version {tag: $tag}) "
                      "MATCH (n:Neuron {version: v.uid}) RETURN n.layer AS layer, n.index AS index, "
                      "n.strength AS strength ORDER BY strength DESC, layer, index LIMIT 5",
                      model=model_name, tag=computed["last"])
    assert computed["strongest"] == strongest and len(strongest) == 5

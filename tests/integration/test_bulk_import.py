"""The bulk path on the real thing: `nngraph export` files (CSV and Parquet) loaded by the real
`neo4j-admin database import full` (through `nngraph db import`) give the same answers as a
transactional ingest of the same model: node and link counts, strengths, fluctuation, array
properties and a PageRank. A failed import leaves what was stored as it was.

Each format gets a Neo4j of its own: a full import replaces the server's one database."""

import json

import pytest
import torch
from click.testing import CliRunner

from models import small_cnn
from nngraph.cli import cli
from servers import environment, seed_neo4j

SUMMARY = """
MATCH (:Model {name: $model})-[:HAS_VERSION]->(v:Version)-[:HAS_LAYER]->(l:Layer)
OPTIONAL MATCH (n:Neuron {version: v.uid, layer: l.index})
WITH v, l, count(n) AS neurons, sum(n.strength) AS strength
RETURN l.index AS layer, l.shape AS shape, l.nodes AS nodes, l.fluctuation AS fluctuation,
       l.w_hist_counts AS counts, neurons, strength
ORDER BY layer"""
LINKS = """
MATCH (:Model {name: $model})-[:HAS_VERSION]->(v:Version)
MATCH (:Neuron {version: v.uid})-[r:LINK]->()
RETURN count(r) AS links, sum(r.weight) AS total"""
SKIPPED = """
MATCH (:Model {name: $model})-[:HAS_VERSION]->(:Version)-[:SKIPPED]->(s:Skipped)
RETURN s.name AS name, s.kind AS kind, s.reason AS reason ORDER BY name, reason"""
PAGERANK = """
MATCH (:Model {name: $model})-[:HAS_VERSION]->(v:Version)
MATCH (n:Neuron {version: v.uid})
RETURN n.layer AS layer, n.index AS i, n.pagerank AS pagerank ORDER BY layer, i"""


def run(env, *args, ok=True):
    done = CliRunner().invoke(cli, [str(a) for a in args], env=env)
    assert (done.exit_code == 0) == ok, done.output
    return done


def answers(env, model):
    run(env, "analyze", "centrality", "--model", model, "--engine", "gds")
    read = lambda query: json.loads(run(env, "query", query, "-p", f"model={model}", "--format", "json").output)  # noqa
    return read(SUMMARY), read(LINKS), read(PAGERANK), read(SKIPPED)


# the CNN's pixel graph (channel, row, col, conv layers) and an MLP whose 50k random weights fill
# whole Parquet pages (pyarrow's default pages of such columns once broke neo4j-admin's reader)
MODELS = {"cnn": (small_cnn, ["--arch", "models:small_cnn", "--input-shape", "1,8,8", "--conv-edges", "pixel"]),
          "mlp": (lambda: torch.nn.Sequential(torch.nn.Linear(64, 300), torch.nn.Linear(300, 100),
                                              torch.nn.Linear(100, 10)), [])}


@pytest.mark.parametrize("fmt,model", [("csv", "cnn"), ("parquet", "cnn"), ("parquet", "mlp")])
def test_exported_files_imported_by_neo4j_admin_answer_as_an_ingest(tmp_path, fmt, model):
    torch.manual_seed(0)
    build, model_options = MODELS[model]
    path = tmp_path / f"{model}.pt"
    torch.save(build().state_dict(), path)
    env = environment("neo4j", tmp_path / "home")
    seed_neo4j(tmp_path / "home")
    try:
        run(env, "ingest", path, "--model", "bulk", *model_options)
        ingested = answers(env, "bulk")
        run(env, "export", path, "--model", "bulk", "--to", tmp_path / "files", "--format", fmt, *model_options)
        broken = tmp_path / "broken"
        broken.mkdir()
        for file in (tmp_path / "files").iterdir():
            broken.joinpath(file.name).write_bytes(file.read_bytes()[: file.stat().st_size // 2])
        refused = run(env, "db", "import", broken, "--yes", ok=False)
        assert "neo4j-admin database import failed" in refused.output
        assert answers(env, "bulk") == ingested  # the failed import changed nothing
        run(env, "db", "import", tmp_path / "files", "--yes")
        imported = answers(env, "bulk")
    finally:
        run(env, "db", "stop", "--server", "neo4j")
    summary, links, pagerank, skipped = imported
    assert skipped == ingested[3] and (model == "mlp" or skipped)  # the CNN's BatchNorm and max pooling
    assert links == ingested[1] and links[0]["links"] > 0
    assert [row["shape"] for row in summary] == [row["shape"] for row in ingested[0]]  # arrays, not strings
    for got, expected in zip(summary, ingested[0]):
        assert got["neurons"] == expected["neurons"] == expected["nodes"]
        assert got["strength"] == pytest.approx(expected["strength"], rel=1e-12)
        assert got["fluctuation"] == pytest.approx(expected["fluctuation"], rel=1e-12)
        assert got["counts"] == expected["counts"]
    assert [r["pagerank"] for r in pagerank] == pytest.approx([r["pagerank"] for r in ingested[2]], rel=1e-6)

"""The graphs of METRICS.md section 9 in the database: the stored links of a transformer block are
its hand-built edge list, skipped modules are listed by Cypher, and ingest, analyze and the
reports run on real models (MiniLM, GPT-2- and BERT-style, a ResNet-style CNN, an LSTM, a GRU)."""

import json

import pytest
from click.testing import CliRunner

from nngraph.cli import cli
from nngraph.ingest import compute_metrics, ingest_module, load_network
from test_architectures import Block, as_numpy, dense, identity, seeded
from test_real_models import NAMES, options_as_flags

SKIPPED = """MATCH (:Model {name: $model})-[:HAS_VERSION]->(v:Version)-[:SKIPPED]->(s:Skipped)
RETURN s.name AS name, s.kind AS kind, s.reason AS reason ORDER BY name, reason"""


def run(cli_env, *args):
    return CliRunner().invoke(cli, [str(a) for a in args], env=cli_env)


def test_stored_links_of_a_transformer_block_are_its_edge_list(store, model_name):
    m = seeded(Block())
    g1, b1, g2 = m.ln1.weight, m.ln1.bias, m.ln2.weight
    edges = []
    for part, layer in enumerate((1, 2, 3)):
        edges += dense(m.qkv.weight[4 * part:4 * part + 4] * g1[None, :], 0, layer)
    edges += identity(3, 4, 4) + dense(m.o.weight, 4, 5) + identity(0, 5, 4)
    edges += dense(m.up.weight * g2[None, :], 5, 6) + dense(m.down.weight, 6, 7) + identity(5, 7, 4)
    result = ingest_module(m, model_name=model_name, version="v1", input_shape=(3, 4), store=store)
    rows = store.read("""MATCH (a:Neuron {version: $v})-[r:LINK]->(b:Neuron)
                         RETURN a.layer AS s, a.index AS i, b.layer AS d, b.index AS j, r.weight AS w""",
                      {"v": result.uid})
    stored = sorted((r["s"], r["i"], r["d"], r["j"]) for r in rows)
    assert stored == sorted(e[:4] for e in edges)
    by_key = {(r["s"], r["i"], r["d"], r["j"]): r["w"] for r in rows}
    assert [by_key[e[:4]] for e in edges] == pytest.approx([e[4] for e in edges], rel=1e-9, abs=1e-12)
    skipped = store.read(SKIPPED, {"model": model_name})
    assert {(s["name"], s["kind"]) for s in skipped} == {("ln1", "LayerNorm"), ("ln2", "LayerNorm")}
    biases = store.read("MATCH (n:Neuron {version: $v, layer: 1}) RETURN n.bias AS b ORDER BY n.index",
                        {"v": result.uid})
    folded = as_numpy(m.qkv.bias[:4] + m.qkv.weight[:4] @ b1)  # ln1's bias enters q's bias through W_Q
    assert [row["b"] for row in biases] == pytest.approx(list(folded), rel=1e-9)


@pytest.mark.parametrize("name", NAMES)
def test_ingest_analyze_and_report_a_real_model(cli_env, store, real_models, name, model_name, tmp_path):
    path, options = real_models[name]
    flags = options_as_flags(options)
    edges = ["--edges", "topk:2"] if name == "minilm" else []  # 22M links: the benchmark stores them all
    done = run(cli_env, "ingest", path, "--model", model_name, "--version", "v1", *edges, *flags)
    assert done.exit_code == 0, done.output
    expected = compute_metrics(load_network(path, **options))
    for item in expected.skipped:  # printed by ingest, and stored with the version
        assert f"no links: {item.name} ({item.kind}): {item.reason}" in done.stderr
    stored = store.read(SKIPPED, {"model": model_name})
    assert sorted((s["name"], s["reason"]) for s in stored) == sorted((s.name, s.reason) for s in expected.skipped)
    layers = store.read("""MATCH (:Model {name: $m})-[:HAS_VERSION]->(:Version)-[:HAS_LAYER]->(l:Layer)
                           RETURN l.name AS name, l.fluctuation AS fluctuation ORDER BY l.index""", {"m": model_name})
    assert [row["name"] for row in layers] == [m.layer.name for m in expected.node_layers]
    assert [row["fluctuation"] for row in layers] == pytest.approx([m.fluctuation for m in expected.node_layers])
    for family in ("centrality", "communities"):
        done = run(cli_env, "analyze", family, "--model", model_name)
        assert done.exit_code == 0, done.output
    for report in ("learning-dynamics", "strength", "link-weights", "centrality", "communities"):
        done = run(cli_env, "report", report, "--model", model_name, "--out", tmp_path, "--format", "json")
        assert done.exit_code == 0, done.output
        assert json.loads((tmp_path / f"{report}.json").read_text())

"""`nngraph graph`: a version's GraphML and GEXF files load in networkx with the same neurons,
links, strengths and weights as stored."""

import networkx as nx
import pytest
from click.testing import CliRunner

from models import save_small_mlp
from nngraph.cli import cli

STORED = """
MATCH (:Model {name: $model})-[:HAS_VERSION]->(v:Version)
MATCH (n:Neuron {version: v.uid})
OPTIONAL MATCH (n)-[r:LINK]->(m:Neuron)
RETURN n.uid AS uid, n.layer AS layer, n.strength AS strength, collect([m.uid, r.weight]) AS links"""


def run(cli_env, *args):
    return CliRunner().invoke(cli, [str(a) for a in args], env=cli_env)


@pytest.mark.parametrize("suffix,read", [(".graphml", nx.read_graphml), (".gexf", nx.read_gexf)])
def test_graph_files_hold_the_stored_graph(store, cli_env, model_name, tmp_path, suffix, read):
    assert run(cli_env, "ingest", save_small_mlp(tmp_path / "mlp.pt"), "--model", model_name).exit_code == 0
    stored = store.read(STORED, {"model": model_name})
    done = run(cli_env, "graph", "--model", model_name, "--version", "mlp", "--to", tmp_path / f"g{suffix}")
    assert done.exit_code == 0, done.output
    graph = read(tmp_path / f"g{suffix}")
    assert graph.number_of_nodes() == len(stored) == 6 + 8 + 4 + 2
    links = {(row["uid"], target): weight for row in stored for target, weight in row["links"] if target}
    assert graph.number_of_edges() == len(links) == 6 * 8 + 8 * 4 + 4 * 2
    for (source, target), weight in links.items():
        assert float(graph.edges[source, target]["weight"]) == pytest.approx(weight, rel=1e-12)
    for row in stored:
        assert float(graph.nodes[row["uid"]]["strength"]) == pytest.approx(row["strength"], rel=1e-12)
    part = run(cli_env, "graph", "--model", model_name, "--version", "mlp", "--layers", "1:2", "--to",
               tmp_path / f"part{suffix}")
    assert part.exit_code == 0, part.output
    chosen = read(tmp_path / f"part{suffix}")
    assert chosen.number_of_nodes() == 8 + 4 and chosen.number_of_edges() == 8 * 4
    assert {int(layer) for _, layer in chosen.nodes(data="layer")} == {1, 2}


def test_bad_graph_requests_are_one_line(cli_env, model_name, tmp_path):
    assert run(cli_env, "ingest", save_small_mlp(tmp_path / "mlp.pt"), "--model", model_name).exit_code == 0
    (tmp_path / "taken.graphml").write_text("keep me")
    for arguments, message in ((["--to", tmp_path / "g.json"], "ending in .graphml or .gexf"),
                               (["--to", tmp_path / "taken.graphml"], "already exists"),
                               (["--to", tmp_path / "g.gexf", "--layers", "7:9"], "outside this model"),
                               (["--version", "mlq", "--to", tmp_path / "g.gexf"], "did you mean 'mlp'")):
        options = ["--version", "mlp", *arguments] if "--version" not in arguments else arguments
        done = run(cli_env, "graph", "--model", model_name, *options)
        assert done.exit_code != 0 and message in done.output, done.output
    assert (tmp_path / "taken.graphml").read_text() == "keep me" and not (tmp_path / "g.gexf").exists()

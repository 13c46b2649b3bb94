"""`nngraph delete`: versions (or a model) disappear whole, other versions and models stay,
unknown names are one line with the closest stored names, and an interrupted deletion stays
invisible until the next deletion removes what it left."""

import pytest
from click.testing import CliRunner

from models import save_small_mlp
from nngraph.cli import cli
from nngraph.ingest import deletion, writer

COUNTS = """
MATCH (v:Version {model: $model})
OPTIONAL MATCH (n:Neuron {version: v.uid})
RETURN v.tag AS tag, v.status AS status, count(n) AS neurons ORDER BY tag"""
PUBLISHED = "MATCH (:Model {name: $model})-[:HAS_VERSION]->(v:Version) RETURN v.tag AS tag ORDER BY tag"


def run(cli_env, *args, **options):
    return CliRunner().invoke(cli, [str(a) for a in args], env=cli_env, **options)


@pytest.fixture
def three_versions(cli_env, tmp_path, model_name):
    for step in range(3):
        path = save_small_mlp(tmp_path / f"mlp-{step}.pt", seed=step)
        assert run(cli_env, "ingest", path, "--model", model_name).exit_code == 0
    return ["mlp-0", "mlp-1", "mlp-2"]


def test_delete_versions_then_the_model(store, cli_env, model_name, three_versions):
    done = run(cli_env, "delete", "--model", model_name, "--version", "mlp-1", "--yes")
    assert done.exit_code == 0, done.output
    assert [row["tag"] for row in store.read(PUBLISHED, {"model": model_name})] == ["mlp-0", "mlp-2"]
    assert [row["tag"] for row in store.read(COUNTS, {"model": model_name})] == ["mlp-0", "mlp-2"]
    refused = run(cli_env, "delete", "--model", model_name, input="n\n")
    assert refused.exit_code != 0 and "delete 2 version(s)" in refused.output
    assert len(store.read(PUBLISHED, {"model": model_name})) == 2
    done = run(cli_env, "delete", "--model", model_name, input="y\n")
    assert done.exit_code == 0 and "and the model" in done.output
    assert not store.read(COUNTS, {"model": model_name})
    assert not store.read("MATCH (m:Model {name: $model}) RETURN m", {"model": model_name})


def test_unknown_names_are_one_line_with_the_closest(cli_env, model_name, three_versions):
    wrong_tag = run(cli_env, "delete", "--model", model_name, "--version", "mlp-9", "--yes")
    assert wrong_tag.exit_code != 0 and "has no version 'mlp-9' (did you mean" in wrong_tag.output
    assert "nothing was deleted" in wrong_tag.output and len(wrong_tag.output.strip().splitlines()) == 1
    wrong_model = run(cli_env, "delete", "--model", model_name + "x", "--yes")
    assert wrong_model.exit_code != 0 and f"did you mean {model_name!r}" in wrong_model.output


def test_an_interrupted_deletion_is_invisible_then_removed(store, cli_env, model_name, three_versions, monkeypatch):
    def interrupted(store, uid):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(deletion, "delete_version", interrupted)
        with pytest.raises(KeyboardInterrupt):
            deletion.delete_versions(store, model_name, ["mlp-0"])
    assert [row["tag"] for row in store.read(PUBLISHED, {"model": model_name})] == ["mlp-1", "mlp-2"]
    left = store.read(COUNTS, {"model": model_name})
    assert [(row["tag"], row["status"]) for row in left][0] == ("mlp-0", "deleting") and left[0]["neurons"] > 0
    monkeypatch.setattr(writer, "_start_time", lambda pid: "another process")  # its writer is gone
    assert deletion.delete_versions(store, model_name, ["mlp-2"]) == ["mlp-2"]
    assert [row["tag"] for row in store.read(COUNTS, {"model": model_name})] == ["mlp-1"]

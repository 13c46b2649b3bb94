"""A real database for the integration suite: the local ArcadeDB, and Neo4j when NEO4J_URI is set."""

import os
import uuid

import pytest

from nngraph.config import resolve_connection
from nngraph.server import LocalServer
from nngraph.store import Store

TARGETS = [
    "local",
    pytest.param("neo4j", marks=pytest.mark.skipif(
        not os.environ.get("NEO4J_URI"), reason="NEO4J_URI is not set: the suite against a real Neo4j is skipped")),
]


@pytest.fixture(scope="session")
def local_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("nngraph-home")
    server = LocalServer(home)
    server.start()
    yield home
    server.stop()


@pytest.fixture(scope="session", params=TARGETS)
def cli_env(request, local_home):
    """Environment for CLI runs: the local server's home, or the NEO4J_* variables as they are."""
    if request.param == "local":
        return {"NNGRAPH_HOME": str(local_home), "NEO4J_URI": None, "NEO4J_USERNAME": None,
                "NEO4J_PASSWORD": None, "NEO4J_DATABASE": None}
    return {"NNGRAPH_HOME": str(local_home)}


@pytest.fixture
def store(cli_env, monkeypatch):
    for key, value in cli_env.items():
        if value is None:
            monkeypatch.delenv(key, raising=False)
        else:
            monkeypatch.setenv(key, value)
    with Store.open(resolve_connection()) as opened:
        yield opened


@pytest.fixture
def model_name():
    return f"model-{uuid.uuid4().hex[:8]}"

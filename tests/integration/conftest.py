"""Real databases for the integration suite: the managed ArcadeDB and the managed Neo4j with
OpenGDS, both started by the session; a Neo4j at NEO4J_URI too when that is set."""

import os
import uuid

import pytest

from nngraph.config import resolve_connection
from nngraph.servers import managed_server
from nngraph.store import Store
from servers import KINDS, apply, environment, remember_assembled, seed_neo4j

TARGETS = [*KINDS, *(["external"] if os.environ.get("NEO4J_URI") else [])]


@pytest.fixture(scope="session")
def server_homes(tmp_path_factory):
    """kind -> home of its managed server, started on first use and stopped at the end."""
    started = {}

    def home(kind):
        if kind not in started:
            path = tmp_path_factory.mktemp(f"nngraph-{kind}")
            with pytest.MonkeyPatch.context() as patch:
                apply(environment(kind, path), patch)
                seed_neo4j(path)
                managed_server(kind).start()
                remember_assembled(path)
            started[kind] = path
        return started[kind]

    yield home
    for kind, path in started.items():
        with pytest.MonkeyPatch.context() as patch:
            apply(environment(kind, path), patch)
            managed_server(kind).stop()


@pytest.fixture(scope="session", params=TARGETS)
def cli_env(request, server_homes):
    """Environment for CLI runs against one target."""
    if request.param == "external":
        return {"NNGRAPH_HOME": str(server_homes("arcadedb"))}  # NEO4J_* as they are
    return environment(request.param, server_homes(request.param))


@pytest.fixture
def target(cli_env):
    return cli_env.get("NNGRAPH_SERVER", "external")


@pytest.fixture
def store(cli_env, monkeypatch):
    apply(cli_env, monkeypatch)
    with Store.open(resolve_connection()) as opened:
        yield opened


@pytest.fixture
def model_name():
    return f"model-{uuid.uuid4().hex[:8]}"

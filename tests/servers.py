"""The managed servers the integration suite runs against, each started once per test session.

Both run: ArcadeDB (the default) and Neo4j with OpenGDS (assembled from Maven Central on its
first start; later homes get the assembled jars hard-linked, since copying 160 MB per test
would only measure the disk). A NEO4J_URI in the environment adds that server as a third target.
"""

import os
import shutil
from pathlib import Path

from nngraph.neo4j_server import Neo4jServer

KINDS = ("arcadedb", "neo4j")
CONNECTION_VARIABLES = ("NEO4J_URI", "NEO4J_USERNAME", "NEO4J_PASSWORD", "NEO4J_DATABASE")
# the tests share a 2-core machine with two servers: keep Neo4j's memory modest
TEST_MEMORY = {"NNGRAPH_NEO4J_HEAP": "2g", "NNGRAPH_NEO4J_PAGECACHE": "512m", "NNGRAPH_HEAP": "2g"}
_ASSEMBLED: list[Path] = []


def environment(kind: str, home: Path) -> dict:
    """Variables that point every command at the managed server of `kind` in `home`."""
    return {"NNGRAPH_HOME": str(home), "NNGRAPH_SERVER": kind, **dict.fromkeys(CONNECTION_VARIABLES), **TEST_MEMORY}


def apply(environment: dict, monkeypatch) -> None:
    for key, value in environment.items():
        if value is None:
            monkeypatch.delenv(key, raising=False)
        else:
            monkeypatch.setenv(key, value)


def seed_neo4j(home: Path) -> None:
    """Give a fresh home the Neo4j jars assembled earlier in this session (hard links), if any."""
    server = Neo4jServer(home)
    if _ASSEMBLED and not server.dist.exists():
        server.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        shutil.copytree(_ASSEMBLED[0], server.dist, copy_function=os.link)


def remember_assembled(home: Path) -> None:
    server = Neo4jServer(home)
    if server.installed() and not _ASSEMBLED:
        _ASSEMBLED.append(server.dist)

"""Which managed server runs when no URI is given: ArcadeDB (the default: it needs no Java)
or Neo4j with GDS. One setting chooses it for every command: `--server` on `db start`,
else NNGRAPH_SERVER=arcadedb|neo4j, else `kind` in the [server] table of the config file."""

from __future__ import annotations

import os

from nngraph.errors import NNGraphError

KINDS = ("arcadedb", "neo4j")


def server_kind(explicit: str | None = None) -> str:
    from nngraph.config import setting

    kind = explicit or os.environ.get("NNGRAPH_SERVER") or setting("server", "kind") or "arcadedb"
    if kind not in KINDS:
        raise NNGraphError(f"unknown managed server {kind!r} (NNGRAPH_SERVER or [server] kind): "
                           f"choose {' or '.join(KINDS)}")
    return kind


def managed_server(kind: str | None = None):
    """The managed server of that kind (default: the configured one) in NNGRAPH_HOME."""
    if server_kind(kind) == "neo4j":
        from nngraph.neo4j_server import Neo4jServer

        return Neo4jServer()
    from nngraph.server import LocalServer

    return LocalServer()

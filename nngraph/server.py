"""The zero-setup local database: ArcadeDB with its Bolt plugin, in a process of its own.

The server runs in a detached child (`python -m nngraph.server run HOME BOLT_PORT`): the JVM
must not share a process with the neo4j driver (they crash together), and the server must
outlive the command that started it. Its state lives in HOME (NNGRAPH_HOME, else the user's
data directory); managed.py keeps it private and makes sure one server runs per HOME.
The server reads no local files for LOAD CSV, fetches no URLs, and aborts any command that
runs longer than the query timeout (NNGRAPH_QUERY_TIMEOUT at its start).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from nngraph.limits import query_timeout
from nngraph.managed import ManagedServer, nngraph_home

DATABASE = "nngraph"
USER = "root"


class LocalServer(ManagedServer):
    label = "the local database (ArcadeDB)"
    user, database = USER, DATABASE
    ready_line = b"ready: bolt on"

    def __init__(self, home: Path | None = None):
        super().__init__(Path(home) if home else nngraph_home())

    def launch_command(self, bolt_port: int) -> tuple[list[str], dict]:
        return ([sys.executable, "-m", "nngraph.server", "run", str(self.home), str(bolt_port)],
                {"NNGRAPH_QUERY_TIMEOUT": str(query_timeout())})


def run(home: Path, bolt_port: int) -> None:
    """The server process: ArcadeDB bound to 127.0.0.1 on `bolt_port` (HTTP on a free port of
    127.0.0.1: the Bolt plugin needs the HTTP server), until SIGTERM."""
    import signal
    import threading

    import arcadedb_embedded
    import jpype
    from arcadedb_embedded import jvm

    from nngraph.managed import free_port

    jvm.start_jvm(heap_size=os.environ.get("NNGRAPH_HEAP", "2g"))
    settings = jpype.JClass("com.arcadedb.GlobalConfiguration")
    settings.OPENCYPHER_LOAD_CSV_ALLOW_FILE_URLS.setValue(False)  # no reading the server's files
    settings.OPENCYPHER_LOAD_CSV_ALLOW_REMOTE_URLS.setValue(False)
    settings.COMMAND_TIMEOUT.setValue(int(query_timeout() * 1000))
    server = arcadedb_embedded.create_server(str(home / "arcadedb"), LocalServer(home).password(), config={
        "host": "127.0.0.1", "http_port": free_port(), "bolt_port": bolt_port,
        "server_plugins": "Bolt:com.arcadedb.bolt.BoltProtocolPlugin"})
    server.start()
    if not (home / "arcadedb" / "databases" / DATABASE).exists():
        server.create_database(DATABASE)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print(f"ready: bolt on 127.0.0.1:{bolt_port}", flush=True)
    while not stop.wait(0.5):
        pass
    server.stop()


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] != "run":
        sys.exit("usage: python -m nngraph.server run HOME BOLT_PORT")
    run(Path(sys.argv[2]), int(sys.argv[3]))

"""The local default database: ArcadeDB with its Bolt plugin, in a process of its own.

The server runs in a detached child (`python -m nngraph.server run HOME`): the JVM must not
share a process with the neo4j driver (they crash together), and the server must outlive
the command that started it. Its state lives in HOME (NNGRAPH_HOME, else the user's data
directory): the database files, a password file readable by the user alone, server.json
(pid and ports, written once the server accepts connections) and server.log.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from nngraph.errors import NNGraphError

DATABASE = "nngraph"
USER = "root"
START_TIMEOUT = 120.0


def nngraph_home() -> Path:
    if os.environ.get("NNGRAPH_HOME"):
        return Path(os.environ["NNGRAPH_HOME"]).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "nngraph"


@dataclass
class ServerInfo:
    pid: int
    bolt_port: int
    http_port: int

    @property
    def uri(self) -> str:
        return f"bolt://127.0.0.1:{self.bolt_port}"


class LocalServer:
    def __init__(self, home: Path | None = None):
        self.home = Path(home or nngraph_home())
        self.state_file = self.home / "server.json"
        self.password_file = self.home / "password"
        self.log_file = self.home / "server.log"

    def password(self) -> str:
        """The generated root password, created on first use, readable by the user alone."""
        if not self.password_file.exists():
            self.home.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(self.password_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w") as handle:
                handle.write(secrets.token_urlsafe(24))
        return self.password_file.read_text().strip()

    def status(self) -> ServerInfo | None:
        """The running server, or None (a stale state file from a killed server is removed)."""
        try:
            info = ServerInfo(**json.loads(self.state_file.read_text()))
        except (OSError, ValueError, TypeError):
            return None
        if _alive(info.pid) and _accepts(info.bolt_port):
            return info
        self.state_file.unlink(missing_ok=True)
        return None

    def start(self, announce=None) -> ServerInfo:
        info = self.status()
        if info:
            return info
        if announce:
            announce(f"starting the local database (ArcadeDB) in {self.home} ...")
        self.home.mkdir(parents=True, exist_ok=True)
        self.password()
        with open(self.log_file, "ab") as log:
            child = subprocess.Popen([sys.executable, "-m", "nngraph.server", "run", str(self.home)],
                                     stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     cwd=self.home, start_new_session=True)  # ArcadeDB logs to ./log
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            info = self.status()
            if info:
                return info
            if child.poll() is not None:
                raise NNGraphError(f"the local database did not start (exit {child.returncode}); "
                                   f"see {self.log_file}")
            time.sleep(0.2)
        child.kill()
        raise NNGraphError(f"the local database did not start within {START_TIMEOUT:.0f} s; see {self.log_file}")

    def stop(self) -> bool:
        info = self.status()
        if not info:
            return False
        os.kill(info.pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        while _alive(info.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _alive(info.pid):
            os.kill(info.pid, signal.SIGKILL)
        self.state_file.unlink(missing_ok=True)
        return True


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie child of this process still answers kill(0): reap it if it is ours
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:
        return True


def _accepts(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1.0)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run(home: Path) -> None:
    """The server process: start ArcadeDB bound to 127.0.0.1, publish its ports, wait for SIGTERM."""
    import threading

    import arcadedb_embedded
    from arcadedb_embedded import jvm

    server_state = LocalServer(home)
    bolt_port, http_port = _free_port(), _free_port()
    jvm.start_jvm(heap_size=os.environ.get("NNGRAPH_HEAP", "2g"))
    server = arcadedb_embedded.create_server(str(home / "arcadedb"), server_state.password(), config={
        "host": "127.0.0.1", "http_port": http_port, "bolt_port": bolt_port,
        "server_plugins": "Bolt:com.arcadedb.bolt.BoltProtocolPlugin"})
    server.start()
    if not (home / "arcadedb" / "databases" / DATABASE).exists():
        server.create_database(DATABASE)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    temporary = server_state.state_file.with_suffix(".tmp")
    temporary.write_text(json.dumps({"pid": os.getpid(), "bolt_port": bolt_port, "http_port": http_port}))
    temporary.replace(server_state.state_file)
    print(f"ready: bolt on 127.0.0.1:{bolt_port}", flush=True)
    while not stop.wait(0.5):
        pass
    server.stop()


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "run":
        sys.exit("usage: python -m nngraph.server run HOME")
    run(Path(sys.argv[2]))

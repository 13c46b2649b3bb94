"""What every managed server shares: a private home, a generated password, one server at a time.

A managed server (ArcadeDB in server.py, Neo4j in neo4j_server.py) runs as a detached
child process that outlives the command that started it. Its directory holds:
- `password`: generated on first use, 0600, refused if another user owns it or others can read it;
- `server.lock`: flock()ed by the server process for its whole life (the starter passes the
  locked descriptor to the child), so "is a server running?" has an answer the kernel
  keeps even when the process was killed with -9: the lock goes with the process;
- `start.lock`: held while a command starts or stops the server, so two starts at once
  give one server;
- `server.json`: pid and ports, written once the server accepts connections.
Every process is checked by more than its pid (its command line names the directory) before
it is signalled, and everything is created readable by the user alone (umask 077).
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import signal
import socket
import stat
import subprocess
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from nngraph.errors import NNGraphError

START_TIMEOUT = 180.0
STOP_TIMEOUT = 60.0
LOCK_WAIT = 240.0  # a second starter waits this long for the first to finish
LOCK_RELEASE = 15.0  # how long a start waits for a dead server's lock to be let go


def nngraph_home() -> Path:
    """NNGRAPH_HOME (made absolute: the server runs in another directory), else the user's data directory."""
    if os.environ.get("NNGRAPH_HOME"):
        home = Path(os.environ["NNGRAPH_HOME"]).expanduser().absolute()
    else:
        base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
        home = Path(base).absolute() / "nngraph"
    if home.exists() and not home.is_dir():
        raise NNGraphError(f"NNGRAPH_HOME {home} is a file, not a directory: point it at a directory "
                           "(it is created if missing)")
    return home


def private_directory(path: Path) -> Path:
    """Create `path` (and parents) readable by the user alone; refuse one owned by someone else."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = path.stat()
        if info.st_uid != os.getuid():
            raise NNGraphError(f"{path} belongs to another user: choose a directory of your own (NNGRAPH_HOME)")
        if stat.S_IMODE(info.st_mode) & 0o077:
            os.chmod(path, 0o700)
    except OSError as exc:
        raise NNGraphError(f"cannot use {path} as nngraph's data directory ({exc.strerror}); set NNGRAPH_HOME "
                           "to a directory you can write") from None
    return path


def make_private(tree: Path) -> None:
    """Take group and other access off everything under `tree` (homes made by older versions)."""
    for root, directories, files in os.walk(tree):
        for name in directories + files:
            entry = Path(root) / name
            try:
                info = entry.lstat()
                if not stat.S_ISLNK(info.st_mode) and stat.S_IMODE(info.st_mode) & 0o077:
                    os.chmod(entry, stat.S_IMODE(info.st_mode) & 0o700)
            except OSError:
                pass  # gone meanwhile


def read_password(path: Path, create: bool, minimum: int = 8) -> str:
    """The password in `path`, created (atomically, 0600) if missing and `create`; a file another
    user owns, others can read or write, or that is empty is refused, never trusted."""
    if not path.exists() and create:
        private_directory(path.parent)
        temporary = path.with_name(f".{path.name}.{os.getpid()}")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(descriptor, "w") as handle:
                handle.write(secrets.token_urlsafe(24))
                handle.flush()
                os.fsync(handle.fileno())
            os.link(temporary, path)  # fails if another starter made one first: theirs is kept
        except FileExistsError:
            pass
        except OSError as exc:
            raise NNGraphError(f"cannot write the password file {path} ({exc.strerror}); free some space or "
                               "choose another NNGRAPH_HOME") from None
        finally:
            temporary.unlink(missing_ok=True)
    try:
        info = path.stat()
    except FileNotFoundError:
        raise NNGraphError(f"{path} is missing: the server's password is unknown") from None
    if info.st_uid != os.getuid():
        raise NNGraphError(f"{path} belongs to another user: refusing to trust it")
    if stat.S_IMODE(info.st_mode) & 0o077:
        raise NNGraphError(f"{path} can be read or written by other users: run `chmod 600 {path}` "
                           "(and consider the password known), then try again")
    password = path.read_text().strip()
    if len(password) < minimum:
        raise NNGraphError(f"{path} is empty or too short: delete it only if the server's data may go "
                           "(a new password fits a new database), or write the password back into it")
    return password


@dataclass
class ServerInfo:
    pid: int
    bolt_port: int

    @property
    def uri(self) -> str:
        return f"bolt://127.0.0.1:{self.bolt_port}"


class ManagedServer:
    """One server process per directory. Subclasses say how to prepare and launch it."""

    label = "the local database"
    ready_line = b""  # what the server writes to its log once it takes queries

    def __init__(self, directory: Path, home: Path | None = None):
        self.directory = Path(directory).absolute()
        self.home = Path(home).absolute() if home else self.directory  # NNGRAPH_HOME, kept private too
        self.state_file = self.directory / "server.json"
        self.password_file = self.directory / "password"
        self.log_file = self.directory / "server.log"
        self.lock_file = self.directory / "server.lock"
        self.start_lock = self.directory / "start.lock"

    # --- what a subclass provides -------------------------------------------------------
    def prepare(self, announce) -> None:
        """Everything the first start needs (install, configuration), before the launch."""

    def launch_command(self, bolt_port: int) -> tuple[list[str], dict]:
        """The child's argv and extra environment."""
        raise NotImplementedError

    def password(self) -> str:
        return read_password(self.password_file, create=True)

    # --- shared lifecycle -----------------------------------------------------------------
    def status(self) -> ServerInfo | None:
        """The running server, checked by its lock, its command line and its port; else None."""
        if not self._lock_held():
            if self.directory.is_dir():
                self.state_file.unlink(missing_ok=True)
            return None
        try:
            info = ServerInfo(**json.loads(self.state_file.read_text()))
        except (OSError, ValueError, TypeError):
            return None  # starting, or a stray without state: start() and stop() deal with it
        if self._ours(info.pid) and accepts(info.bolt_port):
            return info
        return None

    def start(self, announce=None) -> ServerInfo:
        info = self.status()
        if info:
            return info
        private_directory(self.home)
        private_directory(self.directory)
        with self._starting():
            info = self.status()  # another command may have started it while we waited
            if info:
                return info
            self._kill_stray()
            try:
                self.prepare(announce)
                self.password()
            finally:
                make_private(self.directory)
            if announce:
                announce(f"starting {self.label} in {self.directory} ...")
            return self._launch()

    def stop(self) -> bool:
        """Stop the server, or a stray one found by its lock; True if something was stopped."""
        if not self.directory.is_dir():
            return False
        with self._starting():
            pid = self._running_pid()
            if pid is None:
                self.state_file.unlink(missing_ok=True)
                return False
            self._terminate(pid)
            self.state_file.unlink(missing_ok=True)
            return True

    def _launch(self) -> ServerInfo:
        bolt_port = free_port()
        log_offset = self.log_file.stat().st_size if self.log_file.exists() else 0
        argv, environment = self.launch_command(bolt_port)
        lock = os.open(self.lock_file, os.O_RDWR | os.O_CREAT, 0o600)
        # a server killed a moment ago may leave its lock to a child of its for a moment
        if not _lock_within(lock, LOCK_RELEASE):
            os.close(lock)
            raise NNGraphError(f"another {self.label} holds {self.lock_file}; run `nngraph db stop`")
        try:
            with open(os.open(self.log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "ab") as log:
                child = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         cwd=self.directory, start_new_session=True, pass_fds=(lock,),
                                         env={**os.environ, **environment}, umask=0o077)
            os.ftruncate(lock, 0)
            os.write(lock, str(child.pid).encode())
        finally:
            os.close(lock)  # the child keeps the lock for its whole life
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if child.poll() is not None:
                self.state_file.unlink(missing_ok=True)
                raise NNGraphError(f"{self.label} did not start (exit {child.returncode}): "
                                   f"{self._last_log_line()}; see {self.log_file}")
            if accepts(bolt_port) and self._logged_ready(log_offset):
                info = ServerInfo(child.pid, bolt_port)
                temporary = self.state_file.with_suffix(".tmp")
                with open(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as handle:
                    handle.write(json.dumps(info.__dict__))
                temporary.replace(self.state_file)
                return info
            time.sleep(0.2)
        self._terminate(child.pid)
        raise NNGraphError(f"{self.label} did not start within {START_TIMEOUT:.0f} s; see {self.log_file}")

    def _logged_ready(self, offset: int) -> bool:
        """The port answers a little before the databases are online: wait for the server's word."""
        try:
            with open(self.log_file, "rb") as log:
                log.seek(offset)
                return self.ready_line in log.read()
        except OSError:
            return False

    @contextmanager
    def _starting(self):
        descriptor = os.open(self.start_lock, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if not _lock_within(descriptor, LOCK_WAIT):
                raise NNGraphError(f"another nngraph command has been starting or stopping {self.label} "
                                   f"for {LOCK_WAIT:.0f} s; see {self.log_file}")
            yield
        finally:
            os.close(descriptor)

    def _lock_held(self) -> bool:
        try:
            descriptor = os.open(self.lock_file, os.O_RDONLY)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB)
            return False
        except BlockingIOError:
            return True
        finally:
            os.close(descriptor)

    def _running_pid(self) -> int | None:
        """The server's pid if its lock is held: from server.json, else from the lock file."""
        if not self._lock_held():
            return None
        for read in (lambda: json.loads(self.state_file.read_text())["pid"],
                     lambda: int(self.lock_file.read_text().strip())):
            try:
                pid = int(read())
            except (OSError, ValueError, KeyError, TypeError):
                continue
            if self._ours(pid):
                return pid
        return None

    def _kill_stray(self) -> None:
        """A server whose lock is held but that does not answer (hung, or left by a failed start)."""
        pid = self._running_pid()
        if pid is not None:
            self._terminate(pid)
        self.state_file.unlink(missing_ok=True)

    def _ours(self, pid: int) -> bool:
        """The process is alive and its command line names this server's directory."""
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            return alive(pid) and not Path("/proc").is_dir()  # no /proc (macOS): trust the lock
        return alive(pid) and str(self.directory) in command

    def _terminate(self, pid: int) -> None:
        try:
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + STOP_TIMEOUT
            while alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
                while alive(pid):
                    time.sleep(0.05)
        except ProcessLookupError:
            pass

    def _last_log_line(self) -> str:
        try:
            lines = [line for line in self.log_file.read_text(errors="replace").splitlines() if line.strip()]
        except OSError:
            return "no log"
        return lines[-1].strip()[:300] if lines else "no log"


def _lock_within(descriptor: int, seconds: float) -> bool:
    """Take an exclusive flock on `descriptor`, trying until `seconds` have passed."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.1)


def alive(pid: int) -> bool:
    """Whether the process runs. A zombie does not: a server that exited stays one until the
    process that started it (a notebook, a test session) reaps it, and must not be waited for."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)  # reap it if it is our child
        if done:
            return False
    except ChildProcessError:
        pass
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True  # no /proc: kill(0) answered
    return state not in ("Z", "X")


def accepts(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1.0)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]

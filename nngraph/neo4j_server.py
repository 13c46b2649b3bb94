"""The managed Neo4j: Neo4j Community 5.26 with OpenGDS 2.13, assembled from Maven Central.

Maven Central has no server tarball, but the `org.neo4j:neo4j` artifact is the whole
Community server and OpenGDS is published as modules. The first start runs Maven on the
pom shipped in nngraph/maven/ (exact versions; Maven checks every checksum) to fill lib/
(the server) and plugins/ (GDS, minus the libraries the server already has), then writes
a manifest; a later start that finds the manifest missing or a jar changed installs again.
The server runs on a Java 17 or 21 runtime, bound to 127.0.0.1 on a free port, HTTP off,
authentication on (password set before the first start), file URLs in LOAD CSV refused,
heap and page cache sized from the machine's memory (NNGRAPH_NEO4J_HEAP and
NNGRAPH_NEO4J_PAGECACHE override them), `gds.*` allowed.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from importlib import resources
from pathlib import Path

from nngraph.errors import NNGraphError
from nngraph.limits import query_timeout
from nngraph.managed import ManagedServer, make_private, nngraph_home, private_directory

NEO4J_VERSION = "5.26.9"
GDS_VERSION = "2.13.9"
JAVA_VERSIONS = (17, 21)
MAIN_CLASS = "org.neo4j.server.CommunityEntryPoint"
STAGING = "nngraph-import"  # the database a bulk import builds before it replaces `neo4j`
ADMIN_CLASS = "org.neo4j.cli.AdminTool"
# the stock JVM flags the tarball's neo4j.conf carries (the Maven artifacts ship no conf)
JVM_FLAGS = ["-XX:+UseG1GC", "-XX:-OmitStackTraceInFastThrow", "-XX:+AlwaysPreTouch",
             "-XX:+UnlockExperimentalVMOptions", "-XX:+TrustFinalNonStaticFields", "-XX:+DisableExplicitGC",
             "-Djdk.nio.maxCachedBufferSize=1024", "-Dio.netty.tryReflectionSetAccessible=true",
             "-Djdk.tls.ephemeralDHKeySize=2048", "-Djdk.tls.rejectClientInitiatedRenegotiation=true",
             "--add-opens=java.base/java.nio=ALL-UNNAMED", "--add-opens=java.base/java.io=ALL-UNNAMED",
             "--add-opens=java.base/sun.nio.ch=ALL-UNNAMED", "--add-opens=java.base/java.lang=ALL-UNNAMED",
             "--enable-native-access=ALL-UNNAMED", "-Dlog4j2.disable.jmx=true", "-Dfile.encoding=UTF-8"]


class Neo4jServer(ManagedServer):
    label = "the managed Neo4j"
    ready_line = b" Started."
    user, database = "neo4j", "neo4j"

    def __init__(self, home: Path | None = None):
        home = Path(home) if home else nngraph_home()
        super().__init__(home / "neo4j", home)
        self.dist = self.directory / f"dist-{NEO4J_VERSION}-gds-{GDS_VERSION}"
        self.conf_dir = self.directory / "conf"
        self.data_dir = self.directory / "data"

    # --- install -----------------------------------------------------------------------
    def installed(self) -> bool:
        """The manifest is there and every jar it lists has its recorded size and digest."""
        try:
            manifest = json.loads((self.dist / "manifest.json").read_text())
            return all(_digest(self.dist / name) == digest for name, digest in manifest["files"].items())
        except (OSError, ValueError, KeyError, TypeError):
            return False

    def install(self, announce=None) -> None:
        """Assemble lib/ and plugins/ with Maven into a temporary directory, then move it in place."""
        maven = shutil.which("mvn")
        if maven is None:
            raise NNGraphError("the managed Neo4j is assembled from Maven Central with Maven, which is not "
                               "installed: install it (apt-get install maven), or run Neo4j with docker/compose.yml "
                               "and set NEO4J_URI")
        if announce:
            announce(f"assembling Neo4j {NEO4J_VERSION} with OpenGDS {GDS_VERSION} from Maven Central "
                     f"(once; about 160 MB) into {self.dist} ...")
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".install-", dir=self.directory))
        try:
            pom = staging / "pom.xml"
            pom.write_bytes(resources.files("nngraph.maven").joinpath("pom.xml").read_bytes())
            for profile, target in (("server", "lib"), ("gds", "plugins")):
                done = subprocess.run([maven, "-B", "-q", "-C", "-f", str(pom), "-P", profile, "package",
                                       f"-Dtarget.dir={staging / 'dist' / target}"],
                                      capture_output=True, text=True, cwd=staging)
                if done.returncode != 0:
                    raise NNGraphError(f"Maven could not assemble Neo4j ({profile}): {_maven_error(done)}; is "
                                       "Maven Central reachable? Without it, run Neo4j with docker/compose.yml and "
                                       "set NEO4J_URI")
            dist = staging / "dist"
            server_jars = {jar.name for jar in (dist / "lib").iterdir()}
            for jar in list((dist / "plugins").iterdir()):
                if jar.name in server_jars:  # one copy of each library on the classpath: the server's
                    jar.unlink()
            files = {str(jar.relative_to(dist)): _digest(jar) for jar in sorted(dist.rglob("*.jar"))}
            (dist / "manifest.json").write_text(json.dumps({"neo4j": NEO4J_VERSION, "gds": GDS_VERSION,
                                                            "files": files}, indent=1))
            shutil.rmtree(self.dist, ignore_errors=True)
            dist.rename(self.dist)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    # --- ManagedServer hooks ---------------------------------------------------------------
    def prepare(self, announce) -> None:
        java = java_command()
        if not self.installed():
            self.install(announce)
        self.conf_dir.mkdir(mode=0o700, exist_ok=True)
        if not (self.data_dir / "dbms" / "auth.ini").exists():  # before the first start only
            self._write_conf(bolt_port=0)
            self._admin(java, "dbms", "set-initial-password", "--", self.password())  # "--": it may start with "-"

    def launch_command(self, bolt_port: int) -> tuple[list[str], dict]:
        self._write_conf(bolt_port)
        heap = self.memory()[0]
        classpath = os.pathsep.join(str(p) for p in (self.dist / "plugins" / "*", self.conf_dir / "*",
                                                     self.dist / "lib" / "*"))
        return ([java_command(), "-cp", classpath, *JVM_FLAGS, f"-Xms{heap}", f"-Xmx{heap}", MAIN_CLASS,
                 f"--home-dir={self.directory}", f"--config-dir={self.conf_dir}", "--console-mode"],
                self._environment())

    # --- the rest ------------------------------------------------------------------------------
    def import_export(self, directory: Path, announce=None) -> None:
        """Load an `nngraph export` directory with neo4j-admin's full import. Community Edition has one
        database, which a full import replaces; so the import builds a staging database beside it,
        and only a finished import is swapped in (a failed one leaves the stored data as it was).
        The server is stopped for it; the next command starts it again."""
        from nngraph.ingest.export import import_arguments

        arguments = import_arguments(Path(directory).absolute(), STAGING)
        java = java_command()
        private_directory(self.directory)
        with self._starting():
            pid = self._running_pid()
            if pid is not None:
                if announce:
                    announce(f"stopping {self.label} for the import ...")
                self._terminate(pid)
            self.prepare(announce)
            self._remove_staging()
            if announce:
                announce(f"importing {directory} with neo4j-admin ...")
            try:
                done = self._admin(java, *arguments)
            except NNGraphError:
                self._remove_staging()
                raise
            for kind in ("databases", "transactions"):  # swap the finished import in
                stored, staged = self.data_dir / kind / self.database, self.data_dir / kind / STAGING
                replaced = stored.with_name(f"{self.database}.replaced")
                shutil.rmtree(replaced, ignore_errors=True)
                if stored.exists():
                    stored.rename(replaced)
                staged.rename(stored)
                shutil.rmtree(replaced, ignore_errors=True)
            make_private(self.directory)
        if announce:
            summary = [line.strip() for line in done.stdout.splitlines() if "IMPORT DONE" in line]
            announce(" ".join(summary) or "import done")

    def _remove_staging(self) -> None:
        for kind in ("databases", "transactions"):
            shutil.rmtree(self.data_dir / kind / STAGING, ignore_errors=True)

    def memory(self) -> tuple[str, str]:
        """(heap, page cache): a quarter of the memory each, within bounds; overridable."""
        total_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // (1 << 20)
        heap = os.environ.get("NNGRAPH_NEO4J_HEAP") or f"{min(max(total_mb // 4, 512), 31 * 1024)}m"
        pagecache = os.environ.get("NNGRAPH_NEO4J_PAGECACHE") or f"{min(max(total_mb // 4, 256), 64 * 1024)}m"
        for name, value in (("NNGRAPH_NEO4J_HEAP", heap), ("NNGRAPH_NEO4J_PAGECACHE", pagecache)):
            if not re.fullmatch(r"\d+[kmgKMG]", value):
                raise NNGraphError(f"{name}={value!r}: expected a size such as 2g or 512m")
        return heap, pagecache

    def _admin(self, java: str, *arguments: str) -> subprocess.CompletedProcess:
        classpath = os.pathsep.join(str(p) for p in (self.conf_dir / "*", self.dist / "lib" / "*"))
        done = subprocess.run([java, "-cp", classpath, *JVM_FLAGS, ADMIN_CLASS, *arguments], capture_output=True,
                              text=True, env={**os.environ, **self._environment()}, cwd=self.directory, umask=0o077)
        if done.returncode != 0:
            said = [line for line in (done.stderr + done.stdout).splitlines() if "--verbose" not in line]
            raise NNGraphError(f"neo4j-admin {' '.join(arguments[:2])} failed: {_last_line(chr(10).join(said))}")
        return done

    def _environment(self) -> dict:
        return {"NEO4J_HOME": str(self.directory), "NEO4J_CONF": str(self.conf_dir)}

    def _write_conf(self, bolt_port: int) -> None:
        heap, pagecache = self.memory()
        directories = {"data": self.data_dir, "logs": self.directory / "logs", "run": self.directory / "run",
                       "import": self.directory / "import", "plugins": self.dist / "plugins",
                       "lib": self.dist / "lib"}
        lines = ["# written by nngraph at every start: edit NNGRAPH_NEO4J_* instead",
                 "server.default_listen_address=127.0.0.1",
                 "server.default_advertised_address=127.0.0.1",
                 f"server.bolt.listen_address=127.0.0.1:{bolt_port or 7687}",
                 "server.http.enabled=false", "server.https.enabled=false",
                 f"server.memory.heap.initial_size={heap}", f"server.memory.heap.max_size={heap}",
                 f"server.memory.pagecache.size={pagecache}",
                 *(f"server.directories.{key}={path}" for key, path in directories.items()),
                 "dbms.security.auth_enabled=true",
                 "dbms.security.procedures.unrestricted=gds.*",
                 "dbms.security.allow_csv_import_from_file_urls=false",
                 f"db.transaction.timeout={int(query_timeout())}s",
                 "dbms.usage_report.enabled=false"]
        path = self.conf_dir / "neo4j.conf"
        path.write_text("\n".join(lines) + "\n")
        os.chmod(path, 0o600)


def java_command() -> str:
    """A Java 17 or 21: JAVA_HOME's, else the one on PATH; else one clear line."""
    java_home = os.environ.get("JAVA_HOME")
    java = str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java")
    where = f"JAVA_HOME={java_home}" if java_home else "PATH"
    if not java or not Path(java).exists():
        raise NNGraphError(f"the managed Neo4j needs Java 17 or 21 and found none on {where}: install one "
                           "(apt-get install openjdk-17-jre-headless) and set JAVA_HOME, or use ArcadeDB "
                           "(NNGRAPH_SERVER=arcadedb)")
    try:
        done = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise NNGraphError(f"cannot run {java} -version ({exc}); set JAVA_HOME to a Java 17 or 21") from None
    found = re.search(r'version "(\d+)', done.stderr + done.stdout)
    major = int(found.group(1)) if found else None
    if major not in JAVA_VERSIONS:
        raise NNGraphError(f"the managed Neo4j needs Java 17 or 21, and {java} (from {where}) is Java "
                           f"{major or 'of an unknown version'}: set JAVA_HOME to a Java 17 or 21 "
                           "(ls /usr/lib/jvm; apt-get install openjdk-17-jre-headless)")
    return java


def _digest(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _maven_error(done: subprocess.CompletedProcess) -> str:
    lines = [line for line in (done.stdout + done.stderr).splitlines() if "[ERROR]" in line]
    return _last_line(lines[0] if lines else done.stdout + done.stderr)


def _last_line(text: str) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1][:300] if lines else "no output"

"""The managed Neo4j's own bad input: no Java or the wrong one, no Maven or no Maven Central,
a damaged install. One clear line each, and a damaged install is found and done again."""

import os
import shutil
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from nngraph.cli import cli
from nngraph.neo4j_server import Neo4jServer
from servers import environment, seed_neo4j

JAVA_25 = Path("/usr/lib/jvm/temurin-25-jdk-amd64")


def start(env):
    return CliRunner().invoke(cli, ["db", "start", "--server", "neo4j"], env=env)


@pytest.fixture
def env(tmp_path):
    yield environment("neo4j", tmp_path / "home")
    CliRunner().invoke(cli, ["db", "stop", "--server", "neo4j"], env=environment("neo4j", tmp_path / "home"))


def test_no_java_or_the_wrong_java_is_one_line(env, tmp_path):
    done = start({**env, "JAVA_HOME": str(tmp_path / "no-jdk")})
    assert done.exit_code == 1 and "needs Java 17 or 21 and found none" in done.output, done.output
    if JAVA_25.exists():  # the Temurin 25 this kind of machine carries
        done = start({**env, "JAVA_HOME": str(JAVA_25)})
        assert done.exit_code == 1 and "is Java 25" in done.output and "JAVA_HOME" in done.output, done.output


def fake_maven(folder: Path, script: str) -> str:
    """A PATH whose `mvn` is `script` (to stand for a registry that cannot be reached)."""
    folder.mkdir()
    (folder / "mvn").write_text("#!/bin/sh\n" + script)
    os.chmod(folder / "mvn", stat.S_IRWXU)
    return f"{folder}{os.pathsep}{os.environ['PATH']}"


def test_no_maven_or_no_maven_central_says_how_to_use_docker(env, tmp_path):
    no_maven = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if not (Path(p) / "mvn").exists())
    java_home = str(Path(shutil.which("java")).resolve().parent.parent)  # /usr/bin goes with mvn: name Java itself
    done = start({**env, "PATH": no_maven, "JAVA_HOME": java_home})
    assert done.exit_code == 1 and "apt-get install maven" in done.output and "docker" in done.output, done.output
    offline = fake_maven(tmp_path / "bin", "echo '[ERROR] Failed to execute goal: Could not transfer artifact "
                                           "org.neo4j:neo4j:pom:5.26.9 from/to central: Network is unreachable'\nexit 1\n")
    done = start({**env, "PATH": offline})
    assert done.exit_code == 1 and "Could not transfer artifact" in done.output and "docker" in done.output
    assert not Neo4jServer(tmp_path / "home").dist.exists()  # nothing half-installed left in place


def test_a_damaged_install_is_found_and_done_again(env, tmp_path):
    seed_neo4j(tmp_path / "home")
    server = Neo4jServer(tmp_path / "home")
    if not server.dist.exists():  # no install earlier in this session to copy: this start assembles one
        assert start(env).exit_code == 0
        CliRunner().invoke(cli, ["db", "stop", "--server", "neo4j"], env=env)
    jar = next((server.dist / "lib").glob("neo4j-kernel-*.jar"))
    jar.unlink()  # an interrupted copy, or a disk that lost a file
    assert not server.installed()
    done = start(env)
    assert done.exit_code == 0 and "assembling Neo4j" in done.output, done.output
    assert jar.exists() and server.installed()


def test_a_password_that_starts_with_a_dash_is_set(env, tmp_path):
    """A generated password may start with "-" (token_urlsafe): neo4j-admin must not read it as an option."""
    seed_neo4j(tmp_path / "home")
    server = Neo4jServer(tmp_path / "home")
    server.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    server.password_file.write_text("-starts-with-a-dash-0123")
    server.password_file.chmod(0o600)
    assert start(env).exit_code == 0
    from neo4j import GraphDatabase

    with GraphDatabase.driver(server.status().uri, auth=("neo4j", "-starts-with-a-dash-0123")) as driver:
        assert driver.execute_query("RETURN 1 AS one").records[0]["one"] == 1

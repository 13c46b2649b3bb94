"""The outside probe's server-side classes, on each managed server: read-only means read-only,
work is bounded (timeouts, Ctrl-C), one server per home, private files, and a version appears
whole or not at all under racing ingests of the same version."""

import json
import os
import signal
import stat
import time

import pytest
from click.testing import CliRunner

from conftest import mlp_file, nngraph
from nngraph.cli import cli
from nngraph.managed import alive
from nngraph.servers import managed_server

# 400M rows on Neo4j, 25M on ArcadeDB (its range() stops at 13M elements): tens of seconds either way
LONG_QUERY = {"neo4j": "UNWIND range(1, 20000) AS a UNWIND range(1, 20000) AS b WITH a, b WHERE (a * b) % 7 = 3 "
                       "RETURN count(*) AS c",
              "arcadedb": "UNWIND range(1, 5000) AS a UNWIND range(1, 5000) AS b WITH a, b WHERE (a * b) % 7 = 3 "
                          "RETURN count(*) AS c"}


def run(*args, **env):
    return CliRunner().invoke(cli, [str(a) for a in args], env=env or None)


def server_processes(home) -> list[int]:
    """Every process whose command line names this home's server directory."""
    directory = str(managed_server().directory)
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                command = open(f"/proc/{entry}/cmdline", "rb").read().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if directory in command and ("nngraph.server" in command or "CommunityEntryPoint" in command):
                found.append(int(entry))
    return found


def test_read_only_refuses_schema_and_file_access_and_the_server_refuses_file_urls(home, kind):
    assert run("ingest", mlp_file(home.parent / "m.pt", sizes=(4, 3, 2))[0], "--model", "ro").exit_code == 0
    password_file = managed_server().password_file
    for query in ["DROP CONSTRAINT model_name", "CREATE INDEX probe IF NOT EXISTS FOR (n:Neuron) ON (n.bias)",
                  f"LOAD CSV FROM 'file://{password_file}' AS row RETURN row",
                  "MATCH (m:Model) /* a comment */ detach\ndelete m", "CALL db.createLabel('X')",
                  "MATCH (m:Model) CALL { WITH m SET m.x = 1 } IN TRANSACTIONS RETURN 1", "USE system SHOW USERS"]:
        done = run("query", query)
        assert done.exit_code == 1 and "runs read-only: nothing was run" in done.output, (query, done.output)
    # with --write the server itself refuses file URLs: the password never comes back
    done = run("query", "--write", f"LOAD CSV FROM 'file://{password_file}' AS row RETURN row")
    assert done.exit_code == 1 and managed_server().password() not in done.output
    # the constraint is still there: a second Model of the same name is refused
    assert run("query", "--write", "CREATE (:Model {name: 'ro'})").exit_code == 1
    listed = run("query", "MATCH (:Model {name: 'ro'})-[:HAS_VERSION]->(v) RETURN count(v) AS n", "--format", "json")
    assert json.loads(listed.output) == [{"n": 1}]


def test_reads_that_are_reads_pass_the_guard(home):
    for query in ["MATCH (n:Neuron) WHERE n.set = 1 RETURN n.strength AS create LIMIT 1",
                  "RETURN 'CREATE (n) DETACH DELETE n' AS text, {merge: 1, delete: 2} AS map",
                  "MATCH (n:Neuron) // DELETE n\nRETURN count(n) AS `DROP`", "CALL db.labels() YIELD label RETURN label"]:
        done = run("query", query)
        assert done.exit_code == 0, (query, done.output)


def test_every_query_has_a_time_limit(home, kind, monkeypatch):
    monkeypatch.setenv("NNGRAPH_QUERY_TIMEOUT", "2")
    assert run("db", "start").exit_code == 0  # the server takes the limit it starts with
    started = time.monotonic()
    done = run("query", LONG_QUERY[kind])
    assert done.exit_code == 1 and "ran past its time limit" in done.output, done.output
    assert time.monotonic() - started < 30
    assert run("query", "RETURN 1 AS ok").exit_code == 0  # and the server still answers


def test_ctrl_c_cancels_the_query_on_the_server(home, kind):
    assert run("db", "start").exit_code == 0
    child = nngraph("query", LONG_QUERY[kind])
    time.sleep(3)
    interrupted = time.monotonic()
    child.send_signal(signal.SIGINT)
    output, _ = child.communicate(timeout=30)
    assert child.returncode != 0 and time.monotonic() - interrupted < 5 and "Traceback" not in output, output
    if kind == "neo4j":  # the server lists what it runs: the abandoned query is gone
        time.sleep(1)
        running = run("query", "SHOW TRANSACTIONS YIELD currentQuery RETURN currentQuery", "--format", "json")
        assert "(a * b) % 7" not in running.output, running.output


def test_racing_starts_give_one_server_that_stop_and_status_see(home):
    starters = [nngraph("db", "start") for _ in range(4)]
    outputs = [child.communicate(timeout=300)[0] for child in starters]
    assert [child.returncode for child in starters] == [0] * 4, outputs
    pids = {line.split("(pid ")[1].split(")")[0] for output in outputs for line in output.splitlines()
            if "(pid " in line}
    assert len(pids) == 1 and server_processes(home) == [int(pids.pop())]
    assert "stopped" in run("db", "stop").output
    assert "not running" in run("db", "status").output and server_processes(home) == []


def test_a_server_without_its_state_file_is_still_found_and_stopped(home):
    assert run("db", "start").exit_code == 0
    [pid] = server_processes(home)
    managed_server().state_file.unlink()
    assert "stopped" in run("db", "stop").output
    assert not alive(pid) and server_processes(home) == []


def test_failed_first_starts_leave_nothing_that_hangs(home, tmp_path, monkeypatch):
    server = managed_server()
    server.directory.mkdir(parents=True, mode=0o700, exist_ok=True)
    server.password_file.write_text("")
    os.chmod(server.password_file, 0o600)
    started = time.monotonic()
    done = run("db", "start")
    assert done.exit_code == 1 and "empty or too short" in done.output and time.monotonic() - started < 30
    server.password_file.unlink()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NNGRAPH_HOME", "relative-home")  # the server runs elsewhere: made absolute
    assert run("db", "start").exit_code == 0
    assert "running" in run("db", "status").output
    run("db", "stop")
    (tmp_path / "a-file").write_text("x")
    monkeypatch.setenv("NNGRAPH_HOME", str(tmp_path / "a-file"))
    done = run("db", "status")
    assert done.exit_code == 1 and "is a file, not a directory" in done.output
    monkeypatch.setenv("NNGRAPH_HOME", str(home))


def test_everything_under_the_home_is_the_users_alone(home):
    assert run("ingest", mlp_file(home.parent / "m.pt", sizes=(4, 3, 2))[0], "--model", "private").exit_code == 0
    opened = [path for path in home.rglob("*") if not path.is_symlink()
              and stat.S_IMODE(path.stat().st_mode) & 0o077]
    assert opened == []
    assert stat.S_IMODE(home.stat().st_mode) == 0o700


def test_a_password_file_others_can_read_or_that_another_user_owns_is_refused(home):
    assert run("db", "start").exit_code == 0
    password_file = managed_server().password_file
    os.chmod(password_file, 0o644)
    done = run("query", "RETURN 1 AS ok")
    assert done.exit_code == 1 and "chmod 600" in done.output
    os.chmod(password_file, 0o600)
    if os.getuid() == 0:  # only root can hand a file to another user
        os.chown(password_file, 65534, -1)
        done = run("query", "RETURN 1 AS ok")
        assert done.exit_code == 1 and "belongs to another user" in done.output
        os.chown(password_file, 0, -1)
    assert run("query", "RETURN 1 AS ok").exit_code == 0


@pytest.mark.parametrize("stagger", [0.0, 0.4, 1.5])
def test_racing_ingests_of_one_version_publish_it_whole(home, tmp_path, stagger):
    path, links, neurons = mlp_file(tmp_path / "mlp.pt", sizes=(300, 200, 200, 10))
    assert run("db", "start").exit_code == 0
    first = nngraph("ingest", path, "--model", "race", "--version", "v")
    time.sleep(stagger)
    second = nngraph("ingest", path, "--model", "race", "--version", "v")
    outputs = [child.communicate(timeout=600)[0] for child in (first, second)]
    assert [first.returncode, second.returncode] == [0, 0], outputs
    assert sum("already stored" in output for output in outputs) == 1, outputs
    counted = run("query", "MATCH (:Model {name: 'race'})-[:HAS_VERSION]->(v:Version) "
                  "OPTIONAL MATCH (:Neuron {version: v.uid})-[r:LINK]->() "
                  "RETURN v.status AS status, count(r) AS links", "--format", "json")
    assert json.loads(counted.output) == [{"status": "complete", "links": links}]
    leftovers = run("query", "MATCH (v:Version {model: 'race'}) RETURN count(v) AS n", "--format", "json")
    assert json.loads(leftovers.output) == [{"n": 1}]


def test_names_and_tags_have_length_limits(home, tmp_path):
    path, _, _ = mlp_file(tmp_path / "mlp.pt", sizes=(4, 3, 2))
    for args, message in [(["--model", "m" * 10_000], "expected 1 to 200 characters"),
                          (["--model", "m", "--version", "a\x00b"], "without control characters"),
                          (["--model", "m", "--metric", "k" * 500 + "=1"], "metric key")]:
        done = run("ingest", path, *args)
        assert done.exit_code == 1 and message in done.output, done.output
    assert run("models", "--format", "json").output.strip() == "[]"


def test_a_server_its_starter_has_not_reaped_is_stopped_without_waiting(home):
    server = managed_server()
    info = server.start()  # this process is the server's parent, and (like a notebook) does not reap it
    started = time.monotonic()
    stopper = nngraph("db", "stop")  # another process stops it: the exited server stays a zombie here
    output, _ = stopper.communicate(timeout=120)
    assert stopper.returncode == 0 and "stopped" in output, output
    assert time.monotonic() - started < 45  # the zombie is not waited for (it once was, forever)
    assert not alive(info.pid)

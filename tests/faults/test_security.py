"""The local server listens on 127.0.0.1 only, its password file is the user's alone, and no
command prints the password; names with quotes, keywords and unicode are stored exactly."""

import stat
from pathlib import Path

from click.testing import CliRunner

from conftest import mlp_file
from nngraph.cli import cli
from nngraph.server import LocalServer


def listening_addresses(port: int) -> set[str]:
    """Local addresses of sockets listening on `port`, from /proc/net/tcp and tcp6."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                found.add(address)
    return found


def test_local_server_listens_on_loopback_only_and_keeps_its_password(home, tmp_path):
    runner = CliRunner()
    outputs = [runner.invoke(cli, ["db", "start"]).output, runner.invoke(cli, ["db", "status"]).output]
    server = LocalServer()
    info = server.status()
    for port in (info.bolt_port, info.http_port):
        addresses = listening_addresses(port)
        assert addresses and addresses <= {"0100007F", "0000000000000000FFFF00000100007F"}, addresses
    assert stat.S_IMODE(server.password_file.stat().st_mode) == 0o600
    path, _, _ = mlp_file(tmp_path / "mlp.pt", sizes=(6, 4, 2))
    name = "it's `MATCH (n) DETACH DELETE n` — ünïcödé \"model\""
    for args in (["ingest", path, "--model", name, "--version", "v'1 RETURN 1 //", "--metric", "loss'=0.5"],
                 ["models"], ["versions", "--model", name], ["query", "MATCH (m:Model {name: $n}) RETURN m.name AS n",
                                                            "-p", f"n={name}"],
                 ["analyze", "centrality", "--model", name], ["report", "list"]):
        done = runner.invoke(cli, [str(a) for a in args])
        assert done.exit_code == 0, done.output
        outputs.append(done.output)
    assert name in outputs[-3] and "v'1 RETURN 1 //" in outputs[-4]
    password = server.password()
    assert all(password not in output for output in outputs)
    assert password not in (home / "server.log").read_text()

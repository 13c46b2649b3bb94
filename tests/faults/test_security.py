"""Each managed server listens on 127.0.0.1 only, its password file is the user's alone, and no
command prints the password; names with quotes, keywords and unicode are stored exactly."""

import stat
from pathlib import Path

from click.testing import CliRunner

from conftest import mlp_file
from nngraph.cli import cli
from nngraph.servers import managed_server


LOOPBACK = {"0100007F", "0000000000000000FFFF00000100007F", "00000000000000000000000001000000"}


def listening_sockets(pid: int) -> set[tuple[str, int]]:
    """(local address, port) of every socket process `pid` listens on, from /proc."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = fd.readlink().name
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:["):-1])
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            address, hex_port = fields[1].split(":")
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                found.add((address, int(hex_port, 16)))
    return found


def test_the_managed_server_listens_on_loopback_only_and_keeps_its_password(home, tmp_path):
    runner = CliRunner()
    outputs = [runner.invoke(cli, ["db", "start"]).output, runner.invoke(cli, ["db", "status"]).output]
    server = managed_server()
    info = server.status()
    sockets = listening_sockets(info.pid)
    assert info.bolt_port in {port for _, port in sockets}
    assert {address for address, _ in sockets} <= LOOPBACK, sockets
    assert stat.S_IMODE(server.password_file.stat().st_mode) == 0o600
    path, _, _ = mlp_file(tmp_path / "mlp.pt", sizes=(6, 4, 2))
    name = "it's `MATCH (n) DETACH DELETE n` — ünïcödé \"model\""
    for args in (["ingest", path, "--model", name, "--version", "v'1 RETURN 1 //", "--metric", "loss_at_end=0.5"],
                 ["models"], ["versions", "--model", name], ["query", "MATCH (m:Model {name: $n}) RETURN m.name AS n",
                                                            "-p", f"n={name}"],
                 ["analyze", "centrality", "--model", name], ["report", "list"]):
        done = runner.invoke(cli, [str(a) for a in args])
        assert done.exit_code == 0, done.output
        outputs.append(done.output)
    assert name in outputs[-3] and "v'1 RETURN 1 //" in outputs[-4]
    password = server.password()
    assert all(password not in output for output in outputs)
    logs = [path for path in home.rglob("*.log")] + [server.log_file]
    assert all(password not in path.read_text(errors="replace") for path in logs)

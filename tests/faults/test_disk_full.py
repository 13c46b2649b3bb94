"""A disk that fills up during an ingest: one clear line that says so, what was stored before
stays readable, and nothing half-written is shown. Needs a small tmpfs (root); skipped,
saying so, where it cannot be mounted."""

import subprocess
import time

import pytest
from click.testing import CliRunner

from conftest import mlp_file
from nngraph.cli import cli
from nngraph.server import LocalServer


@pytest.fixture
def small_disk(tmp_path, monkeypatch):
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=40m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a 40 MB tmpfs here ({done.stderr.decode().strip() or 'not root'}): "
                    "the full-disk scenario needs it")
    monkeypatch.setenv("NNGRAPH_HOME", str(mount / "home"))
    for key in ("NEO4J_URI", "NEO4J_USERNAME", "NEO4J_PASSWORD", "NEO4J_DATABASE"):
        monkeypatch.delenv(key, raising=False)
    yield mount
    LocalServer().stop()
    for _ in range(50):  # the stopped server's last file handles may take a moment to close
        if subprocess.run(["umount", str(mount)], capture_output=True).returncode == 0:
            return
        time.sleep(0.2)
    subprocess.run(["umount", "--lazy", str(mount)], check=True)


def test_a_full_disk_during_ingest(small_disk, tmp_path):
    runner = CliRunner()
    small, _, _ = mlp_file(tmp_path / "small.pt", sizes=(6, 4, 2))
    big, _, _ = mlp_file(tmp_path / "big.pt", sizes=(600, 600, 600, 600))
    assert runner.invoke(cli, ["ingest", str(small), "--model", "keep"]).exit_code == 0
    done = runner.invoke(cli, ["ingest", str(big), "--model", "big"])
    assert done.exit_code == 1
    errors = [line for line in done.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "MB free" in errors[0] and "free some space" in errors[0], done.output
    listed = runner.invoke(cli, ["versions", "--format", "json"])
    assert listed.exit_code == 0 and '"model": "keep"' in listed.output and '"big"' not in listed.output

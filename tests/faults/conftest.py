"""Fault scenarios kill servers and processes: each test gets its own local database home."""

import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from nngraph.managed import alive
from nngraph.server import LocalServer

CONNECTION_VARIABLES = ("NEO4J_URI", "NEO4J_USERNAME", "NEO4J_PASSWORD", "NEO4J_DATABASE")


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A fresh NNGRAPH_HOME for this test (in this process and its children); its server stopped after."""
    monkeypatch.setenv("NNGRAPH_HOME", str(tmp_path / "home"))
    for key in CONNECTION_VARIABLES:
        monkeypatch.delenv(key, raising=False)
    yield tmp_path / "home"
    LocalServer().stop()


def kill_server() -> None:
    """SIGKILL the local server and wait until it is gone."""
    pid = LocalServer().status().pid
    os.kill(pid, signal.SIGKILL)
    while alive(pid):
        time.sleep(0.05)


def nngraph(*args, **options) -> subprocess.Popen:
    """The command line in a child process (inherits NNGRAPH_HOME)."""
    return subprocess.Popen([sys.executable, "-m", "nngraph", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **options)


def mlp_file(path, sizes=(200, 150, 100, 10), seed=0):
    torch.manual_seed(seed)
    layers = [torch.nn.Linear(a, b) for a, b in zip(sizes, sizes[1:])]
    torch.save(torch.nn.Sequential(*layers).state_dict(), path)
    return path, sum(a * b for a, b in zip(sizes, sizes[1:])), sum(sizes)

"""Fault scenarios kill servers and processes: each test gets its own home and managed server,
once for ArcadeDB and once for Neo4j with OpenGDS where a server is involved."""

import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from nngraph.managed import alive
from nngraph.servers import managed_server
from servers import KINDS, apply, environment, seed_neo4j


@pytest.fixture(params=KINDS)
def kind(request):
    return request.param


@pytest.fixture
def home(tmp_path, monkeypatch, kind):
    """A fresh NNGRAPH_HOME for this test, pointing every command (in this process and its children)
    at the managed server of `kind`; that server is stopped after."""
    path = tmp_path / "home"
    apply(environment(kind, path), monkeypatch)
    seed_neo4j(path)
    yield path
    managed_server().stop()


def kill_server() -> None:
    """SIGKILL the managed server and wait until it is gone."""
    pid = managed_server().status().pid
    os.kill(pid, signal.SIGKILL)
    while alive(pid):
        time.sleep(0.05)


def nngraph(*args, **options) -> subprocess.Popen:
    """The command line in a child process (inherits NNGRAPH_HOME and NNGRAPH_SERVER)."""
    return subprocess.Popen([sys.executable, "-m", "nngraph", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **options)


def mlp_file(path, sizes=(200, 150, 100, 10), seed=0):
    torch.manual_seed(seed)
    layers = [torch.nn.Linear(a, b) for a, b in zip(sizes, sizes[1:])]
    torch.save(torch.nn.Sequential(*layers).state_dict(), path)
    return path, sum(a * b for a, b in zip(sizes, sizes[1:])), sum(sizes)

"""Fuzzing: truncated, corrupted and adversarial model files at the loaders, and random
arguments at the command line. The only outcomes allowed are a result or one clear error
(NNGraphError; for the CLI one `Error:` line and exit 1, or click's usage error, exit 2):
never a traceback, a hang or a half-written version."""

import io
import signal
from contextlib import contextmanager

import torch
from click.testing import CliRunner
from hypothesis import HealthCheck, example, given, settings, strategies as st
from safetensors.torch import save as safetensors_bytes

from nngraph.cli import cli
from nngraph.errors import NNGraphError
from crafted import PT2_CRAFTS, crafted_pt2
from nngraph.ingest import compute_metrics, load_network

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))


def torch_bytes(value) -> bytes:
    buffer = io.BytesIO()
    torch.save(value, buffer)
    return buffer.getvalue()


torch.manual_seed(0)
MLP = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.ReLU(), torch.nn.Linear(4, 3))
SEEDS = {
    ".pt": torch_bytes(MLP.state_dict()),
    ".pth": torch_bytes({"state_dict": MLP.state_dict(), "epoch": 3}),
    ".safetensors": safetensors_bytes({k: v.contiguous() for k, v in MLP.state_dict().items()}),
    ".bin": torch_bytes({"a.weight": torch.full((3, 3), float("nan")), "b.weight": torch.ones(2, 7)}),
}


@contextmanager
def time_limit(seconds: int):
    def expire(*_):
        raise TimeoutError(f"hung for {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@st.composite
def damaged(draw):
    suffix = draw(st.sampled_from(sorted(SEEDS)))
    data = bytearray(SEEDS[suffix])
    how = draw(st.sampled_from(["truncate", "flip", "splice", "random", "empty"]))
    if how == "truncate":
        data = data[:draw(st.integers(0, len(data) - 1))]
    elif how == "flip":
        for _ in range(draw(st.integers(1, 20))):
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    elif how == "splice":
        at = draw(st.integers(0, len(data)))
        data[at:at] = draw(st.binary(min_size=1, max_size=64))
    elif how == "random":
        data = bytearray(draw(st.binary(max_size=2048)))
    else:
        data = bytearray()
    return draw(st.sampled_from([suffix, ".pt", ".safetensors", ".pt2"])), bytes(data)


@FUZZ
@given(case=damaged())
def test_damaged_model_files_give_a_result_or_one_clear_error(tmp_path_factory, case):
    suffix, data = case
    path = tmp_path_factory.mktemp("fuzz") / f"model{suffix}"
    path.write_bytes(data)
    with time_limit(60):
        try:
            compute_metrics(load_network(path))
        except NNGraphError as exc:
            assert str(exc) and "\n" not in str(exc)


WORDS = ["metrics", "ingest", "export", "query", "models", "versions", "analyze", "report", "centrality",
         "communities", "list", "strength", "--model", "--version", "--format", "json", "csv", "--edges", "topk:0",
         "topk:2", "backbone:2", "--layers", "9:1", "x", "--weights", "signed", "--to", "--metric", "a=b", "=",
         "-p", "k=1", "--file", "MATCH (n) RETURN n LIMIT 1", "RETURN 1/0", "CREATE (n:X)", "--write",
         "--input-shape", "1,a", "--arch", "no.such:thing", "--device", "cuda", "--conv-edges", "pixel", "--name",
         "nope", "--list", "--step", "-1", "ünï'`\"", "--all-versions", "--engine", "gds", "--versions", "a..b"]


@FUZZ
@given(args=st.lists(st.one_of(st.sampled_from(WORDS), st.text(max_size=12)), max_size=8))
@example(args=["metrics", "\x00"])  # found 2026-12-04: click stats a path, and a NUL byte raised ValueError
@example(args=["ingest", "--model", "a\x00", "\x00"])
def test_random_command_lines_give_a_result_or_one_clear_error(home, args):
    with time_limit(120):
        done = CliRunner().invoke(cli, args)
    assert done.exception is None or isinstance(done.exception, SystemExit), (args, done.output)
    assert "Traceback" not in done.output
    assert done.exit_code in (0, 1, 2), (args, done.output)
    if done.exit_code == 1:
        assert sum(line.startswith("Error:") for line in done.output.splitlines()) == 1, (args, done.output)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(craft=st.sampled_from(PT2_CRAFTS), flips=st.lists(st.tuples(st.integers(0, 10 ** 6), st.integers(0, 255)),
                                                          max_size=4))
def test_crafted_and_damaged_pt2_archives_run_no_code(tmp_path_factory, craft, flips):
    folder = tmp_path_factory.mktemp("pt2")
    marker = folder / "ran"
    path = crafted_pt2(folder / "model.pt2", craft, marker)
    data = bytearray(path.read_bytes())
    for position, value in flips:
        data[position % len(data)] = value
    path.write_bytes(bytes(data))
    with time_limit(60):
        try:
            compute_metrics(load_network(path))
        except NNGraphError as exc:
            assert str(exc) and "\n" not in str(exc)
    assert not marker.exists()


@FUZZ
@given(rows=st.integers(1, 5000), columns=st.integers(1, 5000), stored=st.integers(1, 64),
       strides=st.tuples(st.integers(0, 3), st.integers(0, 3)))
def test_strided_views_are_read_or_refused_never_expanded(tmp_path_factory, rows, columns, stored, strides):
    storage = torch.randn(stored)
    needed = 1 + (rows - 1) * strides[0] + (columns - 1) * strides[1]
    if needed > stored:
        storage = torch.randn(needed)  # as_strided may not reach past its storage
    weight = torch.as_strided(storage, (rows, columns), strides)
    path = tmp_path_factory.mktemp("strided") / "model.pt"
    torch.save({"0.weight": weight}, path)
    overlapping = rows * columns > storage.numel()
    with time_limit(60):
        try:
            compute_metrics(load_network(path), persistence=False)
            assert not overlapping
        except NNGraphError as exc:
            assert overlapping and "overlaps itself" in str(exc)

"""Model files never run code and never make nngraph allocate far beyond their size.

Each crafted archive of tests/crafted.py makes torch's own loader run code (a marker directory
appears) or expand a few bytes into gigabytes; nngraph's readers refuse every one with one line
that names the reason, in `metrics`, `export` and a directory `ingest`, and only --trust-pickle
opts in to unpickling.
"""

import json
import subprocess
import sys

import pytest
import torch
from click.testing import CliRunner

from crafted import PT2_CRAFTS, crafted_pt2, overlapping_pt
from nngraph.cli import cli
from nngraph.errors import NNGraphError
from nngraph.ingest import load_network

RUNS_CODE_WITH_TORCH = ("pickled_weight", "pickled_constant", "opaque_constant", "sample_inputs")
REASONS = {"pickled_weight": "pickled Python objects", "pickled_constant": "pickled Python objects",
           "opaque_constant": "pickled Python objects", "custom_object": "pickled Python objects",
           "sample_inputs": "pickled Python objects", "aoti_library": "AOTInductor compiled code",
           "overlapping_strides": "overlaps itself", "zip_bomb": "expands this far"}


@pytest.mark.parametrize("craft", RUNS_CODE_WITH_TORCH)
def test_the_crafted_archives_do_run_code_through_torch_itself(tmp_path, craft):
    """The premise: torch.export.load, as nngraph called it before, runs the payload."""
    marker = tmp_path / "ran"
    path = crafted_pt2(tmp_path / "evil.pt2", craft, marker)
    try:
        torch.export.load(str(path))
    except Exception:  # noqa: BLE001 - some payloads break the load after they ran
        pass
    assert marker.exists()


@pytest.mark.parametrize("craft", PT2_CRAFTS)
def test_crafted_pt2_is_refused_with_its_reason_and_runs_nothing(tmp_path, craft):
    marker = tmp_path / "ran"
    path = crafted_pt2(tmp_path / "evil.pt2", craft, marker)
    with pytest.raises(NNGraphError, match=REASONS[craft]) as refused:
        load_network(path)
    assert "\n" not in str(refused.value)
    assert not marker.exists()


@pytest.mark.parametrize("command", [["metrics"], ["export", "--model", "m", "--to", "{out}"]])
def test_commands_refuse_crafted_archives_in_one_line(tmp_path, command):
    for craft in RUNS_CODE_WITH_TORCH:
        marker = tmp_path / f"ran-{craft}"
        path = crafted_pt2(tmp_path / f"{craft}.pt2", craft, marker)
        args = [a.format(out=tmp_path / f"out-{craft}") for a in command]
        done = subprocess.run([sys.executable, "-m", "nngraph", args[0], str(path), *args[1:]], capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 1, done.stdout + done.stderr
        errors = [line for line in done.stderr.splitlines() if line.startswith("Error: ")]
        assert len(errors) == 1 and "Traceback" not in done.stderr, done.stderr
        assert "--trust-pickle" in done.stderr and not marker.exists()
        assert not (tmp_path / f"out-{craft}").exists()  # export left nothing behind


def test_a_directory_ingest_refuses_a_crafted_archive_among_good_files(home, tmp_path):
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    marker = tmp_path / "ran"
    torch.save(torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2)).state_dict(), folder / "a-1.pt")
    crafted_pt2(folder / "b-2.pt2", "pickled_weight", marker)
    done = CliRunner().invoke(cli, ["ingest", str(folder), "--model", "dir"])
    assert done.exit_code == 1 and "pickled Python objects" in done.output and not marker.exists()
    listed = CliRunner().invoke(cli, ["versions", "--model", "dir", "--format", "json"])
    assert '"a-1"' in listed.output and "b-2" not in listed.output  # the good file before it is stored whole


def test_trust_pickle_is_the_one_way_to_unpickle(tmp_path):
    marker = tmp_path / "ran"
    path = crafted_pt2(tmp_path / "evil.pt2", "pickled_constant", marker)
    CliRunner().invoke(cli, ["metrics", str(path), "--trust-pickle"])
    assert marker.exists()


def test_overlapping_strides_cannot_make_a_tiny_file_allocate_gigabytes(tmp_path):
    path = overlapping_pt(tmp_path / "tiny.pt")
    assert path.stat().st_size < 4096
    # a fresh parent whose only child is the command: its RUSAGE_CHILDREN peak is the command's alone
    measure = ("import resource, subprocess, sys; done = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
               "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, done.returncode); print(done.stderr)")
    done = subprocess.run([sys.executable, "-c", measure, sys.executable, "-m", "nngraph", "metrics", str(path)],
                          capture_output=True, text=True, timeout=120)
    peak_kb, returncode = map(int, done.stdout.split("\n", 1)[0].split())
    peak_mb = peak_kb / 1024
    assert returncode == 1 and "overlaps itself" in done.stdout, done.stdout
    assert peak_mb < 2048  # torch and numba alone take ~600 MB; the file asked for 40 GB


@pytest.mark.parametrize("contents,message", [
    (torch.ones(3, 3), "holds a Tensor, not a state_dict"),
    ([torch.ones(3, 3)], "holds a list, not a state_dict"),
    ({0: torch.ones(3, 3)}, "is a int; a state_dict maps parameter names"),
    ({"0.weight": torch.ones(3, 3, dtype=torch.bool)}, "has dtype bool"),
    ({"0.weight": torch.ones(3, 3, dtype=torch.int64)}, "has dtype int64"),
    ({"0.weight": torch.ones(4, 3), "1.weight": torch.ones(0, 4)}, "has no neurons (shape (0,))"),
])
def test_odd_pt_contents_are_one_line(tmp_path, contents, message):
    path = tmp_path / "odd.pt"
    torch.save(contents, path)
    done = CliRunner().invoke(cli, ["metrics", str(path)])
    assert done.exit_code == 1 and message in done.output and done.output.count("\n") == 1, done.output


def test_eight_bit_floats_are_read_as_float32(tmp_path):
    from safetensors.torch import save_file

    weight = torch.tensor([[0.5, -1.0], [2.0, 0.25]])
    save_file({"0.weight": weight.to(torch.float8_e4m3fn), "0.bias": torch.zeros(2).to(torch.float8_e5m2)},
              str(tmp_path / "f8.safetensors"))
    done = CliRunner().invoke(cli, ["metrics", str(tmp_path / "f8.safetensors"), "--format", "json"])
    assert done.exit_code == 0, done.output
    [layer] = json.loads(done.output)["weight_layers"]
    assert layer["link_weights"]["mean"] == pytest.approx((0.5 - 1 + 2 + 0.25 + 0 + 0) / 6)  # exact in float8


def test_fifos_and_missing_shards_are_refused_not_read(tmp_path):
    import os

    os.mkfifo(tmp_path / "pipe.pt")
    done = CliRunner().invoke(cli, ["metrics", str(tmp_path / "pipe.pt")])
    assert done.exit_code == 1 and "not a regular file" in done.output
    shards = tmp_path / "shards"
    shards.mkdir()
    from safetensors.torch import save_file

    save_file({"0.weight": torch.ones(2, 2)}, str(shards / "a.safetensors"))
    (shards / "model.safetensors.index.json").write_text(
        '{"weight_map": {"0.weight": "a.safetensors", "0.bias": "gone.safetensors"}}')
    done = CliRunner().invoke(cli, ["metrics", str(shards)])
    assert done.exit_code == 1 and "'gone.safetensors', which is missing" in done.output
    (shards / "model.safetensors.index.json").write_text('{"weight_map": {"0.weight": "../a.safetensors"}}')
    done = CliRunner().invoke(cli, ["metrics", str(shards)])
    assert done.exit_code == 1 and "outside the model directory" in done.output

"""Every source the metrics core reads gives the same metrics; bad input gets one clear error."""

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import save_file

from models import small_cnn, small_mlp
from nngraph.cli import cli
from nngraph.errors import NNGraphError
from nngraph.ingest.fx_nodes import REASONS
from nngraph.ingest import compute_metrics, load_network, network_from_module


@pytest.fixture(scope="module")
def mlp():
    torch.manual_seed(0)
    return small_mlp()


@pytest.fixture(scope="module")
def reference(mlp):
    return [m.strength for m in compute_metrics(network_from_module(mlp)).node_layers]


def strengths(path, **options):
    return [m.strength for m in compute_metrics(load_network(path, **options)).node_layers]


def assert_same(got, expected):
    assert len(got) == len(expected)
    for a, b in zip(got, expected):
        np.testing.assert_allclose(a, b, rtol=1e-6)


@pytest.mark.parametrize("wrap", [lambda sd: sd, lambda sd: {"state_dict": sd, "epoch": 3},
                                  lambda sd: {"model_state_dict": sd}, lambda sd: {"model": sd},
                                  lambda sd: {f"module.{k}": v for k, v in sd.items()}])
def test_state_dict_files(tmp_path, mlp, reference, wrap):
    path = tmp_path / "model.pt"
    torch.save(wrap(mlp.state_dict()), path)
    assert_same(strengths(path), reference)


def test_safetensors_file_and_shards(tmp_path, mlp, reference):
    state = {k: v.contiguous() for k, v in mlp.state_dict().items()}
    save_file(state, tmp_path / "model.safetensors")
    assert_same(strengths(tmp_path / "model.safetensors"), reference)
    shards = tmp_path / "sharded"
    shards.mkdir()
    keys = list(state)
    weight_map = {}
    for n, part in enumerate((keys[:3], keys[3:])):
        name = f"model-{n + 1:05d}-of-00002.safetensors"
        save_file({k: state[k] for k in part}, shards / name)
        weight_map.update(dict.fromkeys(part, name))
    (shards / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    assert_same(strengths(shards), reference)


def test_pt2_archive_and_arch_factory_agree(tmp_path):
    torch.manual_seed(1)
    cnn = small_cnn().eval()
    torch.export.save(torch.export.export(cnn, (torch.zeros(1, 1, 8, 8),)), tmp_path / "cnn.pt2")
    torch.save(cnn.state_dict(), tmp_path / "cnn.pt")
    from_pt2 = compute_metrics(load_network(tmp_path / "cnn.pt2"))
    from_arch = strengths(tmp_path / "cnn.pt", arch="models:small_cnn", input_shape=(1, 8, 8))
    assert_same([m.strength for m in from_pt2.node_layers], from_arch)
    kinds = [m.layer.kind for m in from_pt2.node_layers]
    assert kinds == ["input", "conv2d", "cut", "conv2d", "linear", "linear"]
    # the flattened conv output (4 channels x 1 x 1) is the first Linear's input layer
    assert from_pt2.node_layers[3].layer.nodes == 4
    assert {(s.kind, s.reason) for s in from_pt2.skipped} == {("BatchNorm2d", REASONS["batch_norm"]),
                                                              ("MaxPool2d", REASONS["max_pool"])}


def test_pickled_module_needs_trust(tmp_path, mlp, reference):
    path = tmp_path / "whole.pt"
    torch.save(mlp, path)
    with pytest.raises(NNGraphError, match="--trust-pickle"):
        load_network(path)
    assert_same(strengths(path, trust_pickle=True), reference)


def test_a_sum_of_two_projections_is_one_layer_with_both_entering():
    class Block(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.q, self.k, self.out = torch.nn.Linear(4, 4), torch.nn.Linear(4, 4), torch.nn.Linear(4, 2)

        def forward(self, x):
            return self.out(self.q(x) + self.k(x))

    torch.manual_seed(2)
    block = Block()
    result = compute_metrics(network_from_module(block))
    # q and k read the same input nodes: their out-strengths add up
    expected = (block.q.weight.sum(0) + block.k.weight.sum(0)).detach().numpy()
    np.testing.assert_allclose(result.node_layers[0].strength, expected, rtol=1e-6)
    # y = q(x) + k(x) is one node layer that both weight layers enter (a projection shortcut)
    assert [m.layer.kind for m in result.node_layers] == ["input", "linear", "linear"]
    with torch.no_grad():
        summed = (block.q.weight.sum(1) + block.q.bias + block.k.weight.sum(1) + block.k.bias
                  + block.out.weight.sum(0)).numpy()
    np.testing.assert_allclose(result.node_layers[1].strength, summed, rtol=1e-6)


def bad(tmp_path, name, content):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        torch.save(content, path)
    return path


@pytest.mark.parametrize("name,content,message", [
    ("notes.pt", {"lr": 0.1, "epochs": [1, 2]}, "holds no tensors"),
    ("garbage.pt", b"this is not a checkpoint", "(neither torch.save's zip format nor a pickle); is the file truncated"),
    ("garbage.safetensors", b"\x00\x01nope", "truncated or corrupt"),
    ("garbage.pt2", b"PK\x03\x04broken", "truncated or corrupt"),
    ("nochain.pt", {"a.weight": torch.ones(3, 2), "b.weight": torch.ones(2, 4)}, "do not chain"),
    ("conv.pt", {"c.weight": torch.ones(2, 1, 3, 3), "c.bias": torch.ones(2)}, "--arch"),
    ("empty.pt", {"running_mean": torch.ones(3)}, "no Linear weights"),
    ("nan.pt", {"a.weight": torch.tensor([[1.0, float("nan")]]), "a.bias": torch.ones(1)}, "NaN or infinite"),
])
def test_bad_input_gets_one_clear_line(tmp_path, name, content, message):
    path = bad(tmp_path, name, content)
    result = CliRunner().invoke(cli, ["metrics", str(path)])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0]
    assert str(path) in lines[0] or path.name in lines[0] or message == "NaN or infinite"


def test_truncated_checkpoint(tmp_path, mlp):
    path = tmp_path / "model.pt"
    torch.save(mlp.state_dict(), path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    result = CliRunner().invoke(cli, ["metrics", str(path)])
    assert result.exit_code == 1 and "truncated or corrupt" in result.output


def test_metrics_json_document(tmp_path, mlp, reference):
    path = tmp_path / "model.pt"
    torch.save(mlp.state_dict(), path)
    result = CliRunner().invoke(cli, ["metrics", str(path), "--format", "json", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    layers = document["layers"]
    assert [layer["index"] for layer in layers] == [0, 1, 2, 3]
    assert {"index", "name", "kind", "nodes", "fluctuation", "mean_strength"} <= set(layers[0])
    assert [layer["nodes"] for layer in layers] == [6, 8, 4, 2]
    assert [layer["fluctuation"] for layer in layers] == pytest.approx([float(np.std(s)) for s in reference])
    assert document["skipped"] == []


def test_table_and_csv(tmp_path, mlp):
    path = tmp_path / "model.pt"
    torch.save(mlp.state_dict(), path)
    table = CliRunner().invoke(cli, ["metrics", str(path)])
    assert table.exit_code == 0 and "fluctuation" in table.output and "persistence" in table.output
    csv = CliRunner().invoke(cli, ["metrics", str(path), "--format", "csv"]).output.splitlines()
    assert csv[0].startswith("index,name,kind") and len(csv) == 5


def test_every_command_has_help():
    runner = CliRunner()
    for name, command in cli.commands.items():
        assert command.help, f"{name} has no help text"
        assert runner.invoke(cli, [name, "--help"]).exit_code == 0


@pytest.mark.parametrize("failures,retry", [(1, "in blocks of 65,536 values"), (2, "on the CPU")])
def test_out_of_memory_retries_smaller_then_on_the_cpu(mlp, monkeypatch, caplog, failures, retry):
    """A GPU that runs out of memory: the same strengths, from smaller blocks or the CPU, and a warning.
    The GPU is stood in for: a 'cuda' device whose first `failures` attempts run out of memory."""
    from nngraph.ingest import layer_passes

    original, calls = layer_passes.dense_strengths, []

    def short_of_memory(weight, bias, device, block):
        calls.append((device.type, block))
        if len(calls) <= failures:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return original(weight, bias, torch.device("cpu"), block)

    monkeypatch.setattr(layer_passes, "dense_strengths", short_of_memory)
    layer = network_from_module(mlp).topology.weight_layers[0]
    into, out_of, _, _, _ = layer_passes._torch_strengths(layer, mlp[0].weight.detach(), mlp[0].bias.detach(),
                                                          torch.device("cuda"), False)
    np.testing.assert_allclose(into.numpy(), (mlp[0].weight.sum(1) + mlp[0].bias).detach().numpy(), rtol=1e-6)
    np.testing.assert_allclose(out_of.numpy(), mlp[0].weight.sum(0).detach().numpy(), rtol=1e-6)
    assert calls[:2] == [("cuda", 1 << 20), ("cuda", 1 << 16)][:len(calls)] and calls[-1][0] == (
        "cpu" if failures == 2 else "cuda")
    assert any(retry in message for message in caplog.messages)


def test_out_of_memory_everywhere_is_one_clear_error(mlp, monkeypatch):
    """torch's passes (the GPU's, and the CPU's for what the compiled pass does not read)."""
    from nngraph.ingest import layer_passes

    def never(*args):
        raise torch.OutOfMemoryError("out of memory (simulated)")

    monkeypatch.setattr(layer_passes, "dense_strengths", never)
    monkeypatch.setattr(layer_passes, "COMPILED_ON_CPU", False)
    with pytest.raises(NNGraphError, match="does not fit in memory even on the CPU"):
        compute_metrics(network_from_module(mlp), device="cpu")

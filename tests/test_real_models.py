"""Real models end to end through `nngraph metrics`: the pretrained MiniLM, GPT-2- and BERT-style
models from transformers configs, and a ResNet-style CNN, an LSTM and a GRU trained on the digits."""

import json
from collections import deque

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from safetensors import safe_open

from nngraph.cli import cli
from nngraph.errors import NNGraphError
from nngraph.ingest import compute_metrics, load_network

NAMES = ["minilm", "gpt2", "bert", "resnet", "lstm", "gru"]
# what each model lists as having no links of its own, by kind: nothing else may be cut or dropped
SKIPPED_KINDS = {"minilm": {"Embedding": 3, "LayerNorm": 13}, "gpt2": {"Embedding": 2, "LayerNorm": 5},
                 "bert": {"Embedding": 3, "LayerNorm": 5}, "resnet": {"BatchNorm2d": 5, "MaxPool2d": 1},
                 "lstm": {}, "gru": {}}


def options_as_flags(options: dict) -> list[str]:
    flags = []
    for key, value in options.items():
        flags += [f"--{key.replace('_', '-')}", ",".join(map(str, value)) if isinstance(value, tuple) else str(value)]
    return flags


def reachable(topology, start: int) -> set[int]:
    seen, queue = {start}, deque([start])
    while queue:
        layer = queue.popleft()
        for weights in topology.weight_layers:
            if weights.src == layer and weights.dst not in seen:
                seen.add(weights.dst)
                queue.append(weights.dst)
    return seen


@pytest.mark.parametrize("name", NAMES)
def test_metrics_on_a_real_model(real_models, name):
    path, options = real_models[name]
    done = CliRunner().invoke(cli, ["metrics", str(path), "--format", "json", *options_as_flags(options)])
    assert done.exit_code == 0, done.output
    summary = json.loads(done.stdout)
    assert all(np.isfinite(layer["fluctuation"]) for layer in summary["layers"])
    network = load_network(path, **options)
    topology = network.topology
    # layers in forward order: every link goes forward, and the last layer is reached from an input
    assert all(w.src < w.dst for w in topology.weight_layers)
    inputs = [layer.index for layer in topology.node_layers if layer.kind in ("input", "cut")]
    last = len(topology.node_layers) - 1
    assert any(last in reachable(topology, start) for start in inputs)
    kinds = {}
    for item in summary["skipped"]:
        kinds[item["kind"]] = kinds.get(item["kind"], 0) + 1
    assert kinds == SKIPPED_KINDS[name]
    for item in summary["skipped"]:  # printed, on stderr
        assert f"no links: {item['name']} ({item['kind']}): {item['reason']}" in done.stderr


def test_the_pretrained_minilm_is_one_connected_residual_stream(real_models):
    path, _ = real_models["minilm"]
    network = load_network(path)
    topology = network.topology
    assert topology.node_layers[0].kind == "input"
    assert reachable(topology, 0) == set(range(len(topology.node_layers)))  # one piece from the embeddings on
    names = [layer.name for layer in topology.node_layers]
    assert names[1:5] == ["encoder.layer.0.attention.self.query", "encoder.layer.0.attention.self.key",
                          "encoder.layer.0.attention.self.value", "encoder.layer.0.attention.self (o)"]
    assert names.index("encoder.layer.5.output.dense") > names.index("encoder.layer.0.output.dense")
    assert len(topology.weight_layers) == 6 * (6 + 3) + 1  # q, k, v, W_O, up, down + 3 identities; the pooler
    # q of block 0 reads the embedding LayerNorm's output: its gain and bias folded into W_Q
    with safe_open(str(path / "model.safetensors"), "pt") as handle:
        read = lambda key: handle.get_tensor(key).double()  # noqa: E731
        w, b = read("encoder.layer.0.attention.self.query.weight"), read("encoder.layer.0.attention.self.query.bias")
        g, beta = read("embeddings.LayerNorm.weight"), read("embeddings.LayerNorm.bias")
    result = compute_metrics(network, persistence=False)
    np.testing.assert_allclose(result.node_layers[1].strength, (w * g[None, :]).sum(1) + b + w @ beta,
                               rtol=1e-5, atol=1e-5)


def test_gpt2_fused_qkv_is_split_and_the_tied_head_reads_the_embedding(real_models):
    path, _ = real_models["gpt2"]
    network = load_network(path)
    layers = network.topology.weight_layers
    split = [w for w in layers if w.name.startswith("transformer.h.0.attn.c_attn")]
    assert [(w.rows, w.transposed) for w in split] == [((0, 32), True), ((32, 64), True), ((64, 96), True)]
    with safe_open(str(path / "model.safetensors"), "pt") as handle:
        fused = handle.get_tensor("transformer.h.0.attn.c_attn.weight").double()  # (in, out): GPT-2's Conv1D
        bias = handle.get_tensor("transformer.h.0.attn.c_attn.bias").double()
        g, beta = (handle.get_tensor(f"transformer.h.0.ln_1.{k}").double() for k in ("weight", "bias"))
    w_v = fused[:, 64:].T
    result = compute_metrics(network, persistence=False)
    v_layer = result.node_layers[split[2].dst]
    np.testing.assert_allclose(v_layer.s_in, (w_v * g[None, :]).sum(1) + bias[64:] + w_v @ beta, atol=1e-6)
    head = [w for w in layers if w.name == "lm_head"]
    assert head and network.weight(head[0]).shape == (64, 32)  # tied to transformer.wte, stored once


def test_a_model_directory_naming_an_architecture_not_installed(tmp_path, real_models):
    path, _ = real_models["bert"]
    for name in ("config.json", "model.safetensors"):
        (tmp_path / name).write_bytes((path / name).read_bytes())
    config = json.loads((tmp_path / "config.json").read_text())
    config["architectures"] = ["BertForSomethingNotInTransformers"]
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(NNGraphError, match="BertForSomethingNotInTransformers, which transformers"):
        load_network(tmp_path)


def test_a_state_dict_that_does_not_match_the_module(tmp_path, real_models):
    path, options = real_models["lstm"]
    state = torch.load(path)
    state["fc.weight"] = torch.zeros(10, 3)
    torch.save(state, tmp_path / "bad.pt")
    with pytest.raises(NNGraphError, match="does not match the module from --arch models:lstm_digits"):
        load_network(tmp_path / "bad.pt", **options)
    done = CliRunner().invoke(cli, ["metrics", str(path), "--arch", "models:lstm_digits", "--time-steps", "0"])
    assert done.exit_code == 2 and "0 is not in the range x>=1" in done.output


@pytest.mark.parametrize("name", NAMES)
def test_data_metrics_on_a_real_model(real_models, name, tmp_path):
    """NS and NA of every node layer with incoming links, on digits (the CNN, the recurrent
    networks: rows as time steps) or on seeded token ids (the transformers)."""
    path, options = real_models[name]
    data = "digits-test"
    if name in ("minilm", "gpt2", "bert"):
        vocabulary = 30522 if name == "minilm" else 64
        torch.save(torch.randint(0, vocabulary, (12, 16), generator=torch.Generator().manual_seed(0)),
                   tmp_path / "ids.pt")
        data = tmp_path / "ids.pt"
    done = CliRunner().invoke(cli, ["metrics", str(path), "--format", "json", "--no-persistence", "--data", str(data),
                                    "--samples", "12", *options_as_flags(options)])
    assert done.exit_code == 0, done.output
    measured = json.loads(done.stdout)["data_metrics"]
    topology = load_network(path, **options).topology
    entered = {w.dst for w in topology.weight_layers}
    assert [layer["index"] for layer in measured["layers"]] == sorted(entered) and not measured["not_measured"]
    for layer in measured["layers"]:
        for quantity in ("neurons_strength", "neurons_activation"):
            figures = layer[quantity]
            assert np.isfinite([figures["mean"], figures["std"], figures["min"], figures["max"]]).all()
            assert figures["min"] <= figures["mean"] <= figures["max"]
    assert measured["data"]["samples"] == 12

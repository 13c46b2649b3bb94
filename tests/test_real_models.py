"""Real models end to end through `nngraph metrics`: the pretrained MiniLM, GPT-2-, BERT-, LLaMA-,
Falcon-, Phi-, GPT-NeoX-, ViT- and ConvNeXt-style models from transformers configs, and a
ResNet-style CNN, an LSTM and a GRU trained on the digits."""

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
from nngraph.ingest.sources import load_runnable
from nngraph.ingest.activations import data_metrics
from nngraph.ingest.fx_nodes import REASONS

NAMES = ["minilm", "gpt2", "bert", "llama", "falcon", "phi", "gpt_neox", "vit", "resnet", "lstm", "gru"]
# what each model lists as having no links of its own, by kind: nothing else may be cut or dropped
SKIPPED_KINDS = {"minilm": {"Embedding": 3, "LayerNorm": 13}, "gpt2": {"Embedding": 2, "LayerNorm": 5},
                 "bert": {"Embedding": 3, "LayerNorm": 5},
                 "llama": {"Embedding": 1, "LlamaRMSNorm": 5, "LlamaAttention": 2},  # rotary q and k: no links
                 "falcon": {"Embedding": 1, "LayerNorm": 3, "FalconAttention": 2},
                 # rotary embeddings of half of q and k: each attention module once, and the piece of
                 # identity links each leaves between cut layers, all as feeding only the attention pattern
                 "phi": {"Embedding": 1, "LayerNorm": 3, "PhiAttention": 2, "identity": 2},
                 "gpt_neox": {"Embedding": 1, "LayerNorm": 5, "GPTNeoXAttention": 2, "identity": 2},
                 "vit": {"LayerNorm": 5, "ViTEmbeddings": 1},  # the class token and positions: no links
                 "resnet": {"BatchNorm2d": 5, "MaxPool2d": 1},
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


def measured_beside(path, submodule, read):
    """Data metrics of the model at `path` on 6 seeded sequences of 5 token ids, and what
    `read(args, out)` takes from `submodule(model)` in a forward pass on the same ids."""
    module = load_runnable(path)
    ids = torch.randint(0, 64, (6, 5), generator=torch.Generator().manual_seed(0))
    measured = data_metrics(module, ids, batch_size=6).by_index
    captured = []
    hook = submodule(module).register_forward_hook(lambda m, args, out: captured.append(read(args, out).double()))
    with torch.no_grad():
        module(input_ids=ids)
    hook.remove()
    return measured, captured[0]


def measured_on_images(path, shape, submodule):
    """The model at `path` (as the data pass loads it), its data metrics on 6 seeded images of
    `shape`, and the output of `submodule(model)` in a forward pass on the same images."""
    module = load_runnable(path)
    images = torch.randn(6, *shape, generator=torch.Generator().manual_seed(0))
    measured = data_metrics(module, images, batch_size=6).by_index
    captured = []
    hook = submodule(module).register_forward_hook(lambda m, args, out: captured.append(out))
    with torch.no_grad():
        module(images)
    hook.remove()
    return module, measured, captured[0]


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


def test_llama_gated_mlp_and_grouped_query_attention(real_models):
    """gate_proj and up_proj both enter the hidden layer u (the sum of both rows, RMSNorm's gain
    folded into each); each of the 2 stored v heads feeds 2 of the 4 query heads."""
    path, _ = real_models["llama"]
    network = load_network(path)
    layers = {w.name: w for w in network.topology.weight_layers}
    gate, up = layers["model.layers.0.mlp.gate_proj"], layers["model.layers.0.mlp.up_proj"]
    assert (gate.src, gate.dst) == (up.src, up.dst)
    v_to_o = layers["model.layers.0.self_attn (v -> o)"]
    assert (v_to_o.repeat, v_to_o.head_dim, v_to_o.size) == (2, 8, 32)
    with safe_open(str(path / "model.safetensors"), "pt") as handle:
        read = lambda key: handle.get_tensor(key).double()  # noqa: E731
        g = read("model.layers.0.post_attention_layernorm.weight")
        w_gate, w_up = read("model.layers.0.mlp.gate_proj.weight"), read("model.layers.0.mlp.up_proj.weight")
    result = compute_metrics(network, persistence=False)
    np.testing.assert_allclose(result.node_layers[gate.dst].s_in, (w_gate * g).sum(1) + (w_up * g).sum(1),
                               rtol=1e-5, atol=1e-6)


def test_link_weight_samples_hold_the_biases_the_model_has(real_models):
    """A folded norm adds a bias only where it shifts (METRICS.md section 2: the sample is the
    links and the biases): RMSNorm's gain folded into LLaMA's q_proj, stored without a bias,
    gives it none; the residual links entering BERT's post-norm, whose shift W_O's layer adds
    once, have none; W_O's layer has its own and the norm's."""
    for name, layer, links, biases in (("llama", "model.layers.0.self_attn.q_proj", 32 * 32, 0),
                                       ("bert", "encoder.layer.1.attention.output (residual)", 32, 0),
                                       ("bert", "encoder.layer.1.attention.output.dense", 32 * 32, 32)):
        result = compute_metrics(load_network(real_models[name][0]), persistence=False)
        found = next(w for w in result.weight_layers if w.layer.name == layer)
        assert (found.edges, found.link_weights["count"]) == (links, links + biases), layer


def test_falcon_multi_query_attention_beside_its_mlp(real_models):
    """Falcon's fused qkv is split along heads of a view (4 query heads, one k, one v: runs of
    rows); its layers compute `x @ W.T`; attention and MLP read the same norm and both enter the
    block's output with the residual."""
    path, _ = real_models["falcon"]
    network = load_network(path)
    layers = {w.name: w for w in network.topology.weight_layers}
    parts = [layers[f"transformer.h.0.self_attention.query_key_value[{i}]"] for i in range(3)]
    assert [(w.rows, w.transposed) for w in parts] == [((0, 32), False), ((32, 40), False), ((40, 48), False)]
    assert layers["transformer.h.0.self_attention (v -> o)"].repeat == 4
    dense, down = layers["transformer.h.0.self_attention.dense"], layers["transformer.h.0.mlp.dense_4h_to_h"]
    residual = layers["transformer.h.0 (residual)"]
    assert dense.dst == down.dst == residual.dst and residual.src == parts[0].src
    with safe_open(str(path / "model.safetensors"), "pt") as handle:
        read = lambda key: handle.get_tensor(key).double()  # noqa: E731
        w = read("transformer.h.0.self_attention.query_key_value.weight")
        g, beta = (read(f"transformer.h.0.input_layernorm.{k}") for k in ("weight", "bias"))
    result = compute_metrics(network, persistence=False)
    w_v = w[40:48]
    np.testing.assert_allclose(result.node_layers[parts[2].dst].s_in, (w_v * g).sum(1) + w_v @ beta, atol=1e-6)
    # NS of q and v on token ids: the fused layer's own output rows, captured by a hook
    measured, fused = measured_beside(path, lambda m: m.transformer.h[0].self_attention.query_key_value,
                                      lambda args, out: out.reshape(-1, 48))
    for part, rows in ((parts[0], slice(0, 32)), (parts[2], slice(40, 48))):
        np.testing.assert_allclose(measured[part.dst].strength.per_node()[0], fused[:, rows].mean(0).numpy(),
                                   atol=1e-5)


def test_gpt_neox_qkv_fused_head_by_head(real_models):
    """GPT-NeoX (Pythia) stores q, k and v of each head together: rows h*24 .. h*24+24 of the
    fused matrix are head h's q (8 rows), k and v. Each part reads its 8 rows of every head's 24;
    v feeds o, and o's W_O and the MLP both enter the block's output (the parallel residual).
    The data pass reads each part's values from the (batch, heads, positions, 8) tensor the
    model splits them into, node for node as the fused layer's rows."""
    path, _ = real_models["gpt_neox"]
    network = load_network(path)
    layers = {w.name: w for w in network.topology.weight_layers}
    parts = [layers[f"gpt_neox.layers.0.attention.query_key_value[{i}]"] for i in range(3)]
    assert [(w.rows, w.row_period) for w in parts] == [((0, 8), 24), ((8, 16), 24), ((16, 24), 24)]
    assert layers["gpt_neox.layers.0.attention (v -> o)"].src == parts[2].dst
    dense, down = layers["gpt_neox.layers.0.attention.dense"], layers["gpt_neox.layers.0.mlp.dense_4h_to_h"]
    assert dense.dst == down.dst == layers["gpt_neox.layers.0 (residual)"].dst
    with safe_open(str(path / "model.safetensors"), "pt") as handle:
        read = lambda key: handle.get_tensor(key).double()  # noqa: E731
        w, b = (read(f"gpt_neox.layers.0.attention.query_key_value.{k}") for k in ("weight", "bias"))
        g, beta = (read(f"gpt_neox.layers.0.input_layernorm.{k}") for k in ("weight", "bias"))
    rows = [torch.cat([torch.arange(h * 24 + 8 * part, h * 24 + 8 * part + 8) for h in range(4)]) for part in range(3)]
    result = compute_metrics(network, persistence=False)
    for part, own in zip(parts, rows):
        np.testing.assert_allclose(result.node_layers[part.dst].s_in, (w[own] * g).sum(1) + b[own] + w[own] @ beta,
                                   atol=1e-6)
    measured, fused = measured_beside(path, lambda m: m.gpt_neox.layers[0].attention.query_key_value,
                                      lambda args, out: out.reshape(-1, 96))
    for part, own in zip(parts, rows):
        values = fused[:, own]
        strength = measured[part.dst].strength
        np.testing.assert_allclose(strength.per_node()[0], values.mean(0).numpy(), atol=1e-5)
        np.testing.assert_allclose(strength.per_node()[1], values.std(0, unbiased=False).numpy(), atol=1e-5)


def test_bloom_qkv_indexed_head_by_head_and_attention_over_batch_times_heads(tmp_path):
    """Bloom views its fused qkv as (heads, 3, head_dim) and selects q, k and v from it, then
    computes attention with batch and heads folded into one dimension (and ALiBi's bias added
    to q @ k^T). v's 8 rows of every head's 24 feed o, o feeds W_O: one residual stream. The
    data pass reads o from the (batch * heads, positions, head_dim) product, node for node as
    W_O reads it."""
    import transformers

    transformers.set_seed(0)
    transformers.BloomModel(transformers.BloomConfig(hidden_size=32, n_layer=1, n_head=4, vocab_size=64)) \
        .save_pretrained(tmp_path)
    network = load_network(tmp_path)
    topology = network.topology
    layers = {w.name: w for w in topology.weight_layers}
    parts = [layers[f"h.0.self_attention.query_key_value[{i}]"] for i in range(3)]
    assert [(w.rows, w.row_period) for w in parts] == [((0, 8), 24), ((8, 16), 24), ((16, 24), 24)]
    v_to_o = layers["h.0.self_attention (v -> o)"]
    assert v_to_o.src == parts[2].dst and layers["h.0.self_attention.dense"].src == v_to_o.dst
    assert reachable(topology, 0) == set(range(len(topology.node_layers)))
    assert [layer.kind for layer in topology.node_layers].count("cut") == 0
    measured, o = measured_beside(tmp_path, lambda m: m.h[0].self_attention.dense,
                                  lambda args, out: args[0].reshape(-1, 32))
    strength = measured[v_to_o.dst].strength
    np.testing.assert_allclose(strength.per_node()[0], o.mean(0).numpy(), atol=1e-5)
    np.testing.assert_allclose(strength.per_node()[1], o.std(0, unbiased=False).numpy(), atol=1e-5)


def test_phi3_qkv_sliced_from_its_fused_output(tmp_path):
    """Phi-3 (and Phi-4) slices q, k and v from its fused qkv's output, and chunks its fused
    gate_up: each slice reads its run of rows (4 query heads, 2 shared k and v heads), v feeds
    o, and the gated MLP's two halves enter one hidden layer. One residual stream, no cut."""
    import transformers

    transformers.set_seed(0)
    transformers.Phi3Model(transformers.Phi3Config(
        hidden_size=32, num_hidden_layers=1, num_attention_heads=4, num_key_value_heads=2, intermediate_size=48,
        vocab_size=64, max_position_embeddings=32, pad_token_id=0, bos_token_id=1, eos_token_id=2)) \
        .save_pretrained(tmp_path)
    network = load_network(tmp_path)
    topology = network.topology
    layers = {w.name: w for w in topology.weight_layers}
    parts = [layers[f"layers.0.self_attn.qkv_proj[{i}]"] for i in range(3)]
    assert [(w.rows, w.row_period) for w in parts] == [((0, 32), 0), ((32, 48), 0), ((48, 64), 0)]
    assert layers["layers.0.self_attn (v -> o)"].src == parts[2].dst
    assert layers["layers.0.mlp.gate_up_proj[0]"].dst == layers["layers.0.mlp.gate_up_proj[1]"].dst
    assert reachable(topology, 0) == set(range(len(topology.node_layers)))
    assert [layer.kind for layer in topology.node_layers].count("cut") == 0
    with safe_open(str(tmp_path / "model.safetensors"), "pt") as handle:
        w = handle.get_tensor("layers.0.self_attn.qkv_proj.weight").double()
        g = handle.get_tensor("layers.0.input_layernorm.weight").double()
    result = compute_metrics(network, persistence=False)
    np.testing.assert_allclose(result.node_layers[parts[2].dst].s_in, (w[48:] * g).sum(1), atol=1e-6)
    measured, fused = measured_beside(tmp_path, lambda m: m.layers[0].self_attn.qkv_proj,
                                      lambda args, out: out.reshape(-1, 64))
    for part, rows in zip(parts, (slice(0, 32), slice(32, 48), slice(48, 64))):
        np.testing.assert_allclose(measured[part.dst].strength.per_node()[0], fused[:, rows].mean(0).numpy(),
                                   atol=1e-5)


def test_gemma2_norms_fold_their_gains_stored_as_offsets_from_one(tmp_path):
    """Gemma's RMSNorm multiplies by 1 + w (w stored), in float32, and casts back with type_as.
    Gemma 2 normalises each layer's input and, before the residual addition, its output: the
    first gain folds into the links reading it, the second into W_O's links entering the
    residual stream. One residual stream, no cut; every norm listed as folded."""
    import transformers

    transformers.set_seed(0)
    model = transformers.Gemma2Model(transformers.Gemma2Config(
        hidden_size=32, num_hidden_layers=1, num_attention_heads=4, num_key_value_heads=2, head_dim=8,
        intermediate_size=48, vocab_size=64, max_position_embeddings=32))
    with torch.no_grad():  # its norms start at w = 0 (a gain of one): give them gains of their own
        for name, parameter in model.named_parameters():
            if "norm" in name:
                parameter.normal_(0, 0.5)
    model.save_pretrained(tmp_path)
    network = load_network(tmp_path)
    topology = network.topology
    assert reachable(topology, 0) == set(range(len(topology.node_layers)))
    assert [layer.kind for layer in topology.node_layers].count("cut") == 0
    norms = [s for s in topology.skipped if s.kind == "Gemma2RMSNorm"]
    assert len(norms) == 5 and all(s.reason == REASONS["standardise"] for s in norms)
    layers = {w.name: w for w in topology.weight_layers}
    q, o = layers["layers.0.self_attn.q_proj"], layers["layers.0.self_attn.o_proj"]
    assert next(w for w in topology.weight_layers if w.name == "layers.0 (residual)").dst == o.dst
    with safe_open(str(tmp_path / "model.safetensors"), "pt") as handle:
        read = lambda key: handle.get_tensor(key).double()  # noqa: E731
        w_q, w_o = read("layers.0.self_attn.q_proj.weight"), read("layers.0.self_attn.o_proj.weight")
        g_in, g_post = read("layers.0.input_layernorm.weight"), read("layers.0.post_attention_layernorm.weight")
    result = compute_metrics(network, persistence=False)
    np.testing.assert_allclose(result.node_layers[q.dst].s_in, (w_q * (1 + g_in)).sum(1), atol=1e-6)
    np.testing.assert_allclose(result.node_layers[o.dst].s_in, ((1 + g_post)[:, None] * w_o).sum(1) + 1, atol=1e-6)
    # NS of the residual stream after attention: what Gemma 2's pre-feedforward norm reads
    measured, stream = measured_beside(tmp_path, lambda m: m.layers[0].pre_feedforward_layernorm,
                                       lambda args, out: args[0].reshape(-1, 32))
    np.testing.assert_allclose(measured[o.dst].strength.per_node()[0], stream.mean(0).numpy(), atol=1e-5)


def test_granite_multipliers_scale_the_input_and_fold_into_the_links_entering_the_stream(tmp_path):
    """Granite multiplies the embeddings by a number (the input is their product) and each
    block's attention and MLP outputs by another before the residual addition: that number
    folds into W_O's and W_down's links. The graph computes what the model computes."""
    import transformers

    transformers.set_seed(0)
    transformers.GraniteModel(transformers.GraniteConfig(
        hidden_size=32, num_hidden_layers=1, num_attention_heads=4, num_key_value_heads=2, intermediate_size=48,
        vocab_size=64, max_position_embeddings=32, embedding_multiplier=3.0,
        residual_multiplier=0.25)).save_pretrained(tmp_path)
    network = load_network(tmp_path)
    topology = network.topology
    assert topology.node_layers[0].name == "embed_tokens" and topology.node_layers[0].kind == "input"
    assert reachable(topology, 0) == set(range(len(topology.node_layers)))
    layers = {w.name: w for w in topology.weight_layers}
    o, down = layers["layers.0.self_attn.o_proj"], layers["layers.0.mlp.down_proj"]
    with safe_open(str(tmp_path / "model.safetensors"), "pt") as handle:
        w_o, w_down = (handle.get_tensor(f"layers.0.{k}.weight").double() for k in ("self_attn.o_proj", "mlp.down_proj"))
        g_out = handle.get_tensor("norm.weight").double()
    result = compute_metrics(network, persistence=False)
    np.testing.assert_allclose(result.node_layers[o.dst].s_in, (0.25 * w_o).sum(1) + 1, atol=1e-6)
    np.testing.assert_allclose(result.node_layers[down.dst].s_in, g_out * ((0.25 * w_down).sum(1) + 1), atol=1e-6)
    # NS of the residual stream after attention: what the block's second norm reads
    measured, stream = measured_beside(tmp_path, lambda m: m.layers[0].post_attention_layernorm,
                                       lambda args, out: args[0].reshape(-1, 32))
    np.testing.assert_allclose(measured[o.dst].strength.per_node()[0], stream.mean(0).numpy(), atol=1e-5)


def test_phi_partial_rotary_leaves_one_residual_stream(real_models):
    """Rotary embeddings of half of q and k make pieces of identity links between cut layers with
    no learned link: they are listed and left out, and the residual stream is one piece. Their
    slices, products and concatenation lead only to the attention pattern, and are listed as that,
    once for each attention module."""
    path, _ = real_models["phi"]
    topology = load_network(path).topology
    assert [layer.kind for layer in topology.node_layers].count("cut") == 0
    assert reachable(topology, 0) == set(range(len(topology.node_layers)))
    attention = {(s.name, s.kind) for s in topology.skipped if s.reason == REASONS["attention_only"]}
    assert attention == {(f"model.layers.{i}.self_attn{piece}", kind) for i in range(2)
                         for piece, kind in (("", "PhiAttention"), (" (residual)", "identity"))}
    assert all(s.reason != REASONS["attention_only"] for s in topology.skipped if s.kind == "LayerNorm")


def test_vit_reads_its_stored_names_and_its_image_size_from_the_config(real_models):
    """transformers 5 names ViT's modules `layers.0.attention.q_proj` and stores them as
    `encoder.layer.0.attention.attention.query`: the stored tensor is bound, as transformers
    binds it. No --input-shape: the config's 1x8x8 images, cut into 4x4 patches."""
    path, _ = real_models["vit"]
    done = CliRunner().invoke(cli, ["metrics", str(path), "--format", "json", "--no-persistence"])
    assert done.exit_code == 0, done.output
    network = load_network(path)
    first = network.topology.weight_layers[0]
    assert first.kind == "conv2d" and first.in_shape == (1, 4, 4)  # the conv over one patch
    assert network.topology.node_layers[first.src].shape == (1, 4, 4)
    q = next(w for w in network.topology.weight_layers if w.name.endswith("q_proj") or w.name.endswith("query"))
    with safe_open(str(path / "model.safetensors"), "pt") as handle:
        read = lambda key: handle.get_tensor(key).double()  # noqa: E731
        w, b = (read(f"encoder.layer.0.attention.attention.query.{k}") for k in ("weight", "bias"))
        g, beta = (read(f"encoder.layer.0.layernorm_before.{k}") for k in ("weight", "bias"))
    result = compute_metrics(network, persistence=False)
    np.testing.assert_allclose(result.node_layers[q.dst].s_in, (w * g).sum(1) + b + w @ beta, rtol=1e-5, atol=1e-6)


def test_vit_patches_are_samples_and_the_model_is_one_graph(real_models):
    """A ViT's patch convolution (kernel = stride) read as tokens is a Linear over one patch: the
    input layer is a 4x4 patch, the embedding layer the 32 channels of a token, and the patches
    are samples, as token positions are. The class token and the position embeddings add no
    links: the transformer's blocks read the patch embedding, one graph from the input on."""
    path, _ = real_models["vit"]
    network = load_network(path)
    topology = network.topology
    assert [layer.kind for layer in topology.node_layers].count("cut") == 0
    assert reachable(topology, 0) == set(range(len(topology.node_layers)))
    patches = topology.weight_layers[0]
    assert topology.node_layers[patches.dst].shape == (32,)
    assert {w.name for w in topology.weight_layers if w.src == patches.dst} >= {
        "layers.0.attention.q_proj", "layers.0.attention.k_proj", "layers.0.attention.v_proj", "layers.0 (residual)"}
    with safe_open(str(path / "model.safetensors"), "pt") as handle:
        w, b = (handle.get_tensor(f"embeddings.patch_embeddings.projection.{k}").double() for k in ("weight", "bias"))
    result = compute_metrics(network, persistence=False)
    np.testing.assert_allclose(result.node_layers[patches.dst].s_in, w.sum((1, 2, 3)) + b, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(result.node_layers[patches.src].s_out, w.sum(0).reshape(-1), rtol=1e-6, atol=1e-6)
    _, measured, out = measured_on_images(path, (1, 8, 8), lambda m: m.embeddings.patch_embeddings.projection)
    per_token = out.flatten(2).transpose(1, 2).reshape(-1, 32).double()  # 6 images x 4 patches
    np.testing.assert_allclose(measured[patches.dst].strength.per_node()[0], per_token.mean(0).numpy(), atol=1e-5)


def test_convnext_linear_layers_over_channels_are_1x1_convolutions_in_one_graph(tmp_path):
    """ConvNeXt's blocks apply their Linear layers to a feature map held with its channels last:
    1x1 convolutions, a node per channel and position, so the stem, the blocks, the downsampling
    and the pooled output are one graph. The data pass reads the maps in that order of nodes."""
    import transformers

    transformers.set_seed(0)
    transformers.ConvNextModel(transformers.ConvNextConfig(
        num_channels=1, image_size=16, patch_size=4, hidden_sizes=[8, 16], depths=[1, 1],
        num_stages=2)).save_pretrained(tmp_path)
    network = load_network(tmp_path)
    topology = network.topology
    assert topology.node_layers[0].shape == (1, 16, 16)
    assert reachable(topology, 0) == set(range(len(topology.node_layers)))
    assert all(len(layer.shape) == 3 for layer in topology.node_layers)  # every layer a feature map
    up = next(w for w in topology.weight_layers if w.name == "encoder.stages.0.layers.0.pwconv1")
    assert up.kind == "conv2d" and topology.node_layers[up.dst].shape == (32, 4, 4)
    with safe_open(str(tmp_path / "model.safetensors"), "pt") as handle:
        w, b = (handle.get_tensor(f"encoder.stages.0.layers.0.pwconv1.{k}").double() for k in ("weight", "bias"))
    result = compute_metrics(network, persistence=False)
    np.testing.assert_allclose(result.node_layers[up.dst].s_in, np.repeat((w.sum(1) + b).numpy(), 16), atol=1e-6)
    module = load_runnable(tmp_path)
    images = torch.randn(6, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    measured = data_metrics(module, images, batch_size=6).by_index
    block, captured = module.encoder.stages[0].layers[0], {}
    hooks = [getattr(block, name).register_forward_hook(lambda m, args, out, name=name: captured.update({name: out}))
             for name in ("layernorm", "pwconv1")]  # the depthwise conv's nodes, normalised; pwconv1's
    with torch.no_grad():
        module(images)
    for hook in hooks:
        hook.remove()
    for name, layer in (("layernorm", up.src), ("pwconv1", up.dst)):
        channels_first = captured[name].permute(0, 3, 1, 2).reshape(6, -1).double()
        np.testing.assert_allclose(measured[layer].strength.per_node()[0], channels_first.mean(0).numpy(), atol=1e-5)


def test_mobilenet_v2_same_padding_by_hand_is_the_convolutions_padding(tmp_path):
    """MobileNetV2 pads each conv's input with zeros by hand, as TensorFlow's "same" padding, more
    after than before where its stride is 2: the conv pads by as much, so the model is one graph
    with no cut, and its strengths and data metrics are the conv's own."""
    import transformers

    transformers.set_seed(0)
    transformers.MobileNetV2Model(transformers.MobileNetV2Config(
        num_channels=1, image_size=16, depth_multiplier=0.35)).save_pretrained(tmp_path)
    network = load_network(tmp_path)
    topology = network.topology
    assert [layer.kind for layer in topology.node_layers].count("cut") == 0 and not any(
        s.kind == "pad" or "pad" in s.reason for s in topology.skipped)
    assert reachable(topology, 0) == set(range(len(topology.node_layers)))
    stem = topology.weight_layers[0]
    assert stem.name == "conv_stem.first_conv.convolution" and stem.pads == ((0, 1), (0, 1))
    assert topology.node_layers[stem.src].shape == (1, 16, 16) and topology.node_layers[stem.dst].shape[1:] == (8, 8)
    module, measured, out = measured_on_images(tmp_path, (1, 16, 16), lambda m: m.conv_stem.first_conv.normalization)
    assert not module.training  # BatchNorm with its running statistics, for the user's own passes too
    np.testing.assert_allclose(measured[stem.dst].strength.per_node()[0], out.reshape(6, -1).double().mean(0).numpy(),
                               atol=1e-5)


def test_a_checkpoint_that_transformers_converts_on_loading_is_refused(tmp_path):
    """Mixtral's experts are stored one by one and merged by transformers when it loads them:
    not a rename, so nngraph, which reads tensors as stored, refuses in one line."""
    import transformers

    pytest.importorskip("transformers.conversion_mapping", reason="transformers before 5 converts no checkpoints")
    transformers.set_seed(0)
    transformers.MixtralModel(transformers.MixtralConfig(
        hidden_size=32, num_hidden_layers=1, num_attention_heads=4, num_key_value_heads=2, intermediate_size=48,
        vocab_size=64, num_local_experts=2, num_experts_per_tok=1, max_position_embeddings=32)).save_pretrained(tmp_path)
    done = CliRunner().invoke(cli, ["metrics", str(tmp_path)])
    assert done.exit_code == 1
    assert done.output.strip().count("\n") == 0 and "transformers converts this stored tensor" in done.output


def test_an_encoder_decoder_model_is_refused_in_one_line(tmp_path):
    import transformers

    transformers.set_seed(0)
    transformers.T5Model(transformers.T5Config(vocab_size=64, d_model=32, d_kv=8, d_ff=48, num_layers=1,
                                               num_heads=4)).save_pretrained(tmp_path)
    done = CliRunner().invoke(cli, ["metrics", str(tmp_path)])
    assert done.exit_code == 1 and done.output.strip().count("\n") == 0
    assert "T5Model is an encoder-decoder model" in done.output and "get_encoder()" in done.output


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
    if name in ("minilm", "gpt2", "bert", "llama", "falcon", "phi", "gpt_neox"):
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

"""METRICS.md section 9, rule by rule: for each, the explicit edge list of a small network built
by hand from its parameters, against the vectorised strengths and the links nngraph stores."""

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from graph_check import as_numpy, stored_edges, strengths_from_edges
from nngraph.errors import NNGraphError
from nngraph.ingest import compute_metrics, load_network, network_from_module
from nngraph.ingest.fx_nodes import REASONS


def dense(weight, src, dst, offset=0):
    """Edges of a Linear weight (out, in): input i -> output j with W[j, i]."""
    w = weight.detach().double().numpy()
    return [(src, i, dst, j + offset, w[j, i]) for j in range(w.shape[0]) for i in range(w.shape[1])]


def identity(src, dst, size, weights=None, offset=0):
    weights = np.ones(size) if weights is None else weights
    return [(src, i, dst, i + offset, weights[i]) for i in range(size)]


def check(module, edges, biases, input_shape=None, **options):
    """The module's graph has exactly these edges (as a multiset, weights to 1e-9) and strengths."""
    network = network_from_module(module.double(), input_shape, **options)
    sizes = [layer.nodes for layer in network.topology.node_layers]
    expected = strengths_from_edges(sizes, edges, biases)
    result = compute_metrics(network)
    for layer, strength in zip(result.node_layers, expected):
        np.testing.assert_allclose(layer.strength, strength, rtol=1e-9, atol=1e-12, err_msg=layer.layer.name)
    key = lambda e: e[:4]  # noqa: E731
    got, want = sorted(stored_edges(network), key=key), sorted(edges, key=key)
    assert [e[:4] for e in got] == [e[:4] for e in want]
    np.testing.assert_allclose([e[4] for e in got], [e[4] for e in want], rtol=1e-9, atol=1e-12)
    return result


def seeded(module, seed=0):
    torch.manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.copy_(torch.randn_like(parameter))
    return module.double().eval()


class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b, self.c = nn.Linear(3, 4), nn.Linear(4, 3), nn.Linear(3, 2)

    def forward(self, x):
        return self.c(self.b(torch.relu(self.a(x))) + x)


def test_a_residual_addition_gives_identity_links_into_the_fresh_layer():
    m = seeded(Residual())
    edges = dense(m.a.weight, 0, 1) + dense(m.b.weight, 1, 2) + identity(0, 2, 3) + dense(m.c.weight, 2, 3)
    result = check(m, edges, {1: as_numpy(m.a.bias), 2: as_numpy(m.b.bias), 3: as_numpy(m.c.bias)})
    assert [w.layer.kind for w in result.weight_layers] == ["linear", "linear", "identity", "linear"]


def batch_norm_model():
    m = seeded(nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 2)))
    with torch.no_grad():
        m[1].running_mean.copy_(torch.tensor([0.5, -1.0, 2.0, 0.0]))
        m[1].running_var.copy_(torch.tensor([1.0, 4.0, 0.25, 2.0]))
    return m


def test_batch_norm_folds_into_the_layer_before_it_or_passes_through():
    m = batch_norm_model().double()
    bn = m[1]
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    folded_w = m[0].weight * scale[:, None]
    folded_b = (m[0].bias - bn.running_mean) * scale + bn.bias
    result = check(m, dense(folded_w, 0, 1) + dense(m[2 + 1].weight, 1, 2),
                   {1: as_numpy(folded_b), 2: as_numpy(m[3].bias)})
    assert [(s.name, s.kind) for s in result.skipped] == [("1", "BatchNorm1d")]
    kept = check(batch_norm_model(), dense(m[0].weight, 0, 1) + dense(m[3].weight, 1, 2),
                 {1: as_numpy(m[0].bias), 2: as_numpy(m[3].bias)}, batchnorm="pass-through")
    assert "pass-through" in kept.skipped[0].reason


class TokensBatchNorm(nn.Module):
    """LeViT's Linear with BatchNorm: the norm over every token of the batch, its output shaped
    back with `reshape_as` (the second value gives only its shape)."""

    def __init__(self):
        super().__init__()
        self.a, self.bn, self.b = nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2)

    def forward(self, x):
        h = self.a(x)
        return self.b(torch.relu(self.bn(h.flatten(0, 1)).reshape_as(h)))


def test_batch_norm_over_tokens_shaped_back_folds_into_the_layer_before_it():
    m = seeded(TokensBatchNorm())
    with torch.no_grad():
        m.bn.running_mean.copy_(torch.tensor([0.5, -1.0, 2.0, 0.0]))
        m.bn.running_var.copy_(torch.tensor([1.0, 4.0, 0.25, 2.0]))
    scale = m.bn.weight / torch.sqrt(m.bn.running_var + m.bn.eps)
    edges = dense(m.a.weight * scale[:, None], 0, 1) + dense(m.b.weight, 1, 2)
    result = check(m, edges, {1: as_numpy((m.a.bias - m.bn.running_mean) * scale + m.bn.bias),
                              2: as_numpy(m.b.bias)}, input_shape=(5, 3))
    assert [(s.name, s.reason) for s in result.skipped] == [("bn", REASONS["batch_norm"])]


@pytest.mark.parametrize("pool", [nn.AvgPool2d(2), nn.AdaptiveAvgPool2d(1)], ids=["avg", "global"])
def test_average_pooling_is_a_fixed_kernel(pool):
    m = seeded(nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), pool, nn.Flatten(),
                             nn.Linear(8 if isinstance(pool, nn.AvgPool2d) else 2, 3)))
    kernel = m[0].weight.detach().double().numpy()
    edges = []
    for c in range(2):  # conv 1x4x4 -> 2x4x4, padding 1: padding positions are not nodes
        for y in range(4):
            for x in range(4):
                for ky in range(3):
                    for kx in range(3):
                        iy, ix = y + ky - 1, x + kx - 1
                        if 0 <= iy < 4 and 0 <= ix < 4:
                            edges.append((0, iy * 4 + ix, 1, c * 16 + y * 4 + x, kernel[c, 0, ky, kx]))
    window = 2 if isinstance(pool, nn.AvgPool2d) else 4
    side = 4 // window
    for c in range(2):
        for y in range(4):
            for x in range(4):
                target = c * side * side + (y // window) * side + x // window
                edges.append((1, c * 16 + y * 4 + x, 2, target, 1.0 / window ** 2))
    edges += dense(m[3].weight, 2, 3)
    conv_bias = np.repeat(as_numpy(m[0].bias), 16)
    result = check(m, edges, {1: conv_bias, 3: as_numpy(m[3].bias)}, input_shape=(1, 4, 4))
    assert result.weight_layers[1].layer.kind == "avgpool2d"
    assert not result.skipped


def conv_edges(kernel, src, dst, in_size, out_size, stride, before, groups=1):
    """Edges of a 2-D conv on square maps, padded by `before` above and left (and as the output
    size needs after): padding positions are not nodes."""
    edges = []
    c_out, c_in_group, k = kernel.shape[0], kernel.shape[1], kernel.shape[2]
    for o in range(c_out):
        for i in range(c_in_group):
            c = (o // (c_out // groups)) * c_in_group + i
            for y in range(out_size):
                for x in range(out_size):
                    for ky in range(k):
                        for kx in range(k):
                            iy, ix = y * stride + ky - before, x * stride + kx - before
                            if 0 <= iy < in_size and 0 <= ix < in_size:
                                edges.append((src, (c * in_size + iy) * in_size + ix, dst,
                                              (o * out_size + y) * out_size + x, kernel[o, i, ky, kx]))
    return edges


class SamePadding(nn.Module):
    """TensorFlow's "same" padding applied by hand, as MobileNet and EfficientNet do: more zeros
    after than before for a stride of 2, on the input image and on a map."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Conv2d(1, 2, 3, stride=2), nn.Conv2d(2, 2, 3, stride=2, groups=2)

    def forward(self, x):
        return self.b(F.pad(torch.relu(self.a(F.pad(x, (0, 1, 0, 1)))), (1, 1, 1, 1)))


def test_zeros_padded_by_hand_are_the_convolutions_padding():
    """No node for a padding position, no cut: the conv reading the zeros pads by as much."""
    m = seeded(SamePadding())
    kernel = lambda conv: conv.weight.detach().double().numpy()  # noqa: E731
    edges = conv_edges(kernel(m.a), 0, 1, 6, 3, 2, 0) + conv_edges(kernel(m.b), 1, 2, 3, 2, 2, 1, groups=2)
    result = check(m, edges, {1: np.repeat(as_numpy(m.a.bias), 9), 2: np.repeat(as_numpy(m.b.bias), 4)},
                   input_shape=(1, 6, 6))
    assert [layer.layer.shape for layer in result.node_layers] == [(1, 6, 6), (2, 3, 3), (2, 2, 2)]
    assert [w.layer.pads for w in result.weight_layers] == [((0, 1), (0, 1)), ((1, 1), (1, 1))]
    assert not result.skipped


class PreNorm(nn.Module):
    def __init__(self):
        super().__init__()
        self.norm, self.a, self.b = nn.LayerNorm(4), nn.Linear(4, 4), nn.Linear(4, 2)

    def forward(self, x):
        return self.b(self.a(self.norm(x)) + x)


class PostNorm(PreNorm):
    def forward(self, x):
        return self.b(self.norm(self.a(x) + x))


def test_a_pre_norm_gain_folds_into_the_links_that_read_it():
    m = seeded(PreNorm()).double()
    g, beta = m.norm.weight, m.norm.bias
    edges = dense(m.a.weight * g[None, :], 0, 1) + identity(0, 1, 4) + dense(m.b.weight, 1, 2)
    result = check(m, edges, {1: as_numpy(m.a.bias + m.a.weight @ beta), 2: as_numpy(m.b.bias)})
    assert "standardisation" in result.skipped[0].reason


def test_a_post_norm_gain_folds_into_the_links_entering_it():
    m = seeded(PostNorm()).double()
    g, beta = m.norm.weight, m.norm.bias
    edges = dense(g[:, None] * m.a.weight, 0, 1) + identity(0, 1, 4, as_numpy(g)) + dense(m.b.weight, 1, 2)
    check(m, edges, {1: as_numpy(g * m.a.bias + beta), 2: as_numpy(m.b.bias)})


class ThroughActivation(nn.Module):
    """Maps an activation stands between: a pre-norm gain read through ReLU, BatchNorm after
    ReLU, a LayerNorm after GELU (BERT's prediction head), a number scaling what tanh reads
    (Gemma 2's softcapping)."""

    def __init__(self, case):
        super().__init__()
        self.case = case
        self.a, self.b = nn.Linear(4, 4), nn.Linear(4, 2)
        self.norm = nn.BatchNorm1d(4) if case == "batch_norm" else nn.LayerNorm(4)

    def forward(self, x):
        if self.case == "pre_norm":
            return self.b(x + self.a(torch.relu(self.norm(x))))
        if self.case == "batch_norm":
            return self.b(self.norm(torch.relu(self.a(x))))
        if self.case == "number":
            return self.b(torch.tanh(self.a(x) / 4))
        return self.b(self.norm(F.gelu(self.a(x))))


@pytest.mark.parametrize("case", ["pre_norm", "batch_norm", "post_norm", "number"])
def test_a_map_an_activation_stands_between_never_folds_across_it(case):
    """act(g * x) is not g * act(x): a pre-norm gain read through an activation is left out and
    listed; BatchNorm or a LayerNorm after an activation folds into the links that read it
    (W diag(s), b + W t), never into the links before the activation; a number what an
    activation reads is scaled by belongs to the activation."""
    m = seeded(ThroughActivation(case))
    scale, shift = m.norm.weight, m.norm.bias
    if case == "batch_norm":
        with torch.no_grad():
            m.norm.running_mean.copy_(torch.tensor([0.5, -1.0, 2.0, 0.0]))
            m.norm.running_var.copy_(torch.tensor([1.0, 4.0, 0.25, 2.0]))
        scale = m.norm.weight / torch.sqrt(m.norm.running_var + m.norm.eps)
        shift = m.norm.bias - m.norm.running_mean * scale
    b_weight, b_bias = (m.b.weight * scale[None, :], m.b.bias + m.b.weight @ shift) \
        if case in ("batch_norm", "post_norm") else (m.b.weight, m.b.bias)
    edges = dense(m.a.weight, 0, 1) + dense(b_weight, 1, 2) + (identity(0, 1, 4) if case == "pre_norm" else [])
    result = check(m, edges, {1: as_numpy(m.a.bias), 2: as_numpy(b_bias)})
    reasons = {"pre_norm": [REASONS["standardise"], REASONS["gain_activated"]],
               "batch_norm": [REASONS["batch_norm_read"]], "post_norm": [REASONS["standardise"]], "number": []}
    assert [s.reason for s in result.skipped] == reasons[case]
    assert {s.name for s in result.skipped} <= {"norm"}


def test_batch_norm_after_an_activation_on_a_map_folds_per_channel_into_the_linear_reading_it():
    """Conv, ReLU, BatchNorm, then a Linear layer over the flattened map: each channel's scale and
    shift act on every position the Linear reads."""
    m = seeded(nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.BatchNorm2d(2), nn.Flatten(),
                             nn.Linear(32, 3)))
    norm, linear = m[2], m[4]
    with torch.no_grad():
        norm.running_mean.copy_(torch.tensor([0.5, -1.0]))
        norm.running_var.copy_(torch.tensor([4.0, 0.25]))
    scale = (norm.weight / torch.sqrt(norm.running_var + norm.eps)).repeat_interleave(16)
    shift = norm.bias.repeat_interleave(16) - norm.running_mean.repeat_interleave(16) * scale
    edges = conv_edges(m[0].weight.detach().double().numpy(), 0, 1, 4, 4, 1, 1) \
        + dense(linear.weight * scale[None, :], 1, 2)
    biases = {1: np.repeat(as_numpy(m[0].bias), 16), 2: as_numpy(linear.bias + linear.weight @ shift)}
    result = check(m, edges, biases, input_shape=(1, 4, 4))
    assert [(s.name, s.reason) for s in result.skipped] == [("2", REASONS["batch_norm_read"])]


class NormIntoConv(nn.Module):
    """A GroupNorm read by a conv and, beside it, by the residual addition."""

    def __init__(self):
        super().__init__()
        self.stem, self.norm, self.conv = nn.Conv2d(1, 2, 1), nn.GroupNorm(1, 2), nn.Conv2d(2, 2, 3, padding=1)

    def forward(self, x):
        h = self.stem(x)
        return h + self.conv(self.norm(h))


def test_a_norm_gain_a_convolution_reads_is_listed_as_left_out():
    network = network_from_module(seeded(NormIntoConv()), (1, 4, 4))
    conv = next(w for w in network.topology.weight_layers if w.name == "conv")
    assert conv.in_affines == () and not any(w.in_affines or w.out_affines for w in network.topology.weight_layers)
    assert [(s.name, s.reason) for s in network.topology.skipped] == [("norm", REASONS["standardise"]),
                                                                     ("norm", REASONS["gain_map"])]


class Block(nn.Module):
    """A pre-norm transformer block: one head, attention by scaled_dot_product_attention; its
    fused qkv split (GPT-2) or sliced (Phi-3); q scaled by a number (BART's and XGLM's
    `q_proj(x) * scaling`), which sets only the pattern's temperature: W_Q's links keep it out."""

    def __init__(self, layout="split", d=4, hidden=6):
        super().__init__()
        self.layout, self.d = layout, d
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.o, self.up, self.down = nn.Linear(d, d), nn.Linear(d, hidden), nn.Linear(hidden, d)

    def forward(self, x):
        fused, d = self.qkv(self.ln1(x)), self.d
        if self.layout == "split":
            q, k, v = fused.split(d, dim=-1)
        else:
            q, k, v = fused[..., :d], fused[..., d:2 * d], fused[..., 2 * d:]
        a = F.scaled_dot_product_attention(q[:, None] * d ** -0.5, k[:, None], v[:, None], scale=1.0)[:, 0]
        m = x + self.o(a)
        return m + self.down(torch.relu(self.up(self.ln2(m))))


@pytest.mark.parametrize("layout", ["split", "slice"])
def test_the_residual_stream_graph_of_a_transformer_block(layout):
    m = seeded(Block(layout)).double()
    g1, b1, g2, b2 = m.ln1.weight, m.ln1.bias, m.ln2.weight, m.ln2.bias
    W, bias = m.qkv.weight, m.qkv.bias
    # node layers in forward order: r 0, q 1, k 2, v 3, o 4, m 5, u 6, next r 7
    edges, biases = [], {}
    for part, layer in enumerate((1, 2, 3)):  # the fused qkv split, ln1's gain folded into what reads it
        rows = slice(4 * part, 4 * part + 4)
        edges += dense(W[rows] * g1[None, :], 0, layer)
        biases[layer] = as_numpy(bias[rows] + W[rows] @ b1)
    edges += identity(3, 4, 4)  # v -> o
    edges += dense(m.o.weight, 4, 5) + identity(0, 5, 4)  # o -> m with W_O, r -> m
    edges += dense(m.up.weight * g2[None, :], 5, 6) + dense(m.down.weight, 6, 7) + identity(5, 7, 4)
    biases.update({5: as_numpy(m.o.bias), 6: as_numpy(m.up.bias + m.up.weight @ b2), 7: as_numpy(m.down.bias)})
    result = check(m, edges, biases, input_shape=(3, 4))
    assert [layer.layer.kind for layer in result.node_layers] == ["input", "linear", "linear", "linear",
                                                                  "attention", "linear", "linear", "linear"]
    assert [w.layer.rows for w in result.weight_layers[:3]] == [(0, 4), (4, 8), (8, 12)]


class OffsetNorm(nn.Module):
    """RMSNorm as Gemma writes it: the gain stored as its offset from one, applied in float32."""

    def __init__(self, d):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(d))

    def forward(self, x):
        y = x.float() * torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + 1e-6)
        return (y * (1.0 + self.weight.float())).type_as(x)


class Sandwich(nn.Module):
    """Gemma 2's block: a norm before the layer and another on its output, before the residual."""

    def __init__(self):
        super().__init__()
        self.pre, self.post, self.a, self.b = OffsetNorm(4), OffsetNorm(4), nn.Linear(4, 4), nn.Linear(4, 2)

    def forward(self, x):
        return self.b(x + self.post(self.a(self.pre(x))))


@pytest.mark.parametrize("input_shape", [None, (3, 4)])  # (batch, features); (batch, tokens, features)
def test_a_gain_stored_as_its_offset_from_one_folds_as_one_plus_it(input_shape):
    """The norm before `a` folds into the links that read it, the norm on a's output (which
    nothing else reads: its own statistics are computed from it) into the links entering it."""
    m = seeded(Sandwich())
    pre, post = 1 + m.pre.weight, 1 + m.post.weight
    edges = dense(post[:, None] * m.a.weight * pre[None, :], 0, 1) + identity(0, 1, 4) + dense(m.b.weight, 1, 2)
    result = check(m, edges, {1: as_numpy(post * m.a.bias), 2: as_numpy(m.b.bias)}, input_shape)
    assert {s.name: s.reason for s in result.skipped} == {"pre": REASONS["standardise"], "post": REASONS["standardise"]}


class Scaled(nn.Module):
    """Numbers in the forward pass: the input divided (pixels / 255), GELU's tanh form (its
    0.5 * h belongs to the activation), a residual branch scaled before the addition (Granite)."""

    def __init__(self):
        super().__init__()
        self.a, self.b, self.c = nn.Linear(3, 4), nn.Linear(4, 3), nn.Linear(3, 2)

    def forward(self, x):
        x = x / 4
        h = self.a(x)
        return self.c(x + self.b(0.5 * h * (1 + torch.tanh(h))) * 0.25)


def test_a_branch_scaled_by_a_number_folds_it_into_the_links_entering_it():
    m = seeded(Scaled())
    edges = dense(m.a.weight, 0, 1) + dense(0.25 * m.b.weight, 1, 2) + identity(0, 2, 3) + dense(m.c.weight, 2, 3)
    result = check(m, edges, {1: as_numpy(m.a.bias), 2: as_numpy(0.25 * m.b.bias), 3: as_numpy(m.c.bias)})
    assert [layer.layer.kind for layer in result.node_layers] == ["input", "linear", "linear", "linear"]
    assert result.node_layers[0].layer.name == "input" and not result.skipped


class ReZero(nn.Module):
    """A residual branch scaled by a learned number (ReZero, a LayerScale of one value)."""

    def __init__(self):
        super().__init__()
        self.a, self.b, self.alpha = nn.Linear(3, 3), nn.Linear(3, 2), nn.Parameter(torch.tensor(0.3))

    def forward(self, x):
        return self.b(x + self.alpha * self.a(x))


def test_a_branch_scaled_by_a_learned_number_folds_it_into_the_links_entering_it():
    m = seeded(ReZero())
    alpha = m.alpha.detach()
    edges = dense(alpha * m.a.weight, 0, 1) + identity(0, 1, 3) + dense(m.b.weight, 1, 2)
    result = check(m, edges, {1: as_numpy(alpha * m.a.bias), 2: as_numpy(m.b.bias)})
    assert not result.skipped


class Pointwise(nn.Module):
    """ConvNeXt's block: a depthwise conv; the channels last for a LayerNorm and two Linear
    layers; a per-channel layer scale; the channels first again for the residual addition,
    then a norm of the sum over its channels (ConvNeXt's downsampling norm) before a conv."""

    def __init__(self, c=2, hidden=3):
        super().__init__()
        self.dw, self.norm = nn.Conv2d(c, c, 3, padding=1, groups=c), nn.LayerNorm(c)
        self.up, self.down, self.gamma = nn.Linear(c, hidden), nn.Linear(hidden, c), nn.Parameter(torch.ones(c))
        self.out_norm, self.out = nn.LayerNorm(c), nn.Conv2d(c, 1, 1)

    def forward(self, x):
        y = self.gamma * self.down(torch.relu(self.up(self.norm(self.dw(x).permute(0, 2, 3, 1)))))
        s = x + y.permute(0, 3, 1, 2)
        return self.out(self.out_norm(s.permute(0, 2, 3, 1)).permute(0, 3, 1, 2))


def test_linear_layers_over_the_channels_of_a_feature_map_are_1x1_convolutions():
    """A node per channel and position for every layer: the Linear layers link each position's
    channels, the norms' gains fold per channel into what enters them (a conv's rows, every
    position of the residual's identity links)."""
    m = seeded(Pointwise())
    positions = 9  # 3x3 maps: node (c, p) is c * 9 + p
    g, beta, g_out, beta_out = m.norm.weight, m.norm.bias, m.out_norm.weight, m.out_norm.bias
    kernel = (m.dw.weight * g[:, None, None, None]).detach().double().numpy()
    edges = []
    for c in range(2):
        for p in range(positions):
            y, x = divmod(p, 3)
            edges += [(0, c * 9 + iy * 3 + ix, 1, c * 9 + p, kernel[c, 0, iy - y + 1, ix - x + 1])
                      for iy in range(3) for ix in range(3) if abs(iy - y) <= 1 and abs(ix - x) <= 1]

    def per_position(weight, src, dst):
        w = weight.detach().double().numpy()
        return [(src, i * 9 + p, dst, j * 9 + p, w[j, i]) for j in range(w.shape[0]) for i in range(w.shape[1])
                for p in range(positions)]

    scale = g_out * m.gamma
    edges += per_position(m.up.weight, 1, 2) + per_position(scale[:, None] * m.down.weight, 2, 3)
    edges += identity(0, 3, 18, np.repeat(as_numpy(g_out), 9)) + per_position(m.out.weight[:, :, 0, 0], 3, 4)
    on_positions = lambda bias: np.repeat(as_numpy(bias), positions)  # noqa: E731
    biases = {1: on_positions(m.dw.bias * g + beta), 2: on_positions(m.up.bias),
              3: on_positions(scale * m.down.bias + beta_out), 4: on_positions(m.out.bias)}
    result = check(m, edges, biases, input_shape=(2, 3, 3))
    assert [layer.layer.shape for layer in result.node_layers] == [(2, 3, 3), (2, 3, 3), (3, 3, 3), (2, 3, 3),
                                                                   (1, 3, 3)]


class Overlapping(nn.Module):
    """A conv's feature map read as a sequence of its positions, its windows overlapping (CvT's
    convolutional embedding)."""

    def __init__(self):
        super().__init__()
        self.conv, self.fc = nn.Conv2d(1, 2, 3, stride=2, padding=1), nn.Linear(2, 3)

    def forward(self, x):
        return self.fc(self.conv(x).flatten(2).transpose(1, 2))


def test_a_feature_map_read_as_a_sequence_of_its_positions_is_cut_and_listed():
    """A node of the map is a channel at a position; a node of the sequence is a channel, its
    positions pooled: no link maps one onto the other. The cut is listed, never a second input."""
    topology = network_from_module(seeded(Overlapping()), (1, 4, 4)).topology
    assert [layer.kind for layer in topology.node_layers] == ["input", "conv2d", "cut", "linear"]
    assert [layer.nodes for layer in topology.node_layers] == [16, 8, 2, 3]
    assert [s.reason for s in topology.skipped] == [REASONS["regrouped"]]


class GridTokens(nn.Module):
    """torchvision's Swin: a feature map held channels last, read as a sequence of its positions
    by a Linear layer, the result added back to the map."""

    def __init__(self):
        super().__init__()
        self.conv, self.fc = nn.Conv2d(1, 2, 1), nn.Linear(2, 2)

    def forward(self, x):
        grid = self.conv(x).permute(0, 2, 3, 1)
        return grid + self.fc(grid.reshape(grid.shape[0], -1, 2)).reshape(grid.shape)


def test_a_residual_sum_reads_the_map_as_the_nodes_of_the_layer_it_becomes():
    """The sum becomes the Linear layer's 2 nodes, so the map is read as 2 nodes: cut there, as
    regrouped, its identity links 2, never the map's 8 into 2 nodes."""
    m = seeded(GridTokens())
    network = network_from_module(m, (1, 2, 2))
    topology = network.topology
    residual = next(w for w in topology.weight_layers if w.kind == "identity")
    assert residual.size == 2 and topology.node_layers[residual.src].kind == "cut"
    assert {s.reason for s in topology.skipped} == {REASONS["regrouped"]}
    result = compute_metrics(network)
    fc = next(w for w in topology.weight_layers if w.name == "fc")
    in_links = m.fc.weight.sum(1) + m.fc.bias + 1  # the Linear's row and bias, and the identity link's 1
    np.testing.assert_allclose(result.node_layers[fc.dst].s_in, as_numpy(in_links), rtol=1e-9)


class ConstantLike(nn.Module):
    """Zeros made from a value (as Swin builds its mask of shifted windows), one per sample,
    added to it."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(2, 3), nn.Linear(3, 1)

    def forward(self, x):
        h = self.a(x)
        return self.b(h + h.new_zeros(h.shape[0], 1))


def test_a_constant_made_in_a_values_shape_has_no_nodes():
    m = seeded(ConstantLike())
    result = check(m, dense(m.a.weight, 0, 1) + dense(m.b.weight, 1, 2),
                   {1: as_numpy(m.a.bias), 2: as_numpy(m.b.bias)}, input_shape=(2,))
    assert result.skipped == []


class Patches(nn.Module):
    """A ViT's embedding: non-overlapping 2x2 patches of a 2-channel image, read as tokens, a
    class token before them and position embeddings added, then a block's Linear layer and a
    residual sum."""

    def __init__(self):
        super().__init__()
        self.conv, self.fc = nn.Conv2d(2, 3, 2, stride=2), nn.Linear(3, 3)
        self.cls, self.positions = nn.Parameter(torch.zeros(1, 1, 3)), nn.Parameter(torch.zeros(1, 5, 3))

    def forward(self, x):
        tokens = self.conv(x).flatten(2).transpose(1, 2)
        tokens = torch.cat([self.cls.expand(x.shape[0], -1, -1), tokens], 1) + self.positions
        return self.fc(tokens) + tokens


def test_a_patch_convolution_read_as_tokens_is_a_linear_layer_over_one_patch():
    """Kernel = stride over the image, read as `flatten(2).transpose(1, 2)`: the input layer is
    one patch (C, 2, 2), each of its 8 pixels linked to each of the 3 channels by the kernel, and
    the patches are samples, as token positions are. The class token and the position embeddings
    add no links (listed); the block reads the patch embedding."""
    m = seeded(Patches())
    kernel = m.conv.weight.detach().double().numpy().reshape(3, 8)
    edges = [(0, i, 1, j, kernel[j, i]) for j in range(3) for i in range(8)]
    edges += dense(m.fc.weight, 1, 2) + identity(1, 2, 3)
    result = check(m, edges, {1: as_numpy(m.conv.bias), 2: as_numpy(m.fc.bias)}, input_shape=(2, 4, 4))
    assert [layer.layer.shape for layer in result.node_layers] == [(2, 2, 2), (3,), (3,)]
    assert [(s.kind, s.reason) for s in result.skipped] == [("Patches", REASONS["learned_positions"])] * 2


class Shuffle(nn.Module):
    """ShuffleNet's channel shuffle between two convs: views that move the channels."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Conv2d(1, 4, 1), nn.Conv2d(4, 1, 1)

    def forward(self, x):
        h = self.a(x)
        return self.b(h.view(-1, 2, 2, 3, 3).transpose(1, 2).reshape(-1, 4, 3, 3))


def test_a_feature_map_read_with_its_channels_moved_is_cut_never_wired_as_before():
    """Node (c, p) of the shuffled value is another channel's: links from the map as made would
    enter the wrong nodes. The shuffled value is a cut layer of its own."""
    topology = network_from_module(seeded(Shuffle()), (1, 3, 3)).topology
    assert [layer.kind for layer in topology.node_layers] == ["input", "conv2d", "cut", "conv2d"]
    assert [s.reason for s in topology.skipped] == [REASONS["regrouped"]]


class Rotary(nn.Module):
    """Attention with rotary position embeddings of q and k: of their halves (LLaMA's
    rotate_half, a concatenation) or of interleaved pairs (GPT-J's and Cohere's, a stack)."""

    def __init__(self, layout):
        super().__init__()
        self.layout = layout
        self.q, self.k, self.v, self.o = (nn.Linear(4, 4) for _ in range(4))
        self.register_buffer("frequency", torch.tensor([1.0, 0.5, 1.0, 0.5]))

    def rotated(self, x):
        angle = torch.arange(x.shape[1], dtype=x.dtype)[:, None] * self.frequency.to(x.dtype)
        if self.layout == "halves":
            turned = torch.cat([-x[..., 2:], x[..., :2]], dim=-1)
        else:
            turned = torch.stack([-x[..., 1::2], x[..., ::2]], dim=-1).flatten(-2)
        return x * angle.cos() + turned * angle.sin()

    def forward(self, x):
        a = F.scaled_dot_product_attention(self.rotated(self.q(x)), self.rotated(self.k(x)), self.v(x))
        return self.o(a)


@pytest.mark.parametrize("layout", ["halves", "pairs"])
def test_rotary_embeddings_are_listed_as_feeding_only_the_attention_pattern(layout):
    """Their slices, products, concatenation or stack cut nothing the graph could hold: q and k
    have in-links only. They are listed once, as that, with no cut layer."""
    model = seeded(nn.Sequential(Rotary(layout)))
    m = model[0]
    edges = dense(m.q.weight, 0, 1) + dense(m.k.weight, 0, 2) + dense(m.v.weight, 0, 3) + identity(3, 4, 4) \
        + dense(m.o.weight, 4, 5)
    biases = {1: as_numpy(m.q.bias), 2: as_numpy(m.k.bias), 3: as_numpy(m.v.bias), 5: as_numpy(m.o.bias)}
    result = check(model, edges, biases, input_shape=(3, 4))
    assert [(s.name, s.kind, s.reason) for s in result.skipped] == [("0", "Rotary", REASONS["attention_only"])]


class HeadByHead(nn.Module):
    """Attention with q, k and v stored head by head in one fused matrix (2 heads of 2): split
    inside each head as GPT-NeoX does (chunk), or indexed from a (heads, 3, head_dim) view as
    Bloom does (select)."""

    def __init__(self, layout, batch_norm=False):
        super().__init__()
        self.layout = layout
        self.qkv, self.o = nn.Linear(4, 12), nn.Linear(4, 4)
        self.norm = nn.BatchNorm1d(12) if batch_norm else None

    def forward(self, x):
        b, t, _ = x.shape
        h = self.qkv(x)
        if self.norm is not None:  # LeViT's: over every token of the batch
            h = self.norm(h.flatten(0, 1)).reshape_as(h)
        if self.layout == "chunk":
            q, k, v = h.view(b, t, 2, 6).transpose(1, 2).chunk(3, dim=-1)
        else:
            fused = h.view(b, t, 2, 3, 2)
            q, k, v = (fused[..., i, :].transpose(1, 2) for i in range(3))
        a = F.scaled_dot_product_attention(q, k, v)  # (b, heads, t, head_dim)
        return self.o(a.transpose(1, 2).reshape(b, t, 4))


@pytest.mark.parametrize("layout", ["chunk", "select"])
@pytest.mark.parametrize("batch_norm", [False, True])
def test_a_qkv_fused_head_by_head_reads_its_rows_of_every_head(layout, batch_norm):
    """With a BatchNorm folded into the fused layer before the split (LeViT), each part reads its
    rows of the folded scale and shift too."""
    m = seeded(HeadByHead(layout, batch_norm))
    W, bias = m.qkv.weight, m.qkv.bias
    if batch_norm:
        with torch.no_grad():
            m.norm.running_var.uniform_(0.5, 2.0)
        scale = m.norm.weight / torch.sqrt(m.norm.running_var + m.norm.eps)
        W, bias = scale[:, None] * W, scale * bias + m.norm.bias - m.norm.running_mean * scale
    # node layers: x 0, q 1, k 2, v 3, o 4, out 5; head h's q, k, v are rows 6h..6h+1, 6h+2.., 6h+4..
    edges, biases = [], {}
    for part, layer in enumerate((1, 2, 3)):
        rows = [6 * h + 2 * part + i for h in range(2) for i in range(2)]
        edges += dense(W[rows], 0, layer)
        biases[layer] = as_numpy(bias[rows])
    edges += identity(3, 4, 4) + dense(m.o.weight, 4, 5)
    biases[5] = as_numpy(m.o.bias)
    result = check(m, edges, biases, input_shape=(3, 4))
    assert [(w.layer.rows, w.layer.row_period) for w in result.weight_layers[:3]] == [((0, 2), 6), ((2, 4), 6),
                                                                                       ((4, 6), 6)]


class CrossAttention(nn.Module):
    """nn.MultiheadAttention with q from one layer, k and v from another (a decoder's
    cross-attention): it reads q's rows of its in_proj_weight, then k's and v's, split again."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(4, 4), nn.Linear(4, 4)
        self.attention = nn.MultiheadAttention(4, 2, batch_first=True)

    def forward(self, x):
        memory, queries = self.a(x), self.b(x)
        return self.attention(queries, memory, memory, need_weights=False)[0]


def test_cross_attention_reads_runs_of_the_fused_in_projection():
    m = seeded(CrossAttention())
    W, bias = m.attention.in_proj_weight, m.attention.in_proj_bias
    # node layers: x 0, a 1, b 2, q 3, k 4, v 5, o 6, out 7
    edges = dense(m.a.weight, 0, 1) + dense(m.b.weight, 0, 2) + dense(W[:4], 2, 3) + dense(W[4:8], 1, 4) \
        + dense(W[8:], 1, 5) + identity(5, 6, 4) + dense(m.attention.out_proj.weight, 6, 7)
    biases = {1: as_numpy(m.a.bias), 2: as_numpy(m.b.bias), 3: as_numpy(bias[:4]), 4: as_numpy(bias[4:8]),
              5: as_numpy(bias[8:]), 7: as_numpy(m.attention.out_proj.bias)}
    result = check(m, edges, biases, input_shape=(3, 4))
    assert [w.layer.rows for w in result.weight_layers[2:5]] == [(0, 4), (4, 8), (8, 12)]
    assert result.skipped == []


class Standardised(nn.Conv2d):
    """BiT's weight-standardised convolution: its weight computed from the stored one."""

    def forward(self, x):
        w = self.weight
        return F.conv2d(x, (w - w.mean((1, 2, 3), keepdim=True)) / w.std((1, 2, 3), keepdim=True), self.bias)


def test_a_weight_computed_in_the_forward_pass_is_cut_and_listed():
    """A weight-norm parametrisation of the last layer: the graph ends before it, listed; a model
    whose every weight is computed is refused in one line that names the first."""
    m = nn.Sequential(nn.Linear(3, 4), nn.utils.parametrizations.weight_norm(nn.Linear(4, 2))).eval()
    topology = network_from_module(m, (3,)).topology
    assert [layer.name for layer in topology.node_layers] == ["input", "0"]
    assert [(s.name, s.reason) for s in topology.skipped] == [("1", REASONS["computed_weight"])]
    with pytest.raises(NNGraphError, match="no Linear or Conv layers with stored weights.*first left out: 0: its "
                                           "weight is computed"):
        network_from_module(nn.Sequential(Standardised(1, 2, 3)).eval(), (1, 5, 5))


class HeadNorm(nn.Module):
    """q and k normalised head by head (a LayerNorm over each head's 2 dimensions), as Persimmon
    and Qwen3 do: the gain is one value per head dimension, not one per node."""

    def __init__(self):
        super().__init__()
        self.qkv, self.o = nn.Linear(4, 12), nn.Linear(4, 4)
        self.q_norm, self.k_norm = nn.LayerNorm(2), nn.LayerNorm(2)

    def forward(self, x):
        b, t, _ = x.shape
        q, k, v = (part.view(b, t, 2, 2).transpose(1, 2) for part in self.qkv(x).split(4, dim=-1))
        a = F.scaled_dot_product_attention(self.q_norm(q), self.k_norm(k), v)
        return self.o(a.transpose(1, 2).reshape(b, t, 4))


def test_a_norm_of_each_head_is_cut_not_folded():
    m = seeded(HeadNorm())
    W, bias = m.qkv.weight, m.qkv.bias
    edges, biases = [], {}
    for part, layer in enumerate((1, 2, 3)):
        edges += dense(W[4 * part:4 * part + 4], 0, layer)
        biases[layer] = as_numpy(bias[4 * part:4 * part + 4])
    edges += identity(3, 4, 4) + dense(m.o.weight, 4, 5)
    biases[5] = as_numpy(m.o.bias)
    result = check(m, edges, biases, input_shape=(3, 4))
    # listed as what they are to the graph: q and k only set the attention pattern
    assert {(s.name, s.reason) for s in result.skipped if s.name in ("q_norm", "k_norm")} == \
        {("q_norm", REASONS["attention_only"]), ("k_norm", REASONS["attention_only"])}


class Gated(nn.Module):
    def __init__(self):
        super().__init__()
        self.gate, self.up, self.down = nn.Linear(3, 5), nn.Linear(3, 5), nn.Linear(5, 3)

    def forward(self, x):
        return self.down(F.silu(self.gate(x)) * self.up(x))


def test_a_gated_mlp_hidden_layer_has_both_weight_layers_entering():
    m = seeded(Gated())
    edges = dense(m.gate.weight, 0, 1) + dense(m.up.weight, 0, 1) + dense(m.down.weight, 1, 2)
    check(m, edges, {1: as_numpy(m.gate.bias + m.up.bias), 2: as_numpy(m.down.bias)})


class Concat(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b, self.c = nn.Linear(3, 2), nn.Linear(3, 4), nn.Linear(6, 2)

    def forward(self, x):
        return self.c(torch.cat([self.a(x), self.b(x)], dim=-1))


def test_concatenation_places_node_layers_side_by_side():
    m = seeded(Concat())
    edges = (dense(m.a.weight, 0, 1) + dense(m.b.weight, 0, 2) + identity(1, 3, 2) + identity(2, 3, 4, offset=2)
             + dense(m.c.weight, 3, 4))
    check(m, edges, {1: as_numpy(m.a.bias), 2: as_numpy(m.b.bias), 4: as_numpy(m.c.bias)})


class DenseBlock(nn.Module):
    """DenseNet's block after max pooling: the pooled map is concatenated with what a conv makes
    of it (after a concatenation of that one map alone)."""

    def __init__(self):
        super().__init__()
        self.stem, self.grow, self.out = nn.Conv2d(1, 2, 1), nn.Conv2d(2, 2, 1), nn.Conv2d(4, 1, 1)

    def forward(self, x):
        pooled = F.max_pool2d(self.stem(x), 2)
        return self.out(torch.cat([pooled, self.grow(torch.cat([pooled], 1))], 1))


def test_a_part_with_no_fixed_links_is_concatenated_as_one_cut_layer():
    """The pooled map is one cut layer, read by the conv and placed in the concatenation."""
    m = seeded(DenseBlock())

    def per_position(conv, src, dst, positions):
        w = conv.weight.detach().double().numpy()[:, :, 0, 0]
        return [(src, i * positions + p, dst, j * positions + p, w[j, i]) for j in range(w.shape[0])
                for i in range(w.shape[1]) for p in range(positions)]

    edges = per_position(m.stem, 0, 1, 16) + per_position(m.grow, 2, 3, 4) + identity(2, 4, 8) \
        + identity(3, 4, 8, offset=8) + per_position(m.out, 4, 5, 4)
    on = lambda conv, positions: np.repeat(as_numpy(conv.bias), positions)  # noqa: E731
    result = check(m, edges, {1: on(m.stem, 16), 3: on(m.grow, 4), 5: on(m.out, 4)}, input_shape=(1, 4, 4))
    assert [layer.layer.kind for layer in result.node_layers] == ["input", "conv2d", "cut", "conv2d", "concat",
                                                                  "conv2d"]
    assert [s.reason for s in result.skipped] == [REASONS["max_pool"]]


class ConcatNorm(nn.Module):
    """A norm right after a concatenation: DenseNet's BatchNorm over the maps it concatenates,
    Swin's LayerNorm over the four patches it merges."""

    def __init__(self, maps: bool):
        super().__init__()
        if maps:
            self.a, self.b, self.c = nn.Conv2d(1, 2, 1), nn.Conv2d(1, 3, 1), nn.Conv2d(5, 1, 1)
            self.norm = nn.BatchNorm2d(5)
        else:
            self.a, self.b, self.c, self.norm = nn.Linear(2, 2), nn.Linear(2, 3), nn.Linear(5, 1), nn.LayerNorm(5)
        self.dim = 1 if maps else -1

    def forward(self, x):
        return self.c(self.norm(torch.cat([self.a(x), self.b(x)], self.dim)))


@pytest.mark.parametrize("maps", [True, False])
def test_a_norm_after_a_concatenation_folds_into_each_part_its_own_channels(maps):
    """Each part's identity links carry the norm's scale and shift of the nodes they enter."""
    m = seeded(ConcatNorm(maps))
    positions, norm = (4 if maps else 1), m.norm
    if maps:
        with torch.no_grad():
            norm.running_var.uniform_(0.5, 2.0)
        scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
        shift = norm.bias - norm.running_mean * scale
    else:
        scale, shift = norm.weight, norm.bias
    scale, shift = (np.repeat(as_numpy(v), positions) for v in (scale, shift))

    def links(layer, src, dst):
        w = layer.weight.detach().double().numpy().reshape(layer.weight.shape[0], -1)
        return [(src, i * positions + p, dst, j * positions + p, w[j, i]) for j in range(w.shape[0])
                for i in range(w.shape[1]) for p in range(positions)]

    edges = links(m.a, 0, 1) + links(m.b, 0, 2) + links(m.c, 3, 4)
    edges += identity(1, 3, 2 * positions, scale[:2 * positions]) + \
        identity(2, 3, 3 * positions, scale[2 * positions:], offset=2 * positions)
    on = lambda bias: np.repeat(as_numpy(bias), positions)  # noqa: E731
    check(m, edges, {1: on(m.a.bias), 2: on(m.b.bias), 3: shift, 4: on(m.c.bias)},
          input_shape=(1, 2, 2) if maps else (2,))


class Rows(nn.Module):
    def __init__(self, cell, inputs=1, hidden=2, **kwargs):
        super().__init__()
        self.rnn, self.fc = cell(inputs, hidden, batch_first=True, **kwargs), nn.Linear(hidden, 1)

    def forward(self, x):
        out, _ = self.rnn(x)
        return self.fc(out[:, -1, :])


def e2_rnn():
    """The E2 example of METRICS.md section 6."""
    m = Rows(nn.RNN, nonlinearity="relu").double()
    with torch.no_grad():
        m.rnn.weight_ih_l0.copy_(torch.tensor([[1.0], [-1.0]]))
        m.rnn.weight_hh_l0.copy_(torch.tensor([[0.5, 0.0], [1.0, -0.5]]))
        m.rnn.bias_ih_l0.copy_(torch.tensor([0.0, 0.5]))
        m.rnn.bias_hh_l0.zero_()
        m.fc.weight.copy_(torch.tensor([[1.0, 1.0]]))
        m.fc.bias.zero_()
    return m


def test_the_e2_rnn_unrolled_gives_the_strengths_of_section_9(tmp_path):
    m = e2_rnn()
    torch.save(m.state_dict(), tmp_path / "e2.pt")
    for network in (network_from_module(m, time_steps=2), load_network(tmp_path / "e2.pt", time_steps=2)):
        result = compute_metrics(network)
        by_name = {layer.layer.name: layer for layer in result.node_layers}
        np.testing.assert_allclose(by_name["rnn.h[1]"].strength, [2.5, -1.0])
        np.testing.assert_allclose(by_name["rnn.h[2]"].strength, [2.5, 1.0])
        np.testing.assert_allclose(by_name["fc"].strength, [2.0])
        assert by_name["rnn.h[1]"].fluctuation == pytest.approx(1.75)
        assert by_name["rnn.h[2]"].fluctuation == pytest.approx(0.75)
        # W_x is used at both steps: its second use is tied to the first (one link-weight sample)
        tied = [w.layer for w in result.weight_layers if w.layer.tied_to]
        assert [(w.name, w.tied_to) for w in tied] == [("rnn.h.ih[2]", "rnn.h.ih[1]")]
    with pytest.raises(NNGraphError, match="--time-steps"):
        load_network(tmp_path / "e2.pt")


def test_an_lstm_unrolls_with_one_node_layer_per_gate():
    m = seeded(Rows(nn.LSTM, inputs=2, hidden=3)).double()
    W_ih, W_hh = m.rnn.weight_ih_l0, m.rnn.weight_hh_l0
    bias = m.rnn.bias_ih_l0 + m.rnn.bias_hh_l0
    # layers: x[1] 0, x[2] 1; step 1: i 2, f 3, g 4, o 5, c 6, h 7; step 2: i 8 .. o 11, c 12, h 13; fc 14
    edges, biases = [], {}
    for t, (x, first) in enumerate(((0, 2), (1, 8))):
        for gate in range(4):
            rows = slice(3 * gate, 3 * gate + 3)
            edges += dense(W_ih[rows], x, first + gate)
            if t:
                edges += dense(W_hh[rows], 7, first + gate)
            biases[first + gate] = as_numpy(bias[rows])
        c, h = first + 4, first + 5
        edges += identity(first, c, 3) + identity(first + 1, c, 3) + identity(first + 2, c, 3)
        if t:
            edges += identity(6, c, 3)
        edges += identity(first + 3, h, 3) + identity(c, h, 3)
    edges += dense(m.fc.weight, 13, 14)
    biases[14] = as_numpy(m.fc.bias)
    check(m, edges, biases, time_steps=2)


def test_a_gru_unrolls_with_its_reset_gate_linked_into_n():
    m = seeded(Rows(nn.GRU, inputs=2, hidden=3)).double()
    result = compute_metrics(network_from_module(m, time_steps=2))
    names = [layer.layer.name for layer in result.node_layers]
    assert names == ["x[1]", "x[2]", "rnn.r[1]", "rnn.z[1]", "rnn.n[1]", "rnn.h[1]",
                     "rnn.r[2]", "rnn.z[2]", "rnn.n[2]", "rnn.h[2]", "fc"]
    n1 = result.node_layers[4]
    W_ih, W_hh = m.rnn.weight_ih_l0, m.rnn.weight_hh_l0
    b_n = m.rnn.bias_ih_l0[6:] + m.rnn.bias_hh_l0[6:]
    # n[1]: in from x[1] (W_in) and bias, plus 1 per node from r[1]; out to h[1] (1 per node)
    expected = as_numpy(W_ih[6:].sum(1) + b_n) + 1.0 + 1.0
    np.testing.assert_allclose(n1.strength, expected, rtol=1e-9)
    h2 = result.node_layers[9]
    np.testing.assert_allclose(h2.strength, 3.0 + as_numpy(m.fc.weight.sum(0)), rtol=1e-9)  # n, z, h[1] in
    assert W_hh.shape == (9, 3)


def test_persistence_in_the_authors_convention():
    m = nn.Linear(2, 1).double()
    with torch.no_grad():
        m.weight.copy_(torch.tensor([[1.0, 0.5]]))
        m.bias.copy_(torch.tensor([2.0]))
    network = network_from_module(nn.Sequential(m))
    [definition] = compute_metrics(network).weight_layers
    # |W| / max|W| = [1, 0.5]: the spanning tree merges at 1 and 0.5, persistences 0 and 0.5
    assert definition.neural_persistence == pytest.approx(0.5)
    assert definition.neural_persistence_normalized == pytest.approx(0.5 / 2 ** 0.5)
    [authors] = compute_metrics(network, persistence="authors").weight_layers
    # bias vertex and the maximum 2: weights [0.5, 0.25], bias 1; persistences 0, 0.5, 0.75 and 1 (survivor)
    assert authors.neural_persistence == pytest.approx((0.25 + 0.5625 + 1) ** 0.5)
    assert authors.neural_persistence_normalized == pytest.approx((1.8125 / 3) ** 0.5)
    with pytest.raises(NNGraphError, match="definition or authors"):
        compute_metrics(network, persistence="paper")


def test_max_pooling_and_untraceable_models_are_listed_never_a_traceback():
    class Branchy(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.norm, self.b = nn.Linear(3, 4), nn.LayerNorm(4), nn.Linear(4, 2)

        def forward(self, x):
            h = self.a(x)
            if h.sum() > 0:  # data-dependent control flow: torch.export cannot trace it
                h = -h
            return self.b(self.norm(h))

    result = compute_metrics(network_from_module(seeded(Branchy())))
    assert [w.layer.name for w in result.weight_layers] == ["a", "b"]
    skipped = {(s.name, s.kind) for s in result.skipped}
    assert ("norm", "LayerNorm") in skipped and all("could not be traced" in s.reason for s in result.skipped)
    with pytest.raises(NNGraphError, match="does not run on an input of shape"):
        network_from_module(Residual(), input_shape=(5,))
    with pytest.raises(NNGraphError, match="--time-steps"):
        network_from_module(Rows(nn.RNN), time_steps=0)

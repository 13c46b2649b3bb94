"""Property tests: where a module's forward pass is linear (identity activations, attention over a
single position, norms reduced to their gain), its graph, run as a linear network over the
links nngraph stores, computes what the module computes; and the vectorised strengths equal
those summed from that explicit edge list."""

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings, strategies as st

from graph_check import as_numpy, run_graph, stored_edges, strengths_from_edges
from nngraph.ingest import compute_metrics, network_from_module

SETTINGS = settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def seeded(module, seed):
    torch.manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.copy_(torch.rand_like(parameter) * 2 - 1)
        for buffer_name, buffer in module.named_buffers():
            if buffer_name.endswith("running_var"):
                buffer.copy_(torch.rand_like(buffer) + 0.5)
            elif buffer_name.endswith("running_mean"):
                buffer.copy_(torch.rand_like(buffer) - 0.5)
    return module.double().eval()


def check_linear(module, x, inputs, input_shape=None, **options):
    network = network_from_module(module, input_shape, **options)
    values = run_graph(network, inputs)
    np.testing.assert_allclose(values[-1], as_numpy(module(x)), rtol=1e-7, atol=1e-9)
    sizes = [layer.nodes for layer in network.topology.node_layers]
    expected = strengths_from_edges(sizes, stored_edges(network), {})
    result = compute_metrics(network, persistence=False)
    for layer, by_edges in zip(result.node_layers, expected):  # the biases are in both: compare without
        bias = 0 if layer.bias is None else layer.bias
        np.testing.assert_allclose(layer.strength - bias, by_edges, rtol=1e-7, atol=1e-9)


class ResidualCNN(nn.Module):
    def __init__(self, channels, batch_norm, pool):
        super().__init__()
        norm = (lambda: nn.BatchNorm2d(channels)) if batch_norm else nn.Identity
        self.stem = nn.Conv2d(1, channels, 3, padding=1)
        self.conv1, self.bn1 = nn.Conv2d(channels, channels, 3, padding=1), norm()
        self.conv2, self.bn2 = nn.Conv2d(channels, channels, 3, padding=1, stride=1), norm()
        self.pool = nn.AvgPool2d(2) if pool else nn.Identity()
        self.head = nn.LazyLinear(3)

    def forward(self, x):
        h = self.stem(x)
        h = self.bn2(self.conv2(self.bn1(self.conv1(h)))) + h
        return self.head(self.pool(h).flatten(1))


@SETTINGS
@given(channels=st.integers(1, 3), side=st.sampled_from([4, 6]), batch_norm=st.booleans(), pool=st.booleans(),
       seed=st.integers(0, 1000))
def test_residual_cnns(channels, side, batch_norm, pool, seed):
    module = ResidualCNN(channels, batch_norm, pool)
    module(torch.zeros(1, 1, side, side))  # size the lazy head
    module = seeded(module, seed)
    x = torch.rand(1, 1, side, side, dtype=torch.float64)
    check_linear(module, x, {0: as_numpy(x)}, input_shape=(1, side, side))


class ScaleNorm(nn.Module):
    """A norm reduced to its learned gain and bias: linear, folded like LayerNorm's."""

    def __init__(self, d):
        super().__init__()
        self.weight, self.bias = nn.Parameter(torch.ones(d)), nn.Parameter(torch.zeros(d))

    def forward(self, x):
        return x * self.weight + self.bias


class LinearBlock(nn.Module):
    """A transformer block, pre- or post-norm, fused or separate qkv; attention over one position."""

    def __init__(self, d, hidden, post_norm, fused):
        super().__init__()
        self.post_norm, self.fused = post_norm, fused
        self.n1, self.n2 = ScaleNorm(d), ScaleNorm(d)
        self.qkv = nn.Linear(d, 3 * d) if fused else None
        self.q, self.k, self.v = (None,) * 3 if fused else (nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, d))
        self.o, self.up, self.down = nn.Linear(d, d), nn.Linear(d, hidden), nn.Linear(hidden, d)

    def attend(self, h):
        q, k, v = self.qkv(h).split(h.shape[-1], -1) if self.fused else (self.q(h), self.k(h), self.v(h))
        return self.o(F.scaled_dot_product_attention(q[:, None], k[:, None], v[:, None])[:, 0])

    def forward(self, x):
        if self.post_norm:
            m = self.n1(x + self.attend(x))
            return self.n2(m + self.down(self.up(m)))
        m = x + self.attend(self.n1(x))
        return m + self.down(self.up(self.n2(m)))


@SETTINGS
@given(d=st.integers(2, 5), hidden=st.integers(2, 6), post_norm=st.booleans(), fused=st.booleans(),
       seed=st.integers(0, 1000))
def test_transformer_blocks(d, hidden, post_norm, fused, seed):
    module = seeded(LinearBlock(d, hidden, post_norm, fused), seed)
    x = torch.rand(1, 1, d, dtype=torch.float64)  # one position: attention's output is v
    check_linear(module, x, {0: as_numpy(x)}, input_shape=(1, d))


class Recurrent(nn.Module):
    def __init__(self, inputs, hidden, layers):
        super().__init__()
        self.rnn = nn.RNN(inputs, hidden, num_layers=layers, nonlinearity="relu", batch_first=True)
        self.fc = nn.Linear(hidden, 2)

    def forward(self, x):
        out, _ = self.rnn(x)
        return self.fc(out[:, -1, :])


@SETTINGS
@given(inputs=st.integers(1, 3), hidden=st.integers(1, 3), layers=st.integers(1, 2), steps=st.integers(1, 3),
       seed=st.integers(0, 1000))
def test_elman_rnns(inputs, hidden, layers, steps, seed):
    module = seeded(Recurrent(inputs, hidden, layers), seed)
    with torch.no_grad():  # positive weights and inputs: ReLU is the identity, the forward pass linear
        for parameter in module.rnn.parameters():
            parameter.abs_()
    x = torch.rand(1, steps, inputs, dtype=torch.float64)
    check_linear(module, x, {t: as_numpy(x[0, t]) for t in range(steps)}, time_steps=steps)

"""The one compiled call over a version's float32 layers (ingest/graph_pass.py) gives what each
layer's own pass gives: the same strengths, fluctuations and link-weight statistics, on random
small float32 graphs with every combination of folded scales, sliced rows, identity links, tied
layers and layers it leaves to their own pass, in one window or one window a layer."""

import numpy as np
import pytest
import torch
import torch.nn as nn
from hypothesis import HealthCheck, given, settings, strategies as st

from graph_check import stored_edges, strengths_from_edges
from nngraph.ingest import compute_metrics, graph_pass, layer_passes, load_network, network_from_module
from test_architecture_properties import LinearBlock, Recurrent, ScaleNorm, seeded
from test_architectures import ReZero, Sandwich, Scaled, ThroughActivation


def both_ways(network, window_bytes):
    """(metrics from the graph pass, metrics from each layer's own pass), and the layers the
    graph pass read."""
    read = []
    version = graph_pass.GraphVersion
    read_window = version.read
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(layer_passes, "WINDOW_BYTES", window_bytes)
        patch.setattr(version, "read", lambda self, first, stop: read.extend(
            self.plan.topology.weight_layers[first:stop]) or read_window(self, first, stop))
        together = compute_metrics(network, persistence=False, device="cpu")
        patch.setattr(version, "reads", lambda self, index: False)
        apart = compute_metrics(network, persistence=False, device="cpu")
    return together, apart, read


def assert_same_metrics(together, apart):
    for a, b in zip(together.node_layers, apart.node_layers, strict=True):
        for side in ("s_in", "s_out", "bias"):
            x, y = getattr(a, side), getattr(b, side)
            assert (x is None) == (y is None), (a.layer.name, side)
            if x is not None:
                np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6, err_msg=f"{a.layer.name} {side}")
        assert a.fluctuation == pytest.approx(b.fluctuation, rel=1e-5, abs=1e-6)
    for a, b in zip(together.weight_layers, apart.weight_layers, strict=True):
        x, y = a.link_weights, b.link_weights
        # the same float32 values: extremes, sorted sample, quantiles and histogram exactly equal
        assert (x["count"], x["min"], x["max"], x["sampled"]) == (y["count"], y["min"], y["max"], y["sampled"])
        assert (x["quantiles"], x["histogram"]) == (y["quantiles"], y["histogram"]), a.layer.name
        assert (x["mean"], x["std"]) == pytest.approx((y["mean"], y["std"]), rel=1e-6, abs=1e-9)
        assert (a.max_abs_weight, a.max_abs_bias) == (b.max_abs_weight, b.max_abs_bias)


class NormedMLP(nn.Module):
    """A norm read by a Linear layer that BatchNorm follows: its row scale, column scale and the
    norm's shift all fold into one layer."""

    def __init__(self, d, hidden):
        super().__init__()
        self.norm, self.up, self.batch, self.down = ScaleNorm(d), nn.Linear(d, hidden), nn.BatchNorm1d(hidden), \
            nn.Linear(hidden, 3)

    def forward(self, x):
        return self.down(torch.relu(self.batch(self.up(self.norm(x)))))


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(["block", "mlp", "rnn"]), d=st.integers(1, 9), hidden=st.integers(1, 70),
       post_norm=st.booleans(), fused=st.booleans(), window=st.sampled_from([1, 1 << 28]), seed=st.integers(0, 1000))
def test_the_graph_pass_equals_each_layers_own_pass(kind, d, hidden, post_norm, fused, window, seed):
    if kind == "block":
        module, shape, options = LinearBlock(d, hidden, post_norm, fused), (1, d), {}
    elif kind == "mlp":
        module, shape, options = NormedMLP(d, hidden), (d,), {}
    else:  # unrolled: tied copies of the recurrent weights
        module, shape, options = Recurrent(d, min(hidden, 9), 2), None, {"time_steps": 3}
    network = network_from_module(seeded(module, seed).float(), shape, **options)
    together, apart, read = both_ways(network, window)
    assert {layer.kind for layer in read} >= {"linear"}
    assert_same_metrics(together, apart)
    # and both are the explicit edge list's strengths
    sizes = [layer.nodes for layer in network.topology.node_layers]
    for layer, by_edges in zip(together.node_layers, strengths_from_edges(sizes, stored_edges(network), {})):
        bias = 0 if layer.bias is None else layer.bias
        np.testing.assert_allclose(layer.strength - bias, by_edges, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["minilm", "gpt2", "bert", "llama", "gpt_neox", "vit", "resnet", "lstm", "gru"])
def test_the_graph_pass_on_real_models(real_models, name):
    """MiniLM is read by the graph pass whole; GPT-2's weights stored transposed and the ResNet's
    convolutions take their own passes between its windows."""
    path, options = real_models[name]
    network = load_network(path, **options)
    together, apart, read = both_ways(network, 1 << 28)
    assert_same_metrics(together, apart)
    if name == "minilm":
        assert len(read) == len(network.topology.weight_layers)
    assert read, name


@pytest.mark.parametrize("module, input_shape", [(Sandwich, (3, 4)), (Scaled, None), (ReZero, None),
                                                 (lambda: ThroughActivation("batch_norm"), None)],
                         ids=["sandwich", "scaled", "rezero", "batch_norm_read"])
def test_the_graph_pass_folds_the_maps_torch_computes(module, input_shape):
    """Gemma's norms (1 + w), Granite's numbers, a learned one (ReZero) and BatchNorm read by the
    links after it: torch computes such a map's scale for the call."""
    network = network_from_module(seeded(module(), 5).float(), input_shape)
    layers = network.topology.weight_layers
    assert any(affine.given for w in layers for affine in (*w.in_affines, *w.out_affines))
    together, apart, read = both_ways(network, 1 << 28)
    assert read == layers
    assert_same_metrics(together, apart)


def test_a_nan_weight_read_by_the_graph_pass_is_found():
    linear = nn.Linear(300, 200)
    with torch.no_grad():
        linear.weight[199, 299] = float("nan")
    from nngraph.errors import NNGraphError

    with pytest.raises(NNGraphError, match="NaN or infinite"):
        compute_metrics(network_from_module(linear, (300,)), persistence=False, device="cpu")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_the_metrics_never_write_to_the_weights(dtype):
    """The exact sample of a small layer read by torch's passes (a convolution) is a view of its
    weights; the samples are sorted in place only where they are the graph pass's copies."""
    module = seeded(nn.Sequential(nn.Conv2d(2, 4, 3, bias=False), nn.ReLU(), nn.Flatten(),
                                  nn.Linear(64, 40, bias=False), nn.ReLU(), nn.Linear(40, 3)), 3).to(dtype)
    before = {key: value.clone() for key, value in module.state_dict().items()}
    compute_metrics(network_from_module(module, (2, 6, 6)), persistence=False, device="cpu")
    for key, value in module.state_dict().items():
        assert torch.equal(value, before[key]), key


class CopyAtEveryRead(dict):
    """A lazy mapping as safetensors gives one: a new tensor at every read, freed when dropped."""

    def __getitem__(self, key):
        return super().__getitem__(key).clone()


def test_a_lazy_mapping_s_tensors_stay_alive_while_the_call_reads_them():
    """The call reads the tensors by address: a mapping that copies at every read must give the
    same metrics as the tensors themselves, window by window."""
    module = seeded(NormedMLP(7, 40), 11).float().eval()
    network = network_from_module(module, (7,))
    lazy = network.topology.bind(CopyAtEveryRead(module.state_dict()), "<lazy>")
    for window in (1, 1 << 28):
        together, apart, read = both_ways(lazy, window)
        assert {layer.kind for layer in read} == {"linear"}
        assert_same_metrics(together, apart)
        assert_same_metrics(together, compute_metrics(network, persistence=False, device="cpu"))


def test_a_version_the_plan_does_not_fit_takes_each_layer_s_own_pass():
    """The plan is made from the first version's shapes; a later version of the topology with a
    float64 weight or a strided bias is read layer by layer where
    the call cannot read it, with the same results as each layer's own pass."""
    module = seeded(NormedMLP(5, 30), 4).float().eval()
    network = network_from_module(module, (5,))
    compute_metrics(network, persistence=False, device="cpu")  # the plan, from this version
    state = {key: value.clone() for key, value in module.state_dict().items()}
    state["up.weight"] = state["up.weight"].double()
    state["down.bias"] = torch.zeros(2 * state["down.bias"].numel())[::2].copy_(state["down.bias"])
    assert not state["down.bias"].is_contiguous()
    changed = network.topology.bind(state, "<changed>")
    together, apart, read = both_ways(changed, 1 << 28)
    assert [layer.name for layer in read] == []  # up: float64; down: a strided bias
    assert_same_metrics(together, apart)
    state["up.weight"] = state["up.weight"].float()
    together, apart, read = both_ways(network.topology.bind(state, "<changed>"), 1 << 28)
    assert [layer.kind for layer in read] == ["linear"]
    assert_same_metrics(together, apart)

"""Neurons Strength and Neurons Activation (METRICS.md section 6): the golden example E1, a conv
example computed by hand, NS against the module's own pre-activations, and bad data."""

import copy
import math

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st

from models import resnet_digits
from nngraph import digits
from nngraph.errors import NNGraphError
from nngraph.ingest.activation_stats import (ACTIVATIONS, GRID, QUANTILES, Stream, _torch_moments,
                                             quantiles_and_grid_counts)
from nngraph.ingest.activations import data_metrics
from nngraph.ingest.batch_moments import batch_moments
from nngraph.ingest.data_source import load_inputs

E1_INPUTS = torch.tensor([[1.0, 2.0], [2.0, -1.0]])


def e1(activation=nn.ReLU):
    model = nn.Sequential(nn.Linear(2, 2), activation(), nn.Linear(2, 1))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.0, -1.0], [2.0, 0.5]]))
        model[0].bias.copy_(torch.tensor([0.0, -1.0]))
        model[2].weight.copy_(torch.tensor([[1.0, -2.0]]))
        model[2].bias.copy_(torch.tensor([0.5]))
    return model


def test_e1_relu(device):
    hidden, output = data_metrics(e1(), E1_INPUTS, device=device).layers
    ns, na = hidden.summary()["neurons_strength"], hidden.summary()["neurons_activation"]
    assert hidden.activation == "relu" and output.activation is None
    assert (ns["mean"], ns["std"]) == (pytest.approx(1.625), pytest.approx(1.5562374, abs=1e-7))
    np.testing.assert_allclose(hidden.strength.per_node()[0], [1.0, 2.25])
    assert (na["mean"], na["std"]) == (pytest.approx(1.875), pytest.approx(1.1388042, abs=1e-7))
    assert na["zero_fraction"] == 0.25 and na["saturated_fraction"] is None
    assert (ns["min"], ns["max"]) == (-1.0, 3.0)
    out = output.summary()["neurons_strength"]
    assert (out["mean"], out["std"], out["min"], out["max"]) == (-2.5, 1.0, -3.5, -1.5)


def test_e1_without_bias_and_with_tanh():
    hidden = data_metrics(e1(), E1_INPUTS, bias=False).layers[0]
    values = np.array([-1.0, 3.0, 3.0, 3.5])  # METRICS.md: hidden NS without the bias
    assert hidden.summary()["neurons_strength"]["mean"] == pytest.approx(values.mean())
    assert hidden.summary()["neurons_strength"]["std"] == pytest.approx(values.std())
    tanh = data_metrics(e1(nn.Tanh), E1_INPUTS).layers[0].summary()["neurons_activation"]
    assert (tanh["mean"], tanh["std"]) == (pytest.approx(0.5460256, abs=1e-7), pytest.approx(0.7550398, abs=1e-7))
    assert tanh["saturated_fraction"] == 0.25  # tanh(3) = 0.995 of {tanh(-1), tanh(2), tanh(3), tanh(2.5)}


def test_conv_by_hand():
    """Conv 1 -> 1 channel, kernel [[1, -1]], bias 0.5, on one 2x3 image [[1, 2, 4], [0, 3, 1]]:
    z = [[1 - 2, 2 - 4], [0 - 3, 3 - 1]] + 0.5 = [[-0.5, -1.5], [-2.5, 2.5]]; ReLU: [[0, 0], [0, 2.5]];
    then a Linear 4 -> 1 of ones reads them (sum 2.5, bias 0)."""
    model = nn.Sequential(nn.Conv2d(1, 1, (1, 2)), nn.ReLU(), nn.Flatten(), nn.Linear(4, 1))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[[[1.0, -1.0]]]]))
        model[0].bias.fill_(0.5)
        model[3].weight.fill_(1.0)
        model[3].bias.zero_()
    image = torch.tensor([[[[1.0, 2.0, 4.0], [0.0, 3.0, 1.0]]]])
    conv, linear = data_metrics(model, image).layers
    np.testing.assert_allclose(conv.strength.per_node()[0], [-0.5, -1.5, -2.5, 2.5])  # nodes (c, y, x)
    np.testing.assert_allclose(conv.activation_values.per_node()[0], [0, 0, 0, 2.5])
    assert conv.summary()["neurons_activation"]["zero_fraction"] == 0.75
    np.testing.assert_allclose(linear.strength.per_node()[0], [2.5])
    without_bias = data_metrics(model, image, bias=False).layers[0]
    np.testing.assert_allclose(without_bias.strength.per_node()[0], [-1.0, -2.0, -3.0, 2.0])


def pre_activations(model, x):
    """Every Linear and Conv pre-activation of a digits Sequential, computed with torch's
    functional calls from the weights (not through the module's forward)."""
    seen, a = [], x
    with torch.no_grad():
        for layer in model:
            if isinstance(layer, nn.Conv2d):
                a = F.conv2d(a, layer.weight, layer.bias, stride=layer.stride, padding=layer.padding)
                seen.append(a.flatten(1))
            elif isinstance(layer, nn.Linear):
                a = F.linear(a, layer.weight, layer.bias)
                seen.append(a)
            elif isinstance(layer, nn.ReLU):
                a = F.relu(a)
            elif isinstance(layer, nn.Flatten):
                a = a.flatten(1)
            else:
                raise AssertionError(f"no functional form here for {layer}")
    return seen


@settings(max_examples=15, deadline=None)
@given(architecture=st.sampled_from(digits.ARCHITECTURES), seed=st.integers(0, 1000),
       samples=st.integers(1, 40), batch_size=st.integers(1, 17))
def test_strengths_are_the_modules_pre_activations(architecture, seed, samples, batch_size):
    model = digits.build(architecture, seed=seed)
    inputs = load_inputs("digits-test", samples, seed)
    result = data_metrics(model, inputs, batch_size=batch_size)
    for layer, expected in zip(result.layers, pre_activations(model, inputs.tensor), strict=True):
        mean, std = layer.strength.per_node()
        np.testing.assert_allclose(mean, expected.double().mean(0).numpy(), atol=1e-5)
        np.testing.assert_allclose(std, expected.double().std(0, unbiased=False).numpy(), atol=1e-5)
        after = F.relu(expected) if layer.activation == "relu" else expected
        np.testing.assert_allclose(layer.activation_values.per_node()[0], after.double().mean(0).numpy(), atol=1e-5)
        summary = layer.strength.summary(activation=False)
        assert sum(summary["histogram"]["counts"]) == (summary["sampled"] or expected.numel())
        # every value is kept here: the quantiles, extremes and zeros of NA are its own (to the
        # float32 rounding in which the functional calls and the graph may differ)
        na, exact = layer.activation_values.summary(activation=True), after.double().reshape(-1).numpy()
        assert list(na["quantiles"].values()) == pytest.approx(np.quantile(exact, QUANTILES).tolist(), abs=1e-6)
        assert (na["min"], na["max"]) == pytest.approx((exact.min(), exact.max()), abs=1e-6)
        assert na["zero_fraction"] == np.mean(exact == 0)


def test_permuting_hidden_neurons_permutes_their_values():
    model = digits.build("mlp", seed=3)
    inputs = load_inputs("digits", 64, 0)
    permuted = digits.build("mlp", seed=3)
    order = torch.randperm(32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        permuted[1].weight.copy_(model[1].weight[order])
        permuted[1].bias.copy_(model[1].bias[order])
        permuted[3].weight.copy_(model[3].weight[:, order])
    first, second = data_metrics(model, inputs).layers, data_metrics(permuted, inputs).layers
    np.testing.assert_allclose(second[0].strength.per_node()[0], first[0].strength.per_node()[0][order.numpy()],
                               atol=1e-6)
    for a, b in zip(first, second):  # pooled figures do not depend on the order of the neurons
        assert a.summary()["neurons_activation"]["mean"] == pytest.approx(b.summary()["neurons_activation"]["mean"])


def test_the_same_seed_gives_the_same_samples():
    first, again, other = load_inputs("digits", 100, 7), load_inputs("digits", 100, 7), load_inputs("digits", 100, 8)
    assert torch.equal(first.tensor, again.tensor) and first.digest == again.digest
    assert first.digest != other.digest
    assert first.record() == {"source": "digits", "samples": 100, "seed": 7, "hash": first.digest}


def test_a_graph_layer_the_datas_forward_pass_does_not_give_is_listed_as_not_measured():
    """The graph is read from one export and the data run through another (a dynamic batch): a
    layer with incoming links that the second lacks is listed, never dropped silently."""
    from nngraph.ingest import network_from_module

    model = e1()
    topology = network_from_module(model).topology
    result = data_metrics(model, E1_INPUTS)
    result.check_layers(topology, "e1")
    assert not result.not_measured and [layer.index for layer in result.layers] == [1, 2]
    hidden = result.layers.pop(0)
    result.check_layers(topology, "e1")
    assert [name for name, _ in result.not_measured] == [hidden.name]


def test_residual_cnn_with_batchnorm_reads_the_folded_values():
    """BatchNorm folded into its conv: the stem's NS is the BatchNorm's output, its NA the ReLU's."""
    model = resnet_digits().eval()
    with torch.no_grad():  # running statistics far from (0, 1), so a missed fold would show
        model[1].running_mean.uniform_(-1, 1, generator=torch.Generator().manual_seed(0))
        model[1].running_var.uniform_(0.5, 2, generator=torch.Generator().manual_seed(1))
    inputs = load_inputs("digits-test", 20, 0)
    result = data_metrics(model, inputs)
    assert not result.not_measured and result.layers[0].activation == "relu"
    with torch.no_grad():
        expected = model[1](model[0](inputs.tensor)).flatten(1).double()
    np.testing.assert_allclose(result.layers[0].strength.per_node()[0], expected.mean(0).numpy(), atol=1e-5)
    np.testing.assert_allclose(result.layers[0].activation_values.per_node()[0], F.relu(expected).mean(0).numpy(),
                               atol=1e-5)


@settings(max_examples=40, deadline=None)
@given(rows=st.integers(1, 40), nodes=st.integers(1, 40), seed=st.integers(0, 2**16),
       dtype=st.sampled_from([torch.float32, torch.float64]), rule=st.sampled_from(sorted(ACTIVATIONS)),
       transposed=st.booleans(), relu=st.booleans())
def test_compiled_batch_statistics_equal_torchs(rows, nodes, seed, dtype, rule, transposed, relu):
    """The CPU's compiled pass gives what torch's calls give (the CUDA path), with values lying
    exactly on every saturation threshold and on zero, for every activation's rule; the ReLU
    taken in the same pass gives what a pass over the ReLU's output gives."""
    generator = torch.Generator().manual_seed(seed)
    values = torch.randn(rows, nodes, generator=generator, dtype=dtype) * 2
    on_edges = torch.tensor([0.0, 0.99, -0.99, 1.0, -1.0, 0.01], dtype=dtype)
    values.view(-1)[torch.randint(0, rows * nodes, (rows * nodes // 3,), generator=generator)] = \
        on_edges[torch.randint(0, 6, (rows * nodes // 3,), generator=generator)]
    if transposed:  # a view that is not contiguous, as attention's heads give
        values = values.t().contiguous().t()
    saturation = ACTIVATIONS[rule]
    picks = torch.randint(0, rows * nodes, (17,), generator=generator)
    finite, moments, of_relu = batch_moments(values.numpy(), saturation, picks.numpy(), relu)
    t_finite, t_moments, t_of_relu = _torch_moments(values, saturation, picks.numpy(), relu)
    # float32 values are summed 64 rows at a time in float32: to its precision
    tolerance = 1e-5 if dtype == torch.float32 else 1e-12
    assert finite is t_finite is True
    for given_values, part, t_part, rule_of, rectified in [(values, moments, t_moments, saturation, False)] + \
            ([(F.relu(values), of_relu + moments[-1:], t_of_relu + t_moments[-1:], None, True)] if relu else []):
        mean, deviations, low, high, zeros, saturated, sample = part
        exact = given_values.double()
        scale = float(exact.abs().max()) + 1.0
        np.testing.assert_allclose(mean, exact.mean(0).numpy(), rtol=tolerance, atol=tolerance * scale)
        np.testing.assert_allclose(deviations, ((exact - exact.mean(0)) ** 2).sum(0).numpy(), rtol=tolerance,
                                   atol=tolerance * scale * scale)
        np.testing.assert_allclose(mean, t_part[0], rtol=1e-5, atol=1e-5 * scale)
        assert (low, high, zeros, saturated) == tuple(t_part[2:6]) == \
            (float(exact.min()), float(exact.max()), int((exact == 0).sum()), _saturated(given_values, rule_of))
        # a ReLU's sample is the values' sample, rectified when summarised
        np.testing.assert_array_equal(np.maximum(sample, 0) if rectified else sample,
                                      exact.reshape(-1)[picks].numpy())
        np.testing.assert_array_equal(t_part[6], sample)
    if relu:  # the same figures as a pass of their own over the ReLU's output
        alone = batch_moments(F.relu(values).numpy(), None, picks.numpy())[1]
        assert alone[2:6] == of_relu[2:6]
        np.testing.assert_array_equal(alone[6], np.maximum(moments[-1], 0))
        for figure, its_own in zip(of_relu[:2], alone[:2]):
            np.testing.assert_allclose(figure, its_own, rtol=tolerance, atol=tolerance)
    else:
        assert of_relu is t_of_relu is None
    whole, t_whole = batch_moments(values.numpy(), saturation)[1][-1], _torch_moments(values, saturation)[1][-1]
    np.testing.assert_array_equal(whole, values.double().reshape(-1).numpy())
    np.testing.assert_array_equal(t_whole, whole)


def _saturated(values, rule) -> int:
    if rule is None:
        return 0
    below, above, inclusive = rule
    low, high = float(torch.tensor(below, dtype=values.dtype)), float(torch.tensor(above, dtype=values.dtype))
    return int(((values <= low) | (values >= high)).sum() if inclusive else ((values < low) | (values > high)).sum())


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_both_batch_passes_find_a_non_finite_value(bad):
    values = torch.randn(70, 5, generator=torch.Generator().manual_seed(0))
    values[66, 3] = bad
    for relu in (False, True):
        assert batch_moments(values.numpy(), ACTIVATIONS["tanh"], None, relu)[0] is False
        assert _torch_moments(values, ACTIVATIONS["tanh"], None, relu)[0] is False


def test_compiled_batch_statistics_keep_a_small_spread_far_from_zero():
    """Values 1000 +- 0.001 in float32: the squared deviations stay those of the exact means (the
    pass works about the means rounded to float32 and corrects for the rounding)."""
    values = 1000.0 + 1e-3 * torch.randn(1000, 8, generator=torch.Generator().manual_seed(0))
    mean, deviations, *_ = batch_moments(values.numpy(), None)[1]
    exact = values.double()
    np.testing.assert_allclose(deviations, ((exact - exact.mean(0)) ** 2).sum(0).numpy(), rtol=1e-6)
    np.testing.assert_allclose(mean, exact.mean(0).numpy(), rtol=1e-9)


def test_a_module_measured_again_reads_its_new_weights():
    """The export is kept per module object: a second measurement after a training step (weights
    changed in place, or a parameter replaced) equals a first measurement of a copy with those
    weights."""
    model = digits.build("mlp", seed=1).eval()
    before = data_metrics(model, "digits", samples=50)
    with torch.no_grad():
        model[1].weight.mul_(2.0)
        model[3].bias.add_(1.0)
        model[5].weight = nn.Parameter(model[5].weight * 0.5)
    again = data_metrics(model, "digits", samples=50)
    fresh = data_metrics(copy.deepcopy(model), "digits", samples=50)
    for old, measured, expected in zip(before.layers, again.layers, fresh.layers):
        np.testing.assert_array_equal(measured.strength.per_node()[0], expected.strength.per_node()[0])
        assert not np.array_equal(measured.strength.per_node()[0], old.strength.per_node()[0])


@settings(max_examples=80, deadline=None)
@given(size=st.sampled_from([1, 2, 3, 5, 100, 16_384]), seed=st.integers(0, 2**16),
       scale=st.sampled_from([1e-4, 1.0, 30.0, 5e3]), ties=st.booleans(), on_grid=st.booleans(),
       single=st.booleans(), rectify=st.booleans())
def test_quantiles_and_grid_counts_of_the_sorted_sample_equal_numpys(size, seed, scale, ties, on_grid, single,
                                                                      rectify):
    """Read off the sorted sample (float32 or float64, rectified as read or not), bit for bit what
    np.quantile and a search per value give on the float64 values: ties, values exactly on the
    grid's edges and beyond its ends, samples of one value."""
    rng = np.random.default_rng(seed)
    values = rng.standard_normal(size) * scale
    if ties:
        values = np.round(values)
    if on_grid:
        values[rng.integers(0, size, max(1, size // 4))] = rng.choice(GRID, max(1, size // 4))
    values = values.astype(np.float32 if single else np.float64)
    exact = values.astype(np.float64)
    exact = np.maximum(exact, 0.0) if rectify else exact
    expected_counts = np.bincount(np.searchsorted(GRID, exact, side="right"), minlength=len(GRID) + 1).tolist()
    quantiles, counts = quantiles_and_grid_counts(np.sort(values), rectify)
    assert quantiles == np.quantile(exact, QUANTILES).tolist()
    assert counts == expected_counts


@pytest.mark.parametrize("architecture", ["mlp", "cnn"])
def test_a_measurements_samples_sorted_together_give_each_streams_own_summary(architecture):
    """A measurement's samples are sorted in one call (one buffer, shared out among the threads):
    every stream's quantiles and grid counts are still numpy's on its own sample (the first
    layers' sampled, the last layers' whole), ReLU layers' NA rectified from NS's."""
    measured = data_metrics(digits.build(architecture, seed=2), load_inputs("digits", 1000, 0))
    summary = measured.summary()
    streams = [(layer["neurons_strength"], source.strength) for layer, source in zip(summary["layers"], measured.layers)]
    streams += [(layer["neurons_activation"], source.activation_values)
                for layer, source in zip(summary["layers"], measured.layers)]
    assert len({id(s.sorted_cache.base) for _, s in streams if s.rectifies is None}) == 1  # one buffer
    for figures, stream in streams:
        exact = stream.sampled_values()
        assert figures["sampled"] in (None, exact.size)
        assert list(figures["quantiles"].values()) == np.quantile(exact, QUANTILES).tolist()
        assert figures["histogram"]["counts"] == np.bincount(np.searchsorted(GRID, exact, side="right"),
                                                             minlength=len(GRID) + 1).tolist()
    assert {figures["sampled"] is None for figures, _ in streams} == {True, False}  # whole and sampled


@pytest.mark.parametrize("rectified", [False, True])
def test_summary_of_a_float32_stream_equals_numpy_on_its_values(rectified):
    """The summary sorts a float32 sample by radix, once: its quantiles and grid counts are
    numpy's on the same values (a ReLU's rectified sample included), and a batch added after a
    summary is in the next one."""
    batches = torch.from_numpy(np.random.default_rng(3).standard_normal((2, 250, 32)).astype(np.float32))
    source = Stream(32, 500)
    stream = Stream(32, 500, activation=True) if rectified else source  # a ReLU's NA, fed by NS's add
    for count in (1, 2):
        assert source.add(batches[count - 1], seed=0, relu=stream if rectified else None)
        exact = batches[:count].double().reshape(-1).numpy()
        exact = np.maximum(exact, 0.0) if rectified else exact
        summary = stream.summary(activation=False)
        assert summary["sampled"] is None and summary["count"] == exact.size
        assert list(summary["quantiles"].values()) == np.quantile(exact, QUANTILES).tolist()
        assert summary["histogram"]["counts"] == np.bincount(np.searchsorted(GRID, exact, side="right"),
                                                             minlength=len(GRID) + 1).tolist()


def test_a_relus_activations_are_summarised_from_its_strengths_sorted_sample():
    """A ReLU layer's NA stream is fed by its NS stream's pass: its summary rectifies NS's sorted
    sample, and equals numpy's on the ReLU's own output."""
    model = digits.build("mlp", seed=1)
    inputs = load_inputs("digits", 300, 0)
    hidden = data_metrics(model, inputs).layers[0]
    assert hidden.activation == "relu" and hidden.activation_values.rectifies is hidden.strength
    na = hidden.activation_values.summary(activation=True)
    with torch.no_grad():
        exact = F.relu(model[1](model[0](inputs.tensor.float()))).double().reshape(-1).numpy()
    assert na["sampled"] is None
    assert list(na["quantiles"].values()) == pytest.approx(np.quantile(exact, QUANTILES).tolist(), abs=1e-6)
    assert na["histogram"]["counts"] == np.bincount(np.searchsorted(GRID, exact, side="right"),
                                                    minlength=len(GRID) + 1).tolist()


def test_fixed_grid_is_shared_and_symmetric():
    assert GRID[len(GRID) // 2] == 0 and np.allclose(GRID, -GRID[::-1]) and np.all(np.diff(GRID) > 0)


@pytest.mark.parametrize("data,samples,message", [
    (torch.zeros(3, 5), None, "do not fit the model"),
    (torch.zeros(0, 1, 8, 8), None, "holds no samples"),
    ("digits", 5000, "holds only 1257 samples"),
    ("no_such_package.module:factory", 2, "cannot import it"),
    ("json:loads", 2, "the factory raised TypeError"),
    (torch.full((2, 1, 8, 8), float("nan")), None, "NaN or infinite"),
    ("digits", 0, "--samples 0"),
])
def test_bad_data_is_one_clear_line(data, samples, message):
    with pytest.raises(NNGraphError, match=message) as error:
        data_metrics(digits.build("mlp"), data, samples=samples)
    assert "\n" not in str(error.value)


def test_non_finite_activations_name_the_layer():
    model = digits.build("mlp")
    with torch.no_grad():
        model[3].weight.fill_(1e38)
    with pytest.raises(NNGraphError, match="layer 3: its strengths on these inputs are NaN or infinite"):
        data_metrics(model, "digits", samples=10)


def test_tensor_files(tmp_path):
    x = torch.rand(6, 1, 8, 8)
    torch.save(x, tmp_path / "x.pt")
    np.save(tmp_path / "x.npy", x.numpy())
    from safetensors.torch import save_file

    save_file({"inputs": x}, tmp_path / "x.safetensors")
    digests = {load_inputs(str(tmp_path / name)).digest for name in ("x.pt", "x.npy", "x.safetensors")}
    assert len(digests) == 1
    (tmp_path / "objects.pt").write_bytes(b"not a tensor file")
    with pytest.raises(NNGraphError, match="cannot read it as a tensor"):
        load_inputs(str(tmp_path / "objects.pt"))


class ElmanE2(nn.Module):
    """METRICS.md section 6, E2: d_in = 1, H = 2, ReLU, then y = W_y h_T."""

    def __init__(self):
        super().__init__()
        self.rnn = nn.RNN(1, 2, nonlinearity="relu", batch_first=True)
        self.out = nn.Linear(2, 1)
        with torch.no_grad():
            self.rnn.weight_ih_l0.copy_(torch.tensor([[1.0], [-1.0]]))
            self.rnn.weight_hh_l0.copy_(torch.tensor([[0.5, 0.0], [1.0, -0.5]]))
            self.rnn.bias_ih_l0.copy_(torch.tensor([0.0, 0.5]))
            self.rnn.bias_hh_l0.zero_()
            self.out.weight.copy_(torch.tensor([[1.0, 1.0]]))
            self.out.bias.zero_()

    def forward(self, x):
        sequence, _ = self.rnn(x)
        return self.out(sequence[:, -1])


def test_e2_elman_per_step_and_pooled_over_time():
    result = data_metrics(ElmanE2(), torch.tensor([[[2.0], [1.0]]]))
    h1, h2, y = result.layers
    assert (h1.name, h2.name, h1.time_step, h2.time_step) == ("rnn.h[1]", "rnn.h[2]", 1, 2)
    np.testing.assert_allclose(h1.strength.per_node()[0], [2.0, -1.5])
    np.testing.assert_allclose(h1.activation_values.per_node()[0], [2.0, 0.0])
    np.testing.assert_allclose(h2.strength.per_node()[0], [2.0, 1.5])
    np.testing.assert_allclose(h2.activation_values.per_node()[0], [2.0, 1.5])
    np.testing.assert_allclose(y.strength.per_node()[0], [3.5])
    (pooled,) = result.over_time()
    ns, na = pooled.summary()["neurons_strength"], pooled.summary()["neurons_activation"]
    assert pooled.name == "rnn.h[1..2]" and pooled.activation == "relu"
    assert (ns["mean"], ns["std"]) == (pytest.approx(1.0), pytest.approx(1.4577380, abs=1e-7))
    assert (na["mean"], na["std"]) == (pytest.approx(1.375), pytest.approx(0.8196798, abs=1e-7))
    assert result.summary()["over_time"][0]["name"] == "rnn.h[1..2]"


@pytest.mark.parametrize("cell", [nn.LSTM, nn.GRU, nn.RNN])
@pytest.mark.parametrize("layers", [1, 2])
def test_recurrent_steps_recomputed_equal_the_modules_states(cell, layers):
    """Each step's h (NA) and the last c of an LSTM, recomputed from the op's equations, equal what
    the module returns; gates' NA is their activation of their NS."""
    torch.manual_seed(layers)

    class Reader(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = cell(8, 6, num_layers=layers, batch_first=True)
            self.out = nn.Linear(6, 10)

        def forward(self, x):
            sequence, _ = self.rnn(x)
            return self.out(sequence[:, -1])

    model = Reader().eval()
    inputs = load_inputs("digits-test", 30, 0)
    rows = inputs.tensor.reshape(30, 8, 8)
    result = data_metrics(model, rows)
    with torch.no_grad():
        sequence, state = model.rnn(rows)
    prefix = "rnn" if layers == 1 else f"rnn.l{layers - 1}"
    by_name = {layer.name: layer for layer in result.layers}
    for t in range(1, 9):
        np.testing.assert_allclose(by_name[f"{prefix}.h[{t}]"].activation_values.per_node()[0],
                                   sequence[:, t - 1].double().mean(0).numpy(), atol=1e-5)
    if cell is nn.LSTM:
        np.testing.assert_allclose(by_name[f"{prefix}.c[8]"].activation_values.per_node()[0],
                                   state[1][-1].double().mean(0).numpy(), atol=1e-5)
        gate = by_name[f"{prefix}.f[3]"]
        assert gate.activation == "sigmoid" and 0 < gate.summary()["neurons_activation"]["min"]
    assert not result.not_measured and len(result.over_time()) == {nn.LSTM: 6, nn.GRU: 4, nn.RNN: 1}[cell] * layers


def test_datasets_and_loaders_from_a_factory():
    """A Dataset of (image, label) pairs is sampled with the seed; a DataLoader gives its first
    batches, in its own order; both give the images themselves."""
    test_x = digits.load().test_x
    from_dataset = load_inputs("models:digits_tensors", 50, 4)
    order = torch.randperm(540, generator=torch.Generator().manual_seed(4))[:50].sort().values
    assert torch.equal(from_dataset.tensor, test_x[order])
    from_loader = load_inputs("models:digits_loader", 100, 0)
    assert torch.equal(from_loader.tensor, test_x[:100])
    assert load_inputs("models:digits_loader").count == 540


def test_an_autoencoder_is_one_chain():
    """Encoder then decoder (METRICS.md section 6): every Linear layer's nodes, in order."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 4), nn.Tanh(), nn.Linear(4, 16),
                          nn.ReLU(), nn.Linear(16, 64), nn.Sigmoid())
    result = data_metrics(model, "digits-test", samples=64)
    assert [(layer.strength.nodes, layer.activation) for layer in result.layers] == [
        (16, "relu"), (4, "tanh"), (16, "relu"), (64, "sigmoid")]
    output = result.layers[-1].summary()["neurons_activation"]
    assert 0 <= output["min"] and output["max"] <= 1 and output["saturated_fraction"] is not None

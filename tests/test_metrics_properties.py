"""Vectorised metrics against straightforward loops over the explicit edge list."""

import itertools
import subprocess
import sys
from unittest import mock

import numpy as np
import pytest
import torch
import torch.nn as nn
from hypothesis import given, settings, strategies as st

from helpers import metrics_of
from nngraph.errors import NNGraphError
from nngraph.ingest import network_from_module, row_sort
from nngraph.ingest.edges import EdgePolicy
from nngraph.ingest.graph_rows import pixel_edges
from nngraph.ingest.link_weights import (HISTOGRAM_BINS, QUANTILES, SAMPLE_SIZE, LinkWeightStats, gather,
                                          link_weight_stats)
from nngraph.ingest.persistence import neural_persistence
from nngraph.ingest.row_sort import RADIX_MIN, read_off, sort_rows, sort_segments
from nngraph.ingest.strengths import Moments, dense_strengths

SETTINGS = settings(max_examples=40, deadline=None)


def loop_strengths(edges, n_nodes):
    s_in, s_out = np.zeros(n_nodes[1]), np.zeros(n_nodes[0])
    for i, j, w in edges:
        s_out[i] += w
        s_in[j] += w
    return s_in, s_out


@SETTINGS
@given(sizes=st.lists(st.integers(1, 7), min_size=2, max_size=5), seed=st.integers(0, 10_000))
def test_mlp_strengths_equal_edge_list_loop(sizes, seed):
    torch.manual_seed(seed)
    layers = [nn.Linear(a, b).double() for a, b in zip(sizes, sizes[1:])]
    result = metrics_of(nn.Sequential(*layers))
    expected_in, expected_out = [None] * len(sizes), [None] * len(sizes)
    for k, linear in enumerate(layers):
        w = linear.weight.detach().numpy()
        edges = [(i, j, w[j, i]) for j in range(w.shape[0]) for i in range(w.shape[1])]
        s_in, expected_out[k] = loop_strengths(edges, (w.shape[1], w.shape[0]))
        expected_in[k + 1] = s_in + linear.bias.detach().numpy()
    for k, node_layer in enumerate(result.node_layers):
        sides = [s for s in (expected_in[k], expected_out[k]) if s is not None]
        np.testing.assert_allclose(node_layer.strength, sum(sides), atol=1e-12)
        assert node_layer.fluctuation == pytest.approx(float(np.std(sum(sides))), abs=1e-12)


LAYOUTS = ["contiguous", "transposed", "rows of wider rows", "transposed, of wider rows", "every other column"]


def stored_as(layout: str, n_out: int, n_in: int, generator, dtype) -> torch.Tensor:
    """An (n_out, n_in) weight as a view of the layout stored: GPT-2's Conv1D keeps (in, out), and
    its fused qkv is split into slices of wider rows."""
    wider = {"rows of wider rows": (n_out, n_in + 5), "transposed, of wider rows": (n_in, n_out + 5),
             "transposed": (n_in, n_out), "every other column": (n_out, 2 * n_in)}.get(layout, (n_out, n_in))
    stored = torch.randn(*wider, generator=generator, dtype=dtype)
    view = {"rows of wider rows": lambda: stored[:, 3:3 + n_in], "transposed": lambda: stored.T,
            "transposed, of wider rows": lambda: stored[:, 2:2 + n_out].T, "every other column": lambda: stored[:, ::2],
            "contiguous": lambda: stored}[layout]()
    assert view.shape == (n_out, n_in)
    return view


@SETTINGS
@given(n_out=st.integers(1, 150), n_in=st.integers(1, 40), rows_per_block=st.integers(1, 9),
       dtype=st.sampled_from([torch.float32, torch.float64]), layout=st.sampled_from(LAYOUTS),
       scaled=st.sampled_from([(), ("rows",), ("columns",), ("rows", "columns")]), shifted=st.booleans(),
       parallel=st.booleans(), seed=st.integers(0, 10_000))
def test_compiled_and_torch_dense_passes_equal_numpy(n_out, n_in, rows_per_block, dtype, layout, scaled,
                                                     shifted, parallel, seed):
    """The compiled one-read pass (float layers on the CPU: scales and a read norm's shift folded as
    it reads, on one thread or several) and torch's passes over the folded weight (the GPU's, in
    blocks) give the strengths, moments and sample float64 numpy gives, for row counts that are
    not multiples of four, over several blocks of rows, and weights that are views of the layouts
    stored."""
    check_dense_passes(n_out, n_in, rows_per_block, dtype, layout, scaled, shifted, parallel, seed)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("shifted", [False, True])
def test_dense_passes_of_every_layout(layout, shifted):
    """Every layout, with and without a shift, over more than one block of 64 rows either way."""
    for parallel in (False, True):
        check_dense_passes(70, 67, 5, torch.float32, layout, ("rows", "columns"), shifted, parallel, 3)


def check_dense_passes(n_out, n_in, rows_per_block, dtype, layout, scaled, shifted, parallel, seed):
    from nngraph.ingest import fused_sums
    from nngraph.ingest.folding import Folded

    generator = torch.Generator().manual_seed(seed)
    weight = stored_as(layout, n_out, n_in, generator, dtype)
    transposed = layout.startswith("transposed")
    bias = torch.randn(n_out, generator=generator, dtype=dtype)
    # each combination of scales given and left out is a loop of its own (numba prunes the other)
    row_scale, col_scale = (torch.randn(n, generator=generator, dtype=dtype) if side in scaled else None
                            for n, side in ((n_out, "rows"), (n_in, "columns")))
    folded = weight if row_scale is None else row_scale[:, None] * weight
    folded = folded if col_scale is None else folded * col_scale[None, :]
    w = weight.double().numpy()
    if row_scale is not None:
        w = row_scale.double().numpy()[:, None] * w
    if col_scale is not None:
        w = w * col_scale.double().numpy()[None, :]
    positions = np.sort(np.random.default_rng(seed).choice(w.size, min(w.size, 7), replace=False))
    tolerance = 1e-4 if dtype == torch.float32 else 1e-10
    b = bias.double().numpy()
    read_shift = torch.randn(n_in, generator=generator, dtype=dtype) if shifted else None
    if shifted:  # the links read x + shift: W shift, with the rows' scales, belongs to the bias
        shift_through = weight.double().numpy() @ read_shift.double().numpy()
        b = b + (shift_through if row_scale is None else row_scale.double().numpy() * shift_through)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(fused_sums, "PARALLEL_MIN_ELEMENTS", 1 if parallel else 1 << 40)
        into, out_of, moments, full_bias, bias_moments, sample = fused_sums.folded_sums(
            weight, row_scale, col_scale, positions, bias.numpy(), read_shift)
    # a transposed view is read as stored: its sample holds the same weights, in the stored order
    expected_sample = w.T.ravel()[np.sort((positions % n_in) * n_out + positions // n_in)] if transposed else \
        w.ravel()[positions]
    np.testing.assert_allclose(sample, expected_sample, rtol=1e-6)
    np.testing.assert_allclose(full_bias, b, atol=tolerance * (1 + np.abs(weight.double().numpy()).sum(1).max()))
    assert bias_moments.count == b.size
    assert (bias_moments.low, bias_moments.high) == pytest.approx((b.min(), b.max()), abs=tolerance * (1 + np.abs(b).max()))
    assert bias_moments.total == pytest.approx(b.sum(), abs=tolerance * (1 + np.abs(b).sum()))
    torch_bias = Folded(weight, bias, row_scale, None, read_shift).full_bias()
    np.testing.assert_allclose(torch_bias.double().numpy(), b, atol=tolerance * (1 + np.abs(b).max()))
    torch_pass = dense_strengths(folded, torch_bias, torch.device("cpu"), rows_per_block * n_in)
    for s_in, s_out, moments in ((into, out_of, moments), torch_pass):
        s_in, s_out = np.asarray(s_in, np.float64), np.asarray(s_out, np.float64)
        np.testing.assert_allclose(s_in, w.sum(1) + b, atol=tolerance * (1 + np.abs(w).max() + np.abs(b).max()))
        np.testing.assert_allclose(s_out, w.sum(0), atol=tolerance * (1 + np.abs(w).max()))
        assert moments.count == w.size
        assert moments.total == pytest.approx(w.sum(), abs=tolerance * w.size)
        assert moments.squares == pytest.approx((w * w).sum(), rel=1e-5)
        assert (moments.low, moments.high) == pytest.approx((w.min(), w.max()), rel=1e-6)


def test_compute_metrics_reads_dense_layers_in_the_compiled_pass_exactly(monkeypatch):
    """A float32 Linear layer on the CPU goes through the compiled graph pass, once; its strengths
    and link statistics are exact; a NaN weight is found."""
    from nngraph.ingest import graph_pass

    calls = []
    original = graph_pass.GraphVersion.read
    monkeypatch.setattr(graph_pass.GraphVersion, "read", lambda self, first, stop: calls.extend(
        self.plan.shapes[key] for key in self.plan.dims[first:stop, 0]) or original(self, first, stop))
    generator = torch.Generator().manual_seed(5)
    linear = nn.Linear(300, 1000)
    with torch.no_grad():
        linear.weight.copy_(torch.randn(1000, 300, generator=generator))
    w, b = linear.weight.detach().double().numpy(), linear.bias.detach().double().numpy()
    result = metrics_of(linear, persistence=False)
    assert [tuple(shape) for shape in calls] == [(1000, 300)]
    np.testing.assert_allclose(result.node_layers[0].strength, w.sum(0), atol=1e-3)
    np.testing.assert_allclose(result.node_layers[1].strength, w.sum(1) + b, atol=1e-3)
    stats = result.weight_layers[0].link_weights
    assert stats["std"] == pytest.approx(np.concatenate([w.ravel(), b]).std(), rel=1e-6)
    assert (stats["min"], stats["max"]) == pytest.approx((min(w.min(), b.min()), max(w.max(), b.max())))
    with torch.no_grad():
        linear.weight[999, 299] = float("nan")
    with pytest.raises(NNGraphError, match="NaN or infinite"):
        metrics_of(linear, persistence=False)


def conv_edge_list(layer, in_shape):
    """Every (input node, output node, weight) of a Conv2d's pixel-level graph, padding excluded."""
    kernel = layer.weight.detach().numpy()
    stride, padding, dilation, groups = layer.stride[0], layer.padding[0], layer.dilation[0], layer.groups
    c_out, c_in_group, kh, kw = kernel.shape
    c_in, h, w = in_shape
    h_out = (h + 2 * padding - dilation * (kh - 1) - 1) // stride + 1
    w_out = (w + 2 * padding - dilation * (kw - 1) - 1) // stride + 1
    per_group_out = c_out // groups
    edges = []
    for co, i, j, ci_local, n, m in itertools.product(range(c_out), range(h_out), range(w_out),
                                                      range(c_in_group), range(kh), range(kw)):
        ci = (co // per_group_out) * c_in_group + ci_local
        y, x = i * stride + n * dilation - padding, j * stride + m * dilation - padding
        if 0 <= y < h and 0 <= x < w:
            edges.append(((ci * h + y) * w + x, (co * h_out + i) * w_out + j, kernel[co, ci_local, n, m]))
    return edges, c_out * h_out * w_out


def random_conv(groups, c_in_group, c_out_group, size, k, stride, padding, dilation, seed):
    """A seeded float64 Conv2d of that geometry and its input shape, or None when the kernel
    does not fit the padded input (no output)."""
    if dilation * (k - 1) + 1 > size + 2 * padding:
        return None
    torch.manual_seed(seed)
    layer = nn.Conv2d(c_in_group * groups, c_out_group * groups, k, stride=stride, padding=padding,
                      dilation=dilation, groups=groups).double()
    return layer, (c_in_group * groups, size, size)


CONV_CASES = st.builds(random_conv, groups=st.integers(1, 2), c_in_group=st.integers(1, 2),
                       c_out_group=st.integers(1, 2), size=st.integers(3, 7), k=st.integers(1, 3),
                       stride=st.integers(1, 3), padding=st.integers(0, 2), dilation=st.integers(1, 2),
                       seed=st.integers(0, 10_000)).filter(lambda case: case is not None)


@SETTINGS
@given(case=CONV_CASES)
def test_conv_strengths_equal_edge_list_loop(case):
    layer, in_shape = case
    result = metrics_of(layer, in_shape)
    bias = layer.bias.detach().numpy()
    edges, n_out = conv_edge_list(layer, in_shape)
    s_in, s_out = loop_strengths(edges, (int(np.prod(in_shape)), n_out))
    s_in += np.repeat(bias, n_out // len(bias))
    np.testing.assert_allclose(result.node_layers[0].strength, s_out, atol=1e-12)
    np.testing.assert_allclose(result.node_layers[1].strength, s_in, atol=1e-12)
    assert result.weight_layers[0].edges == len(edges)


def kruskal_persistence(w_abs):
    """Plain union-find Kruskal on the bipartite layer graph, weights taken in descending order."""
    n_in = w_abs.shape[1]
    parent = list(range(n_in + w_abs.shape[0]))

    def find(a):
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    merges = []
    for weight, j, i in sorted(((w_abs[j, i], j, i) for j in range(w_abs.shape[0]) for i in range(n_in)),
                               reverse=True):
        a, b = find(i), find(n_in + j)
        if a != b:
            parent[a] = b
            merges.append(weight)
    return float(np.linalg.norm(1.0 - np.array(merges)))


@SETTINGS
@given(n_out=st.integers(1, 6), n_in=st.integers(1, 6), seed=st.integers(0, 10_000))
def test_neural_persistence_equals_union_find(n_out, n_in, seed):
    weight = torch.randn(n_out, n_in, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    scale = float(weight.abs().max()) * 1.5  # the network's max may come from another layer
    value, normalised = neural_persistence(weight, scale)
    assert value == pytest.approx(kruskal_persistence(weight.abs().numpy() / scale), abs=1e-12)
    assert normalised == pytest.approx(value / (n_in + n_out - 1) ** 0.5)


@settings(max_examples=25, deadline=None)
@given(n_out=st.integers(1, 40), n_in=st.integers(1, 40), seed=st.integers(0, 10_000), ties=st.booleans())
def test_neural_persistence_of_larger_layers_with_ties_equals_union_find(n_out, n_in, seed, ties):
    """Prim's tree on wider layers, where many weights tie (rounded to one decimal), keeps
    Kruskal's weights."""
    weight = torch.randn(n_out, n_in, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    if ties:
        weight = torch.round(weight * 10) / 10
    scale = max(float(weight.abs().max()), 1.0)
    value, _ = neural_persistence(weight, scale)
    assert value == pytest.approx(kruskal_persistence(weight.abs().numpy() / scale), abs=1e-12)


def test_neural_persistence_hand_example():
    # |W| / max = [[1, 0.5], [0.25, 0]]: the tree takes 1, 0.5, 0.25 -> persistences 0, 0.5, 0.75
    value, normalised = neural_persistence(torch.tensor([[4.0, -2.0], [1.0, 0.0]]), 4.0)
    assert value == pytest.approx((0.5 ** 2 + 0.75 ** 2) ** 0.5)
    assert normalised == pytest.approx(value / 3 ** 0.5)


def test_link_weight_stats_exact_and_sampled():
    generator = torch.Generator().manual_seed(3)
    weight, bias = torch.randn(300, 200, generator=generator), torch.randn(300, generator=generator)
    moments = Moments()
    moments.add(weight)
    sample = np.concatenate([weight.numpy().ravel(), bias.numpy()]).astype(np.float64)
    exact = link_weight_stats(weight, bias, moments, exact_limit=sample.size)
    assert exact["sampled"] is None and exact["count"] == sample.size
    assert exact["mean"] == pytest.approx(sample.mean(), abs=1e-6)
    assert exact["std"] == pytest.approx(sample.std(), rel=1e-6)
    assert (exact["min"], exact["max"]) == (pytest.approx(sample.min()), pytest.approx(sample.max()))
    for q in QUANTILES:
        assert exact["quantiles"][f"q{round(q * 100):02d}"] == pytest.approx(np.quantile(sample, q), rel=1e-6)
    counts, edges = np.histogram(sample, HISTOGRAM_BINS, range=(sample.min(), sample.max()))
    np.testing.assert_allclose(exact["histogram"]["edges"], edges, rtol=1e-6)
    assert exact["histogram"]["counts"] == counts.tolist()
    sampled = link_weight_stats(weight, bias, moments)
    assert sampled["sampled"] == SAMPLE_SIZE and sampled["mean"] == exact["mean"]
    assert sum(sampled["histogram"]["counts"]) == SAMPLE_SIZE
    # the rank of a sampled quantile is off by sqrt(q (1 - q) / 4096): 0.8% at the median (one s.d.)
    for q in (0.05, 0.5, 0.95):
        rank = (sample <= sampled["quantiles"][f"q{round(q * 100):02d}"]).mean()
        assert abs(rank - q) < 4 * (q * (1 - q) / SAMPLE_SIZE) ** 0.5


@settings(max_examples=60, deadline=None)
@given(rows=st.integers(1, 3), length=st.sampled_from([1, 2, 65, 4096]), seed=st.integers(0, 2**16),
       dtype=st.sampled_from([np.float32, np.float64]), on_edges=st.booleans(), constant=st.booleans())
def test_read_off_counts_equal_numpys_histogram(rows, length, seed, dtype, on_edges, constant):
    """Each sorted row's bin counts over its (min, max) are np.histogram's: values on the edges
    (counted in the bin they open), at the top (in the last, closed bin), a row of one value
    (one bin around it)."""
    rng = np.random.default_rng(seed)
    samples = rng.standard_normal((rows, length)).astype(dtype)
    if constant:
        samples[0] = 0.75
    ranges = np.array([(row.min(), row.max()) if row.max() > row.min() else (row.min() - 0.5, row.max() + 0.5)
                       for row in samples.astype(np.float64)])
    if on_edges and not constant:  # values exactly on edges of their row's bins (as far as the type holds them)
        for row, (low, high) in zip(samples, ranges):
            row[rng.integers(0, length, length // 3)] = np.linspace(low, high, HISTOGRAM_BINS + 1)[
                rng.integers(1, HISTOGRAM_BINS, length // 3)].astype(dtype)
        ranges = np.array([(row.min(), row.max()) if row.max() > row.min() else (row.min() - 0.5, row.max() + 0.5)
                           for row in samples.astype(np.float64)])
    samples.sort(axis=1)
    quantiles = np.empty((rows, len(QUANTILES)))
    edges, counts = np.empty((rows, HISTOGRAM_BINS + 1)), np.empty((rows, HISTOGRAM_BINS), np.int64)
    read_off(samples, np.array(QUANTILES) * (length - 1), ranges, quantiles, edges, counts)
    for row, (low, high), row_edges, row_counts in zip(samples, ranges, edges, counts):
        expected, expected_edges = np.histogram(row.astype(np.float64), HISTOGRAM_BINS, range=(low, high))
        assert row_counts.tolist() == expected.tolist()
        np.testing.assert_array_equal(row_edges, expected_edges)


def test_link_weight_stats_of_many_layers_equal_each_layer_alone():
    """Samples are sorted together, grouped by length and dtype: each layer's statistics are the
    ones it gets alone, whatever else was added."""
    generator = torch.Generator().manual_seed(4)
    layers = [(torch.randn(40, 30, generator=generator, dtype=dtype), bias)
              for dtype in (torch.float32, torch.float64) for bias in (None, torch.randn(40, generator=generator))]
    layers += [(torch.randn(200, 100, generator=generator).T, None), (torch.full((5, 5), 2.0), None)]
    together = LinkWeightStats(exact_limit=5000)
    for weight, bias in layers:
        moments = Moments()
        moments.add(weight)
        positions = together.weight_positions(weight.numel(), 0 if bias is None else bias.numel())
        together.add(gather(weight, positions), None if bias is None else bias.numpy(), moments)
    results = together.results()
    for (weight, bias), stats in zip(layers, results, strict=True):
        moments = Moments()
        moments.add(weight)
        assert stats == link_weight_stats(weight, bias, moments, exact_limit=5000)
    assert results[-1]["histogram"]["counts"][HISTOGRAM_BINS // 2] == 25 and results[-1]["quantiles"]["q50"] == 2.0



@settings(max_examples=30, deadline=None)
@given(rows=st.integers(1, 4), length=st.sampled_from([1, 7, RADIX_MIN - 1, RADIX_MIN, 4096, 5001]),
       seed=st.integers(0, 2**16), scale=st.sampled_from([1e-30, 1e-3, 1.0, 1e30]),
       dtype=st.sampled_from([np.float32, np.float64]), constant=st.booleans(), by_numpy=st.booleans())
def test_rows_sorted_in_place_equal_numpys_sort(rows, length, seed, scale, dtype, constant, by_numpy):
    """The radix sort of float32 rows gives numpy's order: negatives, signed zeros, infinities,
    ties, a row of one value (its digits' passes skipped), values far from 1; and so does numpy's
    sort in place, on a machine where it is the quicker."""
    rng = np.random.default_rng(seed)
    samples = (rng.standard_normal((rows, length)) * scale).astype(dtype)
    special = np.array([0.0, -0.0, np.inf, -np.inf, 1.5, -1.5], dtype)
    samples.flat[rng.integers(0, samples.size, samples.size // 5)] = special[rng.integers(0, 6, samples.size // 5)]
    if constant:
        samples[0] = -2.25
    expected = np.sort(samples, axis=1)
    with mock.patch.object(row_sort, "numpy_sort_is_quicker", lambda: by_numpy):
        sort_rows(samples)
    np.testing.assert_array_equal(samples, expected)
    assert samples.dtype == dtype


@settings(max_examples=30, deadline=None)
@given(lengths=st.lists(st.sampled_from([0, 1, 7, 2047, 4096, 16_384]), min_size=1, max_size=5),
       seed=st.integers(0, 2**16), scale=st.sampled_from([1e-30, 1.0, 1e30]), by_numpy=st.booleans())
def test_segments_sorted_together_equal_numpys_sort_of_each(lengths, seed, scale, by_numpy):
    """The segments of one float32 buffer, shared out among the threads (or one after the other
    by numpy), each sorted as numpy sorts it alone (signed zeros, infinities, ties, empty and
    one-value segments), none crossing into its neighbours."""
    rng = np.random.default_rng(seed)
    values = (rng.standard_normal(sum(lengths)) * scale).astype(np.float32)
    special = np.array([0.0, -0.0, np.inf, -np.inf, 1.5], np.float32)
    values[rng.integers(0, max(values.size, 1), values.size // 5)] = special[rng.integers(0, 5, values.size // 5)]
    bounds = np.cumsum([0] + lengths)
    expected = np.concatenate([np.sort(values[a:b]) for a, b in zip(bounds[:-1], bounds[1:])])
    with mock.patch.object(row_sort, "numpy_sort_is_quicker", lambda: by_numpy):
        sort_segments(values, bounds)
    np.testing.assert_array_equal(values, expected)


@SETTINGS
@given(case=CONV_CASES)
def test_stored_pixel_links_are_the_explicit_edge_list(case):
    layer, in_shape = case
    network = network_from_module(layer, in_shape)
    blocks = list(pixel_edges(layer.weight, network.topology.weight_layers[0]))
    stored = sorted(zip(*(np.concatenate(parts).tolist() for parts in zip(*blocks))))
    expected, _ = conv_edge_list(layer, in_shape)
    assert stored == sorted((int(a), int(b), float(w)) for a, b, w in expected)


@SETTINGS
@given(n_out=st.integers(1, 6), n_in=st.integers(1, 6), k=st.integers(1, 7), seed=st.integers(0, 10_000))
def test_topk_on_an_edge_list_equals_topk_on_the_matrix(n_out, n_in, k, seed):
    weight = torch.randn(n_out, n_in, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    policy = EdgePolicy.parse(f"topk:{k}")
    from_list = policy.filter_list(*EdgePolicy().select(weight))
    from_matrix = policy.select(weight)
    assert sorted(zip(*(a.tolist() for a in from_list))) == sorted(zip(*(a.tolist() for a in from_matrix)))


def test_compiled_pass_works_without_a_writable_cache_directory(tmp_path):
    """numba refuses to cache when neither the package's __pycache__ nor the user's cache
    directory is writable (a read-only install): the loop then compiles in each process."""
    script = tmp_path / "no_cache.py"
    script.write_text(
        "import numba.core.caching as caching, numpy as np, torch\n"
        "caching.CacheImpl._locator_classes = []  # no place to cache, as on a read-only install\n"
        "from nngraph.ingest.fused_sums import folded_sums\n"
        "into, out_of, moments, _, _, sample = folded_sums(torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]),\n"
        "                                                  None, None, np.array([1, 5]))\n"
        "print(into.tolist(), moments.squares, out_of.tolist(), sample.tolist())\n")
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[0] == "[6.0, 15.0] 91.0 [5.0, 7.0, 9.0] [2.0, 6.0]"

"""A batch of one node layer's values on the CPU, summarised in two compiled reads.

torch needs about a dozen calls per batch for what a Stream keeps (column means and squared
deviations, extremes, zeros, saturated values, a finiteness check, the sample), each a pass
over the batch and most with a temporary; on the digits networks those calls cost many times
the forward pass itself (bench/data_metrics.py). This loop (numba) reads the batch twice:
column sums, extremes and counts, then the squared deviations from the column means, and
gathers the sample. A ReLU layer's activations are read from its strengths in the same two
reads: max(v, 0) is exact, so its NA needs no read of its own (nor a sample: it is NS's,
rectified).
"""

from __future__ import annotations

import math

import numpy as np

from .fused_sums import FLUSH_ROWS, compile_kernel

_NO_PICKS = np.zeros(0, np.int64)
MIN_WIDTH = 64  # values in a row the pass reads at once, at least (where the batch's rows divide)


def batch_moments(values: np.ndarray, saturation: tuple[float, float, bool] | None, picks: np.ndarray | None = None,
                  relu: bool = False, counts_zeros: bool = True):
    """(finite, moments, relu_moments) of a (rows, nodes) float32 or float64 array.

    `moments` = (column means, column sums of squared deviations: float64 arrays; low, high,
    zeros, saturated; the sample: the values at the flat positions `picks`, or all of them if
    None, in the values' type). `relu_moments`, unless `relu` is False (then None): the same of
    max(values, 0) bar the sample, which is the values' sample rectified; nothing saturates.
    `saturation` = (below, above, inclusive): a value saturates below `below` or above `above`
    (or at them, when inclusive). Zeros are counted if `counts_zeros` (else 0). `finite` is
    False when NaN or infinite values reach the sums."""
    values = np.ascontiguousarray(values)
    below, above, inclusive = saturation or (0.0, 0.0, False)
    # the thresholds in the values' type, compared as torch compares them (a float32 0.99, not 0.99)
    kind = values.dtype.type
    whole = picks is None
    sample = np.empty(values.size if whole else picks.size, values.dtype)
    rows, nodes = values.shape
    side = _side_by_side(rows, nodes)
    (total, means, deviations, low, high, zeros, saturated,
     relu_means, relu_deviations, non_positive) = _moments(
        values.reshape(rows // side, nodes * side), nodes, kind(below), kind(above), inclusive,
        saturation is not None, counts_zeros, relu, _NO_PICKS if whole else picks, whole, sample)
    relu_moments = None
    if relu:  # min and max of max(v, 0) are those of v, raised to 0
        relu_moments = (relu_means, relu_deviations, max(low, 0.0), max(high, 0.0), non_positive, 0)
    # checked here: LLVM, allowed to reassociate, may fold the compiled isfinite to True
    return math.isfinite(total), (means, deviations, low, high, zeros, saturated, sample), relu_moments


def _side_by_side(rows: int, nodes: int) -> int:
    """How many rows the pass reads as one: a layer narrower than MIN_WIDTH values has its rows
    read in groups (a divisor of `rows`), so the inner loops run over whole vectors (one row at a
    time, the digits MLP's layers of 10 and 16 nodes took 1.2x-1.6x as long, measured)."""
    for side in range(min(rows, max(1, MIN_WIDTH // nodes)), 1, -1):
        if rows % side == 0:
            return side
    return 1


def _moments(values, nodes, below, above, inclusive, counts_saturated, counts_zeros, relu, picks, whole, sample):
    """The pass over `values`, rows of a (rows, nodes) batch laid side by side (row i holds
    rows i * side to i * side + side - 1 of the batch, side = its width // nodes). The loops
    test their flags inside; LLVM moves the tests out of them."""
    rows, width = values.shape
    zero = values.dtype.type(0)
    # sums of up to FLUSH_ROWS rows in the values' type (vectors twice as wide as float64's), of
    # the values less the first row's: their precision follows the spread, not the magnitude
    first = values[0].copy() if rows else np.zeros(width, values.dtype)
    relu_first = np.maximum(first, zero)
    sums, relu_sums = np.zeros(width), np.zeros(width)
    recent, relu_recent = np.zeros(width, values.dtype), np.zeros(width, values.dtype)
    low = np.full(width, np.inf, values.dtype)  # per column: an elementwise select vectorises
    high = np.full(width, -np.inf, values.dtype)
    # counts per column too: one running count is a horizontal sum per row (measured 1.2x slower)
    zeros, non_positive, saturated = np.zeros(width, np.int32), np.zeros(width, np.int32), np.zeros(width, np.int32)
    for block in range(0, rows, FLUSH_ROWS):
        for i in range(block, min(rows, block + FLUSH_ROWS)):
            for j in range(width):
                v = values[i, j]
                recent[j] += v - first[j]
                low[j] = v if v < low[j] else low[j]
                high[j] = v if v > high[j] else high[j]
                if counts_zeros:
                    zeros[j] += v == zero
                if relu:
                    relu_recent[j] += (v if v > zero else zero) - relu_first[j]
                    non_positive[j] += v <= zero
                if counts_saturated:
                    if inclusive:
                        saturated[j] += (v <= below) | (v >= above)
                    else:
                        saturated[j] += (v < below) | (v > above)
        _flush(sums, recent)
        _flush(relu_sums, relu_recent)
    means, relu_means = _node_means(first, sums, rows, nodes), _node_means(relu_first, relu_sums, rows, nodes)
    # squared deviations from the means rounded to the values' type, in that type (v - m' is
    # exact where it matters, v near m'), then corrected to the exact means
    rounded, relu_rounded = means.astype(values.dtype), relu_means.astype(values.dtype)
    across, relu_across = _as_columns(rounded, width), _as_columns(relu_rounded, width)
    squares, relu_squares = np.zeros(width), np.zeros(width)
    for block in range(0, rows, FLUSH_ROWS):
        for i in range(block, min(rows, block + FLUSH_ROWS)):
            for j in range(width):
                v = values[i, j]
                d = v - across[j]
                recent[j] += d * d
                if relu:
                    e = (v if v > zero else zero) - relu_across[j]
                    relu_recent[j] += e * e
        _flush(squares, recent)
        _flush(relu_squares, relu_recent)
    deviations = _node_deviations(squares, means, rounded, rows)
    relu_deviations = _node_deviations(relu_squares, relu_means, relu_rounded, rows)
    flat = values.reshape(-1)
    if whole:
        for k in range(flat.size):
            sample[k] = flat[k]
    else:
        for k in range(picks.size):
            sample[k] = flat[picks[k]]
    total = 0.0  # NaN and infinite values reach the sums
    for j in range(nodes):
        total += means[j] + deviations[j]
    return (total, means, deviations, np.float64(low.min()), np.float64(high.max()), zeros.sum(), saturated.sum(),
            relu_means, relu_deviations, non_positive.sum())


def _flush(sums, recent):
    """A block's column sums, kept in the values' type, into the float64 sums."""
    for j in range(sums.size):
        sums[j] += recent[j]
        recent[j] = 0


def _node_means(first, sums, rows, nodes):
    """Each node's mean: its columns' means (sums of the values less `first`), averaged."""
    side = first.size // nodes
    means = np.zeros(nodes)
    for j in range(first.size):
        means[j % nodes] += (first[j] + sums[j] / rows) / side
    return means


def _as_columns(rounded, width):
    """Each node's rounded mean, laid out as the columns."""
    across = np.empty(width, rounded.dtype)
    for j in range(width):
        across[j] = rounded[j % rounded.size]
    return across


def _node_deviations(squares, means, rounded, rows):
    """Each node's sum of squared deviations from its exact mean, from its columns' sums of
    squares about the rounded mean m': sum (v - m)^2 = sum (v - m')^2 - rows (m - m')^2."""
    nodes = means.size
    side = squares.size // nodes
    deviations = np.zeros(nodes)
    for j in range(squares.size):
        deviations[j % nodes] += squares[j]
    for j in range(nodes):
        shift = means[j] - rounded[j]
        deviations[j] = max(deviations[j] - rows * side * shift * shift, 0.0)
    return deviations


_flush = compile_kernel(_flush)
_node_means = compile_kernel(_node_means)
_as_columns = compile_kernel(_as_columns)
_node_deviations = compile_kernel(_node_deviations)
_moments = compile_kernel(_moments)

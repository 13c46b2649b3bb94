"""A batch of one node layer's values on the CPU, summarised in two compiled reads.

torch needs about a dozen calls per batch for what a Stream keeps (column means and squared
deviations, extremes, zeros, saturated values, a finiteness check, the sample), each a pass
over the batch and most with a temporary; on the digits networks those calls cost many times
the forward pass itself (bench/data_metrics.py). This loop (numba) reads the batch twice:
column sums, extremes and counts, then the squared deviations from the column means, and
gathers the sample.
"""

from __future__ import annotations

import math

import numpy as np

from .fused_sums import FLUSH_ROWS, compile_kernel

_NO_PICKS = np.zeros(0, np.int64)
MIN_WIDTH = 64  # values in a row the pass reads at once, at least (where the batch's rows divide)


def batch_moments(values: np.ndarray, saturation: tuple[float, float, bool] | None, picks: np.ndarray | None = None):
    """(finite; column means, column sums of squared deviations: float64 arrays; low, high, zeros,
    saturated; the sample: the values at the flat positions `picks`, or all of them if None, as
    float64) of a (rows, nodes) float32 or float64 array. `saturation` = (below, above,
    inclusive): a value saturates below `below` or above `above` (or at them, when inclusive).
    `finite` is False when NaN or infinite values reach the sums."""
    values = np.ascontiguousarray(values)
    below, above, inclusive = saturation or (0.0, 0.0, False)
    # the thresholds in the values' type, compared as torch compares them (a float32 0.99, not 0.99)
    kind = values.dtype.type
    whole = picks is None
    sample = np.empty(values.size if whole else picks.size)
    rows, nodes = values.shape
    side = _side_by_side(rows, nodes)
    total, *moments = _moments(values.reshape(rows // side, nodes * side), nodes, kind(below), kind(above),
                               inclusive, saturation is not None, _NO_PICKS if whole else picks, whole, sample)
    # checked here: LLVM, allowed to reassociate, may fold the compiled isfinite to True
    return math.isfinite(total), *moments


def _side_by_side(rows: int, nodes: int) -> int:
    """How many rows the pass reads as one: a layer narrower than MIN_WIDTH values has its rows
    read in groups (a divisor of `rows`), so the inner loops run over whole vectors (one row at a
    time, the digits MLP's layers of 10 and 16 nodes took 1.2x-1.6x as long, measured)."""
    for side in range(min(rows, max(1, MIN_WIDTH // nodes)), 1, -1):
        if rows % side == 0:
            return side
    return 1


def _moments(values, nodes, below, above, inclusive, counts_saturated, picks, whole, sample):
    """The pass over `values`, rows of a (rows, nodes) batch laid side by side (row i holds
    rows i * side to i * side + side - 1 of the batch, side = its width // nodes)."""
    rows, width = values.shape
    side = width // nodes
    zero = values.dtype.type(0)
    # sums of up to FLUSH_ROWS rows in the values' type (vectors twice as wide as float64's), of
    # the values less the first row's: their precision follows the spread, not the magnitude
    first = values[0].copy() if rows else np.zeros(width, values.dtype)
    sums = np.zeros(width)
    recent = np.zeros(width, values.dtype)
    low = np.full(width, np.inf, values.dtype)  # per column: an elementwise select vectorises
    high = np.full(width, -np.inf, values.dtype)
    zeros = saturated = 0
    for block in range(0, rows, FLUSH_ROWS):
        for i in range(block, min(rows, block + FLUSH_ROWS)):
            for j in range(width):
                v = values[i, j]
                recent[j] += v - first[j]
                low[j] = v if v < low[j] else low[j]
                high[j] = v if v > high[j] else high[j]
                zeros += v == zero
                if counts_saturated:
                    if inclusive:
                        saturated += (v <= below) | (v >= above)
                    else:
                        saturated += (v < below) | (v > above)
        for j in range(width):
            sums[j] += recent[j]
            recent[j] = zero
    means = np.zeros(nodes)  # each node's mean: its columns' means, averaged
    for j in range(width):
        means[j % nodes] += (first[j] + sums[j] / rows) / side
    # squared deviations from the means rounded to the values' type, in that type (v - m' is
    # exact where it matters, v near m'), then corrected to the exact means: sum (v - m)^2 =
    # sum (v - m')^2 - rows (m - m')^2
    rounded = means.astype(values.dtype)
    across = np.empty(width, values.dtype)  # the rounded means, laid out as the columns
    for j in range(width):
        across[j] = rounded[j % nodes]
    squares = np.zeros(width)
    for block in range(0, rows, FLUSH_ROWS):
        for i in range(block, min(rows, block + FLUSH_ROWS)):
            for j in range(width):
                d = values[i, j] - across[j]
                recent[j] += d * d
        for j in range(width):
            squares[j] += recent[j]
            recent[j] = zero
    deviations = np.zeros(nodes)
    for j in range(width):
        deviations[j % nodes] += squares[j]
    for j in range(nodes):
        shift = means[j] - rounded[j]
        deviations[j] = max(deviations[j] - rows * side * shift * shift, 0.0)
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
    return (total, means, deviations, np.float64(low.min()), np.float64(high.max()), zeros, saturated,
            sample)


_moments = compile_kernel(_moments)

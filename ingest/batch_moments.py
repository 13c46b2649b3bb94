"""A batch of one node layer's values on the CPU, summarised in two compiled reads.

torch needs about a dozen calls per batch for what a Stream keeps (column means and squared
deviations, extremes, zeros, saturated values, a finiteness check, the sample), each a pass
over the batch and most with a temporary; on the digits networks those calls cost many times
the forward pass itself (bench/data_metrics.py). This loop (numba) reads the batch twice:
column sums, extremes and counts, then the squared deviations from the column means, and
gathers the sample.
"""

from __future__ import annotations

import numpy as np

from .fused_sums import FLUSH_ROWS, compile_kernel

_NO_PICKS = np.zeros(0, np.int64)


def batch_moments(values: np.ndarray, saturation: tuple[float, float, bool] | None, picks: np.ndarray | None = None):
    """(column means, column sums of squared deviations: float64 arrays; low, high, zeros,
    saturated; the values at the flat positions `picks` (none if None), as float64) of a
    (rows, nodes) float32 or float64 array. `saturation` = (below, above, inclusive): a value
    saturates below `below` or above `above` (or at them, when inclusive). NaN or infinite values
    make the sums so."""
    values = np.ascontiguousarray(values)
    below, above, inclusive = saturation or (0.0, 0.0, False)
    # the thresholds in the values' type, compared as torch compares them (a float32 0.99, not 0.99)
    thresholds = np.array([below, above], values.dtype)
    picks = _NO_PICKS if picks is None else picks
    sample = np.empty(picks.size)
    return _moments(values, thresholds, inclusive, saturation is not None, picks, sample) + (sample,)


def _moments(values, thresholds, inclusive, counts_saturated, picks, sample):
    rows, nodes = values.shape
    zero = values.dtype.type(0)
    # sums of up to FLUSH_ROWS rows in the values' type (vectors twice as wide as float64's), of
    # the values less the first row's: their precision follows the spread, not the magnitude
    first = values[0].copy() if rows else np.zeros(nodes, values.dtype)
    sums = np.zeros(nodes)
    recent = np.zeros(nodes, values.dtype)
    low = np.full(nodes, np.inf, values.dtype)  # per column: an elementwise select vectorises
    high = np.full(nodes, -np.inf, values.dtype)
    zeros = saturated = 0
    below, above = thresholds[0], thresholds[1]
    for block in range(0, rows, FLUSH_ROWS):
        for i in range(block, min(rows, block + FLUSH_ROWS)):
            for j in range(nodes):
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
        for j in range(nodes):
            sums[j] += recent[j]
            recent[j] = zero
    means = first + sums / rows
    # squared deviations from the means rounded to the values' type, in that type (v - m' is
    # exact where it matters, v near m'), then corrected to the exact means: sum (v - m)^2 =
    # sum (v - m')^2 - rows (m - m')^2
    rounded = means.astype(values.dtype)
    deviations = np.zeros(nodes)
    for block in range(0, rows, FLUSH_ROWS):
        for i in range(block, min(rows, block + FLUSH_ROWS)):
            for j in range(nodes):
                d = values[i, j] - rounded[j]
                recent[j] += d * d
        for j in range(nodes):
            deviations[j] += recent[j]
            recent[j] = zero
    for j in range(nodes):
        shift = means[j] - rounded[j]
        deviations[j] = max(deviations[j] - rows * shift * shift, 0.0)
    flat = values.reshape(-1)
    for k in range(picks.size):
        sample[k] = flat[picks[k]]
    return means, deviations, np.float64(low.min()), np.float64(high.max()), zeros, saturated


_moments = compile_kernel(_moments)

"""A batch of one node layer's values on the CPU, summarised in two compiled reads.

torch needs about a dozen calls per batch for what a Stream keeps (column means and squared
deviations, extremes, zeros, saturated values, a finiteness check), each a pass over the batch
and most with a temporary; on the digits networks those calls cost many times the forward pass
itself (bench/data_metrics.py). This loop (numba) reads the batch twice: column sums, extremes
and counts, then the squared deviations from the column means, in float64.
"""

from __future__ import annotations

import numpy as np

from .fused_sums import compile_kernel


def batch_moments(values: np.ndarray, saturation: tuple[float, float, bool] | None):
    """(column means, column sums of squared deviations: float64 arrays; low, high, zeros,
    saturated) of a (rows, nodes) float32 or float64 array; `saturation` = (below, above, inclusive):
    a value saturates below `below` or above `above` (or at them, when inclusive). NaN or infinite
    values make the sums so."""
    values = np.ascontiguousarray(values)
    below, above, inclusive = saturation or (0.0, 0.0, False)
    # the thresholds in the values' type, compared as torch compares them (a float32 0.99, not 0.99)
    thresholds = np.array([below, above], values.dtype)
    return _moments(values, thresholds, inclusive, saturation is not None)


def _moments(values, thresholds, inclusive, counts_saturated):
    rows, nodes = values.shape
    sums = np.zeros(nodes)
    low = np.full(nodes, np.inf, values.dtype)  # per column: an elementwise select vectorises
    high = np.full(nodes, -np.inf, values.dtype)
    zeros = saturated = 0
    below, above = thresholds[0], thresholds[1]
    for i in range(rows):
        for j in range(nodes):
            v = values[i, j]
            sums[j] += v
            low[j] = v if v < low[j] else low[j]
            high[j] = v if v > high[j] else high[j]
            zeros += v == 0
            if counts_saturated:
                if inclusive:
                    saturated += (v <= below) | (v >= above)
                else:
                    saturated += (v < below) | (v > above)
    means = sums / rows
    deviations = np.zeros(nodes)
    for i in range(rows):
        for j in range(nodes):
            d = values[i, j] - means[j]
            deviations[j] += d * d
    return means, deviations, np.float64(low.min()), np.float64(high.max()), zeros, saturated


_moments = compile_kernel(_moments)

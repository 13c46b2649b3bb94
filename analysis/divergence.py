"""Distances between distributions and partitions, as the reports use them.

Distributions are densities on a shared grid of bins (`density`): symmetric
Kullback-Leibler as in La Malfa et al. 2021 (KL(p||q) + KL(q||p), with a small floor so
empty bins stay finite), Jensen-Shannon (base 2, in [0, 1]), and the 1-D Wasserstein
distance (the area between the two CDFs). Partitions: the adjusted Rand index; rankings:
Spearman's rank correlation.
"""

from __future__ import annotations

import numpy as np

FLOOR = 1e-10  # probability given to an empty bin in KL


def shared_grid(samples: list[np.ndarray], bins: int = 64) -> np.ndarray:
    """Bin edges spanning every sample (one bin around a constant)."""
    values = np.concatenate([np.asarray(s, dtype=np.float64) for s in samples if len(s)])
    low, high = float(values.min()), float(values.max())
    if high <= low:
        low, high = low - 0.5, high + 0.5
    return np.linspace(low, high, bins + 1)


def density(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Probability per bin of `edges` (sums to 1)."""
    counts, _ = np.histogram(values, bins=edges)
    return counts / max(counts.sum(), 1)


def rebin(edges: np.ndarray, counts: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """A stored histogram moved onto another grid (uniform within each stored bin), as probabilities."""
    edges, counts = np.asarray(edges, dtype=np.float64), np.asarray(counts, dtype=np.float64)
    cdf = np.concatenate([[0.0], np.cumsum(counts)]) / max(counts.sum(), 1)
    at_grid = np.interp(grid, edges, cdf, left=0.0, right=1.0)
    return np.diff(at_grid)


def symmetric_kl(p: np.ndarray, q: np.ndarray) -> float:
    p, q = _floored(p), _floored(q)
    return float(np.sum(p * np.log(p / q)) + np.sum(q * np.log(q / p)))


def jensen_shannon(p: np.ndarray, q: np.ndarray) -> float:
    p, q = np.asarray(p, dtype=np.float64), np.asarray(q, dtype=np.float64)
    m = (p + q) / 2

    def kl(a):
        mask = a > 0
        return float(np.sum(a[mask] * np.log2(a[mask] / m[mask])))

    return (kl(p) + kl(q)) / 2


def wasserstein(p: np.ndarray, q: np.ndarray, edges: np.ndarray) -> float:
    """W1 between two densities on the same bins: the integral of |CDF_p - CDF_q|."""
    gap = np.abs(np.cumsum(p) - np.cumsum(q))[:-1]
    return float(np.sum(gap * np.diff(edges)[:-1]))


def adjusted_rand(a: np.ndarray, b: np.ndarray) -> float:
    """Hubert and Arabie's adjusted Rand index of two labelings of the same nodes."""
    _, a = np.unique(a, return_inverse=True)
    _, b = np.unique(b, return_inverse=True)
    table = np.zeros((a.max() + 1, b.max() + 1))
    np.add.at(table, (a, b), 1)
    pairs = lambda x: x * (x - 1) / 2  # noqa: E731
    index, rows, cols = pairs(table).sum(), pairs(table.sum(1)).sum(), pairs(table.sum(0)).sum()
    expected = rows * cols / pairs(len(a)) if len(a) > 1 else 0.0
    maximum = (rows + cols) / 2
    return 1.0 if maximum == expected else float((index - expected) / (maximum - expected))


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Rank correlation (average ranks for ties); nan when either side is constant."""
    from scipy.stats import spearmanr

    if len(a) < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(spearmanr(a, b).statistic)


def _floored(p) -> np.ndarray:
    p = np.maximum(np.asarray(p, dtype=np.float64), FLOOR)
    return p / p.sum()

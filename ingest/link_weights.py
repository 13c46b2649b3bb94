"""Link-weight statistics of every weight layer of a network (METRICS.md section 2).

A layer's sample is concat(W.ravel(), b): a shared conv kernel entry counts once. Mean, std,
min and max are exact (from the moments of the strength pass). Quantiles and the histogram
are exact up to EXACT_LIMIT values; above it they come from a seeded uniform sample of
SAMPLE_SIZE values, and `sampled` says so. Their cost is the sort: one of 4,096 values takes
what a sum over 1.5M weights takes, so sampling keeps the statistics of MiniLM's 590K-weight
layers to a fraction of their strength pass (bench/transformer.py). The rank error of a
sampled quantile is at most 0.8% (one standard deviation, at the median; 0.16% at q01 and q99).

The samples are taken as each layer is read and sorted together at the end, one sort per
sample length for all layers of that length (a transformer's blocks repeat their shapes).
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from .strengths import Moments

QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
HISTOGRAM_BINS = 64
EXACT_LIMIT = 1 << 14
SAMPLE_SIZE = 1 << 12


class LinkWeightStats:
    """Add each layer's weights as it is read (`add` returns its position); `results()` gives
    every layer's statistics, in the order added."""

    def __init__(self, exact_limit: int = EXACT_LIMIT):
        self.exact_limit = exact_limit
        self._layers: list[tuple[Moments, np.ndarray, int | None]] = []

    def add(self, weight: torch.Tensor, bias: torch.Tensor | None, weight_moments: Moments) -> int:
        moments = weight_moments
        if bias is not None:
            bias = bias.detach().reshape(-1).to("cpu", torch.float64)
            bias_moments = Moments()
            bias_moments.add(bias)
            moments = moments.merged(bias_moments)
        sample, sampled = _sample(weight.detach(), bias, moments.count, self.exact_limit)
        self._layers.append((moments, sample, sampled))
        return len(self._layers) - 1

    def results(self) -> list[dict]:
        alike: dict[tuple, list[int]] = {}
        for number, (_, sample, _) in enumerate(self._layers):
            alike.setdefault((sample.size, sample.dtype), []).append(number)
        results: list[dict | None] = [None] * len(self._layers)
        for numbers in alike.values():
            sorted_samples = np.sort(np.stack([self._layers[n][1] for n in numbers]), axis=1)
            quantiles = _quantiles(sorted_samples)
            for row, number in enumerate(numbers):
                moments, _, sampled = self._layers[number]
                low, high = _histogram_range(moments)
                edges = np.linspace(low, high, HISTOGRAM_BINS + 1)
                results[number] = _summary(moments, sampled, quantiles[row], edges,
                                           _histogram(sorted_samples[row], edges))
        return results


def link_weight_stats(weight: torch.Tensor, bias: torch.Tensor | None, weight_moments: Moments,
                      *, exact_limit: int = EXACT_LIMIT) -> dict:
    """The statistics of one layer."""
    stats = LinkWeightStats(exact_limit)
    stats.add(weight, bias, weight_moments)
    return stats.results()[0]


def _summary(moments: Moments, sampled, quantiles, edges, counts) -> dict:
    return {
        "count": moments.count,
        "mean": moments.mean,
        "std": moments.std,
        "min": moments.low,
        "max": moments.high,
        "quantiles": {f"q{round(q * 100):02d}": float(v) for q, v in zip(QUANTILES, quantiles)},
        "histogram": {"edges": edges.tolist(), "counts": counts.tolist()},
        "sampled": sampled,
    }


def _histogram_range(moments: Moments) -> tuple[float, float]:
    low, high = moments.low, moments.high
    if high <= low:  # a constant layer: one bin around the value
        low, high = low - 0.5, high + 0.5
    return low, high


def _quantiles(sorted_samples: np.ndarray) -> np.ndarray:
    """Per row, numpy's default ("linear") quantiles, read off the sorted values."""
    position = np.array(QUANTILES) * (sorted_samples.shape[1] - 1)
    below = np.floor(position).astype(np.int64)
    above = np.minimum(below + 1, sorted_samples.shape[1] - 1)
    fraction = position - below
    low, high = (sorted_samples[:, at].astype(np.float64) for at in (below, above))
    return low + (high - low) * fraction


def _histogram(sorted_sample: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts in the bins between edges, the last bin closed (as numpy.histogram counts), read
    off the sorted values by bisection."""
    below = np.searchsorted(sorted_sample, edges[:-1], side="left")
    return np.diff(np.append(below, np.searchsorted(sorted_sample, edges[-1], side="right")))


@functools.lru_cache(maxsize=64)
def _sample_indices(count: int) -> np.ndarray:
    """The seeded sample positions among `count` link weights: the same for every layer of that
    size, so drawn once, and in increasing order, so the weights are read front to back."""
    generator = torch.Generator().manual_seed(0)
    return np.sort(torch.randint(0, count, (SAMPLE_SIZE,), generator=generator).numpy())


def _sample(weight: torch.Tensor, bias: torch.Tensor | None, count: int, exact_limit: int):
    """All link weights as one float64 array, or a seeded uniform sample of them."""
    dtype = np.float64 if weight.dtype == torch.float64 else np.float32  # float32 sorts twice as fast
    parts = [] if bias is None else [bias.numpy().astype(dtype)]
    if count <= exact_limit:
        return np.concatenate([_cpu(weight).reshape(-1).numpy().astype(dtype), *parts]), None
    index = _sample_indices(count)
    n_weights = weight.numel()
    in_weights = index[index < n_weights]
    if weight.device.type != "cpu":
        values = _cpu(weight.reshape(-1)[torch.from_numpy(in_weights).to(weight.device)]).numpy()
    elif weight.is_contiguous():
        values = _cpu(weight).reshape(-1).numpy()[in_weights]
    else:  # numpy reads a strided view (a transposed matrix) in place
        values = _cpu(weight).numpy()[np.unravel_index(in_weights, tuple(weight.shape))]
    if bias is not None:
        parts = [parts[0][index[len(in_weights):] - n_weights]]
    return np.concatenate([values.astype(dtype), *parts]), SAMPLE_SIZE


def _cpu(tensor: torch.Tensor) -> torch.Tensor:
    tensor = tensor.cpu()
    return tensor if tensor.dtype in (torch.float32, torch.float64) else tensor.float()

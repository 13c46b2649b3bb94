"""Link-weight statistics of every weight layer of a network (METRICS.md section 2).

A layer's sample is concat(W.ravel(), b): a shared conv kernel entry counts once. Mean, std,
min and max are exact (from the moments of the strength pass). Quantiles and the histogram
are exact up to EXACT_LIMIT values; above it they come from a seeded uniform sample of
SAMPLE_SIZE values, and `sampled` says so. Their cost is the sort (row_sort.py: 16 us for
4,096 float32 values, what a sum over 0.5M weights takes), so sampling keeps the statistics of
MiniLM's 590K-weight layers to a fraction of their strength pass (bench/transformer.py). The
rank error of a sampled quantile is at most 0.8% (one standard deviation, at the median; 0.16%
at q01 and q99).

The samples are taken as each layer is read and sorted together at the end, one sort per
sample length for all layers of that length (a transformer's blocks repeat their shapes).
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from .strengths import Moments

QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
QUANTILE_KEYS = tuple(f"q{round(q * 100):02d}" for q in QUANTILES)
HISTOGRAM_BINS = 64
EXACT_LIMIT = 1 << 14
SAMPLE_SIZE = 1 << 12
_NO_POSITIONS = np.zeros(0, np.int64)


class LinkWeightStats:
    """Add each layer's weights as it is read (`add` returns its position); `results()` gives
    every layer's statistics, in the order added."""

    def __init__(self, exact_limit: int = EXACT_LIMIT):
        self.exact_limit = exact_limit
        self._layers: list[tuple[Moments, np.ndarray, int | None]] = []
        self._places: list[tuple | None] = []  # where a sample that may be sorted in place lies

    def weight_positions(self, n_weights: int, n_bias: int) -> np.ndarray:
        """The flat positions of the weights that go into a layer's sample (sorted): all of them
        up to exact_limit links, else those of the seeded sample."""
        return _sample_positions(n_weights, n_bias, self.exact_limit)[0]

    def layer_positions(self, layer, folded) -> tuple[np.ndarray, np.ndarray]:
        """The flat positions of a weight layer's weights, then of its bias, that go into its sample
        (folding.Folded: as its links carry them)."""
        return self.positions(layer, folded.weight.numel(), folded.bias_size())

    def positions(self, layer, n_weights: int, n_bias: int) -> tuple[np.ndarray, np.ndarray]:
        """layer_positions of a layer of n_weights links and n_bias biases; none for the tied copies
        of shared weights, whose sample is kept with their first use."""
        if layer.tied_to is not None:
            return _NO_POSITIONS, _NO_POSITIONS
        weights, bias = _sample_positions(n_weights, n_bias, self.exact_limit)
        return weights, _every_position(n_bias) if bias is None else bias

    def add(self, weight_sample: np.ndarray, bias: np.ndarray | None, weight_moments: Moments,
            bias_moments: Moments | None = None, place: tuple[np.ndarray, int] | None = None) -> int:
        """One layer: its weights at `weight_positions` (their folded values), its bias and the
        moments of its weights (and of its bias, when the caller has them). With `bias` None and
        `bias_moments` given, the sample holds the bias's part already (graph_pass.py). `place`
        (buffer, offset): the sample is a copy lying there, which `results` sorts where it lies;
        else it may be the stored weights themselves (an exact sample is a view of them), which are
        never written to."""
        moments, sample = weight_moments, weight_sample
        if bias is None and bias_moments is not None:
            moments = moments.merged(bias_moments)
        elif bias is not None:
            moments = moments.merged(bias_moments or Moments.of_vector(bias))
            positions = _sample_positions(weight_moments.count, bias.size, self.exact_limit)[1]
            bias = bias if positions is None else bias[positions]
            sample, place = np.concatenate((weight_sample, bias.astype(weight_sample.dtype, copy=False))), None
        sampled = SAMPLE_SIZE if moments.count > self.exact_limit else None
        self._layers.append((moments, sample, sampled))
        self._places.append(place)
        return len(self._layers) - 1

    def results(self) -> list[dict]:
        """Per group of samples of one length: one sort, and the quantiles, bin edges and counts of
        all its rows read off in one compiled call (row_sort.py)."""
        from .row_sort import read_off, sort_rows  # numba: imported when needed, as fused_sums is

        alike: dict[tuple, list[int]] = {}
        for number, (_, sample, _) in enumerate(self._layers):
            alike.setdefault((sample.size, sample.dtype), []).append(number)
        results: list[dict | None] = [None] * len(self._layers)
        for (size, _), numbers in alike.items():
            sorted_samples = _as_rows([self._layers[n][1] for n in numbers], [self._places[n] for n in numbers])
            sort_rows(sorted_samples)  # in place: np.sort's copy made it 3x slower (measured)
            ranges = np.array([_histogram_range(self._layers[n][0]) for n in numbers])
            quantiles = np.empty((len(numbers), len(QUANTILES)))
            edges = np.empty((len(numbers), HISTOGRAM_BINS + 1))
            counts = np.empty((len(numbers), HISTOGRAM_BINS), np.int64)
            read_off(sorted_samples, np.array(QUANTILES) * (size - 1), ranges, quantiles, edges, counts)
            for number, q, e, c in zip(numbers, quantiles.tolist(), edges.tolist(), counts.tolist()):
                moments, _, sampled = self._layers[number]
                results[number] = _summary(moments, sampled, q, e, c)
        return results


def link_weight_stats(weight: torch.Tensor, bias: torch.Tensor | None, weight_moments: Moments,
                      *, exact_limit: int = EXACT_LIMIT) -> dict:
    """The statistics of one layer."""
    stats = LinkWeightStats(exact_limit)
    positions = stats.weight_positions(weight.numel(), 0 if bias is None else bias.numel())
    stats.add(gather(weight, positions), None if bias is None else flat_numpy(bias), weight_moments)
    return stats.results()[0]


def _as_rows(samples: list[np.ndarray], places: list) -> np.ndarray:
    """Samples of one length as the rows of a matrix: a view of the buffer where they lie end to
    end, as the graph pass lays them out (copying MiniLM's cost a sixth of the summaries), else a
    copy. Their places, not their addresses, tell: reading 55 arrays' addresses cost 0.15 ms."""
    size = samples[0].size
    buffer, first = places[0] or (None, 0)
    if buffer is not None and all(place is not None and place[0] is buffer and place[1] == first + number * size
                                  for number, place in enumerate(places)):
        return buffer[first:first + len(samples) * size].reshape(len(samples), size)
    return np.stack(samples)


def _summary(moments: Moments, sampled, quantiles: list, edges: list, counts: list) -> dict:
    return {
        "count": moments.count,
        "mean": moments.mean,
        "std": moments.std,
        "min": moments.low,
        "max": moments.high,
        "quantiles": dict(zip(QUANTILE_KEYS, quantiles)),
        "histogram": {"edges": edges, "counts": counts},
        "sampled": sampled,
    }


def _histogram_range(moments: Moments) -> tuple[float, float]:
    low, high = moments.low, moments.high
    if high <= low:  # a constant layer: one bin around the value
        low, high = low - 0.5, high + 0.5
    return low, high


@functools.lru_cache(maxsize=64)
def _sample_positions(n_weights: int, n_bias: int, exact_limit: int) -> tuple[np.ndarray, np.ndarray | None]:
    """The positions of a layer's sample among its weights, and among its bias (None: all of it):
    every link up to exact_limit, else a seeded uniform sample of concat(W.ravel(), b), the same
    for every layer of that shape, so drawn once (never to be written to), and in increasing
    order, so the weights are read front to back."""
    if n_weights + n_bias <= exact_limit:
        return np.arange(n_weights), None
    generator = torch.Generator().manual_seed(0)
    index = np.sort(torch.randint(0, n_weights + n_bias, (SAMPLE_SIZE,), generator=generator).numpy())
    split = np.searchsorted(index, n_weights)
    return index[:split], index[split:] - n_weights


@functools.lru_cache(maxsize=64)
def _every_position(size: int) -> np.ndarray:
    return np.arange(size)


def flat_numpy(vector: torch.Tensor) -> np.ndarray:
    """A tensor's values as a flat numpy array (a view when it is on the CPU)."""
    vector = vector.detach()
    return (vector if vector.device.type == "cpu" else vector.cpu()).reshape(-1).numpy()


def gather(weight: torch.Tensor, positions: np.ndarray) -> np.ndarray:
    """The weights at sorted flat positions, as float32 (sorts twice as fast) unless float64."""
    weight = weight.detach()
    if positions.size == weight.numel() and weight.device.type == "cpu" and weight.is_contiguous():
        values = weight.reshape(-1)  # every weight (an exact sample), in order: no indexing
    elif weight.device.type != "cpu":
        values = weight.reshape(-1)[torch.from_numpy(positions).to(weight.device)].cpu()
    elif weight.is_contiguous():
        values = weight.reshape(-1)[torch.from_numpy(positions)]
    else:  # read a strided view (a transposed matrix) in place
        values = weight[np.unravel_index(positions, tuple(weight.shape))]
    return values.numpy() if values.dtype in (torch.float32, torch.float64) else values.float().numpy()

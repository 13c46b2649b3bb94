"""Running statistics of one node layer's values over a stream of batches (METRICS.md section 6):
per node means and squared deviations (float64, batches combined by Chan et al.'s update),
extremes, zeros and saturated values, and a seeded sample of at most SAMPLE_SIZE values for the
quantiles and the histogram on a fixed grid (exact below that size). On the CPU a batch is read
by one compiled pass (batch_moments.py); on CUDA or in half precision by torch's calls. No
layer's values are ever all in memory.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import numpy as np

# activation op -> the values it saturates at (METRICS.md section 6) as (below, above, inclusive):
# saturated below `below` or above `above` (or at them, when inclusive); None if it does not
ACTIVATIONS = {
    "relu": None, "relu6": None, "gelu": None, "silu": None, "elu": None, "leaky_relu": None, "softplus": None,
    "mish": None, "hardswish": None, "selu": None, "celu": None,
    "tanh": (-0.99, 0.99, False), "hardtanh": (-1.0, 1.0, True),
    "sigmoid": (0.01, 0.99, False), "hardsigmoid": (0.0, 1.0, True),
}
# a fixed grid shared by every layer, version and model: 0 and +-10^k for k from -3 to 3 in
# eighths of a decade, plus two open-ended bins: histograms of any two versions line up
_DECADES = np.round(10.0 ** np.linspace(-3, 3, 49), 12)
GRID = np.concatenate([-_DECADES[::-1], [0.0], _DECADES])
QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
_LEVELS = np.array(QUANTILES)
_QUANTILE_KEYS = tuple(f"q{round(q * 100):02d}" for q in QUANTILES)
SAMPLE_SIZE = 1 << 14  # values kept per layer for quantiles; exact below it


@functools.lru_cache(maxsize=256)
def sample_positions(seed: int, values: int, take: int, batch: int) -> np.ndarray:
    """`take` seeded uniform positions, with replacement, among the `values` of the batch starting
    at row `batch`: a function of these numbers only, so the streams of one size share the draw,
    and so do the versions of a training loop (kept: on the digits networks the draws cost more
    than the statistics, bench/data_metrics.py). Each stream's sample stays uniform over its
    values, and each batch draws its own."""
    import torch

    state = int(np.random.SeedSequence([seed, values, take, batch]).generate_state(1)[0])
    # in order: the gather then reads the batch front to back (a third quicker, measured)
    return torch.randint(0, values, (take,), generator=torch.Generator().manual_seed(state)).sort().values.numpy()


@dataclass
class Stream:
    """Running statistics of one node layer's values, fed a batch at a time as (rows, nodes):
    per node mean and sum of squared deviations (float64, batches combined by Chan et al.'s
    update, which stays exact where sums of squares would cancel), extremes, zeros and
    saturated values (activations), and a seeded uniform sample of the values for quantiles
    and the histogram (all values while they number at most SAMPLE_SIZE)."""

    nodes: int
    expected_rows: int  # rows the whole run will add: sets the share of each batch sampled
    saturates: tuple | None = None  # (below, above, inclusive), as in ACTIVATIONS
    activation: bool = False  # count zeros and saturated values
    rows: int = 0
    means: np.ndarray | None = None  # float64, per node
    deviations: np.ndarray | None = None  # per node: the sum of squared deviations from its mean
    low: float = math.inf
    high: float = -math.inf
    zeros: int = 0
    saturated: int = 0
    sample: list = field(default_factory=list)
    # a ReLU's NA: the stream whose add() fed this one; the sample, shared, is of values whose
    # ReLU it is
    rectifies: "Stream | None" = field(default=None, repr=False)
    sorted_cache: np.ndarray | None = field(default=None, init=False, repr=False, compare=False)

    def add(self, values, seed: int, relu: "Stream | None" = None) -> bool:
        """Adds a batch, and with `relu` its max(values, 0) to that stream (which `rectifies` this),
        from the same read: a ReLU layer's NA, a stream of the same size, so its sample takes
        the same positions and is this one's. False (and nothing added) if the batch holds NaN
        or infinite values."""
        picks = None  # the sample's positions in this batch, when it is not kept whole
        if self.expected_rows * self.nodes > SAMPLE_SIZE:
            take = min(values.numel(), math.ceil(SAMPLE_SIZE * values.shape[0] / self.expected_rows))
            picks = sample_positions(seed, values.numel(), take, self.rows)
        finite, moments, relu_moments = _moments(values, self.saturates, picks, relu is not None, self.activation)
        if not finite:
            return False
        self._merge(values.shape[0], *moments)
        if relu is not None:
            relu._merge(values.shape[0], *relu_moments, moments[-1])
            relu.rectifies = self
        return True

    def _merge(self, rows, mean, deviations, low, high, zeros, saturated, sample) -> None:
        self.means, self.deviations, self.rows = _combined(self.means, self.deviations, self.rows,
                                                           mean, deviations, rows)
        self.low, self.high = min(self.low, low), max(self.high, high)
        if self.activation:
            self.zeros += zeros
            self.saturated += saturated
        self.sample.append(sample)
        self.sorted_cache = None

    @classmethod
    def pooled(cls, streams: list["Stream"]) -> "Stream":
        """Streams of the same nodes (a recurrent state's time steps) as one: each node's values
        over every step."""
        first = streams[0]
        pooled = cls(first.nodes, sum(s.expected_rows for s in streams), first.saturates, first.activation,
                     low=min(s.low for s in streams), high=max(s.high for s in streams),
                     zeros=sum(s.zeros for s in streams), saturated=sum(s.saturated for s in streams),
                     sample=[s.sampled_values() for s in streams])
        for stream in streams:
            pooled.means, pooled.deviations, pooled.rows = _combined(pooled.means, pooled.deviations, pooled.rows,
                                                                     stream.means, stream.deviations, stream.rows)
        return pooled

    def summary(self, *, activation: bool) -> dict:
        count = self.rows * self.nodes
        mean = float(self.means.sum()) / self.nodes  # as means.mean() computes it, with less of numpy's Python
        # every node has the same rows: the pooled squared deviations are the nodes' own plus
        # each node's rows times its mean's squared distance from the pooled mean
        deviations = float(self.deviations.sum()) + self.rows * float(((self.means - mean) ** 2).sum())
        sample, rectify = self.sorted_sample()
        quantiles, counts = quantiles_and_grid_counts(sample, rectify)
        result = {
            "count": count, "mean": mean, "std": math.sqrt(max(deviations / count, 0.0)),
            "min": self.low, "max": self.high,
            "quantiles": dict(zip(_QUANTILE_KEYS, quantiles)),
            "sampled": None if sample.size == count else sample.size,
            "histogram": {"grid": "fixed", "counts": counts},
        }
        if activation:
            result["zero_fraction"] = self.zeros / count
            result["saturated_fraction"] = None if self.saturates is None else self.saturated / count
        return result

    def sampled_values(self) -> np.ndarray:
        """The sample, in float64."""
        sample = np.concatenate(self.sample, dtype=np.float64)
        return sample if self.rectifies is None else np.maximum(sample, 0.0, out=sample)

    def sorted_sample(self) -> tuple[np.ndarray, bool]:
        """The sample sorted, in the values' own type (not to be written to), and whether it is to
        be rectified as read. Sorted once: float32 by a radix sort (row_sort.py: 94 us for 16,384
        values here, against 460 us for numpy's sort). A ReLU's NA, fed by its NS stream, is NS's
        sorted sample rectified: the order stands. A layer with no activation function has one
        stream for NS and NA."""
        if self.rectifies is not None:
            return self.rectifies.sorted_sample()[0], True
        if self.sorted_cache is None:
            self.sorted_cache = np.concatenate(self.sample)
            _row_sort().sort_rows(self.sorted_cache.reshape(1, -1))
        return self.sorted_cache, False

    def per_node(self) -> tuple[np.ndarray, np.ndarray]:
        """(mean, population std) of each node over the rows."""
        return self.means, np.sqrt(self.deviations / self.rows)


def sort_samples(streams) -> None:
    """Sorts the float32 samples of `streams` not sorted yet, laid end to end in one buffer, in one
    call (row_sort.sort_segments: numpy's sort, or the radix sort on numba's threads, whichever
    is the quicker here): a measurement's NS and NA samples, summarised together. The digits
    networks' three samples after a measurement: 262-280 us one radix sort after another,
    122-155 us now on a machine with numpy's SIMD sort (bench/data_metrics.py)."""
    pending = list({id(s): s for s in streams if s.rectifies is None and s.sorted_cache is None
                    and all(part.dtype == np.float32 for part in s.sample)}.values())
    if not pending:
        return
    buffer = np.concatenate([part for stream in pending for part in stream.sample])
    bounds = np.cumsum([0] + [sum(part.size for part in stream.sample) for stream in pending])
    _row_sort().sort_segments(buffer, bounds)
    for stream, start, stop in zip(pending, bounds[:-1], bounds[1:]):
        stream.sorted_cache = buffer[start:stop]


def quantiles_and_grid_counts(values: np.ndarray, rectify: bool = False) -> tuple[list[float], list[int]]:
    """The QUANTILES of sorted values (max(values, 0) when `rectify`) as np.quantile computes them
    on them in float64 (its default "linear" method), and their counts in the bins of GRID as
    np.bincount(np.searchsorted(GRID, values, side="right")) gives them, read off in one compiled
    call (row_sort.read_off_grid). Property tests hold them equal to numpy's."""
    quantiles, counts = np.empty(len(QUANTILES)), np.empty(GRID.size + 1, np.int64)
    _row_sort().read_off_grid(values, rectify, _LEVELS, GRID, quantiles, counts)
    return quantiles.tolist(), counts.tolist()


def _moments(values, saturation, picks, relu: bool, counts_zeros: bool):
    """batch_moments' figures of a batch of values (no gradient), `picks` an array of positions or
    None: on the CPU from the compiled pass, else (CUDA, half precision) from torch's calls."""
    if values.is_cpu and values.dtype.itemsize >= 4 and values.is_floating_point():
        return _batch_moments()(values.numpy(), saturation, picks, relu, counts_zeros)
    return _torch_moments(values, saturation, picks, relu)


@functools.cache
def _row_sort():
    """row_sort.py, imported when a summary is first asked for (numba takes a second to import)."""
    from . import row_sort

    return row_sort


@functools.cache
def _batch_moments():
    """The compiled pass, imported on first use (numba takes a second to import)."""
    from .batch_moments import batch_moments

    return batch_moments


def _torch_moments(values, saturation, picks=None, relu: bool = False):
    """What batch_moments gives, from torch's calls."""
    import torch

    finite, *moments = _torch_stream(values, saturation, picks)
    return finite, tuple(moments), _torch_stream(torch.relu(values), None, picks)[1:-1] if relu else None


def _torch_stream(values, saturation, picks):
    """(finite, *moments) of one stream's batch. Column sums as matrix-vector products: several
    times faster than torch's reductions over dim 0 (var_mean)."""
    import torch

    rows = values.shape[0]
    ones = torch.ones(rows, dtype=values.dtype, device=values.device)
    mean = torch.mv(values.t(), ones) / rows
    deviations = torch.mv((values - mean).square_().t(), ones)
    low, high = torch.aminmax(values)
    zeros = values.numel() - int(torch.count_nonzero(values))
    saturated = 0
    if saturation is not None:
        below, above, inclusive = saturation
        outside = (values <= below) | (values >= above) if inclusive else (values < below) | (values > above)
        saturated = int(torch.count_nonzero(outside))
    flat = values.reshape(-1)
    sample = flat if picks is None else flat[torch.from_numpy(picks).to(values.device)]
    mean, deviations = mean.double().cpu().numpy(), deviations.double().cpu().numpy()
    return (math.isfinite(mean.sum() + deviations.sum()), mean, deviations, float(low), float(high), zeros,
            saturated, sample.double().cpu().numpy())


def _combined(mean_a, deviations_a, rows_a: int, mean_b, deviations_b, rows_b: int):
    """Means and sums of squared deviations of two parts as those of the whole (Chan et al. 1979)."""
    if mean_a is None:
        return mean_b, deviations_b, rows_b
    rows = rows_a + rows_b
    delta = mean_b - mean_a
    return mean_a + delta * (rows_b / rows), deviations_a + deviations_b + delta * delta * (rows_a * rows_b / rows), rows

"""Each row of a matrix of samples sorted in place, and a link-weight sample's quantiles and
histogram read off the sorted values (numba). The samples of NS and NA (activation_stats.py)
are sorted here too, a measurement's all in one call (sort_segments), and read off for their
quantiles and grid counts.

The link-weight statistics sort one sample of 4,096 values per layer (link_weights.py), which
made the sorts a sixth of MiniLM's metrics (bench/transformer.py). Which sort is quicker depends
on the CPU. numpy 2 sorts float32 with SIMD sorting networks where it has them (x86-simd-sort on
AVX2 and AVX-512): 7-10 us for such a row on a machine with AVX-512. Where it does not, its sort
took 42-57 us, and a least-significant-digit radix sort on the floats' bits (three passes of 11
bits whatever the values, in cache: no library offers one for numpy arrays) took 16-20 us,
on numba's threads. So the two are timed once per process (numpy_sort_is_quicker) and the
quicker one sorts; both give numpy's order. Reading the quantiles and bin counts off all sorted
rows of a group in one further compiled call (read_off) replaced four numpy and torch calls per
group that took about as long as the sorts.
"""

from __future__ import annotations

import functools
import time

import numba
import numpy as np

from .fused_sums import compile_kernel

RADIX_MIN = 2048  # shorter rows: numpy's sort (a radix pass's 2,048 counters cost more than they save)
DIGIT_BITS = 11
_MASK = (1 << DIGIT_BITS) - 1


def sort_rows(samples: np.ndarray) -> None:
    """Sorts each row of a C-contiguous 2-D array in place."""
    if samples.dtype != np.float32 or samples.shape[1] < RADIX_MIN or numpy_sort_is_quicker():
        samples.sort(axis=1)
    else:
        _radix_rows(samples.view(np.uint32), numba.config.NUMBA_NUM_THREADS)


@functools.cache
def numpy_sort_is_quicker() -> bool:
    """Whether numpy's sort of a row of 4,096 float32 values beats the radix sort on this machine,
    best of five each (4-5 ms once per process, most of it loading the compiled radix sort):
    numpy's SIMD sort, where the CPU has it, is 2-3x quicker than the radix; without it, 2-3x
    slower."""
    row = np.random.default_rng(0).standard_normal((1, 4096)).astype(np.float32)

    def by_numpy(values):
        values.sort(axis=1)

    def by_radix(values):
        _radix_some_rows(values.view(np.uint32), 0, 1)

    def best(sort) -> float:
        times = []
        for _ in range(5):
            values = row.copy()
            start = time.perf_counter()
            sort(values)
            times.append(time.perf_counter() - start)
        return min(times)

    by_radix(row.copy())  # compiled, or loaded from numba's cache, before the clock
    return best(by_numpy) < best(by_radix)


def _radix_rows(keys, chunks):
    """The rows shared out among `chunks` threads (MiniLM's 37 rows: 0.40 against 0.76 ms on one)."""
    rows = keys.shape[0]
    per_chunk = (rows + chunks - 1) // chunks
    for chunk in numba.prange(chunks):
        _radix_some_rows(keys, min(rows, chunk * per_chunk), min(rows, (chunk + 1) * per_chunk))


def _radix_some_rows(keys, first, stop):
    """The float32 rows first..stop, seen as their bits, each sorted as floats."""
    n = keys.shape[1]
    values, spare = np.empty(n, np.uint32), np.empty(n, np.uint32)
    counts = np.empty((3, 1 << DIGIT_BITS), np.int64)
    for row in range(first, stop):
        _radix_sort(keys[row], values, spare, counts)


def _radix_sort(keys, values, spare, counts):
    """One float32 array, seen as its bits, sorted as floats in place; `values` and `spare` as long
    as it, `counts` (3, 2 ** DIGIT_BITS), are scratch. The bits are first mapped so that their
    order as unsigned integers is the floats' order (negative floats: every bit flipped; the
    rest: the sign bit set), sorted by three digits from the lowest, and mapped back."""
    n = keys.size
    counts[:] = 0  # every digit's counts, from one read
    for i in range(n):
        u = keys[i]
        u ^= np.uint32(0xFFFFFFFF) if u >> 31 else np.uint32(0x80000000)
        values[i] = u
        for digit in range(3):
            counts[digit, (u >> (digit * DIGIT_BITS)) & _MASK] += 1
    for digit in range(3):
        shift = digit * DIGIT_BITS
        if counts[digit, (values[0] >> shift) & _MASK] == n:
            continue  # every value has this digit: the order stands
        start = 0  # each digit's first place in this pass's order
        for d in range(1 << DIGIT_BITS):
            count = counts[digit, d]
            counts[digit, d] = start
            start += count
        for i in range(n):
            u = values[i]
            d = (u >> shift) & _MASK
            spare[counts[digit, d]] = u
            counts[digit, d] += 1
        values, spare = spare, values
    for i in range(n):
        u = values[i]
        keys[i] = u ^ (np.uint32(0x80000000) if u >> 31 else np.uint32(0xFFFFFFFF))


def sort_segments(values: np.ndarray, bounds: np.ndarray) -> None:
    """Sorts in place each segment values[bounds[s]:bounds[s + 1]] of a float32 array, the
    segments shared out among numba's threads, largest first to the least loaded (the samples of
    NS and NA, sorted together when a measurement is summarised: activation_stats.py); one after
    the other by numpy where its sort is the quicker (the digits networks' three samples: 94
    against 126 us on two threads)."""
    if numpy_sort_is_quicker():
        for start, stop in zip(bounds[:-1].tolist(), bounds[1:].tolist()):
            values[start:stop].sort()
        return
    threads = numba.config.NUMBA_NUM_THREADS
    sizes = np.diff(bounds)
    owner, load = np.empty(sizes.size, np.int64), np.zeros(threads, np.int64)
    for segment in np.argsort(-sizes, kind="stable"):
        owner[segment] = load.argmin()
        load[owner[segment]] += sizes[segment]
    _radix_segments(values.view(np.uint32), bounds, owner, threads)


def _radix_segments(keys, bounds, owner, threads):
    """Each thread radix-sorts the segments it owns, with scratch of its own."""
    longest = 0
    for s in range(bounds.size - 1):
        longest = max(longest, bounds[s + 1] - bounds[s])
    for thread in numba.prange(threads):
        values, spare = np.empty(longest, np.uint32), np.empty(longest, np.uint32)
        counts = np.empty((3, 1 << DIGIT_BITS), np.int64)
        for s in range(bounds.size - 1):
            n = bounds[s + 1] - bounds[s]
            if owner[s] == thread and n > 0:
                _radix_sort(keys[bounds[s]:bounds[s + 1]], values[:n], spare[:n], counts)


def _value(values, i, rectify):
    value = np.float64(values[i])
    return max(value, 0.0) if rectify else value


def read_off_grid(values, rectify, levels, grid, quantiles, counts):
    """One sorted sample of NS or NA (float32 or float64; a ReLU's values read off its input's
    sorted sample, rectified as read: the order stands): numpy's default ("linear") quantiles at
    `levels`, and the count of values in each bin of `grid` as
    np.bincount(np.searchsorted(grid, values, side="right")) gives them, from a binary search per
    edge. In float64, as numpy computes on the float64 sample; one call instead of about fifteen
    numpy calls and two copies of the sample (bench/data_metrics.py)."""
    n = values.size
    for k in range(levels.size):
        virtual = (n - 1) * levels[k]
        floor = np.floor(virtual)
        below = min(max(int(floor), 0), n - 1)
        above = min(max(int(floor) + 1, 0), n - 1)
        gamma = virtual - floor
        a, b = _value(values, below, rectify), _value(values, above, rectify)
        step = b - a
        quantiles[k] = b - step * (1 - gamma) if gamma >= 0.5 else a + step * gamma
    previous = 0
    for e in range(grid.size):  # the first value at or above each edge
        at = _first_at_or_above(values, previous, grid[e], False, rectify)
        counts[e] = at - previous
        previous = at
    counts[grid.size] = n - previous


def read_off(sorted_rows, positions, ranges, quantiles, edges, counts):
    """Per sorted row: at each fractional `positions` (q * (n - 1)), numpy's default ("linear")
    quantile; over its (low, high) in `ranges`, the equal bins' edges as numpy.linspace gives them
    and the count of values in each, the last bin closed, as numpy.histogram counts. A value is
    compared with an edge as float64, exactly; each edge's place found by a binary search from
    the last one's (walking along the row: 103 against 66-71 us for MiniLM's 37 rows of 4,096)."""
    n_rows, n = sorted_rows.shape
    bins = counts.shape[1]
    for row in range(n_rows):
        values = sorted_rows[row]
        for k in range(positions.size):
            below = int(np.floor(positions[k]))
            above = min(below + 1, n - 1)
            low, high = np.float64(values[below]), np.float64(values[above])
            quantiles[row, k] = low + (high - low) * (positions[k] - below)
        low, high = ranges[row, 0], ranges[row, 1]
        step = (high - low) / bins
        for b in range(bins):
            edges[row, b] = b * step + low
        edges[row, bins] = high
        start = _first_at_or_above(values, 0, edges[row, 0], False, False)
        for b in range(bins):  # the last bin closed: up to the first value above `high`
            stop = _first_at_or_above(values, start, edges[row, b + 1], b == bins - 1, False)
            counts[row, b] = stop - start
            start = stop


def _first_at_or_above(values, start, edge, above, rectify):
    """The first i >= start at which values[i] >= edge (values[i] > edge when `above`), values
    sorted, compared in float64 (rectified when `rectify`)."""
    low, high = start, values.size
    while low < high:
        middle = (low + high) // 2
        value = _value(values, middle, rectify)
        if value < edge or (above and value == edge):
            low = middle + 1
        else:
            high = middle
    return low


_radix_sort = compile_kernel(_radix_sort)
_radix_some_rows = compile_kernel(_radix_some_rows)
_radix_segments = compile_kernel(_radix_segments, parallel=True)
_radix_rows = compile_kernel(_radix_rows, parallel=True)
# no fastmath here: a fused multiply-add would round the edges and quantiles differently from numpy's
_first_at_or_above = compile_kernel(_first_at_or_above, fastmath=False)
read_off = compile_kernel(read_off, fastmath=False)
_value = compile_kernel(_value, fastmath=False)
read_off_grid = compile_kernel(read_off_grid, fastmath=False)

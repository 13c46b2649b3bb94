"""Each row of a matrix of samples sorted in place (float32 rows by radix), and a link-weight
sample's quantiles and histogram read off the sorted values (numba). The samples of NS and NA
(activation_stats.py) are sorted and read off here too, for their quantiles and grid counts.

The link-weight statistics sort one sample of 4,096 values per layer (link_weights.py). On
this project's machines numpy's sort takes 42-57 us for such a row (its AVX-512 sort is not
used there, whatever numpy's version), which made the sorts a sixth of MiniLM's metrics
(bench/transformer.py). A least-significant-digit radix sort on the floats' bits needs three
passes of 11 bits whatever the values, in cache: no library offers one for numpy arrays.
Reading the quantiles and bin counts off all sorted rows of a group in one further compiled
call (read_off) replaced four numpy and torch calls per group that took about as long as the
sorts.
"""

from __future__ import annotations

import numba
import numpy as np

from .fused_sums import compile_kernel

RADIX_MIN = 2048  # shorter rows: numpy's sort (a radix pass's 2,048 counters cost more than they save)
DIGIT_BITS = 11
_MASK = (1 << DIGIT_BITS) - 1


def sort_rows(samples: np.ndarray) -> None:
    """Sorts each row of a C-contiguous 2-D array in place."""
    if samples.dtype != np.float32 or samples.shape[1] < RADIX_MIN:
        samples.sort(axis=1)
    else:
        _radix_rows(samples.view(np.uint32), numba.config.NUMBA_NUM_THREADS)


def _radix_rows(keys, chunks):
    """The rows shared out among `chunks` threads (MiniLM's 37 rows: 0.40 against 0.76 ms on one)."""
    rows = keys.shape[0]
    per_chunk = (rows + chunks - 1) // chunks
    for chunk in numba.prange(chunks):
        _radix_some_rows(keys, min(rows, chunk * per_chunk), min(rows, (chunk + 1) * per_chunk))


def _radix_some_rows(keys, first, stop):
    """The float32 rows first..stop, seen as their bits, sorted as floats. The bits are first mapped
    so that their order as unsigned integers is the floats' order (negative floats: every bit
    flipped; the rest: the sign bit set), sorted by three digits from the lowest, and mapped back."""
    n = keys.shape[1]
    values = np.empty(n, np.uint32)
    spare = np.empty(n, np.uint32)
    counts = np.empty((3, 1 << DIGIT_BITS), np.int64)
    for row in range(first, stop):
        counts[:] = 0  # every digit's counts, from one read
        for i in range(n):
            u = keys[row, i]
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
            keys[row, i] = u ^ (np.uint32(0x80000000) if u >> 31 else np.uint32(0xFFFFFFFF))


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
        low, high = previous, n
        while low < high:
            middle = (low + high) // 2
            if _value(values, middle, rectify) < grid[e]:
                low = middle + 1
            else:
                high = middle
        counts[e] = low - previous
        previous = low
    counts[grid.size] = n - previous


def read_off(sorted_rows, positions, ranges, quantiles, edges, counts):
    """Per sorted row: at each fractional `positions` (q * (n - 1)), numpy's default ("linear")
    quantile; over its (low, high) in `ranges`, the equal bins' edges as numpy.linspace gives them
    and the count of values in each, the last bin closed, as numpy.histogram counts. A value is
    compared with an edge as float64, exactly; the counts come from one walk along the row."""
    n_rows, n = sorted_rows.shape
    bins = counts.shape[1]
    for row in range(n_rows):
        for k in range(positions.size):
            below = int(np.floor(positions[k]))
            above = min(below + 1, n - 1)
            low, high = np.float64(sorted_rows[row, below]), np.float64(sorted_rows[row, above])
            quantiles[row, k] = low + (high - low) * (positions[k] - below)
        low, high = ranges[row, 0], ranges[row, 1]
        step = (high - low) / bins
        for b in range(bins):
            edges[row, b] = b * step + low
        edges[row, bins] = high
        i = 0
        while i < n and sorted_rows[row, i] < edges[row, 0]:
            i += 1
        for b in range(bins):
            start = i
            if b == bins - 1:
                while i < n and sorted_rows[row, i] <= high:
                    i += 1
            else:
                while i < n and sorted_rows[row, i] < edges[row, b + 1]:
                    i += 1
            counts[row, b] = i - start


_radix_some_rows = compile_kernel(_radix_some_rows)
_radix_rows = compile_kernel(_radix_rows, parallel=True)
# no fastmath here: a fused multiply-add would round the edges and quantiles differently from numpy's
read_off = compile_kernel(read_off, fastmath=False)
_value = compile_kernel(_value, fastmath=False)
read_off_grid = compile_kernel(read_off_grid, fastmath=False)

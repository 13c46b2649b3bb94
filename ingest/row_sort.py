"""Each row of a matrix of link-weight samples sorted in place: float32 rows by radix (numba).

The link-weight statistics sort one sample of 4,096 values per layer (link_weights.py). On
this project's machines numpy's sort takes 42-57 us for such a row (its AVX-512 sort is not
used there, whatever numpy's version), which made the sorts a sixth of MiniLM's metrics
(bench/transformer.py). A least-significant-digit radix sort on the floats' bits needs three
passes of 11 bits whatever the values, in cache: no library offers one for numpy arrays.
"""

from __future__ import annotations

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
        _radix_rows(samples.view(np.uint32))


def _radix_rows(keys):
    """The float32 rows, seen as their bits, sorted as floats. The bits are first mapped so that
    their order as unsigned integers is the floats' order (negative floats: every bit flipped;
    the rest: the sign bit set), sorted by three digits from the lowest, and mapped back."""
    rows, n = keys.shape
    values = np.empty(n, np.uint32)
    spare = np.empty(n, np.uint32)
    counts = np.empty((3, 1 << DIGIT_BITS), np.int64)
    for row in range(rows):  # measured: no quicker on two threads
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


_radix_rows = compile_kernel(_radix_rows)

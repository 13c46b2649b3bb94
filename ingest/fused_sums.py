"""Everything the metrics need from a dense CPU layer, in one compiled read of its weights.

torch needs a call per quantity (row sums, column sums, squares, extremes; a norm's gain folded
into a copy first), and on a transformer's 384x384 layers the calls, not the arithmetic, are
most of the time (bench/transformer.py). This loop (numba) reads each stored weight once, folds
the gains on the fly (`W' = diag(row_scale) W diag(col_scale)`, METRICS.md section 9), and gives
its row sums, column sums (float64), sum of squares, extremes and the link-weight sample. It
compiles on first use (seconds, then cached on disk), so layer_passes.py imports this module
only when a CPU layer needs it.
"""

from __future__ import annotations

import numba
import numpy as np
import torch

from .strengths import Moments

# measured: smaller layers are quicker on one thread; MiniLM's 384x384 layers take two (its
# metrics 11.1-11.3 against 11.6-11.7 ms with them on one, three rounds, bench/README.md)
PARALLEL_MIN_ELEMENTS = 1 << 16
FLUSH_ROWS = 64  # column sums gather 64 rows in the weights' type, then go into float64
_NO_BIAS = np.zeros(0, np.float32)


def folded_sums(weight: torch.Tensor, row_scale: torch.Tensor | None, col_scale: torch.Tensor | None,
                positions: np.ndarray, bias: np.ndarray | None = None):
    """(in-strengths with the bias, out-strengths: float64 arrays; the weights' Moments, the bias's
    Moments or None; sample) of the folded weights of a 2-D float32 or float64 CPU tensor and its
    bias; `sample` holds the folded weights at the flat `positions` (sorted, below weight.numel())."""
    w = weight.detach().numpy()
    n_rows, n_columns = w.shape
    rows_scale, columns_scale = _scale(row_scale, w.dtype), _scale(col_scale, w.dtype)
    # numba's most threads, a plain setting (get_num_threads() cost 7 us a call); fewer threads, as
    # set_num_threads may ask, take the chunks in turn with the same results
    chunks = numba.config.NUMBA_NUM_THREADS if w.size >= PARALLEL_MIN_ELEMENTS and n_rows > 1 else 1
    rows = np.empty(n_rows, np.float64)
    columns = np.empty((chunks, n_columns), np.float64)
    extremes = np.empty((2, chunks, n_columns), w.dtype)
    sample = np.empty(positions.size, w.dtype)
    summed = _one_chunk if chunks == 1 else _chunks
    sums = summed(w, rows_scale, columns_scale, rows, columns, extremes, positions, sample,
                  _NO_BIAS if bias is None else bias)
    bias_moments = None if bias is None else Moments(bias.size, *sums[4:])
    return rows, columns[0], Moments(w.size, *sums[:4]), bias_moments, sample


def _scale(scale: torch.Tensor | None, dtype) -> np.ndarray | None:
    return None if scale is None else scale.detach().cpu().numpy().astype(dtype, copy=False)


def _rows(w, row_scale, col_scale, start, stop, rows, columns, low, high, positions, sample):
    """Rows start..stop: their sums into `rows`, their column sums into `columns` (float64), their
    column extremes into low and high, their weights at the sample's positions into `sample`;
    returns their sum of squares. A scale given as None is not applied: numba compiles a loop
    for each combination with its multiplications left out (measured: an unscaled layer's pass
    18% quicker in place, bench/README.md)."""
    n_columns = w.shape[1]
    k = np.searchsorted(positions, start * n_columns)
    zero = w.dtype.type(0)  # the inner loops in the weights' type vectorise twice as wide as float64
    one = w.dtype.type(1)
    recent = np.zeros(n_columns, w.dtype)  # column sums of up to FLUSH_ROWS rows, then into float64
    columns[:] = 0.0
    low[:] = np.inf
    high[:] = -np.inf
    squares = 0.0
    for block in range(start, stop, FLUSH_ROWS):
        i, block_stop = block, min(stop, block + FLUSH_ROWS)
        # four rows at a time: the column sums and extremes are read and written once per four
        # weights (measured: 1.6x quicker than a row at a time)
        while i + 4 <= block_stop:
            s0 = s1 = s2 = s3 = one
            if row_scale is not None:
                s0, s1, s2, s3 = row_scale[i], row_scale[i + 1], row_scale[i + 2], row_scale[i + 3]
            r0 = r1 = r2 = r3 = q0 = q1 = q2 = q3 = zero
            for j in range(n_columns):
                v0, v1, v2, v3 = w[i, j], w[i + 1, j], w[i + 2, j], w[i + 3, j]
                if col_scale is not None:
                    g = col_scale[j]
                    v0, v1, v2, v3 = v0 * g, v1 * g, v2 * g, v3 * g
                r0 += v0
                r1 += v1
                r2 += v2
                r3 += v3
                q0 += v0 * v0
                q1 += v1 * v1
                q2 += v2 * v2
                q3 += v3 * v3
                u0, u1, u2, u3 = v0, v1, v2, v3
                if row_scale is not None:
                    u0, u1, u2, u3 = s0 * v0, s1 * v1, s2 * v2, s3 * v3
                recent[j] += (u0 + u1) + (u2 + u3)
                # extremes per column, not per row: an elementwise select vectorises, a running
                # minimum does not (measured 9x slower)
                a, b = (u0 if u0 < u1 else u1), (u2 if u2 < u3 else u3)
                a = a if a < b else b
                low[j] = a if a < low[j] else low[j]
                a, b = (u0 if u0 > u1 else u1), (u2 if u2 > u3 else u3)
                a = a if a > b else b
                high[j] = a if a > high[j] else high[j]
            rows[i], rows[i + 1], rows[i + 2], rows[i + 3] = s0 * r0, s1 * r1, s2 * r2, s3 * r3
            squares += (s0 * s0 * np.float64(q0) + s1 * s1 * np.float64(q1)) + \
                (s2 * s2 * np.float64(q2) + s3 * s3 * np.float64(q3))
            i += 4
        for i in range(i, block_stop):
            s = one if row_scale is None else row_scale[i]
            row_sum = row_squares = zero
            for j in range(n_columns):
                v = w[i, j] if col_scale is None else w[i, j] * col_scale[j]
                row_sum += v
                row_squares += v * v
                u = s * v
                recent[j] += u
                low[j] = u if u < low[j] else low[j]
                high[j] = u if u > high[j] else high[j]
            rows[i] = s * np.float64(row_sum)
            squares += s * s * np.float64(row_squares)
        for j in range(n_columns):
            columns[j] += recent[j]
            recent[j] = zero
        # the sample's weights in these rows, while they are still in cache (4x quicker than
        # reading them from memory afterwards; rows found by walking, not by a division)
        i, row_start = block, block * n_columns
        while k < positions.size and positions[k] < block_stop * n_columns:
            while positions[k] >= row_start + n_columns:
                i += 1
                row_start += n_columns
            j = positions[k] - row_start
            value = w[i, j]
            if row_scale is not None:
                value *= row_scale[i]
            if col_scale is not None:
                value *= col_scale[j]
            sample[k] = value
            k += 1
    return squares


def _one_chunk(w, row_scale, col_scale, rows, columns, extremes, positions, sample, bias):
    """Every row on this thread. Returns the weights' (total, squares, low, high), then the bias's."""
    squares = _rows(w, row_scale, col_scale, 0, w.shape[0], rows, columns[0], extremes[0, 0], extremes[1, 0],
                    positions, sample)
    return _totals(rows, squares, extremes, bias)


def _chunks(w, row_scale, col_scale, rows, columns, extremes, positions, sample, bias):
    """One thread a chunk of rows, each with its own column sums and extremes, summed into
    columns[0] at the end. Returns what _one_chunk returns."""
    n_rows = w.shape[0]
    chunks = columns.shape[0]
    per_chunk = (n_rows + chunks - 1) // chunks
    squares = np.zeros(chunks)
    for chunk in numba.prange(chunks):
        squares[chunk] = _rows(w, row_scale, col_scale, chunk * per_chunk, min(n_rows, (chunk + 1) * per_chunk),
                               rows, columns[chunk], extremes[0, chunk], extremes[1, chunk], positions, sample)
    for chunk in range(1, chunks):
        columns[0] += columns[chunk]
    return _totals(rows, squares.sum(), extremes, bias)


def _totals(rows, squares, extremes, bias):
    """The weights' moments, then the bias's (added to the row sums: the in-strengths)."""
    total = rows.sum()
    rows[:bias.size] += bias
    return (total, squares, np.float64(extremes[0].min()), np.float64(extremes[1].max())) + vector_moments(bias)


def vector_moments(values):
    """(total, squares, low, high) of a 1-D float array, in float64."""
    total = squares = 0.0
    low, high = np.inf, -np.inf
    for i in range(values.size):
        value = np.float64(values[i])
        total += value
        squares += value * value
        low = value if value < low else low
        high = value if value > high else high
    return total, squares, low, high


def compile_kernel(function, **options):
    """numba's compiled `function`, cached on disk where a cache directory is writable."""
    # Reassociation lets LLVM vectorise the reductions; NaN and infinity still reach the sums,
    # which is how a diverged layer is found (metrics.py checks them).
    options = {"fastmath": {"reassoc", "contract", "nsz"}, "boundscheck": False, **options}
    try:
        return numba.njit(cache=True, **options)(function)
    except RuntimeError:  # no writable directory for numba's cache: compile in every process instead
        return numba.njit(**options)(function)


_rows = compile_kernel(_rows)
vector_moments = compile_kernel(vector_moments)
_totals = compile_kernel(_totals)
_one_chunk = compile_kernel(_one_chunk)
_chunks = compile_kernel(_chunks, parallel=True)

"""Everything the metrics need from a dense CPU layer, in one compiled read of its weights.

torch needs a call per quantity (row sums, column sums, squares, extremes; a norm's gain folded
into a copy first), and on a transformer's 384x384 layers the calls, not the arithmetic, are
most of the time (bench/transformer.py). This loop (numba) reads each stored weight once, in the
order it is stored (GPT-2 keeps its weights transposed), folds the gains on the fly
(`W' = diag(row_scale) W diag(col_scale)`, METRICS.md section 9) and the shift a norm adds to
the bias (`W beta`), and gives its row sums, column sums (float64), sum of squares, extremes and
the link-weight sample. It compiles on first use (seconds, then cached on disk), so
layer_passes.py imports this module only when a CPU layer needs it. graph_pass.py calls the same
loop (read_rows) for many layers at once; folded_sums is the pass of a single layer (float64,
stored transposed).
"""

from __future__ import annotations

import numba
import numpy as np
import torch
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from .strengths import Moments

# measured: smaller layers are quicker on one thread; MiniLM's 384x384 layers take two (its
# metrics 11.1-11.3 against 11.6-11.7 ms with them on one, three rounds, bench/README.md)
PARALLEL_MIN_ELEMENTS = 1 << 16
FLUSH_ROWS = 64  # column sums gather 64 rows in the weights' type, then go into float64
_NO_BIAS = np.zeros(0, np.float32)
NO_AHEAD = np.zeros(4, np.int64)  # read_rows' `ahead`: no rows to fetch next
# blocks fetched ahead at most this large: two of them (the one read, the one fetched) stay within
# the second level of cache; 4096-wide rows (1 MB blocks) fetched ahead were slower
FETCH_BLOCK_BYTES = 512 << 10


def folded_sums(weight: torch.Tensor, row_scale: torch.Tensor | None, col_scale: torch.Tensor | None,
                positions: np.ndarray, bias: np.ndarray | None = None, read_shift: torch.Tensor | None = None):
    """(in-strengths with the bias, out-strengths: float64 arrays; the weights' Moments; the bias,
    its Moments, or None twice; sample) of the folded weights of a 2-D float32 or float64 CPU
    tensor and its bias. `sample` holds the folded weights at the flat `positions` (sorted, below
    weight.numel()), in the order they are stored. `read_shift` (folding.Folded):
    `row_scale * (weight @ read_shift)` is added to the bias, in the same read of the weight."""
    w = weight.detach().numpy()
    rows_scale, columns_scale = _scale(row_scale, w.dtype), _scale(col_scale, w.dtype)
    shift = _scale(read_shift, w.dtype)
    if shift is not None:  # the shift goes into the bias: a copy, never the stored tensor
        bias = np.zeros(w.shape[0], w.dtype) if bias is None else bias.astype(w.dtype)
    w, transposed = _in_stored_order(w)
    column_shift = None
    if transposed:
        # stored (in, out), as GPT-2's Conv1D keeps it: read as stored, rows and columns swapped
        # (across its rows the pass was 12x slower, bench/README.md), the shift summed down the
        # stored columns
        rows_scale, columns_scale = columns_scale, rows_scale
        positions = _stored_positions(positions, *w.shape)
        shift, column_shift = None, shift
    n_rows, n_columns = w.shape
    size = w.size
    w = _rows_as_contiguous(w)
    # numba's most threads, a plain setting (get_num_threads() cost 7 us a call); fewer threads, as
    # set_num_threads may ask, take the chunks in turn with the same results
    chunks = numba.config.NUMBA_NUM_THREADS if size >= PARALLEL_MIN_ELEMENTS and n_rows > 1 else 1
    rows = np.empty(n_rows, np.float64)
    columns = np.empty((chunks, n_columns), np.float64)
    extremes = np.empty((2, chunks, n_columns), w.dtype)
    sample = np.empty(positions.size, w.dtype)
    shifted_columns = np.zeros((chunks, n_columns if column_shift is not None else 0))
    summed = _one_chunk if chunks == 1 else _chunks
    sums = summed(w, n_columns, rows_scale, columns_scale, shift, column_shift, rows, columns, extremes, positions,
                  sample, _NO_BIAS if bias is None else bias, shifted_columns, transposed)
    into, out_of = (columns[0], rows) if transposed else (rows, columns[0])
    bias_moments = None if bias is None else Moments(bias.size, *sums[4:])
    return into, out_of, Moments(size, *sums[:4]), bias, bias_moments, sample


def _in_stored_order(w: np.ndarray) -> tuple[np.ndarray, bool]:
    """(w, False) when its rows lie in memory value after value, (w.T, True) when its columns do
    (a transposed view), else a copy of w. (numba's loops over other layouts do not vectorise.)"""
    unit = w.itemsize
    if w.flags.c_contiguous or w.strides[1] == unit:
        return w, False
    if w.strides[0] == unit:
        return w.T, True
    return np.ascontiguousarray(w), False


def _rows_as_contiguous(w: np.ndarray) -> np.ndarray:
    """w, whose rows lie value after value but may be a slice of wider rows (one of q, k and v of
    GPT-2's fused Conv1D), as a C-contiguous array of the full rows: the pass reads the first
    w.shape[1] values of each (reading the slice as it is, 7x slower). Its last row runs past the
    values of w by the rest of the wider row: never read."""
    if w.flags.c_contiguous:
        return w
    stride = w.strides[0]
    if stride % w.itemsize or stride < w.shape[1] * w.itemsize:
        return np.ascontiguousarray(w)
    return np.lib.stride_tricks.as_strided(w, (w.shape[0], stride // w.itemsize), (stride, w.itemsize),
                                           writeable=False)


_STORED_POSITIONS: dict = {}


def _stored_positions(positions: np.ndarray, n_rows: int, n_columns: int) -> np.ndarray:
    """Flat positions in a (n_columns, n_rows) matrix, as positions in its transpose as stored
    (n_rows, n_columns), sorted. Kept per positions array (link_weights.py draws one per shape)."""
    key = (id(positions), n_rows, n_columns)
    kept = _STORED_POSITIONS.get(key)
    if kept is None or kept[0] is not positions:
        if len(_STORED_POSITIONS) > 256:  # positions drawn afresh by each caller: keep few
            _STORED_POSITIONS.clear()
        column, row = np.divmod(positions, n_rows)
        kept = _STORED_POSITIONS[key] = (positions, np.sort(row * n_columns + column))
    return kept[1]


def _scale(scale: torch.Tensor | None, dtype) -> np.ndarray | None:
    return None if scale is None else scale.detach().cpu().numpy().astype(dtype, copy=False)


@intrinsic
def _prefetch(typing_context, address):
    """Asks for the cache line at a memory address (LLVM's prefetch: a read, kept in every level of
    cache); never faults. numba has no prefetch of its own."""
    signature = types.void(types.intp)

    def codegen(context, builder, signature, arguments):
        pointer, word = ir.PointerType(), ir.IntType(32)
        function = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [pointer, word, word, word]), "llvm.prefetch.p0")
        builder.call(function, [builder.inttoptr(arguments[0], pointer), ir.Constant(word, 0), ir.Constant(word, 3),
                                ir.Constant(word, 1)])
        return context.get_dummy_value()

    return signature, codegen


def _fetch_rows(address, row_step, first, stop, row_bytes):
    """Rows first..stop-1 of the rows at `address`, `row_step` bytes apart, into cache."""
    for row in range(first, stop):
        for line in range(0, row_bytes, 64):
            _prefetch(address + row * row_step + line)


def read_rows(w, n_columns, row_scale, col_scale, shift, column_shift, start, stop, rows, columns, low, high,
              positions, sample, bias, shifted_columns, ahead):
    """Rows start..stop: their sums into `rows`, their column sums into `columns` (float64), their
    column extremes into low and high, their weights at the sample's positions into `sample`,
    their weights read through `shift` into `bias`, their weights times `column_shift` (one a
    row) summed down each column into `shifted_columns`; returns their sum of squares. `w` may be
    wider than n_columns: its first n_columns columns are read. A scale or shift given as None is
    not applied: numba compiles a loop for each combination with the others left out (measured:
    an unscaled layer's pass 18% quicker in place, bench/README.md). `ahead` (address, bytes from
    one row to the next, rows, bytes a row): what the caller reads next, fetched into cache while
    the last block is read (NO_AHEAD: nothing)."""
    k = np.searchsorted(positions, start * n_columns)
    zero = w.dtype.type(0)  # the inner loops in the weights' type vectorise twice as wide as float64
    one = w.dtype.type(1)
    recent = np.zeros(n_columns, w.dtype)  # column sums of up to FLUSH_ROWS rows, then into float64
    recent_shift = np.zeros(n_columns if column_shift is not None else 0, w.dtype)  # the same for the shift
    columns[:] = 0.0
    low[:] = np.inf
    high[:] = -np.inf
    squares = 0.0
    fetch = FLUSH_ROWS * n_columns * w.itemsize <= FETCH_BLOCK_BYTES
    for block in range(start, stop, FLUSH_ROWS):
        block_stop = min(stop, block + FLUSH_ROWS)
        # first each row's sum and squares, the rows read front to back: one stream through
        # memory, which the hardware prefetches; reading four rows side by side from memory was
        # 2.3x slower (bench/README.md)
        for i in range(block, block_stop):
            # summed in float64: in the weights' type the sums would depend on the order the
            # compiled loop adds in, which numba's cached code and a fresh compile do not share
            row_sum = row_squares = shifted = 0.0
            for j in range(n_columns):
                v = np.float64(w[i, j] if col_scale is None else w[i, j] * col_scale[j])
                row_sum += v
                row_squares += v * v
                if shift is not None:
                    shifted += np.float64(w[i, j]) * shift[j]
            s = one if row_scale is None else row_scale[i]
            rows[i] = s * row_sum
            squares += s * s * row_squares
            if shift is not None:
                bias[i] += s * shifted
            # the sample's weights in this row, while it is in the first level of cache (a walk
            # over each block of rows afterwards took 11% of MiniLM's pass)
            row_start = i * n_columns
            while k < positions.size and positions[k] < row_start + n_columns:
                j = positions[k] - row_start
                value = w[i, j]
                if col_scale is not None:
                    value *= col_scale[j]
                sample[k] = value if row_scale is None else value * row_scale[i]
                k += 1
        # then, from cache, the column sums, extremes and shifts, four rows at a time: the column
        # accumulators are read and written once per four weights (1.6x quicker than one row).
        # Meanwhile the next block's rows are fetched, four for every four read here: else the
        # memory would idle while this block is read from cache, and the next block's first pass
        # would wait for it (from memory 0.51 against 0.67 ns a weight, bench/README.md)
        i = block
        while i + 4 <= block_stop:
            if block_stop < stop:
                if fetch:
                    _fetch_rows(w.ctypes.data, w.strides[0], i + FLUSH_ROWS, min(stop, i + FLUSH_ROWS + 4),
                                n_columns * w.itemsize)
            elif FLUSH_ROWS * ahead[3] <= FETCH_BLOCK_BYTES:
                _fetch_rows(ahead[0], ahead[1], i - block, min(ahead[2], i - block + 4), ahead[3])
            s0 = s1 = s2 = s3 = one
            if row_scale is not None:
                s0, s1, s2, s3 = row_scale[i], row_scale[i + 1], row_scale[i + 2], row_scale[i + 3]
            if column_shift is not None:
                b0, b1, b2, b3 = column_shift[i], column_shift[i + 1], column_shift[i + 2], column_shift[i + 3]
            for j in range(n_columns):
                v0, v1, v2, v3 = w[i, j], w[i + 1, j], w[i + 2, j], w[i + 3, j]
                if column_shift is not None:
                    recent_shift[j] += (v0 * b0 + v1 * b1) + (v2 * b2 + v3 * b3)
                if col_scale is not None:
                    g = col_scale[j]
                    v0, v1, v2, v3 = v0 * g, v1 * g, v2 * g, v3 * g
                if row_scale is not None:
                    v0, v1, v2, v3 = s0 * v0, s1 * v1, s2 * v2, s3 * v3
                recent[j] += (v0 + v1) + (v2 + v3)
                # extremes per column, not per row: an elementwise select vectorises, a running
                # minimum does not (measured 9x slower)
                a, b = (v0 if v0 < v1 else v1), (v2 if v2 < v3 else v3)
                a = a if a < b else b
                low[j] = a if a < low[j] else low[j]
                a, b = (v0 if v0 > v1 else v1), (v2 if v2 > v3 else v3)
                a = a if a > b else b
                high[j] = a if a > high[j] else high[j]
            i += 4
        for i in range(i, block_stop):
            s = one if row_scale is None else row_scale[i]
            for j in range(n_columns):
                if column_shift is not None:
                    recent_shift[j] += w[i, j] * column_shift[i]
                u = s * (w[i, j] if col_scale is None else w[i, j] * col_scale[j])
                recent[j] += u
                low[j] = u if u < low[j] else low[j]
                high[j] = u if u > high[j] else high[j]
        for j in range(n_columns):
            columns[j] += recent[j]
            recent[j] = zero
        if column_shift is not None:
            for j in range(n_columns):
                shifted_columns[j] += recent_shift[j]
                recent_shift[j] = zero
    return squares


def _one_chunk(w, n_columns, row_scale, col_scale, shift, column_shift, rows, columns, extremes, positions, sample,
               bias, shifted_columns, transposed):
    """Every row on this thread, then the layer finished (_finish_layer). Returns the weights'
    (total, squares, low, high), then the bias's."""
    squares = read_rows(w, n_columns, row_scale, col_scale, shift, column_shift, 0, w.shape[0], rows, columns[0],
                        extremes[0, 0], extremes[1, 0], positions, sample, bias, shifted_columns[0], NO_AHEAD)
    return _finish_layer(rows, columns, squares, extremes, bias, col_scale, column_shift, shifted_columns,
                         transposed)


def _chunks(w, n_columns, row_scale, col_scale, shift, column_shift, rows, columns, extremes, positions, sample,
            bias, shifted_columns, transposed):
    """One thread a chunk of rows, each with its own column sums, extremes and column shifts.
    Returns what _one_chunk returns."""
    chunks = columns.shape[0]
    squares = np.zeros(chunks)
    for chunk in numba.prange(chunks):
        start, stop = chunk_rows(chunk, chunks, w.shape[0])
        squares[chunk] = read_rows(w, n_columns, row_scale, col_scale, shift, column_shift, start, stop, rows,
                                   columns[chunk], extremes[0, chunk], extremes[1, chunk], positions, sample, bias,
                                   shifted_columns[chunk], NO_AHEAD)
    return _finish_layer(rows, columns, squares.sum(), extremes, bias, col_scale, column_shift, shifted_columns,
                         transposed)


def chunk_rows(chunk, chunks, n_rows):
    """The rows of a layer that thread `chunk` of `chunks` reads: first, stop."""
    per_chunk = (n_rows + chunks - 1) // chunks
    return min(n_rows, chunk * per_chunk), min(n_rows, (chunk + 1) * per_chunk)


def _finish_layer(rows, columns, squares, extremes, bias, col_scale, column_shift, shifted_columns, transposed):
    """The chunks' column sums into columns[0]; the weights read through a column shift, scaled,
    into the bias (a weight stored transposed); the weights' moments and then the bias's; the
    bias added to the in-strengths (the row sums, or the column sums of a transposed weight)."""
    for chunk in range(1, columns.shape[0]):
        columns[0] += columns[chunk]
    if column_shift is not None:
        for j in range(bias.size):
            through = 0.0
            for chunk in range(shifted_columns.shape[0]):
                through += shifted_columns[chunk, j]
            bias[j] += through if col_scale is None else col_scale[j] * through
    total = rows.sum()
    moments = (total, squares, np.float64(extremes[0].min()), np.float64(extremes[1].max())) + vector_moments(bias)
    into = columns[0] if transposed else rows
    for i in range(bias.size):
        into[i] += bias[i]
    return moments


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


_fetch_rows = compile_kernel(_fetch_rows)
chunk_rows = compile_kernel(chunk_rows)
read_rows = compile_kernel(read_rows)
vector_moments = compile_kernel(vector_moments)
_finish_layer = compile_kernel(_finish_layer)
_one_chunk = compile_kernel(_one_chunk)
_chunks = compile_kernel(_chunks, parallel=True)

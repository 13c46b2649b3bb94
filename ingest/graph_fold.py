"""folding.py's rules inside the graph call: a window of layers' scales and biases from their
stored tensors' addresses (the tables of graph_plan.py).

Each operation is the one folding.py makes in torch, in float32 and in the same order, so both
give the same values bit for bit (tests/test_graph_pass.py compares them): nothing is
reassociated or fused, except torch.addcmul, which torch computes as one fused multiply-add.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import types
from numba.extending import intrinsic

from .fused_sums import compile_kernel
from .graph_plan import AT, COLUMNS, GAIN, GIVEN, IDENTITY, NONE, OWN, ROW0, ROWS, SHIFT, SIZE, VAR, WITH_SHIFT

ROW, COLUMN, READ_SHIFT, BIAS = range(4)  # the vectors a layer may have, in this order


@intrinsic
def float32_at(typing_context, address):
    """The float32 values at a memory address. numba takes arrays of many shapes in one call only
    as a typed List, which cost 100 us a call (measured): the call takes the tensors' addresses."""
    signature = types.CPointer(types.float32)(types.int64)

    def codegen(context, builder, signature, arguments):
        return builder.inttoptr(arguments[0], context.get_value_type(types.CPointer(types.float32)))

    return signature, codegen


@intrinsic
def _fused_multiply_add(typing_context, a, b, c):
    """a * b + c rounded once, as torch.addcmul computes it."""
    signature = types.float32(types.float32, types.float32, types.float32)

    def codegen(context, builder, signature, arguments):
        return builder.fma(*arguments)

    return signature, codegen


def _vector(addresses, key, size):
    return numba.carray(float32_at(addresses[key]), size)


def _affine_maps(first, stop, kind, in_at, out_at, affine_uses, affines, values, addresses):
    """The scale and shift of each affine map the layers first..stop-1 fold (folding.Affine.scale_shift),
    but those GraphVersion gives from torch (folding.Affine.given): BatchNorm's, since torch's square
    root of float32 is not the correctly rounded one in every case (5 of 30 values differed by an
    ulp), and a gain stored as its offset from one, rare enough to keep out of this loop."""
    done = np.zeros(affines.shape[0], np.bool_)
    for layer in range(first, stop):
        if kind[layer] == OWN:
            continue
        for use in range(in_at[layer, 0], out_at[layer, 1]):
            a = affine_uses[use]
            if done[a] or affines[a, GIVEN]:
                continue
            done[a] = True
            size, at = affines[a, SIZE], affines[a, AT]
            scale, shift = values[at:at + size], values[at + size:at + 2 * size]
            scale[:] = np.float32(1)
            shift[:] = np.float32(0)
            if affines[a, GAIN] != NONE:
                scale[:] = _vector(addresses, affines[a, GAIN], size)
            if affines[a, SHIFT] != NONE:
                shift[:] = _vector(addresses, affines[a, SHIFT], size)
            if not affines[a, WITH_SHIFT]:
                shift[:] = np.float32(0)


def fold(first, stop, kind, dims, bias_keys, bias_at, affine_uses, in_at, out_at, affines, values, addresses):
    """(vectors, vector_at): each layer's ROW scale, COLUMN scale, READ_SHIFT and BIAS (folding.Folded,
    with a bias of zeros where there is only a read shift) end to end, and where each starts (NONE:
    absent)."""
    _affine_maps(first, stop, kind, in_at, out_at, affine_uses, affines, values, addresses)
    count = stop - first
    size = 0
    for layer in range(first, stop):
        size += 2 * (dims[layer, ROWS] + dims[layer, COLUMNS])
    vectors = np.empty(size, np.float32)
    vector_at = np.full((count, 4), NONE, np.int64)
    used = 0
    for layer in range(first, stop):
        if kind[layer] == OWN:
            continue
        at = vector_at[layer - first]
        rows, columns, row0 = dims[layer, ROWS], dims[layer, COLUMNS], dims[layer, ROW0]
        identity = kind[layer] == IDENTITY
        for vector, length in ((BIAS, rows), (ROW, rows), (COLUMN, columns), (READ_SHIFT, columns)):
            at[vector] = used
            used += length
        bias, row_scale = vectors[at[BIAS]:at[BIAS] + rows], vectors[at[ROW]:at[ROW] + rows]
        column_scale = vectors[at[COLUMN]:at[COLUMN] + columns]
        read_shift = vectors[at[READ_SHIFT]:at[READ_SHIFT] + columns]
        # started as folding.py starts from None: x + 0, x * 1 and 0 * s + t give x and t exactly
        bias[:] = np.float32(0)
        row_scale[:] = np.float32(1)
        column_scale[:] = np.float32(1)
        read_shift[:] = np.float32(0)
        for b in range(bias_at[layer, 0], bias_at[layer, 1]):
            bias[:] = bias + _vector(addresses, bias_keys[b], row0 + rows)[row0:]
        for use in range(in_at[layer, 1] - 1, in_at[layer, 0] - 1, -1):  # the last map applied first
            a = affine_uses[use]
            gain = values[affines[a, AT]:affines[a, AT] + columns]
            beta = values[affines[a, AT] + columns:affines[a, AT] + 2 * columns] * column_scale  # through the gains
            if identity:  # the link's weight (1) times beta goes into the bias
                bias[:] = bias + beta
            else:
                read_shift[:] = read_shift + beta
            column_scale[:] = column_scale * gain
        for use in range(out_at[layer, 0], out_at[layer, 1]):
            a = affine_uses[use]
            scale = values[affines[a, AT]:affines[a, AT] + rows]
            shift = values[affines[a, AT] + rows:affines[a, AT] + 2 * rows]
            row_scale[:] = row_scale * scale
            for i in range(rows):
                bias[i] = _fused_multiply_add(bias[i], scale[i], shift[i])
        has_row, has_column = out_at[layer, 1] > out_at[layer, 0], in_at[layer, 1] > in_at[layer, 0]
        shifts_in = _shifts(affines, affine_uses, in_at[layer])
        shifts_out = _shifts(affines, affine_uses, out_at[layer])
        has_shift = shifts_in and not identity  # W beta, added to a bias of zeros when there is none
        has_bias = bias_at[layer, 1] > bias_at[layer, 0] or shifts_in or shifts_out
        for vector, present in ((BIAS, has_bias), (ROW, has_row), (COLUMN, has_column), (READ_SHIFT, has_shift)):
            if not present:
                at[vector] = NONE
    return vectors, vector_at


def _shifts(affines, affine_uses, span) -> bool:
    """Does one of the affine maps used in span add a shift (folding.Affine.shifts)?"""
    for use in range(span[0], span[1]):
        a = affine_uses[use]
        if affines[a, WITH_SHIFT] and (affines[a, SHIFT] != NONE or affines[a, VAR] != NONE):
            return True
    return False


# no fastmath: each operation rounded as torch rounds it
_vector = compile_kernel(_vector, fastmath=False)
_affine_maps = compile_kernel(_affine_maps, fastmath=False)
_shifts = compile_kernel(_shifts, fastmath=False)
fold = compile_kernel(fold, fastmath=False)

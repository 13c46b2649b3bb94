"""A version's dense float32 layers and identity links on the CPU, all in one compiled call.

Layer by layer, each compiled pass (fused_sums.py) came with Python around it: converting and
checking its tensors, starting two threads, adding its strengths into the node layers. On MiniLM's
55 weight layers that was half of the metrics' time (bench/transformer.py). Here one call reads
every such layer: each thread takes its share of the rows of every layer in turn (one start of
the threads for the whole graph), then the layers are finished one after the other and their
strengths added into flat node sums. The rest (conv and pooling, float64 and half precision,
weights stored transposed, grouped-query identity links, CUDA) keep their own passes
(layer_passes.py), which add into the same node sums.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
import torch
from numba import types
from numba.extending import intrinsic

from .fused_sums import compile_kernel, read_rows, vector_moments
from .strengths import Moments

LINEAR, IDENTITY = 0, 1
ROW, COLUMN, SHIFT, BIAS = range(4)  # the vectors a layer may have, in this order
_NONE = -1


@dataclass
class GraphLayer:
    """What the call gives for one of its weight layers."""

    moments: Moments  # of the folded weights
    bias_moments: Moments | None  # of the folded bias
    sample: np.ndarray  # the folded weights at the sample's positions, then the bias at its own


def eligible(layer, folded) -> bool:
    """Whether the call can read this layer of this version (else: its own pass)."""
    weight = folded.weight  # folding gives its vectors the weight's type, and the state dict one device
    if weight.dtype != torch.float32 or not weight.is_cpu or not weight.numel():
        return False
    if layer.kind == "identity":
        return layer.repeat == 1 and weight.is_contiguous()
    # rows value after value (a slice of wider rows, as q, k and v of a fused matrix, included)
    return (layer.kind == "linear" and weight.dim() == 2 and weight.stride(1) == 1
            and weight.stride(0) >= weight.shape[1])


def graph_pass(layers: list, folds: list, link_weights, node_sums) -> list[GraphLayer]:
    """Reads the eligible `layers` (their Folded `folds`), takes their samples at the positions
    `link_weights` (LinkWeightStats) gives, and adds their strengths and biases into `node_sums`
    (metrics.NodeSums)."""
    plan = _plan(layers, folds, link_weights, node_sums)
    count = len(layers)
    address, shape, vector_at, vectors, used = [], [], [], [], 0  # lists: numpy's item writes cost more
    for folded in folds:
        weight = folded.weight
        address.append(weight.data_ptr())
        shape.append((weight.shape[0], 1, 1) if weight.dim() == 1 else (*weight.shape, weight.stride(0)))
        bias = folded.bias
        if bias is None and folded.read_shift is not None:  # the shift goes into a bias of zeros
            bias = torch.zeros(weight.shape[0], dtype=torch.float32)
        for vector in (folded.row_scale, folded.col_scale, folded.read_shift, bias):  # each 1-D (folding.py)
            if vector is None:
                vector_at.append(_NONE)
            else:
                vector_at.append(used)
                vectors.append(vector)
                used += vector.shape[0]
    address, shape = np.array(address, np.int64), np.array(shape, np.int64).reshape(count, 3)
    vector_at = np.array(vector_at, np.int64).reshape(count, 4)
    all_vectors = torch.cat(vectors).numpy() if vectors else np.zeros(0, np.float32)
    samples = np.empty(plan.sample_at[:, 1].max(initial=0), np.float32)
    moments = np.empty((count, 8))
    _graph(plan.kind, address, shape, all_vectors, vector_at, plan.node_at, plan.positions, plan.position_at,
           plan.bias_positions, plan.bias_position_at, node_sums.s_in, node_sums.s_out, node_sums.bias, moments,
           samples, plan.sample_at, numba.config.NUMBA_NUM_THREADS)
    results = []
    for (n_rows, n_columns, _), bias_at, sums, start, stop in zip(
            shape.tolist(), vector_at[:, BIAS].tolist(), moments.tolist(), plan.sample_at[:, 0].tolist(),
            plan.sample_at[:, 1].tolist()):
        results.append(GraphLayer(Moments(n_rows * n_columns, *sums[:4]),
                                  None if bias_at == _NONE else Moments(n_rows, *sums[4:]), samples[start:stop]))
    return results


@dataclass
class _Plan:
    """What the call needs of a window of layers that is the same for every version of a topology."""

    layers: list  # kept, so that their ids stay theirs
    exact_limit: int
    kind: np.ndarray
    node_at: np.ndarray  # (first node read, first node entered) in the node sums
    positions: np.ndarray
    position_at: np.ndarray
    bias_positions: np.ndarray
    bias_position_at: np.ndarray
    sample_at: np.ndarray  # where each layer's sample starts and ends: those of one length end to end, so
    # that LinkWeightStats sorts them where they are (link_weights.py)


_PLANS: dict = {}


def _plan(layers: list, folds: list, link_weights, node_sums) -> _Plan:
    """Kept per window of layers (and link-weight sample size): drawing and concatenating MiniLM's
    sample positions anew cost a third of this module's Python."""
    exact_limit = link_weights.exact_limit
    key = (*map(id, layers), exact_limit)
    plan = _PLANS.get(key)
    if plan is not None and all(a is b for a, b in zip(plan.layers, layers)):
        return plan
    if len(_PLANS) > 64:  # topologies built anew (tests, many models in one process): keep few
        _PLANS.clear()
    positions = [link_weights.layer_positions(layer, folded) for layer, folded in zip(layers, folds)]
    weights, biases = _flat([w for w, _ in positions]), _flat([b for _, b in positions])
    lengths = np.array([w.size + b.size for w, b in positions], np.int64)
    by_length = np.argsort(lengths, kind="stable")
    ends = np.empty_like(lengths)
    ends[by_length] = np.cumsum(lengths[by_length])
    sample_at = np.stack((ends - lengths, ends), 1)
    kind = np.array([IDENTITY if layer.kind == "identity" else LINEAR for layer in layers], np.int64)
    node_at = np.array([node_sums.first_nodes(layer) for layer in layers], np.int64).reshape(-1, 2)
    plan = _PLANS[key] = _Plan(list(layers), exact_limit, kind, node_at, *weights, *biases, sample_at)
    return plan


def _flat(arrays: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The arrays end to end, and where each starts and ends."""
    sizes = np.array([a.size for a in arrays], np.int64)
    ends = np.cumsum(sizes)
    return np.concatenate(arrays).astype(np.int64, copy=False), np.stack((ends - sizes, ends), 1)


@intrinsic
def _float32_at(typing_context, address):
    """The float32 values at a memory address. numba takes arrays of many shapes in one call only
    as a typed List, which cost 100 us a call (measured): the call takes the weights' addresses."""
    signature = types.CPointer(types.float32)(types.int64)

    def codegen(context, builder, signature, arguments):
        return builder.inttoptr(arguments[0], context.get_value_type(types.CPointer(types.float32)))

    return signature, codegen


def _graph(kind, address, shape, vectors, vector_at, node_at, positions, position_at, bias_positions,
           bias_position_at, s_in, s_out, node_bias, moments, samples, sample_at, chunks):
    """shape[l] = (rows, columns, row stride) of layer l's weight at address[l] ((links, 1, 1): an
    identity layer's vector); vector_at[l]: where its ROW, COLUMN, SHIFT and BIAS vectors start
    in `vectors` (_NONE: absent); its sample goes to samples[sample_at[l, 0]:sample_at[l, 1]], the
    weights at positions[position_at[l, 0]:position_at[l, 1]], then the bias at its positions;
    moments[l] = the weights' (total, squares, low, high), then the bias's."""
    count = kind.size
    row_at = np.zeros(count + 1, np.int64)  # each layer's rows and columns in the work buffers below
    column_at = np.zeros(count + 1, np.int64)
    for layer in range(count):
        linear = kind[layer] == LINEAR
        row_at[layer + 1] = row_at[layer] + (shape[layer, 0] if linear else 0)
        column_at[layer + 1] = column_at[layer] + (shape[layer, 1] if linear else 0)
    rows = np.empty(row_at[count])
    biases = np.zeros(row_at[count], np.float32)  # each layer's bias, to which the pass adds its read shift
    for layer in range(count):
        if kind[layer] == LINEAR and vector_at[layer, BIAS] != _NONE:
            start = vector_at[layer, BIAS]
            biases[row_at[layer]:row_at[layer + 1]] = vectors[start:start + shape[layer, 0]]
    columns = np.empty((chunks, column_at[count]))
    low = np.empty((chunks, column_at[count]), np.float32)
    high = np.empty((chunks, column_at[count]), np.float32)
    squares = np.zeros((chunks, count))
    for chunk in numba.prange(chunks):  # each thread its share of every layer's rows
        for layer in range(count):
            if kind[layer] != LINEAR:
                continue
            n_rows, n_columns, stride = shape[layer, 0], shape[layer, 1], shape[layer, 2]
            per_chunk = (n_rows + chunks - 1) // chunks
            start, stop = min(n_rows, chunk * per_chunk), min(n_rows, (chunk + 1) * per_chunk)
            # the last row of a slice of wider rows runs past the weights by the rest of its row: never read
            weight = numba.carray(_float32_at(address[layer]), (n_rows, stride))
            a, z = column_at[layer], column_at[layer + 1]
            squares[chunk, layer] = _read(
                weight, n_columns, vectors, vector_at[layer], start, stop, rows[row_at[layer]:row_at[layer + 1]],
                columns[chunk, a:z], low[chunk, a:z], high[chunk, a:z],
                positions[position_at[layer, 0]:position_at[layer, 1]],
                samples[sample_at[layer, 0]:sample_at[layer, 0] + position_at[layer, 1] - position_at[layer, 0]],
                biases[row_at[layer]:row_at[layer + 1]])
    for layer in range(count):  # each layer finished, its strengths into the node sums
        source, entered = node_at[layer, 0], node_at[layer, 1]
        sample = samples[sample_at[layer, 0]:sample_at[layer, 1]]
        taken = position_at[layer, 1] - position_at[layer, 0]
        if kind[layer] == LINEAR:
            n_rows, n_columns = shape[layer, 0], shape[layer, 1]
            a = column_at[layer]
            low_value, high_value = np.inf, -np.inf
            for column in range(n_columns):
                total = 0.0
                for chunk in range(chunks):
                    total += columns[chunk, a + column]
                    low_value = min(low_value, np.float64(low[chunk, a + column]))
                    high_value = max(high_value, np.float64(high[chunk, a + column]))
                s_out[source + column] += total
            layer_rows = rows[row_at[layer]:row_at[layer + 1]]
            moments[layer, 0] = layer_rows.sum()
            moments[layer, 1] = squares[:, layer].sum()
            moments[layer, 2], moments[layer, 3] = low_value, high_value
            bias = biases[row_at[layer]:row_at[layer + 1]]
            for row in range(n_rows):
                s_in[entered + row] += layer_rows[row]
        else:  # identity: link j from node j to node j, its weight 1 with the scales folded in
            n_rows = shape[layer, 0]
            weight = numba.carray(_float32_at(address[layer]), n_rows)
            values = np.empty(n_rows, np.float32)
            for j in range(n_rows):
                value = weight[j]  # scaled in the order the Linear layers' pass and folding.py scale
                if vector_at[layer, COLUMN] != _NONE:
                    value *= vectors[vector_at[layer, COLUMN] + j]
                if vector_at[layer, ROW] != _NONE:
                    value *= vectors[vector_at[layer, ROW] + j]
                values[j] = value
                s_out[source + j] += value
                s_in[entered + j] += value
            moments[layer, 0], moments[layer, 1], moments[layer, 2], moments[layer, 3] = vector_moments(values)
            for k in range(taken):
                sample[k] = values[positions[position_at[layer, 0] + k]]
            start = vector_at[layer, BIAS]
            bias = vectors[start:start + n_rows] if start != _NONE else vectors[:0]
        if vector_at[layer, BIAS] != _NONE:
            moments[layer, 4], moments[layer, 5], moments[layer, 6], moments[layer, 7] = vector_moments(bias)
            for row in range(n_rows):
                s_in[entered + row] += bias[row]
                node_bias[entered + row] += bias[row]
            wanted = bias_positions[bias_position_at[layer, 0]:bias_position_at[layer, 1]]
            for k in range(wanted.size):
                sample[taken + k] = bias[wanted[k]]


def _read(weight, n_columns, vectors, at, start, stop, rows, columns, low, high, positions, sample, bias):
    """fused_sums.read_rows with the layer's scales: one call per combination present, as numba
    compiles each with the others left out (an unscaled layer's pass 18% quicker, a zero shift's
    16% slower: measured). A combination MiniLM, BERT, LLaMA and folded BatchNorm do not use takes
    all three, the absent ones as ones or zeros."""
    n_rows = weight.shape[0]
    row_scale = vectors[at[ROW]:at[ROW] + n_rows]  # views (empty where absent): nothing allocated
    column_scale = vectors[at[COLUMN]:at[COLUMN] + n_columns]
    shift = vectors[at[SHIFT]:at[SHIFT] + n_columns]
    has_row, has_column, has_shift = at[ROW] != _NONE, at[COLUMN] != _NONE, at[SHIFT] != _NONE
    no_column_shifts = np.zeros(0)
    if not has_shift and not has_column:
        if has_row:
            return read_rows(weight, n_columns, row_scale, None, None, None, start, stop, rows, columns, low, high,
                             positions, sample, bias, no_column_shifts)
        return read_rows(weight, n_columns, None, None, None, None, start, stop, rows, columns, low, high,
                         positions, sample, bias, no_column_shifts)
    if has_column and not has_row:
        if has_shift:
            return read_rows(weight, n_columns, None, column_scale, shift, None, start, stop, rows, columns, low,
                             high, positions, sample, bias, no_column_shifts)
        return read_rows(weight, n_columns, None, column_scale, None, None, start, stop, rows, columns, low, high,
                         positions, sample, bias, no_column_shifts)
    if not has_row:
        row_scale = np.ones(n_rows, np.float32)
    if not has_column:
        column_scale = np.ones(n_columns, np.float32)
    if not has_shift:
        shift = np.zeros(n_columns, np.float32)
    return read_rows(weight, n_columns, row_scale, column_scale, shift, None, start, stop, rows, columns, low, high,
                     positions, sample, bias, no_column_shifts)


_read = compile_kernel(_read)
_graph = compile_kernel(_graph, parallel=True)

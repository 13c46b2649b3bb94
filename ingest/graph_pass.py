"""A version's dense float32 layers and identity links on the CPU, all in one compiled call.

Layer by layer, each compiled pass (fused_sums.py) came with Python around it: converting and
checking its tensors, starting two threads, adding its strengths into the node layers. On MiniLM's
55 weight layers that was half of the metrics' time (bench/transformer.py). Here one call reads
every such layer: it folds their norms and biases from the stored tensors' addresses (graph_fold.py,
by the topology's plan, graph_plan.py), each thread takes its share of the rows of every layer in
turn (one start of the threads for the whole graph), then the layers are finished one after the
other and their strengths added into flat node sums. The rest (conv and pooling, float64 and half
precision, weights stored transposed, grouped-query identity links, CUDA) keep their own passes
(layer_passes.py), which add into the same node sums."""

from __future__ import annotations

import numba
import numpy as np
import torch

from .fused_sums import FLUSH_ROWS, chunk_rows, compile_kernel, read_rows, vector_moments
from .graph_fold import BIAS, COLUMN, READ_SHIFT, ROW, float32_at, fold
from .graph_plan import COLUMNS, KEY, LINEAR, NONE, OWN, ROW0, ROWS, plan_of
from .strengths import Moments


class GraphVersion:
    """One version's tensors as the call reads them: whether it can read a weight layer (every
    tensor the layer reads float32, on the CPU, in the shape the plan knows, read by rows or
    contiguous) and the call over a window of such layers. The tensors of the window being
    gathered are held until the call returns: it reads them by address, and a lazy mapping
    (safetensors) gives a new tensor at every read."""

    def __init__(self, network, link_weights, node_sums):
        self.plan = plan = plan_of(network, link_weights, node_sums)
        self.tensors, self.node_sums = network.tensors, node_sums
        self.held: dict[int, torch.Tensor] = {}
        self.sound = [False] * len(plan.keys)
        self.addresses = np.zeros(len(plan.keys), np.int64)
        self.strides = np.ones(len(plan.keys), np.int64)
        self.samples = np.empty(plan.sample_at[:, 1].max(initial=0), np.float32)
        self.affine_values = np.empty(plan.affine_values, np.float32)  # the call computes the others

    def reads(self, index: int) -> bool:
        """Whether the call can read weight layer `index` (its tensors are held from now on)."""
        plan = self.plan
        if plan.kind[index] == OWN:
            return False
        sound = True
        for key in plan.key_lists[index]:
            if key not in self.held:
                self._hold(key)
            sound = sound and self.sound[key]
        return sound

    def _hold(self, key: int) -> None:
        plan = self.plan
        tensor = self.held[key] = self.tensors[plan.keys[key]]
        shape, strides = plan.shapes[key], tensor.stride()  # all at once: each stride(i) costs as much
        self.sound[key] = tensor.dtype == torch.float32 and tensor.is_cpu and tensor.shape == shape and (
            strides[1] == 1 and strides[0] >= shape[1] if plan.matrix[key] else tensor.is_contiguous())
        self.addresses[key] = tensor.data_ptr()
        self.strides[key] = strides[0] if plan.matrix[key] else 1

    def read(self, first: int, stop: int) -> list:
        """Weight layers first..stop-1 (all `reads`): their strengths and biases added into the node
        sums (metrics.NodeSums), their samples taken at the link-weight sample's positions; their
        layer_passes.LayerPass, with no `into` (added already) and the sample holding the bias."""
        from .layer_passes import LayerPass

        plan, sums = self.plan, self.node_sums
        for affine, size, at, keys in plan.given:
            if all(key in self.held and self.sound[key] for key in keys):
                scale, shift = affine.scale_shift(self.tensors, size, torch.float32)
                self.affine_values[at:at + 2 * size] = torch.cat((scale, shift)).numpy()
        moments = np.empty((stop - first, 8))
        _graph(first, stop, plan.kind, plan.dims, plan.bias_keys, plan.bias_at, plan.affine_uses, plan.in_at,
               plan.out_at, plan.affines, self.affine_values, self.addresses, self.strides, plan.node_at,
               plan.positions, plan.position_at, plan.bias_positions, plan.bias_position_at, sums.s_in, sums.s_out,
               sums.bias, moments, self.samples, plan.sample_at, numba.config.NUMBA_NUM_THREADS)
        self.held.clear()  # the next window's are read anew
        results = []
        for layer, (weight_sums, bias_sums), links, rows, has_bias, (start, stop_at) in zip(
                plan.topology.weight_layers[first:stop], moments.reshape(-1, 2, 4).tolist(),
                plan.links[first:stop].tolist(), plan.dims[first:stop, ROWS].tolist(),
                plan.has_bias[first:stop].tolist(), plan.sample_at[first:stop].tolist()):
            results.append(LayerPass(layer, None, None, None, None, links, Moments(links, *weight_sums),
                                     self.samples[start:stop_at], Moments(rows, *bias_sums) if has_bias else None,
                                     (self.samples, start)))
        return results


def _graph(first, stop, kind, dims, bias_keys, bias_at, affine_uses, in_at, out_at, affines, affine_values,
           addresses, strides, node_at, positions, position_at, bias_positions, bias_position_at, s_in, s_out,
           node_bias, moments, samples, sample_at, chunks):
    """Weight layers first..stop-1 of the plan (graph_plan.py), their tensors at `addresses`: each
    layer's sample goes to samples[sample_at[l, 0]:sample_at[l, 1]], the weights at
    positions[position_at[l, 0]:position_at[l, 1]], then the bias at its positions; moments[l -
    first] = the weights' (total, squares, low, high), then the bias's."""
    vectors, vector_at = fold(first, stop, kind, dims, bias_keys, bias_at, affine_uses, in_at, out_at, affines,
                              affine_values, addresses)
    count = stop - first
    row_at = np.zeros(count + 1, np.int64)  # each layer's rows and columns in the work buffers below
    column_at = np.zeros(count + 1, np.int64)
    for number in range(count):
        linear = kind[first + number] == LINEAR
        row_at[number + 1] = row_at[number] + (dims[first + number, ROWS] if linear else 0)
        column_at[number + 1] = column_at[number] + (dims[first + number, COLUMNS] if linear else 0)
    rows = np.empty(row_at[count])
    biases = np.zeros(row_at[count], np.float32)  # each layer's bias, to which the pass adds its read shift
    for number in range(count):
        if kind[first + number] == LINEAR and vector_at[number, BIAS] != NONE:
            start = vector_at[number, BIAS]
            biases[row_at[number]:row_at[number + 1]] = vectors[start:start + dims[first + number, ROWS]]
    columns = np.empty((chunks, column_at[count]))
    low = np.empty((chunks, column_at[count]), np.float32)
    high = np.empty((chunks, column_at[count]), np.float32)
    squares = np.zeros((chunks, count))
    for chunk in numba.prange(chunks):  # each thread its share of every layer's rows
        ahead = np.zeros(4, np.int64)  # the first rows of its next layer, fetched while it ends this one
        for number in range(count):
            layer = first + number
            if kind[layer] != LINEAR:
                continue
            n_rows, n_columns = dims[layer, ROWS], dims[layer, COLUMNS]
            start, stop_row = chunk_rows(chunk, chunks, n_rows)
            ahead[2] = 0
            for following in range(layer + 1, first + count):
                if kind[following] == LINEAR:
                    begin, end = chunk_rows(chunk, chunks, dims[following, ROWS])
                    ahead[0] = _row_address(addresses, strides, dims, following, begin)
                    ahead[1], ahead[2] = 4 * strides[dims[following, KEY]], min(FLUSH_ROWS, end - begin)
                    ahead[3] = 4 * dims[following, COLUMNS]
                    break
            # the last row of a slice of wider rows runs past the weights by the rest of its row: never read
            weight = numba.carray(float32_at(_row_address(addresses, strides, dims, layer, 0)),
                                  (n_rows, strides[dims[layer, KEY]]))
            a, z = column_at[number], column_at[number + 1]
            squares[chunk, number] = _read(
                weight, n_columns, vectors, vector_at[number], start, stop_row, rows[row_at[number]:row_at[number + 1]],
                columns[chunk, a:z], low[chunk, a:z], high[chunk, a:z],
                positions[position_at[layer, 0]:position_at[layer, 1]],
                samples[sample_at[layer, 0]:sample_at[layer, 0] + position_at[layer, 1] - position_at[layer, 0]],
                biases[row_at[number]:row_at[number + 1]], ahead)
    for number in range(count):  # each layer finished, its strengths into the node sums
        layer = first + number
        source, entered = node_at[layer, 0], node_at[layer, 1]
        sample = samples[sample_at[layer, 0]:sample_at[layer, 1]]
        taken = position_at[layer, 1] - position_at[layer, 0]
        n_rows = dims[layer, ROWS]
        at = vector_at[number]
        if kind[layer] == LINEAR:
            n_columns = dims[layer, COLUMNS]
            a = column_at[number]
            low_value, high_value = np.inf, -np.inf
            for column in range(n_columns):
                total = 0.0
                for chunk in range(chunks):
                    total += columns[chunk, a + column]
                    low_value = min(low_value, np.float64(low[chunk, a + column]))
                    high_value = max(high_value, np.float64(high[chunk, a + column]))
                s_out[source + column] += total
            layer_rows = rows[row_at[number]:row_at[number + 1]]
            moments[number, 0] = layer_rows.sum()
            moments[number, 1] = squares[:, number].sum()
            moments[number, 2], moments[number, 3] = low_value, high_value
            bias = biases[row_at[number]:row_at[number + 1]]
            for row in range(n_rows):
                s_in[entered + row] += layer_rows[row]
        else:  # identity: link j from node j to node j, its weight 1 with the scales folded in
            values = np.empty(n_rows, np.float32)
            for j in range(n_rows):
                value = np.float32(1)  # scaled in the order the Linear layers' pass and folding.py scale
                if at[COLUMN] != NONE:
                    value *= vectors[at[COLUMN] + j]
                if at[ROW] != NONE:
                    value *= vectors[at[ROW] + j]
                values[j] = value
                s_out[source + j] += value
                s_in[entered + j] += value
            moments[number, 0], moments[number, 1], moments[number, 2], moments[number, 3] = vector_moments(values)
            for k in range(taken):
                sample[k] = values[positions[position_at[layer, 0] + k]]
            bias = vectors[at[BIAS]:at[BIAS] + n_rows] if at[BIAS] != NONE else vectors[:0]
        if at[BIAS] != NONE:
            moments[number, 4], moments[number, 5], moments[number, 6], moments[number, 7] = vector_moments(bias)
            for row in range(n_rows):
                s_in[entered + row] += bias[row]
                node_bias[entered + row] += bias[row]
            wanted = bias_positions[bias_position_at[layer, 0]:bias_position_at[layer, 1]]
            for k in range(wanted.size):
                sample[taken + k] = bias[wanted[k]]


def _row_address(addresses, strides, dims, layer, row):
    """Where row `row` of a Linear layer's weight (its slice of the stored tensor) starts."""
    key = dims[layer, KEY]
    return addresses[key] + 4 * strides[key] * (dims[layer, ROW0] + row)


def _read(weight, n_columns, vectors, at, start, stop, rows, columns, low, high, positions, sample, bias, ahead):
    """fused_sums.read_rows with the layer's scales: one call per combination present, as numba
    compiles each with the others left out (an unscaled layer's pass 18% quicker, a zero shift's
    16% slower: measured). A combination MiniLM, BERT, LLaMA and folded BatchNorm do not use takes
    all three, the absent ones as ones or zeros."""
    n_rows = weight.shape[0]
    row_scale = vectors[at[ROW]:at[ROW] + n_rows]  # views (empty where absent): nothing allocated
    column_scale = vectors[at[COLUMN]:at[COLUMN] + n_columns]
    shift = vectors[at[READ_SHIFT]:at[READ_SHIFT] + n_columns]
    has_row, has_column, has_shift = at[ROW] != NONE, at[COLUMN] != NONE, at[READ_SHIFT] != NONE
    no_column_shifts = np.zeros(0)
    if not has_shift and not has_column:
        if has_row:
            return read_rows(weight, n_columns, row_scale, None, None, None, start, stop, rows, columns, low, high,
                             positions, sample, bias, no_column_shifts, ahead)
        return read_rows(weight, n_columns, None, None, None, None, start, stop, rows, columns, low, high,
                         positions, sample, bias, no_column_shifts, ahead)
    if has_column and not has_row:
        if has_shift:
            return read_rows(weight, n_columns, None, column_scale, shift, None, start, stop, rows, columns, low,
                             high, positions, sample, bias, no_column_shifts, ahead)
        return read_rows(weight, n_columns, None, column_scale, None, None, start, stop, rows, columns, low, high,
                         positions, sample, bias, no_column_shifts, ahead)
    if not has_row:
        row_scale = np.ones(n_rows, np.float32)
    if not has_column:
        column_scale = np.ones(n_columns, np.float32)
    if not has_shift:
        shift = np.zeros(n_columns, np.float32)
    return read_rows(weight, n_columns, row_scale, column_scale, shift, None, start, stop, rows, columns, low, high,
                     positions, sample, bias, no_column_shifts, ahead)


_row_address = compile_kernel(_row_address)
_read = compile_kernel(_read)
_graph = compile_kernel(_graph, parallel=True)

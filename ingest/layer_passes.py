"""One pass over each weight layer of a network version: strengths, weight moments, sample.

The dense float32 layers and identity links on the CPU are read together, in one compiled call
(graph_pass.py). Another dense float layer on the CPU (float64, stored transposed) takes its own
compiled pass (fused_sums.py); both fold the norms' scales as they read. Other identity links
(grouped-query attention) are a vector, read with numpy. The rest (conv and pooling, CUDA, half
precision) take torch's passes over the folded weight (strengths.py), retried in smaller
blocks, then on the CPU, when a GPU runs out of memory.

Running the compiled passes on a worker thread, ahead of the caller's bookkeeping, was tried
and dropped: handing each layer across threads and back under the GIL made MiniLM's metrics 2x
slower (bench/transformer.py).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch

from nngraph.errors import NNGraphError

from .link_weights import LinkWeightStats, flat_numpy, gather
from .network import Network, WeightLayer
from .strengths import BLOCK_ELEMENTS, Moments, conv_strengths, dense_strengths

LOG = logging.getLogger("nngraph")
COMPILED_ON_CPU = True  # False: torch's passes on the CPU too (bench/metrics.py compares them)
WINDOW_BYTES = 256 << 20  # the weights one compiled call over many layers holds in memory


@dataclass(slots=True)
class LayerPass:
    layer: WeightLayer
    bias: np.ndarray | None  # the folded bias, flat
    # None, None, None: added into the node sums already (graph_pass.py), the sample holding the bias
    into: np.ndarray | torch.Tensor | None  # in-strength of the nodes entered, bias included
    out_of: np.ndarray | torch.Tensor | None  # out-strength of the nodes read
    bias_nodes: np.ndarray | torch.Tensor | None  # the bias of each node entered (a conv's per position)
    edges: int
    moments: Moments  # of the folded weights
    sample: np.ndarray  # the folded weights at the link-weight sample's positions (none for tied layers)
    bias_moments: Moments | None  # of the folded bias
    sample_place: tuple | None = None  # (buffer, offset): the sample is a copy lying there (the graph pass's)


def layer_passes(network: Network, link_weights: LinkWeightStats, device: torch.device, paper_conv_in_strength: bool,
                 node_sums) -> Iterator[LayerPass]:
    """Every weight layer's pass, in order. The dense float32 layers and identity links on the CPU
    go through one compiled call per window of layers (graph_pass.py), which folds their norms and
    adds their strengths into `node_sums` (metrics.NodeSums) itself: their LayerPass has no `into`.
    A window holds at most WINDOW_BYTES of weights in memory, the other layers one at a time."""
    graph = None
    if COMPILED_ON_CPU and device.type == "cpu":
        from .graph_pass import GraphVersion  # numba: imported when a CPU layer needs it

        graph = GraphVersion(network, link_weights, node_sums)
    first, window_bytes = None, 0
    for index, layer in enumerate(network.topology.weight_layers):
        if graph is not None and graph.reads(index):
            first = index if first is None else first
            window_bytes += graph.plan.weight_bytes[index]
            if window_bytes >= WINDOW_BYTES:
                yield from graph.read(first, index + 1)
                first, window_bytes = None, 0
            continue
        if first is not None:
            yield from graph.read(first, index)
            first, window_bytes = None, 0
        yield _own_pass(layer, network.folded(layer), link_weights, device, paper_conv_in_strength)
    if first is not None:
        yield from graph.read(first, len(network.topology.weight_layers))


def _own_pass(layer, folded, link_weights: LinkWeightStats, device, paper_conv_in_strength: bool) -> LayerPass:
    weight = folded.weight
    positions = link_weights.layer_positions(layer, folded)[0]
    if COMPILED_ON_CPU and layer.kind == "linear" and device.type == "cpu" and weight.device.type == "cpu" \
            and weight.dtype in (torch.float32, torch.float64) and weight.numel():
        return _compiled_pass(layer, folded, positions)
    if layer.kind == "identity":
        return _identity_pass(layer, folded, positions)
    weight, torch_bias = folded.tensors()
    bias = None if torch_bias is None else flat_numpy(torch_bias)
    strengths = _torch_strengths(layer, weight, torch_bias, device, paper_conv_in_strength)
    return LayerPass(layer, bias, *strengths, gather(weight, positions),
                     None if bias is None else Moments.of_vector(bias))


def _compiled_pass(layer, folded, positions: np.ndarray) -> LayerPass:
    from .fused_sums import folded_sums  # numba: imported when a layer needs it

    bias = None if folded.bias is None else flat_numpy(folded.bias)
    into, out_of, moments, bias, bias_moments, sample = folded_sums(
        folded.weight, folded.row_scale, folded.col_scale, positions, bias, folded.read_shift)
    return LayerPass(layer, bias, into, out_of, bias, moments.count, moments, sample, bias_moments)


def _identity_pass(layer, folded, positions: np.ndarray) -> LayerPass:
    """Link j: src node sources[j] -> dst node j, its weight d_j the scales folded into 1. A
    vector, on any device: numpy's calls are the quickest at this size (torch's cost 3-8 us each)."""
    bias = None if folded.bias is None else flat_numpy(folded.bias)  # identity links fold their shifts now
    values = flat_numpy(folded.weight)
    for scale in (folded.col_scale, folded.row_scale):  # both per link here
        if scale is not None:
            values = values * flat_numpy(scale)
    out_of = values if layer.repeat == 1 else np.bincount(layer.identity_sources().numpy(), values,
                                                          layer.identity_reads)
    into = values if bias is None else values + bias
    sample = values if positions.size == values.size else values[positions]
    return LayerPass(layer, bias, into, out_of, bias, values.size, Moments.of_vector(values), sample,
                     None if bias is None else Moments.of_vector(bias))


def _torch_strengths(layer, weight, bias, device: torch.device, paper_conv_in_strength: bool):
    """(into, out_of, bias_nodes, edges, moments) of one weight layer from torch's passes; when
    the GPU runs out of memory, again in blocks 16 times smaller, then on the CPU, saying so (the
    results are the same, only slower)."""
    attempts = [(device, BLOCK_ELEMENTS), (device, BLOCK_ELEMENTS // 16)]
    if device.type != "cpu":
        attempts.append((torch.device("cpu"), BLOCK_ELEMENTS))
    for number, (where, block) in enumerate(attempts):
        try:
            if layer.is_conv:
                return conv_strengths(weight, bias, layer.in_shape, stride=layer.stride, pads=layer.pads,
                                      dilation=layer.dilation, groups=layer.groups, device=where,
                                      paper_in_strength=paper_conv_in_strength)
            into, out_of, moments = dense_strengths(weight, bias, where, block)
            return into, out_of, bias, weight.numel(), moments
        except torch.OutOfMemoryError:
            if number == len(attempts) - 1:
                raise NNGraphError(f"layer {layer.name} does not fit in memory even on the CPU") from None
            if where.type == "cuda":
                torch.cuda.empty_cache()
            following = attempts[number + 1]
            LOG.warning("layer %s: out of memory on %s; retrying %s", layer.name, where,
                        "on the CPU" if following[0] != where else f"in blocks of {following[1]:,} values")

"""What a version becomes in the graph, as arrays: neuron columns, link blocks, channel rows.

Shared by the database writer and the import-file exporter, so both store the same graph.

Conv layers (--conv-edges):
- `channel` (default): one Channel node per channel of each feature map next to a conv,
  and one CHANNEL_LINK per (input channel, output channel) kernel, weighted by the kernel's
  sum (`abs_weight`: the sum of |entries|; `taps`: its size). Pixel neurons are still stored
  with their exact strengths and their (channel, row, col).
- `pixel`: the unrolled pixel-level graph of METRICS.md, one LINK per kernel entry per
  output position whose input is a real pixel (padding positions are not nodes).
"""

from __future__ import annotations

from dataclasses import dataclass
from math import prod

import numpy as np
import torch

from nngraph.errors import NNGraphError

from .edges import EdgePolicy
from .metrics import NetworkMetrics, NodeLayerMetrics, WeightLayerMetrics
from .network import Network, WeightLayer

CONV_EDGES = ("channel", "pixel")


@dataclass(frozen=True)
class GraphOptions:
    edges: EdgePolicy = EdgePolicy()
    conv_edges: str = "channel"

    def __post_init__(self):
        if self.conv_edges not in CONV_EDGES:
            raise NNGraphError(f"--conv-edges {self.conv_edges!r}: expected channel or pixel")
        if self.conv_edges == "pixel" and self.edges.kind == "backbone":
            raise NNGraphError("--edges backbone needs whole dense layers; with --conv-edges pixel use "
                               "all, none, topk:K or threshold:T")

    def stores_links(self, layer: WeightLayer) -> bool:
        return self.edges.kind != "none" and (not layer.is_conv or self.conv_edges == "pixel")


def neuron_columns(layer: NodeLayerMetrics, data=None) -> dict[str, np.ndarray | None]:
    """index, strengths, bias, channel/row/col for feature maps, and with `data` (the layer's
    activations.LayerData) each neuron's NS and NA mean and std (None where not defined)."""
    count, shape = layer.strength.size, layer.layer.shape
    columns = {"index": np.arange(count), "s_in": layer.s_in, "s_out": layer.s_out, "strength": layer.strength,
               "bias": layer.bias, "channel": None, "row": None, "col": None}
    if len(shape) >= 2:  # (C, L), (C, H, W) or (C, D, H, W)
        position = np.unravel_index(columns["index"], shape)
        columns["channel"] = position[0]
        columns["row"] = position[-2] if len(shape) >= 3 else None
        columns["col"] = position[-1]
    columns.update(dict.fromkeys(("ns_mean", "ns_std", "na_mean", "na_std")))
    if data is not None:
        columns["ns_mean"], columns["ns_std"] = data.strength.per_node()
        columns["na_mean"], columns["na_std"] = data.activation_values.per_node()
    return columns


def link_blocks(network: Network, weights: WeightLayerMetrics, options: GraphOptions, max_elements: int = 1 << 22):
    """(source index, target index, weight) blocks of a weight layer's stored LINKs."""
    if not options.stores_links(weights.layer):
        return
    layer = weights.layer
    if layer.kind == "identity":
        weights = network.weight(layer).detach().to("cpu", torch.float64).numpy()
        sources = layer.identity_sources().numpy()
        yield options.edges.filter_list(sources, np.arange(weights.size) + layer.dst_offset, weights)
        return
    if not layer.is_conv:
        yield from options.edges.chunks(network.weight(layer), max_elements)
        return
    for sources, targets, values in pixel_edges(network.weight(weights.layer), weights.layer):
        yield options.edges.filter_list(sources, targets, values)


def pixel_edges(weight: torch.Tensor, layer: WeightLayer):
    """The unrolled graph of a conv layer, one block per output channel (all edges into its nodes)."""
    kernel = weight.detach().to("cpu", torch.float64).numpy()
    c_out, c_in_group, kernel_size = kernel.shape[0], kernel.shape[1], kernel.shape[2:]
    in_spatial = np.array(layer.in_shape[1:])
    stride, dilation, size = (np.array(v) for v in (layer.stride, layer.dilation, kernel_size))
    padding, padding_end = np.array(layer.pads).T
    out_spatial = tuple(((in_spatial + padding + padding_end - dilation * (size - 1) - 1) // stride + 1).tolist())
    out_positions = np.indices(out_spatial).reshape(len(out_spatial), 1, -1)
    taps = np.indices(kernel_size).reshape(len(kernel_size), -1, 1)
    column = lambda v: v.reshape(-1, 1, 1)  # noqa: E731 (broadcast over taps and positions)
    in_coords = out_positions * column(stride) + taps * column(dilation) - column(padding)  # (dims, taps, positions)
    real = np.all((in_coords >= 0) & (in_coords < column(in_spatial)), axis=0)
    tap, out_flat = np.nonzero(real)
    in_flat = np.ravel_multi_index(tuple(in_coords[:, tap, out_flat]), tuple(in_spatial))
    in_size, out_size = int(prod(in_spatial)), int(prod(out_spatial))
    per_group = c_out // layer.groups
    flat_kernel = kernel.reshape(c_out, c_in_group, -1)
    for channel in range(c_out):
        inputs = (channel // per_group) * c_in_group + np.arange(c_in_group)
        sources = (inputs[:, None] * in_size + in_flat[None, :]).ravel()
        targets = np.broadcast_to(channel * out_size + out_flat, (c_in_group, len(out_flat))).ravel()
        yield sources, targets, flat_kernel[channel][:, tap].ravel()


def channel_layers(metrics: NetworkMetrics) -> list[NodeLayerMetrics]:
    """Node layers that a conv layer reads or writes: they get Channel nodes in channel mode."""
    touched = {i for m in metrics.weight_layers if m.layer.is_conv for i in (m.layer.src, m.layer.dst)}
    return [layer for layer in metrics.node_layers if layer.layer.index in touched]


def channel_rows(layer: NodeLayerMetrics) -> list[list]:
    """[layer, channel, positions, strength sum, mean strength] per channel of a feature map."""
    per_channel = layer.strength.reshape(layer.layer.shape[0], -1)
    return [[layer.layer.index, c, per_channel.shape[1], float(row.sum()), float(row.mean())]
            for c, row in enumerate(per_channel)]


def channel_link_rows(network: Network, layer: WeightLayer) -> list[list]:
    """[src layer, in channel, dst layer, out channel, kernel sum, kernel |sum|, taps] per kernel."""
    kernel = network.weight(layer).detach().to("cpu", torch.float64)
    c_out, c_in_group = kernel.shape[:2]
    flat = kernel.reshape(c_out, c_in_group, -1)
    sums, abs_sums = flat.sum(-1).tolist(), flat.abs().sum(-1).tolist()
    per_group = c_out // layer.groups
    return [[layer.src, (o // per_group) * c_in_group + i, layer.dst, o, sums[o][i], abs_sums[o][i], flat.shape[-1]]
            for o in range(c_out) for i in range(c_in_group)]

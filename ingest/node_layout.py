"""Which of a node layer's nodes each element of a graph value holds, for the walk (trace.py).

A layer's nodes are numbered as the op that made it lays them out: a conv's (channel,
*position), a Linear's features. Views (a permute to the channels last, a flatten) and maps of
the same shape (a folded norm, an activation, a residual sum) carry them on. Replaying those ops
on the nodes' numbers, with torch's own ops (fused_parts.replayed), tells where each node is:
whether a Linear layer reads a feature map with its channels last (a 1x1 convolution), and in
which order the data pass reads a layer whose value a permute moved.
"""

from __future__ import annotations

import torch

from .fused_parts import REPLAYED, replayed
from .fx_nodes import numel, op_name, shape_of


def placement(made, chain: list, nodes: int, order: torch.Tensor | None) -> torch.Tensor | None:
    """The number of the node each element of the chain's last value holds (in that value's
    shape, batch first), or None. made: the op that made the layer; order: where its value holds
    each node (None: in node order); chain: (op, its operand that holds the layer), from the
    made value on. None when an op is neither a view nor a map of the same shape, or when the
    made value holds positions besides the nodes (a token sequence)."""
    shape = shape_of(made)
    if len(shape) < 2 or numel(shape[1:]) != nodes:
        return None
    place = (torch.arange(nodes) if order is None else torch.argsort(order)).reshape(1, *shape[1:]).expand(shape)
    for op, operand in chain:
        if op_name(op) in REPLAYED:
            place = replayed(op, place)
        elif shape_of(op) != shape_of(operand):
            return None
        if place is None:
            return None
    return place


def holds_channels_last(place: torch.Tensor | None, shape: tuple) -> bool:
    """Does a sample of the value hold the feature map of `shape` (C, *positions) with its
    channels last (ConvNeXt's `x.permute(0, 2, 3, 1)`)?"""
    return place is not None and torch.equal(place[0], torch.arange(numel(shape)).reshape(shape).movedim(0, -1))


def holds_tokens(place: torch.Tensor | None, shape: tuple) -> bool:
    """Does a sample of the value hold the feature map of `shape` (C, *positions) as a sequence of
    its positions, each one's C channels (a ViT's patches: `x.flatten(2).transpose(1, 2)`)?"""
    return place is not None and place.dim() == 3 and place.shape[-1] == shape[0] and \
        torch.equal(place[0].reshape(-1), torch.arange(numel(shape)).reshape(shape).movedim(0, -1).reshape(-1))


def sample_order(place: torch.Tensor) -> torch.Tensor | None:
    """Where a sample of the value holds each node (what the data pass reads), None if in order."""
    order = torch.argsort(place[0].reshape(-1))
    return None if torch.equal(order, torch.arange(order.numel())) else order


def channels_last_order(channels: int, positions: tuple) -> torch.Tensor:
    """Where a sample of a (*positions, channels) value holds node (channel, *position)."""
    return torch.arange(channels * numel(positions)).reshape(*positions, channels).movedim(-1, 0).reshape(-1)

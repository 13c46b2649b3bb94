"""Which stored rows each part of a fused projection (qkv) holds, when the forward pass splits it.

The walk (trace.py) sees the fused layer's output reshaped and transposed, then split or
indexed. Which of its nodes land in each part depends on all of those views: BERT-style models
split runs of rows, Falcon splits along the heads of a view, GPT-NeoX splits inside each head
(q, k and v of head h are rows h*3d .. h*3d+3d) and Bloom indexes a (heads, 3, head_dim) view.
Rather than a rule per layout, the views are replayed on a tensor that holds each element's own
place in the fused output: the parts come out as the nodes they hold, and as the order their
values lay those nodes out in (what the data pass reads, activations.py). torch's own ops do
the replay, so every view means exactly what it means in the model.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .fx_nodes import numel, op_name, shape_of

RESHAPES = {"view", "reshape", "_unsafe_view", "unsqueeze", "squeeze", "flatten", "unflatten", "reshape_as", "view_as"}
KEEP_ORDER = {"contiguous", "clone", "alias", "detach", "_to_copy", "to", "type_as", "lift_fresh_copy", "dropout",
              "feature_dropout", "alpha_dropout"}
REARRANGE = {"transpose", "permute", "t", "numpy_T", "movedim", "swapaxes", "select", "slice"}
SPLITS = {"split", "split_with_sizes", "chunk", "unbind"}
REPLAYED = RESHAPES | KEEP_ORDER | REARRANGE


@dataclass(frozen=True)
class Part:
    """A part's nodes: stored rows start..stop of every `period` rows (period 0: one run), and
    per sample the order that puts its value's elements as (position, node) rows (None: they
    are already)."""

    rows: tuple[int, int]
    period: int
    order: torch.Tensor | None


def parts_of(head_shape, nodes: int, views: list, ends: list) -> list[Part] | None:
    """The parts a fused layer's output is split into, or None when the views cannot be replayed
    or a part is not a periodic run of rows. head_shape: the fused output's (..., nodes) (GPT-2's
    folds batch and positions into one dimension); views: the view ops from it to the split, in
    order; ends: the split op, or the ops that index each part (Bloom's selects)."""
    if not head_shape or head_shape[-1] != nodes:
        return None
    place = torch.arange(numel(head_shape)).reshape(head_shape)  # position * nodes + node
    for view in views:
        place = replayed(view, place)
        if place is None:
            return None
    pieces = []
    for end in ends:
        out = replayed(end, place)
        if out is None:
            return None
        pieces += list(out) if isinstance(out, (tuple, list)) else [out]
    held = [torch.unique(piece % nodes) for piece in pieces]
    if not torch.equal(torch.sort(torch.cat(held)).values, torch.arange(nodes)):
        return None  # the parts overlap or leave nodes out
    parts = []
    for piece, rows in zip(pieces, held):
        run = _periodic_run(rows, nodes)
        order = _sample_order(piece, rows, nodes)
        if run is None or order is False or piece.numel() * nodes != place.numel() * rows.numel():
            return None
        parts.append(Part(*run, order))
    return parts


def views_between(head, value) -> list | None:
    """The view ops from a layer's value as produced (head) to `value`, in order, or None."""
    views = []
    while value is not head:
        if op_name(value) not in REPLAYED or not hasattr(value.args[0], "op"):
            return None
        views.append(value)
        value = value.args[0]
    return views[::-1]


def siblings(node, op: str) -> list:
    """The selects or slices of the same value along the same dimension as `node` (each a part,
    if that value is a fused layer's), in the order of their index or start."""
    def dim_and_start(user):
        args = [*user.args, 0, 0][1:3]
        return args[0], 0 if args[1] is None else args[1]

    dim = dim_and_start(node)[0]
    found = [user for user in node.args[0].users if op_name(user) == op and dim_and_start(user)[0] == dim]
    if not all(isinstance(dim_and_start(user)[1], int) for user in found):
        return [node]  # an index computed in the graph: not a fused layer's parts
    return sorted(found, key=lambda user: dim_and_start(user)[1])


def _sample_order(piece, rows, nodes: int):
    """The order that puts the elements of a sample of the part's value (its first dimension:
    the batch) as (position, node) rows; None if they are already, False if a sample does not
    hold whole positions of its own."""
    first = piece[:1].reshape(-1)
    key = (first // nodes) * rows.numel() + torch.searchsorted(rows, first % nodes)
    order = torch.argsort(key)
    if not torch.equal(key[order], torch.arange(key.numel())):
        return False
    return None if torch.equal(order, torch.arange(order.numel())) else order


def replayed(view, place):
    """torch's own view op on the places, or None for an op it cannot replay."""
    op = op_name(view)
    if op in KEEP_ORDER:
        return place
    if op in RESHAPES:
        shape = shape_of(view)  # as the graph gives it (its sizes may be computed in the graph)
        return place.reshape(shape) if numel(shape) == place.numel() else None
    if op not in REARRANGE | SPLITS:
        return None
    args = view.args[1:]
    if any(hasattr(a, "op") for a in args) or view.kwargs:
        return None  # a size computed in the graph: not replayed
    try:
        return view.target(place, *args)
    except (RuntimeError, IndexError, TypeError):
        return None


def _periodic_run(rows: torch.Tensor, nodes: int) -> tuple[tuple[int, int], int] | None:
    """((start, stop), period) when `rows` (sorted) are start..stop of every period rows."""
    count = rows.numel()
    steps = torch.nonzero(rows[1:] - rows[:-1] != 1)
    length = int(steps[0]) + 1 if steps.numel() else count
    start = int(rows[0])
    if length == count:
        return (start, start + length), 0
    period = int(rows[length]) - start
    if nodes % period or count != length * (nodes // period):
        return None
    expected = (torch.arange(nodes // period)[:, None] * period + torch.arange(start, start + length)).reshape(-1)
    return ((start, start + length), period) if torch.equal(rows, expected) else None

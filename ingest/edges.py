"""Which weights of a dense layer become stored LINK edges (--edges).

all | none | topk:K (the K largest |w| into each output neuron) | threshold:T (|w| >= T) |
backbone:ALPHA (disparity filter, Serrano, Boguna and Vespignani 2009, on |w|: an edge is
kept when it is significant at level ALPHA for its source or its target node, with
alpha_ij = (1 - |w_ij| / s_i) ** (k_i - 1) over the node's k_i edges of strength s_i in
this layer; a node with a single edge in the layer does not vouch for it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from nngraph.errors import NNGraphError


@dataclass(frozen=True)
class EdgePolicy:
    kind: str = "all"
    value: float | None = None

    @classmethod
    def parse(cls, text: str) -> "EdgePolicy":
        kind, _, value = text.partition(":")
        if kind in ("all", "none") and not value:
            return cls(kind)
        try:
            if kind == "topk" and int(value) > 0:
                return cls(kind, int(value))
            if kind == "threshold" and float(value) >= 0:
                return cls(kind, float(value))
            if kind == "backbone" and 0 < float(value) < 1:
                return cls(kind, float(value))
        except ValueError:
            pass
        raise NNGraphError(f"--edges {text!r}: expected all, none, topk:K (K > 0), threshold:T (T >= 0) "
                           "or backbone:ALPHA (0 < ALPHA < 1)")

    def select(self, weight: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(source index, target index, weight) of the kept edges of a (out, in) weight matrix."""
        w = weight.detach().to("cpu", torch.float64)
        if self.kind == "none":
            empty = np.empty(0, dtype=np.int64)
            return empty, empty, np.empty(0)
        if self.kind == "topk":
            k = min(int(self.value), w.shape[1])
            sources = torch.topk(w.abs(), k, dim=1).indices
            targets = torch.arange(w.shape[0]).unsqueeze(1).expand_as(sources)
            keep = torch.zeros_like(w, dtype=torch.bool)
            keep[targets, sources] = True
        elif self.kind == "threshold":
            keep = w.abs() >= self.value
        elif self.kind == "backbone":
            keep = _significant(w.abs(), dim=0, alpha=self.value) | _significant(w.abs(), dim=1, alpha=self.value)
        else:
            keep = torch.ones_like(w, dtype=torch.bool)
        targets, sources = keep.nonzero(as_tuple=True)
        return sources.numpy(), targets.numpy(), w[targets, sources].numpy()


    def chunks(self, weight: torch.Tensor, max_elements: int = 1 << 22):
        """select() over blocks of output rows, so memory is bounded by the block, not the layer.

        all, none, topk and threshold decide row by row; the backbone needs whole-layer
        strengths, so it is selected at once."""
        if self.kind == "backbone":
            yield self.select(weight)
            return
        rows = max(1, max_elements // max(1, weight.shape[1]))
        for first in range(0, weight.shape[0], rows):
            sources, targets, values = self.select(weight[first:first + rows])
            yield sources, targets + first, values


    def filter_list(self, sources: np.ndarray, targets: np.ndarray, values: np.ndarray):
        """The kept edges of an explicit edge list holding all in-edges of its targets (all, none,
        threshold, topk; the backbone needs whole dense layers)."""
        if self.kind == "none":
            keep = np.zeros(len(values), dtype=bool)
        elif self.kind == "threshold":
            keep = np.abs(values) >= self.value
        elif self.kind == "topk":
            order = np.lexsort((-np.abs(values), targets))  # by target, then |w| descending
            first = np.flatnonzero(np.diff(targets[order], prepend=-1))
            rank = np.arange(len(order)) - np.repeat(first, np.diff(np.append(first, len(order))))
            keep = np.zeros(len(values), dtype=bool)
            keep[order[rank < self.value]] = True
        else:
            return sources, targets, values
        return sources[keep], targets[keep], values[keep]


def _significant(w_abs: torch.Tensor, dim: int, alpha: float) -> torch.Tensor:
    """Disparity-filter significance from the nodes along `dim` (0: source nodes, 1: targets)."""
    degree = w_abs.shape[dim]
    if degree < 2:
        return torch.zeros_like(w_abs, dtype=torch.bool)
    strength = w_abs.sum(dim=dim, keepdim=True)
    share = torch.where(strength > 0, w_abs / strength, torch.zeros_like(w_abs))
    return (1.0 - share) ** (degree - 1) < alpha

"""Neural persistence of a fully connected layer (Rieck et al. 2019; METRICS.md section 7).

Weights are normalised as |W| / max|W| over the whole network. In the descending
filtration every node is born at 1 and each merge of two components at weight w gives the
pair (1, w): the merges are the edges of a maximum spanning tree (spanning_tree.py).
Defined for fully connected layers only (conv layers get None, see the README).

The authors' code (`authors=True`) differs in three ways: the bias is one more input vertex
with edges |b_j| (and biases enter the network maximum, which the caller passes), the
surviving component adds a persistence of 1, and the normaliser counts the bias vertex.
"""

from __future__ import annotations

import numpy as np
import torch


def neural_persistence(weight: torch.Tensor, network_max_abs: float, p: float = 2.0, *,
                       bias: torch.Tensor | None = None, authors: bool = False) -> tuple[float, float]:
    """Returns (neural persistence, normalised by its upper bound (n_in + n_out - 1)^(1/p))."""
    from .spanning_tree import tree_weights  # numba: imported when persistence is asked for

    w = weight.detach().abs().to("cpu", torch.float64)
    if authors and bias is not None:  # the bias as one more input vertex: its column of |b_j|
        w = torch.cat([w, bias.detach().abs().to("cpu", torch.float64).reshape(-1, 1)], dim=1)
    w = (w / network_max_abs).numpy()
    n = sum(w.shape)
    persistence = 1.0 - tree_weights(np.ascontiguousarray(w))
    if authors:  # the component that never dies gets the pair (1, 0)
        persistence = np.append(persistence, 1.0)
    value = float(np.linalg.norm(persistence, ord=p)) if persistence.size else 0.0
    return value, value / (n - 1) ** (1.0 / p)

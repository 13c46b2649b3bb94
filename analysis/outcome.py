"""What an engine returns for one version: a value per node, and a summary for the Version."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Outcome:
    values: np.ndarray  # per node id: a score, or a community id
    summary: dict = field(default_factory=dict)  # communities: count and modularity


def modularity(membership: np.ndarray, n: int, sources: np.ndarray, targets: np.ndarray,
               weights: np.ndarray) -> float:
    """Newman's weighted modularity of a partition of the undirected graph (resolution 1)."""
    import igraph

    graph = igraph.Graph(n=n, edges=np.column_stack([sources, targets]).tolist(), directed=False)
    return float(graph.modularity(membership.tolist(), weights=weights.tolist()))


def community_outcome(membership: np.ndarray, n: int, sources, targets, weights) -> Outcome:
    _, membership = np.unique(membership, return_inverse=True)  # ids 0..k-1, as GDS's consecutiveIds
    return Outcome(membership, {"communities": int(membership.max(initial=-1) + 1),
                                "modularity": modularity(membership, n, sources, targets, weights)})

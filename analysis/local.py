"""The local engine: the algorithms in process over a version's edge list.

networkit for betweenness (exact and sampled), harmonic closeness and Louvain (PLM), igraph
for label propagation, components and modularity, leidenalg for Leiden. PageRank, ArticleRank
and eigenvector centrality are short sparse power iterations written here, because they
must follow GDS exactly where libraries differ (checked against the real GDS 2.13 in
tests/integration/test_gds_parity.py): GDS scores are not normalised
(PR = (1 - d) + d * sum PR(u) w_uv / W_u, starting from 1 - d), dangling nodes keep their
mass, and iteration stops after max_iterations or once no score moves by the tolerance.
ArticleRank divides each share by W_u plus the mean *unweighted* out-degree; eigenvector
centrality iterates x + M x with M's weights divided by the sender's W_u; harmonic
closeness sums 1 / hops over the paths that *reach* a node, over n - 1.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sparse

from .algorithms import Request
from .outcome import Outcome, community_outcome

ENGINE = "local"


def run(request: Request, n: int, sources: np.ndarray, targets: np.ndarray, weights: np.ndarray) -> Outcome:
    """Run one algorithm on n nodes and the given (already sign-policied) links."""
    if request.orientation == "reverse":
        sources, targets = targets, sources
    name, p = request.algorithm.name, request.parameters
    if request.algorithm.family == "communities":
        return community_outcome(_communities(name, p, n, sources, targets, weights), n, sources, targets, weights)
    if request.orientation == "undirected":  # both directions of every link
        sources, targets, weights = (np.concatenate([sources, targets]), np.concatenate([targets, sources]),
                                     np.concatenate([weights, weights]))
    if name in ("pagerank", "articlerank"):
        values = _rank(n, sources, targets, weights, p["damping"], p["max_iterations"], p["tolerance"],
                       article=name == "articlerank")
    elif name == "eigenvector":
        values = _eigenvector(n, sources, targets, weights, p["max_iterations"], p["tolerance"])
    elif name == "degree":
        values = np.bincount(sources, minlength=n).astype(np.float64)
    elif name == "strength":
        values = np.bincount(sources, weights=weights, minlength=n)
    elif name == "betweenness":
        values = _betweenness(n, sources, targets, p["samples"], p["seed"])
        if request.orientation == "undirected":
            values /= 2  # each unordered pair was counted from both ends

    else:
        values = _harmonic(n, sources, targets)
    return Outcome(values)


def _transition(n, sources, targets, weights, extra: float = 0.0):
    out = np.bincount(sources, weights=weights, minlength=n) + extra
    share = np.divide(weights, out[sources], out=np.zeros_like(weights), where=out[sources] > 0)
    return sparse.csr_matrix((share, (targets, sources)), shape=(n, n))


def _rank(n, sources, targets, weights, damping, max_iterations, tolerance, article=False):
    """PageRank, or ArticleRank (each share divided by W_u plus the mean unweighted out-degree, as
    GDS computes it: relationships over nodes)."""
    extra = 0.0
    if article:
        extra = len(sources) / n if n else 0.0
    matrix = _transition(n, sources, targets, weights, extra)
    scores = np.full(n, 1.0 - damping)
    for _ in range(max_iterations):
        updated = (1.0 - damping) + damping * (matrix @ scores)
        stable = np.max(np.abs(updated - scores), initial=0.0) < tolerance
        scores = updated
        if stable:
            break
    return scores


def _eigenvector(n, sources, targets, weights, max_iterations, tolerance):
    """GDS's power iteration, step for step: y_0 = 1/n, r_k = y_k / |y_k|, y_k = r_(k-1) + M y_(k-1)
    (A + I separates the leading eigenvalues; M's weights divided by the sender's W_u), until
    no score moves by the tolerance or max_iterations steps (counting the first) have run."""
    if not n:
        return np.empty(0)
    out = np.bincount(sources, weights=weights, minlength=n)
    share = np.divide(weights, out[sources], out=np.zeros_like(weights), where=out[sources] > 0)
    matrix = sparse.csr_matrix((share, (targets, sources)), shape=(n, n))
    unnormalised = np.full(n, 1.0 / n)
    scores = unnormalised / np.linalg.norm(unnormalised)
    for _ in range(1, max_iterations):
        unnormalised = scores + matrix @ unnormalised
        updated = unnormalised / np.linalg.norm(unnormalised)
        stable = np.max(np.abs(updated - scores)) <= tolerance
        scores = updated
        if stable:
            break
    return scores


def _networkit_graph(n, sources, targets, directed=True):
    import networkit as nk

    graph = nk.Graph(n, weighted=False, directed=directed)
    graph.addEdges((sources.astype(np.uint64), targets.astype(np.uint64)), checkMultiEdge=not directed)
    return graph


def _betweenness(n, sources, targets, samples, seed):
    """Unnormalised betweenness of the directed links (both directions given for undirected);
    with `samples` > 0, estimated from that many seeded source nodes and scaled to the full count."""
    import networkit as nk

    graph = _networkit_graph(n, sources, targets)
    if samples and samples < n:
        nk.engineering.setSeed(int(seed), False)
        algorithm = nk.centrality.EstimateBetweenness(graph, int(samples), False, False)
    else:
        algorithm = nk.centrality.Betweenness(graph, False)
    algorithm.run()
    return np.asarray(algorithm.scores())


def _harmonic(n, sources, targets):
    """Harmonic closeness as GDS sums it: 1 / hops over every node that reaches this one, over n - 1
    (networkit counts hops outwards, so it runs on the reversed links)."""
    import networkit as nk

    algorithm = nk.centrality.HarmonicCloseness(_networkit_graph(n, targets, sources), True)
    algorithm.run()
    return np.asarray(algorithm.scores())


def _louvain(n, sources, targets, weights, seed) -> np.ndarray:
    """networkit's PLM without refinement: Louvain, seeded and on one thread so reruns agree."""
    import networkit as nk

    graph = nk.Graph(n, weighted=True, directed=False)
    graph.addEdges((weights, (sources.astype(np.uint64), targets.astype(np.uint64))))
    threads = nk.engineering.getMaxNumberOfThreads()
    nk.engineering.setSeed(int(seed), False)
    nk.engineering.setNumberOfThreads(1)
    try:
        algorithm = nk.community.PLM(graph, refine=False)
        algorithm.run()
    finally:
        nk.engineering.setNumberOfThreads(threads)
    return np.asarray(algorithm.getPartition().getVector())


def _communities(name, p, n, sources, targets, weights) -> np.ndarray:
    import igraph

    if name == "louvain":
        return _louvain(n, sources, targets, weights, p["seed"])
    graph = igraph.Graph(n=n, edges=np.column_stack([sources, targets]).tolist(), directed=False)
    if name == "wcc":
        return np.asarray(graph.connected_components().membership)
    graph.es["weight"] = weights.tolist()
    if name == "leiden":
        import leidenalg

        partition = leidenalg.find_partition(graph, leidenalg.ModularityVertexPartition, weights="weight",
                                             seed=int(p["seed"]), n_iterations=-1)
        return np.asarray(partition.membership)
    import random

    igraph.set_random_number_generator(random.Random(int(p["seed"])))
    try:
        return np.asarray(graph.community_label_propagation(weights="weight").membership)
    finally:
        igraph.set_random_number_generator(random)

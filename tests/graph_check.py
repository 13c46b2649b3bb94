"""Independent checks of a graph: strengths summed from an explicit edge list, and the graph run
as a linear network (node value = sum of w * source value over in-links, plus bias)."""

import numpy as np
import torch

from nngraph.ingest.edges import EdgePolicy
from nngraph.ingest.graph_rows import GraphOptions, link_blocks
from nngraph.ingest.metrics import compute_metrics

ALL_PIXELS = GraphOptions(EdgePolicy("all"), "pixel")


def strengths_from_edges(sizes: list[int], edges, biases: dict) -> list[np.ndarray]:
    """edges: (src layer, src node, dst layer, dst node, weight); biases: layer -> per-node bias.
    Strength = in-weights + bias + out-weights, summed one edge at a time."""
    s_in = [np.zeros(n) for n in sizes]
    s_out = [np.zeros(n) for n in sizes]
    has_in = [False] * len(sizes)
    for src, i, dst, j, w in edges:
        s_out[src][i] += w
        s_in[dst][j] += w
        has_in[dst] = True
    for layer, bias in biases.items():
        s_in[layer] += np.asarray(bias, dtype=float)
    return [s_in[k] + s_out[k] for k in range(len(sizes))]


def stored_edges(network):
    """Every link the store would write with --edges all --conv-edges pixel, as a flat edge list."""
    metrics = compute_metrics(network, persistence=False)
    edges = []
    for weights in metrics.weight_layers:
        for sources, targets, values in link_blocks(network, weights, ALL_PIXELS):
            edges += [(weights.layer.src, int(i), weights.layer.dst, int(j), float(w))
                      for i, j, w in zip(sources, targets, values)]
    return edges


def run_graph(network, inputs: dict[int, np.ndarray]) -> list[np.ndarray]:
    """Node values of every layer when the graph is read as a linear network: input layers take
    `inputs`; each other layer sums its in-links and the biases of the weight layers entering it."""
    topology = network.topology
    values = [None] * len(topology.node_layers)
    for index, value in inputs.items():
        values[index] = np.asarray(value, dtype=float).reshape(-1)
    metrics = compute_metrics(network, persistence=False)
    for layer in topology.node_layers:
        if values[layer.index] is not None:
            continue
        total = np.zeros(layer.nodes)
        for weights in metrics.weight_layers:
            if weights.layer.dst != layer.index:
                continue
            for sources, targets, links in link_blocks(network, weights, ALL_PIXELS):
                np.add.at(total, targets, links * values[weights.layer.src][sources])
            bias = network.bias(weights.layer)
            if bias is not None:
                bias = bias.detach().double().numpy()
                if weights.layer.is_conv:  # one bias per channel, at every position
                    bias = np.repeat(bias, layer.nodes // bias.size)
                total[weights.layer.dst_offset:weights.layer.dst_offset + bias.size] += bias
        values[layer.index] = total
    return values


def as_numpy(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().double().numpy().reshape(-1)

"""A Network's complex-network metrics: strengths, fluctuation, link weights, persistence.

Definitions: ../shared/docs/METRICS.md. Strength of a node = in-strength (incoming weights
plus its bias) + out-strength (outgoing weights); a node with no incoming (input, or after a
cut) or no outgoing side (output) has only the other. Fluctuation = population std (ddof 0)
of a node layer's strengths.
"""

from __future__ import annotations

import logging

from dataclasses import dataclass, field

import numpy as np
import torch

from nngraph.errors import NNGraphError

LOG = logging.getLogger("nngraph")

from .link_weights import link_weight_stats
from .network import Network, NodeLayer, Skipped, WeightLayer
from .persistence import neural_persistence
from .strengths import BLOCK_ELEMENTS, conv_strengths, dense_strengths


@dataclass
class NodeLayerMetrics:
    layer: NodeLayer
    s_in: np.ndarray | None
    s_out: np.ndarray | None
    bias: np.ndarray | None
    strength: np.ndarray
    fluctuation: float

    def summary(self) -> dict:
        s = self.strength
        return {"index": self.layer.index, "name": self.layer.name, "kind": self.layer.kind, "group": self.layer.group,
                "shape": list(self.layer.shape), "nodes": int(s.size), "fluctuation": self.fluctuation,
                "mean_strength": float(s.mean()), "min_strength": float(s.min()),
                "max_strength": float(s.max())}


@dataclass
class WeightLayerMetrics:
    layer: WeightLayer
    edges: int
    link_weights: dict
    max_abs_weight: float  # biases excluded: neural persistence normalises by weights only
    neural_persistence: float | None = None
    neural_persistence_normalized: float | None = None

    def summary(self) -> dict:
        layer = self.layer
        return {"name": layer.name, "kind": layer.kind, "from": layer.src, "to": layer.dst,
                "edges": self.edges, "link_weights": self.link_weights,
                "neural_persistence": self.neural_persistence,
                "neural_persistence_normalized": self.neural_persistence_normalized}


@dataclass
class NetworkMetrics:
    source: str
    node_layers: list[NodeLayerMetrics]
    weight_layers: list[WeightLayerMetrics]
    skipped: list[Skipped]
    options: dict = field(default_factory=dict)

    def summary(self) -> dict:
        """The JSON document `nngraph metrics --format json` prints."""
        return {"source": self.source, "options": self.options,
                "layers": [m.summary() for m in self.node_layers],
                "weight_layers": [m.summary() for m in self.weight_layers],
                "skipped": [vars(s) for s in self.skipped]}


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise NNGraphError("--device cuda: no CUDA device is available here; use --device auto or cpu")
    return device


def compute_metrics(network: Network, *, device: str | torch.device = "auto", plus_one: bool = False,
                    paper_conv_in_strength: bool = False, persistence: bool = True) -> NetworkMetrics:
    """Compute every tensor metric of one network version.

    plus_one: add 1 to the missing side of input and output nodes, as the authors' code
    does (a constant shift: fluctuations do not change). paper_conv_in_strength: conv
    in-strength counts padding edges (the authors' code); exact graph otherwise.
    """
    device = resolve_device(device)
    topology = network.topology
    n = len(topology.node_layers)
    s_in, s_out, biases = [None] * n, [None] * n, [None] * n
    weight_metrics = []
    with torch.no_grad():
        for layer in topology.weight_layers:
            weight, bias = network.weight(layer), network.bias(layer)
            into, out_of, bias_nodes, edges, moments = _layer_strengths(layer, weight, bias, device,
                                                                         paper_conv_in_strength)
            if not moments.finite or (bias is not None and not torch.isfinite(bias).all()):
                raise NNGraphError(f"{network.source}: layer {layer.name} has NaN or infinite weights; "
                                   "was the checkpoint saved after training diverged?")
            s_out[layer.src] = _accumulate(s_out[layer.src], out_of)
            s_in[layer.dst] = into.to("cpu", torch.float64).numpy()
            if bias_nodes is not None:
                biases[layer.dst] = bias_nodes.to("cpu", torch.float64).numpy()
            weight_metrics.append(WeightLayerMetrics(layer, edges, link_weight_stats(weight, bias, moments),
                                                     max(abs(moments.low), abs(moments.high))))
        if persistence:
            _add_persistence(network, weight_metrics)
    node_metrics = [_node_layer_metrics(layer, s_in[i], s_out[i], biases[i], plus_one)
                    for i, layer in enumerate(topology.node_layers)]
    options = {"plus_one": plus_one, "paper_conv_in_strength": paper_conv_in_strength,
               "device": device.type}
    return NetworkMetrics(network.source, node_metrics, weight_metrics, list(topology.skipped), options)


def _layer_strengths(layer, weight, bias, device: torch.device, paper_conv_in_strength: bool):
    """Strengths of one weight layer; when the GPU runs out of memory, again in blocks 16 times
    smaller, then on the CPU, saying so (the results are the same, only slower)."""
    attempts = [(device, BLOCK_ELEMENTS), (device, BLOCK_ELEMENTS // 16)]
    if device.type != "cpu":
        attempts.append((torch.device("cpu"), BLOCK_ELEMENTS))
    for number, (where, block) in enumerate(attempts):
        try:
            if layer.is_conv:
                return conv_strengths(weight, bias, layer.in_shape, stride=layer.stride, padding=layer.padding,
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


def _accumulate(current: np.ndarray | None, part: torch.Tensor) -> np.ndarray:
    """A node layer read by several weight layers (q, k, v of one input) sums their out-strengths."""
    part = part.to("cpu", torch.float64).numpy()
    return part if current is None else current + part


def _node_layer_metrics(layer, s_in, s_out, bias, plus_one) -> NodeLayerMetrics:
    sides = [side for side in (s_in, s_out) if side is not None]
    strength = sides[0] + sides[1] if len(sides) == 2 else sides[0].copy()
    if plus_one and len(sides) == 1:
        strength += 1.0
    if strength.size != layer.nodes:
        raise NNGraphError(f"layer {layer.name}: {strength.size} strengths for {layer.nodes} nodes")
    return NodeLayerMetrics(layer, s_in, s_out, bias, strength, float(strength.std()))


def _add_persistence(network: Network, weight_metrics: list[WeightLayerMetrics]) -> None:
    network_max = max(m.max_abs_weight for m in weight_metrics)
    if network_max == 0:
        return
    for metrics in weight_metrics:
        if not metrics.layer.is_conv:
            value, normalised = neural_persistence(network.weight(metrics.layer), network_max)
            metrics.neural_persistence, metrics.neural_persistence_normalized = value, normalised

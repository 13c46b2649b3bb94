"""A Network's complex-network metrics: strengths, fluctuation, link weights, persistence.

Definitions: ../shared/docs/METRICS.md. Strength of a node = in-strength (incoming weights
plus its bias) + out-strength (outgoing weights); a node with no incoming (input, or after a
cut) or no outgoing side (output) has only the other. Fluctuation = population std (ddof 0)
of a node layer's strengths.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from nngraph.errors import NNGraphError

from .layer_passes import layer_passes
from .link_weights import LinkWeightStats
from .network import Network, NodeLayer, Skipped, WeightLayer
from .persistence import neural_persistence
from .strengths import Moments


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
    max_abs_weight: float  # neural persistence normalises by the network-wide maximum
    max_abs_bias: float = 0.0  # ... which includes biases in the authors' convention
    neural_persistence: float | None = None
    neural_persistence_normalized: float | None = None

    def summary(self) -> dict:
        layer = self.layer
        return {"name": layer.name, "kind": layer.kind, "from": layer.src, "to": layer.dst,
                "edges": self.edges, "link_weights": self.link_weights, "shared_with": layer.tied_to,
                "neural_persistence": self.neural_persistence,
                "neural_persistence_normalized": self.neural_persistence_normalized}


@dataclass
class NetworkMetrics:
    source: str
    node_layers: list[NodeLayerMetrics]
    weight_layers: list[WeightLayerMetrics]
    skipped: list[Skipped]
    options: dict = field(default_factory=dict)
    data: object = None  # activations.DataMetrics: NS and NA on inputs, when measured

    def summary(self) -> dict:
        """The JSON document `nngraph metrics --format json` prints."""
        summary = {"source": self.source, "options": self.options,
                   "layers": [m.summary() for m in self.node_layers],
                   "weight_layers": [m.summary() for m in self.weight_layers],
                   "skipped": [vars(s) for s in self.skipped]}
        if self.data is not None:
            summary["data_metrics"] = self.data.summary()
        return summary

    def data_of(self, index: int):
        """The NS and NA of node layer `index` (activations.LayerData), or None."""
        return None if self.data is None else self.data.by_index.get(index)


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise NNGraphError("--device cuda: no CUDA device is available here; use --device auto or cpu")
    return device


PERSISTENCE = ("definition", "authors")


def compute_metrics(network: Network, *, device: str | torch.device = "auto", plus_one: bool = False,
                    paper_conv_in_strength: bool = False, persistence: bool | str = "definition") -> NetworkMetrics:
    """Compute every tensor metric of one network version.

    plus_one: add 1 to the missing side of input and output nodes, as the authors' code
    does (a constant shift: fluctuations do not change). paper_conv_in_strength: conv
    in-strength counts padding edges (the authors' code); exact graph otherwise.
    persistence: "definition" (the paper's), "authors" (their code's convention, METRICS.md
    section 7) or False (none).
    """
    if persistence is True:
        persistence = "definition"
    if persistence and persistence not in PERSISTENCE:
        raise NNGraphError(f"--persistence {persistence!r}: expected definition or authors")
    device = resolve_device(device)
    topology = network.topology
    n = len(topology.node_layers)
    s_in, s_out, biases = [None] * n, [None] * n, [None] * n
    weight_metrics, samples, sample_of = [], [], {}
    link_weights = LinkWeightStats()  # the statistics of every sample, at the end
    with torch.no_grad():
        for done in layer_passes(network, link_weights, device, paper_conv_in_strength):
            layer, bias, moments, bias_moments = done.layer, done.bias, done.moments, done.bias_moments
            if not moments.finite or (bias_moments is not None and not bias_moments.finite):
                raise NNGraphError(f"{network.source}: layer {layer.name} has NaN or infinite weights; "
                                   "was the checkpoint saved after training diverged?")
            nodes = topology.node_layers[layer.dst].nodes
            s_out[layer.src] = _accumulate(s_out[layer.src], done.out_of, 0, topology.node_layers[layer.src].nodes)
            s_in[layer.dst] = _accumulate(s_in[layer.dst], done.into, layer.dst_offset, nodes)
            if done.bias_nodes is not None:
                biases[layer.dst] = _accumulate(biases[layer.dst], done.bias_nodes, layer.dst_offset, nodes)
            if layer.tied_to is None:
                sample_of[layer.name] = link_weights.add(done.sample, bias, moments, bias_moments)
            samples.append(sample_of[layer.tied_to or layer.name])
            weight_metrics.append(WeightLayerMetrics(layer, done.edges, {}, _max_abs(moments),
                                                     max_abs_bias=_max_abs(bias_moments)))
        stats = link_weights.results()
        for metrics, sample in zip(weight_metrics, samples):
            metrics.link_weights = stats[sample]
        if persistence:
            _add_persistence(network, weight_metrics, persistence)
    node_metrics = [_node_layer_metrics(layer, s_in[i], s_out[i], biases[i], plus_one)
                    for i, layer in enumerate(topology.node_layers)]
    options = {"plus_one": plus_one, "paper_conv_in_strength": paper_conv_in_strength,
               "persistence": persistence or None, "device": device.type}
    return NetworkMetrics(network.source, node_metrics, weight_metrics, list(topology.skipped), options)


def _max_abs(moments: Moments | None) -> float:
    return 0.0 if moments is None or moments.count == 0 else max(abs(moments.low), abs(moments.high))


def _accumulate(current: np.ndarray | None, part, offset: int, size: int) -> np.ndarray:
    """A node layer entered or read by several weight layers (a residual addition, q, k and v of
    one input) sums their strengths; a concatenation's parts enter at their offsets."""
    part = part.to("cpu", torch.float64).numpy() if isinstance(part, torch.Tensor) else part
    if current is None:
        if offset == 0 and part.size == size:  # the first or only layer: its strengths, as float64
            return part.astype(np.float64)
        current = np.zeros(size)
    current[offset:offset + part.size] += part
    return current


def _node_layer_metrics(layer, s_in, s_out, bias, plus_one) -> NodeLayerMetrics:
    sides = [side for side in (s_in, s_out) if side is not None]
    strength = sides[0] + sides[1] if len(sides) == 2 else sides[0].copy()
    if plus_one and len(sides) == 1:
        strength += 1.0
    if strength.size != layer.nodes:
        raise NNGraphError(f"layer {layer.name}: {strength.size} strengths for {layer.nodes} nodes")
    deviation = strength - strength.sum() / strength.size  # the population std, as numpy's in a third of its time
    return NodeLayerMetrics(layer, s_in, s_out, bias, strength, math.sqrt(deviation @ deviation / strength.size))


def _add_persistence(network: Network, weight_metrics: list[WeightLayerMetrics], convention: str) -> None:
    """Per learned dense layer (fixed links and repeated uses of shared weights have none). The
    network-wide maximum is over learned weights, and with the authors' convention their biases."""
    learned = [m for m in weight_metrics if m.layer.learned]
    network_max = max((m.max_abs_weight for m in learned), default=0.0)
    if convention == "authors":
        network_max = max([network_max, *(m.max_abs_bias for m in learned)])
    if network_max == 0:
        return
    for metrics in learned:
        if not metrics.layer.is_conv and metrics.layer.tied_to is None:
            weight, bias = network.weights(metrics.layer)
            value, normalised = neural_persistence(weight, network_max,
                                                   bias=bias if convention == "authors" else None,
                                                   authors=convention == "authors")
            metrics.neural_persistence, metrics.neural_persistence_normalized = value, normalised

"""A Network's complex-network metrics: strengths, fluctuation, link weights, persistence.

Definitions: ../shared/docs/METRICS.md. Strength of a node = in-strength (incoming weights
plus its bias) + out-strength (outgoing weights); a node with no incoming (input, or after a
cut) or no outgoing side (output) has only the other. Fluctuation = population std (ddof 0)
of a node layer's strengths.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from nngraph.errors import NNGraphError

from .layer_passes import layer_passes
from .link_weights import LinkWeightStats
from .network import Network, NodeLayer, Skipped, WeightLayer, kept_per_topology
from .persistence import neural_persistence
from .strengths import Moments


@dataclass(slots=True)
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


@dataclass(slots=True)
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
    node_sums = NodeSums(topology)
    weight_metrics, samples, sample_of = [], [], {}
    link_weights = LinkWeightStats()  # the statistics of every sample, at the end
    with torch.no_grad():
        for done in layer_passes(network, link_weights, device, paper_conv_in_strength, node_sums):
            layer, bias, moments, bias_moments = done.layer, done.bias, done.moments, done.bias_moments
            if not moments.finite or (bias_moments is not None and not bias_moments.finite):
                raise NNGraphError(f"{network.source}: layer {layer.name} has NaN or infinite weights; "
                                   "was the checkpoint saved after training diverged?")
            node_sums.add(layer, done, bias_moments is not None)
            if layer.tied_to is None:
                sample_of[layer.name] = link_weights.add(done.sample, bias, moments, bias_moments,
                                                         place=done.sample_place)
            samples.append(sample_of[layer.tied_to or layer.name])
            weight_metrics.append(WeightLayerMetrics(layer, done.edges, {}, _max_abs(moments),
                                                     max_abs_bias=_max_abs(bias_moments)))
        stats = link_weights.results()
        for metrics, sample in zip(weight_metrics, samples):
            metrics.link_weights = stats[sample]
        if persistence:
            _add_persistence(network, weight_metrics, persistence)
    node_metrics = node_sums.metrics(topology, plus_one)
    options = {"plus_one": plus_one, "paper_conv_in_strength": paper_conv_in_strength,
               "persistence": persistence or None, "device": device.type}
    return NetworkMetrics(network.source, node_metrics, weight_metrics, list(topology.skipped), options)


def _max_abs(moments: Moments | None) -> float:
    return 0.0 if moments is None or moments.count == 0 else max(abs(moments.low), abs(moments.high))


class NodeSums:
    """The in-strengths, out-strengths and biases of every node layer, end to end (float64). Several
    weight layers may add into one node layer (a residual addition, q, k and v of one input), a
    concatenation's parts at their offsets."""

    def __init__(self, topology):
        self.starts, self.entered, self.read = _layout(topology)
        self.s_in, self.s_out, self.bias = (np.zeros(self.starts[-1]) for _ in range(3))
        self.biased = set()  # node layers entered by a layer with a bias

    def first_nodes(self, layer) -> tuple[int, int]:
        """Where the nodes a weight layer reads, and those it enters, start."""
        return self.starts[layer.src], self.starts[layer.dst] + layer.dst_offset

    def add(self, layer, done, has_bias: bool) -> None:
        """A layer's pass (layer_passes.LayerPass), unless the graph pass added it already."""
        if done.bias_nodes is not None or (done.into is None and has_bias):
            self.biased.add(layer.dst)
        if done.into is None:
            return
        read, entered = self.first_nodes(layer)
        for sums, part, start in ((self.s_in, done.into, entered), (self.s_out, done.out_of, read),
                                  (self.bias, done.bias_nodes, entered)):
            if part is not None:
                part = part.to("cpu", torch.float64).numpy() if isinstance(part, torch.Tensor) else part
                sums[start:start + part.size] += part.reshape(-1)

    def metrics(self, topology, plus_one: bool) -> list[NodeLayerMetrics]:
        """Every node layer's strengths and fluctuation, all layers in a few numpy calls (one set per
        layer cost MiniLM's 44 layers 0.28 ms). A node with one side has only that side (plus one,
        with `plus_one`)."""
        strength = self.s_in + self.s_out  # an absent side is all zeros
        starts, sizes = self.starts[:-1], np.diff(self.starts)
        if plus_one:
            one_sided = [(index in self.entered) != (index in self.read) for index in range(sizes.size)]
            strength += np.repeat(np.array(one_sided, np.float64), sizes)
        deviation = strength - np.repeat(np.add.reduceat(strength, starts) / sizes, sizes)
        fluctuations = np.sqrt(np.add.reduceat(deviation * deviation, starts) / sizes)  # population std
        results = []
        for index, layer in enumerate(topology.node_layers):
            nodes = slice(self.starts[index], self.starts[index + 1])
            results.append(NodeLayerMetrics(
                layer, self.s_in[nodes] if index in self.entered else None,
                self.s_out[nodes] if index in self.read else None,
                self.bias[nodes] if index in self.biased else None, strength[nodes], float(fluctuations[index])))
        return results


_LAYOUTS: dict = {}


def _layout(topology) -> tuple:
    """(where each node layer starts in the sums, the node layers entered, those read), kept per
    topology (MiniLM's cost 0.05 ms a version) while its layers stay the same."""
    return kept_per_topology(_LAYOUTS, topology, (len(topology.node_layers), len(topology.weight_layers)), lambda: (
        np.cumsum([0] + [layer.nodes for layer in topology.node_layers]),
        {layer.dst for layer in topology.weight_layers}, {layer.src for layer in topology.weight_layers}))


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

"""A network as a graph: node layers, the weight layers that connect them, and what was skipped.

The topology (which layer feeds which, conv geometry, tensor keys) is kept apart from the
tensors, so one topology serves every stored version of a model: checkpoints of one
training run differ only in their state_dicts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from nngraph.errors import NNGraphError


@dataclass(frozen=True)
class NodeLayer:
    """One layer of neurons. Index 0 is the first input; a conv layer's nodes are (c, *spatial)."""

    index: int
    name: str
    kind: str  # "input", or the kind of the weight layer that produces it
    shape: tuple[int, ...]
    group: str = ""  # the transformer block it belongs to (bipartite topology), else ""

    @property
    def nodes(self) -> int:
        count = 1
        for size in self.shape:
            count *= size
        return count


@dataclass(frozen=True)
class WeightLayer:
    """A layer of weights: edges from node layer `src` to node layer `dst`."""

    name: str
    kind: str  # "linear", "conv1d", "conv2d" or "conv3d"
    weight_key: str
    bias_key: str | None
    src: int
    dst: int
    in_shape: tuple[int, ...] = ()  # conv: (channels, *spatial) of the input feature map
    stride: tuple[int, ...] = ()
    padding: tuple[int, ...] = ()
    dilation: tuple[int, ...] = ()
    groups: int = 1

    @property
    def is_conv(self) -> bool:
        return self.kind.startswith("conv")


@dataclass(frozen=True)
class Skipped:
    """A layer with no graph under the METRICS.md rules, and why."""

    name: str
    kind: str
    reason: str


@dataclass
class Topology:
    node_layers: list[NodeLayer] = field(default_factory=list)
    weight_layers: list[WeightLayer] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)

    def add_node_layer(self, name: str, kind: str, shape: tuple[int, ...], group: str = "") -> int:
        index = len(self.node_layers)
        self.node_layers.append(NodeLayer(index, name, kind, tuple(int(s) for s in shape), group))
        return index

    def skip(self, name: str, kind: str, reason: str) -> None:
        entry = Skipped(name, kind, reason)
        if entry not in self.skipped:
            self.skipped.append(entry)

    def bind(self, tensors: Mapping, source: str) -> "Network":
        """Attach one version's tensors, checking every key and shape the topology needs."""
        for layer in self.weight_layers:
            for key in (layer.weight_key, layer.bias_key):
                if key is not None and key not in tensors:
                    raise NNGraphError(f"{source}: layer {layer.name} has no tensor {key!r}; "
                                       "is this a checkpoint of the same architecture?")
            weight = tensors[layer.weight_key]
            expected = self.expected_weight_shape(layer)
            if tuple(weight.shape[: len(expected)]) != expected:
                raise NNGraphError(f"{source}: layer {layer.name} has weight shape "
                                   f"{tuple(weight.shape)}, expected {expected} from the architecture")
        return Network(self, tensors, source)

    def expected_weight_shape(self, layer: WeightLayer) -> tuple[int, ...]:
        src, dst = self.node_layers[layer.src], self.node_layers[layer.dst]
        if layer.is_conv:
            return (dst.shape[0], src.shape[0] // layer.groups)
        return (dst.nodes, src.nodes)


@dataclass
class Network:
    """A topology with one version's tensors (any mapping of key -> tensor, possibly lazy)."""

    topology: Topology
    tensors: Mapping
    source: str

    def weight(self, layer: WeightLayer):
        return self.tensors[layer.weight_key]

    def bias(self, layer: WeightLayer):
        return None if layer.bias_key is None else self.tensors[layer.bias_key]

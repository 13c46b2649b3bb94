"""A network as a graph: node layers, the weight layers that connect them, and what was skipped.

The topology (which layer feeds which, conv geometry, tensor keys) is kept apart from the
tensors, so one topology serves every stored version of a model: checkpoints of one
training run differ only in their state_dicts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

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
        tensors = tensors if isinstance(tensors, CheckedTensors) else CheckedTensors(tensors, source)
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


FLOAT8 = ("float8_e4m3fn", "float8_e4m3fnuz", "float8_e5m2", "float8_e5m2fnuz", "float8_e8m0fnu")


class CheckedTensors(Mapping):
    """key -> tensor, each checked as it is read (lazily, like the mapping it wraps): a floating
    point tensor that holds no more elements than its storage, so a tiny crafted file cannot
    make nngraph allocate far beyond its size through overlapping strides. 8-bit floats are
    widened to float32; booleans, integers and complex numbers are refused."""

    def __init__(self, tensors: Mapping, source: str):
        self._tensors = tensors
        self._source = source

    def __getitem__(self, key):
        return checked_tensor(self._tensors[key], key, self._source)

    def __iter__(self):
        return iter(self._tensors)

    def __len__(self):
        return len(self._tensors)

    def __contains__(self, key):
        return key in self._tensors


def checked_tensor(tensor, key, source: str):
    import torch

    if not isinstance(tensor, torch.Tensor):
        raise NNGraphError(f"{source}: {key!r} holds a {type(tensor).__name__}, not a tensor")
    dtype = str(tensor.dtype).removeprefix("torch.")
    if tensor.numel() > 1 and tensor.numel() * tensor.element_size() > _storage_bytes(tensor):
        raise NNGraphError(f"{source}: tensor {key!r} of shape {tuple(tensor.shape)} overlaps itself (strides "
                           f"{tensor.stride()} over {_storage_bytes(tensor):,} stored bytes); refusing to expand "
                           "it. save the tensors contiguous (tensor.contiguous())")
    if dtype in FLOAT8:
        return tensor.float()
    if not tensor.is_floating_point():
        raise NNGraphError(f"{source}: tensor {key!r} has dtype {dtype}; nngraph reads floating-point weights "
                           "(float16, bfloat16, float32, float64, float8): convert the tensor first")
    return tensor


def _storage_bytes(tensor) -> int:
    try:
        return tensor.untyped_storage().nbytes() - tensor.storage_offset() * tensor.element_size()
    except (RuntimeError, NotImplementedError):  # tensors without storage (meta, some subclasses)
        return tensor.numel() * tensor.element_size()

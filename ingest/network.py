"""A network as a graph: node layers, the weight layers that connect them, and what was skipped.

The topology (which layer feeds which, conv geometry, tensor keys) is kept apart from the
tensors, so one topology serves every stored version of a model: checkpoints of one
training run differ only in their state_dicts.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field

from nngraph.errors import NNGraphError

from .folding import Affine, Folded, folded, needed_keys


@dataclass(frozen=True)
class NodeLayer:
    """One layer of neurons. Index 0 is the first input; a conv layer's nodes are (c, *spatial)."""

    index: int
    name: str
    kind: str  # "input", or the kind of the weight layer that produces it
    shape: tuple[int, ...]
    group: str = ""  # the block it belongs to (encoder.layer.3, layer1.0...), else ""

    @property
    def nodes(self) -> int:
        count = 1
        for size in self.shape:
            count *= size
        return count


@dataclass(frozen=True)
class WeightLayer:
    """A layer of links from node layer `src` to node layer `dst`, and how to read their weights
    from a version's tensors (folding.py): stored keys, a row slice, folded affine maps.

    kind: "linear", "conv1d/2d/3d", "avgpool1d/2d/3d" (a fixed kernel) or "identity" (one link
    of weight 1 per node, or the gain folded into it, from src node i to dst node i + dst_offset).
    """

    name: str
    kind: str
    weight_key: str | None
    bias_keys: tuple[str, ...]
    src: int
    dst: int
    in_shape: tuple[int, ...] = ()  # conv and pooling: (channels, *spatial) of the input feature map
    stride: tuple[int, ...] = ()
    padding: tuple[int, ...] = ()  # before each spatial dimension's positions
    padding_end: tuple[int, ...] = ()  # after them, where it differs (a zero padding by hand: TensorFlow's "same")
    dilation: tuple[int, ...] = ()
    groups: int = 1
    kernel: tuple[int, ...] = ()  # pooling window
    transposed: bool = False  # the stored matrix is (in, out)
    rows: tuple[int, int] | None = None  # a slice of the stored matrix's output rows (fused qkv, RNN gates)
    row_period: int = 0  # rows repeat every row_period stored rows (q, k, v inside each head: GPT-NeoX); 0: once
    in_affines: tuple[Affine, ...] = ()
    out_affines: tuple[Affine, ...] = ()
    size: int = 0  # identity: number of links (one per dst node)
    dst_offset: int = 0  # identity into a concatenation
    repeat: int = 1  # identity, grouped-query attention: each src head feeds `repeat` dst heads
    head_dim: int = 0
    tied_to: str | None = None  # an earlier weight layer with the same stored weights (unrolled recurrence)

    @property
    def pads(self) -> tuple[tuple[int, int], ...]:
        """(before, after) padding of each spatial dimension."""
        return tuple(zip(self.padding, self.padding_end or self.padding))

    @property
    def is_conv(self) -> bool:
        """Links between feature maps (a kernel applied at every position): conv and pooling."""
        return self.kind.startswith(("conv", "avgpool"))

    @property
    def learned(self) -> bool:
        """Stored weights (not identity or pooling links)."""
        return self.weight_key is not None

    def rows_of(self, stored_rows: int) -> int:
        """How many of a stored matrix's rows the layer reads."""
        if self.rows is None:
            return stored_rows
        return (self.rows[1] - self.rows[0]) * (stored_rows // self.row_period if self.row_period else 1)

    def identity_sources(self):
        """identity: the src node of each link (link j enters dst node j + dst_offset)."""
        return _identity_sources(self.size, self.repeat, self.head_dim)

    @property
    def identity_reads(self) -> int:
        """identity: how many src nodes its links read."""
        return self.size // self.repeat


@functools.lru_cache(maxsize=256)
def _identity_sources(size: int, repeat: int, head_dim: int):
    import torch

    links = torch.arange(size)
    if repeat == 1:
        return links
    group = head_dim * repeat
    return (links // group) * head_dim + links % head_dim


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
        for nodes in self.node_layers:  # a layer of zero units has no strengths and no fluctuation
            if nodes.nodes == 0:
                raise NNGraphError(f"{source}: layer {nodes.name} has no neurons (shape {nodes.shape}); "
                                   "every layer needs at least one")
        for layer in self.weight_layers:
            for key in needed_keys(layer):
                if key not in tensors:
                    raise NNGraphError(f"{source}: layer {layer.name} has no tensor {key!r}; "
                                       "is this a checkpoint of the same architecture?")
            if layer.learned:
                self._check_shape(layer, tuple(tensors[layer.weight_key].shape), source)
            self._check_vectors(layer, tensors, source)
        return Network(self, tensors, source)

    def _check_vectors(self, layer: WeightLayer, tensors: Mapping, source: str) -> None:
        """Biases and folded gains must have one value per node they act on."""
        src, dst = self.node_layers[layer.src], self.node_layers[layer.dst]
        per_dst = dst.shape[0] if layer.is_conv else dst.nodes
        stored_rows = layer.rows[1] if layer.rows else per_dst
        if layer.rows and layer.learned:
            shape = tuple(tensors[layer.weight_key].shape)
            stored_rows = (shape[::-1] if layer.transposed else shape)[0]
        expected = [(key, stored_rows) for key in layer.bias_keys]
        reads = layer.identity_reads if layer.kind == "identity" else src.nodes
        expected += [(key, reads // affine.per) for affine in layer.in_affines for key in affine.keys()]
        expected += [(key, (stored_rows if affine.stored_rows else per_dst) // affine.per)
                     for affine in layer.out_affines for key in affine.keys()]
        for key, size in expected:
            if tensors[key].numel() != size:
                raise NNGraphError(f"{source}: {key!r} has {tensors[key].numel()} values, layer {layer.name} needs "
                                   f"{size}; is this a checkpoint of the same model?")

    def _check_shape(self, layer: WeightLayer, stored: tuple[int, ...], source: str) -> None:
        src, dst = self.node_layers[layer.src], self.node_layers[layer.dst]
        if layer.is_conv:
            expected, found = (dst.shape[0], src.shape[0] // layer.groups), stored[:2]
        else:
            shape = stored[::-1] if layer.transposed else stored
            rows = layer.rows_of(shape[0])
            fits = layer.rows is None or (len(shape) == 2 and layer.rows[1] <= (layer.row_period or shape[0])
                                          and shape[0] % (layer.row_period or 1) == 0)
            expected, found = (dst.nodes, src.nodes), ((rows, *shape[1:]) if fits else shape)
        if tuple(found) != expected:
            raise NNGraphError(f"{source}: layer {layer.name} has weight shape {stored}, expected {expected} "
                               "from the architecture; is this a checkpoint of the same model?")


def kept_per_topology(cache: dict, topology: Topology, extra, make):
    """make()'s result, kept in `cache` per topology and `extra`: by id, checked to be the same
    object (a topology built anew at a freed one's address is never given its results), and few
    of them (tests, many models in one process)."""
    key = (id(topology), extra)
    found = cache.get(key)
    if found is not None and found[0] is topology:
        return found[1]
    if len(cache) > 64:
        cache.clear()
    value = make()
    cache[key] = (topology, value)
    return value


@dataclass
class Network:
    """A topology with one version's tensors (any mapping of key -> tensor, possibly lazy)."""

    topology: Topology
    tensors: Mapping
    source: str
    _last: tuple | None = field(default=None, repr=False)
    _maps: dict = field(default_factory=dict, repr=False)  # folded norms' (scale, shift), read once

    def weights(self, layer: WeightLayer):
        """(weight, bias) as the layer's links carry them, folded into a copy; the last layer's are
        kept, since neural persistence and the stored links read the same layer in turn (the
        strengths' pass folds as it reads: `folded`)."""
        if self._last is None or self._last[0] is not layer:
            self._last = (layer, self.folded(layer).tensors())
        return self._last[1]

    def folded(self, layer: WeightLayer) -> Folded:
        """The layer's stored weight and the scales folded into its links, not yet applied."""
        return folded(layer, self.tensors, self.topology.node_layers[layer.src].shape[0], self._maps)

    def weight(self, layer: WeightLayer):
        return self.weights(layer)[0]

    def bias(self, layer: WeightLayer):
        return self.weights(layer)[1]


FLOAT8 = ("float8_e4m3fn", "float8_e4m3fnuz", "float8_e5m2", "float8_e5m2fnuz", "float8_e8m0fnu")


class CheckedTensors(Mapping):
    """key -> tensor, each checked as it is read (lazily, like the mapping it wraps): a floating
    point tensor that holds no more elements than its storage, so a tiny crafted file cannot
    make nngraph allocate far beyond its size through overlapping strides. 8-bit floats are
    widened to float32; booleans, integers and complex numbers are refused."""

    def __init__(self, tensors: Mapping, source: str):
        self._tensors = tensors
        self._source = source
        self._passed: set = set()  # keys read and found sound: the same key reads the same tensor again

    def __getitem__(self, key):
        tensor = self._tensors[key]
        if key in self._passed:
            return tensor
        checked = checked_tensor(tensor, key, self._source)
        if checked is tensor:  # not widened: the next read needs no check or conversion
            self._passed.add(key)
        return checked

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

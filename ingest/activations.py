"""Data-dependent metrics (METRICS.md section 6, our reading of the 2024 Perspective):
Neurons Strength (NS, a node's pre-activation: the signal on its incoming links plus its bias)
and Neurons Activation (NA, the value after its activation function), over N inputs.

The network runs as the graph was built (forward_capture.py: the exported forward pass, its
node layers' values handed out batch by batch); each layer's NS and NA go to streaming
statistics (activation_stats.py) as they are computed, so no layer's activations are ever all
in memory.

Positions of a transformer's tokens are samples, not nodes: a node's values are taken over
inputs x positions. A conv layer's nodes are (c, *position), as in the graph.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

from nngraph.errors import NNGraphError

from .activation_stats import ACTIVATIONS, Stream, sort_samples
from .forward_capture import Capture, traced
from .fx_nodes import op_name
from .recurrent_steps import STEP_LAYER, step_values


@dataclass
class LayerData:
    """NS and NA of one node layer over the inputs."""

    index: int
    name: str
    activation: str | None  # the activation op that follows, None for the identity
    strength: Stream
    activation_values: Stream
    time_step: int | None = None  # a recurrent layer's step t (its node layer is one of T)

    def summary(self) -> dict:
        return {"index": self.index, "name": self.name, "activation": self.activation or "identity",
                "neurons_strength": self.strength.summary(activation=False),
                "neurons_activation": self.activation_values.summary(activation=True)}


@dataclass
class DataMetrics:
    inputs: dict  # source, samples, seed, hash
    options: dict
    layers: list[LayerData]
    not_measured: list[tuple[str, str]]  # (node layer, reason)

    def summary(self) -> dict:
        self.sort_samples()
        return {"data": self.inputs, "options": self.options, "layers": [layer.summary() for layer in self.layers],
                "over_time": [layer.summary() for layer in self.over_time()],
                "not_measured": [{"layer": name, "reason": reason} for name, reason in self.not_measured]}

    def over_time(self) -> list[LayerData]:
        """Recurrent node layers pooled over their time steps (rnn.h[1..T] as rnn.h), beside the
        per-step layers: the two readings METRICS.md section 6 leaves open."""
        steps: dict[str, list[LayerData]] = {}
        for layer in self.layers:
            match = STEP_LAYER.match(layer.name)
            if layer.time_step is not None and match:
                steps.setdefault(f"{match['prefix']}.{match['gate']}", []).append(layer)
        return [LayerData(-1, f"{name}[1..{len(parts)}]", parts[0].activation,
                          Stream.pooled([p.strength for p in parts]),
                          Stream.pooled([p.activation_values for p in parts]))
                for name, parts in steps.items()]

    def sort_samples(self) -> None:
        """Every layer's samples sorted at once, before their quantiles are read off."""
        sort_samples([stream for layer in self.layers for stream in (layer.strength, layer.activation_values)])

    @functools.cached_property
    def by_index(self) -> dict[int, LayerData]:
        return {layer.index: layer for layer in self.layers}

    def version_properties(self) -> dict:
        """What the Version node records: the inputs (source, count, seed, hash) and the options."""
        return {**{f"data_{key}": value for key, value in self.inputs.items()},
                "data_bias_in_strength": self.options["bias_in_strength"]}

    def layer_properties(self, index: int) -> dict:
        """A Layer's pooled NS (ns_*) and NA (na_*) figures."""
        layer = self.by_index.get(index)
        if layer is None:
            return {}
        self.sort_samples()
        properties = {"activation": layer.activation or "identity"}
        for prefix, stream in (("ns", layer.strength), ("na", layer.activation_values)):
            summary = stream.summary(activation=prefix == "na")
            for key in ("mean", "std", "min", "max", "sampled", "zero_fraction", "saturated_fraction"):
                if summary.get(key) is not None:
                    properties[f"{prefix}_{key}"] = summary[key]
            properties.update({f"{prefix}_{key}": value for key, value in summary["quantiles"].items()})
            properties[f"{prefix}_hist_counts"] = summary["histogram"]["counts"]
        return properties

    def check_layers(self, topology, source: str) -> None:
        """The layers measured must be the graph's: the same names at the same places. A layer of
        the graph with incoming links that the data's forward pass (exported with a dynamic batch)
        does not give is listed as not measured, never dropped silently."""
        for layer in self.layers:
            if layer.index >= len(topology.node_layers) or topology.node_layers[layer.index].name != layer.name:
                raise NNGraphError(f"{source}: the forward pass run on the data gives layer {layer.name!r} where the "
                                   "graph has another; data metrics need the module the graph was read from")
        accounted = {layer.name for layer in self.layers} | {name for name, _ in self.not_measured}
        for index in sorted({w.dst for w in topology.weight_layers}):
            name = topology.node_layers[index].name
            if name not in accounted:
                self.not_measured.append((name, "the forward pass exported for the data (a dynamic batch) has no "
                                                "value holding these nodes"))


@dataclass
class _Layer:
    """One node layer being measured: its two streams, made on the first batch."""

    layer: object  # network.NodeLayer
    activation: str | None
    bias: object = None  # per node, subtracted from NS when the bias is left out
    time_step: int | None = None
    order: object = None  # Source.order, on the device the values are computed on
    strength: Stream | None = None
    activation_values: Stream | None = None

    def add(self, strength, activation, batch: int, count: int, seed: int) -> None:
        """A batch of `batch` inputs: NS and NA as graph values (or already as rows). With no
        activation function they are the same values, kept once; NA given as None is the ReLU
        of NS, taken in the same pass."""
        same = activation is strength and self.bias is None
        rows = _as_rows(strength, self.layer, self.order)
        if self.bias is not None:
            rows = rows - self.bias.to(rows.device, rows.dtype)
        if self.strength is None:  # a sample is one row, or one per token position
            expected = count * (rows.shape[0] // batch)
            self.strength = Stream(self.layer.nodes, expected, activation=same)  # NS counts nothing
            self.activation_values = self.strength if same else \
                Stream(self.layer.nodes, expected, ACTIVATIONS.get(self.activation), True)
        if not self.strength.add(rows, seed, relu=self.activation_values if activation is None else None):
            self._non_finite("strengths")
        if not same and activation is not None and \
                not self.activation_values.add(_as_rows(activation, self.layer, self.order), seed):
            self._non_finite("activations")

    def _non_finite(self, what: str):
        raise NNGraphError(f"layer {self.layer.name}: its {what} on these inputs are NaN or infinite; was the "
                           "checkpoint saved after training diverged, or are the inputs scaled as in training?")


def data_metrics(module, data, *, samples: int | None = None, seed: int = 0, bias: bool = True,
                 device="auto", batch_size: int = 256, fold_batch_norm: bool = True) -> DataMetrics:
    """NS and NA of every node layer with incoming links, over `samples` inputs of `data`
    (anything data_source.load_inputs takes, or its Inputs). `bias=False`: NS without the bias."""
    import torch

    from .data_source import Inputs, load_inputs
    from .metrics import resolve_device

    inputs = data if isinstance(data, Inputs) else load_inputs(data, samples, seed)
    device = resolve_device(device)
    exported = traced(module, inputs, fold_batch_norm, device)
    biases = {} if bias else _node_biases(exported.topology, module.state_dict())
    capture = Capture(exported.graph)
    measured = []
    batch = {}  # the size of the batch being run

    def feed(target: _Layer, strength, activation):
        target.add(strength, activation, batch["size"], inputs.count, seed)

    steps_of = {}  # recurrent op node -> [(target, (depth, gate, t))]
    for source in exported.sources:
        target = _Layer(source.layer, source.activation, biases.get(source.layer.index),
                        None if source.step is None else source.step[2],
                        None if source.order is None else source.order.to(device))
        if source.step is not None:
            steps_of.setdefault(source.head, []).append((target, source.step))
        elif source.relu_in_pass and target.bias is None:  # NA from NS's pass
            capture.watch(source.head.name, lambda value, args, target=target: feed(target, value, None))
        else:
            values = {}  # NS arrives first (the activation follows it in the graph)
            capture.watch(source.head.name, lambda value, args, values=values: values.__setitem__("ns", value))
            capture.watch(source.after.name, lambda value, args, target=target, values=values:
                          feed(target, values["ns"], value))
        measured.append(target)
    for head, targets in steps_of.items():
        def run_steps(value, args, op=op_name(head), targets=targets):
            computed = step_values(op, args)
            for target, step in targets:
                feed(target, *computed[step])
        capture.watch(head.name, run_steps)
    dtype, constants = exported.dtype, exported.constants.values()
    with torch.no_grad():
        for start in range(0, inputs.count, batch_size):
            chunk = inputs.tensor[start:start + batch_size].to(device)
            batch["size"] = chunk.shape[0]
            capture.run_batch(chunk, dtype, *constants)
    layers = [LayerData(t.layer.index, t.layer.name, t.activation, t.strength, t.activation_values, t.time_step)
              for t in measured]
    options = {"bias_in_strength": bias, "batch_size": batch_size, "device": device.type,
               "batchnorm": "fold" if fold_batch_norm else "pass-through"}
    if any(layer.time_step is not None for layer in layers):  # both readings of METRICS.md section 6
        options["recurrent"] = "per time step (layers), and pooled over the steps (over_time)"
    return DataMetrics(inputs.record(), options, layers, list(exported.not_measured))


def _as_rows(value, layer, order=None):
    """A graph value of a node layer as (rows, nodes): a sample's nodes flattened in order, or
    per position for token sequences, (batch, positions, heads, head_dim) as Falcon splits its
    qkv, or (batch, nodes, *positions); attention's output is (batch, heads, positions,
    head_dim): the heads side by side. A
    part of a fused layer laid out otherwise comes with the `order` of a sample's elements."""
    shape, nodes = tuple(value.shape), layer.nodes
    if order is not None:
        return value.reshape(-1, order.numel())[:, order].reshape(-1, nodes)
    if layer.kind == "attention" and len(shape) == 4 and shape[1] * shape[3] == nodes:
        return value.transpose(1, 2).reshape(-1, nodes)
    if len(shape) == 2 and shape[1] == nodes:
        return value
    if math.prod(shape[1:]) == nodes:
        return value.reshape(shape[0], nodes)
    if shape and shape[-1] == nodes or len(shape) == 4 and shape[2] * shape[3] == nodes:
        return value.reshape(-1, nodes)
    if len(shape) > 2 and shape[1] == nodes:  # a token layer's channels first, before the positions (ConvNeXt V2's)
        return value.movedim(1, -1).reshape(-1, nodes)
    raise NNGraphError(f"layer {layer.name}: a value of shape {shape} does not lay out as its {nodes} nodes")


def _node_biases(topology, tensors) -> dict:
    """Per node layer, the summed biases of the links entering it, one value per node: what NS
    without the bias leaves out."""
    import torch

    from .folding import folded

    biases = {}
    for layer in topology.weight_layers:
        channels = topology.node_layers[layer.src].shape[0]
        bias = folded(layer, tensors, channels).bias
        if bias is None:
            continue
        dst = topology.node_layers[layer.dst]
        if layer.is_conv:
            bias = bias.reshape(-1, 1).expand(-1, dst.nodes // dst.shape[0]).reshape(-1)
        full = biases.setdefault(layer.dst, torch.zeros(dst.nodes, dtype=torch.float64))
        full[layer.dst_offset:layer.dst_offset + bias.numel()] += bias.double()
    return biases

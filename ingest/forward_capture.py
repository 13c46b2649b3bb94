"""A module's forward pass, exported once and run batch by batch with its node layers' values
handed out as they are computed.

The forward pass is exported with a dynamic batch dimension and walked by trace.py, which
names, for every node layer, the graph value holding its nodes as produced (after folded
BatchNorm and norms' gains, residual sums and merges). `sources` says where each layer's NS,
and the output of the activation that follows it (its NA), are read; Capture runs the graph in
eval mode, rewritten to call back after each of those values.
"""

from __future__ import annotations

import functools
import weakref
from dataclasses import dataclass

from nngraph.errors import NNGraphError, first_line

from .activation_stats import ACTIVATIONS
from .fx_nodes import VIEWS, module_label, op_name
from .recurrent_steps import ACTIVATION_OF, step_of
from .trace import with_values


@dataclass(frozen=True)
class Traced:
    """A module's forward pass as exported for one kind of input."""

    topology: object  # network.Topology
    heads: dict  # node layer index -> the graph node holding its values
    graph: object  # the runnable GraphModule, on the device measured on
    weights: list  # the graph's tensors as (tensor, its path in the module)
    constants: dict  # keyword inputs the graph takes after the inputs, as _constant_inputs gives them
    sources: list  # where each measured node layer is read in the graph (Source)
    not_measured: list  # (node layer, reason) of those that cannot be read

    @property
    def dtype(self):
        """The type inputs are given in: the weights' (the module's, since _refresh)."""
        import torch

        return next((tensor.dtype for tensor, _ in self.weights if tensor.is_floating_point()), torch.float32)


@dataclass(frozen=True)
class Source:
    """Where one node layer's values are read in the exported graph."""

    layer: object  # network.NodeLayer
    head: object  # the graph node holding NS (for a recurrent layer, its op)
    after: object  # the node holding NA: the activation's, or the head's for the identity
    activation: str | None
    relu_in_pass: bool  # a ReLU alone reads NS: NA is taken in NS's pass
    step: tuple | None = None  # a recurrent layer's (depth, gate, t)
    order: object = None  # a sample's elements in (position, node) order, where the head lays them out otherwise


def _sources(topology, heads, orders) -> tuple[list[Source], list[tuple[str, str]]]:
    """Where each node layer with incoming links is read in the graph, and the layers that
    cannot be read, with the reason."""
    sources, not_measured = [], []
    for layer in topology.node_layers:
        if not any(w.dst == layer.index for w in topology.weight_layers):
            continue  # the inputs and cuts: no incoming links, no NS
        head = heads.get(layer.index)
        if head is None:
            not_measured.append((layer.name, "no value of the forward pass holds these nodes"))
        elif op_name(head) in ACTIVATION_OF:
            step = step_of(layer.name, module_label(head)[0], int(head.args[4]))
            if step is None:
                not_measured.append((layer.name, "a recurrent layer's step that could not be matched to its op"))
            else:
                sources.append(Source(layer, head, head, ACTIVATION_OF[op_name(head)].get(step[1]), False, step))
        else:
            after, activation = _activation_after(head)
            sources.append(Source(layer, head, after, activation, activation == "relu" and _read_by_relu(head),
                                  order=orders.get(layer.index)))
    return sources, not_measured


_TRACED = weakref.WeakKeyDictionary()  # module -> {(input shape, dtype, fold, device): Traced}


def traced(module, inputs, fold_batch_norm: bool, device) -> Traced:
    """The module's forward pass exported, its graph holding the module's current weights, on
    `device`. Exported once per module and kind of input: a training loop measures every epoch
    of the same module object, and export costs far more than the measurement
    (bench/data_metrics.py)."""
    key = (tuple(inputs.tensor.shape[1:]), inputs.tensor.dtype, fold_batch_norm, str(device))
    cached = _TRACED.setdefault(module, {})
    if key not in cached:
        program = _export(module, inputs)
        topology, heads, orders = with_values(program, fold_batch_norm=fold_batch_norm)
        # without the guards' check of each input (20-50 us a batch on the digits networks):
        # every batch has the shape the export was checked with, bar the dynamic batch size
        graph = program.module(check_guards=False).to(device)
        weights = [(tensor, name.split(".")) for name, tensor in graph.state_dict(keep_vars=True).items()]
        cached[key] = Traced(topology, heads, graph, weights, _constant_inputs(module),
                             *_sources(topology, heads, orders))
    _refresh(module, cached[key].weights)
    return cached[key]


def _refresh(module, weights) -> None:
    """The module's current weights into the graph's (tensor, attribute path) pairs. The graph
    shares the module's tensors as exported, and training updates them in place: only a tensor
    the module has replaced since (or holds on another device) is copied. Two state_dict calls
    to compare them cost a fifth of the digits MLP's forward pass (bench/data_metrics.py)."""
    import torch

    stale = [(tensor, current) for tensor, path in weights if (current := _attribute(module, path)) is not tensor]
    if stale:
        with torch.no_grad():
            for tensor, current in stale:
                tensor.copy_(current)


def _attribute(module, path: list[str]):
    """The parameter or buffer at `path` in the module, read from its registries (getattr on a
    module is a Python call per step: it was most of _refresh's time)."""
    try:
        for name in path[:-1]:
            module = module._modules[name]
        registry = module._parameters if path[-1] in module._parameters else module._buffers
        return registry[path[-1]]
    except (KeyError, AttributeError):  # not registered where state_dict's name says: ask the module
        return functools.reduce(getattr, path, module)


def _export(module, inputs):
    """The forward pass exported with a dynamic batch dimension."""
    import warnings

    import torch

    example = inputs.tensor[:2] if inputs.count > 1 else inputs.tensor.repeat(2, *([1] * (inputs.tensor.dim() - 1)))
    example = example.to(_input_dtype(module)) if example.is_floating_point() else example
    example = example.to(next((p.device for p in module.parameters()), example.device))  # where the model is
    name = _input_name(module)
    was_training = module.training
    _set_training(module, False)
    try:
        with torch.no_grad():
            try:
                module(**{name: example}) if name else module(example)
            except Exception as exc:  # the user's model: what it raises means the inputs do not fit
                if _runs(module, name, example[:1]):
                    raise NNGraphError("--data: the model takes one input at a time (a .pt2 exported with a fixed "
                                       "batch of 1?); export it with a dynamic batch dimension (torch.export's "
                                       "dynamic_shapes), or give --arch with a state_dict") from None
                raise NNGraphError(f"--data: inputs of shape {tuple(inputs.tensor.shape[1:])} do not fit the model "
                                   f"({type(exc).__name__}: {first_line(exc)}); give inputs as the model takes "
                                   "them (without the batch dimension first)") from None
        batch = {0: torch.export.Dim.AUTO}
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if name:
                    extra = _constant_inputs(module)
                    program = torch.export.export(module, (), kwargs={name: example, **extra},
                                                  dynamic_shapes={name: batch, **dict.fromkeys(extra)}, strict=False)
                else:
                    program = torch.export.export(module, (example,), dynamic_shapes=(batch,), strict=False)
        except Exception as exc:
            raise NNGraphError(f"the forward pass could not be traced for data metrics ({first_line(exc)})") from None
    finally:
        _set_training(module, was_training)
    return program


def _runs(module, name, example) -> bool:
    try:
        module(**{name: example}) if name else module(example)
        return True
    except Exception:  # the user's model: any failure means no
        return False


def _set_training(module, training: bool) -> None:
    try:
        module.train(training)
    except NotImplementedError:  # a .pt2's module keeps the mode it was exported in
        pass


def _input_name(module) -> str | None:
    """Hugging Face models take token ids by keyword."""
    return "input_ids" if getattr(module, "main_input_name", None) == "input_ids" else None


def _constant_inputs(module) -> dict:
    """Keyword inputs fixed for every batch: no cache object out of a Hugging Face model (not a
    tensor: export refuses it). The exported graph takes them after the token ids."""
    return {"use_cache": False} if hasattr(getattr(module, "config", None), "use_cache") else {}


def _input_dtype(module):
    import torch

    return next((p.dtype for p in module.parameters() if p.is_floating_point()), torch.float32)


def _activation_after(node):
    """The value after the activation that follows a node layer's values (through views and
    dropout), if nothing else reads them on the way; else the values themselves (identity)."""
    current, activation = node, None
    while len(current.users) == 1:
        user = next(iter(current.users))
        name = op_name(user)
        if activation is None and name.rstrip("_") in ACTIVATIONS:
            activation = name.rstrip("_")
        elif name not in VIEWS or name == "getitem":
            break
        current = user
    return (current, activation) if activation else (node, None)


def _read_by_relu(node) -> bool:
    """Whether a ReLU alone reads the node's values, as they are."""
    return len(node.users) == 1 and op_name(next(iter(node.users))).rstrip("_") == "relu"


class Capture:
    """Runs the exported graph batch by batch, handing the values of watched nodes (and their
    arguments) to callbacks as soon as they are computed, so that no value outlives its use.

    The graph runs as a GraphModule with a call after each watched node, compiled to Python once
    per graph and set of watched nodes: fx's Interpreter, node by node, cost more than the forward
    pass of the digits networks (bench/data_metrics.py)."""

    def __init__(self, graph):
        self.graph = graph
        self.watched: dict[str, list] = {}

    def watch(self, name: str, callback) -> None:
        self.watched.setdefault(name, []).append(callback)

    def run_batch(self, batch, dtype, *constants) -> None:
        if batch.is_floating_point():
            batch = batch.to(dtype)
        runners = _RUNNERS.setdefault(self.graph, {})
        names = frozenset(self.watched)
        if names not in runners:
            runners[names] = _with_calls(self.graph, names)
        runner, emit = runners[names]
        emit.watched = self.watched
        try:
            runner(batch, *constants)
        finally:
            emit.watched = {}


class _Emit:
    """What the rewritten graph calls after a watched node: that node's callbacks."""

    def __init__(self):
        self.watched: dict[str, list] = {}

        def emit(name, value, args):  # a function: fx names the targets it calls
            for callback in self.watched[name]:
                callback(value, args)

        self.call = emit


_RUNNERS = weakref.WeakKeyDictionary()  # graph module -> {watched names: (runner, its _Emit)}


def _with_calls(graph_module, names):
    """A copy of the graph module's graph with a call of an _Emit after each node named in
    `names`, given the node's value and its arguments."""
    import torch.fx

    emit = _Emit()
    graph = torch.fx.Graph()
    output = graph.graph_copy(graph_module.graph, {})
    for node in list(graph.nodes):
        if node.name in names:
            with graph.inserting_after(node):
                graph.call_function(emit.call, (node.name, node, node.args))
    graph.output(output)
    return torch.fx.GraphModule(graph_module, graph), emit

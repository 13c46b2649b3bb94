"""Data-dependent metrics (METRICS.md section 6, our reading of the 2024 Perspective):
Neurons Strength (NS, a node's pre-activation: the signal on its incoming links plus its bias)
and Neurons Activation (NA, the value after its activation function), over N inputs.

The network runs as the graph was built: the forward pass is exported once with a dynamic
batch dimension and walked by trace.py, which names, for every node layer, the graph value
holding its nodes as produced (after folded BatchNorm and norms' gains, residual sums and
merges). That graph runs batch by batch in eval mode, rewritten to hand each such value, and
the output of the activation that follows it, to a streaming accumulator: per node means and
squared deviations (float64), extremes, zeros and saturated values (on the CPU from one
compiled pass per batch, batch_moments.py), and a seeded sample of at most SAMPLE_SIZE values
for the quantiles and the histogram on a fixed grid (exact below that size). No layer's
activations are ever all in memory.

Positions of a transformer's tokens are samples, not nodes: a node's values are taken over
inputs x positions. A conv layer's nodes are (c, *position), as in the graph.
"""

from __future__ import annotations

import functools
import math
import weakref
from dataclasses import dataclass, field

import numpy as np

from nngraph.errors import NNGraphError, first_line

from .fx_nodes import VIEWS, module_label, op_name
from .recurrent_steps import ACTIVATION_OF, STEP_LAYER, step_of, step_values
from .trace import with_values

# activation op -> the values it saturates at (METRICS.md section 6) as (below, above, inclusive):
# saturated below `below` or above `above` (or at them, when inclusive); None if it does not
ACTIVATIONS = {
    "relu": None, "relu6": None, "gelu": None, "silu": None, "elu": None, "leaky_relu": None, "softplus": None,
    "mish": None, "hardswish": None, "selu": None, "celu": None,
    "tanh": (-0.99, 0.99, False), "hardtanh": (-1.0, 1.0, True),
    "sigmoid": (0.01, 0.99, False), "hardsigmoid": (0.0, 1.0, True),
}
# a fixed grid shared by every layer, version and model: 0 and +-10^k for k from -3 to 3 in
# eighths of a decade, plus two open-ended bins: histograms of any two versions line up
_DECADES = np.round(10.0 ** np.linspace(-3, 3, 49), 12)
GRID = np.concatenate([-_DECADES[::-1], [0.0], _DECADES])
QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
SAMPLE_SIZE = 1 << 14  # values kept per layer for quantiles; exact below it


@functools.lru_cache(maxsize=256)
def sample_positions(seed: int, values: int, take: int, batch: int) -> np.ndarray:
    """`take` seeded uniform positions, with replacement, among the `values` of the batch starting
    at row `batch`: a function of these numbers only, so the streams of one size share the draw,
    and so do the versions of a training loop (kept: on the digits networks the draws cost more
    than the statistics, bench/data_metrics.py). Each stream's sample stays uniform over its
    values, and each batch draws its own."""
    import torch

    state = int(np.random.SeedSequence([seed, values, take, batch]).generate_state(1)[0])
    # in order: the gather then reads the batch front to back (a third quicker, measured)
    return torch.randint(0, values, (take,), generator=torch.Generator().manual_seed(state)).sort().values.numpy()


@dataclass
class Stream:
    """Running statistics of one node layer's values, fed a batch at a time as (rows, nodes):
    per node mean and sum of squared deviations (float64, batches combined by Chan et al.'s
    update, which stays exact where sums of squares would cancel), extremes, zeros and
    saturated values (activations), and a seeded uniform sample of the values for quantiles
    and the histogram (all values while they number at most SAMPLE_SIZE)."""

    nodes: int
    expected_rows: int  # rows the whole run will add: sets the share of each batch sampled
    saturates: tuple | None = None  # (below, above, inclusive), as in ACTIVATIONS
    activation: bool = False  # count zeros and saturated values
    rows: int = 0
    means: np.ndarray | None = None  # float64, per node
    deviations: np.ndarray | None = None  # per node: the sum of squared deviations from its mean
    low: float = math.inf
    high: float = -math.inf
    zeros: int = 0
    saturated: int = 0
    sample: list = field(default_factory=list)
    rectified: bool = False  # the sample holds values whose ReLU it is (a ReLU's NA shares NS's)

    def add(self, values, seed: int, relu: "Stream | None" = None) -> bool:
        """Adds a batch, and with `relu` its max(values, 0) to that stream (a `rectified` one),
        from the same read: a ReLU layer's NA, a stream of the same size, so its sample takes
        the same positions and is this one's. False (and nothing added) if the batch holds NaN
        or infinite values."""
        picks = None  # the sample's positions in this batch, when it is not kept whole
        if self.expected_rows * self.nodes > SAMPLE_SIZE:
            take = min(values.numel(), math.ceil(SAMPLE_SIZE * values.shape[0] / self.expected_rows))
            picks = sample_positions(seed, values.numel(), take, self.rows)
        finite, moments, relu_moments = _moments(values, self.saturates, picks, relu is not None, self.activation)
        if not finite:
            return False
        self._merge(values.shape[0], *moments)
        if relu is not None:
            relu._merge(values.shape[0], *relu_moments, moments[-1])
        return True

    def _merge(self, rows, mean, deviations, low, high, zeros, saturated, sample) -> None:
        self.means, self.deviations, self.rows = _combined(self.means, self.deviations, self.rows,
                                                           mean, deviations, rows)
        self.low, self.high = min(self.low, low), max(self.high, high)
        if self.activation:
            self.zeros += zeros
            self.saturated += saturated
        self.sample.append(sample)

    @classmethod
    def pooled(cls, streams: list["Stream"]) -> "Stream":
        """Streams of the same nodes (a recurrent state's time steps) as one: each node's values
        over every step."""
        first = streams[0]
        pooled = cls(first.nodes, sum(s.expected_rows for s in streams), first.saturates, first.activation,
                     low=min(s.low for s in streams), high=max(s.high for s in streams),
                     zeros=sum(s.zeros for s in streams), saturated=sum(s.saturated for s in streams),
                     sample=[s.sampled_values() for s in streams])
        for stream in streams:
            pooled.means, pooled.deviations, pooled.rows = _combined(pooled.means, pooled.deviations, pooled.rows,
                                                                     stream.means, stream.deviations, stream.rows)
        return pooled

    def summary(self, *, activation: bool) -> dict:
        count = self.rows * self.nodes
        mean = float(self.means.mean())
        # every node has the same rows: the pooled squared deviations are the nodes' own plus
        # each node's rows times its mean's squared distance from the pooled mean
        deviations = float(self.deviations.sum()) + self.rows * float(((self.means - mean) ** 2).sum())
        sample = self.sampled_values()
        result = {
            "count": count, "mean": mean, "std": math.sqrt(max(deviations / count, 0.0)),
            "min": self.low, "max": self.high,
            "quantiles": {f"q{round(q * 100):02d}": float(v) for q, v in zip(QUANTILES, np.quantile(sample, QUANTILES))},
            "sampled": None if sample.size == count else sample.size,
            "histogram": {"grid": "fixed", "counts": np.bincount(np.searchsorted(GRID, sample, side="right"),
                                                                 minlength=len(GRID) + 1).tolist()},
        }
        if activation:
            result["zero_fraction"] = self.zeros / count
            result["saturated_fraction"] = None if self.saturates is None else self.saturated / count
        return result

    def sampled_values(self) -> np.ndarray:
        """The sample, in float64."""
        sample = np.concatenate(self.sample, dtype=np.float64)
        return np.maximum(sample, 0.0, out=sample) if self.rectified else sample

    def per_node(self) -> tuple[np.ndarray, np.ndarray]:
        """(mean, population std) of each node over the rows."""
        return self.means, np.sqrt(self.deviations / self.rows)


def _moments(values, saturation, picks, relu: bool, counts_zeros: bool):
    """batch_moments' figures of a batch of values (no gradient), `picks` an array of positions or
    None: on the CPU from the compiled pass, else (CUDA, half precision) from torch's calls."""
    if values.is_cpu and values.dtype.itemsize >= 4 and values.is_floating_point():
        return _batch_moments()(values.numpy(), saturation, picks, relu, counts_zeros)
    return _torch_moments(values, saturation, picks, relu)


@functools.cache
def _batch_moments():
    """The compiled pass, imported on first use (numba takes a second to import)."""
    from .batch_moments import batch_moments

    return batch_moments


def _torch_moments(values, saturation, picks=None, relu: bool = False):
    """What batch_moments gives, from torch's calls."""
    import torch

    finite, *moments = _torch_stream(values, saturation, picks)
    return finite, tuple(moments), _torch_stream(torch.relu(values), None, picks)[1:-1] if relu else None


def _torch_stream(values, saturation, picks):
    """(finite, *moments) of one stream's batch. Column sums as matrix-vector products: several
    times faster than torch's reductions over dim 0 (var_mean)."""
    import torch

    rows = values.shape[0]
    ones = torch.ones(rows, dtype=values.dtype, device=values.device)
    mean = torch.mv(values.t(), ones) / rows
    deviations = torch.mv((values - mean).square_().t(), ones)
    low, high = torch.aminmax(values)
    zeros = values.numel() - int(torch.count_nonzero(values))
    saturated = 0
    if saturation is not None:
        below, above, inclusive = saturation
        outside = (values <= below) | (values >= above) if inclusive else (values < below) | (values > above)
        saturated = int(torch.count_nonzero(outside))
    flat = values.reshape(-1)
    sample = flat if picks is None else flat[torch.from_numpy(picks).to(values.device)]
    mean, deviations = mean.double().cpu().numpy(), deviations.double().cpu().numpy()
    return (math.isfinite(mean.sum() + deviations.sum()), mean, deviations, float(low), float(high), zeros,
            saturated, sample.double().cpu().numpy())


def _combined(mean_a, deviations_a, rows_a: int, mean_b, deviations_b, rows_b: int):
    """Means and sums of squared deviations of two parts as those of the whole (Chan et al. 1979)."""
    if mean_a is None:
        return mean_b, deviations_b, rows_b
    rows = rows_a + rows_b
    delta = mean_b - mean_a
    return mean_a + delta * (rows_b / rows), deviations_a + deviations_b + delta * delta * (rows_a * rows_b / rows), rows


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
        """The layers measured must be the graph's: the same names at the same places."""
        for layer in self.layers:
            if layer.index >= len(topology.node_layers) or topology.node_layers[layer.index].name != layer.name:
                raise NNGraphError(f"{source}: the forward pass run on the data gives layer {layer.name!r} where the "
                                   "graph has another; data metrics need the module the graph was read from")


@dataclass
class _Layer:
    """One node layer being measured: its two streams, made on the first batch."""

    layer: object  # network.NodeLayer
    activation: str | None
    bias: object = None  # per node, subtracted from NS when the bias is left out
    time_step: int | None = None
    strength: Stream | None = None
    activation_values: Stream | None = None

    def add(self, strength, activation, batch: int, count: int, seed: int) -> None:
        """A batch of `batch` inputs: NS and NA as graph values (or already as rows). With no
        activation function they are the same values, kept once; NA given as None is the ReLU
        of NS, taken in the same pass."""
        same = activation is strength and self.bias is None
        rows = _as_rows(strength, self.layer.nodes, self.layer.name)
        if self.bias is not None:
            rows = rows - self.bias.to(rows.device, rows.dtype)
        if self.strength is None:  # a sample is one row, or one per token position
            expected = count * (rows.shape[0] // batch)
            self.strength = Stream(self.layer.nodes, expected, activation=same)  # NS counts nothing
            self.activation_values = self.strength if same else \
                Stream(self.layer.nodes, expected, ACTIVATIONS.get(self.activation), True, rectified=activation is None)
        if not self.strength.add(rows, seed, relu=self.activation_values if activation is None else None):
            self._non_finite("strengths")
        if not same and activation is not None and \
                not self.activation_values.add(_as_rows(activation, self.layer.nodes, self.layer.name), seed):
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
    traced = _traced(module, inputs, fold_batch_norm, device)
    biases = {} if bias else _node_biases(traced.topology, module.state_dict())
    capture = _Capture(traced.graph)
    measured = []
    batch = {}  # the size of the batch being run

    def feed(target: _Layer, strength, activation):
        target.add(strength, activation, batch["size"], inputs.count, seed)

    steps_of = {}  # recurrent op node -> [(target, (depth, gate, t))]
    for source in traced.sources:
        target = _Layer(source.layer, source.activation, biases.get(source.layer.index),
                        None if source.step is None else source.step[2])
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
    dtype, constants = traced.dtype, traced.constants.values()
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
    return DataMetrics(inputs.record(), options, layers, list(traced.not_measured))


@dataclass(frozen=True)
class _Traced:
    """A module's forward pass as exported for one kind of input."""

    topology: object  # network.Topology
    heads: dict  # node layer index -> the graph node holding its values
    graph: object  # the runnable GraphModule, on the device measured on
    weights: list  # the graph's tensors as (tensor, its path in the module)
    constants: dict  # keyword inputs the graph takes after the inputs, as _constant_inputs gives them
    sources: list  # where each measured node layer is read in the graph (_Source)
    not_measured: list  # (node layer, reason) of those that cannot be read

    @property
    def dtype(self):
        """The type inputs are given in: the weights' (the module's, since _refresh)."""
        import torch

        return next((tensor.dtype for tensor, _ in self.weights if tensor.is_floating_point()), torch.float32)


@dataclass(frozen=True)
class _Source:
    """Where one node layer's values are read in the exported graph."""

    layer: object  # network.NodeLayer
    head: object  # the graph node holding NS (for a recurrent layer, its op)
    after: object  # the node holding NA: the activation's, or the head's for the identity
    activation: str | None
    relu_in_pass: bool  # a ReLU alone reads NS: NA is taken in NS's pass
    step: tuple | None = None  # a recurrent layer's (depth, gate, t)


def _sources(topology, heads) -> tuple[list[_Source], list[tuple[str, str]]]:
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
                sources.append(_Source(layer, head, head, ACTIVATION_OF[op_name(head)].get(step[1]), False, step))
        else:
            after, activation = _activation_after(head)
            sources.append(_Source(layer, head, after, activation, activation == "relu" and _read_by_relu(head)))
    return sources, not_measured


_TRACED = weakref.WeakKeyDictionary()  # module -> {(input shape, dtype, fold, device): _Traced}


def _traced(module, inputs, fold_batch_norm: bool, device) -> _Traced:
    """The module's forward pass exported, its graph holding the module's current weights, on
    `device`. Exported once per module and kind of input: a training loop measures every epoch
    of the same module object, and export costs far more than the measurement
    (bench/data_metrics.py)."""
    key = (tuple(inputs.tensor.shape[1:]), inputs.tensor.dtype, fold_batch_norm, str(device))
    cached = _TRACED.setdefault(module, {})
    if key not in cached:
        program = _export(module, inputs)
        topology, heads = with_values(program, fold_batch_norm=fold_batch_norm)
        # without the guards' check of each input (20-50 us a batch on the digits networks):
        # every batch has the shape the export was checked with, bar the dynamic batch size
        graph = program.module(check_guards=False).to(device)
        weights = [(tensor, name.split(".")) for name, tensor in graph.state_dict(keep_vars=True).items()]
        cached[key] = _Traced(topology, heads, graph, weights, _constant_inputs(module), *_sources(topology, heads))
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


def _as_rows(value, nodes: int, name: str):
    """A graph value as (rows, nodes): a sample's nodes flattened in order, or per position for
    token sequences; attention's (batch, heads, positions, head_dim) with the heads side by side."""
    shape = tuple(value.shape)
    if len(shape) == 2 and shape[1] == nodes:
        return value
    if math.prod(shape[1:]) == nodes:
        return value.reshape(shape[0], nodes)
    if shape and shape[-1] == nodes:
        return value.reshape(-1, nodes)
    if len(shape) == 4 and shape[1] * shape[3] == nodes:
        return value.transpose(1, 2).reshape(-1, nodes)
    raise NNGraphError(f"layer {name}: a value of shape {shape} does not lay out as its {nodes} nodes")


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


class _Capture:
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

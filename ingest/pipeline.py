"""Ingest: model sources -> metrics -> one stored version each. The entry points for the CLI
and for training loops (ingest_module, called once per epoch)."""

from __future__ import annotations

import contextlib
import hashlib
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from nngraph.errors import NNGraphError
from nngraph.limits import check_int64, check_metric_key

from .data_source import Inputs, load_inputs
from .edges import EdgePolicy
from .graph_rows import GraphOptions
from .metrics import compute_metrics
from .hf_models import is_model_directory
from .sources import SAFETENSORS_INDEX, load_network, load_runnable, network_from_module
from .writer import IngestResult, write_version

CHECKPOINT_SUFFIXES = {".pt", ".pth", ".bin", ".safetensors", ".pt2"}


def checkpoint_files(path: Path) -> list[tuple[Path, int | None]]:
    """A file, or a directory of checkpoints ordered by the step in their names (last number)."""
    if path.is_dir() and not (path / SAFETENSORS_INDEX).exists() and not is_model_directory(path):
        files = [p for p in path.iterdir() if p.suffix in CHECKPOINT_SUFFIXES and p.is_file()]
        if not files:
            raise NNGraphError(f"{path}: no checkpoint files ({', '.join(sorted(CHECKPOINT_SUFFIXES))}) in it")
        with_steps = [(p, _step_from_name(p)) for p in files]
        return sorted(with_steps, key=lambda item: (item[1] is None, item[1] or 0, item[0].name))
    return [(path, _step_from_name(path))]


def _step_from_name(path: Path) -> int | None:
    numbers = re.findall(r"\d+", path.stem)
    return int(numbers[-1]) if numbers else None


def version_properties(step=None, epoch=None, metrics=None, source=None, sha256=None) -> dict:
    """The Version node's properties, checked: metric keys become property names, integers must fit 64 bits."""
    properties = {"step": step, "epoch": epoch, "source": source, "sha256": sha256}
    for key, value in (metrics or {}).items():
        properties[f"metric_{check_metric_key(key)}"] = value
    for key, value in properties.items():
        if isinstance(value, bool) or not isinstance(value, (int, float, str, type(None))):
            raise NNGraphError(f"{key} {value!r}: expected a number or text")
        if isinstance(value, int):
            check_int64(value, "the step (from --step or the file name)" if key == "step" else key)
    return {k: v for k, v in properties.items() if v is not None}


@dataclass(frozen=True)
class DataOptions:
    """Inputs to measure NS and NA on (activations.py), and whether NS counts the bias."""

    inputs: Inputs
    bias_in_strength: bool = True

    @classmethod
    def of(cls, data, samples: int | None = None, seed: int = 0, bias_in_strength: bool = True):
        """None without data, DataOptions as they are; inputs are loaded (and sampled) once for
        every version."""
        if data is None or isinstance(data, DataOptions):
            return data
        inputs = data if isinstance(data, Inputs) else load_inputs(data, samples, seed)
        return cls(inputs, bias_in_strength)

    def measure(self, module, network, result, device, batchnorm: str = "fold"):
        """Adds NS and NA to `result` (a NetworkMetrics) and returns the Version properties they add."""
        from .activations import data_metrics

        result.data = data_metrics(module, self.inputs, bias=self.bias_in_strength, device=device,
                                   fold_batch_norm=batchnorm == "fold")
        result.data.check_layers(network.topology, network.source)
        return result.data.version_properties()


def ingest_path(store, path: Path, *, model: str, tag: str | None = None, step: int | None = None,
                metrics: dict | None = None, edges: EdgePolicy = EdgePolicy(), conv_edges: str = "channel",
                replace: bool = False, device: str = "auto", load_options: dict | None = None,
                persistence: str = "definition", progress: bool = True, announce=None,
                data: DataOptions | None = None) -> IngestResult:
    network, result, properties = _measured(path, step, metrics, device, load_options, persistence, data)
    return write_version(store, network, result, model=model, tag=tag or path.stem, properties=properties,
                         edges=edges, conv_edges=conv_edges, replace=replace, progress=progress, announce=announce)


def export_path(exporter, path: Path, *, model: str, tag: str | None = None, step: int | None = None,
                metrics: dict | None = None, options: GraphOptions = GraphOptions(), device: str = "auto",
                load_options: dict | None = None, persistence: str = "definition", bar=None,
                data: DataOptions | None = None) -> int:
    """Add one file's version to an export (nngraph.ingest.export.Exporter); the links written."""
    network, result, properties = _measured(path, step, metrics, device, load_options, persistence, data)
    return exporter.add_version(network, result, model=model, tag=tag or path.stem, uid=secrets.token_hex(8),
                                properties=properties, options=options, bar=bar)


def _measured(path: Path, step, metrics, device, load_options, persistence, data: DataOptions | None = None):
    network = load_network(path, **(load_options or {}))
    result = compute_metrics(network, device=device, persistence=persistence)
    properties = version_properties(step=step, metrics=metrics, source=str(path), sha256=_sha256(path))
    if data is not None:
        module = load_runnable(path, **(load_options or {}))
        properties.update(data.measure(module, network, result, device, (load_options or {}).get("batchnorm", "fold")))
    return network, result, properties


def ingest_module(module, *, model_name: str, version: str, metrics: dict | None = None, step: int | None = None,
                  epoch: int | None = None, input_shape=None, time_steps: int | None = None, edges: str = "all",
                  conv_edges: str = "channel", batchnorm: str = "fold", persistence: str = "definition",
                  replace: bool = False, store=None, device: str = "auto", data=None, samples: int | None = None,
                  seed: int = 0, bias_in_strength: bool = True) -> IngestResult:
    """Store an in-memory nn.Module as one version (e.g. once per epoch from a training loop).

    Without `store`, connects to the configured database (NEO4J_* variables, config file)
    or starts the local default. Conv models need input_shape (C, H, W), recurrent ones
    time_steps; `batchnorm` and `persistence` are the CLI's --batchnorm and --persistence.
    `data` (with `samples`, `seed`, `bias_in_strength`: the CLI's --data options, or a
    DataOptions) adds the version's Neurons Strength and Activation on those inputs.
    """
    network = network_from_module(module, input_shape, source=f"<module {type(module).__name__}>",
                                  time_steps=time_steps, batchnorm=batchnorm)
    result = compute_metrics(network, device=device, persistence=persistence)
    properties = version_properties(step=step, epoch=epoch, metrics=metrics)
    if data is not None:
        options = DataOptions.of(data, samples, seed, bias_in_strength)
        properties.update(options.measure(module, network, result, device, batchnorm))
    policy = EdgePolicy.parse(edges) if isinstance(edges, str) else edges
    with _given_or_opened(store) as target:
        return write_version(target, network, result, model=model_name, tag=version, properties=properties,
                             edges=policy, conv_edges=conv_edges, replace=replace, progress=False)


def _given_or_opened(store):
    """The caller's store as it is, or the configured one, opened here and closed after use."""
    if store is not None:
        return contextlib.nullcontext(store)
    from nngraph.config import resolve_connection
    from nngraph.store import Store

    return Store.open(resolve_connection())

def _sha256(path: Path) -> str | None:
    if not path.is_file():
        return None
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


class EpochRecorder:
    """Store a model once per epoch from a training loop, over one open connection:

        with EpochRecorder("mnist-mlp", input_shape=(1, 28, 28)) as record:
            for epoch in range(epochs):
                train_one_epoch(model)
                record(model, epoch=epoch, metrics={"test_accuracy": evaluate(model)})

    Each call stores a version tagged `epoch{N}` (or `version=`); one already stored is left
    as it is, so a rerun after an interruption resumes without duplicates. With `data=` (as
    ingest_module takes it), the inputs are drawn once and every epoch is measured on them.
    """

    def __init__(self, model_name: str, *, store=None, input_shape=None, time_steps: int | None = None,
                 edges: str = "all", conv_edges: str = "channel", batchnorm: str = "fold",
                 persistence: str = "definition", device: str = "auto", data=None, samples: int | None = None,
                 seed: int = 0, bias_in_strength: bool = True):
        self.model_name, self.device = model_name, device
        self.options = dict(input_shape=input_shape, time_steps=time_steps, edges=edges, conv_edges=conv_edges,
                            batchnorm=batchnorm, persistence=persistence,
                            data=DataOptions.of(data, samples, seed, bias_in_strength))  # the same inputs every epoch
        self._opened = _given_or_opened(store)
        self._store = self._opened.__enter__()

    def __call__(self, module, *, epoch: int | None = None, version: str | None = None, step: int | None = None,
                 metrics: dict | None = None) -> IngestResult:
        tag = version or (f"epoch{epoch}" if epoch is not None else None)
        if tag is None:
            raise NNGraphError("give each recorded version an epoch or a version tag")
        return ingest_module(module, model_name=self.model_name, version=tag, metrics=metrics, epoch=epoch,
                             step=step if step is not None else epoch, store=self._store, device=self.device,
                             **self.options)

    def close(self) -> None:
        self._opened.__exit__(None, None, None)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

"""Read a network from where it is stored: a module, a state_dict file, safetensors, a .pt2.

Files are loaded without running code (torch.load(weights_only=True), safetensors,
torch.export archives read by pt2_archive with unpickling refused); pickled content needs
trust_pickle=True, because unpickling runs whatever code the file names. Only regular
files are read (a FIFO or a device would be read forever). Sharded safetensors load
lazily, tensor by tensor; every tensor is checked as it is read (network.CheckedTensors).
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Mapping
from pathlib import Path

from nngraph.errors import NNGraphError, first_line

from . import topology as build
from .network import Network
from .hf_models import build_module, is_model_directory, renamed
from .pt2_archive import check_expansion, load_exported

CHECKPOINT_KEYS = ("state_dict", "model_state_dict", "model")
SAFETENSORS_INDEX = "model.safetensors.index.json"


def network_from_module(module, input_shape: tuple[int, ...] | None = None, source: str = "<module>", *,
                        time_steps: int | None = None, batchnorm: str = "fold") -> Network:
    """An in-memory nn.Module (e.g. inside a training loop); conv models need input_shape (C, H, W),
    recurrent ones time_steps."""
    topology = build.from_module(module, input_shape, time_steps=time_steps, fold_batch_norm=_fold(batchnorm))
    return topology.bind(module.state_dict(), source)


def load_network(path: str | Path, *, arch: str | None = None, input_shape: tuple[int, ...] | None = None,
                 trust_pickle: bool = False, topology: str = "chain", time_steps: int | None = None,
                 batchnorm: str = "fold") -> Network:
    """Read a network file or model directory. The architecture comes from the file (.pt2), from
    `arch` ("package.module:factory") or from a directory's config.json (Hugging Face style);
    a bare state_dict is read by `topology`: "chain" (an MLP, after a recurrent layer unrolled
    over `time_steps` when there is one) or "bipartite" (every Linear layer on its own)."""
    path = Path(path)
    source = str(path)
    check_readable(path)
    fold = _fold(batchnorm)
    build.check_time_steps(time_steps)
    if path.suffix == ".pt2":
        if arch:
            raise NNGraphError(f"{source}: a .pt2 archive carries its own architecture; drop --arch")
        program = load_exported(path, trust_pickle)
        return build.from_exported(program, fold_batch_norm=fold).bind(program.state_dict, source)
    if is_model_directory(path) and not arch:
        module = build_module(path)
        tensors = renamed(module, _sharded_safetensors(path))
        return build.from_module(module, input_shape, time_steps=time_steps, fold_batch_norm=fold).bind(tensors, source)
    import torch

    loaded = _load_tensors_or_module(path, trust_pickle)
    if isinstance(loaded, torch.nn.Module):  # a whole nn.Module, loaded with trust_pickle
        return network_from_module(loaded, input_shape, source, time_steps=time_steps, batchnorm=batchnorm)
    if not isinstance(loaded, Mapping):
        raise NNGraphError(f"{source}: holds a {type(loaded).__name__}, not a state_dict; save "
                           "model.state_dict() (a mapping of names to tensors) instead")
    tensors = _state_dict(loaded, source)
    if arch:
        module = _build_arch(arch, source)
        _check_matches(module, tensors, arch, source)
        topology = build.from_module(module, input_shape, time_steps=time_steps, fold_batch_norm=fold)
        return topology.bind(tensors, source)
    if topology == "bipartite":
        return build.bipartite_from_state_dict(tensors, source).bind(tensors, source)
    return build.from_state_dict(tensors, source, time_steps).bind(tensors, source)


def load_runnable(path: str | Path, *, arch: str | None = None, trust_pickle: bool = False, **_graph_options):
    """The model of a file or model directory with this version's weights, to run on data
    (--data), in eval mode: its code comes from the .pt2 archive (whose mode was fixed when it was
    exported), the directory's config.json or `arch`."""
    path = Path(path)
    source = str(path)
    check_readable(path)
    if path.suffix == ".pt2":
        return load_exported(path, trust_pickle).module()
    if is_model_directory(path) and not arch:
        module = build_module(path)
        _load_weights(module, renamed(module, _sharded_safetensors(path)), source)
        return module.eval()
    import torch

    loaded = _load_tensors_or_module(path, trust_pickle)
    if isinstance(loaded, torch.nn.Module):
        return loaded.eval()
    if not arch:
        raise NNGraphError(f"{source}: --data runs the model, and a state_dict holds no code: give --arch "
                           "package.module:factory, a .pt2 archive or a model directory")
    tensors = _state_dict(loaded, source) if isinstance(loaded, Mapping) else loaded
    module = _build_arch(arch, source)
    _check_matches(module, tensors, arch, source)
    _load_weights(module, tensors, source)
    return module.eval()


def _load_weights(module, tensors: Mapping, source: str) -> None:
    state = module.state_dict()
    missing = [key for key in state if key not in tensors and state[key].is_floating_point()]
    if missing:
        raise NNGraphError(f"{source}: has no tensor {missing[0]!r} for the model; is it a checkpoint of that model?")
    module.load_state_dict({key: tensors[key] for key in state if key in tensors}, strict=False)


def _fold(batchnorm: str) -> bool:
    if batchnorm not in ("fold", "pass-through"):
        raise NNGraphError(f"--batchnorm {batchnorm!r}: expected fold or pass-through")
    return batchnorm == "fold"


def _check_matches(module, tensors: Mapping, arch: str, source: str) -> None:
    """The state_dict must be the module's: same parameter names and shapes."""
    expected = {k: tuple(v.shape) for k, v in module.state_dict().items() if v.is_floating_point()}
    missing = [k for k in expected if k not in tensors]
    if missing:
        raise NNGraphError(f"{source}: does not match the module from --arch {arch}: it has no {missing[0]!r} "
                           f"({len(missing)} of its {len(expected)} tensors missing); is it a checkpoint of that model?")
    for key, shape in expected.items():
        if tuple(tensors[key].shape) != shape:
            raise NNGraphError(f"{source}: does not match the module from --arch {arch}: {key!r} has shape "
                               f"{tuple(tensors[key].shape)}, the module's has {shape}")


def check_readable(path: Path) -> None:
    """A model path must be a regular file or a directory: never a FIFO, socket or device."""
    import stat

    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise NNGraphError(f"{path}: no such file or directory") from None
    except OSError as exc:
        raise NNGraphError(f"{path}: cannot read it ({exc.strerror})") from None
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise NNGraphError(f"{path}: not a regular file (a FIFO, socket or device); give a model file")


def _load_tensors_or_module(path: Path, trust_pickle: bool):
    if path.is_dir():
        return _sharded_safetensors(path)
    if path.suffix == ".safetensors":
        return _safetensors_file(path)
    import torch

    check_expansion(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        message = str(exc)
        if "Weights only load failed" not in message:
            raise NNGraphError(f"{path}: not a readable PyTorch file ({_why_unreadable(path, exc)}); "
                               "is the file truncated or corrupt?") from None
        if not trust_pickle:
            raise NNGraphError(f"{path}: the file holds pickled Python objects (such as a whole "
                               "nn.Module), and loading them runs code from the file. Save a "
                               "state_dict or a .pt2 instead, or pass --trust-pickle if you trust "
                               "where the file came from") from None
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise NNGraphError(f"{path}: could not unpickle the file ({first_line(exc)})") from None


def _why_unreadable(path: Path, exc: Exception) -> str:
    """torch.load's error on bytes that are no checkpoint at all is bare (`KeyError: 101`): say
    what the file's first bytes are not instead."""
    with path.open("rb") as file:
        head = file.read(2)
    if head != b"PK" and head[:1] != b"\x80":  # torch.save writes a zip, or (legacy) a pickle
        return "neither torch.save's zip format nor a pickle"
    return first_line(exc)


def _state_dict(loaded: Mapping, source: str) -> Mapping:
    """The tensors of a state_dict, unwrapping checkpoint dicts and DataParallel prefixes."""
    import torch

    for key in CHECKPOINT_KEYS:
        inner = loaded.get(key) if hasattr(loaded, "get") else None
        if isinstance(inner, Mapping) and any(isinstance(v, torch.Tensor) for v in inner.values()):
            loaded = inner
            break
        if isinstance(inner, torch.nn.Module):
            loaded = inner.state_dict()
            break
    if isinstance(loaded, _LazyTensors):
        return loaded
    tensors = {k: v for k, v in loaded.items() if isinstance(v, torch.Tensor)}
    odd_keys = [k for k in tensors if not isinstance(k, str)]
    if odd_keys:
        raise NNGraphError(f"{source}: state_dict key {odd_keys[0]!r} is a {type(odd_keys[0]).__name__}; "
                           "a state_dict maps parameter names (strings) to tensors")
    if not tensors:
        raise NNGraphError(f"{source}: holds no tensors (keys: {', '.join(map(str, list(loaded)[:5]))}); "
                           "expected a state_dict or a checkpoint with one under "
                           + " / ".join(repr(k) for k in CHECKPOINT_KEYS))
    if all(k.startswith("module.") for k in tensors):
        tensors = {k[len("module."):]: v for k, v in tensors.items()}
    return tensors


def _build_arch(arch: str, source: str):
    import torch

    module_name, _, factory_name = arch.partition(":")
    if not module_name or not factory_name:
        raise NNGraphError(f"--arch {arch!r}: expected package.module:factory")
    try:
        factory = getattr(importlib.import_module(module_name), factory_name)
    except (ImportError, AttributeError) as exc:
        raise NNGraphError(f"--arch {arch!r}: cannot import it ({first_line(exc)}); "
                           "is its package on PYTHONPATH?") from None
    if not callable(factory):
        raise NNGraphError(f"--arch {arch!r} is a {type(factory).__name__}, not a function that builds the model")
    try:
        module = factory()
    except Exception as exc:  # the user's code: whatever it raises is reported in one line
        raise NNGraphError(f"--arch {arch!r} failed when called with no arguments: {type(exc).__name__}: "
                           f"{first_line(exc)}; give a factory that builds the model on its own") from None
    if not isinstance(module, torch.nn.Module):
        raise NNGraphError(f"--arch {arch!r} returned {type(module).__name__}, not an nn.Module")
    return module


class _LazyTensors(Mapping):
    """key -> tensor over one or more safetensors files, read on first access."""

    def __init__(self, key_to_file: dict[str, Path]):
        self._files = key_to_file
        self._handles = {}

    def __getitem__(self, key):
        from safetensors import safe_open

        path = self._files[key]
        if path not in self._handles:
            self._handles[path] = safe_open(str(path), framework="pt", device="cpu")
        return self._handles[path].get_tensor(key)

    def __iter__(self):
        return iter(self._files)

    def __len__(self):
        return len(self._files)


def _safetensors_file(path: Path) -> _LazyTensors:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            keys = list(handle.keys())
    except Exception as exc:
        raise NNGraphError(f"{path}: not a readable safetensors file ({first_line(exc)}); "
                           "is the file truncated or corrupt?") from None
    return _LazyTensors({key: path for key in keys})


def _sharded_safetensors(directory: Path) -> _LazyTensors:
    index = directory / SAFETENSORS_INDEX
    if index.exists():
        try:
            weight_map = json.loads(index.read_text())["weight_map"]
        except (ValueError, KeyError) as exc:
            raise NNGraphError(f"{index}: not a safetensors index ({first_line(exc)})") from None
        if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
            raise NNGraphError(f"{index}: not a safetensors index (weight_map must map names to file names)")
        files = {name: directory / name for name in set(weight_map.values())}
        for name, file in files.items():
            if Path(name).name != name:
                raise NNGraphError(f"{index}: shard {name!r} is outside the model directory")
            if not file.is_file():
                raise NNGraphError(f"{index}: names shard {name!r}, which is missing from {directory}")
            check_readable(file)
        return _LazyTensors({key: files[name] for key, name in weight_map.items()})
    shards = sorted(directory.glob("*.safetensors"))
    if not shards:
        raise NNGraphError(f"{directory}: a directory with no safetensors shards; give a model file")
    key_to_file = {}
    for shard in shards:
        key_to_file.update(dict.fromkeys(_safetensors_file(shard), shard))
    return _LazyTensors(key_to_file)


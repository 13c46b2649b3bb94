"""The inputs data-dependent metrics are measured on (METRICS.md section 6).

`--data` names them: a tensor file (.pt read with weights_only, .npy without pickles,
.safetensors), `package.module:factory` returning a tensor, a Dataset or a DataLoader, or
the digits bundled with scikit-learn (`digits`: the training split, `digits-test`: the test
split). `--samples N` of them are drawn with `--seed`; the same data, count and seed give the
same inputs, and their hash is recorded with the version, so versions measured on different
inputs are never compared by mistake.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
from dataclasses import dataclass
from pathlib import Path

from nngraph.errors import NNGraphError, first_line

DIGITS = ("digits", "digits-test")


@dataclass(frozen=True)
class Inputs:
    """N inputs (a tensor, the first dimension the sample) and where they came from."""

    tensor: object
    source: str
    seed: int

    @property
    def count(self) -> int:
        return int(self.tensor.shape[0])

    @functools.cached_property
    def digest(self) -> str:
        """A hash of the inputs' values, dtype and shape: equal hashes, equal inputs."""
        import torch

        data = self.tensor.contiguous()
        hasher = hashlib.sha256(f"{data.dtype} {tuple(data.shape)}".encode())
        hasher.update(data.view(-1).view(torch.uint8).numpy())
        return hasher.hexdigest()[:16]

    def record(self) -> dict:
        return {"source": self.source, "samples": self.count, "seed": self.seed, "hash": self.digest}


def load_inputs(data, samples: int | None = None, seed: int = 0) -> Inputs:
    """`data`: a path or name as `--data` takes it, a tensor, a Dataset or a DataLoader."""
    import torch

    if samples is not None and (isinstance(samples, bool) or not isinstance(samples, int) or samples < 1):
        raise NNGraphError(f"--samples {samples!r}: give a whole number of samples, 1 or more")
    source = data if isinstance(data, (str, Path)) else f"<{type(data).__name__}>"
    loaded = _load(str(data)) if isinstance(data, (str, Path)) else data
    tensor = _as_tensor(loaded, samples, seed, str(source))
    if tensor.shape[0] == 0:
        raise NNGraphError(f"--data {source}: holds no samples; give a data set with at least one input")
    if samples is not None and samples > tensor.shape[0]:
        raise NNGraphError(f"--samples {samples}: the data {source} holds only {tensor.shape[0]} samples; "
                           f"ask for at most {tensor.shape[0]}")
    if samples is not None and samples < tensor.shape[0]:
        order = torch.randperm(tensor.shape[0], generator=torch.Generator().manual_seed(seed))[:samples]
        tensor = tensor[order.sort().values]
    if tensor.is_floating_point() and not torch.isfinite(tensor).all():
        raise NNGraphError(f"--data {source}: the inputs hold NaN or infinite values")
    return Inputs(tensor.contiguous(), str(source), seed)


def _load(name: str):
    if name in DIGITS:
        from nngraph import digits

        split = digits.load()
        return split.train_x if name == "digits" else split.test_x
    path = Path(name)
    if ":" in name and not path.exists():
        return _factory(name)
    if not path.is_file():
        raise NNGraphError(f"--data {name}: no such file; give a .pt, .npy or .safetensors file of inputs, "
                           f"package.module:factory, or one of {', '.join(DIGITS)}")
    return _tensor_file(path)


def _tensor_file(path: Path):
    import numpy as np
    import torch

    try:
        if path.suffix == ".npy":
            return torch.from_numpy(np.load(path, allow_pickle=False))
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return _one_tensor(load_file(path), path)
        if path.suffix in (".pt", ".pth"):
            return _one_tensor(torch.load(path, map_location="cpu", weights_only=True), path)
    except NNGraphError:
        raise
    except Exception as exc:  # a corrupt file, a pickle with objects: one line, no traceback
        raise NNGraphError(f"--data {path}: cannot read it as a tensor ({first_line(exc)})") from None
    raise NNGraphError(f"--data {path}: expected a .pt, .npy or .safetensors file of inputs")


def _one_tensor(loaded, path: Path):
    import torch

    if isinstance(loaded, torch.Tensor):
        return loaded
    tensors = [v for v in loaded.values() if isinstance(v, torch.Tensor)] if isinstance(loaded, dict) else []
    if len(tensors) == 1:
        return tensors[0]
    if isinstance(loaded, dict) and isinstance(loaded.get("inputs"), torch.Tensor):
        return loaded["inputs"]
    raise NNGraphError(f"--data {path}: expected one tensor of inputs (or a mapping with an 'inputs' tensor), "
                       f"found {type(loaded).__name__}")


def _factory(spec: str):
    module_name, _, attribute = spec.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attribute)
    except Exception as exc:  # ImportError, AttributeError, or whatever the user's module raises on import
        raise NNGraphError(f"--data {spec}: cannot import it ({type(exc).__name__}: {first_line(exc)}); "
                           "check the package.module:factory name and that it is importable") from None
    try:
        return factory() if callable(factory) else factory
    except Exception as exc:
        raise NNGraphError(f"--data {spec}: the factory raised {type(exc).__name__}: {first_line(exc)}") from None


def _as_tensor(loaded, samples: int | None, seed: int, source: str):
    """A tensor of inputs from a tensor, a Dataset (indexable, items x or (x, label, ...)) or any
    iterable of batches (a DataLoader: its first batches, in its own order)."""
    import torch

    if isinstance(loaded, torch.Tensor):
        return loaded
    first = lambda item: item[0] if isinstance(item, (tuple, list)) else item  # noqa: E731
    try:
        if hasattr(loaded, "__getitem__") and hasattr(loaded, "__len__"):
            size = len(loaded)
            chosen = range(size)
            if samples is not None and samples < size:
                order = torch.randperm(size, generator=torch.Generator().manual_seed(seed))[:samples]
                chosen = order.sort().values.tolist()
            return torch.stack([torch.as_tensor(first(loaded[i])) for i in chosen])
        if hasattr(loaded, "__iter__"):
            batches, count = [], 0
            for batch in loaded:
                batches.append(torch.as_tensor(first(batch)))
                count += batches[-1].shape[0]
                if samples is not None and count >= samples:
                    break
            return torch.cat(batches)[:samples] if batches else torch.zeros(0)
    except NNGraphError:
        raise
    except Exception as exc:
        raise NNGraphError(f"--data {source}: cannot read inputs from it ({type(exc).__name__}: "
                           f"{first_line(exc)})") from None
    raise NNGraphError(f"--data {source}: gives a {type(loaded).__name__}; expected a tensor, a Dataset or a "
                       "DataLoader of inputs")

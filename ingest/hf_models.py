"""Hugging Face-style model directories: config.json beside safetensors weights.

The module is built offline from its config with `transformers` (when installed; never with
remote code), its forward pass traced on a few token ids, and the weights read from the
directory's safetensors files (no pickle). Checkpoints saved with or without the base model's
prefix (`bert.`...) both bind, and so do checkpoints whose stored names transformers renames
when it loads them (transformers 5 names ViT's `encoder.layer.0.attention.attention.query`
`layers.0.attention.q_proj`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from nngraph.errors import NNGraphError, first_line

CONFIG = "config.json"


def is_model_directory(path: Path) -> bool:
    return path.is_dir() and (path / CONFIG).is_file()


def build_module(directory: Path):
    """The nn.Module that config.json describes, with freshly initialised weights."""
    try:
        import transformers
    except ImportError:
        raise NNGraphError(f"{directory}: a Hugging Face model directory ({CONFIG}); reading its architecture "
                           "needs the transformers package: pip install transformers") from None
    try:
        config_json = json.loads((directory / CONFIG).read_text())
    except (OSError, ValueError) as exc:
        raise NNGraphError(f"{directory / CONFIG}: not a readable model config ({first_line(exc)})") from None
    names = config_json.get("architectures") or []
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise NNGraphError(f"{directory / CONFIG}: 'architectures' must be a list of class names")
    cls = getattr(transformers, names[0], None) if names else transformers.AutoModel
    if cls is None:
        raise NNGraphError(f"{directory / CONFIG}: names the architecture {names[0]}, which transformers "
                           f"{transformers.__version__} does not have; install a transformers that has it")
    try:
        config = transformers.AutoConfig.from_pretrained(str(directory), local_files_only=True)
        kwargs = {"attn_implementation": "sdpa"} if getattr(cls, "_supports_sdpa", False) else {}
        if cls is transformers.AutoModel:
            return cls.from_config(config, **kwargs)
        return cls._from_config(config, **kwargs)
    except Exception as exc:  # transformers raises many types for a config it cannot build
        raise NNGraphError(f"{directory / CONFIG}: transformers cannot build this model ({type(exc).__name__}: "
                           f"{first_line(exc)})") from None


class Renamed(Mapping):
    """The module's parameter names over a checkpoint's tensors, which may carry (or lack) the
    base model's prefix or be renamed (`stored`: name -> stored key, as transformers loads them)."""

    def __init__(self, tensors: Mapping, names: list[str], prefix: str, stored: dict[str, str]):
        self._tensors = tensors
        self._keys = dict(stored)
        for name in names:
            if name in self._keys:
                continue
            for candidate in (name, f"{prefix}.{name}", name.removeprefix(f"{prefix}.")):
                if candidate in tensors:
                    self._keys[name] = candidate
                    break

    def __getitem__(self, key):
        return self._tensors[self._keys[key]]

    def __iter__(self):
        return iter(self._keys)

    def __len__(self):
        return len(self._keys)


def renamed(module, tensors: Mapping) -> Renamed:
    parameters = module.state_dict(keep_vars=True)
    names = list(parameters)
    mapping = Renamed(tensors, names, getattr(module, "base_model_prefix", "") or "",
                      _stored_names(module, tensors, parameters))
    shared = {}  # tied weights (an LM head that reuses the embedding) are stored once
    for name, tensor in parameters.items():
        shared.setdefault(tensor.data_ptr(), []).append(name)
    for group in shared.values():
        stored = [mapping._keys[n] for n in group if n in mapping._keys]
        for name in group:
            if stored and name not in mapping._keys:
                mapping._keys[name] = stored[0]
    if not len(mapping):
        raise NNGraphError(f"none of the weights match the model that {CONFIG} describes (e.g. {names[0]}); "
                           "is this the directory of that model?")
    return mapping


def _stored_names(module, tensors: Mapping, parameters: Mapping) -> dict[str, str]:
    """Parameter name (a key of `parameters`, the module's state_dict) -> stored key, for the keys
    transformers (5 and later) renames when it loads a checkpoint; {} before that. Its own rules
    are used, since they change with each release. A parameter that transformers makes by
    converting stored tensors (merged experts, permuted rotary rows) cannot be read as stored:
    refused."""
    try:
        from transformers.conversion_mapping import get_model_conversion_mapping
        from transformers.core_model_loading import WeightConverter, rename_source_key
    except ImportError:  # transformers 4: checkpoints keep the module's names
        return {}
    transforms = get_model_conversion_mapping(module)
    if not transforms:
        return {}
    converters = [t for t in transforms if isinstance(t, WeightConverter)]
    renamings = [t for t in transforms if not isinstance(t, WeightConverter)]
    stored = {}
    for key in tensors:
        name, converted_by = rename_source_key(key, renamings, converters, module.base_model_prefix, parameters)
        if converted_by is not None and name in parameters:
            raise NNGraphError(f"{key}: transformers converts this stored tensor into {name} when it loads the model "
                               "(not a plain rename); nngraph reads tensors as stored and cannot read this model")
        if name in parameters and name != key:
            stored.setdefault(name, key)
    return stored

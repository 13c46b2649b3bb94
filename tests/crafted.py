"""Crafted model files, as an attacker or an unlucky user would make them.

Each payload, if unpickled, creates a marker directory: a test asserts it never appears.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import zipfile
from pathlib import Path

import torch

PT2_CRAFTS = ("pickled_weight", "pickled_constant", "opaque_constant", "custom_object", "sample_inputs",
              "aoti_library", "overlapping_strides", "zip_bomb")


class RunsCode:
    """Unpickling this calls os.mkdir(marker): proof that code from the file ran."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return os.mkdir, (self.marker,)


def pickled(marker: Path) -> bytes:
    buffer = io.BytesIO()
    torch.save(RunsCode(marker), buffer)
    return buffer.getvalue()


def plain_pt2(path: Path) -> Path:
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
    torch.export.save(torch.export.export(model, (torch.randn(1, 4),)), str(path))
    return path


def crafted_pt2(path: Path, craft: str, marker: Path) -> Path:
    """A valid small .pt2 rewritten so that loading it the trusting way runs code (or allocates far)."""
    source = plain_pt2(path.with_suffix(".plain.pt2"))
    with zipfile.ZipFile(source) as archive:
        files = {info.filename: archive.read(info) for info in archive.infolist()}
    root = next(name for name in files if name.endswith("archive_format")).rsplit("/", 1)[0] + "/"
    weights_config = root + "data/weights/model_weights_config.json"
    constants_config = root + "data/constants/model_constants_config.json"
    weights = json.loads(files[weights_config])
    constants = json.loads(files[constants_config])
    compression = {}
    if craft == "pickled_weight":
        weights["config"]["0.weight"]["use_pickle"] = True
        files[root + "data/weights/" + weights["config"]["0.weight"]["path_name"]] = pickled(marker)
    elif craft in ("pickled_constant", "opaque_constant", "custom_object"):
        name = {"pickled_constant": "tensor_0", "opaque_constant": "opaque_obj_0",
                "custom_object": "custom_obj_0"}[craft]
        meta = dict(weights["config"]["0.bias"], path_name=name, use_pickle=True)
        constants["config"]["evil"] = meta
        payload = pickle.dumps(RunsCode(marker)) if craft == "opaque_constant" else pickled(marker)
        files[root + "data/constants/" + name] = payload
    elif craft == "sample_inputs":
        files[root + "data/sample_inputs/model.pt"] = pickled(marker)
    elif craft == "aoti_library":
        files[root + "data/aotinductor/model/model.so"] = b"\x7fELF not really a library"
    elif craft == "overlapping_strides":
        meta = weights["config"]["0.weight"]["tensor_meta"]
        meta["sizes"] = [{"as_int": 100_000}, {"as_int": 100_000}]
        meta["strides"] = [{"as_int": 0}, {"as_int": 0}]
    elif craft == "zip_bomb":
        files[root + "extra/padding"] = bytes(512 << 20)
        compression[root + "extra/padding"] = zipfile.ZIP_DEFLATED
    else:
        raise ValueError(craft)
    files[weights_config] = json.dumps(weights).encode()
    files[constants_config] = json.dumps(constants).encode()
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data, compress_type=compression.get(name, zipfile.ZIP_STORED))
    source.unlink()
    return path


def overlapping_pt(path: Path) -> Path:
    """A tiny .pt whose one weight views 4 stored floats (strides 0) as a 100,000 x 100,000 matrix (40 GB as floats)."""
    huge = torch.as_strided(torch.zeros(4), (100_000, 100_000), (0, 0))
    torch.save({"0.weight": huge}, path)
    return path

"""Read a torch.export archive (.pt2) without running code from it.

torch.export.load unpickles in several places: weights and constants saved with
use_pickle, torchbind and opaque objects, a weights_only=False fallback for sample inputs,
and the pre-2.7 layout; and it loads AOTInductor shared libraries shipped in the archive.
Each of these runs code from the file. Unless the user trusts it, the archive is checked
first (no compiled libraries, bounded expansion) and torch reads it with every unpickling
entry point replaced by a refusal, so a crafted archive stops with the reason instead.
torch.load with weights_only=True stays allowed: its unpickler builds tensors and plain
containers only and runs nothing from the file.
"""

from __future__ import annotations

import contextlib
import logging
import zipfile
from pathlib import Path

from nngraph.errors import NNGraphError, first_line

AOTI_DIR = "data/aotinductor/"
MAX_EXPANSION = 64  # uncompressed bytes per archive byte: torch stores tensors uncompressed
MIN_BUDGET = 64 << 20  # small archives may still hold a 64 MiB graph description


class PickleRefused(Exception):
    """Raised inside torch's loader where it would unpickle; deliberately not a RuntimeError,
    which torch.export.load catches to try the old layout."""


def load_exported(path: Path, trust_pickle: bool = False):
    """The ExportedProgram of a .pt2 file; refuses pickled content unless trust_pickle."""
    import torch

    if not trust_pickle:
        _check_archive(path)
    try:
        with _quiet_torch_logs(), (contextlib.nullcontext() if trust_pickle else _no_unpickling()):
            return torch.export.load(str(path))
    except PickleRefused as refused:
        raise NNGraphError(f"{path}: the archive holds pickled Python objects ({refused}), and loading them "
                           "runs code from the file. Export it again with plain tensors, or pass "
                           "--trust-pickle if you trust where the file came from") from None
    except Exception as exc:  # zip, schema and deserialisation errors all mean "not a readable archive"
        raise NNGraphError(f"{path}: not a readable torch.export archive ({first_line(exc)}); "
                           "is the file truncated or corrupt?") from None


def _check_archive(path: Path) -> None:
    try:
        with zipfile.ZipFile(path) as archive:
            entries = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError) as exc:  # a damaged version field
        raise NNGraphError(f"{path}: not a readable torch.export archive ({first_line(exc)}); "
                           "is the file truncated or corrupt?") from None
    compiled = [e.filename for e in entries if AOTI_DIR in e.filename]
    if compiled:
        raise NNGraphError(f"{path}: the archive ships AOTInductor compiled code ({compiled[0]}), which loading "
                           "would run. Pass --trust-pickle if you trust where the file came from")
    _check_sizes(path, entries)


def check_expansion(path: Path) -> None:
    """A zip file (torch.save's format too) may not expand far beyond its size on disk."""
    try:
        with zipfile.ZipFile(path) as archive:
            entries = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError):
        return  # not a zip: the legacy format, or damaged; torch.load says which
    _check_sizes(path, entries)


def _check_sizes(path: Path, entries) -> None:
    on_disk = path.stat().st_size
    expanded = sum(e.file_size for e in entries)
    if expanded > max(MAX_EXPANSION * on_disk, MIN_BUDGET):
        raise NNGraphError(f"{path}: the archive claims {expanded:,} bytes uncompressed from "
                           f"{on_disk:,} on disk; refusing a file that expands this far")


@contextlib.contextmanager
def _no_unpickling():
    """Replace every unpickling entry point torch.export.load reaches with a refusal (the pickle
    module itself is untouched: only the loader's reference to it is swapped)."""
    import torch
    from torch.export.pt2_archive import _package

    real_load = torch.load

    def weights_only_load(*args, **kwargs):
        if kwargs.get("weights_only") is False:
            raise PickleRefused("an object torch loads with weights_only=False")
        kwargs["weights_only"] = True
        return real_load(*args, **kwargs)

    def refuse(what):
        def refused(*args, **kwargs):
            raise PickleRefused(what)
        return refused

    class NoPickle:
        loads = staticmethod(refuse("an opaque object"))
        load = staticmethod(refuse("an opaque object"))
        Unpickler = staticmethod(refuse("an opaque object"))

    patches = [(torch, "load", weights_only_load), (_package, "pickle", NoPickle),
               (torch._C, "_pickle_load_obj", refuse("a TorchScript custom object"))]
    saved = [(owner, name, getattr(owner, name)) for owner, name, _ in patches]
    try:
        for owner, name, value in patches:
            setattr(owner, name, value)
        yield
    finally:
        for owner, name, value in saved:
            setattr(owner, name, value)


@contextlib.contextmanager
def _quiet_torch_logs():
    """torch.export logs its own tracebacks before raising; the user gets one line from nngraph instead."""
    loggers = [logging.getLogger(name) for name in ("torch.export", "torch._export", "torch.export.pt2_archive")]
    levels = [log.level for log in loggers]
    try:
        for log in loggers:
            log.setLevel(logging.CRITICAL + 1)
        yield
    finally:
        for log, level in zip(loggers, levels):
            log.setLevel(level)


"""The installed package holds every file the repository's packages need at run time.

An installed nngraph reads its Cypher files, web templates and Maven pom as package data. A
folder setuptools does not list as a package is shipped today only with a warning that a later
setuptools will drop it (the web templates were such a folder): so every folder under a package
root must be a listed package, and every file in it that is not Python must match its package
data.
"""

from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]


def _setuptools() -> dict:
    return tomllib.loads((REPOSITORY / "pyproject.toml").read_text())["tool"]["setuptools"]


def _package_folders(config: dict) -> dict[str, Path]:
    """Every folder holding files under each listed package root, by its package name."""
    found = {}
    for root_name, root in config["package-dir"].items():
        for folder in [REPOSITORY / root, *(REPOSITORY / root).rglob("*")]:
            if folder.is_dir() and folder.name != "__pycache__" and any(p.is_file() for p in folder.iterdir()):
                relative = folder.relative_to(REPOSITORY / root).parts
                found[".".join((root_name, *relative))] = folder
    return found


def test_every_folder_under_a_package_root_is_a_listed_package():
    config = _setuptools()
    unlisted = sorted(set(_package_folders(config)) - set(config["packages"]))
    assert not unlisted, f"list these in [tool.setuptools] packages of pyproject.toml: {unlisted}"


def test_every_data_file_matches_its_package_data():
    config = _setuptools()
    patterns = config["package-data"]
    folders = _package_folders(config)
    missed = []
    for name, folder in folders.items():
        for path in folder.iterdir():
            if path.is_file() and path.suffix not in (".py", ".pyc"):
                if not any(fnmatch.fnmatch(path.name, p) for p in patterns.get(name, ())):
                    missed.append(str(path.relative_to(REPOSITORY)))
    assert not missed, f"add these to [tool.setuptools.package-data]: {missed}"
    # the run-time data this checks is there at all
    assert list(folders["nngraph.web.templates"].glob("*.html"))
    assert (folders["nngraph.maven"] / "pom.xml").is_file()
    assert list(folders["nngraph.queries"].glob("*.cypher"))

"""Cypher files shipped as package data (nngraph.queries); see load()."""

from importlib import resources


def load(name: str) -> str:
    """The text of queries/NAME.cypher."""
    return resources.files(__name__).joinpath(f"{name}.cypher").read_text()


def statements(name: str) -> list[str]:
    """The statements of a file of several, separated by semicolons, comment lines removed."""
    lines = [line for line in load(name).splitlines() if not line.lstrip().startswith("//")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]

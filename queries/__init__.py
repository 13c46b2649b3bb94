"""Cypher files shipped as package data (nngraph.queries).

A canned query is a file whose header comment lines give its `name`, `description` and
`parameters` (datasette's canned queries are the model); `nngraph query --list` lists
them, `nngraph query --name NAME -p key=value` runs one, and the reports read through them.
"""

from importlib import resources


def load(name: str) -> str:
    """The text of queries/NAME.cypher."""
    return resources.files(__name__).joinpath(f"{name}.cypher").read_text()


def statements(name: str) -> list[str]:
    """The statements of a file of several, separated by semicolons, comment lines removed."""
    lines = [line for line in load(name).splitlines() if not line.lstrip().startswith("//")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


def canned() -> dict[str, dict]:
    """name -> {name, description, parameters, file, text} for every file with a `// name:` header."""
    found = {}
    for path in sorted(resources.files(__name__).iterdir(), key=lambda p: p.name):
        if not path.name.endswith(".cypher"):
            continue
        text = path.read_text()
        header = {}
        for line in text.splitlines():
            if not line.startswith("//"):
                break
            key, _, value = line[2:].partition(":")
            header[key.strip()] = value.strip()
        if "name" in header:
            found[header["name"]] = {"name": header["name"], "description": header.get("description", ""),
                                     "parameters": header.get("parameters", ""), "file": path.name, "text": text}
    return found


def unknown_model(store, model: str):
    """The error for a model that is not stored, naming the stored models nearest to it."""
    from nngraph.errors import NNGraphError, closest

    names = [row["model"] for row in store.read(load("models"))]
    if model in names:  # a Model node whose versions were all deleted or never completed
        return NNGraphError(f"model {model!r} has no complete version stored: ingest one, or `nngraph versions --model "
                            f"{model}` to see what is there")
    return NNGraphError(f"no model {model!r} is stored{closest(model, names)}; `nngraph models` lists them")


PARAMETER = r"(\w+) \((string or null|string|tag|integer|number)(?:: ([^)]*))?\)"
KINDS = {"string": str, "tag": str, "string or null": str, "integer": int, "number": float}


def parameters_of(query: dict) -> list[dict]:
    """The typed parameters of a canned query's header: `name (type[: what it is])`, type one of
    string, tag, integer, number, 'string or null'."""
    import re

    return [{"name": name, "type": kind, "about": about or ""}
            for name, kind, about in re.findall(PARAMETER, query["parameters"])]


def typed_value(parameter: dict, text: str):
    """A parameter's value from text (a form field), or ValueError naming the type expected."""
    if parameter["type"] == "string or null" and text == "":
        return None
    try:
        return KINDS[parameter["type"]](text)
    except ValueError:
        raise ValueError(f"{parameter['name']}: expected {'an' if parameter['type'] == 'integer' else 'a'} "
                         f"{parameter['type']}, got {text!r}") from None


def canned_text(name: str) -> str:
    from nngraph.errors import NNGraphError

    queries = canned()
    if name not in queries:
        raise NNGraphError(f"no canned query {name!r}; `nngraph query --list` lists them: {', '.join(queries)}")
    return queries[name]["text"]


MAX_QUERY_FILE = 1 << 20  # a Cypher query is text; a bigger file is a mistake


def read_query_file(path: str) -> str:
    """A user's query file: a regular file of UTF-8 text, at most 1 MiB (never a FIFO or device)."""
    import stat
    from pathlib import Path

    from nngraph.errors import NNGraphError

    try:
        info = Path(path).stat()
        if not stat.S_ISREG(info.st_mode):
            raise NNGraphError(f"{path}: not a regular file; give a file holding a Cypher query")
        if info.st_size > MAX_QUERY_FILE:
            raise NNGraphError(f"{path}: {info.st_size:,} bytes is not a Cypher query (at most 1 MiB)")
        return Path(path).read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise NNGraphError(f"{path}: not UTF-8 text (byte {exc.start}); give a file holding a Cypher query") from None
    except OSError as exc:
        raise NNGraphError(f"{path}: cannot read it ({exc.strerror})") from None

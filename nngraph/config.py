"""Which database to talk to: flags, then NEO4J_* variables, then a config file, else local.

The config file is NNGRAPH_HOME/config.toml (NNGRAPH_HOME defaults to the user's data
directory), with a [connection] table holding any of uri, user, password, database, a
[limits] table (query_timeout, in seconds) and a [server] table (kind: which managed
server runs when no URI is given).
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass

from nngraph.errors import NNGraphError
from nngraph.managed import nngraph_home

ENVIRONMENT = {"uri": "NEO4J_URI", "user": "NEO4J_USERNAME", "password": "NEO4J_PASSWORD",
               "database": "NEO4J_DATABASE"}
TABLES = {"connection": tuple(ENVIRONMENT), "limits": ("query_timeout",), "server": ("kind",)}


@dataclass
class Connection:
    uri: str | None = None  # None: the local default server
    user: str | None = None
    password: str | None = None
    database: str | None = None

    @property
    def local(self) -> bool:
        return self.uri is None


def resolve_connection(**flags) -> Connection:
    values = _config_file()
    values.update({key: os.environ[name] for key, name in ENVIRONMENT.items() if os.environ.get(name)})
    values.update({key: value for key, value in flags.items() if value is not None})
    if "uri" not in values and set(values) - {"database"}:
        raise NNGraphError("a user, password or database was given without a URI: give --uri "
                           "(or NEO4J_URI) too, or none of them for the local database")
    return Connection(**{key: values.get(key) for key in ENVIRONMENT})


def setting(table: str, key: str):
    """One value of the config file (None when absent): [limits] query_timeout, [server] kind."""
    return _tables().get(table, {}).get(key)


def _tables() -> dict:
    path = nngraph_home() / "config.toml"
    if not path.is_file():
        return {}
    try:
        tables = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise NNGraphError(f"{path}: not a readable config file ({exc})") from None
    unknown = set(tables) - set(TABLES)
    if unknown or not all(isinstance(tables[name], dict) for name in tables):
        raise NNGraphError(f"{path}: unknown tables {sorted(unknown)}; expected {sorted(TABLES)}")
    for name, keys in TABLES.items():
        extra = set(tables.get(name, {})) - set(keys)
        if extra:
            raise NNGraphError(f"{path}: unknown keys {sorted(extra)} in [{name}]; expected {sorted(keys)}")
    return tables


def _config_file() -> dict:
    return dict(_tables().get("connection", {}))


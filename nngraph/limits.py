"""Bounds on the work one command can ask for, and on the names it stores.

Every query runs under a timeout (seconds: NNGRAPH_QUERY_TIMEOUT, else `query_timeout` in
the [limits] table of the config file, else 300); names, tags and metric keys have length
limits; integers must fit the database's 64 bits.
"""

from __future__ import annotations

import os
import re

from nngraph.errors import NNGraphError

DEFAULT_QUERY_TIMEOUT = 300.0
MAX_NAME = 200  # model names and version tags
METRIC_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
INT64 = (-(2 ** 63), 2 ** 63 - 1)


def query_timeout() -> float:
    from nngraph.config import setting

    raw = os.environ.get("NNGRAPH_QUERY_TIMEOUT") or setting("limits", "query_timeout")
    if raw is None:
        return DEFAULT_QUERY_TIMEOUT
    try:
        value = float(raw)
    except (TypeError, ValueError):
        value = -1.0
    if not 0 < value <= 7 * 24 * 3600:
        raise NNGraphError(f"query timeout {raw!r}: expected a number of seconds, more than 0 and at most a week "
                           "(NNGRAPH_QUERY_TIMEOUT, or query_timeout in [limits] of the config file)")
    return value


def check_name(value: str, what: str) -> str:
    """A model name or version tag: 1 to MAX_NAME characters, no control characters."""
    if not value or len(value) > MAX_NAME or any(ord(c) < 32 or ord(c) == 127 for c in value):
        shown = value if len(value) <= 40 else value[:40] + "..."
        raise NNGraphError(f"{what} {shown!r}: expected 1 to {MAX_NAME} characters without control characters "
                           f"(it has {len(value)})")
    return value


def check_metric_key(key: str) -> str:
    if not isinstance(key, str) or not METRIC_KEY.fullmatch(key):
        shown = str(key) if len(str(key)) <= 40 else str(key)[:40] + "..."
        raise NNGraphError(f"metric key {shown!r}: expected a letter or _ then up to 63 letters, digits or _ "
                           "(it becomes the property metric_<key>)")
    return key


def check_int64(value: int, what: str) -> int:
    if not INT64[0] <= value <= INT64[1]:
        raise NNGraphError(f"{what} {value}: out of range; the database stores integers from -2^63 to 2^63-1")
    return value

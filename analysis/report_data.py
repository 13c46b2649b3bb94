"""What the reports read: layer rows of a model's versions and per-neuron values, through the
canned queries (queries/version-layers, queries/neuron-values), never the links."""

from __future__ import annotations

import fnmatch

import numpy as np
import pandas as pd

from nngraph.errors import NNGraphError, closest
from nngraph.queries import canned_text, unknown_model


def version_layers(store, model: str) -> pd.DataFrame:
    rows = store.read(canned_text("version-layers"), {"model": model})
    if not rows:
        raise unknown_model(store, model)
    frame = pd.DataFrame(rows)
    metrics = sorted({k for p in frame["version_properties"] for k in p if k.startswith("metric_")})
    for key in [*metrics, *DATA_KEYS]:
        frame[key] = [p.get(key) for p in frame["version_properties"]]
    return frame.drop(columns="version_properties")


DATA_KEYS = ("data_source", "data_samples", "data_seed", "data_hash")  # the inputs of a version's NS and NA


def metric_columns(frame: pd.DataFrame) -> list[str]:
    """The stored metrics that are numbers (a text metric, such as an optimizer's name, cannot be plotted)."""
    return [c for c in frame.columns if c.startswith("metric_") and _numeric(frame[c])]


def _numeric(column: pd.Series) -> bool:
    present = column.dropna()
    return bool(len(present)) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present)


def select_versions(frame: pd.DataFrame, versions: str | None = None, step_range: str | None = None) -> pd.DataFrame:
    """Rows of the chosen versions: `A..B` (inclusive, in step order), `A,B,...`, a pattern like
    `s0-*` (shell-style, on the tags), or steps `FIRST:LAST`."""
    order = list(dict.fromkeys(frame["version"]))
    chosen = order
    if versions:
        if any(c in versions for c in "*?["):
            chosen = [v for v in order if fnmatch.fnmatchcase(v, versions)]
        elif ".." in versions:
            first, last = versions.split("..", 1)
            _known(order, [first, last])
            chosen = order[order.index(first):order.index(last) + 1]
        else:
            chosen = [v.strip() for v in versions.split(",") if v.strip()]
            _known(order, chosen)
    if step_range:
        try:
            low, high = (float(x) if x else None for x in step_range.split(":", 1))
        except ValueError:
            raise NNGraphError(f"--step-range {step_range!r}: expected FIRST:LAST, like 0:1000") from None
        steps = frame.drop_duplicates("version").set_index("version")["step"]
        chosen = [v for v in chosen if steps[v] is not None and not np.isnan(steps[v])
                  and (low is None or steps[v] >= low) and (high is None or steps[v] <= high)]
    if not chosen:
        raise NNGraphError("the version range is empty: `nngraph versions --model ...` lists the versions and steps")
    selected = frame[frame["version"].isin(chosen)]
    return selected.assign(order=selected["version"].map({v: i for i, v in enumerate(chosen)})).sort_values(
        ["order", "layer"]).drop(columns="order")


def _known(order: list[str], tags: list[str]) -> None:
    missing = [t for t in tags if t not in order]
    if missing:
        raise NNGraphError(f"no version {', '.join(map(repr, missing))} of this model{closest(missing[0], order)}: "
                           f"the versions are {', '.join(order[:20])}{' ...' if len(order) > 20 else ''}")


def neuron_values(store, version_uid: str, prop: str) -> dict[int, np.ndarray]:
    """layer -> the property of its neurons in index order (NaN where missing)."""
    rows = store.read(canned_text("neuron-values"), {"version": version_uid, "property": prop})
    odd = next((v for row in rows for v in row["values"]
                if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)))), None)
    if odd is not None:
        raise NNGraphError(f"neuron property {prop!r} holds {type(odd).__name__} values such as {str(odd)[:40]!r}, "
                           "not numbers: choose a numeric property (--property pagerank, community_louvain, ...)")
    return {row["layer"]: np.array([np.nan if v is None else v for v in row["values"]], dtype=np.float64)
            for row in rows}

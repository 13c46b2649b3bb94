"""What the reports read: layer rows of a model's versions and per-neuron values, through the
canned queries (queries/version-layers, queries/neuron-values), never the links."""

from __future__ import annotations

import fnmatch
import re

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
    frame["layer_label"] = [f"{index} {name or ''}".strip() for index, name in zip(frame["layer"], frame["name"])]
    frame["run"] = [re.sub(r"\d+(\D*)$", r"#\1", tag) for tag in frame["version"]]
    return frame.drop(columns="version_properties")


def layer_labels(frame: pd.DataFrame) -> list[str]:
    """'index name' of every layer, in forward order (names repeat across blocks, indices do not)."""
    return list(frame.drop_duplicates("layer").sort_values("layer")["layer_label"])


def select_layers(frame: pd.DataFrame, layers: str | None) -> pd.DataFrame:
    """Rows of the chosen layers: indices and ranges (`0,3,5:9`, inclusive), or a shell-style pattern
    on layer names or blocks (`*attention*`, `encoder.layer.1*`)."""
    if not layers:
        return frame
    stored = frame.drop_duplicates("layer").sort_values("layer")
    if re.fullmatch(r"[\d,:\s]+", layers):
        chosen = set()
        for part in filter(None, (p.strip() for p in layers.split(","))):
            first, colon, last = part.partition(":")
            chosen |= set(range(int(first or 0), int(last or stored["layer"].max()) + 1)) if colon else {int(first)}
        keep = stored["layer"].isin(chosen)
    else:
        keep = [fnmatch.fnmatchcase(str(name), layers) or fnmatch.fnmatchcase(str(block), layers)
                for name, block in zip(stored["name"], stored["block"])]
    if not any(keep):
        shown = ", ".join(stored["layer_label"].head(12)) + (" ..." if len(stored) > 12 else "")
        raise NNGraphError(f"--layers {layers!r} matches no layer; the layers are {shown} (indices, FIRST:LAST, "
                           "or a pattern on names and blocks)")
    return frame[frame["layer"].isin(stored["layer"][keep])]


def settings(frame: pd.DataFrame, metrics: list[str]) -> list[str]:
    """The metrics that are a run's settings rather than measurements: constant over all versions,
    or constant within every run (a run: the versions whose tags differ only in their last number)."""
    per_version = frame.drop_duplicates("version")
    runs = per_version.groupby("run")
    several = runs.size().max() > 1
    return [m for m in metrics if per_version[m].nunique() <= 1 or (several and (runs[m].nunique() <= 1).all())]


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
        asked = " with ".join(filter(None, [versions, step_range and f"steps {step_range}"]))
        steps = frame.drop_duplicates("version")["step"].dropna()
        span = f", steps {steps.min():g} to {steps.max():g}" if len(steps) else ", without steps"
        raise NNGraphError(f"no version matches {asked}: the model holds {len(order)} versions, {order[0]} to "
                           f"{order[-1]}{span} (`nngraph versions --model ...` lists them)")
    selected = frame[frame["version"].isin(chosen)]
    return selected.assign(order=selected["version"].map({v: i for i, v in enumerate(chosen)})).sort_values(
        ["order", "layer"]).drop(columns="order")


def _known(order: list[str], tags: list[str]) -> None:
    missing = [t for t in tags if t not in order]
    if missing:
        raise NNGraphError(f"no version {', '.join(map(repr, missing))} of this model{closest(missing[0], order)}: "
                           f"the versions are {', '.join(order[:20])}{' ...' if len(order) > 20 else ''}")


SKIPPED_MODULES = """MATCH (v:Version)-[:SKIPPED]->(s:Skipped) WHERE v.uid IN $uids
RETURN s.name AS name, s.kind AS kind, s.reason AS reason, count(v) AS versions ORDER BY name"""
CYPHER = [SKIPPED_MODULES]


def skipped_modules(store, uids: list[str]) -> list[str]:
    """The modules the chosen versions were stored without (no links of their own), once each."""
    return [f"module {row['name']} ({row['kind']}): {row['reason']}"
            + (f" (in {row['versions']} of {len(uids)} versions)" if row["versions"] < len(uids) else "")
            for row in store.read(SKIPPED_MODULES, {"uids": uids})]


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

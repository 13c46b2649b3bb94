"""Neurons Strength (NS) and Neurons Activation (NA) in the reports (METRICS.md section 6): the
`activations` report across versions, and the per-bin distributions the ensemble report adds.

Their histograms are stored on one fixed grid (nngraph.ingest.activation_stats.GRID: 0 and
+-10^k in eighths of a decade), so versions and bins compare without moving counts between
grids; the two open-ended outer bins are counted in the outermost closed ones. Versions
measured on different inputs (their data_hash differs) are not compared unless asked.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from nngraph.errors import NNGraphError

from . import charts

if TYPE_CHECKING:  # reports.py imports this module
    from .reports import Report

QUANTITIES = {"ns": "neurons strength", "na": "neurons activation"}


def measured_rows(frame: pd.DataFrame, model: str, mixed: bool) -> pd.DataFrame:
    """The layer rows of versions measured on data, all on the same inputs unless `mixed`."""
    measured = frame[frame["data_hash"].notna() & frame["ns_mean"].notna()]
    if not len(measured):
        raise NNGraphError(f"no chosen version of {model!r} carries Neurons Strength or Activation: ingest it with "
                           "--data (and --arch, a .pt2 or a model directory), or record it with EpochRecorder(data=...)")
    inputs = measured.drop_duplicates("version").groupby("data_hash", sort=False)["version"].apply(list)
    if len(inputs) > 1 and not mixed:
        sets = "; ".join(f"{digest}: {len(tags)} version(s), e.g. {tags[0]}" for digest, tags in inputs.items())
        raise NNGraphError(f"these versions were measured on {len(inputs)} different sets of inputs ({sets}); choose "
                           "versions measured on the same inputs with --versions, or pass --mixed-data to compare "
                           "them anyway")
    return measured


def grid():
    """The closed bins of the fixed grid (edges) that stored histograms are read on."""
    from nngraph.ingest.activation_stats import GRID

    return np.asarray(GRID)


def probabilities(counts) -> np.ndarray:
    """A stored fixed-grid histogram (with its two open-ended bins) as probabilities per closed bin."""
    counts = np.asarray(counts, dtype=np.float64)
    inner = counts[1:-1].copy()
    inner[0] += counts[0]
    inner[-1] += counts[-1]
    return inner / max(inner.sum(), 1.0)


def per_bin_quantities(rows: pd.DataFrame, bins: dict[str, str], order: list[str]) -> dict:
    """{quantity: (edges, {bin: probabilities})} of one layer's NS and NA, each bin the mean of
    its versions' histograms: what the ensemble report compares between bins."""
    edges, found = grid(), {}
    for prefix, quantity in QUANTITIES.items():
        column = f"{prefix}_hist_counts"
        present = rows[rows[column].notna()]
        if not len(present) or not all(any(bins[v] == b for v in present["version"]) for b in order):
            continue
        found[quantity] = (edges, {b: np.mean([probabilities(r) for v, r in zip(present["version"], present[column])
                                               if bins[v] == b], axis=0) for b in order})
    return found


def activations(store, model: str, options) -> Report:
    from .reports import _report, _with_x, chosen_rows  # reports.py imports this module: read at call time

    frame = chosen_rows(store, model, options)
    measured = measured_rows(frame, model, options.mixed_data)
    report = _report("activations", "Neurons Strength and Activation across versions", model, measured,
                     "On the same inputs for every version: a neuron's strength (NS) is the signal on its incoming "
                     "links plus its bias, its activation (NA) the value after its activation function (METRICS.md "
                     "section 6, our reading of La Malfa et al. 2024). Per layer and version: their mean and spread "
                     "over inputs and neurons, and the share of activations that are exactly zero (dead ReLUs) or "
                     "saturated (tanh, sigmoid).")
    for layer in sorted(set(frame["layer"]) - set(measured["layer"])):
        report.skipped.append(f"layer {layer}: no NS or NA (an input layer, a cut, or not measured)")
    columns = ["version", "step", "layer", "name", "activation", "ns_mean", "ns_std", "ns_min", "ns_max", "na_mean",
               "na_std", "na_zero_fraction", "na_saturated_fraction"]
    table = measured[columns].reset_index(drop=True)
    report.tables["layers"] = table
    first = measured.drop_duplicates("version").iloc[0]
    report.findings.append(f"inputs: {int(first['data_samples'])} samples of {first['data_source']} "
                           f"(seed {int(first['data_seed'])}, hash {first['data_hash']})")
    report.findings += _trends(table)
    rows, x_title = _with_x(measured)
    for column, title in (("ns_std", "NS spread (std over inputs and neurons)"), ("na_mean", "NA mean"),
                          ("na_zero_fraction", "share of NA exactly zero")):
        report.figures.append((f"{title}, per layer across versions", charts.over_versions(
            rows, column, title, report.layer_labels, report.versions, x_title)))
    return report


def _trends(table: pd.DataFrame) -> list[str]:
    """From the first chosen version to the last, per layer: how NS spread and NA changed (reported, not judged)."""
    versions = list(dict.fromkeys(table["version"]))
    if len(versions) < 2:
        return []
    first, last = (table[table["version"] == v].set_index("layer") for v in (versions[0], versions[-1]))
    common = first.index.intersection(last.index)
    grew = [layer for layer in common if last.loc[layer, "ns_std"] > first.loc[layer, "ns_std"]]
    found = [f"NS spread grew from {versions[0]} to {versions[-1]} in {len(grew)} of {len(common)} layers"
             + (f" ({', '.join(map(str, grew))})" if grew else "")]
    zeros = [(layer, first.loc[layer, "na_zero_fraction"], last.loc[layer, "na_zero_fraction"]) for layer in common
             if last.loc[layer, "activation"] == "relu"]
    if zeros:
        found.append("ReLU layers' share of zero activations, first -> last: "
                     + ", ".join(f"layer {layer} {a:.2f} -> {b:.2f}" for layer, a, b in zeros))
    return found

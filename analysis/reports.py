"""The canned reports: each reads layer and neuron properties of a model's versions and
returns a Report (tables, figures, what the numbers mean, what it covered and skipped).
Rendering to HTML, Markdown, JSON and CSV is in render.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import numpy as np
import pandas as pd

from nngraph.errors import NNGraphError

from . import activation_reports, charts, divergence as dv
from .report_data import (layer_labels, metric_columns, neuron_values, select_layers, select_versions, settings,
                          skipped_modules, version_layers)

BINS = 64
VERSION_VALUE = "MATCH (v:Version {uid: $uid}) RETURN v[$key] AS value"
CYPHER = [VERSION_VALUE]


@dataclass
class Report:
    name: str
    title: str
    meaning: str  # one or two plain sentences on what the numbers mean
    model: str
    versions: list[str]
    layers: list[int]
    layer_labels: list[str]  # 'index name', forward order
    version_uids: list[str]
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    figures: list[tuple[str, charts.Figure]] = field(default_factory=list)  # (caption, figure)
    skipped: list[str] = field(default_factory=list)
    findings: list[str] = field(default_factory=list)
    look_for: str = ""  # what to look for, in plain words (LOOK_FOR)


@dataclass
class Options:
    versions: str | None = None  # A..B or A,B,...
    layers: str | None = None  # indices and ranges, or a pattern on names and blocks
    step_range: str | None = None
    metric: str = "test_accuracy"  # ensemble: the stored metric to bin by
    bin_width: float = 0.1
    prop: str | None = None  # centrality / communities: the Neuron property
    other_model: str | None = None  # compare: versions A,B with B from this model
    mixed_data: bool = False  # activations / ensemble: compare NS and NA measured on different inputs


def learning_dynamics(store, model: str, options: Options) -> Report:
    frame = chosen_rows(store, model, options)
    metrics = metric_columns(frame)
    table = frame[["version", "step", "epoch", *metrics, "layer", "name", "kind", "nodes", "fluctuation",
                   "mean_strength"]].reset_index(drop=True)
    report = _report("learning-dynamics", "Learning dynamics: layer fluctuation across versions", model, frame,
                     "Fluctuation is the spread (standard deviation) of node strengths within a layer. La Malfa et al. "
                     "found it grows as a network learns, most in the layers near the output; the stored metrics are "
                     "shown beside it so the two can be read together.")
    report.tables["fluctuation"] = table
    rows, x_title = _with_x(frame)
    report.figures.append(("Layer fluctuation across versions", charts.over_versions(
        rows, "fluctuation", "fluctuation (std of node strength)", report.layer_labels, report.versions, x_title)))
    fixed = settings(frame, metrics)
    if fixed:
        report.skipped.append(f"not plotted, as they are a run's settings rather than measurements (they are in the "
                              f"table): {', '.join(m.removeprefix('metric_') for m in fixed)}")
    measured = [m for m in metrics if m not in fixed]
    if measured and len(report.versions) > 1:
        report.figures.append(("The stored metrics across versions",
                               charts.metrics(rows.drop_duplicates("version"), measured, x_title)))
    if not metrics:
        report.skipped.append("no stored metrics (ingest with --metric key=value to show accuracy or loss here)")
    return report


def strength(store, model: str, options: Options) -> Report:
    frame = chosen_rows(store, model, options)
    values = _neuron_values(store, frame, "strength")
    report = _report("strength", "Node-strength distributions per layer across versions", model, frame,
                     "A node's strength is the sum of its incoming weights and bias plus its outgoing weights. The "
                     "densities show how a layer's strengths spread in each version (on one grid per layer, so they "
                     "compare); the table gives their extremes and quantiles.")
    extremes, densities = [], []
    for layer in report.layers:
        samples = [values[v].get(layer, np.empty(0)) for v in report.versions]
        grid = dv.shared_grid(samples, _bins(samples[0]))
        for version, sample in zip(report.versions, samples):
            extremes.append({"version": version, "layer": layer, **_summary(sample)})
            densities += _density_rows(version, layer, grid, dv.density(sample, grid))
    report.tables["extremes"] = pd.DataFrame(extremes)
    report.tables["densities"] = pd.DataFrame(densities)
    report.figures.append(("Node-strength distribution of the chosen layer, one curve per version",
                           _density_chart(report, report.tables["densities"], "node strength")))
    return report


def link_weights(store, model: str, options: Options) -> Report:
    frame = chosen_rows(store, model, options)
    report = _report("link-weights", "Link-weight distributions per layer across versions", model, frame,
                     "The weights (and biases) that feed each layer, as stored at ingest: exact statistics and a "
                     "64-bin histogram per version, moved onto one grid per layer so the versions compare.")
    fed = frame[frame["w_hist_counts"].notna()]
    for layer in sorted(set(frame["layer"]) - set(fed["layer"])):
        report.skipped.append(f"layer {layer}: no weights feed it (the input, or a cut after pooling/attention)")
    stats, densities = [], []
    for layer, rows in fed.groupby("layer"):
        grid = np.linspace(rows["w_min"].min(), rows["w_max"].max(), BINS + 1)
        for row in rows.itertuples():
            stats.append({"version": row.version, "layer": layer, "mean": row.w_mean, "std": row.w_std,
                          "min": row.w_min, "q05": row.w_q05, "median": row.w_q50, "q95": row.w_q95, "max": row.w_max})
            densities += _density_rows(row.version, layer, grid, dv.rebin(row.w_hist_edges, row.w_hist_counts, grid))
    report.tables["statistics"] = pd.DataFrame(stats)
    report.tables["densities"] = pd.DataFrame(densities)
    report.figures.append(("Distribution of the weights feeding the chosen layer, one curve per version",
                           _density_chart(report, report.tables["densities"], "link weight")))
    return report


def ensemble(store, model: str, options: Options) -> Report:
    frame = chosen_rows(store, model, options)
    column = f"metric_{options.metric}"
    per_version = frame.drop_duplicates("version").set_index("version")
    stored = per_version[column] if column in per_version else pd.Series(np.nan, index=per_version.index)
    lacking = stored.index[stored.isna()].tolist()
    stored_metrics = [c.removeprefix("metric_") for c in metric_columns(frame)]
    if lacking and not stored_metrics:
        raise NNGraphError("no version stores a numeric metric to bin by: ingest versions with --metric key=value "
                           "(test_accuracy, say) to compare them by it")
    if lacking:
        raise NNGraphError(f"{len(lacking)} version(s) have no metric {options.metric!r} to bin by: "
                           f"{', '.join(lacking[:10])}{' ...' if len(lacking) > 10 else ''}; choose --metric from "
                           f"{', '.join(stored_metrics)} or leave those versions out with --versions")
    if options.bin_width <= 0:
        raise NNGraphError("--bin-width must be positive")
    bins = {v: _bin_label(per_version.loc[v, column], options.bin_width) for v in per_version.index}
    order = sorted(set(bins.values()), key=lambda label: float(label[1:].split(",")[0]))
    report = _report("ensemble", f"Ensemble: versions binned by {options.metric}", model, frame,
                     f"Versions are grouped into bins of {options.metric} (width {options.bin_width:g}); per layer, "
                     "the node strengths and the link weights of a bin's versions are pooled, and the matrices say how "
                     "far apart the bins are (symmetric Kullback-Leibler as in the paper, Jensen-Shannon in [0, 1], "
                     "1-D Wasserstein). The paper found link weights of low- and high-accuracy networks overlap while "
                     "strengths of accurate ones spread far wider. Versions measured on data add their neurons' "
                     "strength and activation on those inputs (NS, NA), compared the same way.")
    strengths = _neuron_values(store, frame, "strength")
    fed = frame[frame["w_hist_counts"].notna()]
    data_rows = _data_rows(frame, model, options, report)
    bin_rows, divergences, densities = [], [], []
    for layer in report.layers:
        rows = frame[frame["layer"] == layer]
        for label in order:
            members = [v for v in report.versions if bins[v] == label]
            bin_rows.append({"bin": label, "layer": layer, "versions": len(members),
                             "mean_metric": float(per_version.loc[members, column].mean()),
                             "mean_fluctuation": float(rows[rows["version"].isin(members)]["fluctuation"].mean())})
            if data_rows is not None:
                measured = data_rows[(data_rows["layer"] == layer) & data_rows["version"].isin(members)]
                bin_rows[-1].update({f"mean_{c}": float(measured[c].mean()) if len(measured) else float("nan")
                                     for c in ("ns_std", "na_mean", "na_zero_fraction")})
        pooled = {label: np.concatenate([strengths[v].get(layer, np.empty(0)) for v in report.versions
                                         if bins[v] == label]) for label in order}
        grid = dv.shared_grid(list(pooled.values()), _bins(min(pooled.values(), key=len)))
        quantities = {"strength": (grid, {b: dv.density(s, grid) for b, s in pooled.items()})}
        layer_weights = fed[fed["layer"] == layer]
        if len(layer_weights):
            w_grid = np.linspace(layer_weights["w_min"].min(), layer_weights["w_max"].max(), BINS + 1)
            quantities["link weight"] = (w_grid, {b: np.mean([dv.rebin(r.w_hist_edges, r.w_hist_counts, w_grid)
                                                              for r in layer_weights.itertuples() if bins[r.version] == b],
                                                             axis=0) for b in order})
        if data_rows is not None:
            quantities.update(activation_reports.per_bin_quantities(data_rows[data_rows["layer"] == layer], bins, order))
        for quantity, (edges, per_bin) in quantities.items():
            for label in order:
                densities += _density_rows(label, layer, edges, per_bin[label], quantity=quantity, key="bin")
            for i, a in enumerate(order):
                for b in order[i + 1:]:
                    divergences.append({"quantity": quantity, "layer": layer, "bin_a": a, "bin_b": b,
                                        "sym_kl": dv.symmetric_kl(per_bin[a], per_bin[b]),
                                        "jensen_shannon": dv.jensen_shannon(per_bin[a], per_bin[b]),
                                        "wasserstein": dv.wasserstein(per_bin[a], per_bin[b], edges)})
    report.tables["bins"] = pd.DataFrame(bin_rows)
    report.tables["divergences"] = pd.DataFrame(divergences)
    report.tables["densities"] = pd.DataFrame(densities)
    if len(order) < 2:
        report.skipped.append(f"one bin only ({order[0]}): no divergences; use a smaller --bin-width")
    else:
        report.findings += _ensemble_findings(report, order)
    for quantity in ("strength", "link weight", *activation_reports.QUANTITIES.values()):
        subset = report.tables["densities"]
        subset = subset[subset["quantity"] == quantity] if len(subset) else subset
        if len(subset):
            fixed = quantity in activation_reports.QUANTITIES.values()  # on the fixed grid, log-spaced
            chart = _density_chart(report, subset, quantity, key="bin", keys=order,
                                   key_title=f"{options.metric} bin", symlog=fixed)
            report.figures.append((f"Pooled {quantity} distribution of the chosen layer, one curve per "
                                   f"{options.metric} bin", chart))
    return report


def _data_rows(frame, model: str, options: Options, report: Report):
    """The layers' NS and NA when every chosen version was measured on data; else a note."""
    if frame["data_hash"].isna().all():
        report.skipped.append("no NS or NA: the versions were not measured on data (ingest with --data)")
        return None
    if frame.drop_duplicates("version")["data_hash"].isna().any():
        report.skipped.append("no NS or NA: only some versions were measured on data")
        return None
    return activation_reports.measured_rows(frame, model, options.mixed_data)


def _ensemble_findings(report: Report, order: list[str]) -> list[str]:
    """The paper's comparison on these data: lowest against highest bin, per layer, as measured."""
    table, low, high = report.tables["divergences"], order[0], order[-1]
    pair = table[(table["bin_a"] == low) & (table["bin_b"] == high)]
    found = []
    for quantity in ("link weight", "strength", *activation_reports.QUANTITIES.values()):
        rows = pair[pair["quantity"] == quantity]
        if len(rows):
            found.append(f"{quantity}: mean Jensen-Shannon divergence between bins {low} and {high} over "
                         f"{len(rows)} layers = {rows['jensen_shannon'].mean():.3f} "
                         f"(symmetric KL {rows['sym_kl'].mean():.3f})")
    bins = report.tables["bins"]
    spread = bins.pivot_table(index="layer", columns="bin", values="mean_fluctuation")
    ratios = (spread[high] / spread[low]).replace([np.inf, -np.inf], np.nan).dropna()
    if len(ratios):
        found.append(f"mean fluctuation in bin {high} over bin {low}, per layer: "
                     + ", ".join(f"layer {k} {v:.2f}x" for k, v in ratios.items()))
    return found


def centrality(store, model: str, options: Options) -> Report:
    prop = options.prop or "pagerank"
    report, _, values = _neuron_report(
        store, model, options, "centrality", prop, f"Centrality ({prop}): top neurons and how rankings move",
        f"The neurons with the highest {prop} per layer and version, and Spearman's rank correlation of each "
        "layer's scores between consecutive versions (1: the ranking did not move; near 0: it was reshuffled).")
    top, moves = [], []
    for layer in report.layers:
        for version in report.versions:
            scores = values[version].get(layer)
            if scores is None or np.isnan(scores).all():
                continue
            for rank, index in enumerate(np.argsort(-np.nan_to_num(scores, nan=-np.inf))[:5], 1):
                top.append({"version": version, "layer": layer, "rank": rank, "neuron": int(index),
                            prop: float(scores[index])})
        for a, b in zip(report.versions, report.versions[1:]):
            first, second = values[a].get(layer), values[b].get(layer)
            if first is not None and second is not None and len(first) == len(second):
                moves.append({"from": a, "to": b, "layer": layer, "spearman": dv.spearman(first, second)})
    report.tables["top"] = pd.DataFrame(top)
    report.tables["rank_correlation"] = pd.DataFrame(moves)
    if moves:
        pairs = report.tables["rank_correlation"]
        rows = pairs.assign(version=pairs["to"], x=pairs["to"].map({v: i for i, v in enumerate(report.versions)}),
                            run="pairs", layer_label=pairs["layer"].map(_label_of(report)))
        report.figures.append(("Rank correlation with the previous version, per layer", charts.over_versions(
            rows, "spearman", "Spearman rank correlation with the previous version", report.layer_labels,
            report.versions[1:], "version (in step order)")))
    return report


def communities(store, model: str, options: Options) -> Report:
    prop = options.prop or "community_louvain"
    report, frame, values = _neuron_report(
        store, model, options, "communities", prop, f"Communities ({prop}) across versions",
        "How many communities each version splits into and how modular the split is (modularity: the share of "
        "link weight inside communities beyond chance), and the adjusted Rand index between consecutive versions "
        "(1: the same partition; near 0: unrelated).")
    rows, stability = [], []
    for version in report.versions:
        membership = np.concatenate([values[version][k] for k in sorted(values[version])])
        rows.append({"version": version, "communities": int(len(np.unique(membership[~np.isnan(membership)]))),
                     "modularity": _version_value(store, frame, version, f"{prop}_modularity")})
    for a, b in zip(report.versions, report.versions[1:]):
        first = np.concatenate([values[a][k] for k in sorted(values[a])])
        second = np.concatenate([values[b][k] for k in sorted(values[b])])
        if len(first) == len(second):
            stability.append({"from": a, "to": b, "layer": "all", "adjusted_rand": dv.adjusted_rand(first, second)})
    report.tables["communities"] = pd.DataFrame(rows)
    report.tables["stability"] = pd.DataFrame(stability)

    report.figures.append(("Communities and modularity per version", charts.per_version(
        report.tables["communities"], {"communities": "communities (count)", "modularity": "modularity"}, "version",
        "version", integer=("communities",))))
    if len(stability):
        report.figures.append(("Stability: adjusted Rand index of each version's partition with the previous one",
                               charts.per_version(report.tables["stability"],
                                                  {"adjusted_rand": "adjusted Rand index"}, "to", "version")))
    return report


def compare(store, model: str, options: Options) -> Report:
    tags = [t.strip() for t in (options.versions or "").split(",") if t.strip()]
    if len(tags) != 2:
        raise NNGraphError("compare needs two versions: --versions A,B (B from --other-model when given)")
    first = select_versions(version_layers(store, model), tags[0])
    second = select_versions(version_layers(store, options.other_model or model), tags[1])
    frame = pd.concat([first, second])
    names = [f"{model}/{tags[0]}", f"{options.other_model or model}/{tags[1]}"]
    report = _report("compare", f"Compare {names[0]} with {names[1]}", model, frame,
                     "The two versions side by side, layer by layer, and the neurons whose strength changed most "
                     "(positions must match, so this part needs the same architecture).")
    report.versions = names
    columns = ["fluctuation", "mean_strength", "w_mean", "w_std", "neural_persistence"]
    merged = first[["layer", "name", *columns]].merge(second[["layer", *columns]], on="layer", how="outer",
                                                      suffixes=("_a", "_b"))
    for column in columns:
        merged[f"{column}_change"] = merged[f"{column}_b"] - merged[f"{column}_a"]
    report.tables["layers"] = merged
    a = neuron_values(store, first["uid"].iloc[0], "strength")
    b = neuron_values(store, second["uid"].iloc[0], "strength")
    changed = []
    for layer in sorted(set(a) & set(b)):
        if len(a[layer]) != len(b[layer]):
            report.skipped.append(f"layer {layer}: {len(a[layer])} against {len(b[layer])} neurons, not compared")
            continue
        for index in range(len(a[layer])):
            changed.append({"layer": layer, "neuron": index, "strength_a": a[layer][index],
                            "strength_b": b[layer][index], "change": b[layer][index] - a[layer][index]})
    table = pd.DataFrame(changed)
    if len(table):
        table = table.reindex(table["change"].abs().sort_values(ascending=False).index).head(20)
    report.tables["changed_neurons"] = table.reset_index(drop=True)

    labels = _label_of(report)
    pairs = pd.concat([pd.DataFrame({"layer_label": merged["layer"].map(labels), "version": name,
                                     "fluctuation": merged[f"fluctuation_{side}"]}) for side, name in zip("ab", names)])
    report.figures.append(("Fluctuation per layer, side by side", charts.side_by_side(
        pairs, "fluctuation", "fluctuation (std of node strength)", report.layer_labels, names)))
    return report


REPORTS = {"learning-dynamics": learning_dynamics, "strength": strength, "link-weights": link_weights,
           "activations": activation_reports.activations, "ensemble": ensemble, "centrality": centrality,
           "communities": communities, "compare": compare}
DESCRIPTIONS = {
    "learning-dynamics": "layer fluctuation of every layer across versions, with stored metrics (accuracy, loss)",
    "strength": "node-strength distributions per layer across versions, and their extremes",
    "link-weights": "link-weight distributions per layer across versions",
    "activations": "Neurons Strength and Activation on data (ingest --data) per layer across versions",
    "ensemble": "versions binned by a stored metric; distributions per bin; KL / JS / Wasserstein between bins",
    "centrality": "top neurons per layer and version; rank correlation between consecutive versions",
    "communities": "communities and modularity per version; adjusted Rand index between consecutive versions",
    "compare": "two versions (or two models) side by side, with the neurons whose strength changed most",
}


LOOK_FOR = {
    "learning-dynamics": "Whether fluctuation rises as the stored accuracy rises, and in which layers first; a layer "
                         "whose fluctuation stays flat while others grow has stopped changing. On a heatmap, read "
                         "each row (a layer) from left to right; choose a layer under it to see its line.",
    "strength": "Curves that widen from the first version (dark) to the last (light): strengths spreading out as the "
                "network learns. A curve that shifts rather than widens means the layer's weights moved together.",
    "link-weights": "Link weights usually change far less than strengths: curves that nearly overlap across "
                    "versions are the paper's observation; heavy tails growing in one layer point to it.",
    "activations": "NS spread growing with training, NA means settling, and the share of exact zeros in ReLU layers "
                   "(dead units) rising or falling across versions.",
    "ensemble": "The paper's comparison: small divergences between bins for link weights but large ones for "
                "strengths. Compare the curves of the lowest and the highest bin in each layer.",
    "centrality": "Rank correlations near 1 mean the most central neurons stay the same from version to version; "
                  "dips show where training reshuffled the layer.",
    "communities": "The number of communities and the modularity settling as training converges; adjusted Rand "
                   "near 1 means the partition no longer changes.",
    "compare": "Layers whose fluctuation differs most between the two versions, and the neurons whose strength "
               "moved most (same architecture only).",
}


def build(store, name: str, model: str, options: Options) -> Report:
    if name not in REPORTS:
        raise NNGraphError(f"no report {name!r}; `nngraph report list` lists them: {', '.join(REPORTS)}")
    report = REPORTS[name](store, model, options)
    report.look_for = LOOK_FOR[name]
    report.skipped += skipped_modules(store, report.version_uids)
    return report


# ----------------------------------------------------------------------------- helpers

def chosen_rows(store, model: str, options: Options) -> pd.DataFrame:
    """The layer rows of the versions and layers the options choose."""
    frame = select_versions(version_layers(store, model), options.versions, options.step_range)
    return select_layers(frame, options.layers)


def _report(name, title, model, frame, meaning) -> Report:
    return Report(name, title, meaning, model, list(dict.fromkeys(frame["version"])),
                  sorted(int(x) for x in set(frame["layer"])), layer_labels(frame), list(dict.fromkeys(frame["uid"])))


def _label_of(report: Report) -> dict[int, str]:
    return dict(zip(report.layers, report.layer_labels))


def _neuron_report(store, model, options, name, prop, title, meaning) -> tuple[Report, pd.DataFrame, dict]:
    """The start of a report on a Neuron property written by `nngraph analyze <name>`: the chosen
    versions, their values of `prop`, and the caution when networks share steps."""
    frame = chosen_rows(store, model, options)
    values = _neuron_values(store, frame, prop, required=f"nngraph analyze {name} --model {model} --all-versions")
    report = _report(name, title, model, frame, meaning)
    report.findings += _networks_interleaved(frame)
    return report, frame, values


def _networks_interleaved(frame) -> list[str]:
    """A caution when several versions share a step (seeds or runs side by side): pairs of
    consecutive versions then cross from one network to another."""
    steps = frame.drop_duplicates("version")["step"].dropna()
    shared = int(steps.duplicated(keep=False).sum())
    if not shared:
        return []
    return [f"{shared} of the versions share a step with another (several networks per step), so some "
            "'consecutive' pairs below compare two different networks; to follow one network, choose its "
            "versions with --versions and a tag pattern (e.g. 's0-*')."]


def _neuron_values(store, frame, prop, required: str | None = None) -> dict[str, dict[int, np.ndarray]]:
    uids = frame.drop_duplicates("version").set_index("version")["uid"]
    values = {version: neuron_values(store, uid, prop) for version, uid in uids.items()}
    if required and all(np.isnan(v).all() for layers in values.values() for v in layers.values()):
        raise NNGraphError(f"no neuron of these versions has the property {prop!r}: run `{required}` first "
                           "(or pass --property with the name it printed)")
    return values


def _version_value(store, frame, version, key):
    uid = frame[frame["version"] == version]["uid"].iloc[0]
    rows = store.read(VERSION_VALUE, {"uid": uid, "key": key})
    return rows[0]["value"] if rows else None


def _bins(sample: np.ndarray) -> int:
    """Bins for a density of a layer's strengths: about two per sqrt(nodes), 8 to 64."""
    return int(np.clip(2 * np.sqrt(len(sample)), 8, BINS))


def _summary(sample: np.ndarray) -> dict:
    if not len(sample):
        return {}
    q05, q50, q95 = np.quantile(sample, [0.05, 0.5, 0.95])
    return {"nodes": len(sample), "min": float(sample.min()), "q05": float(q05), "median": float(q50),
            "q95": float(q95), "max": float(sample.max()), "fluctuation": float(sample.std())}


def _density_rows(name, layer, edges, density, quantity=None, key="version") -> list[dict]:
    extra = {"quantity": quantity} if quantity else {}
    return [{key: name, "layer": layer, **extra, "bin_low": float(lo), "bin_high": float(hi), "share": float(d)}
            for lo, hi, d in zip(edges[:-1], edges[1:], density)]


def _bin_label(value: float, width: float) -> str:
    low = np.floor(value / width + 1e-9) * width
    return f"[{low:.4g}, {low + width:.4g})"


def _with_x(frame) -> tuple[pd.DataFrame, str]:
    """The rows with x: the step when every version has one, else the version's place in step order."""
    steps = frame["step"]
    if steps.notna().all():
        return frame.assign(x=steps), "step"
    order = {v: i for i, v in enumerate(dict.fromkeys(frame["version"]))}
    return frame.assign(x=frame["version"].map(order)), "version (in step order)"


def _density_chart(report: Report, table, quantity, key="version", keys=None, key_title="version", symlog=False):
    return charts.densities(table.assign(layer_label=table["layer"].map(_label_of(report))), key, key_title,
                            keys or report.versions, quantity, symlog)

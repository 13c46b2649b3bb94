"""The reports' plots as Vega-Lite charts, built with Altair.

Why Vega-Lite: a chart is a small declarative spec, so one spec gives both the interactive HTML
(hover values, zoom, legend toggles, a layer chosen from a list: Vega-Lite selection parameters,
no hand-written JavaScript) and the PNG of the Markdown format (vl-convert renders specs without a
browser). Each builder takes plain rows and picks the form that stays readable at the size it
gets: one version is a profile across layers, a few layers are lines, many layers a
layer-by-version heatmap with a chosen layer's line beside it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import altair as alt
import numpy as np
import pandas as pd

WIDTH = 760
MANY_LAYERS = 10  # more layers than this: a heatmap, since one line per layer stops being readable
MANY_KEYS = 12  # more versions (or bins) than this: a colour bar by order instead of a legend of names
MAX_CURVES = 40  # density curves per layer drawn at most; more versions are thinned evenly (tables keep all)
LABELLED_VERSIONS = 40  # beyond this, version names leave the axis (the tooltip still shows them)


@dataclass
class Figure:
    """A chart and the rows it draws. The rows join the spec only after Altair has checked it
    against the Vega-Lite schema: checking 50,000 inline rows took seconds and finds nothing."""

    chart: alt.TopLevelMixin
    rows: list[dict]
    extra: dict[str, list[dict]] = field(default_factory=dict)  # further named datasets

    def spec(self) -> dict:
        return {**self.chart.to_dict(), "datasets": {DATA: self.rows, **self.extra}}


DATA = "rows"


def _value(value):
    """A value as a chart draws it: floats at 4 significant digits, as the hover shows them (the
    tables keep every digit), NaN as null, numpy scalars as Python ones."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return None if value != value else float(f"{value:.4g}")
    return value


def _data(frame: pd.DataFrame, columns: list[str]) -> list[dict]:
    """The rows a chart draws."""
    part = [[_value(v) for v in frame[column].tolist()] for column in columns]
    return [dict(zip(columns, row)) for row in zip(*part)]


def _curves(frame: pd.DataFrame, keys: list[str], arrays: list[str]) -> list[dict]:
    """One row per curve, its points as arrays (the chart flattens them): the field names are
    not repeated on every point, which made pages of many curves three times larger."""
    rows = []
    for values, group in frame.groupby(keys, sort=False):
        row = {key: _value(value) for key, value in zip(keys, values)}
        rows.append(row | {name: [_value(v) for v in group[name]] for name in arrays})
    return rows


def _chart() -> alt.Chart:
    return alt.Chart(alt.NamedData(name=DATA))


def _steps(title: str) -> alt.X:
    """The x axis of steps or of places in step order: whole numbers on whole ticks."""
    return alt.X("x:Q", title=title, axis=alt.Axis(format="d", tickMinStep=1))


def _layer_axis(labels: list[str]) -> dict:
    return {"sort": labels, "title": "layer (forward order)", "axis": alt.Axis(labelLimit=360)}


def over_versions(rows: pd.DataFrame, value: str, title: str, labels: list[str], versions: list[str],
                  x_title: str) -> Figure:
    """A per-layer quantity across versions. `rows`: layer_label, version, x (step or order), run, value."""
    hover = ["layer_label:N", "version:N", alt.Tooltip(f"{value}:Q", title=title, format=".4g")]
    data = _data(rows, ["layer_label", "version", "x", "run", value])
    present = [label for label in labels if label in set(rows["layer_label"])]
    if len(versions) == 1:  # a profile across the layers (one row each, readable at 200), never a one-point line
        return Figure(_chart().mark_bar().encode(
            y=alt.Y("layer_label:N", **_layer_axis(present)), x=alt.X(f"{value}:Q", title=title),
            tooltip=hover).properties(width=WIDTH, height=min(14 * len(present), 2800),
                                      title=f"{title} per layer, version {versions[0]}"), data)
    if len(present) <= MANY_LAYERS:
        toggle = alt.selection_point(fields=["layer_label"], bind="legend")
        return Figure(_chart().mark_line(point=True).encode(
            x=_steps(x_title), y=alt.Y(f"{value}:Q", title=title),
            color=alt.Color("layer_label:N", sort=present, title="layer (click to pick)"),
            detail="run:N", opacity=alt.condition(toggle, alt.value(1.0), alt.value(0.12)), tooltip=hover,
        ).add_params(toggle).properties(width=WIDTH, height=300).interactive(bind_y=False), data)
    heatmap = _chart().mark_rect().encode(
        x=alt.X("version:O", sort=versions, title="version",
                axis=alt.Axis(labels=len(versions) <= LABELLED_VERSIONS)),
        y=alt.Y("layer_label:O", **_layer_axis(present)),
        color=alt.Color(f"{value}:Q", title=title, scale=alt.Scale(scheme="viridis")), tooltip=hover,
    ).properties(width=WIDTH, height=min(14 * len(present), 2800), title=f"{title}: layers by versions")
    return Figure(alt.vconcat(heatmap, _chosen_layer(present, value, title, x_title)), data)


def _chosen_layer(labels: list[str], value: str, title: str, x_title: str) -> alt.Chart:
    """One layer's line across versions, the layer chosen from a list under the chart."""
    choice = alt.param(name="layer", value=labels[-1], bind=alt.binding_select(options=labels, name="layer: "))
    return _chart().mark_line(point=True).encode(
        x=_steps(x_title), y=alt.Y(f"{value}:Q", title=title), detail="run:N",
        tooltip=["layer_label:N", "version:N", alt.Tooltip(f"{value}:Q", title=title, format=".4g")],
    ).add_params(choice).transform_filter(alt.datum.layer_label == choice).properties(
        width=WIDTH, height=220, title=f"{title} of the chosen layer").interactive(bind_y=False)


def metrics(rows: pd.DataFrame, names: list[str], x_title: str) -> Figure:
    """One panel per stored metric (its own y axis, named) across versions; rows: x, version, run, names."""
    panels = [_chart().mark_line(point=True).encode(
        x=_steps(x_title), y=alt.Y(f"{name}:Q", title=name.removeprefix("metric_")), detail="run:N",
        tooltip=["version:N", alt.Tooltip(f"{name}:Q", format=".4g")]).properties(width=WIDTH, height=160)
        for name in names]
    return Figure(alt.vconcat(*panels).properties(title="stored metrics"), _data(rows, ["x", "version", "run", *names]))


def densities(rows: pd.DataFrame, key: str, key_title: str, keys: list[str], quantity: str,
              symlog: bool = False) -> Figure:
    """Distributions of one quantity, one curve per version (or bin), the layer chosen from a list.
    rows: layer, layer_label, key, bin_low, bin_high, share. Rows carry the layer's index, not its
    label: a label repeated on every bin was a third of the page."""
    named = dict(zip(rows["layer"], rows["layer_label"]))
    present = [(layer, label) for layer, label in sorted(named.items())]
    shown = keys if len(keys) <= MAX_CURVES else [keys[int(i)] for i in np.linspace(0, len(keys) - 1, MAX_CURVES)]
    part = rows[rows[key].isin(shown)].assign(middle=lambda f: (f["bin_low"] + f["bin_high"]) / 2,
                                                order=lambda f: f[key].map({k: i for i, k in enumerate(keys)}))
    choice = alt.param(name="layer", value=present[-1][0], bind=alt.binding_select(
        options=[int(layer) for layer, _ in present], labels=[label for _, label in present], name="layer: "))
    if len(keys) <= MANY_KEYS:
        toggle = alt.selection_point(fields=[key], bind="legend")
        colour = {"color": alt.Color(f"{key}:O", sort=keys, title=f"{key_title} (click to pick)",
                                     scale=alt.Scale(scheme="viridis")),
                  "opacity": alt.condition(toggle, alt.value(1.0), alt.value(0.12))}
        params = [choice, toggle]
    else:
        colour = {"color": alt.Color("order:Q", title=f"{key_title}: first (0) to last ({len(keys) - 1})",
                                     scale=alt.Scale(scheme="viridis")), "detail": f"{key}:N"}
        params = [choice]
    x_axis = {"scale": alt.Scale(zero=False)}
    if symlog:  # the fixed grid of NS and NA (0 and +-10^k), on a symmetric log scale with decade ticks
        ticks = [-1000, -10, -0.1, 0, 0.1, 10, 1000]
        x_axis = {"scale": alt.Scale(type="symlog", constant=1e-3), "axis": alt.Axis(values=ticks, format="~g")}
    title = quantity + (f" ({len(shown)} of {len(keys)} {key_title}s drawn, evenly spaced)" if len(shown) < len(keys)
                        else "")
    chart = _chart().mark_line(point=alt.OverlayMarkDef(size=10)).encode(  # points carry the hover values
        x=alt.X("middle:Q", title=quantity, **x_axis), y=alt.Y("share:Q", title="share of values per bin"),
        tooltip=[f"{key}:N", "layer:O", alt.Tooltip("middle:Q", title=quantity, format=".4g"),
                 alt.Tooltip("share:Q", format=".3f")], **colour,
    ).add_params(*params).transform_filter(alt.datum.layer == choice).transform_flatten(
        ["middle", "share"]).properties(width=WIDTH, height=320, title=title).interactive(bind_y=False)
    return Figure(chart, _curves(part, ["layer", key, "order"], ["middle", "share"]))


def per_version(rows: pd.DataFrame, columns: dict[str, str], x: str, x_title: str,
                integer: tuple[str, ...] = ()) -> Figure:
    """Quantities with one value per version (or pair of versions), one panel each with its own axis.
    columns: column -> axis title; integer columns get integer ticks."""
    order = list(dict.fromkeys(rows[x]))
    panels = []
    for column, title in columns.items():
        y_axis = alt.Axis(format="d", tickMinStep=1) if column in integer else alt.Axis()
        panels.append(_chart().mark_line(point=True).encode(
            x=alt.X(f"{x}:O", sort=order, title=x_title, axis=alt.Axis(labels=len(order) <= LABELLED_VERSIONS)),
            y=alt.Y(f"{column}:Q", title=title, axis=y_axis),
            tooltip=[f"{x}:N", alt.Tooltip(f"{column}:Q", title=title, format=".4g")],
        ).properties(width=WIDTH, height=200))
    return Figure(alt.vconcat(*panels), _data(rows, [x, *columns]))


def side_by_side(rows: pd.DataFrame, value: str, title: str, labels: list[str], names: list[str]) -> Figure:
    """Two versions' per-layer values as paired bars; rows: layer_label, version, value."""
    present = [label for label in labels if label in set(rows["layer_label"])]
    return Figure(_chart().mark_bar().encode(
        x=alt.X("layer_label:N", **_layer_axis(present)), xOffset=alt.XOffset("version:N", sort=names),
        y=alt.Y(f"{value}:Q", title=title), color=alt.Color("version:N", sort=names, title="version"),
        tooltip=["layer_label:N", "version:N", alt.Tooltip(f"{value}:Q", title=title, format=".4g")],
    ).properties(width=WIDTH), _data(rows, ["layer_label", "version", value]))


def histogram(values, title: str) -> Figure:
    """The distribution of one layer's values (its neurons' strengths, say)."""
    rows = pd.DataFrame({"value": values})
    return Figure(_chart().mark_bar().encode(
        x=alt.X("value:Q", bin=alt.Bin(maxbins=40), title=title), y=alt.Y("count():Q", title="neurons"),
        tooltip=[alt.Tooltip("count():Q", title="neurons")]).properties(width=WIDTH, height=220),
        _data(rows, ["value"]))


def neighbourhood(nodes: pd.DataFrame, links: pd.DataFrame) -> Figure:
    """Neurons (x, y from a layered layout, layer, index, href) and the links between them
    (x, y, x2, y2, weight): colour says the sign, thickness the size; a click opens a neuron."""
    lines = alt.Chart(alt.NamedData(name="links")).mark_rule().encode(
        x=alt.X("x:Q", axis=None), y=alt.Y("y:Q", axis=None), x2="x2:Q", y2="y2:Q",
        color=alt.Color("sign:N", title="link weight", scale=alt.Scale(domain=["positive", "negative"],
                                                                      range=["#1f77b4", "#d62728"])),
        strokeWidth=alt.StrokeWidth("size:Q", title="|weight|", scale=alt.Scale(range=[0.3, 4])),
        tooltip=["from:N", "to:N", alt.Tooltip("weight:Q", format=".4g")])
    points = _chart().mark_circle(size=90, opacity=1).encode(
        x="x:Q", y="y:Q", color=alt.Color("layer:O", title="layer", scale=alt.Scale(scheme="viridis")),
        href="href:N", tooltip=["layer:O", "index:Q", "neuron:N"])
    chart = alt.layer(lines, points).resolve_scale(color="independent").properties(width=WIDTH, height=420)
    return Figure(chart, _data(nodes, ["x", "y", "layer", "index", "neuron", "href"]),
                  {"links": _data(links, ["x", "y", "x2", "y2", "weight", "size", "sign", "from", "to"])})

"""Reports at the sizes people bring: the pretrained MiniLM (44 node layers; one version, and ten
snapshots made by perturbing it) and a 200-version run of a small MLP. Every report in every
format, and every HTML page in headless Chromium: each plot drawn, axes titled, colours keyed,
text inside its plot, a hover that shows a value, a layer choice that redraws."""

import json
import uuid

import numpy as np
import pandas as pd
import pytest
import torch

from nngraph.analysis import render, reports
from nngraph.config import resolve_connection
from nngraph.ingest import compute_metrics, load_network
from nngraph.ingest.edges import EdgePolicy
from nngraph.ingest.topology import from_state_dict
from nngraph.ingest.writer import write_version
from nngraph.store import Store
from report_pages import check_report_page, choosing_a_layer_redraws, chromium_page, hover_shows_a_value
from servers import apply

MINILM_REPORTS = {"learning-dynamics": {}, "strength": {}, "link-weights": {},
                  "ensemble": {"versions": "p*", "metric": "noise", "bin_width": 0.03},
                  "compare": {"versions": "base,p9"}}
LONG_RUN = 200


@pytest.fixture(scope="session")
def minilm_network(real_models):
    return load_network(real_models["minilm"][0])


def _store_of(cli_env):
    patch = pytest.MonkeyPatch()
    apply(cli_env, patch)
    return patch, Store.open(resolve_connection())


@pytest.fixture(scope="module")
def minilm(cli_env, minilm_network):
    """The pretrained MiniLM as version 'base' and nine snapshots p1..p9 with noise growing in k."""
    model = f"minilm-{uuid.uuid4().hex[:6]}"
    patch, store = _store_of(cli_env)
    tensors = dict(minilm_network.tensors)
    try:
        for k in range(10):
            generator = torch.Generator().manual_seed(k)
            moved = {key: t + 0.01 * k * t.std() * torch.randn(t.shape, generator=generator)
                     if k and t.is_floating_point() and t.numel() > 1 else t for key, t in tensors.items()}
            network = minilm_network.topology.bind(moved, f"p{k}")
            write_version(store, network, compute_metrics(network, persistence=False), model=model,
                          tag=f"p{k}" if k else "base", edges=EdgePolicy("none"), progress=False,
                          properties={"step": k, "metric_noise": 0.01 * k} if k else {})
    finally:
        store.close()
        patch.undo()
    return model


@pytest.fixture(scope="module")
def long_run(cli_env):
    """200 versions of a 64-32-16-10 MLP whose weights grow and drift, with an accuracy that
    rises and a seed that never changes (a setting, not a measurement)."""
    model = f"long-{uuid.uuid4().hex[:6]}"
    generator = torch.Generator().manual_seed(0)
    widths = [(64, 32), (32, 16), (16, 10)]
    start = {f"{i}.weight": torch.randn(o, n, generator=generator) / n ** 0.5 for i, (n, o) in enumerate(widths)}
    start |= {f"{i}.bias": torch.zeros(o) for i, (_, o) in enumerate(widths)}
    topology = from_state_dict(start, "long-run")
    patch, store = _store_of(cli_env)
    try:
        for k in range(LONG_RUN):
            tensors = {key: t * (1 + k / LONG_RUN) + 0.01 * torch.randn(t.shape, generator=generator)
                       for key, t in start.items()}
            network = topology.bind(tensors, f"e{k:03d}")
            write_version(store, network, compute_metrics(network, persistence=False), model=model, tag=f"e{k:03d}",
                          edges=EdgePolicy("none"), progress=False,
                          properties={"step": k, "metric_test_accuracy": 0.1 + 0.8 * k / LONG_RUN, "metric_seed": 7})
    finally:
        store.close()
        patch.undo()
    return model


def build(store, name, model, **options):
    return reports.build(store, name, model, reports.Options(**options))


def written_in_every_format(report, folder):
    """Every format of the report; the JSON tables equal the CSV files."""
    for fmt in render.FORMATS:
        render.write(report, folder / fmt, fmt)
    document = json.loads((folder / "json" / f"{report.name}.json").read_text())
    for table, rows in document["tables"].items():
        from_csv = pd.read_csv(folder / "csv" / f"{report.name}-{table}.csv")
        assert len(from_csv) == len(rows) == len(report.tables[table])
    assert (folder / "md" / f"{report.name}-1.png").stat().st_size > 10_000  # a drawn PNG, not an empty one
    return folder / "html" / f"{report.name}.html"


def test_every_minilm_report_reads_in_chromium(store, minilm, tmp_path):
    with chromium_page() as page:
        for name, options in MINILM_REPORTS.items():
            report = build(store, name, minilm, **options)
            assert report.layer_labels[0] == "0 embeddings" and len(report.layer_labels) == 44
            assert any("module embeddings.word_embeddings (Embedding)" in s for s in report.skipped), report.skipped
            page_file = written_in_every_format(report, tmp_path / name)
            assert page_file.stat().st_size < 5_000_000, (name, page_file.stat().st_size)
            check_report_page(page, page_file)


def test_a_single_version_is_a_profile_across_its_layers(store, minilm, tmp_path):
    report = build(store, "learning-dynamics", minilm, versions="base")
    [(_, figure)] = report.figures
    spec = figure.spec()
    assert spec["mark"]["type"] == "bar" and spec["encoding"]["y"]["field"] == "layer_label"
    assert spec["encoding"]["y"]["sort"] == report.layer_labels  # forward order, not alphabetical
    with chromium_page() as page:
        check_report_page(page, written_in_every_format(report, tmp_path))
        bars = page.locator("#figure-1 g.mark-rect > path").count()
    assert bars == report.tables["fluctuation"]["fluctuation"].notna().sum() == 44  # one bar per layer


def test_hovering_shows_values_and_choosing_a_layer_redraws(store, minilm, tmp_path):
    report = build(store, "strength", minilm)
    render.write(report, tmp_path, "html")
    with chromium_page() as page:
        check_report_page(page, tmp_path / "strength.html")
        text = hover_shows_a_value(page, 1)
        assert "node strength" in text and "share" in text and any(c.isdigit() for c in text)
        before, after = choosing_a_layer_redraws(page, 1)
        assert before != after
    many = build(store, "learning-dynamics", minilm)  # 44 layers: a heatmap and a chosen layer's line
    render.write(many, tmp_path, "html")
    with chromium_page() as page:
        check_report_page(page, tmp_path / "learning-dynamics.html")
        assert "fluctuation" in hover_shows_a_value(page, 1)
        assert page.locator("#figure-1 g.mark-rect > path").count() >= 43 * 10  # one cell per layer and version
        choosing_a_layer_redraws(page, 1)


def test_a_200_version_run_reads_in_chromium(store, long_run, tmp_path):
    dynamics = build(store, "learning-dynamics", long_run)
    assert len(dynamics.versions) == LONG_RUN
    assert any("seed" in line and "settings" in line for line in dynamics.skipped)
    assert [caption for caption, _ in dynamics.figures] == ["Layer fluctuation across versions",
                                                           "The stored metrics across versions"]
    panels = dynamics.figures[1][1].spec()["vconcat"]
    assert [p["encoding"]["y"]["title"] for p in panels] == ["test_accuracy"]  # the seed is not plotted
    strength = build(store, "strength", long_run)
    spec = strength.figures[0][1].spec()
    assert "40 of 200 versions drawn" in spec["title"] and spec["encoding"]["color"]["type"] == "quantitative"
    drawn = {row["version"] for row in spec["datasets"]["rows"]}
    assert len(drawn) == 40 and {"e000", "e199"} <= drawn
    ensemble = build(store, "ensemble", long_run)
    with chromium_page() as page:
        for report in (dynamics, strength, ensemble):
            page_file = written_in_every_format(report, tmp_path / report.name)
            check_report_page(page, page_file)


def test_layers_are_chosen_by_index_range_and_pattern(store, minilm):
    by_range = build(store, "learning-dynamics", minilm, layers="0,5:7")
    assert by_range.layers == [0, 5, 6, 7]
    by_name = build(store, "strength", minilm, layers="*intermediate*", versions="p1,p2")
    assert by_name.layer_labels == [f"{6 + 7 * b} encoder.layer.{b}.intermediate.dense" for b in range(6)]
    assert set(by_name.tables["extremes"]["layer"]) == {6 + 7 * b for b in range(6)}
    extremes = by_name.tables["extremes"]
    assert np.all(extremes["min"] <= extremes["max"])


def test_the_page_checks_fail_on_an_unkeyed_colour_and_an_untitled_axis(tmp_path):
    import altair as alt

    from nngraph.analysis.charts import DATA, Figure

    rows = [{"x": i, "y": i * i, "series": f"s{i % 2}"} for i in range(6)]
    for encoding in ({"x": "x:Q", "y": "y:Q", "color": alt.Color("series:N", legend=None)},
                     {"x": alt.X("x:Q", title=None), "y": "y:Q"}):
        chart = alt.Chart(alt.NamedData(name=DATA)).mark_line(point=True).encode(**encoding)
        broken = reports.Report("broken", "A broken plot", "meaning", "m", ["v"], [0], ["0 input"], [],
                                figures=[("caption", Figure(chart, rows))])
        render.write(broken, tmp_path, "html")
        with chromium_page() as page, pytest.raises(AssertionError):
            check_report_page(page, tmp_path / "broken.html")

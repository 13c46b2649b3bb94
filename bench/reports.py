"""Report speed: learning-dynamics and ensemble over 50 versions of a 100k-edge MLP in the
local default, each built and written as HTML, against reading the layer rows alone
(the canned version-layers query) in the same run. Versions are stored with --edges none:
reports read node and layer properties, never links.

Run: python bench/reports.py [--versions N] [--edges E]   (uses a throwaway NNGRAPH_HOME)
"""

import argparse
import tempfile
import time
from pathlib import Path

import torch

from nngraph.analysis import render, reports
from nngraph.analysis.report_data import version_layers
from nngraph.ingest import compute_metrics
from nngraph.ingest.edges import EdgePolicy
from nngraph.ingest.topology import from_state_dict
from nngraph.ingest.writer import write_version

from ingest import mlp_tensors, throwaway_store  # noqa: E402 (bench/ingest.py)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--versions", type=int, default=50)
    parser.add_argument("--edges", type=int, default=100_000)
    args = parser.parse_args()
    out = Path(tempfile.mkdtemp(prefix="nngraph-reports-"))
    with throwaway_store() as store:
        start = time.perf_counter()
        for k in range(args.versions):
            tensors = {key: t * (1 + k / args.versions) for key, t in mlp_tensors(args.edges).items()}
            network = from_state_dict(tensors, "bench").bind(tensors, "bench")
            write_version(store, network, compute_metrics(network, persistence=False), model="bench",
                          tag=f"v{k:03d}", properties={"step": k, "metric_test_accuracy": k / args.versions},
                          edges=EdgePolicy("none"), progress=False)
        print(f"setup: {args.versions} versions of a {args.edges:,}-edge MLP stored (metrics only) in "
              f"{time.perf_counter() - start:.1f} s")
        start = time.perf_counter()
        version_layers(store, "bench")
        reference = time.perf_counter() - start
        print(f"reading the layer rows alone: {reference:.2f} s")
        for name in ("learning-dynamics", "ensemble"):
            start = time.perf_counter()
            render.write(reports.build(store, name, "bench", reports.Options()), out, "html")
            seconds = time.perf_counter() - start
            print(f"{name}: {seconds:.2f} s for {args.versions} versions, HTML written (target < 10 s); "
                  f"{seconds / reference:.1f}x reading the layer rows")


if __name__ == "__main__":
    main()

"""Export speed: links per second written to neo4j-admin import files (CSV and Parquet) for
a big MLP, against writing the raw weight bytes to disk in the same run, and the memory
peak above the model itself (bounded by the link block, not by the model).

Run: python bench/export.py [--edges N] [--format csv|parquet|both]   (writes into a temp dir)
"""

import argparse
import resource
import shutil
import tempfile
import time
from pathlib import Path

import torch

from nngraph.ingest import compute_metrics
from nngraph.ingest.edges import EdgePolicy
from nngraph.ingest.export import Exporter
from nngraph.ingest.topology import from_state_dict


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--edges", type=int, default=100_000_000)
    parser.add_argument("--format", choices=["csv", "parquet", "both"], default="both")
    args = parser.parse_args()
    width = int((args.edges / 4) ** 0.5)  # four square layers
    torch.manual_seed(0)
    tensors = {}
    for k in range(4):
        tensors[f"fc{k}.weight"] = torch.randn(width, width)
        tensors[f"fc{k}.bias"] = torch.randn(width)
    network = from_state_dict(tensors, "bench").bind(tensors, "bench")
    metrics = compute_metrics(network, persistence=False)
    edges = sum(t.numel() for key, t in tensors.items() if key.endswith("weight"))
    scratch = Path(tempfile.mkdtemp(prefix="nngraph-export-bench-"))
    try:
        start = time.perf_counter()
        for key, tensor in tensors.items():
            tensor.numpy().tofile(scratch / key)
        raw = time.perf_counter() - start
        print(f"model: {edges:,} weights in 4 layers of {width}x{width}; raw weight bytes to disk {raw:.1f} s; "
              f"peak RSS so far {peak_rss_mb():,.0f} MB")
        for fmt in (["csv", "parquet"] if args.format == "both" else [args.format]):
            before = peak_rss_mb()
            start = time.perf_counter()
            with Exporter(scratch / fmt, fmt) as exporter:
                links = exporter.add_version(network, metrics, model="bench", tag="v1", uid="bench-v1",
                                             properties={}, edges=EdgePolicy())
                exporter.finish()
            seconds = time.perf_counter() - start
            size = sum(p.stat().st_size for p in (scratch / fmt).iterdir()) / 1e9
            print(f"{fmt}: {links:,} links in {seconds:.1f} s = {links / seconds / 1e6:.2f} M links/s "
                  f"(target >= 2 M/s), {seconds / raw:.1f}x the raw bytes; {size:.2f} GB on disk; "
                  f"peak RSS +{max(0.0, peak_rss_mb() - before):,.0f} MB over the run before")
            shutil.rmtree(scratch / fmt)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()

"""Ingest speed into the local default: edges per second for a ~1M-edge MLP version, end to
end (metrics, neurons, links, publish), against the time of the metrics alone in the same run.

Run: python bench/ingest.py [--edges N]   (uses a throwaway NNGRAPH_HOME)
"""

import argparse
import os
import tempfile
import time

import torch

from nngraph.config import resolve_connection
from nngraph.ingest import compute_metrics
from nngraph.ingest.topology import from_state_dict
from nngraph.ingest.writer import write_version
from nngraph.server import LocalServer
from nngraph.store import Store


def mlp_tensors(edges: int) -> dict:
    width = int((edges / 3) ** 0.5)  # three square layers
    torch.manual_seed(0)
    return {key: torch.randn(width, width) if key.endswith("weight") else torch.randn(width)
            for k in range(3) for key in (f"fc{k}.weight", f"fc{k}.bias")}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--edges", type=int, default=1_000_000)
    args = parser.parse_args()
    os.environ["NNGRAPH_HOME"] = tempfile.mkdtemp(prefix="nngraph-bench-")
    tensors = mlp_tensors(args.edges)
    network = from_state_dict(tensors, "bench").bind(tensors, "bench")
    start = time.perf_counter()
    metrics = compute_metrics(network, persistence=False)
    metrics_time = time.perf_counter() - start
    server = LocalServer()
    try:
        with Store.open(resolve_connection()) as store:
            start = time.perf_counter()
            result = write_version(store, network, metrics, model="bench", tag="v1", progress=False)
            total = time.perf_counter() - start + metrics_time
    finally:
        server.stop()
    print(f"{result.links:,} links, {result.neurons:,} neurons into the local default: {total:.1f} s end to end, "
          f"{result.links / total:,.0f} edges/s (target >= 40,000); metrics alone {metrics_time:.2f} s "
          f"({total / metrics_time:,.0f}x of it)")


if __name__ == "__main__":
    main()

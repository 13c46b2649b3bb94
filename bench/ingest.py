"""Ingest speed into the local default, and how fast Bolt batches for Neo4j are encoded.

1. A ~1M-edge MLP version end to end (metrics, neurons, links, publish) into the local
   default, against the metrics alone in the same run; --width-ratio R makes the first
   layer R times wider than the others (a wide source layer costs every link batch more).
2. Client-side encoding of the Bolt link batches (rows built from the weight arrays and
   packed by the driver's packstream encoder, neo4j-rust-ext when installed), against a
   row per edge keyed by uid strings, the naive format, in the same run.

Run: python bench/ingest.py [--edges N] [--width-ratio R]   (uses a throwaway NNGRAPH_HOME)
"""

import argparse
import os
import shutil
import tempfile
import time
from contextlib import contextmanager

import torch

from nngraph.config import resolve_connection
from nngraph.ingest import compute_metrics
from nngraph.ingest.edges import EdgePolicy
from nngraph.ingest.topology import from_state_dict
from nngraph.ingest.writer import link_batches, write_version
from nngraph.servers import managed_server
from nngraph.store import Store


def mlp_tensors(edges: int, width_ratio: int = 1) -> dict:
    width = int((edges / (2 + width_ratio)) ** 0.5)  # input R*width wide, then width, width, width
    widths = [width_ratio * width, width, width, width]
    torch.manual_seed(0)
    tensors = {}
    for k in range(3):
        tensors[f"fc{k}.weight"] = torch.randn(widths[k + 1], widths[k])
        tensors[f"fc{k}.bias"] = torch.randn(widths[k + 1])
    return tensors


@contextmanager
def throwaway_store(server: str = "arcadedb"):
    """A store on a fresh managed server (arcadedb or neo4j) in a temporary NNGRAPH_HOME; the
    server stopped and its home removed after (a Neo4j home holds hundreds of MB)."""
    home = tempfile.mkdtemp(prefix="nngraph-bench-")
    os.environ.update(NNGRAPH_HOME=home, NNGRAPH_SERVER=server)
    managed = managed_server(server)
    try:
        with Store.open(resolve_connection()) as store:
            yield store
    finally:
        managed.stop()
        shutil.rmtree(home, ignore_errors=True)


def ingest_rate(edges: int, width_ratio: int) -> None:
    tensors = mlp_tensors(edges, width_ratio)
    network = from_state_dict(tensors, "bench").bind(tensors, "bench")
    start = time.perf_counter()
    metrics = compute_metrics(network, persistence=False)
    metrics_time = time.perf_counter() - start
    with throwaway_store() as store:
        start = time.perf_counter()
        result = write_version(store, network, metrics, model="bench", tag="v1", progress=False)
        total = time.perf_counter() - start + metrics_time
    print(f"{result.links:,} links, {result.neurons:,} neurons (input layer {width_ratio}x wider) into the local "
          f"default in {total:.1f} s end to end: {result.links / total:,.0f} edges/s (target >= 40,000); "
          f"{total / metrics_time:,.0f}x the metrics alone ({metrics_time:.2f} s)")


def encoding_rate(edges: int) -> None:
    from neo4j._codec.packstream import v1 as packstream

    class Counter:
        size = 0

        def write(self, data):
            self.size += len(data)

    width = int(edges ** 0.5)
    sources, targets, values = EdgePolicy().select(torch.randn(width, width))
    packer = packstream.Packer(Counter())

    def grouped():
        for rows, _ in link_batches(sources, targets, values):
            packer.pack({"rows": rows})

    def per_edge_uids():
        rows = [[f"0123456789abcdef:1:{i}", f"0123456789abcdef:2:{j}", w]
                for i, j, w in zip(sources.tolist(), targets.tolist(), values.tolist())]
        for start in range(0, len(rows), 10_000):
            packer.pack({"rows": rows[start:start + 10_000]})

    timings = {}
    for name, encode in (("per-edge uid rows", per_edge_uids), ("grouped rows", grouped)):
        start = time.perf_counter()
        encode()
        timings[name] = time.perf_counter() - start
    rust = "neo4j-rust-ext" if packstream._rust_pack else "pure-Python packstream"
    reference = timings["per-edge uid rows"]
    for name, seconds in timings.items():
        print(f"encode {len(values):,} links as {name} ({rust}): {len(values) / seconds:,.0f} edges/s "
              f"(target >= 1,000,000), {reference / seconds:.1f}x the per-edge rows")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--edges", type=int, default=1_000_000)
    parser.add_argument("--width-ratio", type=int, default=1)
    args = parser.parse_args()
    encoding_rate(args.edges)
    ingest_rate(args.edges, args.width_ratio)


if __name__ == "__main__":
    main()

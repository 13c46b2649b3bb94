"""Analysis speed on a 1M-edge version in the local default, local engine: the edge fetch
alone, then PageRank, Louvain and sampled betweenness each end to end (fetch + algorithm +
writing the results), with each algorithm's own share against the fetch in the same run.

Run: python bench/analysis.py [--edges N] [--samples K]   (uses a throwaway NNGRAPH_HOME)
"""

import argparse
import time

from nngraph.analysis import local
from nngraph.analysis.algorithms import Request
from nngraph.analysis.run import analyze, select_versions
from nngraph.analysis.version_graph import fetch
from nngraph.ingest import compute_metrics
from nngraph.ingest.topology import from_state_dict
from nngraph.ingest.writer import write_version

from ingest import mlp_tensors, throwaway_store  # noqa: E402 (bench/ingest.py, run from the repository root or bench/)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--edges", type=int, default=1_000_000)
    parser.add_argument("--samples", type=int, default=64)
    args = parser.parse_args()
    tensors = mlp_tensors(args.edges)
    network = from_state_dict(tensors, "bench").bind(tensors, "bench")
    with throwaway_store() as store:
        write_version(store, network, compute_metrics(network, persistence=False), model="bench", tag="v1",
                      progress=False)
        versions = select_versions(store, "bench")
        start = time.perf_counter()
        graph = fetch(store, versions[0]["uid"])
        fetch_seconds = time.perf_counter() - start
        print(f"edge fetch: {len(graph.weights):,} links of {graph.nodes:,} neurons in {fetch_seconds:.2f} s "
              f"({len(graph.weights) / fetch_seconds:,.0f} links/s)")
        for request in (Request.build("pagerank"), Request.build("louvain"),
                        Request.build("betweenness", samples=args.samples)):
            sources, targets, weights = graph.edges(request.weights)
            start = time.perf_counter()
            local.run(request, graph.nodes, sources, targets, weights)
            algorithm = time.perf_counter() - start
            start = time.perf_counter()
            analyze(store, versions, [request], "local", progress=False)
            total = time.perf_counter() - start
            name = request.algorithm.name + (f" ({args.samples} samples)" if request.parameters.get("samples") else "")
            print(f"{name}: {total:.2f} s end to end (target < 10 s); the algorithm alone {algorithm:.2f} s = "
                  f"{algorithm / fetch_seconds:.2f}x the fetch")


if __name__ == "__main__":
    main()

"""The two managed servers side by side, in one run: ArcadeDB and Neo4j with OpenGDS.

1. Cold start (a fresh home: Neo4j's jars from the local Maven cache, its password, the first
   start) and warm start (stop, start again) of each.
2. Ingest of a ~1M-link MLP version into each (target: at least 150k links/s into Neo4j), a
   second time once the server has warmed up, and the first into the fresh server beside it.
3. On Neo4j, PageRank, Louvain and sampled betweenness on that version end to end through GDS
   (project, estimate, stream, write back; target: each under 3 s; the first run after a
   start also pays the server's warm-up, shown beside), against the local engine on the same
   store in the same run; and GDS's native projection against the Cypher projection nngraph
   uses (which selects one version).
4. `nngraph db import` of an N-link export from Parquet into Neo4j (neo4j-admin; target: at
   least 1M links/s), against writing the export in the same run.

Run: python bench/servers.py [--edges N] [--import-edges N] [--samples K]   (throwaway homes)
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from nngraph.analysis.algorithms import Request
from nngraph.analysis.run import analyze, select_versions
from nngraph.config import resolve_connection
from nngraph.ingest import compute_metrics
from nngraph.ingest.topology import from_state_dict
from nngraph.ingest.writer import write_version
from nngraph.servers import managed_server
from nngraph.store import Store

from ingest import mlp_tensors  # noqa: E402 (bench/ingest.py, run from the repository root or bench/)

NATIVE = "CALL gds.graph.project($name, 'Neuron', {LINK: {properties: 'weight'}}) YIELD relationshipCount " \
         "RETURN relationshipCount"
CYPHER_PROJECTION = """
MATCH (a:Neuron {version: $version})
OPTIONAL MATCH (a)-[r:LINK]->(b:Neuron)
RETURN gds.graph.project($name, a, b, {relationshipProperties: {weight: coalesce(r.weight, 0.0)}}).relationshipCount
       AS relationshipCount"""
DROP = "CALL gds.graph.drop($name) YIELD graphName RETURN graphName"


def timed(work):
    start = time.perf_counter()
    result = work()
    return time.perf_counter() - start, result


def starts(kind: str, home: Path) -> tuple[float, float]:
    os.environ.update(NNGRAPH_HOME=str(home), NNGRAPH_SERVER=kind)
    server = managed_server()
    cold, _ = timed(server.start)
    server.stop()
    warm, _ = timed(server.start)
    return cold, warm


def ingest(network, metrics) -> tuple[float, float]:
    """Links/s of the first ingest into the fresh server, and of a second one (server warmed up)."""
    rates = []
    with Store.open(resolve_connection()) as store:
        for tag in ("v1", "v2"):
            seconds, result = timed(lambda: write_version(store, network, metrics, model="bench", tag=tag,
                                                          progress=False))
            rates.append(result.links / seconds)
    return rates[0], rates[1]


def algorithms(samples: int) -> None:
    with Store.open(resolve_connection()) as store:
        versions = select_versions(store, "bench")[:1]
        for name, options in (("pagerank", {}), ("louvain", {}), ("betweenness", {"samples": samples})):
            request = Request.build(name, **options)
            cold, _ = timed(lambda: analyze(store, versions, [request], "gds", progress=False))
            gds, _ = timed(lambda: analyze(store, versions, [request], "gds", progress=False))
            local, _ = timed(lambda: analyze(store, versions, [request], "local", progress=False))
            print(f"  {name}{f' ({samples} samples)' if options else ''} through GDS: {gds:.2f} s end to end "
                  f"(target < 3 s; its first run after the start {cold:.2f} s); the local engine on the same store "
                  f"{local:.2f} s = {local / gds:.1f}x GDS")
        uid = versions[0]["uid"]
        for label, query, parameters in (("native", NATIVE, {}), ("Cypher", CYPHER_PROJECTION, {"version": uid})):
            seconds, rows = timed(lambda: store.read(query, {**parameters, "name": f"bench-{label}"}))
            store.read(DROP, {"name": f"bench-{label}"})
            print(f"  {label} projection: {rows[0]['relationshipCount']:,} links in {seconds:.2f} s")


def bulk_import(edges: int, work: Path) -> None:
    tensors = mlp_tensors(edges)
    import torch

    torch.save(tensors, work / "big.pt")
    nngraph = [sys.executable, "-m", "nngraph"]
    exported, _ = timed(lambda: subprocess.run([*nngraph, "export", str(work / "big.pt"), "--model", "big", "--to",
                                                str(work / "files"), "--format", "parquet", "--edges", "all"],
                                               check=True, capture_output=True))
    imported, done = timed(lambda: subprocess.run([*nngraph, "db", "import", str(work / "files"), "--yes"],
                                                  capture_output=True, text=True))
    if done.returncode:
        raise SystemExit(f"nngraph db import failed: {done.stderr.strip().splitlines()[-1]}")
    size = sum(f.stat().st_size for f in (work / "files").iterdir()) / 1e9
    print(f"  neo4j-admin import of {edges:,} links from Parquet ({size:.1f} GB): {imported:.1f} s, "
          f"{edges / imported:,.0f} links/s (target >= 1,000,000), {imported / exported:.2f}x writing the export "
          f"({exported:.1f} s; the time includes stopping and starting the server)")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--edges", type=int, default=1_000_000)
    parser.add_argument("--import-edges", type=int, default=100_000_000)
    parser.add_argument("--samples", type=int, default=64)
    args = parser.parse_args()
    tensors = mlp_tensors(args.edges)
    network = from_state_dict(tensors, "bench").bind(tensors, "bench")
    metrics = compute_metrics(network, persistence=False)
    work = Path(tempfile.mkdtemp(prefix="nngraph-bench-"))
    rates = {}
    try:
        for kind in ("arcadedb", "neo4j"):
            cold, warm = starts(kind, work / kind)
            print(f"{kind}: cold start {cold:.1f} s (fresh home), warm start {warm:.1f} s")
            first, rates[kind] = ingest(network, metrics)
            print(f"  ingest of {args.edges:,} links: {rates[kind]:,.0f} links/s"
                  + (" (target >= 150,000)" if kind == "neo4j" else "")
                  + f"; the first into the fresh server {first:,.0f} links/s")
            if kind == "neo4j":
                print(f"  Neo4j ingests {rates['neo4j'] / rates['arcadedb']:.2f}x as fast as ArcadeDB")
                algorithms(args.samples)
                if args.import_edges:
                    bulk_import(args.import_edges, work)
            managed_server().stop()
    finally:
        for kind in ("arcadedb", "neo4j"):
            os.environ.update(NNGRAPH_HOME=str(work / kind), NNGRAPH_SERVER=kind)
            managed_server().stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

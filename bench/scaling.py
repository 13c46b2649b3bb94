"""How ingest cost grows: time, client memory peak, server memory peak and database size
for MLP versions of 10k, 100k, 1M and 10M edges, and for 1, 10 and 100 versions of one
model; each point in a fresh child process and a fresh local database, so peaks are its own.
Prints the growth exponent of each (slope on log-log: 1 is linear).

Run: python bench/scaling.py [--max-edges N] [--max-versions N]
"""

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def point(edges: int, versions: int) -> dict:
    """One measurement, in this (child) process."""
    from ingest import mlp_tensors
    from nngraph.config import resolve_connection
    from nngraph.ingest import compute_metrics
    from nngraph.ingest.topology import from_state_dict
    from nngraph.ingest.writer import write_version
    from nngraph.server import LocalServer
    from nngraph.store import Store

    home = Path(tempfile.mkdtemp(prefix="nngraph-scaling-"))
    os.environ["NNGRAPH_HOME"] = str(home)
    server = LocalServer()
    try:
        with Store.open(resolve_connection()) as store:
            start = time.perf_counter()
            for k in range(versions):
                tensors = {key: t * (1 + k / 100) for key, t in mlp_tensors(edges).items()}
                network = from_state_dict(tensors, "bench").bind(tensors, "bench")
                write_version(store, network, compute_metrics(network, persistence=False), model="bench",
                              tag=f"v{k}", progress=False)
            seconds = time.perf_counter() - start
        server_peak = _peak_kb(server.status().pid)
    finally:
        server.stop()
    size = sum(p.stat().st_size for p in (home / "arcadedb" / "databases").rglob("*") if p.is_file())
    shutil.rmtree(home, ignore_errors=True)  # measured: the database is not needed again
    return {"edges": edges, "versions": versions, "seconds": seconds,
            "client_peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "server_peak_mb": server_peak / 1024, "database_mb": size / 1e6}


def _peak_kb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return float(line.split()[1])
    return float("nan")


def measure(edges: int, versions: int) -> dict:
    done = subprocess.run([sys.executable, __file__, "--point", str(edges), str(versions)], check=True,
                          capture_output=True, text=True, cwd=Path(__file__).parent)
    return json.loads(done.stdout.strip().splitlines()[-1])


def exponent(xs, ys) -> float:
    return float(np.polyfit(np.log(xs), np.log(ys), 1)[0])


def report(rows, by: str) -> None:
    print(f"{by:>9} {'seconds':>8} {'edges/s':>9} {'client MB':>10} {'server MB':>10} {'db MB':>8}")
    for row in rows:
        total = row["edges"] * row["versions"]
        print(f"{row[by]:>9,} {row['seconds']:>8.2f} {total / row['seconds']:>9,.0f} {row['client_peak_mb']:>10.0f} "
              f"{row['server_peak_mb']:>10.0f} {row['database_mb']:>8.1f}")
    for part, label in ((rows, "over all points"), (rows[-2:], "between the two largest")):
        xs = [row[by] for row in part]
        print(f"growth exponents in {by} {label}: time {exponent(xs, [r['seconds'] for r in part]):.2f}, "
              f"database size {exponent(xs, [r['database_mb'] for r in part]):.2f}, "
              f"client memory {exponent(xs, [r['client_peak_mb'] for r in part]):.2f}")
    print("(targets: time and size linear, exponent 1 at most; memory bounded by the batch, well under 1)\n")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--point", nargs=2, type=int, metavar=("EDGES", "VERSIONS"))
    parser.add_argument("--max-edges", type=int, default=10_000_000)
    parser.add_argument("--max-versions", type=int, default=100)
    args = parser.parse_args()
    if args.point:
        print(json.dumps(point(*args.point)))
        return
    sizes = [n for n in (10_000, 100_000, 1_000_000, 10_000_000) if n <= args.max_edges]
    report([measure(n, 1) for n in sizes], "edges")
    counts = [n for n in (1, 10, 100) if n <= args.max_versions]
    report([measure(10_000, n) for n in counts], "versions")


if __name__ == "__main__":
    main()

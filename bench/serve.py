"""nngraph serve latencies (issue 19): every page and API endpoint of a model with N versions
(500 by default) of a 1M-edge MLP, in the local default, served by uvicorn in this process and
fetched over HTTP; median and 95th percentile of R requests each, against the Session read
the page is built on (the versions DataFrame) in the same run. Versions are stored metrics-only
except the last, which carries its million links: that is the one whose neurons are opened.

Run: python bench/serve.py [--versions N] [--edges E] [--repeat R]   (uses a throwaway NNGRAPH_HOME)
"""

import argparse
import secrets
import statistics
import time

import httpx

from nngraph.config import resolve_connection
from nngraph.ingest import compute_metrics
from nngraph.ingest.edges import EdgePolicy
from nngraph.ingest.topology import from_state_dict
from nngraph.ingest.writer import write_version
from nngraph.session import Session
from nngraph.store import Store
from nngraph.web.serve import in_background

from ingest import mlp_tensors, throwaway_store  # noqa: E402 (bench/ingest.py)


def store_model(store, versions: int, edges: int) -> str:
    tensors = mlp_tensors(edges)
    topology = from_state_dict(tensors, "bench")
    start = time.perf_counter()
    for k in range(versions):
        moved = {key: t * (1 + k / versions) for key, t in tensors.items()}
        network = topology.bind(moved, f"v{k}")
        write_version(store, network, compute_metrics(network, persistence=False), model="mlp", tag=f"v{k:04d}",
                      properties={"step": k, "metric_test_accuracy": k / versions},
                      edges=EdgePolicy("all" if k == versions - 1 else "none"), progress=False)
    print(f"{versions} versions of a {edges:,}-edge MLP stored in {time.perf_counter() - start:.0f} s "
          f"(links for the last one only)")
    return f"v{versions - 1:04d}"


def timed(fetch, repeat: int) -> tuple[float, float]:
    seconds = []
    for _ in range(repeat):
        start = time.perf_counter()
        fetch()
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds), statistics.quantiles(seconds, n=20)[-1]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--versions", type=int, default=500)
    parser.add_argument("--edges", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    with throwaway_store() as store:
        last = store_model(store, args.versions, args.edges)
        token = secrets.token_urlsafe(16)
        with in_background(lambda: Session(Store.open(resolve_connection())), token) as served:
            time_pages(httpx.Client(base_url=served.base, timeout=120, cookies={"nngraph_token": token}),
                       Session(store), last, args)


def time_pages(client, session, last: str, args) -> None:
    """Median and 95th percentile of every page and endpoint, against the Session read."""
    reference, _ = timed(lambda: session.versions("mlp"), args.repeat)
    print(f"reference, the versions DataFrame through the Session: median {reference * 1000:.0f} ms")
    version = f"/models/mlp/versions/{last}"
    pages = {"models": "/", f"versions ({args.versions} rows)": "/models/mlp",
             "versions filtered": "/models/mlp?tag=v00*",
             "version": version, "layer": f"{version}/layers/1", "neuron, depth 1": f"{version}/layers/1/neurons/0",
             "neuron, depth 2": f"{version}/layers/1/neurons/0?depth=2",
             "canned query": f"/queries/strength-growth?model=mlp&before=v0000&after={last}&limit=20",
             "api versions": "/api/models/mlp/versions", "api neurons": f"/api{version}/layers/1/neurons",
             "api neuron": f"/api{version}/layers/1/neurons/0"}
    print(f"{'page':24} {'median':>9} {'p95':>9}  vs reference (target: every page < 1 s)")
    for name, path in pages.items():
        assert client.get(path).status_code == 200, path
        median, p95 = timed(lambda: client.get(path), args.repeat)
        print(f"{name:24} {median * 1000:7.0f} ms {p95 * 1000:7.0f} ms  {median / reference:5.1f}x")


if __name__ == "__main__":
    main()

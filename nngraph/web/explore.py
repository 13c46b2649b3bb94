"""What the pages and the JSON API show, read through a Session (the same canned queries and
DataFrames as the CLI and the Python API), as plain rows. Every read is bounded: a neuron's
links and its neighbourhood stop at fixed limits and say what they left out."""

from __future__ import annotations

import fnmatch

import pandas as pd

from nngraph.errors import NNGraphError

LINKS_SHOWN = 25  # strongest links per direction on a neuron's page
NEIGHBOURS_PER_NEURON = 8  # strongest links followed from each neuron of the neighbourhood
MAX_NEIGHBOURHOOD_LINKS = 400
MAX_DEPTH = 3
TOP_NEURONS = 10

LINKS = {
    "in": """MATCH (n:Neuron {uid: $uid})<-[r:LINK]-(other:Neuron)
RETURN other.layer AS layer, other.index AS index, r.weight AS weight ORDER BY abs(r.weight) DESC LIMIT $limit""",
    "out": """MATCH (n:Neuron {uid: $uid})-[r:LINK]->(other:Neuron)
RETURN other.layer AS layer, other.index AS index, r.weight AS weight ORDER BY abs(r.weight) DESC LIMIT $limit""",
}
# `WITH n MATCH`: ArcadeDB planned the one-pattern count as a scan (150 ms on a small store; 4.5 ms so)
LINK_COUNTS = {"in": "MATCH (n:Neuron {uid: $uid}) WITH n MATCH (n)<-[r:LINK]-() RETURN count(r) AS links",
               "out": "MATCH (n:Neuron {uid: $uid}) WITH n MATCH (n)-[r:LINK]->() RETURN count(r) AS links"}
NEURON = "MATCH (n:Neuron {uid: $uid}) RETURN properties(n) AS properties"
SKIPPED = """MATCH (v:Version {uid: $uid})-[:SKIPPED]->(s:Skipped)
RETURN s.name AS name, s.kind AS kind, s.reason AS reason ORDER BY name"""
VERSION = "MATCH (v:Version {uid: $uid}) RETURN properties(v) AS properties"
VERSION_METRICS = """MATCH (:Model {name: $model})-[:HAS_VERSION]->(v:Version)
RETURN v.tag AS version, properties(v) AS properties"""
CYPHER = [*LINKS.values(), *LINK_COUNTS.values(), NEURON, SKIPPED, VERSION, VERSION_METRICS]


def _link_counts(session, uid: str) -> dict[str, int]:
    return {side: session.store.read(text, {"uid": uid})[0]["links"] for side, text in LINK_COUNTS.items()}


def models(session) -> list[dict]:
    """Each model with its number of versions, step range and stored metrics."""
    versions = session.versions()
    found = []
    for row in session.models().to_dict("records"):
        mine = versions[versions["model"] == row["model"]] if len(versions) else versions
        steps = mine["step"].dropna() if len(mine) else pd.Series(dtype=float)
        stored = session.query(VERSION_METRICS, model=row["model"])["properties"] if len(mine) else []
        metrics = sorted({k.removeprefix("metric_") for p in stored for k in p if k.startswith("metric_")})
        found.append({**row, "first_step": steps.min() if len(steps) else None,
                      "last_step": steps.max() if len(steps) else None, "metrics": ", ".join(metrics)})
    return found


def versions(session, model: str) -> pd.DataFrame:
    """A model's versions in step order with their stored metrics."""
    frame = session.versions(model)
    metrics = session.query(VERSION_METRICS, model=model)
    by_tag = {row["version"]: {k: v for k, v in row["properties"].items() if k.startswith("metric_")}
              for row in metrics.to_dict("records")}
    frame = pd.concat([frame, pd.DataFrame([by_tag.get(t, {}) for t in frame["version"]], index=frame.index)], axis=1)
    return frame.drop(columns=["uid"], errors="ignore")


def chosen(frame: pd.DataFrame, tag: str | None = None, steps: str | None = None, sort: str | None = None,
           descending: bool = False) -> pd.DataFrame:
    """Versions filtered by a tag pattern and a step range FIRST:LAST, sorted by any column."""
    if tag:
        frame = frame[[fnmatch.fnmatchcase(t, tag) for t in frame["version"]]]
    if steps:
        low, _, high = steps.partition(":")
        try:
            low, high = (float(x) if x.strip() else None for x in (low, high))
        except ValueError:
            raise ValueError(f"steps {steps!r}: expected FIRST:LAST, like 0:100") from None
        keep = frame["step"].notna()
        if low is not None:
            keep &= frame["step"] >= low
        if high is not None:
            keep &= frame["step"] <= high
        frame = frame[keep]
    if sort:
        if sort not in frame.columns:
            raise ValueError(f"sort {sort!r}: choose a column, one of {', '.join(frame.columns)}")
        frame = frame.sort_values(sort, ascending=not descending, na_position="last", kind="stable")
    return frame


def version(session, model: str, tag: str) -> dict:
    """A version: its properties, its layers in forward order, its skipped modules, the analyses
    run on it (`nngraph analyze` records each run's parameters as <property>_parameters)."""
    uid = session.uid(model, tag)
    properties = session.store.read(VERSION, {"uid": uid})[0]["properties"]
    layers = session.layers(model, tag)
    analyses = sorted(k.removesuffix("_parameters") for k in properties if k.endswith("_parameters"))
    return {"uid": uid, "properties": properties, "layers": layers,
            "skipped": session.store.read(SKIPPED, {"uid": uid}), "analyses": analyses}


INGESTED = {"uid", "version", "layer", "index", "channel", "row", "col"}


def layer(session, model: str, tag: str, index: int) -> dict:
    """A layer: its neurons' strengths and, per stored number, its top neurons."""
    neurons = session.neurons(model, tag, index)
    numeric = [c for c in neurons.columns if c not in INGESTED and pd.api.types.is_numeric_dtype(neurons[c])]
    top = {c: neurons.nlargest(TOP_NEURONS, c)[["index", c]].to_dict("records") for c in numeric}
    return {"neurons": neurons, "properties": numeric, "top": top}


def neuron(session, model: str, tag: str, layer_index: int, index: int) -> dict:
    """A neuron: its stored properties and its strongest links each way, with how many it has."""
    uid = f"{session.uid(model, tag)}:{layer_index}:{index}"
    found = session.store.read(NEURON, {"uid": uid})
    if not found:
        raise NNGraphError(f"{model} {tag} layer {layer_index} has no neuron {index}")
    links = {side: session.store.read(text, {"uid": uid, "limit": LINKS_SHOWN}) for side, text in LINKS.items()}
    return {"uid": uid, "properties": found[0]["properties"], "links": links, "counts": _link_counts(session, uid)}


def neighbourhood(session, uid: str, depth: int) -> dict:
    """Neurons within `depth` links of one, following each neuron's strongest links both ways,
    at most MAX_NEIGHBOURHOOD_LINKS links; what was left out is counted."""
    version_uid, layer_index, index = uid.rsplit(":", 2)
    nodes = {(int(layer_index), int(index))}
    links, frontier, cut = set(), [uid], 0
    for _ in range(min(depth, MAX_DEPTH)):
        following = []
        for current in frontier:
            counts = _link_counts(session, current)
            here = tuple(int(x) for x in current.rsplit(":", 2)[1:])
            for side, text in LINKS.items():
                rows = session.store.read(text, {"uid": current, "limit": NEIGHBOURS_PER_NEURON})
                cut += counts[side] - len(rows)
                for row in rows:
                    other = (row["layer"], row["index"])
                    link = (other, here, row["weight"]) if side == "in" else (here, other, row["weight"])
                    if len(links) >= MAX_NEIGHBOURHOOD_LINKS and link not in links:
                        cut += 1
                        continue
                    links.add(link)
                    if other not in nodes:
                        nodes.add(other)
                        following.append(f"{version_uid}:{other[0]}:{other[1]}")
        frontier = following
    return {"nodes": sorted(nodes), "links": sorted(links), "left_out": cut}

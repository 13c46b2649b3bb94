"""The Python API for notebooks: `nngraph.connect()` and DataFrames of what is stored.

    import nngraph
    with nngraph.connect() as db:                 # the local default, or connect("bolt://...", ...)
        db.models()                               # model, versions
        db.versions("digits-mlp")                 # model, version, step, ..., uid
        db.layers("digits-mlp", "s0-x1-e12")      # one row per layer, every stored property
        db.neurons("digits-mlp", "s0-x1-e12", 1)  # one row per neuron of layer 1
        db.query("MATCH (m:Model) RETURN m.name AS name")
        db.report("activations", "digits-mlp")    # shows inline in Jupyter; .save("out", "html")

Every method reads through the Store (read-only, parameters as parameters), with the same
canned queries as the CLI, so the numbers are the CLI's.
"""

from __future__ import annotations

from pathlib import Path

from nngraph.errors import NNGraphError, closest

VERSION_UID = """
MATCH (:Model {name: $model})-[:HAS_VERSION]->(v:Version)
RETURN v.tag AS tag, v.uid AS uid"""
LAYERS = """
MATCH (l:Layer {version: $version})
RETURN properties(l) AS properties ORDER BY l.index"""
NEURONS = """
MATCH (n:Neuron {version: $version, layer: $layer})
RETURN properties(n) AS properties ORDER BY n.index"""
CYPHER = [VERSION_UID, LAYERS, NEURONS]


def connect(uri: str | None = None, user: str | None = None, password: str | None = None,
            database: str | None = None) -> "Session":
    """A session on the configured database (NEO4J_* variables, the config file, else the local
    default, started if needed) or on `uri`."""
    from nngraph.config import resolve_connection
    from nngraph.store import Store

    return Session(Store.open(resolve_connection(uri=uri, user=user, password=password, database=database)))


class Session:
    def __init__(self, store):
        self.store = store

    def models(self):
        from nngraph.queries import load

        return self._frame(self.store.read(load("models")))

    def versions(self, model: str | None = None):
        from nngraph.queries import load, unknown_model

        rows = self.store.read(load("versions"), {"model": model})
        if model is not None and not rows:
            raise unknown_model(self.store, model)
        uids = {row["tag"]: row["uid"] for row in self.store.read(VERSION_UID, {"model": model})} if model else {}
        frame = self._frame(rows)
        if uids:
            frame["uid"] = frame["version"].map(uids)
        return frame

    def layers(self, model: str, version: str):
        rows = self.store.read(LAYERS, {"version": self.uid(model, version)})
        return self._frame([row["properties"] for row in rows])

    def neurons(self, model: str, version: str, layer: int):
        rows = self.store.read(NEURONS, {"version": self.uid(model, version), "layer": int(layer)})
        if not rows:
            raise NNGraphError(f"{model} {version} has no layer {layer}: `layers()` lists its layers")
        return self._frame([row["properties"] for row in rows])

    def query(self, cypher: str, **parameters):
        """A read-only Cypher query; parameters are sent as parameters."""
        return self._frame(self.store.read(cypher, parameters))

    def report(self, name: str, model: str, **options) -> "ReportView":
        """A canned report (`nngraph report list`); options as the CLI's (versions, metric, bin_width...)."""
        from nngraph.analysis import reports

        return ReportView(reports.build(self.store, name, model, reports.Options(**options)))

    def uid(self, model: str, version: str) -> str:
        """The uid of a stored version; unknown names get the closest stored ones."""
        uids = {row["tag"]: row["uid"] for row in self.store.read(VERSION_UID, {"model": model})}
        if not uids:
            from nngraph.queries import unknown_model

            raise unknown_model(self.store, model)
        if version not in uids:
            raise NNGraphError(f"model {model!r} has no version {version!r}{closest(version, uids)}")
        return uids[version]

    @staticmethod
    def _frame(rows):
        import pandas as pd

        return pd.DataFrame(rows)

    def close(self) -> None:
        self.store.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class ReportView:
    """A report that shows itself inline in Jupyter (its HTML page) and saves to any format."""

    def __init__(self, report):
        self.report = report

    def save(self, directory: str | Path, fmt: str = "html") -> list[Path]:
        from nngraph.analysis import render

        return render.write(self.report, Path(directory), fmt)

    def _repr_html_(self) -> str:
        from nngraph.analysis import render

        return render.page(self.report)

"""nngraph serve: a read-only web app, and a JSON API under it, over the configured store.

Built on Starlette (a small ASGI framework: routing, responses, an OpenAPI schema from the
endpoints' docstrings), Jinja2 pages (autoescaped) and uvicorn (the server; see serve.py).
Every request needs the token printed with the URL (then a cookie), so other users of the
machine cannot read the store; only GET routes exist, and every read goes through the
Session: Store.read, read-only, parameters sent as parameters.
"""

from __future__ import annotations

import hmac
import json
import threading
from functools import wraps
from urllib.parse import urlencode

import networkx as nx
import numpy as np
import pandas as pd
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.applications import Starlette
from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.schemas import SchemaGenerator

from nngraph.analysis import charts, render, reports
from nngraph.errors import NNGraphError, Unreachable
from nngraph.output import render as render_rows
from nngraph.queries import canned, parameters_of, typed_value

from . import explore

COOKIE = "nngraph_token"
SCHEMA = SchemaGenerator({"openapi": "3.0.0", "info": {"title": "nngraph serve", "version": "1"}})
LAYER_COLUMNS = ["index", "name", "kind", "nodes", "fluctuation", "mean_strength", "w_mean", "w_std",
                 "neural_persistence", "neural_persistence_normalized"]


class TokenGate:
    """Refuses every request without the token (in the URL, or the cookie set from it)."""

    def __init__(self, app, token: str):
        self.app, self.token = app, token

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        request = Request(scope)
        given = request.query_params.get("token")
        if not hmac.compare_digest((given or request.cookies.get(COOKIE, "")).encode(), self.token.encode()):
            refused = PlainTextResponse("403: this nngraph serve needs the token in the URL it printed", 403)
            return await refused(scope, receive, send)

        async def with_cookie(message):
            if given and message["type"] == "http.response.start":
                MutableHeaders(scope=message).append("set-cookie",
                                                     f"{COOKIE}={self.token}; HttpOnly; SameSite=Strict; Path=/")
            await send(message)

        await self.app(scope, receive, with_cookie)


class Reconnecting:
    """The Session the app reads through, opened on first use and again after the database stopped
    answering: a managed server that comes back listens on a new port."""

    def __init__(self, open_session):
        self.open_session, self.session, self.lock = open_session, None, threading.Lock()

    def get(self):
        with self.lock:
            if self.session is None:
                self.session = self.open_session()
            return self.session

    def drop(self) -> None:
        with self.lock:
            if self.session is not None:
                try:
                    self.session.close()
                except Exception:  # noqa: BLE001 (a dead connection may fail to close; it is dropped either way)
                    pass
                self.session = None


def create_app(open_session, token: str) -> Starlette:
    """The app; open_session() gives a Session on the configured store."""
    sessions = Reconnecting(open_session)
    templates = Environment(loader=PackageLoader("nngraph.web"), autoescape=select_autoescape())
    templates.filters["cell"] = _cell

    def page(name: str, request: Request, status: int = 200, **values) -> HTMLResponse:
        values.setdefault("crumbs", [])
        values.setdefault("plots", [])
        html = templates.get_template(name).render(url=lambda route, **p: request.url_for(route, **p).path,
                                                   **values)
        return HTMLResponse(html, status)

    def guarded(endpoint):
        """Unknown names give a 404 page with links to what exists; a database that does not
        answer gives a 503 page (the next request tries again); bad parameters give a 400."""

        @wraps(endpoint)
        def handle(request: Request):
            api = request.url.path.startswith("/api/")
            try:
                return endpoint(request, sessions.get())
            except Unreachable as exc:
                sessions.drop()
                status, message = 503, f"{exc} The app tries again on the next request."
            except NNGraphError as exc:
                status, message = 404, str(exc)
            except ValueError as exc:
                status, message = 400, str(exc)
            if api:
                return JSONResponse({"error": message}, status)
            model = request.path_params.get("model")
            suggestions = [("all models", request.url_for("models").path)]
            if model and status == 404 and "no model" not in message:
                suggestions.append((f"versions of {model}", request.url_for("versions", model=model).path))
            return page("error.html", request, status, title=f"{status}", message=message, suggestions=suggestions)

        return handle

    def link(request, route, query=None, **params):
        path = request.url_for(route, **params).path
        return f"{path}?{urlencode(query)}" if query else path

    @guarded
    def models(request, session):
        rows = explore.models(session)
        return page("models.html", request, title="Models", models=rows,
                    model_link=lambda row: link(request, "versions", model=row["model"]))

    @guarded
    def versions(request, session):
        model = request.path_params["model"]
        tag, steps, sort = (request.query_params.get(k) or None for k in ("tag", "steps", "sort"))
        descending = request.query_params.get("desc") == "1"
        stored, problem = explore.versions(session, model), None
        try:
            frame = explore.chosen(stored, tag, steps, sort, descending)
        except ValueError as exc:
            problem, frame = str(exc), stored
        rows = _records(frame)
        tags = list(frame["version"])
        chosen = {"versions": tag} if tag else {}

        def sort_link(column):
            query = {k: v for k, v in (("tag", tag), ("steps", steps)) if v}
            return link(request, "versions", {**query, "sort": column,
                                              "desc": "0" if column == sort and descending else "1"}, model=model)

        pair = tags[:1] + tags[-1:] if len(tags) > 1 else tags * 2
        return page("versions.html", request, title=f"{model}: versions", crumbs=[(model, request.url.path)],
                    rows=rows, total=len(stored), columns=list(frame.columns.drop("model", errors="ignore")),
                    tag=tag, steps=steps, sort=sort, problem=problem, reports=list(reports.REPORTS),
                    report_link=lambda name: link(request, "report", chosen, model=model, name=name),
                    compare_link=link(request, "report", {"versions": ",".join(pair)}, model=model, name="compare"),
                    compare_label=" with ".join(pair), sort_link=sort_link,
                    version_link=lambda row: link(request, "version", model=model, tag=row["version"]))

    @guarded
    def version(request, session):
        model, tag = request.path_params["model"], request.path_params["tag"]
        found = explore.version(session, model, tag)
        properties = found["properties"]
        layers = found["layers"]
        return page("version.html", request, title=f"{model} {tag}",
                    crumbs=[(model, link(request, "versions", model=model)), (tag, request.url.path)],
                    properties=properties, layers=_records(layers),
                    columns=[c for c in LAYER_COLUMNS if c in layers.columns],
                    metrics=sorted((k.removeprefix("metric_"), v) for k, v in properties.items()
                                   if k.startswith("metric_")),
                    analyses=found["analyses"], skipped=found["skipped"],
                    layer_link=lambda row: link(request, "layer", model=model, tag=tag, layer=row["index"]))

    @guarded
    def layer(request, session):
        model, tag, index = (request.path_params[k] for k in ("model", "tag", "layer"))
        found = explore.layer(session, model, tag, index)
        figure = charts.histogram(found["neurons"]["strength"].to_numpy(), "node strength")
        return page("layer.html", request, title=f"{model} {tag}, layer {index}",
                    crumbs=_crumbs(request, model, tag, index), count=len(found["neurons"]), top=found["top"],
                    plots=[(1, json.dumps(figure.spec()))],
                    neuron_link=lambda row: link(request, "neuron", model=model, tag=tag, layer=index,
                                                 index=row["index"]))

    @guarded
    def neuron(request, session):
        model, tag, layer_index, index = (request.path_params[k] for k in ("model", "tag", "layer", "index"))
        asked = request.query_params.get("depth", "1")
        if not (asked.isdigit() and 1 <= int(asked) <= explore.MAX_DEPTH):
            raise ValueError(f"depth {asked}: choose 1 to {explore.MAX_DEPTH}")
        depth = int(asked)
        found = explore.neuron(session, model, tag, layer_index, index)
        graph = explore.neighbourhood(session, found["uid"], depth)
        href = lambda layer_, index_: link(request, "neuron", model=model, tag=tag, layer=layer_,  # noqa: E731
                                           index=index_)
        figure = _neighbourhood_figure(graph, href)
        properties = found["properties"]
        return page("neuron.html", request, title=f"{model} {tag}, layer {layer_index}, neuron {index}",
                    crumbs=[*_crumbs(request, model, tag, layer_index), (f"neuron {index}", request.url.path)],
                    properties=properties, columns=sorted(k for k in properties if k not in ("uid", "version")),
                    depth=depth, depths=range(1, explore.MAX_DEPTH + 1), graph=graph,
                    per_neuron=explore.NEIGHBOURS_PER_NEURON, cap=explore.MAX_NEIGHBOURHOOD_LINKS,
                    depth_link=lambda d: link(request, "neuron", {"depth": d}, model=model, tag=tag,
                                              layer=layer_index, index=index),
                    links=found["links"], counts=found["counts"], plots=[(1, json.dumps(figure.spec()))],
                    other_link=lambda row: href(row["layer"], row["index"]))

    @guarded
    def report(request, session):
        model, name = request.path_params["model"], request.path_params["name"]
        options = {k: request.query_params[k] for k in ("versions", "layers", "metric", "step_range")
                   if request.query_params.get(k)}
        built = reports.build(session.store, name, model, reports.Options(**options))
        return HTMLResponse(render.page(built))

    @guarded
    def queries(request, session):
        rows = [{k: q[k] for k in ("name", "parameters", "description")} for q in canned().values()]
        return page("queries.html", request, title="Canned queries", queries=rows,
                    query_link=lambda row: link(request, "query", name=row["name"]))

    @guarded
    def query(request, session):
        name = request.path_params["name"]
        found = canned().get(name)
        if found is None:
            raise NNGraphError(f"no canned query {name!r}: the list shows them")
        parameters = parameters_of(found)
        values = {p["name"]: request.query_params.get(p["name"], "") for p in parameters}
        rows, problem, fmt = None, None, request.query_params.get("format")
        if all(values.values()) or (parameters and request.query_params):
            try:
                rows = _run_canned(session, found, parameters, values)
            except ValueError as exc:
                problem = str(exc)
        if fmt in ("csv", "json") and rows is not None:
            return Response(render_rows(rows, fmt), media_type="text/csv" if fmt == "csv" else "application/json",
                            headers={"content-disposition": f"attachment; filename={name}.{fmt}"})
        return page("query.html", request, 400 if problem else 200, title=f"Query: {name}",
                    crumbs=[("canned queries", link(request, "queries"))], description=found["description"],
                    parameters=parameters, values=values, rows=rows, problem=problem, text=found["text"],
                    columns=list(rows[0]) if rows else [],
                    download=lambda f: link(request, "query", {**values, "format": f}, name=name))

    # ------------------------------------------------------------------ the JSON API

    @guarded
    def api_models(request, session):
        """
        responses:
          200:
            description: Every stored model with its number of versions and step range.
        """
        return JSONResponse(_plain(explore.models(session)))

    @guarded
    def api_versions(request, session):
        """
        parameters:
          - {name: model, in: path, required: true, schema: {type: string}}
          - {name: tag, in: query, description: "a pattern on version tags, like s0-*", schema: {type: string}}
          - {name: steps, in: query, description: "FIRST:LAST", schema: {type: string}}
        responses:
          200:
            description: The model's versions in step order, with their stored metrics.
        """
        frame = explore.chosen(explore.versions(session, request.path_params["model"]),
                               request.query_params.get("tag"), request.query_params.get("steps"))
        return JSONResponse(_records(frame))

    @guarded
    def api_layers(request, session):
        """
        parameters:
          - {name: model, in: path, required: true, schema: {type: string}}
          - {name: tag, in: path, required: true, schema: {type: string}}
        responses:
          200:
            description: One version's layers in forward order, every stored property.
        """
        return JSONResponse(_records(session.layers(request.path_params["model"], request.path_params["tag"])))

    @guarded
    def api_neurons(request, session):
        """
        parameters:
          - {name: model, in: path, required: true, schema: {type: string}}
          - {name: tag, in: path, required: true, schema: {type: string}}
          - {name: layer, in: path, required: true, schema: {type: integer}}
        responses:
          200:
            description: One layer's neurons in index order, every stored property.
        """
        p = request.path_params
        return JSONResponse(_records(session.neurons(p["model"], p["tag"], p["layer"])))

    @guarded
    def api_neuron(request, session):
        """
        parameters:
          - {name: model, in: path, required: true, schema: {type: string}}
          - {name: tag, in: path, required: true, schema: {type: string}}
          - {name: layer, in: path, required: true, schema: {type: integer}}
          - {name: index, in: path, required: true, schema: {type: integer}}
        responses:
          200:
            description: A neuron's properties, its strongest links each way and how many it has.
        """
        p = request.path_params
        return JSONResponse(_plain(explore.neuron(session, p["model"], p["tag"], p["layer"], p["index"])))

    @guarded
    def api_query(request, session):
        """
        parameters:
          - {name: name, in: path, required: true, schema: {type: string}}
        responses:
          200:
            description: The rows of a canned query; its parameters as query parameters, typed as its header says.
        """
        found = canned().get(request.path_params["name"])
        if found is None:
            raise NNGraphError(f"no canned query {request.path_params['name']!r}; /api/queries lists them")
        parameters = parameters_of(found)
        values = {p["name"]: request.query_params.get(p["name"], "") for p in parameters}
        return JSONResponse(_plain(_run_canned(session, found, parameters, values)))

    def api_queries(request):
        """
        responses:
          200:
            description: The canned queries with their typed parameters.
        """
        return JSONResponse([{"name": q["name"], "description": q["description"], "parameters": parameters_of(q)}
                             for q in canned().values()])

    def openapi(request):
        return JSONResponse(SCHEMA.get_schema(routes=app.routes))

    def asset(request):
        if request.path_params["name"] != "vega.js":
            return PlainTextResponse("404", 404)
        return Response(render.vega_bundle(), media_type="text/javascript",
                        headers={"cache-control": "private, max-age=86400"})

    routes = [
        Route("/", models, name="models"),
        Route("/models/{model}", versions, name="versions"),
        Route("/models/{model}/versions/{tag}", version, name="version"),
        Route("/models/{model}/versions/{tag}/layers/{layer:int}", layer, name="layer"),
        Route("/models/{model}/versions/{tag}/layers/{layer:int}/neurons/{index:int}", neuron, name="neuron"),
        Route("/models/{model}/reports/{name}", report, name="report"),
        Route("/queries", queries, name="queries"),
        Route("/queries/{name}", query, name="query"),
        Route("/api/models", api_models),
        Route("/api/models/{model}/versions", api_versions),
        Route("/api/models/{model}/versions/{tag}/layers", api_layers),
        Route("/api/models/{model}/versions/{tag}/layers/{layer:int}/neurons", api_neurons),
        Route("/api/models/{model}/versions/{tag}/layers/{layer:int}/neurons/{index:int}", api_neuron),
        Route("/api/queries", api_queries),
        Route("/api/queries/{name}", api_query),
        Route("/api/openapi.json", openapi, name="openapi", include_in_schema=False),
        Route("/assets/{name}", asset, name="asset", include_in_schema=False),
        Route("/favicon.ico", lambda request: Response(status_code=204), include_in_schema=False),
    ]
    app = Starlette(routes=routes)
    app.add_middleware(TokenGate, token=token)
    return app


def _run_canned(session, query: dict, parameters: list[dict], values: dict) -> list[dict]:
    missing = [p["name"] for p in parameters if values.get(p["name"], "") == "" and p["type"] != "string or null"]
    if missing:
        raise ValueError(f"give {', '.join(missing)}")
    typed = {p["name"]: typed_value(p, values[p["name"]]) for p in parameters}
    return session.query(query["text"], **typed).to_dict("records")


def _crumbs(request, model, tag, layer_index):
    return [(model, request.url_for("versions", model=model).path),
            (tag, request.url_for("version", model=model, tag=tag).path),
            (f"layer {layer_index}", request.url_for("layer", model=model, tag=tag, layer=layer_index).path)]


def _neighbourhood_figure(graph: dict, href) -> charts.Figure:
    """The neighbourhood laid out by layer (networkx's multipartite layout), drawn by Vega-Lite."""
    network = nx.DiGraph()
    network.add_nodes_from((node, {"layer": node[0]}) for node in graph["nodes"])
    network.add_edges_from((a, b) for a, b, _ in graph["links"])
    at = nx.multipartite_layout(network, subset_key="layer")
    nodes = pd.DataFrame([{"x": at[n][0], "y": at[n][1], "layer": n[0], "index": n[1], "neuron": f"{n[0]}:{n[1]}",
                           "href": href(*n)} for n in graph["nodes"]])
    links = pd.DataFrame([{"x": at[a][0], "y": at[a][1], "x2": at[b][0], "y2": at[b][1], "weight": w,
                           "size": abs(w), "sign": "positive" if w >= 0 else "negative", "from": f"{a[0]}:{a[1]}",
                           "to": f"{b[0]}:{b[1]}"} for a, b, w in graph["links"]],
                         columns=["x", "y", "x2", "y2", "weight", "size", "sign", "from", "to"])
    return charts.neighbourhood(nodes, links)


def _records(frame: pd.DataFrame) -> list[dict]:
    return _plain(render.records(frame))


def _plain(value):
    """JSON-ready: numpy scalars and arrays as Python values, NaN as null."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value != value:
        return None
    return value


def _cell(value) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(map(_cell, value[:8])) + (" ..." if len(value) > 8 else "")
    return str(value)

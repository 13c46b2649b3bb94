"""The nngraph command line: click code only; each command calls one core function."""

from __future__ import annotations

import json

import click

from nngraph import __version__
from nngraph.errors import NNGraphError

class PathArgument(click.Path):
    """click's Path, which stats its value: a NUL byte in it raised ValueError, a traceback."""

    def convert(self, value, param, ctx):
        if isinstance(value, str) and "\0" in value:
            self.fail(f"{value!r} holds a NUL byte, which no file name can; give the path of a file", param, ctx)
        return super().convert(value, param, ctx)


FORMAT = click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table",
                      show_default=True, help="Output format.")
DEVICE = click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True,
                      help="Where tensor metrics run: auto uses CUDA when present.")
CONV_EDGES = click.option("--conv-edges", type=click.Choice(["channel", "pixel"]), default="channel",
                          show_default=True, help="Conv layers: one link per kernel between Channel nodes, "
                          "or every pixel-level link between neurons.")


def _input_shape(ctx, param, value):
    if value is None:
        return None
    try:
        shape = tuple(int(part) for part in value.split(","))
    except ValueError:
        raise click.BadParameter("expected sizes separated by commas, such as 3,32,32") from None
    if not shape or min(shape) <= 0:
        raise click.BadParameter("sizes must be positive, such as 3,32,32")
    return shape


LOAD_OPTIONS = ("arch", "input_shape", "trust_pickle", "topology", "time_steps", "batchnorm")


def model_source_options(command):
    """Options that say how to read a model file; shared by every command that reads one, and
    handed to it as one `load_options` dict."""
    import functools

    options = [
        click.option("--arch", metavar="PACKAGE.MODULE:FACTORY",
                     help="Function that builds the nn.Module, for state_dicts that are not plain MLPs."),
        click.option("--input-shape", callback=_input_shape, metavar="C,H,W",
                     help="Input size without the batch (needed for conv models from --arch)."),
        click.option("--time-steps", type=click.IntRange(min=1), metavar="T",
                     help="Recurrent networks: unroll over T steps (needed for RNN, LSTM and GRU); "
                          "transformers: the number of tokens traced (default 8; the graph does not depend on it)."),
        click.option("--batchnorm", type=click.Choice(["fold", "pass-through"]), default="fold", show_default=True,
                     help="fold BatchNorm into the conv or linear layer before it, or keep its nodes unchanged."),
        click.option("--trust-pickle", is_flag=True,
                     help="Allow files that hold pickled modules: loading them runs code."),
        click.option("--topology", type=click.Choice(["chain", "bipartite"]), default="chain", show_default=True,
                     help="How to read a bare state_dict without its architecture: chain (an MLP, or a recurrent "
                          "layer then Linear layers) or bipartite (every Linear layer on its own). Transformers: "
                          "give the model directory (config.json and safetensors) instead."),
    ]

    @functools.wraps(command)
    def collected(**kwargs):
        return command(load_options={name: kwargs.pop(name) for name in LOAD_OPTIONS}, **kwargs)

    for option in reversed(options):
        collected = option(collected)
    return collected


PERSISTENCE = click.option("--persistence", type=click.Choice(["definition", "authors"]), default="definition",
                           show_default=True, help="Neural persistence as the paper defines it, or as the authors' "
                           "code computes it (bias vertices; METRICS.md section 7).")


def data_options(command=None, *, default: str | None = None):
    """--data and its companions, handed to the command as one `data` (DataOptions or None): the
    inputs are loaded and sampled once, before any version is read."""
    import functools

    if command is None:
        return functools.partial(data_options, default=default)
    options = [
        click.option("--data", "data_source", metavar="FILE|PACKAGE.MODULE:FACTORY|digits|digits-test",
                     default=default, show_default=default is not None,
                     help="Inputs to measure Neurons Strength and Activation on (METRICS.md section 6): a .pt, .npy "
                          "or .safetensors tensor, a factory returning a tensor, Dataset or DataLoader, or the "
                          "bundled digits (training or test split). Runs the model: needs --arch, a .pt2 or a "
                          "model directory."),
        click.option("--samples", type=int, metavar="N", help="With --data: draw N inputs (default: all)."),
        click.option("--seed", type=click.IntRange(0, 2 ** 63 - 1), default=0, show_default=True,
                     help="With --data: the seed that draws the samples."),
        click.option("--no-bias-in-strength", is_flag=True, help="With --data: Neurons Strength without the bias."),
    ]

    @functools.wraps(command)
    def collected(data_source, samples, seed, no_bias_in_strength, **kwargs):
        from nngraph.ingest.pipeline import DataOptions

        if data_source is None and samples is not None:
            raise click.BadParameter("--samples draws from --data: give --data too", param_hint="--samples")
        return command(data=DataOptions.of(data_source, samples, seed, not no_bias_in_strength), **kwargs)

    for option in reversed(options):
        collected = option(collected)
    return collected


def version_options(command):
    """What `ingest` and `export` share: the files, and what each version is and keeps."""
    options = [
        click.argument("paths", nargs=-1, required=True, type=PathArgument(path_type=str)),
        click.option("--model", required=True, help="Model name the versions belong to."),
        click.option("--version", "tag", help="Version tag (default: the file name without extension)."),
        click.option("--step", type=int, help="Training step of this version (default: the last number in the "
                     "file name)."),
        click.option("--metric", "metric_pairs", multiple=True, metavar="KEY=VALUE",
                     help="A metric stored with the version, such as test_accuracy=0.93 (repeatable)."),
        click.option("--edges", "edge_policy", default="all", show_default=True,
                     help="Links to keep: all, none, topk:K, threshold:T or backbone:ALPHA."),
        CONV_EDGES,
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _version_files(paths, tag) -> list:
    """(file, step from its name) for every version file of PATHS; one --version tag fits one file only."""
    from pathlib import Path

    from nngraph.ingest.pipeline import checkpoint_files

    files = [item for path in paths for item in checkpoint_files(Path(path))]
    if tag and len(files) > 1:
        raise click.BadParameter("one --version tag for several files; leave it out to tag each by its name",
                                 param_hint="--version")
    return files


class Group(click.Group):
    """Turns an NNGraphError into one `Error: ...` line on stderr and exit status 1."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except NNGraphError as exc:
            raise click.ClickException(str(exc)) from None


@click.group(cls=Group)
@click.version_option(__version__, prog_name="nngraph")
def cli():
    """nngraph: trained neural networks as complex networks in a graph database."""
    import logging

    log = logging.getLogger("nngraph")  # warnings from the library (an out-of-memory fallback...) on stderr
    if not log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("warning: %(message)s"))
        log.addHandler(handler)


@cli.command()
@click.argument("path", type=PathArgument(dir_okay=True, path_type=str))
@model_source_options
@FORMAT
@DEVICE
@click.option("--plus-one", is_flag=True, help="Paper compatibility: add 1 to input and output strengths.")
@click.option("--conv-in-strength", type=click.Choice(["exact", "paper"]), default="exact", show_default=True,
              help="paper counts padding edges in conv in-strength, as the authors' code does.")
@PERSISTENCE
@click.option("--no-persistence", is_flag=True, help="Skip neural persistence (a spanning tree per layer).")
@data_options
def metrics(path, load_options, fmt, device, plus_one, conv_in_strength, persistence, no_persistence, data):
    """Print per-layer metrics of a model file, without any database.

    PATH is a state_dict (.pt/.pth/.bin), a checkpoint dict, a .safetensors file or a
    directory of shards, a torch.export archive (.pt2), or a pickled module (--trust-pickle).
    """
    from nngraph.ingest import compute_metrics, load_network
    from nngraph.ingest.sources import load_runnable

    network = load_network(path, **load_options)
    result = compute_metrics(network, device=device, plus_one=plus_one,
                             paper_conv_in_strength=conv_in_strength == "paper",
                             persistence=False if no_persistence else persistence)
    if data is not None:
        data.measure(load_runnable(path, **load_options), network, result, device, load_options["batchnorm"])
    summary = result.summary()
    _print_skipped(summary["skipped"])
    if fmt == "json":
        click.echo(json.dumps(summary, indent=2))
        return
    from nngraph.output import render

    click.echo(render(summary["layers"], fmt))
    if fmt == "table":
        click.echo("\nweight layers")
        rows = [{"name": w["name"], "kind": w["kind"], "edges": w["edges"],
                 "w_mean": w["link_weights"]["mean"], "w_std": w["link_weights"]["std"],
                 "w_min": w["link_weights"]["min"], "w_max": w["link_weights"]["max"],
                 "persistence": w["neural_persistence"],
                 "persistence_norm": w["neural_persistence_normalized"]}
                for w in summary["weight_layers"] if w["shared_with"] is None]
        click.echo(render(rows, fmt))
        if data is not None:
            _print_data_metrics(summary["data_metrics"])


def _print_data_metrics(measured: dict) -> None:
    from nngraph.output import render

    inputs = measured["data"]
    click.echo(f"\nneurons strength (ns) and activation (na) on {inputs['samples']} inputs of {inputs['source']} "
               f"(seed {inputs['seed']}, hash {inputs['hash']})")
    rows = [{"name": layer["name"], "activation": layer["activation"],
             **{f"ns_{key}": layer["neurons_strength"][key] for key in ("mean", "std", "min", "max")},
             **{f"na_{key}": layer["neurons_activation"][key] for key in ("mean", "std", "zero_fraction")}}
            for layer in measured["layers"]]
    click.echo(render(rows, "table"))
    for item in measured["not_measured"]:
        click.echo(f"not measured: {item['layer']}: {item['reason']}", err=True)


def _print_skipped(skipped: list[dict]) -> None:
    """Modules without links of their own, on stderr (stdout stays the table, JSON or CSV)."""
    for item in skipped:
        click.echo(f"no links: {item['name']} ({item['kind']}): {item['reason']}", err=True)



def connection_options(command):
    """--uri/--user/--password/--database; NEO4J_* variables and the config file fill the rest."""
    options = [
        click.option("--uri", help="Bolt URI of a Neo4j (or compatible) server; default: the local database."),
        click.option("--user", help="User name (NEO4J_USERNAME)."),
        click.option("--password", help="Password (NEO4J_PASSWORD)."),
        click.option("--database", help="Database name (NEO4J_DATABASE)."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def open_store(uri, user, password, database):
    from nngraph.config import resolve_connection
    from nngraph.store import Store

    connection = resolve_connection(uri=uri, user=user, password=password, database=database)
    return Store.open(connection, announce=lambda message: click.echo(message, err=True))


def _key_values(pairs, what):
    values = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r}: expected key=value", param_hint=what)
        values[key] = _number_or_text(value, f"{what} {key}")
    return values


def _number_or_text(value: str, what: str):
    from nngraph.limits import check_int64

    try:
        return check_int64(int(value), what)
    except ValueError:
        pass
    try:
        return float(value)
    except ValueError:
        return value


SERVER = click.option("--server", "kind", type=click.Choice(["arcadedb", "neo4j"]),
                      help="Which managed server (default: NNGRAPH_SERVER, else [server] kind in the config file, "
                           "else arcadedb).")


@cli.group()
def db():
    """Run the managed database on 127.0.0.1: ArcadeDB (default) or Neo4j with GDS."""


@db.command("start")
@SERVER
def db_start(kind):
    """Start the managed database (any command that needs it starts it too).

    The first start of Neo4j assembles Neo4j Community and OpenGDS from Maven Central
    (Maven and a Java 17 or 21 needed) into $NNGRAPH_HOME/neo4j.
    """
    from nngraph.servers import managed_server

    server = managed_server(kind)
    info = server.start(announce=lambda message: click.echo(message, err=True))
    click.echo(f"running: {server.label} at {info.uri} (pid {info.pid}), data in {server.directory}")


@db.command("stop")
@SERVER
def db_stop(kind):
    """Stop the managed database (also one left running by a failed start)."""
    from nngraph.servers import managed_server

    server = managed_server(kind)
    click.echo(f"stopped {server.label}" if server.stop() else f"{server.label} was not running")


@db.command("status")
@SERVER
def db_status(kind):
    """Say whether the managed database runs, where, and where its data is."""
    from nngraph.servers import managed_server

    server = managed_server(kind)
    info = server.status()
    click.echo(f"running: {server.label} at {info.uri} (pid {info.pid}), data in {server.directory}" if info
               else f"not running: {server.label}; data in {server.directory}")


@db.command("import")
@click.argument("directory", type=PathArgument(exists=True, file_okay=False, path_type=str))
@click.option("--yes", is_flag=True, help="Do not ask: the import replaces everything the managed Neo4j stores.")
def db_import(directory, yes):
    """Load an `nngraph export` directory into the managed Neo4j (the bulk path).

    neo4j-admin's full import builds a new database from the files at millions of links a
    second; in Neo4j Community it replaces the one database, so everything stored before is
    gone (a failed import changes nothing). The server is stopped for it and started again
    after; the schema is created.
    """
    from nngraph import queries
    from nngraph.config import resolve_connection
    from nngraph.ingest.export import PARQUET_ARRAYS
    from nngraph.neo4j_server import Neo4jServer
    from nngraph.output import render
    from nngraph.store import Store

    server = Neo4jServer()
    if not yes:
        click.confirm(f"This replaces everything stored in {server.label} ({server.directory}). Go on?", abort=True)
    announce = lambda message: click.echo(message, err=True)  # noqa: E731
    server.import_export(directory, announce)
    with Store.open(resolve_connection(), announce, server=server) as store:
        store.ensure_schema()
        store.write(PARQUET_ARRAYS)
        click.echo(render(store.read(queries.load("models")), "table"))


@cli.command()
@version_options
@click.option("--replace", is_flag=True, help="Overwrite a version that is already stored.")
@model_source_options
@PERSISTENCE
@DEVICE
@data_options
@connection_options
def ingest(paths, model, tag, step, metric_pairs, edge_policy, conv_edges, replace, load_options, persistence,
           device, data, uri, user, password, database):
    """Store model files as versions: neurons, layers, links and their metrics.

    Each PATH is a model file (anything `nngraph metrics` reads) or a directory of
    checkpoints, each file one version, ordered by the step in its name.
    """
    from nngraph.ingest.edges import EdgePolicy
    from nngraph.ingest.pipeline import ingest_path

    policy = EdgePolicy.parse(edge_policy)
    metrics = _key_values(metric_pairs, "--metric")
    files = _version_files(paths, tag)
    printed = None
    with open_store(uri, user, password, database) as store:
        for file, file_step in files:
            result = ingest_path(store, file, model=model, tag=tag, step=step if step is not None else file_step,
                                 metrics=metrics, edges=policy, conv_edges=conv_edges, replace=replace,
                                 device=device, load_options=load_options, persistence=persistence,
                                 announce=lambda message: click.echo(message, err=True), data=data)
            if result.skipped != printed:  # once per architecture, not once per checkpoint
                _print_skipped(result.skipped)
                printed = result.skipped
            if result.status == "exists":
                click.echo(f"{model} {result.tag}: already stored (pass --replace to overwrite)")
            else:
                click.echo(f"{model} {result.tag}: {result.status}, {result.neurons} neurons, {result.links} links")


@cli.command()
@version_options
@click.option("--to", "directory", required=True, type=PathArgument(file_okay=False, path_type=str),
              help="New or empty directory for the import files.")
@click.option("--format", "fmt", type=click.Choice(["csv", "parquet"]), default="csv", show_default=True)
@click.option("--database", default="neo4j", show_default=True, help="Database name in the printed import command.")
@model_source_options
@PERSISTENCE
@DEVICE
@data_options
def export(paths, model, tag, step, metric_pairs, edge_policy, conv_edges, directory, fmt, database, load_options,
           persistence, device, data):
    """Write neo4j-admin import files for a fresh Neo4j (the bulk path for big models).

    Writes the same nodes, links and properties as `nngraph ingest`, then prints the
    `neo4j-admin database import full` command that loads them (with the server stopped).
    """
    from pathlib import Path

    from tqdm import tqdm

    from nngraph.ingest.edges import EdgePolicy
    from nngraph.ingest.export import Exporter
    from nngraph.ingest.graph_rows import GraphOptions
    from nngraph.ingest.pipeline import export_path

    options = GraphOptions(EdgePolicy.parse(edge_policy), conv_edges)
    metrics = _key_values(metric_pairs, "--metric")
    files = _version_files(paths, tag)
    with Exporter(Path(directory), fmt) as exporter, \
            tqdm(unit=" links", unit_scale=True, desc="export", leave=False) as bar:
        for number, (file, file_step) in enumerate(files, 1):
            bar.set_postfix_str(f"version {number}/{len(files)}")
            export_path(exporter, file, model=model, tag=tag, step=step if step is not None else file_step,
                        metrics=metrics, options=options, device=device, load_options=load_options,
                        persistence=persistence, bar=bar, data=data)
        command = exporter.finish(database)
    click.echo(f"exported {len(files)} version(s), {bar.n:,} links to {directory}. With the Neo4j server stopped, "
               f"load them into a fresh database (this replaces database {database!r}):")
    click.echo(command)


MAX_LAYERS = 100_000  # checked before a range is built: --layers 0:99999999999 must not fill memory


def _layers(ctx, param, value):
    """--layers 1:3 (inclusive) or 1,2,4; checked against the stored layers before anything runs."""
    if value is None:
        return None
    try:
        if ":" in value:
            first, last = (int(part) for part in value.split(":"))
            chosen = (first, last) if 0 <= first <= last < MAX_LAYERS else None
            chosen = chosen and tuple(range(first, last + 1))
        else:
            chosen = tuple(int(part) for part in value.split(","))
            chosen = chosen if all(0 <= index < MAX_LAYERS for index in chosen) else None
    except ValueError:
        raise click.BadParameter("expected FIRST:LAST (inclusive) or a list like 1,2,4") from None
    if not chosen:
        raise click.BadParameter(f"layer indices run from 0 (the input) upward, FIRST <= LAST, below {MAX_LAYERS:,}")
    return chosen


@cli.command()
@click.argument("family", type=click.Choice(["centrality", "communities"]))
@click.option("--model", required=True, help="Model whose versions to analyze.")
@click.option("--version", "tags", multiple=True, help="Version tag (repeatable; default: the latest version).")
@click.option("--all-versions", is_flag=True, help="Analyze every stored version.")
@click.option("--algorithm", "algorithms", multiple=True,
              help="centrality: pagerank (default), articlerank, eigenvector, degree, strength, betweenness, "
                   "harmonic; communities: louvain (default), leiden, label_propagation, wcc. Repeatable.")
@click.option("--engine", type=click.Choice(["auto", "gds", "local"]), default="auto", show_default=True,
              help="auto uses GDS when the server has it, else the local engine.")
@click.option("--layers", callback=_layers, help="Only these neuron layers: FIRST:LAST or a list like 1,2,4.")
@click.option("--weights", type=click.Choice(["abs", "positive", "negative", "signed"]), default="abs",
              show_default=True, help="Sign policy for link weights (signed: strength only).")
@click.option("--orientation", type=click.Choice(["natural", "reverse", "undirected"]),
              help="Link direction (default: natural for centrality, undirected for communities).")
@click.option("--seed", type=click.IntRange(0, 2 ** 31 - 1),
              help="Random seed (betweenness sampling, Louvain, Leiden, label propagation).")
@click.option("--samples", type=click.IntRange(1, 2 ** 31 - 1),
              help="Betweenness from this many sampled source nodes (default: exact); at most the neurons.")
@FORMAT
@connection_options
def analyze(family, model, tags, all_versions, algorithms, engine, layers, weights, orientation, seed, samples, fmt,
            uri, user, password, database):
    """Run centrality or community algorithms on stored versions and store the results.

    Each algorithm writes a property on every Neuron (pagerank, community_louvain, ...;
    with non-default parameters the name gets a suffix, so analyses never overwrite
    each other) and a summary on the Version (<property>_top, _modularity, _parameters).
    """
    from nngraph.analysis.run import analyze as run_analysis
    from nngraph.analysis.run import build_requests, choose_engine, select_versions
    from nngraph.output import render

    if tags and all_versions:
        raise click.BadParameter("give --version tags or --all-versions, not both", param_hint="--all-versions")
    requests = build_requests(family, algorithms, weights=weights, orientation=orientation, layers=layers, seed=seed,
                              samples=samples)
    with open_store(uri, user, password, database) as store:
        versions = select_versions(store, model, tags, all_versions)
        chosen = choose_engine(store, engine, lambda message: click.echo(message, err=True))
        click.echo(render(run_analysis(store, versions, requests, chosen), fmt))


@cli.command()
@click.argument("name")
@click.option("--model", help="Model to report on.")
@click.option("--versions", help="Versions: A..B (inclusive, in step order), A,B,... (compare: two), or a "
              "pattern like 's0-*'.")
@click.option("--step-range", help="Only versions with FIRST <= step <= LAST, as FIRST:LAST.")
@click.option("--layers", help="Only these layers: indices and ranges like 0,3,5:9, or a pattern on layer names "
              "and blocks like '*attention*'.")
@click.option("--out", "out_dir", default="nngraph-reports", show_default=True, type=PathArgument(path_type=str),
              help="Directory for the report files.")
@click.option("--format", "fmt", type=click.Choice(["html", "md", "json", "csv"]), default="html", show_default=True)
@click.option("--metric", default="test_accuracy", show_default=True, help="ensemble: the stored metric to bin by.")
@click.option("--bin-width", type=float, default=0.1, show_default=True, help="ensemble: width of the metric bins.")
@click.option("--property", "prop", help="centrality/communities: the Neuron property (default pagerank / "
              "community_louvain).")
@click.option("--other-model", help="compare: take the second version from this model.")
@click.option("--mixed-data", is_flag=True, help="activations, ensemble: compare NS and NA of versions measured on "
              "different inputs.")
@click.option("--explain", is_flag=True, help="Say what the report shows and what to look for in it, and stop.")
@connection_options
def report(name, model, versions, step_range, layers, out_dir, fmt, metric, bin_width, prop, other_model, mixed_data,
           explain, uri, user, password, database):
    """Write a canned report (`nngraph report list` lists them) for a model's versions.

    HTML pages are interactive (hover for values, drag to zoom, click a legend entry to pick a
    series, choose a layer under a plot) and work offline; `--explain` says what a report shows."""
    from pathlib import Path

    from nngraph.analysis import render, reports
    from nngraph.output import render as render_rows

    if name == "list":
        click.echo(render_rows([{"report": k, "what": v} for k, v in reports.DESCRIPTIONS.items()], "table"))
        return
    if name not in reports.REPORTS:
        raise click.BadParameter(f"no report {name!r}; choose from list, {', '.join(reports.REPORTS)}",
                                 param_hint="NAME")
    if explain:
        click.echo(f"{name}: {reports.DESCRIPTIONS[name]}.\n\nWhat to look for: {reports.LOOK_FOR[name]}")
        return
    if not model:
        raise click.BadParameter("which model? give --model", param_hint="--model")
    options = reports.Options(versions=versions, step_range=step_range, layers=layers, metric=metric,
                              bin_width=bin_width, prop=prop, other_model=other_model, mixed_data=mixed_data)
    with open_store(uri, user, password, database) as store:
        built = reports.build(store, name, model, options)
    for path in render.write(built, Path(out_dir), fmt):
        click.echo(f"wrote {path}")


@cli.command()
@click.option("--port", type=click.IntRange(0, 65535), default=0, show_default=True,
              help="Port on 127.0.0.1 (0: a free one).")
@click.option("--open", "open_browser", is_flag=True, help="Open the printed URL in a browser.")
@connection_options
def serve(port, open_browser, uri, user, password, database):
    """Serve a read-only web app and JSON API over the store, on 127.0.0.1 with a token.

    Models, versions (sorted, filtered), a version's layers and skipped modules, a layer's
    neurons, a neuron's links and neighbourhood, the canned queries as forms, every report live;
    /api/... gives the same as JSON (OpenAPI at /api/openapi.json)."""
    from nngraph.session import Session
    from nngraph.web.serve import serve as run

    open_store(uri, user, password, database).close()  # a wrong address or password fails here, in one line
    run(lambda: Session(open_store(uri, user, password, database)), port, open_browser, echo=click.echo)


def _numbers(kind):
    def parse(ctx, param, value):
        try:
            return tuple(kind(part) for part in value.split(","))
        except ValueError:
            raise click.BadParameter(f"expected a comma-separated list, like {param.default}") from None
    return parse


@cli.command()
@click.option("--out", "out_dir", default="nngraph-demo", show_default=True, type=PathArgument(path_type=str),
              help="Directory for the reports (refused if it exists, unless --force).")
@click.option("--force", is_flag=True, help="Write into an existing --out directory.")
@click.option("--epochs", type=click.IntRange(1, 200), default=12, show_default=True)
@click.option("--seeds", default="0,1,2,3,4", show_default=True, callback=_numbers(int), help="Training seeds.")
@click.option("--scales", default="0.25,0.5,1,2", show_default=True, callback=_numbers(float),
              help="Initialisation scales (weights at init multiplied by each).")
@click.option("--architectures", default="mlp,cnn", show_default=True, callback=_numbers(str),
              help="mlp and/or cnn.")
@click.option("--bin-width", type=float, default=0.1, show_default=True, help="Accuracy bin width (ensemble).")
@data_options(default="digits-test")
@connection_options
def demo(out_dir, force, epochs, seeds, scales, architectures, bin_width, data, uri, user, password, database):
    """Train small networks on real digits, store every epoch, analyze, and report.

    A population of fully connected and convolutional networks (seeds x initialisation
    scales) is trained on scikit-learn's 8x8 digits; every epoch is stored as a version
    with its test accuracy and loss; PageRank and Louvain run on every version; the
    reports go to --out. Then it prints whether the paper's finding shows on these data.
    Every epoch's Neurons Strength and Activation are measured on --data (the digits test
    split), and printed per accuracy bin.
    """
    import json
    from pathlib import Path

    from nngraph import demo as demo_flow
    from nngraph.digits import ARCHITECTURES

    unknown = set(architectures) - set(ARCHITECTURES)
    if unknown:
        raise click.BadParameter(f"unknown {sorted(unknown)}; choose from {', '.join(ARCHITECTURES)}",
                                 param_hint="--architectures")
    plan = demo_flow.Plan(Path(out_dir), architectures, seeds, scales, epochs, bin_width, force, data=data)
    demo_flow.check_output(plan)
    with open_store(uri, user, password, database) as store:
        findings = demo_flow.run(store, plan, lambda message: click.echo(message, err=True))
    for model, finding in findings.items():
        click.echo("\n" + demo_flow.describe(model, finding))
    (Path(out_dir) / "finding.json").write_text(json.dumps(findings, indent=1))
    click.echo(f"\nreports: {Path(out_dir).resolve()} (open the .html files in a browser; finding.json holds "
               "the figures above)")


@cli.command()
@FORMAT
@connection_options
def models(fmt, uri, user, password, database):
    """List stored models and how many versions each has."""
    from nngraph import queries
    from nngraph.output import render

    with open_store(uri, user, password, database) as store:
        click.echo(render(store.read(queries.load("models")), fmt))


@cli.command()
@click.option("--model", help="Only this model's versions.")
@FORMAT
@connection_options
def versions(model, fmt, uri, user, password, database):
    """List stored versions in step order."""
    from nngraph import queries
    from nngraph.output import render

    with open_store(uri, user, password, database) as store:
        rows = store.read(queries.load("versions"), {"model": model})
        if model and not rows:
            raise queries.unknown_model(store, model)
        click.echo(render(rows, fmt))


@cli.command()
@click.option("--model", required=True, help="The model of the version.")
@click.option("--version", "tag", required=True, help="The version's tag.")
@click.option("--to", "path", required=True, type=PathArgument(dir_okay=False, path_type=str),
              help="The file to write: .graphml or .gexf (the name picks the format).")
@click.option("--layers", callback=_layers, help="Only these neuron layers: FIRST:LAST or a list like 1,2,4.")
@click.option("--force", is_flag=True, help="Replace the file if it exists.")
@connection_options
def graph(model, tag, path, layers, force, uri, user, password, database):
    """Write one stored version's graph (neurons, links, their stored numbers) as GraphML or GEXF."""
    from pathlib import Path

    from nngraph.analysis.graph_files import write_graph

    with open_store(uri, user, password, database) as store:
        nodes, links = write_graph(store, model, tag, Path(path), layers, force)
    click.echo(f"wrote {path}: {nodes:,} neurons, {links:,} links")


@cli.command()
@click.option("--model", required=True, help="The model whose versions to delete.")
@click.option("--version", "tags", multiple=True, help="A version tag (repeatable); without it, every version and "
              "the model.")
@click.option("--yes", is_flag=True, help="Do not ask before deleting.")
@connection_options
def delete(model, tags, yes, uri, user, password, database):
    """Delete stored versions of a model, or the whole model: whole or not at all, like ingest."""
    from nngraph.ingest.deletion import chosen_versions, delete_versions

    with open_store(uri, user, password, database) as store:
        chosen = chosen_versions(store, model, list(tags))
        what = f"{len(chosen)} version(s) of {model!r}" + ("" if tags else ", and the model")
        if not yes:
            click.confirm(f"delete {what} ({', '.join(chosen[:5])}{' ...' if len(chosen) > 5 else ''})?",
                          abort=True, err=True)
        deleted = delete_versions(store, model, list(tags) or None,
                                  progress=lambda tag: click.echo(f"{model} {tag}: deleted"))
    click.echo(f"deleted {len(deleted)} version(s) of {model}" + ("" if tags else " and the model"))


@cli.command()
@click.argument("cypher", required=False)
@click.option("-p", "--param", "param_pairs", multiple=True, metavar="KEY=VALUE",
              help="A query parameter, passed as a parameter (repeatable); numbers are converted.")
@click.option("--file", "query_file", type=PathArgument(dir_okay=False, path_type=str),
              help="Read the query from a file (UTF-8 text).")
@click.option("--name", "canned_name", help="Run the canned query of this name (see --list).")
@click.option("--list", "list_canned", is_flag=True, help="List the canned queries and their parameters.")
@click.option("--write", is_flag=True, help="Allow the query to change the database.")
@FORMAT
@connection_options
def query(cypher, param_pairs, query_file, canned_name, list_canned, write, fmt, uri, user, password, database):
    """Run a Cypher query; read-only unless --write."""
    from nngraph import queries
    from nngraph.output import render

    if list_canned:
        click.echo(render([{k: q[k] for k in ("name", "parameters", "description")}
                           for q in queries.canned().values()], fmt))
        return
    if sum(map(bool, (cypher, query_file, canned_name))) != 1:
        raise click.UsageError("give one query: as an argument, with --file, or with --name")
    text = queries.canned_text(canned_name) if canned_name else cypher or queries.read_query_file(query_file)
    parameters = _key_values(param_pairs, "--param")
    with open_store(uri, user, password, database) as store:
        rows = store.write(text, parameters) if write else store.read(text, parameters)
    click.echo(render(rows, fmt))


main = cli

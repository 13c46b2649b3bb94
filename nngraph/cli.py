"""The nngraph command line: click code only; each command calls one core function."""

from __future__ import annotations

import json

import click

from nngraph import __version__
from nngraph.errors import NNGraphError

FORMAT = click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table",
                      show_default=True, help="Output format.")
DEVICE = click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True,
                      help="Where tensor metrics run: auto uses CUDA when present.")


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


def model_source_options(command):
    """Options that say how to read a model file; shared by every command that reads one."""
    options = [
        click.option("--arch", metavar="PACKAGE.MODULE:FACTORY",
                     help="Function that builds the nn.Module, for state_dicts that are not plain MLPs."),
        click.option("--input-shape", callback=_input_shape, metavar="C,H,W",
                     help="Input size without the batch (needed for conv models from --arch)."),
        click.option("--trust-pickle", is_flag=True,
                     help="Allow files that hold pickled modules: loading them runs code."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


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


@cli.command()
@click.argument("path", type=click.Path(dir_okay=True, path_type=str))
@model_source_options
@FORMAT
@DEVICE
@click.option("--plus-one", is_flag=True, help="Paper compatibility: add 1 to input and output strengths.")
@click.option("--conv-in-strength", type=click.Choice(["exact", "paper"]), default="exact", show_default=True,
              help="paper counts padding edges in conv in-strength, as the authors' code does.")
@click.option("--no-persistence", is_flag=True, help="Skip neural persistence (a spanning tree per layer).")
def metrics(path, arch, input_shape, trust_pickle, fmt, device, plus_one, conv_in_strength, no_persistence):
    """Print per-layer metrics of a model file, without any database.

    PATH is a state_dict (.pt/.pth/.bin), a checkpoint dict, a .safetensors file or a
    directory of shards, a torch.export archive (.pt2), or a pickled module (--trust-pickle).
    """
    from nngraph.ingest import compute_metrics, load_network

    network = load_network(path, arch=arch, input_shape=input_shape, trust_pickle=trust_pickle)
    result = compute_metrics(network, device=device, plus_one=plus_one,
                             paper_conv_in_strength=conv_in_strength == "paper",
                             persistence=not no_persistence)
    summary = result.summary()
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
                 "persistence_norm": w["neural_persistence_normalized"]} for w in summary["weight_layers"]]
        click.echo(render(rows, fmt))
        for item in summary["skipped"]:
            click.echo(f"skipped {item['name']} ({item['kind']}): {item['reason']}")



main = cli

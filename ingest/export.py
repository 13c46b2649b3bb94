"""Files for `neo4j-admin database import full`: the bulk path for big models on a fresh Neo4j.

One file group per label and relationship type, with the same properties `nngraph ingest`
stores. CSV: each group has a header file and one headerless data file (neo4j-admin takes
a group's header from its first file); Parquet: the column names are the headers. Neurons
get integer import IDs (their uid stays a property), which keeps the link files numeric and
fast to write. Links stream out in blocks of output rows, so memory is bounded by a block,
not by the model. On any failure (a full disk, an interrupt) the partial files are removed.
"""

from __future__ import annotations

import shlex
import shutil
from pathlib import Path

import numpy as np

from nngraph.errors import NNGraphError
from nngraph.limits import check_name

from .graph_rows import GraphOptions, channel_layers, channel_link_rows, channel_rows, link_blocks, neuron_columns
from .metrics import NetworkMetrics
from .network import Network
from .writer import layer_rows, layer_uid, skipped_rows

FORMATS = ("csv", "parquet")
# the array properties of Layer nodes, imported from Parquet as delimited strings: made arrays again
PARQUET_ARRAYS = """
MATCH (l:Layer)
WHERE l.shape IS :: STRING OR l.w_hist_edges IS :: STRING OR l.w_hist_counts IS :: STRING
   OR l.ns_hist_counts IS :: STRING OR l.na_hist_counts IS :: STRING
SET l.shape = CASE WHEN l.shape IS :: STRING THEN [x IN split(l.shape, ';') | toInteger(x)] ELSE l.shape END,
    l.w_hist_edges = CASE WHEN l.w_hist_edges IS :: STRING
                     THEN [x IN split(l.w_hist_edges, ';') | toFloat(x)] ELSE l.w_hist_edges END,
    l.w_hist_counts = CASE WHEN l.w_hist_counts IS :: STRING
                      THEN [x IN split(l.w_hist_counts, ';') | toInteger(x)] ELSE l.w_hist_counts END,
    l.ns_hist_counts = CASE WHEN l.ns_hist_counts IS :: STRING
                       THEN [x IN split(l.ns_hist_counts, ';') | toInteger(x)] ELSE l.ns_hist_counts END,
    l.na_hist_counts = CASE WHEN l.na_hist_counts IS :: STRING
                       THEN [x IN split(l.na_hist_counts, ';') | toInteger(x)] ELSE l.na_hist_counts END"""
CYPHER = [PARQUET_ARRAYS]
ARRAY_DELIMITER = ";"
NEURON_HEADER = [":ID(Neuron)", "uid", "version", "layer:int", "index:int", "s_in:double", "s_out:double",
                 "strength:double", "bias:double", "channel:int", "row:int", "col:int", "ns_mean:double",
                 "ns_std:double", "na_mean:double", "na_std:double"]
LINK_HEADER = [":START_ID(Neuron)", ":END_ID(Neuron)", "weight:double"]
NODE_GROUPS = ("Model", "Version", "Layer", "Neuron", "Channel", "Skipped")
RELATIONSHIP_GROUPS = ("HAS_VERSION", "HAS_LAYER", "NEXT", "LINK", "CHANNEL_LINK", "SKIPPED")


class Exporter:
    """Collects versions into DIR; `finish()` writes the small groups and returns the import command."""

    def __init__(self, directory: Path, fmt: str = "csv"):
        if fmt not in FORMATS:
            raise NNGraphError(f"--format {fmt!r}: expected one of {', '.join(FORMATS)}")
        self.directory, self.format = directory, fmt
        self._created = not directory.exists()
        self._streams = {}
        try:
            if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
                raise NNGraphError(f"{directory} is not empty, or not a directory: export into a new or empty directory")
            directory.mkdir(parents=True, exist_ok=True)
            self._streams = {"Neuron": _Stream(self._path("Neuron"), NEURON_HEADER, fmt),
                             "LINK": _Stream(self._path("LINK"), LINK_HEADER, fmt)}
        except OSError as exc:
            self._remove()
            raise NNGraphError(f"cannot write the export into {directory} ({exc.strerror}): choose a directory "
                               "you can write (--to)") from None
        self._tables: dict[str, list[dict]] = {name: [] for name in ("Model", "Version", "Layer", "Channel", "Skipped",
                                                                      "HAS_VERSION", "HAS_LAYER", "NEXT",
                                                                      "CHANNEL_LINK", "SKIPPED")}
        self._versions: set[tuple[str, str]] = set()
        self._next_id = 0

    def __enter__(self):
        return self

    def __exit__(self, kind, error, trace):
        if error is not None:
            self._remove()
            if isinstance(error, OSError):
                raise NNGraphError(f"could not write the export to {self.directory} ({error.strerror or error}); "
                                   "the partial files were removed") from None

    def add_version(self, network: Network, metrics: NetworkMetrics, *, model: str, tag: str, uid: str,
                    properties: dict, options: GraphOptions = GraphOptions(), bar=None) -> int:
        """Add one version; returns the number of links written."""
        check_name(model, "model name")
        check_name(tag, "version tag")
        if (model, tag) in self._versions:
            raise NNGraphError(f"version {tag!r} of {model!r} is exported twice: give each file its own tag")
        self._versions.add((model, tag))
        if not any(row["name:ID(Model)"] == model for row in self._tables["Model"]):
            self._tables["Model"].append({"name:ID(Model)": model})
        self._tables["Version"].append({"uid:ID(Version)": uid, "model": model, "tag": tag, "status": "complete",
                                        **properties})
        self._tables["HAS_VERSION"].append({":START_ID(Model)": model, ":END_ID(Version)": uid})
        for row in layer_rows(uid, metrics, options):
            self._tables["Layer"].append({"uid:ID(Layer)": row["uid"], "version": uid, **row["properties"]})
            self._tables["HAS_LAYER"].append({":START_ID(Version)": uid, ":END_ID(Layer)": row["uid"]})
        for number, (name, kind, reason) in enumerate(skipped_rows(metrics)):
            skipped_uid = f"{uid}:s{number}"
            self._tables["Skipped"].append({":ID(Skipped)": skipped_uid, "version": uid, "name": name,
                                            "kind": kind, "reason": reason})
            self._tables["SKIPPED"].append({":START_ID(Version)": uid, ":END_ID(Skipped)": skipped_uid})
        first_ids = {}
        for layer in metrics.node_layers:
            index, count = layer.layer.index, layer.strength.size
            first_ids[index] = self._next_id
            ids = np.arange(self._next_id, self._next_id + count)
            self._next_id += count
            columns = neuron_columns(layer, metrics.data_of(index))
            columns = [ids, [f"{uid}:{index}:{i}" for i in range(count)], [uid] * count, np.full(count, index),
                       *columns.values()]  # None: not defined here (null)
            self._streams["Neuron"].write(columns)
        links = 0
        for weights in metrics.weight_layers:
            self._tables["NEXT"].append({":START_ID(Layer)": layer_uid(uid, weights.layer.src),
                                         ":END_ID(Layer)": layer_uid(uid, weights.layer.dst),
                                         "name": weights.layer.name, "kind": weights.layer.kind,
                                         "edges": weights.edges})
            src, dst = first_ids[weights.layer.src], first_ids[weights.layer.dst]
            for sources, targets, values in link_blocks(network, weights, options):
                self._streams["LINK"].write([sources + src, targets + dst, values])
                links += len(values)
                if bar is not None:
                    bar.update(len(values))
        if options.conv_edges == "channel":
            self._add_channels(uid, network, metrics)
        return links

    def _add_channels(self, uid: str, network: Network, metrics: NetworkMetrics) -> None:
        channel_uid = "{}:{}:c{}".format
        for layer in channel_layers(metrics):
            for index, channel, nodes, strength, mean in channel_rows(layer):
                self._tables["Channel"].append({"uid:ID(Channel)": channel_uid(uid, index, channel), "version": uid,
                                                "layer:int": index, "channel:int": channel, "nodes:long": nodes,
                                                "strength": strength, "mean_strength": mean})
        for weights in metrics.weight_layers:
            if weights.layer.is_conv:
                for src, c_in, dst, c_out, weight, abs_weight, taps in channel_link_rows(network, weights.layer):
                    self._tables["CHANNEL_LINK"].append({
                        ":START_ID(Channel)": channel_uid(uid, src, c_in), ":END_ID(Channel)": channel_uid(uid, dst, c_out),
                        "weight": weight, "abs_weight": abs_weight, "taps:int": taps})

    def finish(self, database: str = "neo4j") -> str:
        """Write the node and relationship groups that were kept in memory; the import command."""
        for name, rows in self._tables.items():
            if rows:  # no Channel rows without conv layers: that group is left out
                _Stream.from_rows(self._path(name), rows, self.format)
        for stream in self._streams.values():
            stream.close()
        return shlex.join(["neo4j-admin", *import_arguments(self.directory, database)])

    def _path(self, group: str) -> Path:
        return self.directory / f"{group}.{self.format}"

    def _files(self, group: str) -> list[Path]:
        return _group_files(self.directory, group, self.format)

    def _remove(self) -> None:
        for stream in self._streams.values():
            stream.close(quietly=True)
        if self._created:
            shutil.rmtree(self.directory, ignore_errors=True)
        else:
            for group in NODE_GROUPS + RELATIONSHIP_GROUPS:
                for path in self._files(group):
                    path.unlink(missing_ok=True)


def _group_files(directory: Path, group: str, fmt: str) -> list[Path]:
    data = (directory / f"{group}.{fmt}").resolve()
    return [data.with_suffix(".header.csv"), data] if fmt == "csv" else [data]


def import_arguments(directory: Path, database: str = "neo4j") -> list[str]:
    """The neo4j-admin arguments (after `neo4j-admin`) that load an export directory into `database`."""
    formats = [fmt for fmt in FORMATS if (directory / f"Neuron.{fmt}").is_file()]
    if not formats:
        raise NNGraphError(f"{directory} holds no nngraph export (no Neuron.csv or Neuron.parquet): write one "
                           "with `nngraph export ... --to DIR`")
    fmt = formats[0]
    arguments = ["database", "import", "full", database, "--overwrite-destination", f"--input-type={fmt}",
                 f"--array-delimiter={ARRAY_DELIMITER}"]
    for group in NODE_GROUPS + RELATIONSHIP_GROUPS:
        files = _group_files(directory, group, fmt)
        if files[-1].is_file():  # a group with no rows (Channel without conv layers) was not written
            kind = "nodes" if group in NODE_GROUPS else "relationships"
            arguments.append(f"--{kind}={group}={','.join(str(p) for p in files)}")
    return arguments


class _Stream:
    """One group's data file, written table by table (pyarrow), with its header file for CSV."""

    def __init__(self, path: Path, header: list[str], fmt: str):
        self.path, self.header, self.format = path, header, fmt
        self._writer = None

    def write(self, columns) -> None:
        import pyarrow as pa

        length = len(columns[0])
        types = [_arrow_type(name) for name in self.header]
        self._write(pa.table({name: pa.nulls(length, kind) if column is None else pa.array(column, type=kind)
                              for name, kind, column in zip(self.header, types, columns)}))

    @classmethod
    def from_rows(cls, path: Path, rows: list[dict], fmt: str) -> None:
        """A small group from dict rows: the header is the union of keys, typed from the values."""
        import pyarrow as pa

        names = list(dict.fromkeys(key for row in rows for key in row))
        columns = {name: [row.get(name) for row in rows] for name in names}
        header = [_typed(name, values, fmt) for name, values in columns.items()]
        stream = cls(path, header, fmt)
        table = pa.table({typed: _column(values) for typed, values in zip(header, columns.values())})
        stream._write(table)
        stream.close()

    def _write(self, table) -> None:
        import pyarrow.csv as csv
        import pyarrow.parquet as parquet

        if self._writer is None:
            if self.format == "csv":
                self.path.with_suffix(".header.csv").write_text(",".join(table.column_names) + "\n")
                self._writer = csv.CSVWriter(str(self.path), table.schema,
                                             write_options=csv.WriteOptions(include_header=False))
            else:
                # uncompressed, version 1 pages: neo4j-admin 5.26's Snappy reader fails on pyarrow 25's
                # version 2 pages of incompressible weights and on the large dictionary pages of 100M
                # links (FAILED_TO_UNCOMPRESS); weights hardly compress anyway
                self._writer = parquet.ParquetWriter(str(self.path), table.schema, data_page_version="1.0",
                                                     compression="none")
        self._writer.write_table(table)

    def close(self, quietly: bool = False) -> None:
        if self._writer is None and not quietly:
            self._write(_empty(self.header))
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def _arrow_type(field: str):
    """The column type a streamed header field holds: IDs and int/long as int64, double, else string."""
    import pyarrow as pa

    kind = field.partition(":")[2]
    if kind.startswith(("ID", "START_ID", "END_ID")) or kind in ("int", "long"):
        return pa.int64()
    return pa.float64() if kind == "double" else pa.string()


def _typed(name: str, values: list, fmt: str) -> str:
    """A neo4j-admin header field: name:type from the Python values (str needs no type). Arrays in
    Parquet stay untyped strings: neo4j-admin 5.26 imports no Parquet list column (nor a typed
    string), so `nngraph db import` turns them into arrays after the import (PARQUET_ARRAYS)."""
    if ":" in name:
        return name
    sample = next((v for v in values if v is not None), None)
    if isinstance(sample, (list, tuple)):
        if fmt == "parquet":
            return name
        inner = next((x for v in values if v for x in v), 0.0)
        return f"{name}:{_scalar_type(inner)}[]"
    return name if isinstance(sample, str) or sample is None else f"{name}:{_scalar_type(sample)}"


def _scalar_type(value) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, np.integer)):
        return "long"
    return "double"


def _column(values: list):
    import pyarrow as pa

    # arrays as delimited strings in both formats: neo4j-admin 5.26 refuses Parquet list columns
    # ("[Ljava.lang.Object; is not a supported property value"), and parses these by the header's type
    if any(isinstance(v, (list, tuple)) for v in values):
        return pa.array([None if v is None else ARRAY_DELIMITER.join(map(str, v)) for v in values])
    return pa.array(values)


def _empty(header: list[str]):
    import pyarrow as pa

    return pa.table({name: pa.array([], pa.float64()) for name in header})

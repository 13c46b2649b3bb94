"""A Report as files: one self-contained HTML page (plots embedded as PNG), Markdown with
PNGs beside it, JSON with every table, or one CSV per table. Plots use matplotlib's Agg
backend, so no display is needed."""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

import numpy as np

from nngraph.errors import NNGraphError

from .reports import Report

FORMATS = ("html", "md", "json", "csv")
STYLE = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222;line-height:1.45}
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:1.6em}table{border-collapse:collapse;font-size:.82em;margin:.6em 0}
td,th{border:1px solid #ccc;padding:.2em .5em;text-align:right}th{background:#f3f3f3}
.meaning{background:#f6f8fa;border-left:4px solid #4c72b0;padding:.6em 1em}figure{margin:1em 0}
figcaption{font-size:.9em;color:#555}img{max-width:100%}.scroll{max-height:28em;overflow:auto}"""
MAX_HTML_ROWS = 400  # longer tables are cut in HTML and Markdown (JSON and CSV hold every row)


def write(report: Report, directory: Path, fmt: str) -> list[Path]:
    """Write the report into `directory` (created if needed); the files written."""
    if fmt not in FORMATS:
        raise NNGraphError(f"--format {fmt!r}: expected one of {', '.join(FORMATS)}")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        return {"html": _html, "md": _markdown, "json": _json, "csv": _csv}[fmt](report, directory)
    except OSError as exc:
        raise NNGraphError(f"cannot write the report into {directory} ({exc.strerror or exc}): "
                           "choose a writable --out directory") from None


def _png(draw) -> bytes:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(10, 5.5), layout="constrained")
    draw(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=96)
    return buffer.getvalue()


def _coverage(report: Report) -> list[str]:
    versions = report.versions if len(report.versions) <= 12 else report.versions[:6] + ["..."] + report.versions[-3:]
    return [f"Model: {report.model}", f"Versions ({len(report.versions)}): {', '.join(versions)}",
            f"Layers: {', '.join(map(str, report.layers))}"]


def _html(report: Report, directory: Path) -> list[Path]:
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(report.title)}</title>"
             f"<style>{STYLE}</style></head><body><h1>{html.escape(report.title)}</h1>",
             f"<p class='meaning'>{html.escape(report.meaning)}</p>",
             "<ul>" + "".join(f"<li>{html.escape(line)}</li>" for line in _coverage(report)) + "</ul>"]
    if report.findings:
        parts.append("<h2>Measured</h2><ul>" + "".join(f"<li>{html.escape(f)}</li>" for f in report.findings)
                     + "</ul>")
    for caption, draw in report.figures:
        image = base64.b64encode(_png(draw)).decode()
        parts.append(f"<figure><img alt='{html.escape(caption)}' src='data:image/png;base64,{image}'>"
                     f"<figcaption>{html.escape(caption)}</figcaption></figure>")
    for name, table in report.tables.items():
        shown = table.head(MAX_HTML_ROWS)
        note = f" (first {MAX_HTML_ROWS} of {len(table)} rows; the JSON and CSV formats hold all)" \
            if len(table) > MAX_HTML_ROWS else ""
        parts.append(f"<h2>{html.escape(name)}{note}</h2><div class='scroll'>"
                     + shown.to_html(index=False, float_format=lambda x: f"{x:.6g}", na_rep="") + "</div>")
    parts.append("<h2>Skipped</h2><ul>" + ("".join(f"<li>{html.escape(s)}</li>" for s in report.skipped)
                                          or "<li>nothing</li>") + "</ul></body></html>")
    path = directory / f"{report.name}.html"
    path.write_text("\n".join(parts))
    return [path]


def _markdown(report: Report, directory: Path) -> list[Path]:
    lines = [f"# {report.title}", "", f"> {report.meaning}", "", *[f"- {line}" for line in _coverage(report)], ""]
    if report.findings:
        lines += ["## Measured", "", *[f"- {f}" for f in report.findings], ""]
    written = []
    for number, (caption, draw) in enumerate(report.figures, 1):
        image = directory / f"{report.name}-{number}.png"
        image.write_bytes(_png(draw))
        written.append(image)
        lines += [f"![{caption}]({image.name})", "", f"*{caption}*", ""]
    for name, table in report.tables.items():
        lines += [f"## {name}", "", _markdown_table(table.head(MAX_HTML_ROWS)), ""]
    lines += ["## Skipped", "", *([f"- {s}" for s in report.skipped] or ["- nothing"])]
    path = directory / f"{report.name}.md"
    path.write_text("\n".join(lines) + "\n")
    return [path, *written]


def _markdown_table(table) -> str:
    if table.empty:
        return "(no rows)"
    cell = lambda v: "" if v is None or (isinstance(v, float) and np.isnan(v)) else (  # noqa: E731
        f"{v:.6g}" if isinstance(v, float) else str(v))
    rows = ["| " + " | ".join(map(str, table.columns)) + " |", "|" + "---|" * len(table.columns)]
    rows += ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join(rows)


def _json(report: Report, directory: Path) -> list[Path]:
    document = {"report": report.name, "title": report.title, "meaning": report.meaning, "model": report.model,
                "versions": report.versions, "layers": report.layers, "findings": report.findings,
                "skipped": report.skipped,
                "tables": {name: _records(table) for name, table in report.tables.items()}}
    path = directory / f"{report.name}.json"
    path.write_text(json.dumps(document, indent=1, default=lambda value: value.item()))  # numpy scalars
    return [path]


def _records(table) -> list[dict]:
    """Rows with every digit of the floats (pandas' to_json rounds to 10) and null for NaN."""
    return table.astype(object).where(table.notna(), None).to_dict(orient="records")


def _csv(report: Report, directory: Path) -> list[Path]:
    paths = []
    for name, table in report.tables.items():
        path = directory / f"{report.name}-{name}.csv"
        table.to_csv(path, index=False)
        paths.append(path)
    return paths

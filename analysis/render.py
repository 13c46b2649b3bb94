"""A Report as files: one self-contained HTML page (interactive Vega-Lite plots, with Vega and
vega-embed inlined once per page, so it works offline), Markdown with PNGs beside it (drawn by
vl-convert, no browser needed), JSON with every table, or one CSV per table."""

from __future__ import annotations

import functools
import html
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


@functools.cache
def vega_bundle() -> str:
    """Vega, Vega-Lite and vega-embed as one script (vl-convert bundles the versions it renders with)."""
    import vl_convert

    return vl_convert.javascript_bundle().replace("</script", "<\\/script")


def _png(figure) -> bytes:
    import vl_convert

    return vl_convert.vegalite_to_png(figure.spec(), scale=1.5)


def embed(number: int, figure) -> str:
    """The script that draws one chart into its div; an error shows in the page, never silently blank."""
    spec = json.dumps(figure.spec()).replace("</", "<\\/")
    return (f"vegaEmbed('#figure-{number}', {spec}, {{renderer: 'svg', actions: {{export: true, source: false, "
            f"compiled: false, editor: false}}}}).catch(e => {{document.getElementById('figure-{number}').textContent "
            f"= 'this plot could not be drawn: ' + e}});")


def _coverage(report: Report) -> list[str]:
    versions = report.versions if len(report.versions) <= 12 else report.versions[:6] + ["..."] + report.versions[-3:]
    return [f"Model: {report.model}", f"Versions ({len(report.versions)}): {', '.join(versions)}",
            f"Layers ({len(report.layers)}, forward order): {', '.join(report.layer_labels[:24])}"
            f"{' ...' if len(report.layers) > 24 else ''}"]


def _html(report: Report, directory: Path) -> list[Path]:
    path = directory / f"{report.name}.html"
    path.write_text(page(report))
    return [path]


def page(report: Report) -> str:
    """The report as one self-contained HTML page."""
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(report.title)}</title>"
             f"<style>{STYLE}</style></head><body><h1>{html.escape(report.title)}</h1>",
             f"<p class='meaning'>{html.escape(report.meaning)}</p>",
             f"<p class='meaning'><b>What to look for.</b> {html.escape(report.look_for)}</p>",
             "<ul>" + "".join(f"<li>{html.escape(line)}</li>" for line in _coverage(report)) + "</ul>"]
    if report.findings:
        parts.append("<h2>Measured</h2><ul>" + "".join(f"<li>{html.escape(f)}</li>" for f in report.findings)
                     + "</ul>")
    if report.figures:
        parts.append(f"<script>{vega_bundle()}</script>")
    for number, (caption, figure) in enumerate(report.figures, 1):
        parts.append(f"<figure><div id='figure-{number}' class='plot'></div><figcaption>{html.escape(caption)}"
                     f"</figcaption></figure><script>{embed(number, figure)}</script>")
    for name, table in report.tables.items():
        shown = table.head(MAX_HTML_ROWS)
        note = f" (first {MAX_HTML_ROWS} of {len(table)} rows; the JSON and CSV formats hold all)" \
            if len(table) > MAX_HTML_ROWS else ""
        parts.append(f"<h2>{html.escape(name)}{note}</h2><div class='scroll'>"
                     + shown.to_html(index=False, float_format=lambda x: f"{x:.6g}", na_rep="") + "</div>")
    parts.append("<h2>Skipped</h2><ul>" + ("".join(f"<li>{html.escape(s)}</li>" for s in report.skipped)
                                          or "<li>nothing</li>") + "</ul></body></html>")
    return "\n".join(parts)


def _markdown(report: Report, directory: Path) -> list[Path]:
    lines = [f"# {report.title}", "", f"> {report.meaning}", ">", f"> **What to look for.** {report.look_for}", "",
             *[f"- {line}" for line in _coverage(report)], ""]
    if report.findings:
        lines += ["## Measured", "", *[f"- {f}" for f in report.findings], ""]
    written = []
    for number, (caption, figure) in enumerate(report.figures, 1):
        image = directory / f"{report.name}-{number}.png"
        image.write_bytes(_png(figure))
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
    document = {"report": report.name, "title": report.title, "meaning": report.meaning,
                "look_for": report.look_for, "model": report.model,
                "versions": report.versions, "layers": report.layers, "findings": report.findings,
                "skipped": report.skipped,
                "tables": {name: records(table) for name, table in report.tables.items()}}
    path = directory / f"{report.name}.json"
    path.write_text(json.dumps(document, indent=1, default=lambda value: value.item()))  # numpy scalars
    return [path]


def records(table) -> list[dict]:
    """Rows with every digit of the floats (pandas' to_json rounds to 10) and null for NaN."""
    return table.astype(object).where(table.notna(), None).to_dict(orient="records")


def _csv(report: Report, directory: Path) -> list[Path]:
    paths = []
    for name, table in report.tables.items():
        path = directory / f"{report.name}-{name}.csv"
        table.to_csv(path, index=False)
        paths.append(path)
    return paths

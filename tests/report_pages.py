"""Report pages as a person sees them, in headless Chromium driven by Playwright (Debian's
chromium, so nothing is downloaded): what every plot needs, checked from the drawn SVG."""

from __future__ import annotations

import json
import shutil
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

# a point on a mark in page coordinates: the middle of a line's path, else the middle of its box
POINT_ON = """el => { const box = el.getBBox(); const p = el.getTotalLength && el.getTotalLength() > 0
  ? el.getPointAtLength(el.getTotalLength() / 2) : {x: box.x + box.width / 2, y: box.y + box.height / 2};
  const at = new DOMPoint(p.x, p.y).matrixTransform(el.getScreenCTM()); return [at.x, at.y]; }"""
OUTSIDE = """(svg) => { const frame = svg.getBoundingClientRect(); return [...svg.querySelectorAll('text')]
  .filter(t => t.textContent.trim()).map(t => [t.textContent, t.getBoundingClientRect()])
  .filter(([_, r]) => r.width > 0 && (r.left < frame.left - 1 || r.right > frame.right + 1
                                      || r.top < frame.top - 1 || r.bottom > frame.bottom + 1))
  .map(([text]) => text); }"""

# axes (not the grid-only ones Vega-Lite adds) and how many of them lack a title
UNTITLED_AXES = """(svg) => { const axes = [...svg.querySelectorAll('g.role-axis')]
  .filter(a => a.querySelector('.role-axis-domain, .role-axis-label, .role-axis-title'));
  return [axes.length, axes.filter(a => !(a.querySelector('.role-axis-title text') || {}).textContent).length]; }"""


@contextmanager
def chromium_page():
    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        pytest.fail("headless Chromium is needed: apt-get install chromium chromium-driver (as .ci/run does)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            errors = []
            page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.errors = errors
            yield page
        finally:
            browser.close()


def open_report(page, path: Path, figures: int) -> float:
    """Load a report page and wait until all its plots are drawn; the seconds that took."""
    start = time.perf_counter()
    page.goto(path.as_uri())
    page.wait_for_function(f"document.querySelectorAll('.plot svg.marks').length === {figures}", timeout=20_000)
    seconds = time.perf_counter() - start
    assert not page.errors, page.errors
    assert "could not be drawn" not in page.inner_text("body")
    return seconds


def uses_colour(spec: dict) -> bool:
    """Whether a Vega-Lite spec encodes a field as colour (then the plot needs a legend or colour bar)."""
    if isinstance(spec, dict):
        colour = spec.get("encoding", {}).get("color", {})
        return "field" in colour or any(uses_colour(value) for value in spec.values())
    return isinstance(spec, list) and any(uses_colour(value) for value in spec)


def check_plot(page, number: int, spec: dict) -> None:
    """One drawn plot: marks with area, a title on every axis, a legend where colour means
    something, no text outside the plot."""
    figure = page.locator(f"#figure-{number} svg.marks")
    figure.scroll_into_view_if_needed()
    marks = page.locator(f"#figure-{number} g.role-mark > path")
    sizes = marks.evaluate_all("els => els.map(e => { const b = e.getBBox(); return b.width + b.height; })")
    assert sum(size > 0 for size in sizes) > 0, f"figure {number}: nothing drawn"
    axes, untitled = figure.evaluate(UNTITLED_AXES)
    assert axes and not untitled, f"figure {number}: {untitled} of {axes} axes have no title"
    if uses_colour(spec):
        assert page.locator(f"#figure-{number} g.role-legend").count() >= 1, f"figure {number}: no legend"
    assert figure.evaluate(OUTSIDE) == [], f"figure {number}: text outside the plot"


def specs_in(path: Path) -> list[dict]:
    """The Vega-Lite spec of every plot of a report page, read from its vegaEmbed calls."""
    text, decoder, specs = path.read_text(), json.JSONDecoder(), []
    start = text.find("vegaEmbed('#figure-")
    while start >= 0:
        spec, end = decoder.raw_decode(text, text.index("', ", start) + 3)
        specs.append(spec)
        start = text.find("vegaEmbed('#figure-", end)
    return specs


def check_report_page(page, path: Path) -> float:
    """Every plot of the page drawn and readable; the seconds until all were drawn."""
    specs = specs_in(path)
    seconds = open_report(page, path, len(specs))
    for number, spec in enumerate(specs, 1):
        check_plot(page, number, spec)
    return seconds


def hover_shows_a_value(page, number: int) -> str:
    """Move the mouse onto a point or cell of the plot; the tooltip's text."""
    mark = page.locator(f"#figure-{number} g.mark-symbol > path, #figure-{number} g.mark-rect > path").first
    mark.scroll_into_view_if_needed()
    x, y = mark.evaluate(POINT_ON)
    page.mouse.move(x - 15, y - 15)
    page.mouse.move(x, y, steps=4)
    page.mouse.move(x + 0.5, y)  # Vega shows the tooltip on a move within the mark, not on entering it
    tooltip = page.locator("#vg-tooltip-element.visible")
    tooltip.wait_for(timeout=5_000)
    return tooltip.inner_text()


def choosing_a_layer_redraws(page, number: int) -> tuple[str, str]:
    """Choose another layer under the plot; the drawn lines before and after."""
    drawn = page.locator(f"#figure-{number} g.mark-line > path")
    before = json.dumps(drawn.evaluate_all("els => els.map(e => e.getAttribute('d'))"))
    choice = page.locator(f"#figure-{number} select").first
    options = choice.locator("option").all_inner_texts()
    current = choice.evaluate("s => s.selectedIndex")
    choice.select_option(index=(current + 1) % len(options))
    page.wait_for_function(f"JSON.stringify([...document.querySelectorAll('#figure-{number} g.mark-line > path')]"
                           f".map(e => e.getAttribute('d'))) !== {json.dumps(before)}", timeout=5_000)
    return before, json.dumps(drawn.evaluate_all("els => els.map(e => e.getAttribute('d'))"))

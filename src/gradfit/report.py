"""One self-contained HTML report: figures, the settings that made them, tables of results.

A `Report` is plain data (sections of text, figures, settings and tables, optionally
grouped into numbered `Part` s with their formulas); `to_html` renders it as one HTML page
that embeds its images (PNG as base64 ``data:`` URIs, SVG inline), carries its own CSS,
and loads nothing: it opens from disk with no server and no network. A `Viewer` is an
interactive plotly figure with a slider; a page holding any embeds plotly.js once, inline,
with a few lines of script that move the slider's traces. `fits_table` turns fit results
into a table of final parameters and losses.
"""

from __future__ import annotations

import base64
import html
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Image:
    """A figure to embed: PNG bytes or SVG text, with a caption and the file name it was saved as."""

    caption: str
    png: bytes | None = None
    svg: str | None = None
    name: str = ""

    def __post_init__(self):
        if (self.png is None) == (self.svg is None):
            raise ValueError("an Image holds either png bytes or svg text")


@dataclass(frozen=True)
class Table:
    """Rows of cells under a header; numbers are printed with 6 significant digits."""

    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]
    caption: str = ""


@dataclass(frozen=True)
class Formula:
    """A displayed formula: its inline SVG, and the same in plain text (its accessible label)."""

    text: str
    svg: str


@dataclass(frozen=True)
class Viewer:
    """A plotly figure with one slider; moving it to position k restyles the traces in ``frames[k]``.

    ``traces`` and ``layout`` are plotly's JSON figure; ``frames[k]`` maps a trace's index
    to the attributes it takes at position k (``{"x": [...], "y": [...]}``); ``positions[k]``
    is what the slider shows there (``"step 40"``, ``"α = 0.01"``). Non-finite numbers are
    written as null (a gap).
    """

    id: str
    caption: str
    traces: tuple[Mapping[str, Any], ...]
    layout: Mapping[str, Any]
    label: str
    positions: tuple[str, ...]
    frames: tuple[Mapping[int, Mapping[str, Any]], ...]
    start: int = 0

    def __post_init__(self):
        if len(self.positions) != len(self.frames) or not self.frames:
            raise ValueError("a Viewer needs one label per frame, and at least one frame")
        if not 0 <= self.start < len(self.frames):
            raise ValueError(f"start {self.start} is not a position of the slider (0 to {len(self.frames) - 1})")


@dataclass(frozen=True)
class Section:
    """A heading, paragraphs (split on blank lines), figures, viewers, the settings behind them, and tables.

    ``number`` (``"2.3"``) is printed before the title; ``anchor`` is the section's id.
    """

    title: str
    text: str = ""
    images: tuple[Image, ...] = ()
    settings: Mapping[str, Any] = field(default_factory=dict)
    tables: tuple[Table, ...] = ()
    anchor: str = ""
    number: str = ""
    viewers: tuple[Viewer, ...] = ()


@dataclass(frozen=True)
class Part:
    """A numbered group of sections, with an introduction and the formulas they rest on."""

    number: str
    title: str
    anchor: str
    text: str = ""
    formulas: tuple[Formula, ...] = ()
    sections: tuple[Section, ...] = ()


@dataclass(frozen=True)
class Report:
    """A title, an introduction, parts (each holding sections), loose sections after them, a footer."""

    title: str
    intro: str = ""
    sections: tuple[Section, ...] = ()
    footer: str = ""
    parts: tuple[Part, ...] = ()


def cell(value: Any) -> str:
    """How a table prints a value: floats to 6 significant digits, NaN as a dash."""
    if isinstance(value, bool) or value is None:
        return "" if value is None else str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return "–" if math.isnan(value) else f"{value:.6g}"
    try:  # numpy scalars
        import numpy as np

        if isinstance(value, np.integer):
            return str(int(value))
        if isinstance(value, np.floating):
            return cell(float(value))
    except ImportError:  # pragma: no cover
        pass
    return str(value)


def fits_table(results: Sequence, labels: Sequence[str], *, caption: str = "", time: bool = False) -> Table:
    """Final parameters, loss, gradient norm, steps and stop status of each fit, one row each.

    Array parameters are left out (a row per scalar would not fit); ``time`` adds the
    wall time of each fit.
    """
    first = results[0]
    names = [n for n, shape in first.shapes if shape == ()]
    columns = ("fit", *names, "final loss", "grad norm", "steps", "status") + (("time (s)",) if time else ())
    rows = []
    for label, r in zip(labels, results, strict=True):
        row = (label, *(float(r.params[n]) for n in names), float(r.loss), float(r.grad_norm), int(r.steps), r.status)
        rows.append(row + ((float(r.elapsed),) if time else ()))
    return Table(columns, tuple(rows), caption)


_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0; color: #1d2330;
       background: #f6f7f9; line-height: 1.5; }
header, main, footer { max-width: 1180px; margin: 0 auto; padding: 0 24px; }
header { padding-top: 28px; }
h1 { font-size: 1.9rem; margin: 0 0 6px; }
h2 { font-size: 1.35rem; margin: 0 0 8px; border-bottom: 2px solid #e1e5ec; padding-bottom: 4px; }
section { background: #fff; border-radius: 10px; box-shadow: 0 1px 3px rgba(0,0,0,.08); padding: 18px 22px;
          margin: 22px 0; }
nav ol { list-style: none; }
nav > ol { padding-left: 4px; }
nav > ol > li { font-weight: 600; margin-top: 4px; }
nav ol ol { font-weight: 400; padding-left: 18px; columns: 2; column-gap: 28px; }
@media (max-width: 900px) { nav ol ol { columns: 1; } }
.num { color: #4a5568; margin-right: .45em; font-variant-numeric: tabular-nums; }
.part-head { margin: 34px 0 0; padding: 0 4px; }
.part-head h2 { font-size: 1.6rem; border-bottom: 3px solid #c9d2e0; }
.part-head p, section p { max-width: 78ch; }
.formulas { display: flex; flex-wrap: wrap; gap: 10px 28px; align-items: center; margin: 10px 0; }
.formulas svg { max-width: 100%; height: auto; }
h3 { font-size: 1.2rem; margin: 0 0 8px; border-bottom: 2px solid #e1e5ec; padding-bottom: 4px; }
figure { margin: 14px 0; max-width: 100%; }
figure img, figure svg { max-width: 100%; height: auto; display: block; margin: 0 auto; }
.figure-scroll { max-width: 100%; overflow-x: auto; }
figcaption { font-size: .92rem; color: #4a5568; text-align: center; margin-top: 4px; }
.viewer-plot { width: 100%; height: 440px; }
.viewer-control { display: flex; align-items: center; gap: 12px; margin: 6px 8px; }
.viewer-control input { flex: 1; min-width: 120px; }
.viewer-control output { min-width: 11ch; font-family: ui-monospace, Menlo, Consolas, monospace; }
.table-wrap { max-width: 100%; overflow-x: auto; }
table { border-collapse: collapse; margin: 10px 0 4px; font-size: .9rem; }
caption { text-align: left; font-weight: 600; padding-bottom: 4px; white-space: normal; }
th, td { border-bottom: 1px solid #e1e5ec; padding: 4px 10px; text-align: right; white-space: nowrap; }
th:first-child, td:first-child { text-align: left; }
th { background: #f0f2f6; }
details { margin: 8px 0; }
summary { cursor: pointer; font-weight: 600; color: #2d3748; }
dl.settings { display: grid; grid-template-columns: max-content 1fr; gap: 2px 14px; font-size: .9rem; margin: 6px 0; }
dl.settings dt { font-weight: 600; color: #2d3748; }
dl.settings dd { margin: 0; font-family: ui-monospace, Menlo, Consolas, monospace; min-width: 0;
                 overflow-wrap: anywhere; }
.meta { color: #4a5568; font-size: .9rem; }
footer { color: #4a5568; font-size: .85rem; padding-bottom: 30px; }
"""


def _esc(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _slug(text: str, used: set[str]) -> str:
    base = "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-") or "section"
    slug, k = base, 2
    while slug in used:
        slug, k = f"{base}-{k}", k + 1
    used.add(slug)
    return slug


#: The smallest share of its own width a PNG is shown at: at 150 dpi this keeps 11-point text
#: at 11 px or more; a narrower window scrolls the figure sideways rather than shrink its text.
READABLE = 0.45


def _png_width(png: bytes) -> int:
    """A PNG's width in pixels, from its header; 0 when the bytes are not a PNG."""
    return int.from_bytes(png[16:20], "big") if png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) >= 24 else 0


def _image_html(image: Image) -> str:
    if image.png is not None:
        data = base64.b64encode(image.png).decode("ascii")
        least = f' style="min-width: {round(READABLE * _png_width(image.png))}px"' if _png_width(image.png) else ""
        body = (f'<div class="figure-scroll"><img src="data:image/png;base64,{data}" alt="{_esc(image.caption)}"'
                f"{least}></div>")
    else:
        svg = image.svg
        start = svg.find("<svg")  # drop the XML prolog and doctype: inline SVG starts at <svg
        body = svg[start:] if start >= 0 else svg
    caption = _esc(image.caption) + (f" <code>{_esc(image.name)}</code>" if image.name else "")
    return f"<figure>{body}<figcaption>{caption}</figcaption></figure>"


def _settings_html(settings: Mapping[str, Any]) -> str:
    if not settings:
        return ""
    items = "".join(f"<dt>{_esc(k)}</dt><dd>{_esc(_setting(v))}</dd>" for k, v in settings.items())
    return f'<details class="settings"><summary>Settings</summary><dl class="settings">{items}</dl></details>'


def _setting(value: Any) -> str:
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={_setting(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_setting(v) for v in value) + "]"
    return cell(value)


#: Tables longer than this are folded away under their caption.
FOLD_ROWS = 8


def _table_html(table: Table) -> str:
    """The table in a horizontally scrolling box; over `FOLD_ROWS` rows, folded under its caption."""
    head = "".join(f"<th>{_esc(c)}</th>" for c in table.columns)
    body = "".join("<tr>" + "".join(f"<td>{_esc(cell(v))}</td>" for v in row) + "</tr>" for row in table.rows)
    caption = f"<caption>{_esc(table.caption)}</caption>" if table.caption else ""
    box = f'<div class="table-wrap"><table>{caption}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'
    if len(table.rows) <= FOLD_ROWS:
        return box
    summary = f"{_esc(table.caption or 'Table')} ({len(table.rows)} rows)"
    return f'<details class="table"><summary>{summary}</summary>{box}</details>'


def _paragraphs(text: str) -> str:
    """Text split into paragraphs at blank lines."""
    return "".join(f"<p>{_esc(p.strip())}</p>" for p in re.split(r"\n\s*\n", text) if p.strip())


def _title(number: str, title: str) -> str:
    return (f'<span class="num">{_esc(number)}</span>' if number else "") + _esc(title)


def _finite(value: Any) -> Any:
    """JSON-safe data: numpy arrays and scalars as lists and floats, NaN and ±inf as None."""
    if isinstance(value, Mapping):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if hasattr(value, "tolist"):  # numpy
        return _finite(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def viewer_json(viewer: Viewer) -> str:
    """The viewer's figure, frames and labels as the page's script reads them."""
    spec = {"traces": viewer.traces, "layout": viewer.layout, "frames": viewer.frames,
            "positions": viewer.positions}
    text = json.dumps(_finite(spec), separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return text.replace("</", "<\\/")  # never close the script element early


def _viewer_html(viewer: Viewer) -> str:
    v, last = _esc(viewer.id), len(viewer.frames) - 1
    return (f'<figure class="viewer" id="{v}"><div class="viewer-plot" id="{v}-plot"></div>'
            f'<div class="viewer-control"><label for="{v}-slider">{_esc(viewer.label)}</label>'
            f'<input type="range" id="{v}-slider" min="0" max="{last}" step="1" value="{viewer.start}">'
            f'<output id="{v}-value" for="{v}-slider">{_esc(viewer.positions[viewer.start])}</output></div>'
            f"<figcaption>{_esc(viewer.caption)}</figcaption>"
            f'<script type="application/json" class="viewer-data">{viewer_json(viewer)}</script></figure>')


#: Draws each viewer, and restyles its traces as its slider moves; sets body[data-viewers] when done.
_VIEWER_SCRIPT = """
(function () {
  function show(plot, spec, output, k) {
    var frame = spec.frames[k];
    Object.keys(frame).forEach(function (i) {
      var update = {};
      Object.keys(frame[i]).forEach(function (key) { update[key] = [frame[i][key]]; });
      Plotly.restyle(plot, update, [Number(i)]);
    });
    output.textContent = spec.positions[k];
    plot.dataset.position = String(k);
  }
  var boxes = document.querySelectorAll("figure.viewer");
  var drawn = Array.prototype.map.call(boxes, function (box) {
    var spec = JSON.parse(box.querySelector("script.viewer-data").textContent);
    var plot = box.querySelector(".viewer-plot");
    var slider = box.querySelector("input[type=range]");
    var output = box.querySelector("output");
    return Plotly.newPlot(plot, spec.traces, spec.layout, {responsive: true, displaylogo: false})
      .then(function () {
        show(plot, spec, output, Number(slider.value));
        slider.addEventListener("input", function () { show(plot, spec, output, Number(slider.value)); });
      });
  });
  Promise.all(drawn).then(function () { document.body.dataset.viewers = "ready"; });
})();
"""


def _viewer_scripts(report: Report) -> str:
    sections = [*report.sections, *(s for p in report.parts for s in p.sections)]
    if not any(s.viewers for s in sections):
        return ""
    from plotly.offline import get_plotlyjs  # a dependency of gradfit: its plotly.js, embedded

    return f"<script>{get_plotlyjs()}</script><script>{_VIEWER_SCRIPT}</script>"


def _section_html(s: Section, anchor: str, heading: str) -> str:
    text = _paragraphs(s.text) if s.text else ""
    images = "".join(_image_html(i) for i in s.images)
    viewers = "".join(_viewer_html(v) for v in s.viewers)
    tables = "".join(_table_html(t) for t in s.tables)
    return (f'<section id="{_esc(anchor)}"><{heading}>{_title(s.number, s.title)}</{heading}>{text}{images}'
            f"{viewers}{_settings_html(s.settings)}{tables}</section>")


def _part_html(part: Part, anchors: Sequence[str]) -> str:
    formulas = "".join(f'<div class="formula">{f.svg}</div>' for f in part.formulas)
    formulas = f'<div class="formulas">{formulas}</div>' if formulas else ""
    head = (f'<header class="part-head"><h2>{_title(part.number, part.title)}</h2>'
            f"{_paragraphs(part.text)}{formulas}</header>")
    body = "".join(_section_html(s, a, "h3") for s, a in zip(part.sections, anchors, strict=True))
    return f'<article class="part" id="{_esc(part.anchor)}">{head}{body}</article>'


def to_html(report: Report) -> str:
    """The report as one self-contained HTML page."""
    used: set[str] = {p.anchor for p in report.parts} | {
        s.anchor for s in (*report.sections, *(s for p in report.parts for s in p.sections)) if s.anchor}

    def anchors(sections: Sequence[Section]) -> list[str]:
        return [s.anchor or _slug(s.title, used) for s in sections]

    def items(sections: Sequence[Section], names: Sequence[str]) -> str:
        return "".join(f'<li><a href="#{_esc(a)}">{_title(s.number, s.title)}</a></li>'
                       for s, a in zip(sections, names, strict=True))

    toc, body = [], []
    for part in report.parts:
        names = anchors(part.sections)
        inner = f"<ol>{items(part.sections, names)}</ol>" if part.sections else ""
        toc.append(f'<li><a href="#{_esc(part.anchor)}">{_title(part.number, part.title)}</a>{inner}</li>')
        body.append(_part_html(part, names))
    loose = anchors(report.sections)
    toc.append(items(report.sections, loose))
    body += [_section_html(s, a, "h2") for s, a in zip(report.sections, loose, strict=True)]
    made = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    intro = _paragraphs(report.intro) if report.intro else ""
    count = len(report.sections) + sum(len(p.sections) for p in report.parts)
    nav = f"<nav><ol>{''.join(toc)}</ol></nav>" if count > 1 or report.parts else ""
    footer = _esc(report.footer) + " " if report.footer else ""
    scripts = _viewer_scripts(report)
    loads = "every image and script is embedded" if scripts else "every image is embedded"
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><title>{_esc(report.title)}</title>'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<style>{_CSS}</style></head><body>"
        f'<header><h1>{_esc(report.title)}</h1>{intro}<p class="meta">Made by gradfit on {made}.</p>{nav}</header>'
        f"<main>{''.join(body)}</main>"
        f"<footer>{footer}Self-contained: {loads}; the page loads nothing.</footer>"
        f"{scripts}</body></html>\n"
    )


def write(report: Report, path: str | Path) -> Path:
    """Write the report's HTML to ``path`` (folders made as needed)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(to_html(report), encoding="utf-8")
    return path

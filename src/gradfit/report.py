"""One self-contained HTML report: figures, the settings that made them, tables of results.

A `Report` is plain data (sections of text, figures, settings and tables); `to_html`
renders it as one HTML page that embeds its images (PNG as base64 ``data:`` URIs, SVG
inline), carries its own CSS, and loads nothing: it opens from disk with no server and
no network. `fits_table` turns fit results into a table of final parameters and losses.
"""

from __future__ import annotations

import base64
import html
import math
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
class Section:
    """A heading, a paragraph, figures, the settings behind them, and tables."""

    title: str
    text: str = ""
    images: tuple[Image, ...] = ()
    settings: Mapping[str, Any] = field(default_factory=dict)
    tables: tuple[Table, ...] = ()
    anchor: str = ""


@dataclass(frozen=True)
class Report:
    title: str
    intro: str = ""
    sections: tuple[Section, ...] = ()
    footer: str = ""


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
nav ol { columns: 2; padding-left: 20px; }
figure { margin: 14px 0; }
figure img, figure svg { max-width: 100%; height: auto; display: block; margin: 0 auto; }
figcaption { font-size: .92rem; color: #4a5568; text-align: center; margin-top: 4px; }
table { border-collapse: collapse; margin: 10px 0 4px; font-size: .9rem; }
caption { text-align: left; font-weight: 600; padding-bottom: 4px; }
th, td { border-bottom: 1px solid #e1e5ec; padding: 4px 10px; text-align: right; white-space: nowrap; }
th:first-child, td:first-child { text-align: left; }
th { background: #f0f2f6; }
details { margin: 8px 0; }
dl.settings { display: grid; grid-template-columns: max-content 1fr; gap: 2px 14px; font-size: .9rem; margin: 6px 0; }
dl.settings dt { font-weight: 600; color: #2d3748; }
dl.settings dd { margin: 0; font-family: ui-monospace, Menlo, Consolas, monospace; }
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


def _image_html(image: Image) -> str:
    if image.png is not None:
        data = base64.b64encode(image.png).decode("ascii")
        body = f'<img src="data:image/png;base64,{data}" alt="{_esc(image.caption)}">'
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
    return f'<details open><summary>Settings</summary><dl class="settings">{items}</dl></details>'


def _setting(value: Any) -> str:
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={_setting(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_setting(v) for v in value) + "]"
    return cell(value)


def _table_html(table: Table) -> str:
    head = "".join(f"<th>{_esc(c)}</th>" for c in table.columns)
    body = "".join("<tr>" + "".join(f"<td>{_esc(cell(v))}</td>" for v in row) + "</tr>" for row in table.rows)
    caption = f"<caption>{_esc(table.caption)}</caption>" if table.caption else ""
    return f"<table>{caption}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def to_html(report: Report) -> str:
    """The report as one self-contained HTML page."""
    used: set[str] = set()
    anchors = [s.anchor or _slug(s.title, used) for s in report.sections]
    toc = "".join(f'<li><a href="#{a}">{_esc(s.title)}</a></li>' for a, s in zip(anchors, report.sections, strict=True))
    parts = []
    for anchor, s in zip(anchors, report.sections, strict=True):
        text = f"<p>{_esc(s.text)}</p>" if s.text else ""
        images = "".join(_image_html(i) for i in s.images)
        tables = "".join(_table_html(t) for t in s.tables)
        parts.append(f'<section id="{anchor}"><h2>{_esc(s.title)}</h2>{text}{images}'
                     f"{_settings_html(s.settings)}{tables}</section>")
    made = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    intro = f"<p>{_esc(report.intro)}</p>" if report.intro else ""
    nav = f"<nav><ol>{toc}</ol></nav>" if len(report.sections) > 1 else ""
    footer = _esc(report.footer) + " " if report.footer else ""
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><title>{_esc(report.title)}</title>'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<style>{_CSS}</style></head><body>"
        f'<header><h1>{_esc(report.title)}</h1>{intro}<p class="meta">Made by gradfit on {made}.</p>{nav}</header>'
        f"<main>{''.join(parts)}</main>"
        f"<footer>{footer}Self-contained: every image is embedded; the page loads nothing.</footer>"
        "</body></html>\n"
    )


def write(report: Report, path: str | Path) -> Path:
    """Write the report's HTML to ``path`` (folders made as needed)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(to_html(report), encoding="utf-8")
    return path

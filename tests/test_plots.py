"""Figures and the HTML report: valid PNG and SVG files, legends from the fit records,
tables that print the library's numbers, a page that loads nothing, and no matplotlib
import until a figure is drawn."""

from __future__ import annotations

import base64
import subprocess
import sys
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import numpy as np
import pytest

import gradfit as gf
from gradfit import landscape as ls
from gradfit import plots
from gradfit import report as rp

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def assert_png(data: bytes, min_size=(200, 150)):
    assert data[:8] == PNG_MAGIC
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")  # the IHDR chunk
    assert width >= min_size[0] and height >= min_size[1]


def assert_svg(text: str):
    root = ET.fromstring(text)
    assert root.tag.endswith("svg")
    assert len(list(root.iter())) > 20


class Page(HTMLParser):
    """Collects tags, the sources of images and the text of table cells, per table."""

    def __init__(self):
        super().__init__()
        self.tags, self.sources, self.tables = [], [], []
        self._cell = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append((tag, attrs))
        if tag == "img":
            self.sources.append(attrs.get("src", ""))
        elif tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = ""

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append(self._cell)
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data


def parse(html: str) -> Page:
    page = Page()
    page.feed(html)
    page.close()
    return page


def assert_self_contained(html: str):
    """No external resource: images are data URIs, scripts inline; no script, style or frame is fetched."""
    page = parse(html)
    assert html.lstrip().startswith("<!DOCTYPE html>")
    for tag, attrs in page.tags:
        assert tag not in ("link", "iframe", "object", "embed"), tag
        assert tag != "script" or "src" not in dict(attrs), "a script is inline, never fetched"
        for key in ("src", "href", "data"):
            value = attrs.get(key) or ""
            if key == "href" and value.startswith("#"):
                continue
            assert not value or value.startswith("data:"), (tag, key, value[:60])
    assert "url(" not in html.split("<style>")[1].split("</style>")[0]
    return page


@pytest.fixture(scope="module")
def line_fits():
    data = gf.linear_data(0)
    fixed = gf.fit("linear", "normal", data, gf.gd(0.015), init=[-0.4, 2.2], steps=40, tol=0)
    searched = gf.fit("linear", "normal", data, gf.gd(line_search=True), init=[-0.4, 2.2], steps=10, tol=0)
    fn = ls.LossFunction(gf.linear(), gf.normal(), data)
    surf = ls.surface(fn, ("phi0", "phi1"), ((-1.0, 2.0), (-0.5, 2.5)), resolution=40)
    return data, fixed, searched, fn, surf


@pytest.mark.parametrize(
    "optimizer,label",
    [
        (gf.gd(0.01), "gd (α=0.01)"),
        (gf.gd(line_search=True), "gd (line search)"),
        (gf.adam(0.1), "adam (α=0.1, β=0.9, γ=0.999)"),
        (gf.adam(0.1, variant="standard"), "adam [standard] (α=0.1, β=0.9, γ=0.999)"),
        (gf.nesterov(0.05, 0.8, variant="torch"), "nesterov [torch] (α=0.05, β=0.8)"),
        (gf.sgd(gf.step_decay(0.1, 0.5, 40)), "sgd (α=0.1 ×0.5 every 40)"),
        (gf.momentum(gf.warmup(0.2, 5), 0.9), "momentum (α=0.2, warm-up 5, β=0.9)"),
        (gf.adam(0.1, eps=1e-6), "adam (α=0.1, β=0.9, γ=0.999, ε=1e-06)"),
        (gf.momentum(0.1, variant="heavy-ball"), "momentum [heavy-ball] (α=0.1, β=0.9)"),
    ],
)
def test_legend_labels_name_optimiser_and_hyperparameters(optimizer, label):
    assert plots.optimizer_label(optimizer.to_dict()) == label


def test_paths_figure_writes_png_and_svg(tmp_path, line_fits):
    _, fixed, searched, fn, surf = line_fits
    runs = plots.traces([fixed, searched])
    points = ls.critical_points(surf.restricted(fn), surf.box, grid=5)
    fig = plots.paths_figure(surf, runs, points=points, floor=float(points[0].value), excess=True, title="t")
    png, svg = plots.save(fig, tmp_path / "figs", "paths")
    assert_png(png.read_bytes(), (1200, 600))
    assert_svg(svg.read_text())
    assert_png(plots.png_bytes(fig))
    left, right, bar = fig.axes  # the colour bar comes last
    assert (left.get_xlabel(), left.get_ylabel()) == (r"$\phi_{0}$", r"$\phi_{1}$")  # φ₀, φ₁ in mathtext
    assert "loss" in bar.get_ylabel() and "excess loss" in right.get_ylabel()
    legend_text = " ".join(t.get_text() for legend in fig.legends for t in legend.get_texts())
    for word in ("gd (α=0.015)", "gd (line search)", "start", "end", "global minimum"):
        assert word in legend_text


def test_other_figures_render(tmp_path, line_fits):
    data, fixed, _, fn, surf = line_fits
    x = np.linspace(0, 2, 50)
    figures = {
        "data": plots.data_figure(data, [("line", x, 0.8 + 0.5 * x, plots.PALETTE[0])], title="t"),
        "surfaces": plots.surfaces_figure([surf, surf], [(), ()], ["a", "b"]),
        "hyper": plots.hyper_figure(
            [dict(values=[0.01, 0.1, 1.0], losses=[[1.0, 2.0], [0.5, np.nan], [1e9, 1e9]], xlabel="α", log_x=True,
                  title="lr")], ceiling=100.0),
    }
    bm = ls.basins(gf.linear(), gf.normal(), data, gf.gd(0.01), ((-1, 2), (-0.5, 2.5)), resolution=8, steps=300)
    figures["basins"] = plots.basins_figure([bm], ["one minimum"])
    for name, fig in figures.items():
        png, svg = plots.save(fig, tmp_path, name)
        assert_png(png.read_bytes())
        assert_svg(svg.read_text())
    assert bm.shares[0] == 1.0  # a convex loss has one basin


def test_fits_table_prints_the_library_numbers(line_fits):
    _, fixed, searched, _, _ = line_fits
    table = rp.fits_table([fixed, searched], ["fixed", "search"], time=True)
    assert table.columns == ("fit", "phi0", "phi1", "final loss", "grad norm", "steps", "status", "time (s)")
    html = rp.to_html(rp.Report("r", sections=(rp.Section("s", tables=(table,)),)))
    rows = parse(html).tables[0]
    assert rows[0] == list(table.columns)
    for row, result in zip(rows[1:], (fixed, searched), strict=True):
        assert row[1] == f"{result.params['phi0']:.6g}" and row[2] == f"{result.params['phi1']:.6g}"
        assert row[3] == f"{result.loss:.6g}" and row[5] == str(result.steps) and row[6] == result.status


def test_report_is_self_contained_and_escapes_text(tmp_path, line_fits):
    _, fixed, _, _, surf = line_fits
    fig = plots.paths_figure(surf, plots.traces([fixed]))
    png = plots.png_bytes(fig)
    svg_path = plots.save(fig, tmp_path, "p")[1]
    report = rp.Report(
        "Title <&>", "intro",
        (rp.Section("One", "text & <b>not bold</b>", (rp.Image("caption", png=png),), {"lr": 0.1, "box": ((0, 1),)}),
         rp.Section("Two", images=(rp.Image("inline", svg=svg_path.read_text()),))),
    )
    path = rp.write(report, tmp_path / "sub" / "r.html")
    html = path.read_text()
    page = assert_self_contained(html)
    (src,) = page.sources
    assert base64.b64decode(src.split(",", 1)[1]) == png
    assert "&lt;b&gt;not bold&lt;/b&gt;" in html and "Title &lt;&amp;&gt;" in html
    assert html.count("<svg") == 1 and "<?xml" not in html  # SVG inline, prolog dropped
    assert ">lr</dt><dd>0.1</dd>" in html


def test_image_needs_exactly_one_format():
    with pytest.raises(ValueError):
        rp.Image("no image")
    with pytest.raises(ValueError):
        rp.Image("both", png=b"x", svg="<svg/>")


def test_cells_format_numbers():
    assert rp.cell(0.123456789) == "0.123457" and rp.cell(float("nan")) == "–"
    assert rp.cell(np.float32(2.5)) == "2.5" and rp.cell(np.int64(3)) == "3" and rp.cell(True) == "True"


def test_matplotlib_is_imported_only_to_draw():
    code = ("import sys, gradfit, gradfit.landscape, gradfit.report, gradfit.lecture\n"
            "assert 'matplotlib' not in sys.modules, 'imported too early'\n"
            "import gradfit.plots\n"
            "assert 'matplotlib' not in sys.modules, 'plots imports it at module level'\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr

"""The figure commands: `gradfit lecture`, `compare` and `landscape` on small settings write
valid PNG, SVG and HTML, and the numbers in their reports are the library's own."""

from __future__ import annotations

from html.parser import HTMLParser

import numpy as np
import pytest
from typer.testing import CliRunner

import gradfit as gf
from gradfit import landscape as ls
from gradfit import lecture
from gradfit.cli import app
from test_plots import assert_png, assert_self_contained, assert_svg

runner = CliRunner()

#: The lecture at toy sizes: every figure and table, in seconds. The sweeps hold only the
#: figures' own settings, whose fits are compiled already.
TINY = lecture.QUICK.replace(
    resolution=24, critical_grid=12, linear_steps=12, line_search_steps=5, path_steps=150,
    basin_resolution=16, basin_steps=150, sgd_epochs=6, quad_steps=40,
    hyper_lrs=(0.02,), hyper_batches=(4,), hyper_betas=(0.9,), hyper_seeds=2, hyper_epochs=6,
)

FIGURES = ("linear_fit", "linear_paths", "gabor_model", "gabor_surfaces", "gabor_paths_s8", "gabor_paths_s32",
           "basins", "gabor_minima", "sgd_vs_gd", "sgd_gabor", "sgd_batches", "momentum", "momentum_gabor",
           "nesterov_lookahead", "steep_rates", "normalized_example", "normalized_vs_adam", "adam_bias",
           "hyperparameters", "poisson")


class Sections(HTMLParser):
    """The rows of each table in a report, keyed by the id of the section that holds it."""

    def __init__(self, html: str):
        super().__init__()
        self.tables: dict[str, list[list[list[str]]]] = {}
        self._section, self._cell = None, None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "section":
            self._section = attrs.get("id")
        elif tag == "table":
            self.tables.setdefault(self._section, []).append([])
        elif tag == "tr":
            self.tables[self._section][-1].append([])
        elif tag in ("td", "th"):
            self._cell = ""

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self.tables[self._section][-1][-1].append(self._cell)
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data


def rows_by_label(table):
    return {row[0]: row for row in table[1:]}


def assert_row_is(row, result):
    """A fits_table row: label, parameters, final loss, grad norm, steps, status."""
    values = [f"{v:.6g}" for v in result.x] + [f"{result.loss:.6g}"]
    assert row[1: len(values) + 1] == values
    assert row[len(values) + 2] == str(result.steps) and row[len(values) + 3] == result.status


@pytest.fixture(scope="module")
def lecture_out(tiny_lecture):
    out, result, _, _ = tiny_lecture
    return out, result


def test_lecture_writes_every_figure_as_png_and_svg(lecture_out):
    out, result = lecture_out
    for name in FIGURES:
        assert_png((out / f"{name}.png").read_bytes())
        assert_svg((out / f"{name}.svg").read_text())
    assert "lecture.html" in result.stdout and f"wrote {2 * len(FIGURES)} figure files" in result.stdout
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [f"{n}.{e}" for n in FIGURES for e in ("png", "svg")] + ["lecture.html"])


def test_lecture_report_embeds_every_figure_and_loads_nothing(lecture_out):
    out, _ = lecture_out
    html = (out / "lecture.html").read_text()
    page = assert_self_contained(html)
    assert len(page.sources) == len(FIGURES)
    embedded = {(out / f"{n}.png").read_bytes() for n in FIGURES}
    import base64

    assert {base64.b64decode(src.split(",", 1)[1]) for src in page.sources} == embedded
    for word in ("Settings", "Linear regression", "Basins of attraction", "Hyperparameters", "seed"):
        assert word in html


def test_lecture_tables_are_the_library_results(lecture_out):
    out, _ = lecture_out
    s = TINY
    tables = Sections((out / "lecture.html").read_text()).tables
    data, start = gf.linear_data(s.seed, s.linear_n), list(s.linear_start)

    fits = rows_by_label(tables["linear"][0])
    fixed = gf.fit(gf.linear(), gf.normal(), data, gf.gd(s.linear_lr), init=start, steps=s.linear_steps, tol=0)
    search = gf.fit(gf.linear(), gf.normal(), data, gf.gd(line_search=True), init=start,
                    steps=s.line_search_steps, tol=0)
    assert_row_is(fits[f"gradient descent, fixed step α={s.linear_lr:g}"], fixed)
    assert_row_is(fits["gradient descent, line search"], search)

    per_epoch = -(-len(data) // s.batch_size)
    sgd_rows = list(rows_by_label(tables["sgd"][0]).values())
    common = dict(init=start, tol=0, seed=s.seed)
    assert_row_is(sgd_rows[0], gf.fit(gf.linear(), gf.normal(), data, gf.gd(s.sgd_lr), steps=s.sgd_epochs, **common))
    assert_row_is(sgd_rows[1], gf.fit(gf.linear(), gf.normal(), data, gf.sgd(s.sgd_lr), epochs=s.sgd_epochs,
                                      batch_size=s.batch_size, **common))
    decay = gf.step_decay(s.sgd_lr, s.decay_factor, s.decay_epochs * per_epoch)
    assert_row_is(sgd_rows[2], gf.fit(gf.linear(), gf.normal(), data, gf.sgd(decay), epochs=s.sgd_epochs,
                                      batch_size=s.batch_size, **common))

    nesterov_row = list(rows_by_label(tables["momentum"][0]).values())[2]
    assert_row_is(nesterov_row, gf.fit(gf.linear(), gf.normal(), data, gf.nesterov(s.sgd_lr, s.beta),
                                       epochs=s.sgd_epochs, batch_size=s.batch_size, **common))

    model, loss, quad = lecture.steep_quadratic(*s.quad_scales)
    adam_row = list(rows_by_label(tables["normalized"][0]).values())[1]
    assert_row_is(adam_row, gf.fit(model, loss, quad, gf.adam(s.quad_lr), init=list(s.quad_start),
                                   steps=s.quad_steps, tol=0))

    basins = ls.basins(gf.gabor(32.0), gf.normal(), gf.gabor_data(s.seed, s.gabor_n, s=32.0), gf.gd(s.gabor_lr[1]),
                       lecture.GABOR_BOX, resolution=s.basin_resolution, steps=s.basin_steps)
    shares = [row[-1] for row in tables["basins"][1][1:]]
    assert shares == [f"{100 * v:.6g}" for v in [*basins.shares, basins.unsettled, basins.left_box]]


def test_lecture_critical_point_tables_list_the_global_minimum_first(lecture_out):
    out, _ = lecture_out
    table = Sections((out / "lecture.html").read_text()).tables["gabor-surface"][1]  # s = 32
    assert table[0] == ["kind", "phi0", "phi1", "loss", "λ1", "λ2"]
    first = table[1]
    assert first[0] == "minimum" and abs(float(first[1])) < 0.3 and abs(float(first[2]) - 16.6) < 0.3
    assert {row[0] for row in table[1:]} >= {"minimum", "saddle"}


def test_compare_draws_optimisers_and_reports_their_fits(tmp_path):
    result = runner.invoke(app, ["compare", "--model", "linear", "--optimizers", "gd@0.01,momentum@0.01,adam@0.05",
                                 "--steps", "30", "--init", "-0.4,2.2", "--resolution", "20",
                                 "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert_png((tmp_path / "compare.png").read_bytes())
    assert_svg((tmp_path / "compare.svg").read_text())
    html = (tmp_path / "compare.html").read_text()
    assert_self_contained(html)
    (table,) = Sections(html).tables["compare"]
    assert table[0][-1] == "time (s)"
    data = gf.linear_data(0)
    for row, opt in zip(table[1:], (gf.gd(0.01), gf.momentum(0.01), gf.adam(0.05)), strict=True):
        assert_row_is(row, gf.fit(gf.linear(), gf.normal(), data, opt, init=[-0.4, 2.2], steps=30, tol=0))
        assert float(row[-1]) > 0
    for word in ("gd (α=0.01)", "momentum (α=0.01, β=0.9)", "adam (α=0.05", "final loss", "time"):
        assert word in result.stdout


def test_compare_on_a_larger_model_uses_a_random_slice(tmp_path):
    result = runner.invoke(app, ["compare", "--model", "shallow", "--width", "3", "--builtin", "linear",
                                 "--optimizers", "adam@0.05,nesterov:torch@0.01", "--steps", "20",
                                 "--batch-size", "5", "--resolution", "16", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert_png((tmp_path / "compare.png").read_bytes())
    html = (tmp_path / "compare.html").read_text()
    assert "random filter-normalised slice" in html and "nesterov [torch]" in html


@pytest.mark.parametrize(
    "args,expect",
    [
        (["--steps", "40", "--resolution", "20"], ["phi0", "Critical points"]),
        (["--model", "shallow", "--width", "3", "--builtin", "linear", "--steps", "30", "--resolution", "16"],
         ["random filter-normalised slice"]),
        (["--model", "shallow", "--width", "3", "--builtin", "linear", "--steps", "30", "--resolution", "16",
          "--params", "beta0[1],omega0[1,0]"], ["beta0[1]", "omega0[1,0]", "others held"]),
    ],
)
def test_landscape_command(tmp_path, args, expect):
    result = runner.invoke(app, ["landscape", *args, "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert_png((tmp_path / "landscape.png").read_bytes())
    assert_svg((tmp_path / "landscape.svg").read_text())
    html = (tmp_path / "landscape.html").read_text()
    assert_self_contained(html)
    for word in expect:
        assert word in html
    assert "final loss" in result.stdout


@pytest.mark.parametrize(
    "command,fragment",
    [
        (["compare", "--optimizers", "lbfgs"], "unknown optimizer 'lbfgs'"),
        (["compare", "--optimizers", "gd@fast"], "after @"),
        (["compare", "--optimizers", ","], "at least one name"),
        (["compare", "--optimizers", "nesterov:sideways"], "unknown variant"),
        (["landscape", "--params", "phi0"], "two parameter names"),
        (["landscape", "--params", "phi0,phi7"], "no parameter 'phi7'"),
        (["landscape", "--at", "1,2,3"], "--at has 3 value(s)"),
        (["compare", "--data", "no/such.csv"], "no such file"),
    ],
)
def test_bad_options_give_one_line_and_status_2(tmp_path, command, fragment):
    result = runner.invoke(app, [*command, "--out", str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and fragment in result.stderr


def test_steep_quadratic_is_the_stated_loss():
    model, loss, data = lecture.steep_quadratic(1.0, 25.0)
    fn = ls.LossFunction(model, loss, data)
    np.testing.assert_allclose(fn(np.array([[0.5, -0.2], [0.0, 0.0]])), [0.25 + 25 * 0.04, 0.0], rtol=1e-13)


def test_compare_and_landscape_read_a_file_like_fit(tmp_path):
    data = gf.linear_data(3, n=15)
    path = tmp_path / "points.csv"
    path.write_text("u,v,w\n" + "".join(f"{a},{b},{2 * a}\n" for a, b in zip(data.x, data.y, strict=True)))
    for command, name in (("compare", "compare"), ("landscape", "landscape")):
        extra = ["--optimizers", "gd@0.01,adam@0.05"] if command == "compare" else ["--optimizer", "gd", "--lr", "0.01"]
        result = runner.invoke(app, [command, "--data", str(path), "--x", "u", "--y", "v", "--model", "linear",
                                     *extra, "--steps", "20", "--resolution", "12", "--out", str(tmp_path / name)])
        assert result.exit_code == 0, result.output
        html = (tmp_path / name / f"{name}.html").read_text()
        assert "points (15 examples)" in html
    (table,) = Sections((tmp_path / "compare" / "compare.html").read_text()).tables["compare"]
    lib = gf.fit(gf.linear(), gf.normal(), gf.load(path, ["u"], "v"), gf.gd(0.01), steps=20, tol=0)
    assert_row_is(table[1], lib)

"""The lecture's outline, its formulas and its interactive viewers: numbering that cannot repeat,
formulas drawn offline as inline SVG, and viewer data that are gradfit's own fits."""

from __future__ import annotations

import importlib
import json
import re
import xml.etree.ElementTree as ET

import numpy as np
import pytest

import gradfit as gf
from gradfit import lecture
from gradfit import report as rp
from gradfit.lecture import equations, viewers

build = importlib.import_module("gradfit.lecture.build")  # the module; `lecture.build` is its function

S = lecture.QUICK

#: The anchor of every section the lecture's figures make (the Gabor paths: one per scale).
FIGURE_ANCHORS = ("linear", "gabor-model", "gabor-surface", "gabor-surface-minima",
                  *(f"gabor-paths-s{scale:g}" for scale in S.scales), "basins", "sgd", "sgd-gabor", "sgd-batches",
                  "momentum", "momentum-gabor", "nesterov-lookahead", "normalized-steep", "normalized-example",
                  "normalized", "normalized-bias", "hyperparameters", "poisson")


def sections(anchors):
    return [rp.Section(f"title of {a}", anchor=a) for a in anchors]


# --- the outline ------------------------------------------------------------------------------------


def test_every_figure_anchor_is_in_exactly_one_part():
    named = [a for part in build.OUTLINE for a in part.anchors]
    assert sorted(named) == sorted(FIGURE_ANCHORS)
    assert len(set(named)) == len(named)


def test_arrange_numbers_sections_by_the_outline_and_never_twice():
    shuffled = list(reversed(FIGURE_ANCHORS))
    parts = build.arrange(sections(shuffled))
    assert [p.title for p in parts] == [o.title for o in build.OUTLINE]
    assert [p.number for p in parts] == [str(n) for n in range(1, len(build.OUTLINE) + 1)]
    numbers = [s.number for p in parts for s in p.sections]
    assert len(set(numbers)) == len(numbers) == len(FIGURE_ANCHORS)
    for part, outline in zip(parts, build.OUTLINE, strict=True):
        assert [s.anchor for s in part.sections] == list(outline.anchors)  # the outline's order, not the input's
        assert [s.number for s in part.sections] == [f"{part.number}.{k}" for k in range(1, len(part.sections) + 1)]
        assert len(part.formulas) == len(outline.equations) > 0
    anchors = [p.anchor for p in parts] + [s.anchor for p in parts for s in p.sections]
    assert len(set(anchors)) == len(anchors)  # part headers have ids of their own


def test_arrange_keeps_sections_the_outline_does_not_name():
    extra = sections(["linear", "a-new-figure", "gabor-model", "another"])
    parts = build.arrange(extra)
    last = parts[-1]
    assert [s.anchor for s in last.sections] == ["a-new-figure", "another"]
    assert last.number == str(len(build.OUTLINE) + 1)
    assert sum(len(p.sections) for p in parts) == len(extra)
    assert [p.number for p in parts[:-1]] == ["1", "2"]  # parts with no figure present are left out


def test_the_outline_follows_the_settings_gabor_scales():
    custom = S.replace(scales=(8.0, 16.0, 32.0), gabor_lr=(0.3, 0.2, 0.1))
    gabor = build.outline_for(custom)[1]
    paths = [a for a in gabor.anchors if a.startswith("gabor-paths")]
    assert paths == ["gabor-paths-s8", "gabor-paths-s16", "gabor-paths-s32"]
    assert gabor.anchors.index("gabor-paths-s8") == build.OUTLINE[1].anchors.index("gabor-paths-s8")
    assert gabor.anchors[-1] == "basins"
    parts = build.arrange(sections(["gabor-paths-s16", "basins"]), build.outline_for(custom))
    assert [s.number for s in parts[0].sections] == ["2.1", "2.2"] and len(parts) == 1
    assert build.outline_for(S) == build.OUTLINE  # the lecture's own scales: the outline as written


def test_the_report_nests_its_contents_by_part():
    page = rp.to_html(rp.Report("t", parts=build.arrange(sections(FIGURE_ANCHORS))))
    nav = page.split("<nav>", 1)[1].split("</nav>", 1)[0]
    for part in build.OUTLINE:
        # each part's entries sit in their own list, right after the part's own link
        block = re.search(rf'<li><a href="#part-\d+"><span class="num">\d+</span>{re.escape(part.title)}</a>'
                          r"<ol>(.*?)</ol></li>", nav)
        assert block is not None, part.title
        assert re.findall(r'href="#([^"]+)"', block.group(1)) == list(part.anchors)
    for anchor in FIGURE_ANCHORS:
        assert page.count(f'id="{anchor}"') == 1


# --- formulas ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(equations.EQUATIONS))
def test_every_equation_draws_as_inline_svg(name):
    svg = equations.svg(name, prefix="t-")
    assert svg.startswith("<svg ") and "<?xml" not in svg and "<!DOCTYPE" not in svg
    root = ET.fromstring(svg)
    paths = [e for e in root.iter() if e.tag.endswith("}path") or e.tag.endswith("}use")]
    assert len(paths) >= 3  # glyphs drawn as paths: no font is needed to read it
    ids = [e.get("id") for e in root.iter() if e.get("id")]
    assert ids and all(i.startswith(f"eq-t-{name}-") for i in ids)
    for ref in re.findall(r'href="#([^"]+)"', svg):
        assert ref in ids  # every glyph it uses is its own
    assert not re.search(r'(href|src)="(?!#)', svg)  # nothing to fetch
    assert root.get("aria-label") == equations.EQUATIONS[name].text


def test_equations_draw_once_and_copies_get_their_own_ids():
    equations.svg("adam_step")
    drawn = equations._drawn.cache_info().misses
    one, two = equations.svg("adam_step", prefix="a-"), equations.svg("adam_step", prefix="b-")
    assert equations._drawn.cache_info().misses == drawn  # drawn once, cached
    ids = lambda s: set(re.findall(r'id="([^"]+)"', s))
    assert ids(one) and not ids(one) & ids(two)
    assert one.replace("eq-a-", "eq-b-") == two


def test_the_parts_carry_their_update_rules():
    assert "adam_step" in build.OUTLINE[4].equations and "nesterov" in build.OUTLINE[3].equations
    # the rule as gradfit runs it: Adam's ε inside the root, Nesterov's gradient at the look-ahead
    assert r"\sqrt{\tilde{v} + \epsilon}" in equations.EQUATIONS["adam_step"].tex
    assert r"\nabla L[\phi - \alpha\, m]" in equations.EQUATIONS["nesterov"].tex


# --- viewers ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def built():
    line = lecture.linear_problem(S)
    problem = lecture.gabor_problem(S, S.scales[0], S.gabor_lr[0])
    return line, problem, viewers.lecture_viewers(S, line, problem)


def by_id(made, id):
    return next(v for vs in made.values() for v in vs if v.id == id)


def line_fit(optimizer):
    data = gf.linear_data(S.seed, S.linear_n)
    return gf.fit(gf.linear(), gf.normal(), data, optimizer, init=list(S.linear_start), steps=S.linear_steps, tol=0)


def close(drawn, exact, rtol=1e-5):
    np.testing.assert_allclose(np.array(drawn, dtype=float), exact, rtol=rtol, atol=1e-12)


def test_viewers_sit_in_the_lecture_sections(built):
    _, _, made = built
    assert set(made) <= set(FIGURE_ANCHORS)
    ids = [v.id for vs in made.values() for v in vs]
    assert len(ids) == len(set(ids)) == 4


def test_step_viewer_points_are_the_fit_history(built):
    _, _, made = built
    v = by_id(made, "viewer-linear-steps")
    history = line_fit(gf.gd(S.linear_lr)).history
    assert len(v.frames) == len(history.params) <= viewers.MAX_POINTS  # short enough: every step
    for k, frame in enumerate(v.frames):
        assert frame[2]["customdata"] == [k]
        close([frame[2]["x"][0], frame[2]["y"][0]], history.params[k])
        a, b = history.params[k]
        np.testing.assert_allclose(frame[4]["y"], a + b * np.array(v.traces[4]["x"]), rtol=1e-3)  # its line
    assert v.positions[7] == f"step 7: L = {history.loss[7]:.4g}"


def test_gabor_step_viewer_thins_the_path_but_keeps_exact_steps(built):
    _, problem, made = built
    v = by_id(made, f"viewer-gabor-steps-s{problem.s:g}")
    data = gf.gabor_data(S.seed, S.gabor_n, s=S.scales[0])
    result = gf.fit(gf.gabor(S.scales[0]), gf.normal(), data, gf.gd(S.gabor_lr[0]), init=list(S.sgd_gabor_start),
                    steps=S.path_steps, tol=0)
    rows = [f[2]["customdata"][0] for f in v.frames]
    assert len(rows) <= viewers.MAX_POINTS < len(result.history.params)
    assert rows[0] == 0 and rows[-1] == len(result.history.params) - 1 and np.all(np.diff(rows) > 0)
    x = np.array(v.traces[4]["x"], dtype=float)
    for frame, row in zip(v.frames[::37], rows[::37], strict=True):
        phi = result.history.params[row]
        close([frame[2]["x"][0], frame[2]["y"][0]], phi)
        z = phi[0] + 0.06 * phi[1] * x
        np.testing.assert_allclose(frame[4]["y"], np.sin(z) * np.exp(-z ** 2 / S.scales[0]), rtol=1e-3, atol=1e-4)
    # it ends in a local minimum: the gradient vanishes, the loss is above the global minimum's
    assert result.grad_norm < 1e-3
    assert result.loss > min(p.value for p in problem.minima) + 0.1


def test_rate_viewer_paths_are_gradient_descent_at_each_rate(built):
    line, _, made = built
    v = by_id(made, "viewer-linear-rates")
    design = np.column_stack([np.ones(S.linear_n), gf.linear_data(S.seed, S.linear_n).x.ravel()])
    limit = 2 / np.linalg.eigvalsh(2 * design.T @ design).max()  # gradient descent's stable limit on Σ(f − y)²
    rates = sorted({float(f"{f * limit:.3g}") for f in viewers.RATE_FRACTIONS} | {S.linear_lr})
    assert v.positions == tuple(f"α = {lr:g}" for lr in rates) and 6 <= len(rates) <= 8
    assert v.positions[v.start] == f"α = {S.linear_lr:g}"
    for frame, lr in zip(v.frames, rates, strict=True):
        history = line_fit(gf.gd(lr)).history
        close(np.array([frame[1]["x"], frame[1]["y"]]).T, history.params)
        close(frame[3]["y"], history.loss)
    last = line_fit(gf.gd(rates[-1]))
    assert rates[-1] > limit and not last.loss < last.history.loss[0]  # past the limit, it diverges


def test_momentum_viewer_paths_are_momentum_at_each_beta(built):
    _, _, made = built
    v = by_id(made, "viewer-momentum-betas")
    assert v.positions == tuple(f"β = {b:g}" for b in S.hyper_betas)
    for frame, beta in zip(v.frames, S.hyper_betas, strict=True):
        history = line_fit(gf.momentum(S.linear_lr, beta)).history
        close(np.array([frame[1]["x"], frame[1]["y"]]).T, history.params)
    # β = 0 is gradient descent
    zero = S.hyper_betas.index(0.0)
    close(np.array([v.frames[zero][1]["x"], v.frames[zero][1]["y"]]).T, line_fit(gf.gd(S.linear_lr)).history.params)


def test_viewer_data_are_compact_json(built):
    _, _, made = built
    for v in (v for vs in made.values() for v in vs):
        text = rp.viewer_json(v)
        spec = json.loads(text)
        assert len(spec["frames"]) == len(spec["positions"]) <= viewers.MAX_POINTS
        assert "NaN" not in text and "Infinity" not in text and "</" not in text
        numbers = re.findall(r"-?\d+\.\d+(?:e-?\d+)?", text)
        assert max(len(n.split("e")[0].lstrip("-").replace(".", "").strip("0")) for n in numbers) <= 6
        assert len(text) < 400_000
        contour = spec["traces"][0]
        assert len(contour["x"]) <= viewers.MAX_GRID and len(contour["y"]) <= viewers.MAX_GRID


@pytest.mark.parametrize("n,most", [(1, 300), (61, 300), (801, 300), (1501, 300), (10, 3)])
def test_thin_keeps_ends_and_bounds(n, most):
    rows = viewers.thin(n, most)
    assert rows[0] == 0 and rows[-1] == n - 1 and len(rows) <= most and np.all(np.diff(rows) > 0)
    assert len(rows) == min(n, most)


def test_viewers_encode_as_the_static_figures_do(built):
    """Low loss dark (viridis, as matplotlib draws it) and each path in its optimiser's colour."""
    from gradfit import plots

    _, _, made = built
    for viewer in (v for vs in made.values() for v in vs):
        contour, path = viewer.traces[0], viewer.traces[1]
        assert contour["colorscale"] == "Viridis" and not contour.get("reversescale", False)
        name = "momentum" if "momentum" in viewer.id or "beta" in viewer.id else "gd"
        assert path["line"]["color"] == plots.optimizer_color(name), viewer.id

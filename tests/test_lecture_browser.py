"""The lecture's report in a real browser, opened from file:// with no server and no network:
moving a slider draws the fit's own point or path. Screenshots at 800 and 1400 px wide go to
tests/artifacts/ (gitignored; CI keeps them)."""

from __future__ import annotations

import importlib

import numpy as np
import pytest

import gradfit as gf
from chromium import ARTIFACTS, needs_chromium
from gradfit import lecture
from gradfit import report as rp
from gradfit.lecture import viewers

pytest.importorskip("playwright.sync_api", reason="browser tests need: pip install playwright")

build = importlib.import_module("gradfit.lecture.build")

S = lecture.QUICK

pytestmark = needs_chromium


@pytest.fixture(scope="module")
def page_path(tmp_path_factory):
    """A report of a few lecture sections with the lecture's viewers, built from QUICK settings."""
    line = lecture.linear_problem(S)
    problem = lecture.gabor_problem(S, S.scales[0], S.gabor_lr[0])
    made = viewers.lecture_viewers(S, line, problem)
    long = rp.Table(("start", "phi0", "phi1", "a column with a long name", "final loss", "grad norm", "status"),
                    tuple((f"start {k}", k / 3, -k / 7, "x" * 30, 10.0 ** -k, 1e-7, "converged") for k in range(12)),
                    "A table wider than the page at 800 px, and longer than eight rows")
    sections = [rp.Section(f"Viewers of {anchor}", "First paragraph.\n\nSecond paragraph.", anchor=anchor,
                           viewers=vs, settings={"seed": S.seed, "start": S.linear_start}, tables=(long,))
                for anchor, vs in made.items()]
    report = rp.Report("The lecture's viewers", "From file://.", parts=build.arrange(sections))
    return rp.write(report, tmp_path_factory.mktemp("lecture_browser") / "lecture.html")


@pytest.fixture(scope="module", params=[800, 1400])
def opened(request, browser, page_path):
    """The page at a width, every viewer drawn, and the problems it logged."""
    page = browser.new_page(viewport={"width": request.param, "height": 1000})
    problems = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("requestfailed", lambda r: problems.append(f"failed: {r.url}"))
    page.on("request", lambda r: problems.append(f"loads: {r.url}") if not r.url.startswith(("file:", "data:"))
            else None)
    page.goto(page_path.as_uri())
    page.wait_for_selector("body[data-viewers='ready']", timeout=30_000)
    yield page, problems, request.param
    page.close()


def slide(page, viewer, k):
    """Move ``viewer``'s slider to position k, as a user's drag would (an input event)."""
    page.fill(f"#{viewer}-slider", str(k))
    return page.text_content(f"#{viewer}-value")


def trace(page, viewer, index):
    return page.evaluate("([id, i]) => { const t = document.getElementById(id).data[i];"
                         " return {x: t.x, y: t.y, customdata: t.customdata || null}; }", [f"{viewer}-plot", index])


def line_fit(optimizer):
    return gf.fit(gf.linear(), gf.normal(), gf.linear_data(S.seed, S.linear_n), optimizer, init=list(S.linear_start),
                  steps=S.linear_steps, tol=0)


def test_step_slider_draws_the_fit_at_that_step(opened):
    page, problems, _ = opened
    history = line_fit(gf.gd(S.linear_lr)).history
    for k in (S.linear_steps // 3, 0, S.linear_steps):
        label = slide(page, "viewer-linear-steps", k)
        point = trace(page, "viewer-linear-steps", 2)
        assert point["customdata"] == [k]
        np.testing.assert_allclose([point["x"][0], point["y"][0]], history.params[k], rtol=1e-5)
        assert label == f"step {k}: L = {history.loss[k]:.4g}"
        a, b = history.params[k]
        line = trace(page, "viewer-linear-steps", 4)
        np.testing.assert_allclose(line["y"], a + b * np.asarray(line["x"]), rtol=1e-3)  # the model moved too
    assert problems == []


def test_gabor_step_slider_lands_on_exact_history_rows(opened):
    page, problems, _ = opened
    viewer = f"viewer-gabor-steps-s{S.scales[0]:g}"
    result = gf.fit(gf.gabor(S.scales[0]), gf.normal(), gf.gabor_data(S.seed, S.gabor_n, s=S.scales[0]),
                    gf.gd(S.gabor_lr[0]), init=list(S.sgd_gabor_start), steps=S.path_steps, tol=0)
    last = int(page.get_attribute(f"#{viewer}-slider", "max"))
    for k in (last // 2, last):
        slide(page, viewer, k)
        point = trace(page, viewer, 2)
        (row,) = point["customdata"]
        np.testing.assert_allclose([point["x"][0], point["y"][0]], result.history.params[row], rtol=1e-5)
    assert row == len(result.history.params) - 1
    assert problems == []


@pytest.mark.parametrize("viewer,optimizer", [
    ("viewer-linear-rates", gf.gd),
    ("viewer-momentum-betas", lambda beta: gf.momentum(S.linear_lr, beta)),
], ids=["alpha", "beta"])
def test_hyperparameter_slider_shows_the_path_at_that_value(opened, viewer, optimizer):
    page, problems, _ = opened
    last = int(page.get_attribute(f"#{viewer}-slider", "max"))
    for k in (0, last // 2, last):
        label = slide(page, viewer, k)
        value = float(label.split("=")[1])  # the α or β the page says it shows
        path = trace(page, viewer, 1)
        history = line_fit(optimizer(value)).history
        drawn = np.array([path["x"], path["y"]], dtype=float).T
        np.testing.assert_allclose(drawn, history.params, rtol=1e-5)
        np.testing.assert_allclose(np.array(trace(page, viewer, 3)["y"], dtype=float), history.loss, rtol=1e-5)
    assert problems == []


def test_page_fits_its_width_and_is_screenshotted(opened):
    page, problems, width = opened
    slide(page, "viewer-linear-steps", S.linear_steps // 4)
    assert page.evaluate("document.documentElement.scrollWidth") <= width  # nothing overflows the page
    widths = page.evaluate("Array.from(document.querySelectorAll('.viewer-plot, figure, .table-wrap'))"
                           ".map((e) => e.getBoundingClientRect().right)")
    assert widths and max(widths) <= width
    assert page.evaluate("Array.from(document.querySelectorAll('details')).every((d) => !d.open)")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"lecture_viewers_{width}.png"), full_page=True)
    assert (ARTIFACTS / f"lecture_viewers_{width}.png").stat().st_size > 10_000
    assert problems == []

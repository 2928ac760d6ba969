"""The pages in a real browser: Playwright driving Debian's chromium against a real server
(one server and one browser for the module).

Screenshots at 800 and 1400 px wide go to tests/artifacts/ (gitignored; CI keeps them).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradfit as gf
from chromium import ARTIFACTS, needs_chromium
from gradfit import landscape as ls
from gradfit.models import linear_for

pytest.importorskip("fastapi", reason="the web app needs: pip install 'gradfit[web]'")
pytest.importorskip("playwright.sync_api", reason="browser tests need: pip install playwright")
from gradfit.web import api  # noqa: E402
from gradfit.web.app import running  # noqa: E402

pytestmark = needs_chromium


@pytest.fixture(scope="module")
def server():
    with running() as url:
        yield url


def open_playground(browser, server, width, path="/"):
    page = browser.new_page(viewport={"width": width, "height": 1000})
    problems = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("requestfailed", lambda r: problems.append(f"failed: {r.url}"))
    page.goto(server + path)
    page.wait_for_selector("body[data-ready='yes']", timeout=20_000)
    return page, problems


def click_surface(page, fx, fy):
    """Click the contour at fractions (fx, fy) of its plotting area, from the bottom left."""
    box = page.locator("#surface .nsewdrag").first.bounding_box()
    page.mouse.click(box["x"] + fx * box["width"], box["y"] + (1 - fy) * box["height"])


def marker(page, run):
    """(φ₀, φ₁) of run's marker, as the plotly figure in the page holds it, and its history row."""
    return page.evaluate("""(name) => {
        const t = document.getElementById('surface').data.find((t) => t.name === name);
        return [t.x[0], t.y[0], t.meta.row];
    }""", f"run {run} at step")


def test_click_starts_a_fit_and_the_slider_shows_its_step(browser, server):
    page, problems = open_playground(browser, server, 1400)
    click_surface(page, 0.3, 0.25)
    page.wait_for_selector("body[data-runs='1']", timeout=20_000)
    start = page.evaluate("[document.getElementById('surface').data[1].x[0], "
                          "document.getElementById('surface').data[1].y[0]]")
    assert start == pytest.approx([-10 + 0.3 * 20, 2.5 + 0.25 * 20], abs=0.1)  # where the click was
    expected = gf.fit(gf.gabor(8), gf.normal(), gf.gabor_data(0), gf.adam(lr=0.1), init=start, steps=1000)
    rows = len(expected.history.params)
    for k in (0, 7, rows // 2):
        page.locator("#step").fill(str(k))
        phi0, phi1, row = marker(page, 1)
        assert row == k
        assert [phi0, phi1] == pytest.approx(expected.history.params[k], rel=1e-9, abs=1e-12)
        # the loss panel marks the same step
        loss_mark = page.evaluate("document.getElementById('loss').data.find((t) => t.name === 'run 1 at step').y[0]")
        assert loss_mark == pytest.approx(expected.history.loss[k], rel=1e-9)
        # and the model panel draws the model at that step's parameters
        xs, ys = page.evaluate("(() => { const t = document.getElementById('model').data[1]; return [t.x, t.y]; })()")
        at_k = dict(zip(expected.param_names, expected.history.params[k], strict=True))
        with jax.enable_x64(True):  # the model in float64, as the fit ran it
            drawn = np.asarray(gf.gabor(8)(jnp.asarray(xs), {n: jnp.asarray(v) for n, v in at_k.items()}))
        assert ys == pytest.approx(drawn, rel=1e-9, abs=1e-12)

    # a second run keeps the first one's colour and adds its own
    click_surface(page, 0.75, 0.8)
    page.wait_for_selector("body[data-runs='2']", timeout=20_000)
    second = page.evaluate("[document.getElementById('surface').data[3].x[0], "
                           "document.getElementById('surface').data[3].y[0]]")
    page.locator("#step").fill("0")
    assert marker(page, 2)[:2] == pytest.approx(second)
    assert second == pytest.approx([-10 + 0.75 * 20, 2.5 + 0.8 * 20], abs=0.1)  # where the click was
    colours = page.evaluate("""document.getElementById('surface').data.filter((t) => t.mode === 'lines')
                               .map((t) => t.line.color)""")
    assert colours == ["#E69F00", "#56B4E9"]
    ARTIFACTS.mkdir(exist_ok=True)
    page.locator("#step").fill("12")
    page.mouse.move(1, 1)  # no tooltip left over the figure
    page.screenshot(path=ARTIFACTS / "playground-1400.png", full_page=True)
    assert problems == []


def test_narrow_window_and_other_problems(browser, server):
    page, problems = open_playground(browser, server, 800)
    page.select_option("#problem", "gabor32")
    page.wait_for_function("document.getElementById('surface').data[0].z.length > 0 && "
                           "document.getElementById('model').data[0].y.length === 40")
    page.select_option("#optimizer", "momentum")
    page.fill("#lr", "0.02")
    click_surface(page, 0.5, 0.5)
    page.wait_for_selector("body[data-runs='1']", timeout=20_000)
    status = page.evaluate("document.getElementById('runs').textContent")
    assert "momentum" in status
    ARTIFACTS.mkdir(exist_ok=True)
    page.mouse.move(1, 1)
    page.screenshot(path=ARTIFACTS / "playground-800.png", full_page=True)
    # the page is as wide as the window: nothing overflows sideways
    assert page.evaluate("document.documentElement.scrollWidth") <= 800
    assert problems == []


def test_compare_runs_every_ticked_rule_from_one_start(browser, server):
    page, problems = open_playground(browser, server, 1400, path="/compare")
    click_surface(page, 0.6, 0.4)
    page.wait_for_selector("body[data-runs='4']", timeout=30_000)
    runs = page.evaluate("""document.getElementById('surface').data.filter((t) => t.mode === 'lines')
                            .map((t) => [t.x[0], t.y[0], t.line.color])""")
    starts = {(x, y) for x, y, _ in runs}
    assert len(starts) == 1  # one start for all
    assert len({c for *_, c in runs}) == 4  # a colour each
    start = list(starts.pop())
    k = 25
    page.locator("#step").fill(str(k))
    data = gf.gabor_data(0)
    for run, rule in enumerate((gf.gd, gf.momentum, gf.nesterov, gf.adam), start=1):
        expected = gf.fit(gf.gabor(8), gf.normal(), data, rule(lr=0.05), init=start, steps=1000)
        row = min(k, len(expected.history.params) - 1)
        assert marker(page, run)[:2] == pytest.approx(expected.history.params[row], rel=1e-9, abs=1e-12)
    ARTIFACTS.mkdir(exist_ok=True)
    page.mouse.move(1, 1)
    page.screenshot(path=ARTIFACTS / "compare-1400.png", full_page=True)
    assert problems == []


def test_learning_rate_page_draws_each_runs_final_loss(browser, server):
    page, problems = open_playground(browser, server, 1400, path="/lr")
    page.fill("#count", "6")
    page.fill("#seeds", "2")
    page.fill("#steps", "300")
    page.click("#run")
    page.wait_for_selector("body[data-rows='12']", timeout=30_000)
    traces = page.evaluate("document.getElementById('sweep-plot').data.map((t) => [t.meta.seed, t.x, t.y])")
    assert [seed for seed, *_ in traces] == [0, 1]
    data = gf.gabor_data(0)
    seed, rates, losses = traces[1]
    for lr, loss in list(zip(rates, losses, strict=True))[:3]:
        expected = gf.fit(gf.gabor(8), gf.normal(), data, gf.gd(lr), steps=300, tol=0, seed=seed)
        assert loss == pytest.approx(expected.loss, rel=1e-9)
    ARTIFACTS.mkdir(exist_ok=True)
    page.mouse.move(1, 1)
    page.screenshot(path=ARTIFACTS / "lr-1400.png", full_page=True)
    assert problems == []


def test_poisson_problem_follows_the_regression_fit(browser, server):
    page, problems = open_playground(browser, server, 1400)
    page.select_option("#problem", "poisson")
    page.wait_for_function("document.getElementById('model').data[0].y.length === 2000")
    click_surface(page, 0.25, 0.9)
    page.wait_for_selector("body[data-runs='1']", timeout=30_000)
    start = page.evaluate("[document.getElementById('surface').data[1].x[0], "
                          "document.getElementById('surface').data[1].y[0]]")
    assert start == pytest.approx([1.0 + 0.25 * 2.0, -1.5 + 0.9 * 2.5], abs=0.05)
    expected = gf.fit_glm(gf.pedestrian_data(0), None, "poisson", x=["hour_cos"], optimizer=gf.adam(lr=0.1),
                          init=start, steps=1000, polish=True)
    for k in (3, len(expected.history.params) - 1):
        page.locator("#step").fill(str(k))
        assert marker(page, 1)[:2] == pytest.approx(expected.history.params[k], rel=1e-9, abs=1e-12)
    ARTIFACTS.mkdir(exist_ok=True)
    page.locator("#step").fill("10")
    page.mouse.move(1, 1)
    page.screenshot(path=ARTIFACTS / "poisson-1400.png", full_page=True)
    assert problems == []


def test_an_uploaded_csv_is_fitted_as_gradfit_fits_its_arrays(browser, server, tmp_path):
    data = gf.linear_data(4)
    rows = "\n".join(f"{float(a)!r},{float(b)!r}" for a, b in zip(data.x.ravel(), data.y, strict=True))
    (tmp_path / "doses.csv").write_text(f"dose,response\n{rows}\n")
    (tmp_path / "bad.csv").write_text("dose,response\n1,2\nten,3\n")
    page, problems = open_playground(browser, server, 1400)
    page.set_input_files("#csv", tmp_path / "bad.csv")
    page.wait_for_function("document.getElementById('message').textContent.includes('not numeric')")
    assert "line 3" in page.locator("#message").text_content()
    page.set_input_files("#csv", tmp_path / "doses.csv")
    page.wait_for_selector("body[data-upload]", state="attached", timeout=20_000)
    assert page.locator("#problem").input_value() == "upload-linear"
    assert page.locator("#x-column").input_value() == "dose"
    click_surface(page, 0.3, 0.7)
    page.wait_for_selector("body[data-runs='1']", timeout=20_000)
    start = page.evaluate("[document.getElementById('surface').data[1].x[0], "
                          "document.getElementById('surface').data[1].y[0]]")
    uploaded = gf.Dataset(data.x.ravel(), data.y, x_names=("dose",), y_name="response")
    expected = gf.fit(linear_for(uploaded), gf.normal(), uploaded, gf.adam(lr=0.1), init=start, steps=1000)
    for k in (0, 9, len(expected.history.params) - 1):
        page.locator("#step").fill(str(k))
        assert marker(page, 1)[:2] == pytest.approx(expected.history.params[k], rel=1e-9, abs=1e-12)
    drawn = page.evaluate("document.getElementById('model').data[0].x")
    assert drawn == pytest.approx(data.x.ravel().tolist())  # the uploaded points are the data drawn
    ARTIFACTS.mkdir(exist_ok=True)
    page.locator("#step").fill("15")
    page.mouse.move(1, 1)
    page.screenshot(path=ARTIFACTS / "upload-1400.png", full_page=True)
    assert [p for p in problems if "422" not in p] == []  # the bad file's answer is the only complaint


def test_a_click_on_a_basin_shows_the_minimum_gradient_descent_reaches(browser, server):
    page, problems = open_playground(browser, server, 1400, path="/basins")
    box = page.locator("#basins .nsewdrag").first.bounding_box()
    page.mouse.click(box["x"] + 0.53 * box["width"], box["y"] + 0.3 * box["height"])
    page.wait_for_selector("body[data-picks='1']", state="attached", timeout=30_000)
    picked = page.evaluate("({...document.getElementById('picked').dataset})")
    label, i, j = int(picked["label"]), int(picked["i"]), int(picked["j"])
    shown = page.evaluate("document.getElementById('basins').data.find((t) => t.name === 'minima')")
    minimum = [shown["x"][label], shown["y"][label]]
    # gradient descent from the map's start, as the library runs it, and the minimum it settles in
    data, rate = gf.gabor_data(0, s=8), api.BASIN_RATES[8.0]
    box = api.BOXES["gabor"]
    start = [box[0][0] + i * (box[0][1] - box[0][0]) / 59, box[1][0] + j * (box[1][1] - box[1][0]) / 59]
    expected = gf.fit(gf.gabor(8), gf.normal(), data, gf.gd(rate), init=start, steps=api.BASIN_STEPS, tol=0)
    fn = ls.LossFunction(gf.gabor(8), gf.normal(), data)
    minima = [p.theta for p in ls.critical_points(fn.scalar, box) if p.kind == "minimum"]
    reached = min(minima, key=lambda m: np.linalg.norm(m - expected.x))
    assert np.max(np.abs(reached - expected.x)) < 0.05  # it did settle there
    assert minimum == pytest.approx(reached, abs=1e-6)
    # the model drawn is the model at that minimum
    xs, ys = page.evaluate("(() => { const t = document.getElementById('model').data[1]; return [t.x, t.y]; })()")
    with jax.enable_x64(True):
        curve = np.asarray(gf.gabor(8)(jnp.asarray(xs), {"phi0": jnp.asarray(minimum[0]),
                                                         "phi1": jnp.asarray(minimum[1])}))
    assert ys == pytest.approx(curve, rel=1e-9, abs=1e-12)
    # and the path drawn is gradient descent's from the start
    path = page.evaluate("""(() => { const t = document.getElementById('basins').data.find((t) => t.name === 'path');
                            return [t.x, t.y]; })()""")
    assert np.transpose(path) == pytest.approx(np.asarray(expected.history.params), rel=1e-9, abs=1e-12)
    ARTIFACTS.mkdir(exist_ok=True)
    page.mouse.move(1, 1)
    page.screenshot(path=ARTIFACTS / "basins-1400.png", full_page=True)
    page.set_viewport_size({"width": 800, "height": 1000})
    # the plots follow the window (plotly's resize is debounced): nothing overflows sideways
    page.wait_for_function("document.documentElement.scrollWidth <= 800", timeout=5_000)
    page.mouse.move(1, 1)
    page.screenshot(path=ARTIFACTS / "basins-800.png", full_page=True)
    assert problems == []

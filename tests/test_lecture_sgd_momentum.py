"""The lecture's SGD and momentum figures on the Gabor loss (book Figures 6.4b-6.7): each shows
what its caption says, from the fits themselves, and each drawn step is one real step of its rule."""

from __future__ import annotations

import numpy as np
import pytest

from gradfit import lecture
from gradfit.lecture import sgd as sgd_part
from gradfit.plots import optimizer_color
from test_plots import assert_png, assert_svg

# each figure is fitted and drawn at toy size: about 15 s for the file, so with the slow tests in CI
pytestmark = pytest.mark.slow

#: Small surfaces and few critical-point starts; the fits are the lecture's own (their outcome
#: depends on the start, rate, batch size and seeds, which stay as in QUICK).
TOY = lecture.QUICK.replace(resolution=30, critical_grid=12, sgd_batches_resolution=20)


@pytest.fixture(scope="module")
def gabor8():
    return lecture.gabor_problem(TOY, TOY.scales[0], TOY.gabor_lr[0])


@pytest.fixture(scope="module")
def runs(gabor8):
    return sgd_part.gabor_sgd_runs(TOY, gabor8)


def _files(built, folder):
    for name in built.names:
        assert_png((folder / f"{name}.png").read_bytes())
        assert_svg((folder / f"{name}.svg").read_text())
    for image in built.section.images:
        assert len(image.caption) > 80


def test_sgd_gabor_escapes_where_gradient_descent_is_caught(gabor8, runs, tmp_path):
    built = sgd_part.sgd_gabor_figure(TOY, gabor8, runs, tmp_path)
    _files(built, tmp_path)
    full, chosen = built.results["fits"]
    np.testing.assert_allclose(full.history.params[0], TOY.sgd_gabor_start)
    np.testing.assert_allclose(chosen.history.params[0], TOY.sgd_gabor_start)
    # gradient descent ends in a local minimum's bowl (curving up), above the global minimum
    end = np.asarray(full.x, float)
    nearest = min(gabor8.points, key=lambda q: np.linalg.norm(q.theta - end))
    best = min(q.value for q in gabor8.minima)
    assert nearest.kind == "minimum" and np.linalg.norm(nearest.theta - end) < 0.5
    assert np.all(np.linalg.eigvalsh(gabor8.fn.hessian(end)) > 0)
    assert full.loss == pytest.approx(nearest.value, abs=0.02)
    assert nearest.value > best + 1.0
    # SGD from the same start ends lower, at the global minimum, in more than one seed
    assert chosen.loss < full.loss - 1.0
    assert chosen.loss == pytest.approx(best, abs=0.05)
    assert 1 <= built.results["escaped"] <= TOY.sgd_gabor_seeds
    # each path in its optimiser's colour
    assert full.optimizer["name"] == "gd" and chosen.optimizer["name"] == "sgd"


def test_sgd_batches_surfaces_differ_and_the_step_is_sgds_own(gabor8, runs, tmp_path):
    built = sgd_part.sgd_batches_figure(TOY, gabor8, runs, tmp_path)
    _files(built, tmp_path)
    r = built.results
    full, *batches = (np.asarray(surf.loss) for surf in r["surfaces"])
    assert len(batches) == TOY.sgd_batches_shown
    for z in batches:  # not the full surface scaled: another shape, another lowest point
        assert np.corrcoef(z.ravel(), full.ravel())[0, 1] < 0.99
    assert len({int(np.argmin(z)) for z in [full, *batches]}) > 1
    # the blue arrow is the SGD run's own step, which is -α_t ∇L_batch(φ_t) on its batch only
    np.testing.assert_allclose(r["own_ends"][1], r["taken"], atol=1e-8)
    assert not np.allclose(r["own_ends"][0], r["taken"], atol=1e-3)
    assert not any(np.allclose(e, r["taken"], atol=1e-3) for e in r["own_ends"][2:])
    path = runs.runs[runs.picked].history.params
    np.testing.assert_allclose(r["start"], path[r["step"]])
    np.testing.assert_allclose(r["gd_end"], r["start"] - gabor8.lr * gabor8.fn.grad(r["start"]))
    rows = np.concatenate(r["rows"])
    assert len(np.unique(rows)) == len(rows)  # batches of one epoch share no rows


def test_momentum_gabor_one_panel_per_optimiser_in_its_colour(gabor8, tmp_path):
    from matplotlib.colors import to_hex

    from gradfit.lecture.momentum import momentum_gabor_figure

    built = momentum_gabor_figure(TOY, gabor8, tmp_path)
    _files(built, tmp_path)
    r = built.results
    gd_fit, mom, nes = r["fits"]
    assert [f.optimizer["name"] for f in r["fits"]] == ["gd", "momentum", "nesterov"]
    for f in r["fits"]:
        np.testing.assert_allclose(f.history.params[0], TOY.momentum_gabor_start)
    # one panel each: its path is the only line of that label there, drawn in its optimiser's colour
    for ax, f, name in zip(r["axes"][:3], r["fits"], ("gradient descent", "momentum", "Nesterov"), strict=True):
        paths = [line for line in ax.get_lines() if line.get_label() == name]
        assert len(paths) == 1
        assert to_hex(paths[0].get_color()) == to_hex(optimizer_color(f.optimizer["name"]))
        np.testing.assert_allclose(paths[0].get_xydata(), f.history.params)
    assert len({to_hex(c) for c in r["colors"]}) == 3
    # what the caption says: all three reach the global minimum; momentum overshoots most, Nesterov less
    best = min(q.value for q in gabor8.minima)
    assert all(f.loss == pytest.approx(best, abs=0.05) for f in r["fits"])
    assert r["rises"][1] > r["rises"][2] > r["rises"][0]
    assert None not in r["reached"] and r["reached"][1] < r["reached"][0]


def test_nesterov_lookahead_arrows_are_one_real_step_of_each_rule(tmp_path):
    from gradfit.lecture.momentum import nesterov_lookahead_figure

    p = lecture.linear_problem(TOY)
    built = nesterov_lookahead_figure(TOY, p, tmp_path)
    _files(built, tmp_path)
    r = built.results
    lr, beta, t = r["lr"], r["beta"], r["t"]
    phi, m = r["phi"], r["m"]
    # φ_t is the momentum fit's own point, and momentum's φ_{t+1} its next one
    import gradfit as gf

    run = gf.fit(p.model, "normal", p.data, gf.momentum(lr, beta), init=list(TOY.linear_start), steps=t + 1, tol=0)
    path = run.history.params
    np.testing.assert_allclose(phi, path[t], atol=1e-10)
    np.testing.assert_allclose(r["ends"]["momentum"], path[t + 1], atol=1e-10)
    # m_t is what the fit moved by: φ_t = φ_{t-1} - α m_t
    np.testing.assert_allclose(m, (path[t - 1] - path[t]) / lr, atol=1e-10)
    # the slides' rules by hand (REFERENCE.md §3)
    g = p.fn.grad
    np.testing.assert_allclose(r["ends"]["momentum"], phi - lr * (beta * m + (1 - beta) * g(phi)), atol=1e-10)
    np.testing.assert_allclose(r["look"], phi - lr * m)
    np.testing.assert_allclose(r["ends"]["nesterov"], phi - lr * (beta * m + (1 - beta) * g(phi - lr * m)),
                               atol=1e-10)
    np.testing.assert_allclose(r["carry"], phi - lr * beta * m)
    # the figure is worth drawing: the two steps differ visibly
    steps = {k: e - phi for k, e in r["ends"].items()}
    assert np.linalg.norm(steps["momentum"] - steps["nesterov"]) > 0.2 * np.linalg.norm(steps["momentum"])


def test_nesterov_first_step_from_rest_equals_a_real_fit(tmp_path):
    """From m = 0 the look-ahead is φ itself: one step of `fit` for either rule is one gradient step of α(1-β)."""
    import gradfit as gf

    p = lecture.linear_problem(TOY)
    start = np.array(TOY.linear_start)
    expected = start - TOY.lookahead_lr * (1 - TOY.beta) * p.fn.grad(start)
    for rule in (gf.momentum, gf.nesterov):
        one = gf.fit(p.model, "normal", p.data, rule(TOY.lookahead_lr, TOY.beta), init=list(start), steps=1, tol=0)
        np.testing.assert_allclose(one.x, expected, atol=1e-10)

"""The lecture's figures for the steep quadratic, Adam's bias correction, the normalised-gradient
example, the Gabor model at each minimum and the Poisson exercise: each drawn at toy settings,
and each checked against the maths it shows."""

from __future__ import annotations

import numpy as np
import pytest

import gradfit as gf
from gradfit import lecture
from gradfit.lecture import adam as lecture_adam
from test_plots import assert_png, assert_svg

# each figure is fitted and drawn at toy size: about 15 s for the file, so with the slow tests in CI
pytestmark = pytest.mark.slow

TOY = lecture.QUICK.replace(resolution=24, critical_grid=12, steep_steps=20, bias_steps=12)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("lecture_figures")


def _drawn(built, folder):
    for name in built.names:
        assert_png((folder / f"{name}.png").read_bytes())
        assert_svg((folder / f"{name}.svg").read_text())


def test_steep_rates_small_rate_crawls_and_large_rate_diverges(folder):
    built = lecture_adam.steep_rates_figure(TOY, folder)
    assert built.names == ("steep_rates",)
    _drawn(built, folder)
    (a, b), start, steps = TOY.quad_scales, np.array(TOY.quad_start), TOY.steep_steps
    small, large = built.results["fits"]
    lr_small, lr_large = TOY.steep_lrs
    assert 2 * lr_small * b < 2 < 2 * lr_large * b  # one rate stable along φ1, one not
    # gradient descent on a φ0² + b φ1² multiplies each coordinate by 1 - 2αa, 1 - 2αb per step
    for run, lr in ((small, lr_small), (large, lr_large)):
        expected = start[None] * (1 - 2 * lr * np.array([a, b]))[None] ** np.arange(steps + 1)[:, None]
        np.testing.assert_allclose(run.history.params, expected, rtol=1e-5, atol=1e-9)
    # the small rate is still far along the shallow φ0, the large one has got there ...
    assert abs(small.history.params[-1, 0]) > 0.5 * abs(start[0]) > 2 * abs(large.history.params[-1, 0])
    # ... but the large one's φ1 grows, changing sign every step
    phi1 = large.history.params[:, 1]
    assert np.all(np.abs(np.diff(np.abs(phi1))) > 0) and abs(phi1[-1]) > abs(phi1[0])
    assert np.all(np.sign(phi1[1:]) == -np.sign(phi1[:-1]))
    assert abs(small.history.params[-1, 1]) < 1e-3


def test_adam_bias_moments_are_adams_own_and_corrected(folder):
    built = lecture_adam.adam_bias_figure(TOY, folder)
    assert built.names == ("adam_bias",)
    _drawn(built, folder)
    r = built.results
    g, m, v, beta, gamma = r["grads"], r["m"], r["v"], r["beta"], r["gamma"]
    eps = dict(gf.adam(TOY.quad_lr).hyper)["eps"]  # the slides' Adam: ε inside the root
    assert len(g) == TOY.bias_steps
    # the moments start biased towards 0; corrected, the first step is the gradient itself
    np.testing.assert_allclose(m[0], (1 - beta) * g[0], rtol=1e-12)
    np.testing.assert_allclose(v[0], (1 - gamma) * g[0] ** 2, rtol=1e-12)
    np.testing.assert_allclose(r["m_hat"][0], g[0], rtol=1e-12)
    np.testing.assert_allclose(r["v_hat"][0], g[0] ** 2, rtol=1e-12)
    assert np.all(np.abs(m[0]) < 0.2 * np.abs(r["m_hat"][0]))
    # REFERENCE §3: m ← β m + (1-β) g, v ← γ v + (1-γ) g², from 0; φ ← φ - α m̃ / √(ṽ + ε)
    mm, vv = np.zeros_like(g[0]), np.zeros_like(g[0])
    for t, gt in enumerate(g):
        mm, vv = beta * mm + (1 - beta) * gt, gamma * vv + (1 - gamma) * gt**2
        np.testing.assert_allclose(m[t], mm, rtol=1e-10)
        np.testing.assert_allclose(v[t], vv, rtol=1e-10)
        step = -TOY.quad_lr * (mm / (1 - beta ** (t + 1))) / np.sqrt(vv / (1 - gamma ** (t + 1)) + eps)
        np.testing.assert_allclose(r["updates"][t], step, rtol=1e-8)
    # and those updates are the ones the real fit took
    path = r["fit"].history.params[: len(g) + 1]
    np.testing.assert_allclose(path[:-1] + r["updates"], path[1:], rtol=1e-5, atol=1e-7)


def test_normalized_example_is_gradfits_own_step(folder, monkeypatch):
    built = lecture_adam.normalized_example_figure(TOY, folder)
    assert built.names == ("normalized_example",)
    _drawn(built, folder)
    r = built.results
    g = np.array([3.0, -2.0, 5.0])  # the slides' example (REFERENCE §3)
    np.testing.assert_allclose(r["gradient"], g, rtol=1e-12)
    # REFERENCE §3: m = g, v = g², direction m / (√v + ε)
    np.testing.assert_allclose(r["direction"], g / (np.sqrt(g**2) + r["eps"]), rtol=1e-12)
    np.testing.assert_allclose(r["direction"], [1.0, -1.0, 1.0], atol=r["eps"] / np.min(np.abs(g)) * 1.01)
    assert np.all(r["direction"] != np.sign(g))  # ε is really in the denominator
    # the fit's step is the optimiser's own update
    opt = gf.normalized(1.0, eps=r["eps"])
    update, _ = opt.update(g, opt.init(np.zeros(3)), np.zeros(3))
    np.testing.assert_allclose(-np.asarray(update), r["direction"], rtol=1e-6)
    # the figure draws whatever the rule does: with a large ε the direction shrinks accordingly
    monkeypatch.setattr(lecture_adam, "normalized", lambda lr: gf.normalized(lr, eps=0.5))
    shrunk = lecture_adam.normalized_example_figure(TOY, folder).results["direction"]
    np.testing.assert_allclose(shrunk, g / (np.abs(g) + 0.5), rtol=1e-12)


@pytest.fixture(scope="module")
def gabor_problems():
    return [lecture.gabor_problem(TOY, scale, lr) for scale, lr in zip(TOY.scales, TOY.gabor_lr, strict=True)]


def test_gabor_minima_one_panel_per_minimum_lowest_first(folder, gabor_problems):
    from gradfit import plots
    from gradfit.lecture import gabor as lecture_gabor

    built = lecture_gabor.gabor_minima_figure(TOY, gabor_problems, folder)
    assert built.names == ("gabor_minima",)
    _drawn(built, folder)
    shown = built.results["minima"]
    for p, found in zip(gabor_problems, shown, strict=True):
        # every minimum off the box's edge, and nothing else: ∇L = 0 and a positive-definite Hessian
        inside = [q for q in p.minima if not plots.on_edge(q.theta, lecture.GABOR_BOX)]
        assert len(found) == len(inside) >= 2
        for q in found:
            assert np.all(np.linalg.eigvalsh(p.fn.hessian(q.theta)) > 0)
            assert np.linalg.norm(p.fn.grad(q.theta)) < 1e-5
        # lowest loss first: the first panel is the global minimum of the loss in the box
        values = [float(p.fn(q.theta)) for q in found]
        assert values == sorted(values)
        assert values[0] <= float(np.min(p.surface.loss)) + 1e-9
    assert built.results["panels"] == sum(len(m) for m in shown)


def test_poisson_fit_is_fit_glms_and_minimises_the_poisson_loss(folder):
    import gradfit as gf
    from gradfit.lecture import poisson as lecture_poisson

    toy = TOY.replace(poisson_n=400, poisson_steps=40)
    built = lecture_poisson.poisson_figure(toy, folder)
    assert built.names == ("poisson",)
    _drawn(built, folder)
    data = gf.pedestrian_data(toy.seed, toy.poisson_n)
    columns = {name: data.x[:, j] for j, name in enumerate(data.x_names)}
    columns["count"] = data.y
    reference = gf.fit_glm(columns, "count", "poisson", x=list(lecture_poisson.COLUMNS))
    np.testing.assert_allclose(built.results["beta"], reference.x, rtol=1e-6, atol=1e-8)
    # the loss the caption states, L = Σ λ_i − y_i log λ_i with λ = exp(xᵀφ), and its optimum: ∇L = Xᵀ(λ − y) = 0
    x = np.column_stack([np.ones(len(data.y))] + [columns[c] for c in lecture_poisson.COLUMNS])
    rate = np.exp(x @ built.results["beta"])
    assert built.results["glm"].loss == pytest.approx(np.sum(rate - data.y * np.log(rate)), rel=1e-10)
    score = x.T @ (rate - data.y)
    assert np.all(np.abs(score) <= 1e-5 * (np.abs(x).T @ (rate + data.y)))
    # Adam runs on the same loss and cannot go below its minimum
    adam_run = built.results["adam"]
    assert len(adam_run.history) == toy.poisson_steps + 1
    assert np.min(adam_run.history.loss) >= reference.loss - 1e-8 * abs(reference.loss)
    assert adam_run.history.loss[-1] < adam_run.history.loss[0]
    # QUICK draws Newton's steps only
    assert lecture_poisson.poisson_figure(toy.replace(poisson_steps=0), folder).results["adam"] is None

"""The book's bracketing line search (REFERENCE §3, notebook 6.1), and gradient descent with it."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradfit
from gradfit.errors import GradfitError
from gradfit.linesearch import line_search

pytestmark = pytest.mark.usefixtures("x64")


def book_line_search(h, max_dist=1.0, thresh=1e-4, max_iter=10):
    """REFERENCE §3 "Line search", transcribed in plain Python.

    As gradfit documents, a value of h that is not finite counts as +inf. Ties for
    the lowest of the four go to a, as the book's ``np.argmin(...) == 0`` does.
    """

    def height(s):
        value = float(h(s))
        return value if math.isfinite(value) else math.inf

    a, b, c, d = 0.0, max_dist / 3, 2 * max_dist / 3, max_dist
    rounds = 0
    while abs(b - c) > thresh and rounds < max_iter:
        rounds += 1
        ha, hb, hc, hd = height(a), height(b), height(c), height(d)
        if ha <= min(hb, hc, hd):
            b, c, d = a + (b - a) / 2, a + (c - a) / 2, a + (d - a) / 2
            continue
        if hb < hc:
            d = c
        else:
            a = b
        b, c = a + (d - a) / 3, a + 2 * (d - a) / 3
    return (b + c) / 2


# Each h is written once for both numpy and jax (xp is the array module).
FUNCTIONS = {
    "minimum inside": (lambda s, xp: (s - 0.37) ** 2, 0.37),
    "minimum near the far end": (lambda s, xp: 3 * (s - 0.93) ** 2 + 1, 0.93),
    "minimum beyond max_dist": (lambda s, xp: (s - 1.7) ** 2, None),
    "minimum at 0": (lambda s, xp: s**2, 0.0),
    "increasing from 0": (lambda s, xp: (s + 0.5) ** 2, None),
    "quartic": (lambda s, xp: (s - 0.2) ** 4 - 0.1 * s, 0.2 + 0.025 ** (1 / 3)),
    "not finite past 0.5": (lambda s, xp: xp.where(s > 0.5, xp.nan, (s - 0.3) ** 2), 0.3),
}
SETTINGS = {
    "defaults": dict(max_dist=1.0, thresh=1e-4, max_iter=10),
    "long and fine": dict(max_dist=1.0, thresh=1e-9, max_iter=60),
    "wide": dict(max_dist=2.5, thresh=1e-6, max_iter=30),
    "short": dict(max_dist=0.1, thresh=1e-3, max_iter=5),
}


@pytest.mark.parametrize("settings", sorted(SETTINGS))
@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_matches_the_book(function, settings):
    h, _ = FUNCTIONS[function]
    kw = SETTINGS[settings]
    expected = book_line_search(lambda s: h(np.float64(s), np), **kw)
    assert float(line_search(lambda s: h(s, jnp), **kw)) == pytest.approx(expected, rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("function", sorted(f for f, (_, best) in FUNCTIONS.items() if best is not None))
def test_finds_a_minimum_inside_the_range(function):
    # Given enough rounds the bracket closes on the minimiser of a unimodal h.
    h, best = FUNCTIONS[function]
    assert float(line_search(lambda s: h(s, jnp), **SETTINGS["long and fine"])) == pytest.approx(best, abs=1e-6)


def test_runs_under_jit_and_vmap():
    centres = jnp.array([-0.5, 0.0, 0.25, 0.6, 0.99, 1.4])
    search = jax.jit(jax.vmap(lambda m: line_search(lambda s: (s - m) ** 2, 1.0, 1e-6, 30)))
    expected = [book_line_search(lambda s, m=float(m): (s - m) ** 2, 1.0, 1e-6, 30) for m in centres]
    np.testing.assert_allclose(np.asarray(search(centres)), expected, rtol=1e-12, atol=1e-15)


# -- gradient descent with the line search, in the fit loop ----------------------------------


def _least_squares(x, y):
    def loss(phi):
        r = phi[0] + phi[1] * x - y
        return np.sum(r * r)

    def grad(phi):
        # REFERENCE §2: ∂ℓ_i/∂φ0 = 2 r_i, ∂ℓ_i/∂φ1 = 2 x_i r_i.
        r = phi[0] + phi[1] * x - y
        return np.array([np.sum(2 * r), np.sum(2 * x * r)])

    return loss, grad


def _closed_form(x, y):
    return np.linalg.lstsq(np.column_stack([np.ones_like(x), x]), y, rcond=None)[0]


START = (0.6, -0.2)


@pytest.fixture(scope="module")
def line_search_fit(linear_12):
    return gradfit.fit("linear", "normal", linear_12, gradfit.gd(line_search=True), init=START,
                       steps=500, tol=1e-8, dtype="float64")


def test_gd_steps_are_the_book_search(line_search_fit, linear_12):
    # φ_{k+1} = φ_k - s_k g_k, s_k from the search on h(s) = L[φ_k - s g_k] over [0, 1].
    loss, grad = _least_squares(linear_12.x, linear_12.y)
    phi, steps = np.array(START), []
    for _ in range(5):
        g = grad(phi)
        s = book_line_search(lambda s, phi=phi, g=g: loss(phi - s * g))
        steps.append(s)
        phi = phi - s * g
        np.testing.assert_allclose(line_search_fit.history.params[len(steps)], phi, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(line_search_fit.history.lr[:5], steps, rtol=1e-10)


def test_gd_reaches_the_least_squares_solution(line_search_fit, linear_12):
    fit = line_search_fit
    assert fit.status == "converged"
    np.testing.assert_allclose(fit.x, _closed_form(linear_12.x, linear_12.y), atol=1e-8)
    # REFERENCE §4: φ ≈ (0.82595, 0.52223), loss 0.19987.
    np.testing.assert_allclose(fit.x, [0.82595, 0.52223], atol=5e-6)
    assert fit.loss == pytest.approx(0.19987, abs=5e-6)
    # Each search keeps the loss from rising: s = 0 is always in the bracket's reach.
    assert np.all(np.diff(fit.history.loss) <= 1e-12)


def test_gd_reaches_the_least_squares_solution_on_generated_data():
    data = gradfit.linear_data()
    fit = gradfit.fit("linear", "normal", data, gradfit.gd(line_search=True), init=START, steps=500, tol=1e-8,
                      dtype="float64")
    assert fit.status == "converged"
    np.testing.assert_allclose(fit.x, _closed_form(data.x, data.y), atol=1e-8)


def test_is_for_full_batch_only():
    data = gradfit.linear_data()
    with pytest.raises(GradfitError, match="full-batch"):
        gradfit.fit("linear", "normal", data, gradfit.gd(line_search=True), batch_size=4, steps=3)


def test_needs_the_loss_in_update():
    opt = gradfit.gd(line_search=True)
    params = jnp.zeros(2)
    with pytest.raises(GradfitError, match="value_fn"):
        opt.update(params, opt.init(params), params)

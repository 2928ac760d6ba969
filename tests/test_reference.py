"""The figures of REFERENCE.md §4, on the book's data read from ../shared/data.

Each figure is checked to the precision it is printed with: half a unit in its last
printed digit. A clone without that folder skips these tests (the ``udlbook`` fixture).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import gradfit as gf


def _tol(printed: str) -> float:
    """Half a unit in the last digit of a printed figure: '12.367' -> 0.0005."""
    decimals = len(printed.partition(".")[2])
    return 0.5 * 10.0**-decimals


def _value_and_grad(objective, data, phi):
    x, y = jnp.asarray(data.x), jnp.asarray(data.y)
    value, grad = jax.value_and_grad(objective.value)(jnp.asarray(phi, dtype=float), x, y)
    return float(value), np.asarray(grad)


def test_the_books_data_is_read_from_beside_the_repository(udlbook, linear_12, gabor_30):
    assert len(linear_12) == 12 and len(gabor_30) == 30
    assert linear_12.x.ndim == 1 and gabor_30.x.ndim == 1
    assert linear_12.name == "linear_12" and gabor_30.name == "gabor_30"


@pytest.mark.parametrize(("phi", "printed"), [((0.6, -0.2), "12.367"), ((1.6, -0.5), "5.020")])
def test_linear_12_least_squares_loss(x64, linear_12, phi, printed):
    value, _ = _value_and_grad(gf.Objective(gf.linear(), gf.normal()), linear_12, phi)
    assert value == pytest.approx(float(printed), abs=_tol(printed))


def test_linear_12_gradient(x64, linear_12):
    _, grad = _value_and_grad(gf.Objective(gf.linear(), gf.normal()), linear_12, (0.6, -0.2))
    np.testing.assert_allclose(grad, [-21.904, -26.840], rtol=0, atol=_tol("21.904"))
    # ... and it is the sum of the slides' per-example gradients (REFERENCE.md §2)
    x, y = linear_12.x, linear_12.y
    r = 0.6 - 0.2 * x - y
    np.testing.assert_allclose(grad, [np.sum(2 * r), np.sum(2 * x * r)], rtol=1e-12)


def test_linear_12_closed_form(x64, linear_12):
    design = np.column_stack([np.ones(len(linear_12)), linear_12.x])
    phi, rss, *_ = np.linalg.lstsq(design, linear_12.y, rcond=None)
    np.testing.assert_allclose(phi, [0.82595, 0.52223], rtol=0, atol=_tol("0.82595"))
    assert rss[0] == pytest.approx(0.19987, abs=_tol("0.19987"))
    value, grad = _value_and_grad(gf.Objective(gf.linear(), gf.normal()), linear_12, phi)
    assert value == pytest.approx(rss[0], rel=1e-12)
    np.testing.assert_allclose(grad, [0.0, 0.0], atol=1e-12)  # the least-squares minimum


@pytest.mark.parametrize("optimizer", [gf.gd(0.01), gf.gd(line_search=True)], ids=["gd", "gd_line_search"])
def test_fit_reaches_the_linear_12_closed_form(linear_12, optimizer):
    result = gf.fit(gf.linear(), gf.normal(), linear_12, optimizer, init={"phi0": 0.6, "phi1": -0.2},
                    steps=20_000, tol=1e-9)
    assert result.status == "converged"
    phi = [result.params["phi0"], result.params["phi1"]]
    np.testing.assert_allclose(phi, [0.82595, 0.52223], rtol=0, atol=_tol("0.82595"))
    assert result.loss == pytest.approx(0.19987, abs=_tol("0.19987"))
    assert result.history.loss[0] == pytest.approx(12.367, abs=_tol("12.367"))


@pytest.mark.parametrize(("s", "printed"), [(32.0, "16.419"), (8.0, "15.545")])
def test_gabor_30_loss(x64, gabor_30, s, printed):
    value, _ = _value_and_grad(gf.Objective(gf.gabor(s), gf.normal()), gabor_30, (0.6, -0.2))
    assert value == pytest.approx(float(printed), abs=_tol(printed))


def test_gabor_default_is_the_slides_figure(x64, gabor_30):
    value, _ = _value_and_grad(gf.Objective(gf.gabor(), gf.normal()), gabor_30, (0.6, -0.2))
    assert value == pytest.approx(15.545, abs=_tol("15.545"))


def test_normal_pdf_figure(x64):
    nll = gf.normal(sigma=2.3)(jnp.array([-1.0]), jnp.array([1.0]))
    density = float(np.exp(-nll[0]))
    assert density == pytest.approx(0.119, abs=_tol("0.119"))
    assert density == pytest.approx(stats.norm.pdf(1.0, loc=-1.0, scale=2.3), rel=1e-13)

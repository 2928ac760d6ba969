"""What kind of point a fit stopped at: the Hessian tells a minimum from a saddle, a maximum or a plateau."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

import gradfit as gf
from gradfit import points


@pytest.mark.parametrize("hessian, kind", [
    (np.diag([1.0, 2.0]), "minimum"),
    (np.diag([1.0, 0.0]), "minimum"),  # a valley floor: flat along one direction only
    (np.diag([1.0, -1.0]), "saddle"),
    (np.array([[0.0, 1.0], [1.0, 0.0]]), "saddle"),  # eigenvalues ±1
    (np.diag([-1.0, -3.0]), "maximum"),
    (np.zeros((2, 2)), "flat"),
    (np.diag([1e-14, 1e-14]), "flat"),
])
def test_kinds_from_the_hessian(hessian, kind):
    assert points.kind(hessian, np.zeros(2), loss=2.5) == kind


def test_curvature_is_read_in_the_parameters_own_scale():
    # L changes by 1e-12 φ² per unit, but φ is 1e6 in size: D H D = 1, a clear minimum
    assert points.kind(np.diag([1e-12, 1e-12]), np.array([1e6, 1e6]), loss=1.0) == "minimum"
    # the same Hessian at φ of size 1 is flat against a loss of 1
    assert points.kind(np.diag([1e-12, 1e-12]), np.array([1.0, 1.0]), loss=1.0) == "flat"
    # a perfect fit (L = 0) with curvature is a minimum, not flat
    assert points.kind(np.eye(2), np.zeros(2), loss=0.0) == "minimum"


def test_rounding_in_a_computed_hessian_is_not_a_saddle():
    h = np.diag([1.0, 1e-3]) + np.array([[0.0, 0.0], [0.0, -1e-9]])
    assert points.kind(h, np.zeros(2), loss=1.0, dtype="float64") == "minimum"
    assert points.kind(np.diag([1.0, -1e-4]), np.zeros(2), loss=1.0, dtype="float32") == "minimum"
    assert points.kind(np.diag([1.0, -1e-4]), np.zeros(2), loss=1.0, dtype="float64") == "saddle"


def test_a_non_finite_hessian_is_not_classified():
    assert points.kind(np.array([[np.nan, 0.0], [0.0, 1.0]]), np.zeros(2), loss=1.0) is None


def test_gabor_plateau_is_flat_not_converged():
    """gd with α = 100 leaves the data behind: the model is 0 at every x and L = Σy²."""
    data = gf.gabor_data(0)
    result = gf.fit("gabor", "normal", data, gf.gd(100.0))
    assert result.status == "stalled" and result.point == "flat"
    assert result.loss == pytest.approx(float(np.sum(data.y ** 2)), rel=1e-12)
    assert "plateau" in result.stopped and "not a minimum" in result.stopped
    optimum = gf.fit("gabor", "normal", data, gf.adam(0.1))
    assert optimum.status == "converged" and optimum.point == "minimum"
    assert optimum.loss < result.loss / 4


def test_a_saddle_is_stalled():
    # L(a, b) = Σ ((a² - b²) x - y)², stationary at a = b = 0 with Hessian 4 Σxy · diag(-1, 1)
    model = gf.custom(lambda x, p: (p["a"] ** 2 - p["b"] ** 2) * x, {"a": 0.0, "b": 0.0}, name="difference")
    x = np.linspace(-1.0, 1.0, 9)
    result = gf.fit(model, "normal", (x, 0.5 * x), gf.gd(0.01), init={"a": 0.0, "b": 0.0})
    assert result.status == "stalled" and result.point == "saddle"
    assert result.steps == 0 and "saddle" in result.stopped
    # the JSON keeps it
    again = gf.FitResult.from_json(result.to_json())
    assert again.point == "saddle" and again.status == "stalled"


def test_a_maximum_is_stalled():
    model = gf.custom(lambda x, p: jnp.cos(p["a"]) * x, {"a": 0.0}, name="cosine")
    x = np.linspace(0.5, 1.5, 5)
    # L = Σ (cos(a) x + x)²: largest at a = 0, where the gradient is exactly 0
    result = gf.fit(model, "normal", (x, -x), gf.gd(0.01), init={"a": 0.0})
    assert result.status == "stalled" and result.point == "maximum"


def test_max_steps_is_not_classified_and_large_models_are_left_alone():
    result = gf.fit("gabor", "normal", gf.gabor_data(0), gf.adam(0.1), steps=5)
    assert result.status == "max_steps" and result.point is None
    x = np.linspace(-1, 1, 40)[:, None]
    big = gf.shallow(100, 1, 1)  # 301 parameters: over points.MAX_SIZE
    assert big.size > points.MAX_SIZE
    fitted = gf.fit(big, "normal", (x, x[:, 0] ** 2), gf.adam(0.01), steps=3000, tol=1.0)
    assert fitted.status == "converged" and fitted.point is None

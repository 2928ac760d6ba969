"""Bounds and fixed values (`gradfit.parameters`): the transforms, fits that keep to them, and bad input.

The transforms are MINUIT's, as lmfit uses them, so lmfit's fit with the same bounds is
the reference for a bounded optimum; a fixed parameter's fit is the fit of the reduced
model, and where a model is linear in its free parameters the optimum is closed-form
least squares (numpy). The round trip T(T⁻¹(φ)) = φ and T(u) within the bounds for
every u are property tests (Hypothesis; ``fuzz`` marker).
"""

from __future__ import annotations

import math
import warnings

import jax
import jax.numpy as jnp
import lmfit
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import gradfit as gf
from gradfit import parameters
from gradfit.errors import GradfitError
from gradfit.result import MultiFit

EPS = np.finfo(float).eps


# -- the transforms ---------------------------------------------------------------------------------


def one_parameter(low, high):
    model = gf.custom(lambda x, p: p["a"] * x, ["a"], name="one")
    return parameters.constraints(model, {"a": (low, high)}, None)


KINDS = {"lower": (True, False), "upper": (False, True), "both": (True, True)}
FINITE = st.floats(-1e6, 1e6, allow_nan=False, allow_subnormal=False)  # XLA flushes subnormals to 0
WIDTH = st.floats(1e-3, 1e6)


@st.composite
def bounds_and_inside(draw, kind):
    """(low, high, φ) with φ strictly inside [low, high]; an absent side is None."""
    has_low, has_high = KINDS[kind]
    anchor = draw(FINITE)
    if has_low and has_high:
        low, high = anchor, anchor + draw(WIDTH)
        fraction = draw(st.floats(0.0, 1.0, exclude_min=True, exclude_max=True))
        phi = low + fraction * (high - low)
        if not low < phi < high:  # rounding put it on a bound: take the midpoint
            phi = low + (high - low) / 2
    elif has_low:
        low, high = anchor, None
        phi = low + draw(st.floats(1e-9, 1e6))
    else:
        low, high = None, anchor
        phi = high - draw(st.floats(1e-9, 1e6))
    return low, high, phi


def _scale(low, high, phi):
    return 1.0 + abs(phi) + abs(low or 0.0) + abs(high or 0.0)


@pytest.mark.fuzz
@pytest.mark.parametrize("kind", list(KINDS))
@given(data=st.data())
def test_round_trip_returns_the_parameter(kind, data):
    low, high, phi = data.draw(bounds_and_inside(kind))
    given_ = one_parameter(low, high)
    u = given_.internal(np.array([[phi]]))
    back = given_.external(u, np)
    assert back.shape == (1, 1)
    # φ = l - 1 + √(u² + 1) and its kin lose a few ulps of the largest number in play
    assert abs(back[0, 0] - phi) <= 16 * EPS * _scale(low, high, phi), (low, high, phi, back[0, 0])


@pytest.mark.fuzz
@pytest.mark.parametrize("kind", list(KINDS))
@given(data=st.data())
def test_every_internal_value_maps_inside_the_bounds(kind, data):
    low, high, _ = data.draw(bounds_and_inside(kind))
    # eight values each time: JAX compiles its T once for the shape, not once per length
    u = np.array(data.draw(st.lists(st.one_of(st.just(0.0), st.floats(-1e8, 1e8)), min_size=8, max_size=8)))
    phi = one_parameter(low, high).external(u[:, None], np)[:, 0]
    assert np.all(phi >= (-math.inf if low is None else low)), (low, phi)
    assert np.all(phi <= (math.inf if high is None else high)), (high, phi)
    # and JAX's T, which the model sees, keeps to them too (in float64: a float32 bound is another number)
    with jax.enable_x64(True):
        phi_jax = np.asarray(one_parameter(low, high).external(jnp.asarray(u[:, None])))[:, 0]
    assert np.all(phi_jax >= (-math.inf if low is None else low)) and np.all(
        phi_jax <= (math.inf if high is None else high))


@pytest.mark.parametrize("low, high", [(0.1, None), (1 / 3, None), (None, 1e-3), (None, 0.1)])
def test_a_one_sided_bound_is_reached_exactly(low, high):
    # u = 0 puts φ on its bound. Computed as l - 1 + √(u² + 1), (0.1 - 1) + 1 rounds to
    # 0.09999999999999998, outside the bound, and (0.001 + 1) - 1 to 0.00099999999999989
    phi = one_parameter(low, high).external(np.zeros((1, 1)), np)[0, 0]
    assert phi == (low if low is not None else high)


@pytest.mark.parametrize("low, high", [(0.1, 0.3), (1 / 3, 0.7), (-0.3, 0.1), (1e-3, 1.1)])
def test_a_two_sided_bound_is_never_passed(low, high):
    phi = one_parameter(low, high).external(np.array([[np.pi / 2], [-np.pi / 2]]), np)[:, 0]
    assert phi[0] <= high and phi[1] >= low
    assert phi[0] == pytest.approx(high, abs=EPS) and phi[1] == pytest.approx(low, abs=EPS)


@pytest.mark.parametrize("low, high", [(0.0, None), (None, 0.0), (-1e-3, None)])
def test_a_parameter_near_a_one_sided_bound_keeps_its_digits(low, high):
    # φ - l = 10⁻¹²: (φ - l + 1)² - 1 in floating point keeps about 4 of its digits
    sign = 1.0 if low is not None else -1.0
    bound = low if low is not None else high
    phi = np.array([[bound + sign * 2.345678e-12], [bound + sign * 3.1e-9]])
    given_ = one_parameter(low, high)
    back = given_.external(given_.internal(phi), np)
    np.testing.assert_allclose(back - bound, phi - bound, rtol=1e-12)


def test_bounds_that_are_inactive_leave_a_tiny_parameter_unchanged():
    # k ≈ 2·10⁻¹² with k >= 0: the bound is far from binding in relative terms, so the fit
    # must equal the unbounded one (MINPACK's, with the exact Jacobian) to many digits
    from scipy.optimize import least_squares

    x = np.linspace(0.0, 1e12, 40)
    y = 3.0 * np.exp(-2.345678e-12 * x) * (1.0 + 0.01 * np.sin(x / 1e11))

    def residuals(t):
        return t[0] * np.exp(-t[1] * x) - y

    def jacobian(t):
        e = np.exp(-t[1] * x)
        return np.column_stack([e, -t[0] * x * e])

    reference = least_squares(residuals, [1.0, 1e-12], jac=jacobian, method="lm", x_scale="jac", xtol=1e-15,
                              ftol=1e-15, gtol=1e-15).x
    result = gf.fit(TINY_RATE, "normal", (x, y), "lm", init=[1.0, 1e-12], bounds={"k": (0.0, None)})
    np.testing.assert_allclose(result.x, reference, rtol=1e-9)


TINY_RATE = gf.custom(lambda x, p: p["a"] * jnp.exp(-p["k"] * x), ["a", "k"], name="tiny_rate")


def test_a_tiny_parameter_far_from_its_bound_in_its_own_scale_is_not_at_it():
    x = np.linspace(0.0, 1e12, 40)
    y = 3.0 * np.exp(-2.345678e-12 * x) * (1.0 + 0.01 * np.sin(x / 1e11))
    result = gf.fit(TINY_RATE, "normal", (x, y), "lm", init=[1.0, 1e-12], bounds={"k": (0.0, None)})
    assert result.settings["at_bound"] == {}


@pytest.mark.parametrize("low, high, phi", [(0.0, None, 0.0), (None, 2.0, 2.0), (-1.0, 1.0, -1.0), (-1.0, 1.0, 1.0)])
def test_a_start_on_a_bound_moves_just_inside(low, high, phi):
    given_ = one_parameter(low, high)
    moved = given_.external(given_.internal(np.array([[phi]])), np)[0, 0]
    span = (high - low) if low is not None and high is not None else max(1.0, abs(low if low is not None else high))
    assert moved != phi and 0 < abs(moved - phi) <= 1.01 * parameters.NUDGE * span
    assert (low is None or moved > low) and (high is None or moved < high)


def test_at_bound_names_the_side():
    given_ = parameters.constraints(gf.custom(lambda x, p: p["a"] * x + p["b"] + p["c"], ["a", "b", "c"]),
                                    {"a": (0, 1), "b": (0, None), "c": (None, 5)}, None)
    assert given_.at_bound(np.array([-np.pi / 2, 0.0, 0.0])) == {"a": "lower", "b": "lower", "c": "upper"}
    assert given_.at_bound(np.array([np.pi / 2, 3.0, -3.0])) == {"a": "upper"}
    assert given_.at_bound(np.array([0.3, 3.0, 3.0])) == {}


def test_array_parameters_take_bounds_per_element_or_whole():
    model = gf.shallow(2, 1, 1)
    given_ = parameters.constraints(model, {"beta0": (0, 1), "omega0[1,0]": (None, 0)}, {"beta1": 0.5})
    lower = dict(zip(model.flat_names, given_.lower))
    upper = dict(zip(model.flat_names, given_.upper))
    assert lower["beta0[0]"] == lower["beta0[1]"] == 0 and upper["beta0[0]"] == upper["beta0[1]"] == 1
    assert upper["omega0[1,0]"] == 0 and upper["omega0[0,0]"] == math.inf
    assert given_.free_names == tuple(n for n in model.flat_names if not n.startswith("beta1"))


# -- fits that keep to the bounds ---------------------------------------------------------------------

# y = φ0 + φ1 x + φ2 x² on x in [-1, 1], with φ2 held at 0.3 (its optimum is about 1), φ0 >= -5
# (its optimum is inside) and φ1 <= 1.5 (its optimum, about 2, is not): the fit must give
# φ1 = 1.5, φ2 = 0.3 and φ0 the least-squares intercept given them, mean(y - 1.5x - 0.3x²).
X = np.linspace(-1.0, 1.0, 30)
Y = 1.0 + 2.0 * X + 1.0 * X**2 + np.random.default_rng(7).normal(0.0, 0.05, X.size)
QUADRATIC = gf.linear(2)
INPUTS = np.column_stack([X, X**2])
BOUNDS = {"phi0": (-5.0, None), "phi1": (None, 1.5)}
FIXED = {"phi2": 0.3}
START = [0.0, 0.0, 0.0]
EXPECTED = np.array([np.mean(Y - 1.5 * X - 0.3 * X**2), 1.5, 0.3])

OPTIMIZERS = {
    "gd": dict(optimizer=gf.gd(0.01), steps=4000, tol=1e-10),
    "adam": dict(optimizer=gf.adam(0.02), steps=6000, tol=1e-9),
    "lm": dict(optimizer="lm"),
    "newton": dict(optimizer="newton"),
}


def lmfit_reference() -> np.ndarray:
    params = lmfit.Parameters()
    params.add("phi0", value=0.0, min=-5.0)
    params.add("phi1", value=0.0, max=1.5)
    params.add("phi2", value=0.3, vary=False)

    def residual(p):
        return p["phi0"] + p["phi1"] * X + p["phi2"] * X**2 - Y

    out = lmfit.minimize(residual, params, method="leastsq", xtol=1e-15, ftol=1e-15, gtol=1e-15)
    return np.array([out.params[n].value for n in ("phi0", "phi1", "phi2")])


@pytest.fixture(scope="module", params=list(OPTIMIZERS))
def bounded(request):
    options = OPTIMIZERS[request.param]
    return request.param, gf.fit(QUADRATIC, "normal", (INPUTS, Y), init=START, bounds=BOUNDS, fixed=FIXED,
                                 **options)


def test_bounded_fit_pins_the_parameter_whose_optimum_is_outside(bounded):
    name, result = bounded
    assert result.status == "converged", (name, result.stopped)
    assert result.settings["at_bound"] == {"phi1": "upper"}
    assert result.settings["bounds"] == {"phi0": [-5.0, None], "phi1": [None, 1.5]}
    assert result.settings["fixed"] == {"phi2": 0.3}
    tol = 1e-6 if name in ("gd", "adam") else 1e-9
    np.testing.assert_allclose(result.x, EXPECTED, rtol=tol, atol=tol)
    np.testing.assert_allclose(result.x, lmfit_reference(), rtol=tol, atol=tol)


def test_bounded_fit_keeps_to_the_bounds_at_every_row(bounded, tmp_path):
    _, result = bounded
    result.to_json(tmp_path / "bounded.json")  # a one-sided bound is null in JSON, which cannot hold inf
    params = result.history.params
    assert np.all(params[:, 0] >= -5.0) and np.all(params[:, 1] <= 1.5)
    assert np.all(params[:, 2] == 0.3)  # the fixed value, exactly, at every row
    # the start in the model's own terms, through T(T⁻¹(φ)): to rounding of the bound's scale
    np.testing.assert_allclose(params[0], [0.0, 0.0, 0.3], rtol=0, atol=16 * EPS * 5)
    np.testing.assert_array_equal(params[-1], result.x)


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_an_optimum_inside_the_bounds_is_unchanged(name):
    # the same bounds and fixed value, on data whose optimum φ1 = 1 is inside them: the fit is the
    # unconstrained one, numpy's least squares for φ0, φ1 given φ2 = 0.3 (the same compiled fit as above)
    y = 1.0 + 1.0 * X + 0.3 * X**2 + np.random.default_rng(8).normal(0.0, 0.05, X.size)
    optimum = np.linalg.lstsq(np.column_stack([np.ones_like(X), X]), y - 0.3 * X**2, rcond=None)[0]
    result = gf.fit(QUADRATIC, "normal", (INPUTS, y), init=START, bounds=BOUNDS, fixed=FIXED, **OPTIMIZERS[name])
    assert result.status == "converged", result.stopped
    assert result.settings["at_bound"] == {}
    tol = 1e-6 if name in ("gd", "adam") else 1e-10
    np.testing.assert_allclose(result.x, [*optimum, 0.3], rtol=tol, atol=tol)


# A nonlinear model, for the two-sided transform: a e^{-kx} + c with k in [0, 0.5] (its optimum
# is about 0.7), against lmfit's Model with the same bounds.
DX = np.linspace(0.0, 5.0, 40)
DY = 3.0 * np.exp(-0.7 * DX) + 0.5 + 0.02 * np.sin(7.0 * DX)


def decay(x, p):
    return p["a"] * jnp.exp(-p["k"] * x) + p["c"]


DECAY = gf.custom(decay, ["a", "k", "c"])


def lmfit_decay(**hints) -> lmfit.model.ModelResult:
    model = lmfit.Model(lambda x, a, k, c: a * np.exp(-k * x) + c)
    params = model.make_params(a=1.0, k=0.1, c=0.0)
    for name, hint in hints.items():
        params[name].set(**hint)
    return model.fit(DY, params, x=DX, method="leastsq", fit_kws={"xtol": 1e-15, "ftol": 1e-15, "gtol": 1e-15})


@pytest.mark.parametrize("method", ["lm", pytest.param("newton", marks=pytest.mark.slow)])
def test_two_sided_bound_pins_a_nonlinear_parameter_as_lmfit_does(method):
    result = gf.fit(DECAY, "normal", (DX, DY), method, init=[1.0, 0.1, 0.0], bounds={"k": (0.0, 0.5)})
    assert result.status == "converged", result.stopped
    assert result.settings["at_bound"] == {"k": "upper"}
    assert result.params["k"] == 0.5
    reference = lmfit_decay(k={"min": 0.0, "max": 0.5})
    np.testing.assert_allclose(result.x, [reference.params[n].value for n in ("a", "k", "c")], rtol=1e-7)
    assert np.all((result.history.params[:, 1] >= 0.0) & (result.history.params[:, 1] <= 0.5))


def test_fixed_parameter_leaves_the_fit_of_the_reduced_model():
    result = gf.fit(DECAY, "normal", (DX, DY), "lm", init=[1.0, 0.1, 0.0], fixed={"c": 0.5})
    assert result.params["c"] == 0.5 and np.all(result.history.params[:, 2] == 0.5)
    reduced = lmfit_decay(c={"value": 0.5, "vary": False})
    np.testing.assert_allclose([result.params["a"], result.params["k"]],
                               [reduced.params["a"].value, reduced.params["k"].value], rtol=1e-8)


def test_a_fixed_parameters_start_may_lie_outside_its_bounds():
    # the start of a fixed parameter is never used; only the free ones must start inside
    given_ = parameters.constraints(DECAY, {"k": (0.0, 1.0), "c": (0.0, 1.0)}, {"k": 0.5})
    u = given_.internal(np.array([[1.0, 5.0, 0.25]]))
    np.testing.assert_allclose(given_.external(u, np), [[1.0, 0.5, 0.25]], rtol=1e-15)
    with pytest.raises(GradfitError, match="init puts c at 5"):
        given_.internal(np.array([[1.0, 0.5, 5.0]]))


@pytest.mark.slow
def test_bounded_fits_from_many_starts():
    starts = np.array([[1.0, 0.1, 0.0], [2.0, 0.3, 1.0], [4.0, 0.45, -1.0]])
    many = gf.fit(DECAY, "normal", (DX, DY), "lm", init=starts, bounds={"k": (0.0, 0.5)})
    assert isinstance(many, MultiFit) and np.all(many.params[:, 1] <= 0.5)
    reference = lmfit_decay(k={"min": 0.0, "max": 0.5})
    for member in many:
        assert member.settings["at_bound"] == {"k": "upper"}
        np.testing.assert_allclose(member.x, [reference.params[n].value for n in ("a", "k", "c")], rtol=1e-7)


# -- bad input: one clear GradfitError, before any step ---------------------------------------------


@pytest.mark.parametrize("options, fragments", [
    ({"bounds": {"k": (1.0, 0.0)}}, ["lower bound of 'k' (1)", "below its upper bound (0)"]),
    ({"bounds": {"k": (0.5, 0.5)}}, ["lower bound of 'k'", "fix it instead"]),
    ({"bounds": {"k": (math.inf, None)}}, ["nothing lies inside"]),
    ({"bounds": {"k": (0.5, 1.0)}}, ["init puts k at 0.1", "outside its bounds [0.5, 1]"]),
    ({"bounds": {"q": (0.0, 1.0)}}, ["bounds names 'q'", "its parameters are a, k, c"]),
    ({"fixed": {"q": 1.0}}, ["fixed names 'q'", "its parameters are a, k, c"]),
    ({"fixed": {"a": 1.0, "k": 1.0, "c": 1.0}}, ["every parameter", "is fixed", "leave at least one free"]),
    ({"fixed": {"k": 2.0}, "bounds": {"k": (0.0, 1.0)}}, ["k is fixed at 2, outside its bounds"]),
    ({"fixed": {"k": "fast"}}, ["fixed value of 'k' must be a number"]),
    ({"fixed": {"k": math.nan}}, ["fixed value of 'k' must be finite"]),
    ({"bounds": {"k": ("a", 1.0)}}, ["bound of 'k' must be a number"]),
    ({"bounds": {"k": (math.nan, 1.0)}}, ["is NaN"]),
    ({"bounds": {"k": 1.0}}, ["must be a pair (lower, upper)"]),
    ({"sigma": np.r_[0.0, np.ones(39)]}, ["sigma must be finite and > 0", "row index 0"]),
    ({"sigma": -1.0}, ["sigma must be finite and > 0"]),
    ({"sigma": np.r_[np.ones(5), np.nan, np.ones(34)]}, ["sigma must be finite and > 0", "nan", "row index 5"]),
    ({"sigma": np.ones(39)}, ["sigma has shape (39,)", "40 examples"]),
    ({"sigma": np.ones((40, 2))}, ["sigma has shape (40, 2)"]),
    ({"sigma": "wide"}, ["sigma must be numbers"]),
    ({"sigma": 1.0, "weights": np.ones(40)}, ["sigma", "or weights, not both"]),
    ({"absolute_sigma": True}, ["give sigma too"]),
    ({"absolute_sigma": True, "weights": np.ones(40)}, ["give sigma, not weights"]),
    ({"absolute_sigma": "yes", "sigma": 1.0}, ["absolute_sigma must be True or False"]),
    ({"weights": np.r_[-1.0, np.ones(39)]}, ["weights must be finite and > 0"]),
    ({"weights": np.ones(41)}, ["weights have shape (41,)"]),
])
def test_bad_input_is_one_clear_error(options, fragments):
    with pytest.raises(GradfitError) as caught:
        gf.fit(DECAY, "normal", (DX, DY), "lm", init=[1.0, 0.1, 0.0], **options)
    message = str(caught.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, message


def test_sigma_is_for_least_squares_only():
    counts = np.round(np.exp(DX / 3))
    with pytest.raises(GradfitError, match="takes weights="):
        gf.fit(DECAY, "poisson", (DX, counts), "newton", init=[1.0, 0.1, 0.0], sigma=1.0)


def test_a_tiny_sigma_says_so_without_a_numpy_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        with pytest.raises(GradfitError, match="overflows"):
            gf.fit(DECAY, "normal", (DX, DY), "lm", init=[1.0, 0.1, 0.0], sigma=1e-200)


def test_a_models_own_start_outside_the_bounds_is_moved_inside_while_a_given_one_is_refused():
    # a formula's parameters start at 1; k in [0, 0.5] leaves that start outside
    t = np.linspace(0.0, 5.0, 30)
    y = 2.5 * np.exp(-0.8 * t) + 0.5
    model = gf.expression("a*exp(-k*t) + c", inputs=["t"])
    result = gf.fit(model, "normal", (t, y), "lm", bounds={"k": (0, 0.5)})
    # the least-squares optimum lies beyond the bound (k = 0.8): the bound holds k
    assert result.params["k"] == pytest.approx(0.5, abs=1e-9)
    assert result.settings["at_bound"] == {"k": "upper"}
    with pytest.raises(gf.GradfitError, match="outside its bounds"):
        gf.fit(model, "normal", (t, y), "lm", init={"a": 1, "k": 1, "c": -2}, bounds={"k": (0, 0.5)})

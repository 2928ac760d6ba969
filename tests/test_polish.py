"""Second-order fits (`gradfit.polish`): Levenberg–Marquardt, trust-region Newton, exact linear least squares.

Every expected number comes from another library or from the maths, never from a run
of gradfit: MINPACK's LM through ``scipy.optimize.least_squares`` and ``curve_fit``
(given the exact Jacobian, by ``jax.jacfwd`` of the same formula written out here),
``scipy.optimize.minimize`` for likelihoods other than least squares, and numpy's
``lstsq`` and statsmodels' OLS / WLS for linear models (Longley's ill-conditioned data
among them).

Each fit compiles once per model, data length and history length (a few seconds on a
small CPU), so the problems share models and data where they can; the two extra curve
families of the table are marked slow.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.optimize import curve_fit, least_squares, minimize

import gradfit as gf
from gradfit.errors import GradfitError
from gradfit.result import MultiFit

pytestmark = pytest.mark.usefixtures("x64")

RNG = np.random.default_rng(20240517)


# -- the curve-fitting problems, each written once as a jax.numpy formula -----------------------------


def decay(x, p):
    return p["a"] * jnp.exp(-p["k"] * x) + p["c"]


def gabor_formula(x, p):
    # the slides' Gabor model with s = 8, written out independently of gradfit.models
    z = p["phi0"] + 0.06 * p["phi1"] * x
    return jnp.sin(z) * jnp.exp(-z * z / 8.0)


def peak(x, p):
    return p["A"] * jnp.exp(-((x - p["mu"]) ** 2) / (2.0 * p["w"] ** 2)) + p["b"]


def rational(x, p):
    return (p["a"] + p["b"] * x) / (1.0 + p["c"] * x + p["d"] * x * x)


@dataclass(frozen=True)
class Problem:
    name: str
    formula: Any
    names: tuple[str, ...]
    x: np.ndarray
    y: np.ndarray
    start: tuple[float, ...]
    model: gf.Model

    @property
    def sigma(self) -> np.ndarray:
        """Per-point standard deviations that change the optimum (not a constant)."""
        return 0.02 + 0.03 * np.abs(np.sin(1.7 * self.x))

    def f(self, x, theta):
        return self.formula(x, dict(zip(self.names, theta)))


def _problem(name, formula, names, x, truth, start, noise, model=None) -> Problem:
    y = np.asarray(formula(x, dict(zip(names, truth)))) + RNG.normal(0.0, noise, len(x))
    model = model or gf.custom(formula, list(names), name=name)
    return Problem(name, formula, tuple(names), x, y, tuple(start), model)


DECAY = _problem("decay", decay, ("a", "k", "c"), np.linspace(0, 5, 40), (3.0, 0.7, 0.5), (1.0, 0.1, 0.0), 0.02)
GABOR_DATA = gf.gabor_data(0)
GABOR = Problem("gabor", gabor_formula, ("phi0", "phi1"), np.asarray(GABOR_DATA.x), np.asarray(GABOR_DATA.y),
                (1.0, 10.0), gf.gabor())
PEAK = _problem("peak", peak, ("A", "mu", "w", "b"), np.linspace(-4, 6, 60), (2.5, 1.2, 0.8, 0.3),
                (2.0, 1.0, 1.0, 0.0), 0.03)
RATIONAL = _problem("rational", rational, ("a", "b", "c", "d"), np.linspace(0, 4, 50), (1.0, 2.0, 0.5, 0.3),
                    (0.8, 1.5, 0.3, 0.2), 0.03)


def minpack(problem: Problem, sigma=None, weights=None, start=None) -> np.ndarray:
    """scipy's MINPACK LM on r = √w (f - y), w = 1/σ², with the exact Jacobian, then Gauss–Newton.

    MINPACK stops once the loss no longer changes in its 15th digit, which leaves the
    parameters of a flat valley some 10⁻⁸ from the optimum (Gabor with σ: 2·10⁻⁸). Three
    Gauss–Newton steps δ = -J⁺r from there reach the optimum to rounding, so the
    reference is the minimiser itself, not where one method happened to stop.
    """
    w = np.ones(len(problem.x)) if sigma is None and weights is None else (
        weights if weights is not None else 1.0 / np.asarray(sigma) ** 2)
    root = np.sqrt(w)

    def residuals(theta):
        return root * (problem.f(problem.x, theta) - problem.y)

    jac = jax.jit(jax.jacfwd(residuals))
    out = least_squares(lambda t: np.asarray(residuals(jnp.asarray(t))), np.array(start or problem.start, float),
                        jac=lambda t: np.asarray(jac(jnp.asarray(t))), method="lm", xtol=1e-15, ftol=1e-15,
                        gtol=1e-15)
    assert out.status > 0, out.message
    theta = jnp.asarray(out.x)
    for _ in range(3):
        theta = theta - jnp.linalg.lstsq(jac(theta), residuals(theta))[0]
    return np.asarray(theta)


def curve_fit_reference(problem: Problem, sigma=None, absolute_sigma=False):
    """scipy's curve_fit (MINPACK LM) with its own sigma, and the exact Jacobian."""
    jac = jax.jit(jax.jacfwd(lambda t: problem.f(problem.x, t)))
    popt, pcov = curve_fit(lambda x, *t: np.asarray(problem.f(x, jnp.asarray(t))), problem.x, problem.y,
                           p0=problem.start, sigma=sigma, absolute_sigma=absolute_sigma,
                           jac=lambda x, *t: np.asarray(jac(jnp.asarray(t))), method="lm", xtol=1e-15,
                           ftol=1e-15, gtol=1e-15)
    return popt, pcov


def lm_fit(problem: Problem, **options):
    return gf.fit(problem.model, "normal", (problem.x, problem.y), "lm", init=list(problem.start), **options)


def assert_close(actual, expected, rtol=1e-8, atol=1e-12):
    np.testing.assert_allclose(np.asarray(actual, float), np.asarray(expected, float), rtol=rtol, atol=atol)


# -- Levenberg–Marquardt against MINPACK --------------------------------------------------------------


def _curve(problem, weighted, slow=False):
    marks = [pytest.mark.slow] if slow else []
    return pytest.param(problem, weighted, id=f"{problem.name}-{'sigma' if weighted else 'plain'}", marks=marks)


# Each problem and weighting compiles a fit of its own; the default run keeps four.
CURVES = [_curve(DECAY, False), _curve(DECAY, True), _curve(GABOR, False), _curve(GABOR, True, slow=True),
          _curve(PEAK, False, slow=True), _curve(PEAK, True, slow=True), _curve(RATIONAL, False, slow=True),
          _curve(RATIONAL, True, slow=True)]


@pytest.mark.parametrize("problem, weighted", CURVES)
def test_lm_reaches_minpacks_optimum(problem, weighted):
    sigma = problem.sigma if weighted else None
    result = lm_fit(problem, sigma=sigma)
    assert result.status == "converged", result.stopped
    assert result.stopped.startswith("converged: Levenberg-Marquardt")
    assert list(result.params) == list(problem.names)
    # ftol = 1e-15 ends the fit where F no longer changes in its 15th digit: in Gabor's flat
    # valley (with σ) that is 1.4·10⁻⁸ from the optimum, as close as MINPACK itself gets (1.7·10⁻⁸)
    assert_close(result.x, minpack(problem, sigma=sigma), rtol=3e-8)
    # curve_fit itself stops where the loss is flat to rounding: within 10⁻⁷ of the optimum
    assert_close(result.x, curve_fit_reference(problem, sigma=sigma)[0], rtol=1e-7)


def test_weights_are_scipys_residuals_times_root_w():
    w = RNG.uniform(0.2, 5.0, len(DECAY.x))
    weighted = lm_fit(DECAY, weights=w)
    assert weighted.status == "converged", weighted.stopped
    assert_close(weighted.x, minpack(DECAY, weights=w))
    # weights w are curve_fit's sigma = 1/√w: the same optimum and the same loss Σ w (f - y)²
    by_sigma = lm_fit(DECAY, sigma=1.0 / np.sqrt(w))
    assert_close(by_sigma.x, weighted.x, rtol=1e-10)
    residuals = DECAY.f(DECAY.x, weighted.x) - DECAY.y
    assert weighted.loss == pytest.approx(float(np.sum(w * residuals**2)), rel=1e-12)


@pytest.mark.parametrize("absolute_sigma", [False, True])
def test_sigma_gives_curve_fits_standard_errors(absolute_sigma):
    result = lm_fit(DECAY, sigma=DECAY.sigma, absolute_sigma=absolute_sigma)
    assert result.settings["absolute_sigma"] is absolute_sigma
    popt, pcov = curve_fit_reference(DECAY, sigma=DECAY.sigma, absolute_sigma=absolute_sigma)
    assert_close(result.x, popt)
    inferred = gf.infer(result).inference
    assert_close(inferred.stderr, np.sqrt(np.diag(pcov)), rtol=1e-6)


def test_parameters_of_very_different_scales_converge():
    # a ≈ 2·10⁴ and k ≈ 3·10⁻⁴: eight orders of magnitude apart, which Marquardt's
    # column scaling makes no harder than a ≈ k ≈ 1
    x = np.linspace(0, 5000, 40)
    y = 2e4 * np.exp(-3e-4 * x) * (1.0 + 0.01 * np.sin(x / 200.0))
    problem = Problem("scales", lambda x, p: p["a"] * jnp.exp(-p["k"] * x), ("a", "k"), x, y, (1e4, 1e-4),
                      gf.custom(lambda x, p: p["a"] * jnp.exp(-p["k"] * x), ["a", "k"], name="scales"))
    result = lm_fit(problem)
    assert result.status == "converged", result.stopped
    assert_close(result.x, minpack(problem))


def test_zero_residual_problem_stops_at_the_exact_parameters():
    truth = np.array([3.0, 0.7, 0.5])
    exact = Problem("decay", decay, DECAY.names, DECAY.x, np.asarray(decay(DECAY.x, dict(zip(DECAY.names, truth)))),
                    DECAY.start, DECAY.model)
    result = lm_fit(exact)
    assert result.status == "converged", result.stopped
    assert "residuals are all zero" in result.stopped or result.stopped.startswith("converged")
    assert_close(result.x, truth, rtol=1e-12)
    assert result.loss <= 1e-24


def test_many_starts_each_equal_the_fit_from_that_start():
    starts = np.array([[1.0, 10.0], [0.5, 12.0], [-1.0, 8.0], [2.0, 4.0]])
    many = gf.fit(GABOR.model, "normal", GABOR_DATA, "lm", init=starts)
    assert isinstance(many, MultiFit) and len(many) == len(starts)
    for s, start in enumerate(starts):
        one = gf.fit(GABOR.model, "normal", GABOR_DATA, "lm", init=start)
        member = many[s]
        assert member.status == one.status and member.steps == one.steps
        assert_close(member.x, one.x, rtol=1e-10)
        assert_close(member.history.params[0], start, rtol=0, atol=0)
        assert many.losses[s] == pytest.approx(one.loss, rel=1e-10)
        np.testing.assert_allclose(many.params[s], one.x, rtol=1e-10)


@pytest.mark.parametrize("how", ["steps", "max_iter"])
def test_the_iteration_cap_stops_with_max_steps(how):
    options = {"steps": 3} if how == "steps" else {}
    method = "lm" if how == "steps" else gf.lm(max_iter=3)
    result = gf.fit(DECAY.model, "normal", (DECAY.x, DECAY.y), method, init=list(DECAY.start), **options)
    assert result.status == "max_steps"
    assert "cap of 3 iterations" in result.stopped
    assert result.settings["iterations"] == 3 and result.steps <= 3
    assert len(result.history.loss) == result.steps + 1


def test_history_runs_from_the_start_to_the_result_downhill():
    result = lm_fit(DECAY)
    h = result.history
    assert_close(h.params[0], DECAY.start, rtol=0, atol=0)
    assert_close(h.params[-1], result.x, rtol=0, atol=0)
    assert h.step[0] == 0 and h.step[-1] == result.steps and np.all(np.diff(h.step) > 0)
    assert h.loss[-1] == result.loss and h.grad_norm[-1] == result.grad_norm
    # each row's loss is the least-squares loss Σ (f - y)² at that row's parameters
    expected = [float(np.sum((DECAY.f(DECAY.x, p) - DECAY.y) ** 2)) for p in h.params]
    assert_close(h.loss, expected, rtol=1e-12)
    # taken steps never raise the loss (beyond its rounding)
    assert np.all(np.diff(h.loss) <= 16 * np.finfo(float).eps * h.loss[:-1])


def test_float32_fits_to_single_precision():
    result = lm_fit(DECAY, dtype="float32")
    assert result.status == "converged", result.stopped
    assert result.settings["dtype"] == "float32"
    assert_close(result.x, minpack(DECAY), rtol=1e-4, atol=1e-5)


def test_float32_compiles_without_warnings():
    def decay32(x, p):  # a model of this test alone, so the fit compiles here
        return p["a"] * jnp.exp(-p["k"] * x) + p["c"]

    model = gf.custom(decay32, ["a", "k", "c"])
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        gf.fit(model, "normal", (DECAY.x, DECAY.y), "lm", init=list(DECAY.start), dtype="float32")


# -- trust-region Newton against scipy.optimize.minimize ------------------------------------------------


def log_rate(x, p):
    return p["b0"] + p["b1"] * jnp.sin(p["w"] * x)


def logistic(x, p):
    return (x - p["m"]) / p["s"]


POISSON_X = np.linspace(0, 6, 80)
POISSON_Y = RNG.poisson(np.exp(1.0 + 0.8 * np.sin(1.3 * POISSON_X))).astype(float)
BERNOULLI_X = np.linspace(-3, 3, 60)
BERNOULLI_Y = (RNG.uniform(size=60) < 1.0 / (1.0 + np.exp(-(BERNOULLI_X - 0.4) / 0.7))).astype(float)
RATE = gf.custom(log_rate, ["b0", "b1", "w"])
LOGISTIC = gf.custom(logistic, ["m", "s"])


def poisson_nll(theta):
    f = log_rate(POISSON_X, dict(zip(("b0", "b1", "w"), theta)))
    return jnp.sum(jnp.exp(f) - POISSON_Y * f)


def bernoulli_nll(theta):
    f = logistic(BERNOULLI_X, dict(zip(("m", "s"), theta)))
    return jnp.sum(jax.nn.softplus(f) - BERNOULLI_Y * f)


def bfgs(nll, start) -> np.ndarray:
    value_and_grad = jax.jit(jax.value_and_grad(nll))
    out = minimize(lambda t: tuple(np.asarray(v) for v in value_and_grad(jnp.asarray(t))), np.array(start, float),
                   jac=True, method="BFGS", options={"gtol": 1e-11, "maxiter": 10_000})
    return out.x


LIKELIHOODS = {
    "poisson": (RATE, "poisson", POISSON_X, POISSON_Y, poisson_nll, [0.5, 0.5, 1.2]),
    "bernoulli": (LOGISTIC, "bernoulli", BERNOULLI_X, BERNOULLI_Y, bernoulli_nll, [0.0, 1.0]),
}


@pytest.mark.parametrize("case", list(LIKELIHOODS))
def test_trust_region_newton_reaches_bfgs_optimum(case):
    model, loss, x, y, nll, start = LIKELIHOODS[case]
    result = gf.fit(model, loss, (x, y), "newton", init=start)
    assert result.status == "converged", result.stopped
    assert "trust-region Newton" in result.stopped
    reference = bfgs(nll, start)
    assert_close(result.x, reference, rtol=1e-7)
    # and it is at least as stationary as BFGS's answer
    grad = jax.grad(nll)
    assert np.linalg.norm(grad(jnp.asarray(result.x))) <= max(np.linalg.norm(grad(jnp.asarray(reference))), 1e-8)


def test_polish_finishes_a_likelihood_with_trust_region_newton():
    model, loss, x, y, nll, start = LIKELIHOODS["poisson"]
    result = gf.fit(model, loss, (x, y), gf.adam(0.05), init=start, steps=200, polish=True)
    assert result.settings["polish"]["name"] == "newton"
    assert result.status == "converged", result.stopped
    assert_close(result.x, bfgs(nll, start), rtol=1e-7)
    # the polished iterates follow the first-order ones in one history
    assert len(result.history.loss) > 200 and result.history.loss[-1] == result.loss


@pytest.mark.slow
def test_polish_finishes_least_squares_with_lm():
    result = gf.fit(DECAY.model, "normal", (DECAY.x, DECAY.y), gf.adam(0.05), init=list(DECAY.start), steps=50,
                    polish=True)
    assert result.settings["polish"]["name"] == "lm"
    assert_close(result.x, minpack(DECAY))


def _gabor_loss(theta):
    return jnp.sum((gabor_formula(GABOR.x, dict(zip(GABOR.names, theta))) - GABOR.y) ** 2)


@pytest.mark.parametrize("start", [[-1.0, 8.0], [0.0, 5.0]], ids=["indefinite", "negative-definite"])
def test_newton_descends_where_the_hessian_is_not_positive(start):
    hessian = jax.hessian(_gabor_loss)
    assert np.linalg.eigvalsh(np.asarray(hessian(jnp.asarray(start))))[0] < 0  # the premise
    result = gf.fit(GABOR.model, "normal", GABOR_DATA, "newton", init=start)
    assert result.status == "converged" and result.point == "minimum", result.stopped
    h = result.history
    assert h.loss[1] < h.loss[0]
    assert np.all(np.diff(h.loss) <= 16 * np.finfo(float).eps * h.loss[:-1])
    assert np.all(np.linalg.eigvalsh(np.asarray(hessian(jnp.asarray(result.x)))) > 0)
    # the minimum of that basin, as MINPACK finds it from where Newton ended
    assert_close(result.x, minpack(GABOR, start=tuple(result.x)), rtol=1e-7)


def test_lm_refuses_a_likelihood_other_than_least_squares():
    model, loss, x, y, _, start = LIKELIHOODS["poisson"]
    for how in ({"optimizer": "lm"}, {"optimizer": gf.adam(0.1), "polish": gf.lm()}):
        with pytest.raises(GradfitError, match="least squares") as caught:
            gf.fit(model, loss, (x, y), init=start, **how)
        assert "polish" in str(caught.value)  # says what to use instead


@pytest.mark.parametrize("options, fragment", [
    ({"batch_size": 10}, "batch size"),
    ({"epochs": 3}, "epochs"),
    ({"checkpoint": "never-written.ckpt"}, "checkpoint"),
    ({"steps": 0}, "steps"),
])
def test_second_order_options_it_cannot_take(options, fragment, tmp_path):
    if "checkpoint" in options:
        options = {"checkpoint": tmp_path / options["checkpoint"]}
    with pytest.raises(GradfitError, match=fragment):
        gf.fit(DECAY.model, "normal", (DECAY.x, DECAY.y), "lm", init=list(DECAY.start), **options)
    assert not (tmp_path / "never-written.ckpt").exists()


# -- exact linear least squares --------------------------------------------------------------------------


def _table(n=50, seed=3):
    import pandas as pd

    rng = np.random.default_rng(seed)
    age, dose, weight = rng.uniform(20, 80, n), rng.uniform(0, 5, n), rng.normal(70, 12, n)
    y = 1.5 + 0.02 * age - 0.8 * dose + 0.05 * weight + rng.normal(0, 0.3, n)
    return pd.DataFrame({"age": age, "dose": dose, "weight": weight, "response": y})


def _ols(table, target, weights=None):
    import statsmodels.api as sm

    inputs = sm.add_constant(table.drop(columns=[target]))
    model = sm.OLS(table[target], inputs) if weights is None else sm.WLS(table[target], inputs, weights=weights)
    return model.fit().params.to_numpy()


def lre(actual, expected) -> np.ndarray:
    """Log relative error: the number of matching significant digits (NIST's measure)."""
    actual, expected = np.asarray(actual, float), np.asarray(expected, float)
    with np.errstate(divide="ignore"):
        return -np.log10(np.abs(actual - expected) / np.abs(expected))


def test_linear_least_squares_is_exact_and_named_after_the_columns():
    table = _table()
    result = gf.fit("linear", "normal", table, "lm", init={"Intercept": 1.0, "age": 0.0, "dose": 0.0, "weight": 0.0})
    assert list(result.params) == ["Intercept", "age", "dose", "weight"]
    assert result.status == "converged" and "linear least squares" in result.stopped
    design = np.column_stack([np.ones(len(table)), table[["age", "dose", "weight"]].to_numpy()])
    lstsq = np.linalg.lstsq(design, table["response"].to_numpy(), rcond=None)[0]
    assert_close(result.x, lstsq, rtol=1e-10)
    assert_close(result.x, _ols(table, "response"), rtol=1e-10)
    # the history: the start, then the solution, whose loss is the residual sum of squares
    h = result.history
    assert len(h.loss) == 2 and h.step[-1] == result.steps
    assert_close(h.params[0], [1.0, 0.0, 0.0, 0.0], rtol=0, atol=0)
    rss = float(np.sum((design @ lstsq - table["response"].to_numpy()) ** 2))
    assert result.loss == pytest.approx(rss, rel=1e-10)


def test_weighted_linear_least_squares_equals_wls():
    table = _table()
    sigma = np.linspace(0.2, 1.0, len(table))
    result = gf.fit("linear", "normal", table, "lm", sigma=sigma)
    assert_close(result.x, _ols(table, "response", weights=1.0 / sigma**2), rtol=1e-10)


def test_builtin_linear_data_keeps_phi_names():
    data = gf.linear_data(0)
    result = gf.fit("linear", "normal", data, "lm")
    assert list(result.params) == ["phi0", "phi1"]
    design = np.column_stack([np.ones(len(data)), np.asarray(data.x)])
    assert_close(result.x, np.linalg.lstsq(design, np.asarray(data.y), rcond=None)[0], rtol=1e-10)


def test_linear_least_squares_from_many_starts():
    table = _table()
    many = gf.fit("linear", "normal", table, "lm", init=np.arange(12.0).reshape(3, 4))
    assert isinstance(many, MultiFit) and len(many) == 3
    expected = _ols(table, "response")
    for s, member in enumerate(many):
        assert_close(member.x, expected, rtol=1e-10)
        assert_close(member.history.params[0], np.arange(4.0) + 4 * s, rtol=0, atol=0)


def test_longley_to_seven_digits(longley):
    table = longley
    result = gf.fit("linear", "normal", table, "lm")
    assert list(result.params) == ["Intercept", *table.columns[:-1]]
    digits = lre(result.x, _ols(table, "TOTEMP"))
    assert np.all(digits >= 7), digits

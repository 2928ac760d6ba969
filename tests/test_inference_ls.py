"""Standard errors as least-squares users expect them, and predictions with their uncertainty.

References: statsmodels (OLS, WLS, GLM, get_prediction), scipy's curve_fit (absolute_sigma
False and True), lmfit, NIST's certified standard deviations, and closed forms.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re

import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats
from scipy.optimize import curve_fit
from typer.testing import CliRunner

import gradfit as gf
from gradfit.cli import app
from gradfit.inference import evaluate

sm = pytest.importorskip("statsmodels.api")

RTOL = 1e-6  # the agreement asked of every reference


# -- linear least squares: the OLS table -----------------------------------------------------------


@pytest.fixture(scope="module")
def plane():
    rng = np.random.default_rng(31)
    x = rng.normal(size=(40, 2)) * [1.0, 3.0]
    y = 0.7 + 1.2 * x[:, 0] - 0.05 * x[:, 1] + rng.normal(0, 0.4, 40)
    return gf.Dataset(x, y)


@pytest.fixture(scope="module")
def plane_fit(plane):
    return gf.infer(gf.fit(gf.linear(2), gf.normal(), plane, "lm"))  # model, loss and data from the fit


@pytest.fixture(scope="module")
def ols(plane):
    return sm.OLS(plane.y, sm.add_constant(plane.x)).fit()


def test_linear_fit_reproduces_the_ols_table(plane_fit, ols):
    inf = plane_fit.inference
    assert inf.stationary and inf.covariance_form == "gauss-newton" and inf.dist == "t"
    assert inf.df == ols.df_resid == 37
    np.testing.assert_allclose(plane_fit.x, ols.params, rtol=1e-9)
    np.testing.assert_allclose(inf.stderr, ols.bse, rtol=RTOL)
    np.testing.assert_allclose(inf.covariance, ols.cov_params(), rtol=RTOL)
    np.testing.assert_allclose(inf.tvalues, ols.tvalues, rtol=RTOL)
    np.testing.assert_allclose(inf.pvalues, ols.pvalues, rtol=RTOL)
    np.testing.assert_allclose(inf.wald, ols.conf_int(alpha=0.05), rtol=RTOL)
    for ours, theirs in ((inf.loglik, ols.llf), (inf.aic, ols.aic), (inf.bic, ols.bic), (inf.rsquared, ols.rsquared),
                         (inf.scale, ols.scale)):
        assert ours == pytest.approx(theirs, rel=1e-9)


def test_weighted_linear_fit_reproduces_wls(plane):
    w = np.linspace(0.5, 4.0, len(plane))
    wls = sm.WLS(plane.y, sm.add_constant(plane.x), weights=w).fit()
    inf = evaluate(gf.linear(2), gf.normal(), dataclasses.replace(plane, weights=w), np.asarray(wls.params))
    assert inf.stationary and inf.weighted
    np.testing.assert_allclose(inf.stderr, wls.bse, rtol=RTOL)
    np.testing.assert_allclose(inf.tvalues, wls.tvalues, rtol=RTOL)
    np.testing.assert_allclose(inf.pvalues, wls.pvalues, rtol=RTOL)
    np.testing.assert_allclose(inf.wald, wls.conf_int(), rtol=RTOL)
    for ours, theirs in ((inf.loglik, wls.llf), (inf.aic, wls.aic), (inf.rsquared, wls.rsquared),
                         (inf.chisqr, wls.ssr)):
        assert ours == pytest.approx(theirs, rel=1e-9)


@pytest.mark.parametrize("absolute", [False, True])
def test_weighted_profile_intervals_are_closed_form(plane, absolute):
    # χ²(t) = χ² + (t - θ̂)²/[(XᵀWX)⁻¹]_jj; the interval: n log(χ²(t)/χ²) = z², or χ²(t) - χ² = z² with σ_i known
    w = np.linspace(0.5, 4.0, len(plane))
    x = sm.add_constant(plane.x)
    wls = sm.WLS(plane.y, x, weights=w).fit()
    inf = evaluate(gf.linear(2), gf.normal(), dataclasses.replace(plane, weights=w), np.asarray(wls.params),
                   absolute_sigma=absolute, profile="all")
    inv = np.linalg.inv(x.T @ (w[:, None] * x))
    z = stats.norm.ppf(0.975)
    for j, name in enumerate(inf.names):
        if absolute:
            half = z * math.sqrt(inv[j, j])
            np.testing.assert_allclose(inf.wald[j], [wls.params[j] - half, wls.params[j] + half], rtol=1e-9)
        else:
            half = math.sqrt(wls.ssr * (math.exp(z**2 / len(w)) - 1.0) * inv[j, j])
        np.testing.assert_allclose(inf.profile[name], [wls.params[j] - half, wls.params[j] + half], rtol=1e-8)


def test_likelihood_fits_use_z(rng):
    x = rng.normal(size=(150, 2))
    y = rng.poisson(np.exp(0.2 + x @ [0.5, -0.3])).astype(float)
    ref = sm.GLM(y, sm.add_constant(x), family=sm.families.Poisson()).fit(tol=1e-13)
    inf = evaluate(gf.linear(2), gf.poisson(), (x, y), np.asarray(ref.params))
    assert inf.dist == "z" and inf.df is None and inf.covariance_form == "observed"
    np.testing.assert_allclose(inf.tvalues, ref.tvalues, rtol=RTOL)
    np.testing.assert_allclose(inf.pvalues, ref.pvalues, rtol=RTOL)
    np.testing.assert_allclose(inf.wald, ref.conf_int(), rtol=RTOL)


def test_fixed_sigma_is_gauss_newton_with_z(plane):
    x = sm.add_constant(plane.x)
    beta = np.linalg.lstsq(x, plane.y, rcond=None)[0]
    inf = evaluate(gf.linear(2), gf.normal(sigma=0.5), plane, beta)
    assert inf.covariance_form == "gauss-newton, fixed sigma" and inf.dist == "z"
    np.testing.assert_allclose(inf.covariance, 0.25 * np.linalg.inv(x.T @ x), rtol=1e-10)
    se = np.sqrt(np.diag(0.25 * np.linalg.inv(x.T @ x)))
    np.testing.assert_allclose(inf.pvalues, 2 * stats.norm.sf(np.abs(beta / se)), rtol=1e-9)


# -- nonlinear weighted least squares: curve_fit and lmfit ------------------------------------------


def _decay(x, a, b, c):
    return a * np.exp(-b * x) + c


def _decay_jac(x, a, b, c):
    return np.column_stack([np.exp(-b * x), -a * x * np.exp(-b * x), np.ones_like(x)])


DECAY = gf.custom(lambda x, p: p["a"] * jnp.exp(-p["b"] * x) + p["c"], ["a", "b", "c"])


@pytest.fixture(scope="module")
def decay():
    rng = np.random.default_rng(32)
    x = np.linspace(0.0, 4.0, 40)
    sigma = 0.05 + 0.1 * rng.uniform(size=40)
    y = _decay(x, 2.0, 1.3, 0.5) + rng.normal(0.0, sigma)
    return x, y, sigma


@pytest.mark.parametrize("absolute", [False, True])
def test_weighted_fit_matches_curve_fit(decay, absolute):
    x, y, sigma = decay
    # curve_fit with the exact Jacobian, so that the reference is exact to rounding
    popt, pcov = curve_fit(_decay, x, y, p0=[1.0, 1.0, 0.0], sigma=sigma, absolute_sigma=absolute, jac=_decay_jac,
                           ftol=1e-15, xtol=1e-15, gtol=1e-15)
    fit = gf.infer(gf.fit(DECAY, "normal", (x, y), "lm", sigma=sigma, absolute_sigma=absolute,
                          init={"a": 1.0, "b": 1.0, "c": 0.0}))
    inf = fit.inference
    np.testing.assert_allclose(fit.x, popt, rtol=1e-8)
    np.testing.assert_allclose(inf.covariance, pcov, rtol=RTOL)
    assert inf.covariance_form == ("gauss-newton, absolute sigma" if absolute else "gauss-newton")
    assert inf.dist == ("z" if absolute else "t")
    # at the very same point the two agree to rounding
    same = evaluate(DECAY, gf.normal(), gf.Dataset(x, y, weights=1 / sigma**2), popt, absolute_sigma=absolute)
    np.testing.assert_allclose(same.covariance, pcov, rtol=1e-12)


def test_weighted_fit_matches_lmfit(decay):
    lmfit = pytest.importorskip("lmfit")
    x, y, sigma = decay

    def residual(p):
        return (_decay(x, p["a"].value, p["b"].value, p["c"].value) - y) / sigma

    def jacobian(p):
        return _decay_jac(x, p["a"].value, p["b"].value, p["c"].value) / sigma[:, None]

    start = lmfit.Parameters()
    for name, value in (("a", 1.0), ("b", 1.0), ("c", 0.0)):
        start.add(name, value=value)
    ref = lmfit.minimize(residual, start, method="leastsq", Dfun=jacobian, xtol=1e-15, ftol=1e-15)
    fit = gf.infer(gf.fit(DECAY, "normal", (x, y), "lm", sigma=sigma, init={"a": 1.0, "b": 1.0, "c": 0.0}))
    inf = fit.inference
    np.testing.assert_allclose(fit.x, [ref.params[n].value for n in "abc"], rtol=1e-8)
    np.testing.assert_allclose(inf.stderr, [ref.params[n].stderr for n in "abc"], rtol=RTOL)
    np.testing.assert_allclose(inf.covariance, ref.covar, rtol=RTOL)
    assert inf.chisqr == pytest.approx(ref.chisqr, rel=1e-9) and inf.redchi == pytest.approx(ref.redchi, rel=1e-9)


# -- NIST's certified standard deviations, and scale-free decisions ---------------------------------


NIST = {
    "MGH10": (lambda x, b: b[0] * jnp.exp(b[1] / (x + b[2]))),
    "Bennett5": (lambda x, b: b[0] * (b[1] + x) ** (-1 / b[2])),
    "Thurber": (lambda x, b: (b[0] + b[1] * x + b[2] * x**2 + b[3] * x**3) / (1 + b[4] * x + b[5] * x**2
                                                                              + b[6] * x**3)),
    "Eckerle4": (lambda x, b: (b[0] / b[1]) * jnp.exp(-0.5 * ((x - b[2]) / b[1]) ** 2)),
    "MGH09": (lambda x, b: b[0] * (x**2 + x * b[1]) / (x**2 + x * b[2] + b[3])),
    "Rat43": (lambda x, b: b[0] / (1 + jnp.exp(b[1] - b[2] * x)) ** (1 / b[3])),
    "BoxBOD": (lambda x, b: b[0] * (1 - jnp.exp(-b[1] * x))),
    "Lanczos3": (lambda x, b: b[0] * jnp.exp(-b[1] * x) + b[2] * jnp.exp(-b[3] * x) + b[4] * jnp.exp(-b[5] * x)),
}


def _nist(folder, name):
    """(start 2, certified values, certified standard deviations, x, y) of a NIST StRD file."""
    lines = (folder / f"{name}.dat").read_text().splitlines()
    rows = [m.groups() for m in (re.match(r"\s*b\d+\s*=\s*(\S+)\s+(\S+)\s+(\S+)\s+(\S+)", t) for t in lines) if m]
    table = np.array(rows, dtype=float)
    first = next(i for i, t in enumerate(lines) if re.match(r"\s*Data:\s+y\s", t))
    data = np.array([t.split() for t in lines[first + 1:] if t.strip()], dtype=float)
    return table[:, 1], table[:, 2], table[:, 3], data[:, 1], data[:, 0]


def _nist_model(name, size):
    names = [f"b{i + 1}" for i in range(size)]
    return gf.custom(lambda x, p: NIST[name](x, [p[n] for n in names]), names)


def _lre(ours, certified):
    return float(np.min(-np.log10(np.abs(np.asarray(ours) - certified) / np.abs(certified))))


@pytest.mark.parametrize("name", list(NIST))
def test_certified_standard_deviations(shared_data, name):
    _, value, sd, x, y = _nist(shared_data("nist", f"{name}.dat"), name)
    model = _nist_model(name, len(value))
    inf = evaluate(model, gf.normal(), (x, y), value)
    assert inf.stationary, inf.message
    assert _lre(inf.stderr, sd) >= 8.0  # NIST's form is σ̂²(JᵀJ)⁻¹: the default
    observed = evaluate(model, gf.normal(), (x, y), value, covariance="observed")
    assert observed.stationary and _lre(observed.stderr, sd) < 5.0  # H⁻¹ is a different, nearby matrix


def test_mgh10_fit_gets_standard_errors(shared_data):
    # b = 0.0056, 6181, 345: an unscaled Hessian of condition ~1e16, yet a well-determined fit
    start, value, sd, x, y = _nist(shared_data("nist", "MGH10.dat"), "MGH10")
    model = _nist_model("MGH10", 3)
    fit = gf.infer(gf.fit(model, "normal", (x, y), "lm", init=start, steps=1000))
    assert _lre(fit.x, value) >= 6.0
    assert fit.inference.stationary, fit.inference.message
    assert _lre(fit.inference.stderr, sd) >= 5.0


def test_decisions_do_not_depend_on_units(plane):
    scaled = dataclasses.replace(plane, x=plane.x * [1e-4, 1e5])
    ols = sm.OLS(scaled.y, sm.add_constant(scaled.x)).fit()  # coefficients ~1e4 and ~1e-6
    for form in ("gauss-newton", "observed"):
        inf = evaluate(gf.linear(2), gf.normal(), scaled, np.asarray(ols.params), covariance=form)
        assert inf.stationary, inf.message
        np.testing.assert_allclose(inf.stderr, ols.bse, rtol=RTOL)
        np.testing.assert_allclose(inf.tvalues, ols.tvalues, rtol=RTOL)


def test_non_identified_product_is_named(plane):
    product = gf.custom(lambda x, p: p["a"] * p["b"] * x + p["c"], ["a", "b", "c"])
    x = plane.x[:, 0]
    slope, intercept = np.polyfit(x, plane.y, 1)
    for form, what in (("auto", "Gauss-Newton information"), ("observed", "Hessian")):
        inf = evaluate(product, gf.normal(), (x, plane.y), [slope / 4, 4.0, intercept], covariance=form)
        assert inf.stderr is None and what in inf.message and "singular" in inf.message
        assert "(a, b)" in inf.message


# -- fixed parameters and parameters at a bound -------------------------------------------------------


def test_fixed_parameter_is_not_estimated(plane):
    x, y = plane.x[:, 0], plane.y
    fit = gf.infer(gf.fit(gf.linear(1), gf.normal(), (x, y), "lm", fixed={"phi0": 1.0}), profile="phi1")
    inf = fit.inference
    ref = sm.OLS(y - 1.0, x).fit()  # the intercept held at 1: one coefficient estimated
    assert inf.k == 1 and inf.df == ref.df_resid == 39 and inf.excluded == {"phi0": "fixed"}
    np.testing.assert_allclose(fit.x[1], ref.params[0], rtol=1e-9)
    assert math.isnan(inf.stderr[0]) and math.isnan(inf.pvalues[0]) and np.isnan(inf.wald[0]).all()
    for ours, theirs in ((inf.stderr[1], ref.bse[0]), (inf.tvalues[1], ref.tvalues[0]),
                         (inf.pvalues[1], ref.pvalues[0]), (inf.aic, ref.aic), (inf.loglik, ref.llf)):
        assert ours == pytest.approx(theirs, rel=RTOL)
    # the profile keeps phi0 at 1: n log(RSS(t)/RSS) = z², RSS(t) = RSS + (t - θ̂)² Σx²
    z = stats.norm.ppf(0.975)
    half = math.sqrt(ref.ssr * (math.exp(z**2 / 40) - 1.0) / np.sum(x * x))
    np.testing.assert_allclose(inf.profile["phi1"], [fit.x[1] - half, fit.x[1] + half], rtol=1e-8)
    d = json.loads(fit.to_json())
    assert d["stderr"]["phi0"] is None and d["pvalues"]["phi0"] is None and d["stderr"]["phi1"] > 0
    text = gf.fit_report(fit)
    assert re.search(r"phi0:\s+1 \(fixed\)", text) and "# variables        = 1 (1 fixed)" in text
    with pytest.raises(gf.GradfitError, match="phi0 .fixed."):
        gf.infer(fit, profile="phi0")


def test_parameter_at_a_bound_leaves_the_covariance(plane):
    x, y = plane.x, plane.y
    fit = gf.infer(gf.fit(gf.linear(2), gf.normal(), (x, y), "lm", bounds={"phi2": (0.0, None)}))
    inf = fit.inference
    assert fit.settings["at_bound"] == {"phi2": "lower"} and inf.excluded == {"phi2": "at lower bound"}
    assert fit.x[2] == pytest.approx(0.0, abs=1e-8)
    # the active set: phi2 held at 0; σ̂² over n - 3, as phi2 was estimated (and found on its bound)
    ref = sm.OLS(y, sm.add_constant(x[:, 0])).fit()
    np.testing.assert_allclose(fit.x[:2], ref.params, rtol=1e-6)
    np.testing.assert_allclose(inf.stderr[:2], ref.bse * math.sqrt(ref.df_resid / (len(y) - 3)), rtol=RTOL)
    assert math.isnan(inf.stderr[2]) and inf.k == 3
    assert "(at lower bound)" in gf.fit_report(fit)


# -- JSON, reports, errors ------------------------------------------------------------------------------


def test_json_round_trips_t_and_p(plane_fit):
    d = json.loads(plane_fit.to_json())
    assert list(d["tvalues"]) == list(d["pvalues"]) == ["phi0", "phi1", "phi2"]
    assert d["inference"]["df"] == 37 and d["inference"]["dist"] == "t"
    back = gf.FitResult.from_json(plane_fit.to_json())
    assert back == plane_fit
    for name in ("tvalues", "pvalues", "stderr", "wald"):
        np.testing.assert_array_equal(getattr(back.inference, name), getattr(plane_fit.inference, name))
    # a file written before t and p were recorded still loads, and reports without them
    old = {k: v for k, v in d.items() if k not in ("tvalues", "pvalues")}
    old["inference"] = {k: v for k, v in d["inference"].items()
                        if k not in ("df", "dist", "covariance_form", "weighted", "excluded")}
    legacy = gf.FitResult.from_dict(old)
    assert legacy.inference.tvalues is None and legacy.inference.dist == "z"
    assert "+/-" in gf.fit_report(legacy)


def test_report_states_the_form_and_the_test(plane_fit):
    text = gf.fit_report(plane_fit)
    assert "standard errors    = σ̂²(JᵀJ)⁻¹ (Gauss-Newton, σ̂ from the residuals)" in text
    assert "Student t with 37 degrees of freedom, 95%" in text
    line = next(t for t in text.splitlines() if t.strip().startswith("phi1:"))
    inf = plane_fit.inference
    assert f"t = {inf.tvalues[1]:.4g}" in line and f"p = {inf.pvalues[1]:.3g}" in line


def test_cli_report_has_t_and_p():
    result = CliRunner().invoke(app, ["fit", "--model", "linear"])
    assert result.exit_code == 0, result.output
    data = gf.linear_data(0)
    ols = sm.OLS(data.y, sm.add_constant(data.x)).fit()
    out = result.stdout
    assert "t value" in out and "P>|t|" in out and "σ̂²(JᵀJ)⁻¹" in out and "Student t with 18" in out
    row = next(t for t in out.splitlines() if t.startswith("phi1"))
    assert f"{ols.tvalues[1]:.4g}" in row and f"{ols.pvalues[1]:.3g}" in row


def test_infer_needs_the_model_without_a_source(plane_fit, plane):
    bare = gf.FitResult.from_json(plane_fit.to_json())
    with pytest.raises(gf.GradfitError, match=r"pass the model, loss, data, as gf.infer\(result, model, loss, data\)"):
        gf.infer(bare)
    again = gf.infer(bare, gf.linear(2), gf.normal(), plane)
    np.testing.assert_allclose(again.inference.stderr, plane_fit.inference.stderr, rtol=1e-12)


def test_covariance_choices_are_checked(plane_fit, rng):
    with pytest.raises(gf.GradfitError, match="unknown covariance 'sandwich'"):
        gf.infer(plane_fit, covariance="sandwich")
    y = rng.poisson(2.0, 30).astype(float)
    with pytest.raises(gf.GradfitError, match="Gauss-Newton covariance is for the normal loss"):
        evaluate(gf.linear(1), gf.poisson(), (rng.normal(size=30), y), [0.7, 0.0], covariance="gauss-newton")


# -- predictions --------------------------------------------------------------------------------------


def test_predictions_match_statsmodels(plane_fit, ols):
    x_new = np.array([[0.0, 0.0], [1.5, -2.0], [-3.0, 6.0]])
    frame = ols.get_prediction(sm.add_constant(x_new, has_constant="add")).summary_frame(alpha=0.05)
    mean = gf.predict(plane_fit, x_new)
    np.testing.assert_allclose(mean, frame["mean"], rtol=1e-9)
    conf = plane_fit.predict(x_new, interval="confidence")
    np.testing.assert_allclose(conf.stderr, frame["mean_se"], rtol=RTOL)
    np.testing.assert_allclose(conf.lower, frame["mean_ci_lower"], rtol=RTOL)
    np.testing.assert_allclose(conf.upper, frame["mean_ci_upper"], rtol=RTOL)
    obs = plane_fit.predict(x_new, interval="prediction")
    np.testing.assert_allclose(obs.lower, frame["obs_ci_lower"], rtol=RTOL)
    np.testing.assert_allclose(obs.upper, frame["obs_ci_upper"], rtol=RTOL)


@pytest.mark.parametrize("absolute", [False, True])
def test_nonlinear_predictions_by_the_delta_method(decay, absolute):
    x, y, sigma = decay
    popt, pcov = curve_fit(_decay, x, y, p0=[1.0, 1.0, 0.0], sigma=sigma, absolute_sigma=absolute, jac=_decay_jac,
                           ftol=1e-15, xtol=1e-15, gtol=1e-15)
    fit = gf.fit(DECAY, "normal", (x, y), "lm", sigma=sigma, absolute_sigma=absolute,
                 init={"a": 1.0, "b": 1.0, "c": 0.0})
    x_new = np.array([0.25, 1.0, 3.5])
    g = _decay_jac(x_new, *popt)
    var = np.einsum("ij,jk,ik->i", g, pcov, g)
    quantile = stats.norm.ppf(0.975) if absolute else stats.t.ppf(0.975, len(x) - 3)
    conf = fit.predict(x_new, interval="confidence")
    np.testing.assert_allclose(conf.mean, _decay(x_new, *popt), rtol=1e-8)
    np.testing.assert_allclose(conf.stderr, np.sqrt(var), rtol=RTOL)
    np.testing.assert_allclose(conf.upper - conf.mean, quantile * np.sqrt(var), rtol=RTOL)
    # a new observation with σ = 0.1: relative σ_i are scaled by σ̂² = χ²/(n - 3); absolute ones are not
    chi2 = np.sum(((y - _decay(x, *popt)) / sigma) ** 2)
    noise = 0.01 if absolute else 0.01 * chi2 / (len(x) - 3)
    obs = fit.predict(x_new, interval="prediction", sigma=0.1, level=0.9)
    quantile = stats.norm.ppf(0.95) if absolute else stats.t.ppf(0.95, len(x) - 3)
    np.testing.assert_allclose(obs.upper - obs.mean, quantile * np.sqrt(var + noise), rtol=RTOL)
    with pytest.raises(gf.GradfitError, match="give the new points' own"):
        fit.predict(x_new, interval="prediction")


def test_predict_needs_a_model_without_a_source(plane_fit):
    bare = gf.FitResult.from_json(plane_fit.to_json())
    with pytest.raises(gf.GradfitError, match=r"gf.predict\(result, x_new, model=...\)"):
        bare.predict([[0.0, 1.0]], interval="confidence")
    got = gf.predict(bare, [[0.0, 1.0]], interval="confidence", model=gf.linear(2))
    np.testing.assert_allclose(got.stderr, plane_fit.predict([[0.0, 1.0]], interval="confidence").stderr,
                               rtol=1e-12)
    with pytest.raises(gf.GradfitError, match="unknown interval 'tolerance'"):
        plane_fit.predict([[0.0, 1.0]], interval="tolerance")


def test_predict_infers_first(plane):
    fit = gf.fit(gf.linear(2), gf.normal(), plane, "lm")
    assert fit.inference is None
    band = fit.predict([[0.5, 0.5]], interval="confidence")
    assert band.lower[0] < band.mean[0] < band.upper[0]


# -- the figure ---------------------------------------------------------------------------------------


def _span_at(collection, x):
    vertices = collection.get_paths()[0].vertices
    ys = vertices[np.isclose(vertices[:, 0], x), 1]
    return ys.min(), ys.max()


def test_plot_fit_draws_the_bands(decay, tmp_path):
    from gradfit import plots

    x, y, _ = decay
    fit = gf.infer(gf.fit(DECAY, "normal", (x, y), "lm", init={"a": 1.0, "b": 1.0, "c": 0.0}))
    path = tmp_path / "fit.png"
    fig = plots.plot_fit(fit, path=path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    top, bottom = fig.axes[:2]
    line = next(a for a in top.lines if a.get_gid() == "fit")
    bands = {c.get_gid(): c for c in top.collections if c.get_gid()}
    assert set(bands) == {"confidence band", "prediction band"}
    xs, ys = line.get_data()
    for i in range(0, len(xs), 37):
        lo, hi = _span_at(bands["confidence band"], xs[i])
        plo, phi = _span_at(bands["prediction band"], xs[i])
        assert plo < lo < ys[i] < hi < phi
    residuals = bottom.lines[-1].get_ydata()
    np.testing.assert_allclose(residuals, y - fit.predict(x), rtol=1e-12)


def test_plot_fit_weighted_and_several_inputs(decay, plane_fit):
    from gradfit import plots

    x, y, sigma = decay
    fit = gf.fit(DECAY, "normal", (x, y), "lm", sigma=sigma, init={"a": 1.0, "b": 1.0, "c": 0.0})
    fig = plots.plot_fit(fit)
    top, bottom = fig.axes[:2]
    assert {c.get_gid() for c in top.collections if c.get_gid()} == {"confidence band"}
    np.testing.assert_allclose(bottom.lines[-1].get_ydata(), (y - fit.predict(x)) / sigma, rtol=1e-12)
    assert "σ" in bottom.get_ylabel()
    fig = plots.plot_fit(plane_fit)  # two inputs: observed against fitted
    assert "fitted" in fig.axes[1].get_xlabel()


def test_infer_takes_names_as_fit_does_and_refuses_many_starts_with_the_fix():
    data = gf.gabor_data(0)
    fit = gf.fit("gabor", "normal", data, "lm", init=[0.5, 15.0])
    by_name = gf.infer(fit, "gabor", "normal", data).inference.stderr
    by_object = gf.infer(fit, gf.gabor(), gf.normal(), data).inference.stderr
    np.testing.assert_array_equal(by_name, by_object)
    many = gf.fit("gabor", "normal", data, "lm", init=np.array([[0.5, 15.0], [5.0, 3.0]]))
    with pytest.raises(gf.GradfitError, match=r"gf.infer\(fits.best\)"):
        gf.infer(many)


def test_a_report_of_many_starts_lists_them_best_first_then_reports_the_best():
    data = gf.gabor_data(0)
    many = gf.fit("gabor", "normal", data, "lm", init=np.array([[5.0, 3.0], [0.5, 15.0]]))
    text = gf.fit_report(many)
    lines = text.splitlines()
    assert lines[0] == "[[Starts]] 2 fits, best first"
    assert lines[1].startswith("    start 1: loss ") and lines[2].startswith("    start 0: loss ")
    assert "[[Best start]] start 1" in text and text.endswith(gf.fit_report(many[1]))

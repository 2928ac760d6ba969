"""Inference at the optimum of any fit: against OLS, lmfit, statsmodels, scipy and brute force."""

from __future__ import annotations

import dataclasses
import json
import math
from statistics import NormalDist

import jax.numpy as jnp
import numpy as np
import pytest
from typer.testing import CliRunner

import gradfit as gf
from gradfit import glm as G
from gradfit.cli import app
from gradfit.inference import evaluate

sm = pytest.importorskip("statsmodels.api")
stats = pytest.importorskip("scipy.stats")

Z95 = NormalDist().inv_cdf(0.975)


@pytest.fixture(scope="module")
def line():
    rng = np.random.default_rng(11)
    x = rng.uniform(0, 2, 30)
    y = 0.8 + 0.5 * x + rng.normal(0, 0.1, 30)
    return gf.Dataset(x, y)


@pytest.fixture(scope="module")
def line_fit(line):
    # gradient descent to a tight tol, then inference on its result
    fit = gf.fit("linear", "normal", line, gf.gd(0.01), steps=5000, tol=1e-10)
    return gf.infer(fit, gf.linear(1), gf.normal(), line, profile="all")


def test_least_squares_by_descent_matches_ols(line, line_fit):
    x = np.column_stack([np.ones(30), line.x])
    ols = sm.OLS(line.y, x).fit()
    inf = line_fit.inference
    assert inf.stationary and inf.decrement < 1e-3
    np.testing.assert_allclose(line_fit.x, ols.params, rtol=1e-7)
    np.testing.assert_allclose(inf.stderr, ols.bse, rtol=1e-4)
    np.testing.assert_allclose(inf.covariance, ols.cov_params(), rtol=1e-4)
    assert inf.scale == pytest.approx(ols.scale, rel=1e-6)  # the covariance is σ̂² (XᵀX)⁻¹
    for ours, theirs in ((inf.loglik, ols.llf), (inf.aic, ols.aic), (inf.bic, ols.bic), (inf.rsquared, ols.rsquared),
                         (inf.chisqr, ols.ssr), (inf.redchi, ols.scale), (inf.sigma, math.sqrt(ols.scale))):
        assert ours == pytest.approx(theirs, rel=1e-7)
    np.testing.assert_allclose(inf.correlation, ols.cov_params() / np.outer(ols.bse, ols.bse), rtol=1e-4)


def test_least_squares_profile_interval_is_closed_form(line, line_fit):
    # σ profiled out too: n log(RSS(t)/RSS) = z², and RSS(t) = RSS + (t - θ̂)²/[(XᵀX)⁻¹]_jj
    x = np.column_stack([np.ones(30), line.x])
    inv = np.linalg.inv(x.T @ x)
    rss = line_fit.inference.chisqr
    for j, name in enumerate(("phi0", "phi1")):
        half = math.sqrt(rss * (math.exp(Z95**2 / 30) - 1.0) * inv[j, j])
        lo, hi = line_fit.inference.profile[name]
        assert lo == pytest.approx(line_fit.x[j] - half, rel=1e-7)
        assert hi == pytest.approx(line_fit.x[j] + half, rel=1e-7)


def test_fixed_sigma_is_not_rescaled(line):
    x = np.column_stack([np.ones(30), line.x])
    beta = np.linalg.lstsq(x, line.y, rcond=None)[0]
    inf = evaluate(gf.linear(1), gf.normal(sigma=0.2), line, beta)
    np.testing.assert_allclose(inf.covariance, 0.04 * np.linalg.inv(x.T @ x), rtol=1e-6)
    r = line.y - x @ beta
    assert inf.loglik == pytest.approx(np.sum(stats.norm.logpdf(r, scale=0.2)), rel=1e-10)
    assert inf.chisqr == pytest.approx(np.sum(r**2) / 0.04, rel=1e-10)


def test_nonlinear_least_squares_matches_lmfit():
    lmfit = pytest.importorskip("lmfit")
    data = gf.gabor_data(seed=0)
    fit = gf.fit("gabor", "normal", data, gf.adam(0.1))  # the CLI's default fit: converged to |g| <= 1e-6
    inf = gf.infer(fit, gf.gabor(), gf.normal(), data).inference

    def residual(p, x, y):
        z = p["phi0"] + 0.06 * p["phi1"] * x
        return np.sin(z) * np.exp(-z * z / 8.0) - y

    params = lmfit.Parameters()
    params.add("phi0", value=fit.params["phi0"])
    params.add("phi1", value=fit.params["phi1"])
    ref = lmfit.minimize(residual, params, args=(data.x, data.y), method="leastsq", xtol=1e-14, ftol=1e-14)
    np.testing.assert_allclose(fit.x, [ref.params["phi0"].value, ref.params["phi1"].value], rtol=1e-4)
    assert inf.stationary
    # lmfit's covariance is (JᵀJ)⁻¹ χ²/(n-k): the Gauss-Newton (expected) information, scaled; the default here
    assert inf.covariance_form == "gauss-newton" and inf.covariance_fisher is None
    np.testing.assert_allclose(inf.covariance, ref.covar, rtol=1e-4)
    assert inf.chisqr == pytest.approx(ref.chisqr, rel=1e-8) and inf.redchi == pytest.approx(ref.redchi, rel=1e-8)
    # the observed information keeps the residuals' curvature: a different, nearby covariance, on request,
    # with the Gauss-Newton one beside it
    observed = gf.infer(fit, gf.gabor(), gf.normal(), data, covariance="observed").inference
    assert observed.covariance_form == "observed" and observed.covariance_fisher is not None
    np.testing.assert_allclose(observed.covariance_fisher, ref.covar, rtol=1e-4)
    assert not np.allclose(observed.covariance, observed.covariance_fisher, rtol=1e-6)
    np.testing.assert_allclose(observed.covariance, observed.covariance_fisher, rtol=0.2)


def test_any_fit_of_counts_matches_statsmodels():
    rng = np.random.default_rng(12)
    x = rng.normal(size=(200, 2))
    y = rng.poisson(np.exp(0.3 + x @ [0.4, -0.2])).astype(float)
    ref = sm.GLM(y, sm.add_constant(x), family=sm.families.Poisson()).fit(tol=1e-12)
    # inference reads the point it is given, however it was found
    inf = evaluate(gf.linear(2), gf.poisson(), (x, y), np.asarray(ref.params))
    assert inf.stationary
    np.testing.assert_allclose(inf.stderr, ref.bse, rtol=1e-6)
    assert inf.loglik == pytest.approx(np.sum(stats.poisson.logpmf(y, ref.mu)), rel=1e-10)
    for ours, theirs in ((inf.loglik, ref.llf), (inf.deviance, ref.deviance), (inf.aic, ref.aic),
                         (inf.bic, ref.bic_llf), (inf.pearson_chi2, ref.pearson_chi2)):
        assert ours == pytest.approx(theirs, rel=1e-8)


@pytest.mark.parametrize("which", ["von_mises", "hetero_normal"])
def test_loglik_keeps_every_constant(which, rng, x64):
    x = rng.uniform(-1, 1, 50)
    if which == "von_mises":
        y = np.angle(np.exp(1j * (0.3 + 0.5 * x + rng.vonmises(0.0, 2.0, 50))))
        model, loss, theta = gf.linear(1), gf.von_mises(kappa=2.0), np.array([0.25, 0.6])
    else:
        y = 1.0 + x + rng.normal(0.0, 0.3, 50)
        model = gf.custom(lambda x, p: jnp.stack([p["a"] + p["b"] * x, p["s"] + 0 * x], axis=1), ["a", "b", "s"],
                          n_outputs=2)
        loss, theta = gf.hetero_normal(), np.array([0.9, 1.1, -1.0])
    inf = evaluate(model, loss, (x, y), theta)  # any point: the log-likelihood is defined everywhere
    f = np.asarray(model(jnp.asarray(x), model.unravel(jnp.asarray(theta))))
    if which == "von_mises":
        expected = np.sum(stats.vonmises.logpdf(y, 2.0, loc=f))
    else:
        expected = np.sum(stats.norm.logpdf(y, f[:, 0], np.logaddexp(0.0, f[:, 1])))
    assert inf.loglik == pytest.approx(expected, rel=1e-10)
    assert inf.aic == pytest.approx(2 * model.size - 2 * expected, rel=1e-10)
    assert not inf.stationary and inf.stderr is None
    assert inf.deviance is None and inf.pearson_chi2 is None


def test_profile_intervals_agree_with_a_brute_force_scan():
    rng = np.random.default_rng(13)
    n = 40  # few, small counts: the profile interval is visibly not symmetric
    x = rng.normal(size=n)
    y = rng.poisson(np.exp(-0.5 + 0.7 * x)).astype(float)
    model = G.glm({"x": x, "y": y}, "y", "poisson")
    fit = model.fit(profile="all")
    inf = fit.inference
    exog = model.design.matrix
    best = sm.GLM(y, exog, family=sm.families.Poisson()).fit(tol=1e-12).llf
    for j, name in enumerate(model.names):
        rest = np.delete(exog, j, axis=1)

        def signed_root(t, j=j, rest=rest):  # the profile: every other coefficient refitted at θ_j = t
            llf = sm.GLM(y, rest, family=sm.families.Poisson(), offset=t * exog[:, j]).fit(tol=1e-12).llf
            return math.copysign(math.sqrt(max(2 * (best - llf), 0.0)), t - fit.x[j])

        def scan(grid, target, signed_root=signed_root):
            roots = np.array([signed_root(t) for t in grid])
            k = int(np.searchsorted(roots, target))
            return grid[k - 1], grid[k], roots

        ends = []
        for target, (a, b) in ((-Z95, (fit.x[j] - 4 * inf.stderr[j], fit.x[j])),
                               (Z95, (fit.x[j], fit.x[j] + 4 * inf.stderr[j]))):
            a, b, _ = scan(np.linspace(a, b, 21), target)  # a coarse scan brackets the end ...
            grid = np.linspace(a, b, 21)
            _, _, roots = scan(grid, target)  # ... a fine one pins it
            ends.append(float(np.interp(target, roots, grid)))
        lo, hi = ends
        assert inf.profile[name][0] == pytest.approx(lo, abs=1e-4 * inf.stderr[j]), name
        assert inf.profile[name][1] == pytest.approx(hi, abs=1e-4 * inf.stderr[j]), name
        # and it is not the Wald interval: the likelihood is skewed
        assert abs((hi - fit.x[j]) - (fit.x[j] - lo)) > 1e-3 * inf.stderr[j]


# -- refusing at points that are not optima -------------------------------------------------------


def test_no_uncertainties_away_from_the_optimum(line, line_fit):
    # the same fit, stopped early: its own history's tenth entry
    early = dataclasses.replace(line_fit, params=gf.linear(1).named(line_fit.history.params[10]), inference=None)
    fit = gf.infer(early, gf.linear(1), gf.normal(), line, profile="phi1")
    inf = fit.inference
    assert not inf.stationary and inf.stderr is None and inf.covariance is None and inf.wald is None
    assert "not at a stationary point" in inf.message and "standard errors" in inf.message
    assert inf.decrement > 1.0
    text = gf.fit_report(fit)
    assert "no uncertainties" in text and "+/-" not in text
    d = json.loads(fit.to_json())
    assert d["stderr"] is None and d["covariance"] is None and d["inference"]["stationary"] is False
    assert d["inference"]["profile"] == {}


def test_flat_and_saddle_directions_are_named(line):
    shifted = gf.custom(lambda x, p: (p["a"] + p["b"]) * x + p["c"], ["a", "b", "c"])
    inf = evaluate(shifted, gf.normal(), line, [0.2, 0.3, 0.8])
    assert inf.stderr is None and "singular" in inf.message and "(a, b)" in inf.message
    product = gf.custom(lambda x, p: p["a"] * p["b"] * x, ["a", "b"])
    inf = evaluate(product, gf.normal(), line, [0.0, 0.0])  # a stationary point, and a saddle
    assert inf.stderr is None and "saddle point" in inf.message


def test_a_diverged_fit_has_no_uncertainties(line):
    # gd on Σ(f - y)² diverges once lr exceeds 2/λ_max of the Hessian 2XᵀX; at 4/λ_max the error
    # along the top eigenvector is multiplied by 1 - 4 = -3 every step
    x = np.column_stack([np.ones(30), line.x])
    lr = 4.0 / np.linalg.eigvalsh(2 * x.T @ x).max()
    fit = gf.fit("linear", "normal", line, gf.gd(lr), steps=5000, tol=0)
    assert fit.status == "diverged"
    with pytest.raises(gf.GradfitError, match="^the fit diverged .*no uncertainties.*refit with a smaller learning"):
        gf.infer(fit, gf.linear(1), gf.normal(), line)
    # at its last finite parameters, huge but finite, the statistics refuse instead of overflowing
    inf = evaluate(gf.linear(1), gf.normal(), line, fit.x)
    assert not inf.stationary and inf.stderr is None and "no uncertainties" in inf.message


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_parameters_or_loss_are_refused(line, line_fit, bad):
    with pytest.raises(gf.GradfitError, match=r"parameter\(s\) phi1 are not finite"):
        evaluate(gf.linear(1), gf.normal(), line, [0.8, bad])
    broken = dataclasses.replace(line_fit, params={"phi0": 0.8, "phi1": bad}, inference=None)
    with pytest.raises(gf.GradfitError, match="non-finite parameters or loss"):
        gf.infer(broken, gf.linear(1), gf.normal(), line)
    broken = dataclasses.replace(line_fit, loss=bad, inference=None)
    with pytest.raises(gf.GradfitError, match="non-finite parameters or loss"):
        gf.infer(broken, gf.linear(1), gf.normal(), line)


def test_wrong_model_and_level(line, line_fit):
    with pytest.raises(gf.GradfitError, match="the model the result was fitted with"):
        gf.infer(line_fit, gf.shallow(2), gf.normal(), line)
    with pytest.raises(gf.GradfitError, match="between 0 and 1"):
        gf.infer(line_fit, gf.linear(1), gf.normal(), line, level=1.5)
    with pytest.raises(gf.GradfitError, match="no parameter named 'phi9'"):
        gf.infer(line_fit, gf.linear(1), gf.normal(), line, profile=["phi9"])


# -- the report and the JSON ------------------------------------------------------------------------


def test_fit_report_sections(line_fit):
    text = gf.fit_report(line_fit)
    for part in ("[[Model]]", "[[Fit Statistics]]", "[[Variables]]", "[[Correlations]]", "chi-square",
                 "reduced chi-square", "R-squared", "Akaike info crit", "log-likelihood", "C(phi0, phi1) = -0."):
        assert part in text, part
    line = next(t for t in text.splitlines() if t.strip().startswith("phi1:"))
    se = line_fit.inference.stderr[1]
    assert f"+/- {se:.5g}" in line and "Wald [" in line and "profile [" in line
    bare = gf.fit_report(gf.FitResult.from_dict({k: v for k, v in json.loads(line_fit.to_json()).items()
                                                 if k not in ("inference", "stderr", "covariance")}))
    assert "no inference was run" in bare


def test_json_round_trip_keeps_inference(line_fit):
    back = gf.FitResult.from_json(line_fit.to_json())
    assert back == line_fit
    for field in ("stderr", "covariance", "wald"):
        np.testing.assert_array_equal(getattr(back.inference, field), getattr(line_fit.inference, field))
    assert back.inference.profile == line_fit.inference.profile


def test_cli_json_holds_the_inference(tmp_path):
    path = tmp_path / "fit.json"
    result = CliRunner().invoke(app, ["fit", "--model", "linear", "--optimizer", "gd", "--lr", "0.005", "--steps",
                                      "3000", "--tol", "1e-9", "--json", str(path)])
    assert result.exit_code == 0, result.output
    d = json.loads(path.read_text())
    assert list(d["stderr"]) == ["phi0", "phi1"]
    assert np.shape(d["covariance"]) == (2, 2)
    assert {"loglik", "deviance", "aic", "bic", "pearson_chi2"} <= set(d)
    assert "std err" in result.stdout and "[[Fit Statistics]]" in result.stdout
    data = gf.linear_data(0)
    ols = sm.OLS(data.y, sm.add_constant(data.x)).fit()
    np.testing.assert_allclose([d["stderr"]["phi0"], d["stderr"]["phi1"]], ols.bse, rtol=1e-4)
    assert d["loglik"] == pytest.approx(ols.llf, rel=1e-8)

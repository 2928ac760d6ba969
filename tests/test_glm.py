"""Regression models for every likelihood, against statsmodels and closed-form least squares.

Tolerances are the issue's: 1e-5 relative on coefficients, 1e-4 on standard errors.
The data sets are generated here; where the columns differ in scale by eight orders
of magnitude (1e-3 and 1e5 together) the fits must reach the same optimum.
"""

from __future__ import annotations

import dataclasses
import json
import warnings

import numpy as np
import pytest

import gradfit as gf
from gradfit import glm as G

sm = pytest.importorskip("statsmodels.api")

COEF, SE = 1e-5, 1e-4


def _close(ours, ref, rtol, atol=1e-12):
    np.testing.assert_allclose(np.asarray(ours), np.asarray(ref), rtol=rtol, atol=atol)


@pytest.fixture(scope="module")
def counts():
    """Counts with a badly scaled design, a categorical column and an exposure."""
    rng = np.random.default_rng(4)
    n = 600
    small = rng.normal(0.0, 1e-3, n)
    big = rng.normal(2e5, 1e5, n)
    kind = rng.choice(["park", "residential", "transit"], n)
    minutes = rng.uniform(1.0, 5.0, n)
    eta = -0.3 + 150.0 * small + 2e-6 * big + np.select([kind == "residential", kind == "transit"], [0.4, 0.9], 0.0)
    count = rng.poisson(minutes * np.exp(eta)).astype(float)
    return {"small": small, "big": big, "kind": kind, "minutes": minutes, "count": count}


@pytest.fixture(scope="module")
def poisson_fit(counts):
    model = G.glm(counts, "count", "poisson", x=["small", "big"], categorical=["kind"], exposure="minutes")
    return model, model.fit(profile=["small"])


def test_poisson_with_exposure_matches_statsmodels(counts, poisson_fit):
    model, fit = poisson_fit
    ref = sm.GLM(counts["count"], model.design.matrix, family=sm.families.Poisson(),
                 exposure=counts["minutes"]).fit(tol=1e-12)
    assert fit.converged
    assert model.names == ("intercept", "small", "big", "kind[residential]", "kind[transit]")
    _close(fit.x, ref.params, COEF)
    inf = fit.inference
    _close(inf.stderr, ref.bse, SE)
    _close(inf.covariance, ref.cov_params(), SE, atol=1e-14)
    for ours, theirs in ((inf.loglik, ref.llf), (inf.deviance, ref.deviance), (inf.aic, ref.aic),
                         (inf.bic, ref.bic_llf), (inf.pearson_chi2, ref.pearson_chi2)):
        assert ours == pytest.approx(theirs, rel=1e-8)
    _close(inf.wald, ref.conf_int(), COEF)
    assert inf.covariance_fisher is None  # the log link is canonical: Fisher = observed information
    # the same rates, from the fitted coefficients
    _close(model.predict(fit), ref.fittedvalues, 1e-7)


def test_badly_scaled_design_still_reaches_the_optimum(counts):
    # no exposure, no categories: only the columns of scale 1e-3 and 1e5
    model = G.glm(counts, "count", "poisson", x=["small", "big"])
    fit = model.fit()
    ref = sm.GLM(counts["count"], model.design.matrix, family=sm.families.Poisson()).fit(tol=1e-12)
    _close(fit.x, ref.params, COEF)
    _close(fit.inference.stderr, ref.bse, SE)
    assert fit.inference.decrement < 1e-6  # standard errors from the optimum


def test_bernoulli_matches_statsmodels_binomial():
    rng = np.random.default_rng(5)
    n = 500
    x1, x2 = rng.normal(size=n), rng.normal(3e4, 1e4, size=n)
    y = (rng.uniform(size=n) < 1 / (1 + np.exp(-(0.2 + 0.8 * x1 - 4e-5 * x2)))).astype(float)
    model = G.glm({"x1": x1, "x2": x2, "y": y}, "y", "bernoulli")
    fit = model.fit()
    ref = sm.GLM(y, model.design.matrix, family=sm.families.Binomial()).fit(tol=1e-12)
    _close(fit.x, ref.params, COEF)
    inf = fit.inference
    _close(inf.stderr, ref.bse, SE)
    for ours, theirs in ((inf.loglik, ref.llf), (inf.deviance, ref.deviance), (inf.aic, ref.aic)):
        assert ours == pytest.approx(theirs, rel=1e-8)
    # Pearson's χ² is not stationary at the optimum: it moves with the last digits statsmodels reaches
    assert inf.pearson_chi2 == pytest.approx(ref.pearson_chi2, rel=1e-6)


def test_normal_matches_closed_form_least_squares_and_ols():
    rng = np.random.default_rng(6)
    n = 80
    a, b = rng.normal(size=n) * 1e-3, rng.normal(size=n) * 1e5
    y = 1.0 + 400.0 * a - 2e-5 * b + rng.normal(0, 0.5, n)
    model = G.glm({"a": a, "b": b, "y": y}, "y", "normal")
    fit = model.fit()
    x = model.design.matrix
    beta, rss, *_ = np.linalg.lstsq(x, y, rcond=None)
    _close(fit.x, beta, COEF)
    assert fit.loss == pytest.approx(rss[0], rel=1e-10)
    sigma2 = rss[0] / (n - 3)
    inf = fit.inference
    _close(inf.covariance, sigma2 * np.linalg.inv(x.T @ x), SE)
    ols = sm.OLS(y, x).fit()
    _close(inf.stderr, ols.bse, SE)
    for ours, theirs in ((inf.loglik, ols.llf), (inf.aic, ols.aic), (inf.bic, ols.bic),
                         (inf.rsquared, ols.rsquared), (inf.chisqr, ols.ssr), (inf.redchi, ols.scale),
                         (inf.sigma, np.sqrt(ols.scale)), (inf.deviance, ols.ssr)):
        assert ours == pytest.approx(theirs, rel=1e-8)


def test_linear_12_closed_form(linear_12):
    # REFERENCE.md §4: closed-form least squares φ ≈ (0.82595, 0.52223), loss 0.19987
    fit = G.glm(linear_12, family="normal").fit()
    np.testing.assert_allclose(fit.x, [0.82595, 0.52223], atol=5e-6)
    assert fit.loss == pytest.approx(0.19987, abs=5e-6)


def test_categorical_matches_statsmodels_mnlogit():
    rng = np.random.default_rng(7)
    n = 400
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    logits = np.column_stack([np.zeros(n), 0.5 + x1, -0.3 + 0.8 * x2 - 0.5 * x1])
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    labels = np.array(["a", "b", "c"])[[rng.choice(3, p=row) for row in p]]
    model = G.glm({"x1": x1, "x2": x2, "y": labels}, "y", "categorical")
    fit = model.fit()
    assert model.classes == ("a", "b", "c")
    assert model.names[:3] == ("y=b:intercept", "y=b:x1", "y=b:x2")
    ref = sm.MNLogit(np.searchsorted(["a", "b", "c"], labels), model.design.matrix).fit(method="newton", tol=1e-12,
                                                                                          disp=False)
    _close(fit.x, np.asarray(ref.params).T.ravel(), COEF)
    _close(fit.inference.stderr, np.asarray(ref.bse).T.ravel(), SE)
    assert fit.inference.loglik == pytest.approx(ref.llf, rel=1e-8)
    assert fit.inference.aic == pytest.approx(ref.aic, rel=1e-8)
    np.testing.assert_allclose(model.predict(fit).sum(axis=1), 1.0)


def test_softplus_link_has_its_own_fisher_information(counts):
    model = G.glm(counts, "count", "poisson", x=["small", "big"], link="softplus")
    fit = model.fit()
    assert fit.converged
    # the optimum: the score Σ (y/λ - 1) λ'(η) x = 0 on the original scale
    x = model.design.matrix
    eta = x @ fit.x
    rate, slope = np.logaddexp(0, eta), 1 / (1 + np.exp(-eta))
    score = x.T @ ((counts["count"] / rate - 1.0) * slope)
    assert np.max(np.abs(score * fit.inference.stderr)) < 1e-5
    # expected information Σ λ'(η)²/λ x xᵀ differs from the observed one for this link
    fisher = (x * (slope**2 / rate)[:, None]).T @ x
    inf = fit.inference
    assert inf.covariance_fisher is not None
    _close(inf.covariance_fisher, np.linalg.inv(fisher), SE, atol=1e-16)
    assert not np.allclose(inf.covariance, inf.covariance_fisher, rtol=1e-3)


def test_subsampled_newton_reaches_the_same_optimum(counts, monkeypatch):
    # large data run the first steps on a subsample; force that path on small data
    monkeypatch.setattr(G, "SUBSAMPLE_ABOVE", 256)
    monkeypatch.setattr(G, "SUBSAMPLE_ROWS", 128)
    model = G.glm(counts, "count", "poisson", x=["small", "big"], categorical=["kind"], exposure="minutes")
    fit = model.fit(inference=False)
    assert fit.settings["subsample_rows"] == 128 and fit.converged
    monkeypatch.undo()
    exact = model.fit(inference=False)
    assert exact.settings["subsample_rows"] is None
    _close(fit.x, exact.x, 1e-6)


def test_first_order_fit_then_newton_polish(counts):
    model = G.glm(counts, "count", "poisson", x=["small", "big"], categorical=["kind"], exposure="minutes")
    newton = model.fit(inference=False)
    adam = model.fit(gf.adam(0.05), steps=60, inference=False)
    assert adam.optimizer["name"] == "adam" and adam.optimizer["polish"] == "newton"
    _close(adam.x, newton.x, 1e-6)
    rough = model.fit(gf.adam(0.05), steps=60, polish=False)
    assert rough.steps == 60 and not rough.inference.stationary
    assert "not at a stationary point" in rough.inference.message
    # the history is on the original scale: its first row is the start, its last the result
    np.testing.assert_allclose(adam.history.params[-1], adam.x)
    assert adam.history.loss[-1] == pytest.approx(adam.loss)


@pytest.mark.parametrize("family", ["poisson", "bernoulli", "categorical", "normal"])
def test_first_order_fit_with_one_column(family):
    # a data set keeps one column as shape (I,): the working model must still read it as a column
    rng = np.random.default_rng(7)
    t = rng.uniform(0, 30, 150)
    y = {"poisson": rng.poisson(np.exp(0.2 + 0.04 * t)), "bernoulli": (rng.uniform(size=150) < t / 30).astype(int),
         "categorical": rng.integers(0, 3, 150), "normal": 1.0 + 0.5 * t + rng.normal(size=150)}[family]
    newton = gf.fit_glm({"t": t, "y": y}, "y", family, inference=False)
    adam = gf.fit_glm({"t": t, "y": y}, "y", family, optimizer=gf.adam(0.05), steps=40, inference=False)
    _close(adam.x, newton.x, 1e-6)


def test_first_order_settings_reach_the_fit_and_an_interrupt_is_mapped_back(counts, tmp_path, monkeypatch):
    from gradfit import fitting

    model = G.glm(counts, "count", "poisson", x=["small", "big"], categorical=["kind"], exposure="minutes")
    saved = tmp_path / "glm.ckpt"
    run = model.fit(gf.adam(0.05), steps=40, polish=False, inference=False, history_every=10, checkpoint=saved)
    assert list(run.history.step) == [0, 10, 20, 30, 40] and saved.is_file()
    again = model.fit(gf.adam(0.05), steps=40, polish=False, inference=False, history_every=10, resume=saved)
    np.testing.assert_array_equal(again.x, run.x)
    with pytest.raises(gf.GradfitError, match="give an optimizer"):
        model.fit(checkpoint=saved)

    five = model.fit(gf.adam(0.05), steps=5, polish=False, inference=False)
    real = fitting.fit

    def interrupted(*args, **kwargs):
        partial = real(*args, **{**kwargs, "steps": 5})
        raise gf.Interrupted(dataclasses.replace(partial, status="interrupted", stopped="interrupted by SIGINT"))

    monkeypatch.setattr(fitting, "fit", interrupted)
    with pytest.raises(gf.Interrupted) as caught:
        model.fit(gf.adam(0.05), steps=40)
    partial = caught.value.result
    assert partial.status == "interrupted" and partial.steps == 5
    assert partial.param_names == model.names  # the coefficients, on the original scale
    _close(partial.x, five.x, 1e-12)


def test_result_json_round_trip(poisson_fit, tmp_path):
    _, fit = poisson_fit
    back = gf.FitResult.from_json(fit.to_json())
    assert back == fit
    np.testing.assert_array_equal(back.inference.covariance, fit.inference.covariance)
    assert back.inference.profile == fit.inference.profile
    d = json.loads(fit.to_json())
    assert list(d["stderr"]) == list(fit.param_names)
    assert {"covariance", "loglik", "deviance", "aic", "bic", "pearson_chi2"} <= set(d)


# -- bad input -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "y,family,message",
    [
        ([1, -2, 3, 0, 1, 2], "poisson", "counts 0, 1, 2"),
        ([1, 2.5, 3, 0, 1, 2], "poisson", "counts 0, 1, 2"),
        ([0, 0, 0, 0, 0, 0], "poisson", "every count is zero"),
        ([0, 1, 2, 1, 0, 1], "bernoulli", "labels 0 or 1"),
        ([1, 1, 1, 1, 1, 1], "bernoulli", "every label is 1"),
        ([0, 1, 0, 1, 0, 1], "gamma", "unknown family 'gamma'"),
    ],
)
def test_bad_targets(y, family, message):
    x = np.linspace(0, 1, 6)
    with pytest.raises(gf.GradfitError, match=message):
        G.glm({"x": x, "y": np.array(y, float)}, "y", family).fit()


def test_bad_links_and_exposures():
    cols = {"x": np.linspace(0, 1, 6), "y": np.arange(6.0), "e": np.array([1, 2, 0, 1, 1, 1.0])}
    with pytest.raises(gf.GradfitError, match="unknown poisson link 'probit'"):
        G.glm(cols, "y", "poisson", x=["x"], link="probit")
    with pytest.raises(gf.GradfitError, match="'e' must be positive"):
        G.glm(cols, "y", "poisson", x=["x"], exposure="e")
    with pytest.raises(gf.GradfitError, match="exposure .* is for the poisson family"):
        G.glm({**cols, "e": np.ones(6) * 2}, "y", "normal", x=["x"], exposure="e")


def test_separation_warns_and_names_the_column():
    rng = np.random.default_rng(8)
    n = 60
    noise, sep = rng.normal(size=n), rng.normal(size=n)
    y = (sep > 0.1).astype(float)
    model = G.glm({"noise": noise, "sep": sep, "y": y}, "y", "bernoulli")
    with pytest.warns(G.SeparationWarning, match="'sep'") as caught:
        fit = model.fit()
    assert "'noise'" not in str(caught[0].message)
    assert fit.inference.stderr is None and "separation" in fit.inference.message
    assert "no uncertainties" in gf.fit_report(fit)
    # no warning without separation
    y2 = (sep + rng.normal(size=n) > 0).astype(float)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        G.glm({"noise": noise, "sep": sep, "y": y2}, "y", "bernoulli").fit()


# -- the pedestrian example --------------------------------------------------------------------


def test_pedestrian_example_recovers_the_generating_model():
    data = gf.pedestrian_data(seed=3, n=4000)
    columns = {name: data.x[:, j] for j, name in enumerate(data.x_names)}
    columns["neighbourhood"] = data.notes["neighbourhood"]
    columns["count"] = data.y
    numeric = ["hour_sin", "hour_cos", "hour2_sin", "hour2_cos", "lat", "lon"]
    model = G.glm(columns, "count", "poisson", x=numeric, categorical=["neighbourhood"],
                  baselines={"neighbourhood": "residential"})
    fit = model.fit()
    truth = {"hour_sin": -0.3, "hour_cos": -0.5, "hour2_sin": 0.0, "hour2_cos": -0.6, "lat": -10.0,
             "lon": -0.1 / 0.03, "neighbourhood[commercial]": 0.9, "neighbourhood[park]": -0.4,
             "neighbourhood[transit]": 1.3}
    se = dict(zip(fit.param_names, fit.inference.stderr, strict=True))
    for name, value in truth.items():
        assert abs(fit.params[name] - value) < 4.5 * se[name], name
    # the rates agree with the counts on average, and the plot draws them
    assert model.predict(fit).sum() == pytest.approx(data.y.sum(), rel=1e-8)
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ax = G.plot_rates(model, fit)
    assert ax.get_xlabel() == "fitted rate λ" and ax.get_ylabel() == "observed count"
    plt.close("all")


# -- the command line: --categorical and --offset ----------------------------------------------------


@pytest.fixture(scope="module")
def counts_csv(counts, tmp_path_factory):
    path = tmp_path_factory.mktemp("glm") / "counts.csv"
    names = ["small", "big", "kind", "minutes", "count"]
    rows = zip(*(counts[n] for n in names), strict=True)
    path.write_text(",".join(names) + "\n" + "".join(",".join(map(str, r)) + "\n" for r in rows))
    return path


def test_cli_categorical_and_offset(counts, counts_csv, tmp_path):
    from typer.testing import CliRunner

    from gradfit.cli import app

    out = tmp_path / "fit.json"
    result = CliRunner().invoke(app, ["fit", "--data", str(counts_csv), "--y", "count", "--x", "small,big",
                                      "--loss", "poisson", "--model", "linear", "--categorical", "kind",
                                      "--offset", "minutes", "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "kind[transit]" in result.stdout and "Pearson chi-square" in result.stdout
    d = json.loads(out.read_text())
    names = ["intercept", "small", "big", "kind[residential]", "kind[transit]"]
    assert list(d["params"]) == names and list(d["stderr"]) == names
    x = np.column_stack([np.ones(len(counts["count"])), counts["small"], counts["big"],
                         counts["kind"] == "residential", counts["kind"] == "transit"]).astype(float)
    ref = sm.GLM(counts["count"], x, family=sm.families.Poisson(), exposure=counts["minutes"]).fit(tol=1e-12)
    _close([d["params"][n] for n in names], ref.params, COEF)
    _close([d["stderr"][n] for n in names], ref.bse, SE)
    _close(d["covariance"], ref.cov_params(), SE, atol=1e-14)
    for key, theirs in (("loglik", ref.llf), ("deviance", ref.deviance), ("aic", ref.aic), ("bic", ref.bic_llf)):
        assert d[key] == pytest.approx(theirs, rel=1e-8), key
    assert d["pearson_chi2"] == pytest.approx(ref.pearson_chi2, rel=1e-6)


@pytest.mark.parametrize(
    "args,fragment",
    [
        (["--offset", "small"], "must be positive"),
        (["--offset", "minutes", "--loss", "normal"], "for --loss poisson"),
        (["--categorical", "kind", "--model", "shallow"], "need --model linear"),
        (["--categorical", "kind", "--loss", "von_mises"], "regression models for the losses"),
        (["--categorical", "nope"], "no column 'nope'"),
        (["--categorical", "kind", "--x", "small,big,minutes,minutes"], "two columns named minutes"),
    ],
)
def test_cli_design_errors(counts_csv, args, fragment):
    from typer.testing import CliRunner

    from gradfit.cli import app

    base = ["fit", "--data", str(counts_csv), "--y", "count", "--loss", "poisson", "--model", "linear"]
    result = CliRunner().invoke(app, [*base, *args])
    assert result.exit_code == 2, result.output
    assert fragment in result.stderr and "Traceback" not in result.output

"""`gradfit fit` as a curve fitter: --optimizer lm/newton, --bound, --fix, --sigma, --weights, named --init.

Expected numbers come from statsmodels (OLS, WLS), lmfit and scipy's MINPACK; bad input
is one line on stderr, exit status 2, never a traceback.
"""

from __future__ import annotations

import json
import math

import jax
import jax.numpy as jnp
import lmfit
import numpy as np
import pytest
from scipy.optimize import brentq, least_squares
from typer.testing import CliRunner

import gradfit as gf
from gradfit import cli
from gradfit.cli import app
from gradfit.errors import GradfitError

runner = CliRunner()


def run(*args):
    return runner.invoke(app, ["fit", *map(str, args)])


def one_line_error(result, *fragments):
    """Exit status 2, one line ``error: ...`` on stderr holding every fragment, no traceback."""
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def fitted(result, path):
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return json.loads(path.read_text())


def write_csv(path, **columns):
    names = list(columns)
    rows = zip(*columns.values())
    path.write_text(",".join(names) + "\n" + "".join(",".join(map(str, r)) + "\n" for r in rows))
    return path


def lre(actual, expected):
    actual, expected = np.asarray(actual, float), np.asarray(expected, float)
    with np.errstate(divide="ignore"):
        return -np.log10(np.abs(actual - expected) / np.abs(expected))


# -- linear least squares by default -------------------------------------------------------------------


@pytest.fixture(scope="module")
def longley_csv(tmp_path_factory, longley):
    path = tmp_path_factory.mktemp("longley") / "longley.csv"
    longley.to_csv(path, index=False)
    return path, longley, list(longley.columns[:-1])


def test_longley_by_default_to_seven_digits(longley_csv, tmp_path):
    import statsmodels.api as sm

    path, data, inputs = longley_csv
    out = tmp_path / "r.json"
    d = fitted(run("--data", path, "--json", out, "--quiet"), out)
    assert d["optimizer"]["name"] == "lm"  # the default for a linear model with the normal loss
    assert list(d["params"]) == ["Intercept", *inputs]
    ols = sm.OLS(data["TOTEMP"], sm.add_constant(data[inputs])).fit()
    got = [d["params"][n] for n in d["params"]]
    assert np.all(lre(got, ols.params.to_numpy()) >= 7), lre(got, ols.params.to_numpy())
    assert np.all(lre([d["stderr"][n] for n in d["params"]], ols.bse.to_numpy()) >= 6)


@pytest.fixture(scope="module")
def weighted_csv(tmp_path_factory):
    rng = np.random.default_rng(11)
    dose = np.round(rng.uniform(0, 10, 40), 4)
    s = np.round(0.2 + 0.1 * dose, 4)
    w = np.round(1.0 / s**2, 6)
    y = np.round(1.5 + 0.8 * dose + rng.normal(0, s), 5)
    path = write_csv(tmp_path_factory.mktemp("weighted") / "dose.csv", dose=dose, s=s, w=w, label=["a"] * 40,
                     response=y)
    return path, dose, s, w, y


def _wls(dose, y, weights):
    import statsmodels.api as sm

    return sm.WLS(y, sm.add_constant(dose), weights=weights).fit()


@pytest.mark.parametrize("flag", ["--sigma", "--weights"])
def test_sigma_and_weights_columns_give_wls(weighted_csv, tmp_path, flag):
    path, dose, s, w, y = weighted_csv
    out = tmp_path / "r.json"
    column = "s" if flag == "--sigma" else "w"
    d = fitted(run("--data", path, "--x", "dose", "--y", "response", flag, column, "--json", out, "--quiet"), out)
    assert list(d["params"]) == ["Intercept", "dose"]
    reference = _wls(dose, y, 1.0 / s**2 if flag == "--sigma" else w)
    np.testing.assert_allclose([d["params"]["Intercept"], d["params"]["dose"]], reference.params, rtol=1e-9)


def test_absolute_sigma_gives_unscaled_standard_errors(weighted_csv, tmp_path):
    path, dose, s, w, y = weighted_csv
    out = tmp_path / "r.json"
    d = fitted(run("--data", path, "--x", "dose", "--y", "response", "--sigma", "s", "--absolute-sigma", "--json",
                   out, "--quiet"), out)
    design = np.column_stack([np.ones_like(dose), dose])
    covariance = np.linalg.inv(design.T @ (design / s[:, None] ** 2))  # (XᵀΣ⁻¹X)⁻¹, not rescaled
    np.testing.assert_allclose([d["stderr"]["Intercept"], d["stderr"]["dose"]], np.sqrt(np.diag(covariance)),
                               rtol=1e-8)


def test_one_sigma_for_all_is_ordinary_least_squares(weighted_csv, tmp_path):
    path, dose, s, w, y = weighted_csv
    out = tmp_path / "r.json"
    d = fitted(run("--data", path, "--x", "dose", "--y", "response", "--sigma", "0.5", "--json", out, "--quiet"),
               out)
    np.testing.assert_allclose([d["params"]["Intercept"], d["params"]["dose"]],
                               _wls(dose, y, np.ones_like(y)).params, rtol=1e-9)


# -- a nonlinear model: named starts, bounds, fixed values -------------------------------------------------


GABOR = gf.gabor_data(0)


def gabor_formula(x, phi0, phi1):
    z = phi0 + 0.06 * phi1 * x
    return np.sin(z) * np.exp(-z * z / 8.0)


def gabor_slope(phi0, phi1, wrt):
    """dL/dφ of L = Σ (f - y)² for the Gabor model (s = 8), by hand: zero at an optimum."""
    x, y = np.asarray(GABOR.x), np.asarray(GABOR.y)
    z = phi0 + 0.06 * phi1 * x
    dfdz = np.exp(-z * z / 8.0) * (np.cos(z) - np.sin(z) * z / 4.0)
    return np.sum(2.0 * (gabor_formula(x, phi0, phi1) - y) * dfdz * (1.0 if wrt == "phi0" else 0.06 * x))


def test_named_init_sets_only_those_parameters(tmp_path):
    out = tmp_path / "r.json"
    d = fitted(run("--model", "gabor", "--optimizer", "lm", "--init", "phi1=15", "--json", out, "--quiet"), out)
    start = d["history"]["params"][0]
    assert start["phi1"] == 15.0
    default = gf.gabor().default_init(0)  # the other keeps the model's documented default start
    assert start["phi0"] == default[0]
    # and the fit from there is MINPACK's, with the exact Jacobian
    with jax.enable_x64(True):
        def residuals(t):
            z = t[0] + 0.06 * t[1] * jnp.asarray(GABOR.x)
            return jnp.sin(z) * jnp.exp(-z * z / 8.0) - jnp.asarray(GABOR.y)

        jac = jax.jacfwd(residuals)
        ref = least_squares(lambda t: np.asarray(residuals(jnp.asarray(t))), [default[0], 15.0],
                            jac=lambda t: np.asarray(jac(jnp.asarray(t))), method="lm", xtol=1e-15, ftol=1e-15,
                            gtol=1e-15).x
    np.testing.assert_allclose([d["params"]["phi0"], d["params"]["phi1"]], ref, rtol=1e-7)


def test_bound_pins_the_parameter_as_lmfit_does(tmp_path):
    out, picture = tmp_path / "r.json", tmp_path / "fit.png"
    result = run("--model", "gabor", "--optimizer", "lm", "--bound", "phi1=0:16,phi0=-1:", "--json", out,
                 "--plot", picture, "--quiet")
    if result.exit_code != 0 and "plot" in result.stderr:  # another helper is writing plots.plot_fit
        pytest.skip(f"--plot is not ready: {result.stderr.strip()}")
    d = fitted(result, out)
    assert d["settings"]["at_bound"] == {"phi1": "upper"}
    assert d["settings"]["bounds"] == {"phi0": [-1.0, None], "phi1": [0.0, 16.0]}
    assert d["params"]["phi1"] == 16.0
    assert all(row["phi1"] <= 16.0 and row["phi0"] >= -1.0 for row in d["history"]["params"])
    model = lmfit.Model(gabor_formula)
    params = model.make_params(phi0=dict(value=1.0, min=-1.0), phi1=dict(value=10.0, min=0.0, max=16.0))
    ref = model.fit(GABOR.y, params, x=GABOR.x, method="leastsq", fit_kws={"xtol": 1e-15, "ftol": 1e-15,
                                                                             "gtol": 1e-15})
    # lmfit's forward-difference Jacobian leaves it some 10⁻⁷ from the optimum; the maths pins it:
    # with φ1 at 16, φ0 is where dL/dφ0 = 0
    assert d["params"]["phi0"] == pytest.approx(ref.params["phi0"].value, rel=1e-6)
    assert ref.params["phi1"].value == pytest.approx(16.0, abs=1e-9)
    optimum = brentq(lambda p0: gabor_slope(p0, 16.0, "phi0"), -0.5, 0.5, xtol=1e-15)
    assert d["params"]["phi0"] == pytest.approx(optimum, rel=1e-9)
    assert picture.stat().st_size > 0


def test_fix_holds_a_parameter_and_fits_the_rest(tmp_path):
    out = tmp_path / "r.json"
    d = fitted(run("--model", "gabor", "--optimizer", "lm", "--fix", "phi0=0.1", "--json", out, "--quiet"), out)
    assert d["params"]["phi0"] == 0.1 and d["settings"]["fixed"] == {"phi0": 0.1}
    assert all(row["phi0"] == 0.1 for row in d["history"]["params"])
    model = lmfit.Model(gabor_formula)
    params = model.make_params(phi0=dict(value=0.1, vary=False), phi1=10.0)
    ref = model.fit(GABOR.y, params, x=GABOR.x, method="leastsq", fit_kws={"xtol": 1e-15, "ftol": 1e-15,
                                                                             "gtol": 1e-15})
    assert d["params"]["phi1"] == pytest.approx(ref.params["phi1"].value, rel=1e-6)
    optimum = brentq(lambda p1: gabor_slope(0.1, p1, "phi1"), 16.0, 18.0, xtol=1e-14)
    assert d["params"]["phi1"] == pytest.approx(optimum, rel=1e-9)


# -- parsing of the options (no fit runs) ------------------------------------------------------------------


def test_init_by_name_takes_array_elements_with_commas():
    model = gf.shallow(2, 1, 1)
    start = cli._parse_init("omega0[1,0]=2, beta1=0.5", model, 0)
    default = model.default_init(0)
    names = model.flat_names
    expected = np.array(default, float)
    expected[names.index("omega0[1,0]")] = 2.0
    expected[names.index("beta1[0]")] = 0.5
    np.testing.assert_array_equal(start, expected)


@pytest.mark.parametrize("texts, expected", [
    (["k=0:inf"], {"k": (0.0, None)}),
    (["k=:5"], {"k": (None, 5.0)}),
    (["k=-inf:inf"], {"k": (None, None)}),
    (["k=-1:1, a=0:"], {"k": (-1.0, 1.0), "a": (0.0, None)}),
    (["k=0:1", "a=2:3"], {"k": (0.0, 1.0), "a": (2.0, 3.0)}),
    (["omega0[1,0]=0:1"], {"omega0[1,0]": (0.0, 1.0)}),
    (["k=5:-inf"], {"k": (5.0, -math.inf)}),  # passed on: the library says nothing lies inside
])
def test_bound_values_parse(texts, expected):
    assert cli._assignments(texts, "--bound", cli._bounds_value) == expected


# -- bad input: one line, exit status 2 -------------------------------------------------------------------


@pytest.mark.parametrize("args, fragments", [
    (["--bound", "phi0=1:0"], ["lower bound of 'phi0' (1)", "below its upper bound (0)"]),
    (["--init", "1,10", "--bound", "phi0=2:3"], ["phi0 at 1", "outside its bounds [2, 3]"]),  # a given start
    (["--bound", "q=0:1"], ["bounds names 'q'", "phi0, phi1"]),
    (["--fix", "q=1"], ["fixed names 'q'"]),
    (["--fix", "phi0=1,phi1=2"], ["every parameter", "fixed"]),
    (["--bound", "phi0"], ["--bound takes NAME=VALUE", "'phi0'"]),
    (["--bound", "phi0=0"], ["--bound phi0=0 needs LOW:HIGH"]),
    (["--bound", "phi0=a:1"], ["'a' is not a number"]),
    (["--bound", "phi0=0:1", "--bound", "phi0=0:2"], ["gives 'phi0' twice"]),
    (["--bound", "phi0=nan:1"], ["cannot be NaN"]),
    (["--fix", "phi0=abc"], ["--fix phi0=abc needs a number"]),
    (["--fix", "phi0=inf"], ["needs a finite number"]),
    (["--fix", "omega0[1,0]=x"], ["--fix omega0[1,0]=x needs a number"]),
    (["--init", "phi0=1,2"], ["mixes named and positional"]),
    (["--init", "1,phi1=2"], ["mixes named and positional"]),
    (["--init", "q=1"], ["--init names 'q'", "phi0, phi1"]),
    (["--init", "phi0=1,phi0=2"], ["gives 'phi0' twice"]),
    (["--sigma", "-1"], ["sigma must be finite and > 0"]),
    (["--sigma", "0"], ["sigma must be finite and > 0"]),
    (["--sigma", "nan"], ["sigma must be finite and > 0"]),
    (["--sigma", "s"], ["--sigma s names a column", "no --data file"]),
    (["--absolute-sigma"], ["give sigma too"]),
    (["--optimizer", "lm", "--batch-size", "10"], ["batch size"]),
    (["--optimizer", "lm", "--epochs", "3"], ["epochs"]),
    (["--optimizer", "newton", "--batch-size", "10"], ["batch size"]),
    (["--loss", "poisson", "--builtin", "pedestrians", "--optimizer", "lm", "--model", "shallow"],
     ["least squares", "not the poisson loss", "polish"]),
])
def test_bad_options_are_one_line(args, fragments):
    one_line_error(run("--model", "gabor", *args) if "--model" not in args else run(*args), *fragments)


def test_lm_keeps_no_checkpoint(tmp_path):
    one_line_error(run("--model", "gabor", "--optimizer", "lm", "--checkpoint", tmp_path / "c.ckpt"),
                   "no checkpoint")
    assert not (tmp_path / "c.ckpt").exists()


@pytest.mark.parametrize("args, fragments", [
    (["--sigma", "nope"], ["no column 'nope'"]),
    (["--sigma", "label"], ["--sigma column 'label' holds text"]),
    (["--weights", "label"], ["--weights column 'label' holds text"]),
    (["--sigma", "s", "--weights", "w"], ["not both"]),
    (["--sigma", "response"], ["--sigma response names the target column"]),
])
def test_bad_per_example_columns_are_one_line(weighted_csv, args, fragments):
    path = weighted_csv[0]
    one_line_error(run("--data", path, "--x", "dose", "--y", "response", *args), *fragments)


def test_a_sigma_column_that_is_the_default_target_is_refused(weighted_csv):
    # with no --y the last column is the target; --sigma naming it would weigh y by itself
    one_line_error(run("--data", weighted_csv[0], "--x", "dose", "--sigma", "response"), "names the target column")


def test_named_init_of_a_regression_model_is_one_line():
    # a regression model (GLM) has no default start to keep the unnamed coefficients at
    one_line_error(run("--loss", "poisson", "--init", "intercept=1"), "--init by name", "give all", "in order")


def test_named_init_parse_errors_name_the_flag():
    with pytest.raises(GradfitError, match="needs a number"):
        cli._parse_init("omega0[1,0]=nope", gf.shallow(2, 1, 1), 0)


@pytest.mark.parametrize("args", [["--weights", "2"], ["--bound", "intercept=0:0.1"], ["--fix", "intercept=0"]])
def test_regression_fits_do_not_drop_curve_fit_options(args):
    result = run("--loss", "poisson", "--quiet", *args)
    assert result.exit_code == 2, "exit 0: the option was dropped without a word"


# -- a formula on the built-in data, as the issue spells the command ------------------------------------


def test_formula_on_builtin_data_fits_by_lm_with_named_starts(tmp_path):
    path = tmp_path / "r.json"
    result = run("--model", "a*exp(-k*x) + c", "--init", "a=1,k=0.1", "--bound", "k=0:inf", "--fix", "a=1",
                 "--json", str(path))
    assert result.exit_code == 0, result.output
    d = json.loads(path.read_text())
    assert list(d["params"]) == ["a", "k", "c"] and d["params"]["a"] == 1.0 and d["params"]["k"] >= 0
    assert d["optimizer"]["name"] == "lm" and d["settings"]["fixed"] == {"a": 1.0}
    # the same fit through the library: the formula's model on the built-in Gabor data
    lib = gf.fit(gf.expression("a*exp(-k*x) + c"), "normal", gf.gabor_data(0), "lm", init={"a": 1, "k": 0.1, "c": 1},
                 bounds={"k": (0, None)}, fixed={"a": 1.0})
    np.testing.assert_allclose([d["params"]["k"], d["params"]["c"]], [lib.params["k"], lib.params["c"]], rtol=1e-9)


def test_formula_reading_no_input_names_the_inputs_there_are(tmp_path):
    one_line_error(run("--model", "a*exp(-k*t) + c"), "reads no input", "built-in data's input is x", "--x")
    csv = write_csv(tmp_path / "d.csv", t=np.arange(5.0), y=np.arange(5.0))
    one_line_error(run("--data", str(csv), "--model", "a*exp(-k*z) + c"), "none of d.csv's columns (t)", "--x")


# -- options the fit would ignore are refused ---------------------------------------------------------------


@pytest.mark.parametrize("args, fragments", [
    (["--model", "linear", "--scale", "32"], ["--scale sets the Gabor model's envelope s", "--model linear"]),
    (["--builtin", "linear", "--model", "shallow", "--scale", "32"], ["--scale", "--model shallow"]),
    (["--width", "4"], ["--width sets the shallow network's width", "--model gabor"]),
    (["--loss", "poisson", "--reduction", "mean"], ["--reduction does not apply to a regression model"]),
    (["--loss", "poisson", "--dtype", "float32"], ["--dtype does not apply to a regression model"]),
])
def test_options_a_fit_would_ignore_are_one_line(args, fragments):
    one_line_error(run(*args), *fragments)


@pytest.mark.parametrize("args", [
    ["--model", "gabor", "--scale", "32"],
    ["--model", "shallow", "--width", "4", "--scale", "32"],  # the built-in Gabor data's s
    ["--model", "a*x + b", "--scale", "32"],
])
def test_options_that_shape_the_model_or_its_data_are_taken(args):
    result = run(*args, "--steps", "3", "--quiet")
    assert result.exit_code == 0, result.output

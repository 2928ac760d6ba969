"""The `gradfit fit` contract: options, report, JSON, and clear errors for bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

import gradfit as gf
from gradfit.cli import app

runner = CliRunner()


def run(*args):
    return runner.invoke(app, ["fit", *args])


def write_csv(path, **columns):
    names = list(columns)
    rows = zip(*columns.values())
    path.write_text(",".join(names) + "\n" + "".join(",".join(map(str, r)) + "\n" for r in rows))
    return path


@pytest.fixture
def line_csv(tmp_path):
    x = np.linspace(0, 2, 15)
    return write_csv(tmp_path / "line.csv", a=x, b=x**2, target=1.0 + 0.5 * x)


def test_default_fits_gabor_to_builtin_data_and_reports():
    result = run()
    assert result.exit_code == 0, result.output
    out = result.stdout
    for word in ("phi0", "phi1", "final loss", "steps", "stopped", "gabor"):
        assert word in out
    # the report's numbers are the library's own for the same settings
    lib = gf.fit(gf.gabor(), gf.normal(), gf.gabor_data(0), gf.adam(0.1))
    assert f"{lib.params['phi0']:.6g}" in out and f"{lib.loss:.6g}" in out
    assert lib.stopped in out


def test_json_holds_the_contract(tmp_path):
    path = tmp_path / "r.json"
    result = run("--model", "linear", "--optimizer", "gd", "--lr", "0.01", "--steps", "30", "--tol", "0",
                 "--init", "0.5,0.1", "--json", str(path))
    assert result.exit_code == 0, result.output
    d = json.loads(path.read_text())
    assert list(d["params"]) == ["phi0", "phi1"]
    assert d["history"]["params"][0] == {"phi0": 0.5, "phi1": 0.1}
    assert len(d["history"]["loss"]) == 31 and d["loss"] == d["history"]["loss"][-1]
    assert d["stopped"].startswith("reached the step cap")
    # the same fit through the library gives the same numbers
    lib = gf.fit("linear", "normal", gf.linear_data(0), gf.gd(0.01), init=[0.5, 0.1], steps=30, tol=0)
    assert d["params"] == {"phi0": lib.params["phi0"], "phi1": lib.params["phi1"]}


def test_csv_columns_and_minibatches(line_csv, tmp_path):
    path = tmp_path / "r.json"
    result = run("--data", str(line_csv), "--x", "a", "--y", "target", "--model", "linear", "--optimizer", "sgd",
                 "--lr", "0.05", "--batch-size", "4", "--epochs", "300", "--tol", "0", "--json", str(path))
    assert result.exit_code == 0, result.output
    d = json.loads(path.read_text())
    assert d["steps"] == 300 * 4
    # a linear model's coefficients are named after the columns, as statsmodels names them
    assert list(d["params"]) == ["Intercept", "a"]
    assert d["params"]["Intercept"] == pytest.approx(1.0, abs=1e-2) and d["params"]["a"] == pytest.approx(0.5, abs=1e-2)


def test_parquet_and_several_inputs(tmp_path):
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=50), rng.normal(size=50)
    pq.write_table(pa.table({"a": a, "b": b, "y": 2.0 - a + 3 * b}), tmp_path / "d.parquet")
    out = tmp_path / "r.json"
    result = run("--data", str(tmp_path / "d.parquet"), "--x", "a,b", "--y", "y", "--model", "linear",
                 "--optimizer", "gd", "--lr", "0.005", "--steps", "3000", "--tol", "1e-9", "--json", str(out))
    assert result.exit_code == 0, result.output
    params = json.loads(out.read_text())["params"]
    np.testing.assert_allclose([params["Intercept"], params["a"], params["b"]], [2.0, -1.0, 3.0], atol=1e-8)


@pytest.mark.parametrize(
    "args",
    [
        ["--optimizer", "momentum", "--variant", "heavy-ball", "--lr", "0.005", "--beta", "0.5"],
        ["--optimizer", "nesterov", "--variant", "book", "--lr", "0.01"],
        ["--optimizer", "adam", "--variant", "standard", "--gamma", "0.99", "--eps", "1e-6"],
        ["--optimizer", "gd", "--line-search", "--model", "linear"],
        ["--optimizer", "sgd", "--batch-size", "8", "--schedule", "step", "--decay-every", "50", "--lr", "0.01"],
        ["--optimizer", "adamw", "--weight-decay", "0.001", "--warmup", "10"],
        ["--loss", "poisson", "--model", "linear", "--optimizer", "adam", "--lr", "0.01", "--steps", "50"],
        ["--model", "gabor", "--scale", "32", "--steps", "50", "--seed", "4"],
    ],
)
def test_option_combinations_run(args):
    result = run(*args, "--steps", "50") if "--steps" not in args else run(*args)
    assert result.exit_code == 0, result.output
    assert "final loss" in result.stdout


def _error(result, *fragments):
    assert result.exit_code == 2, result.output
    text = result.stderr
    assert "Traceback" not in result.output
    assert "error" in text
    for fragment in fragments:
        assert fragment in text, text


def test_missing_file():
    _error(run("--data", "no/such/file.csv"), "no such file")


def test_unknown_column_lists_the_columns(line_csv):
    _error(run("--data", str(line_csv), "--x", "nope", "--y", "target"), "'nope'", "a, b, target")


def test_wrong_shapes(line_csv):
    _error(run("--data", str(line_csv), "--x", "a,b", "--y", "target", "--model", "gabor"), "2 column")
    _error(run("--init", "1,2,3"), "phi0, phi1")
    _error(run("--init", "1,abc"), "numbers separated by commas")


def test_nan_and_inf_in_data(tmp_path):
    _error(run("--data", str(write_csv(tmp_path / "n.csv", x=[1, 2, 3], y=[1, "nan", 2]))), "NaN or inf", "line 3")
    _error(run("--data", str(write_csv(tmp_path / "i.csv", x=[1, "inf", 3], y=[1, 2, 2]))), "NaN or inf")


@pytest.mark.parametrize(
    "loss,y,fragment",
    [
        ("poisson", [1, -2, 3, 0], "counts"),
        ("poisson", [1, 2.5, 3, 0], "counts"),
        ("bernoulli", [0, 1, 2, 1], "labels 0 or 1"),
    ],
)
def test_bad_targets(tmp_path, loss, y, fragment):
    path = write_csv(tmp_path / "t.csv", x=[0.1, 0.2, 0.3, 0.4], y=y)
    _error(run("--data", str(path), "--model", "linear", "--loss", loss), fragment)


def test_class_labels_outside_the_range(tmp_path):
    path = write_csv(tmp_path / "c.csv", x=[0.1, 0.2, 0.3, 0.4], y=[0, 1, 2, -1])
    _error(run("--data", str(path), "--model", "shallow", "--loss", "categorical"), "class labels")


def test_empty_data(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("x,y\n")
    _error(run("--data", str(path)), "no rows")


def test_batch_larger_than_data():
    _error(run("--batch-size", "100000"), "larger than the data")


@pytest.mark.parametrize("lr", ["0", "-0.1"])
def test_non_positive_learning_rate(lr):
    _error(run("--lr", lr), "learning rate must be a positive")


@pytest.mark.parametrize(
    "args,fragments",
    [
        (["--model", "cubic"], ["unknown model 'cubic'", "gabor, linear, shallow"]),
        (["--loss", "hinge"], ["unknown loss 'hinge'", "poisson"]),
        (["--optimizer", "lbfgs"], ["unknown optimizer 'lbfgs'", "adam", "nesterov"]),
        (["--optimizer", "nesterov", "--variant", "fast"], ["unknown variant 'fast'", "slides, book, torch"]),
        (["--optimizer", "gd", "--beta", "0.9"], ["gd takes no beta"]),
        (["--optimizer", "adam", "--line-search"], ["--line-search is for --optimizer gd"]),
        (["--schedule", "linear"], ["unknown schedule 'linear'"]),
    ],
)
def test_unknown_names_list_the_known_ones(args, fragments):
    _error(run(*args), *fragments)


def test_diverging_fit_exits_3_with_its_json(tmp_path):
    path = tmp_path / "d.json"
    result = run("--model", "linear", "--optimizer", "gd", "--lr", "5", "--tol", "0", "--json", str(path))
    assert result.exit_code == 3, result.output
    d = json.loads(path.read_text())
    assert d["status"] == "diverged" and np.isfinite(d["loss"])


def test_installed_script_runs_with_no_traceback(tmp_path):
    # the real entry point, in a fresh process, as a user would call it
    done = subprocess.run([sys.executable, "-m", "gradfit.cli", "fit", "--steps", "20", "--quiet"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    bad = subprocess.run([sys.executable, "-m", "gradfit.cli", "fit", "--data", str(tmp_path / "x.csv")],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and "no such file" in bad.stderr


def test_count_regression_reaches_the_optimum_by_default(tmp_path):
    # a linear model with a Poisson loss is a GLM: fitted to its optimum, with uncertainties
    path = tmp_path / "p.json"
    result = run("--model", "linear", "--loss", "poisson", "--builtin", "pedestrians", "--lr", "0.01",
                 "--json", str(path))
    assert result.exit_code == 0, result.output
    d = json.loads(path.read_text())
    assert d["status"] == "converged"
    assert list(d["stderr"]) == list(d["params"])
    assert all(np.isfinite(v) and v > 0 for v in d["stderr"].values())

"""What the command line promises a user: defaults said out loud, one-line errors, honest reports.

Each test is a mistake a user made or a surprise they met, and the answer they should get.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from typer.testing import CliRunner

import gradfit as gf
from gradfit.cli import app

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [*args])


def write_csv(path, **columns):
    names = list(columns)
    rows = zip(*columns.values())
    path.write_text(",".join(names) + "\n" + "".join(",".join(map(str, r)) + "\n" for r in rows))
    return path


def one_line_error(result, *fragments, code=2):
    """Exit status ``code``, one line ``error: ...`` on stderr holding every fragment, no traceback."""
    assert result.exit_code == code, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def counts_csv(tmp_path):
    rng = np.random.default_rng(3)
    temp = np.round(rng.uniform(0, 30, 120), 3)
    count = rng.poisson(np.exp(0.3 + 0.05 * temp))
    label = (rng.uniform(size=120) < 1 / (1 + np.exp(-(temp - 15) / 5))).astype(int)
    kind = rng.integers(0, 3, 120)
    return write_csv(tmp_path / "c.csv", temp=temp, count=count, label=label, kind=kind)


@pytest.fixture
def points_csv(tmp_path):
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=50), rng.normal(size=50)
    return write_csv(tmp_path / "points.csv", a=a, b=b, y=2.0 - a + 3 * b + 0.1 * rng.normal(size=50))


# -- 1. a regression model with one input column ---------------------------------------------------


@pytest.mark.parametrize("loss,y", [("poisson", "count"), ("bernoulli", "label"), ("categorical", "kind")])
def test_regression_with_one_input_column_fits(counts_csv, tmp_path, loss, y):
    path = tmp_path / "r.json"
    result = invoke("fit", "--data", str(counts_csv), "--x", "temp", "--y", y, "--model", "linear", "--loss", loss,
                    "--json", str(path))
    assert result.exit_code == 0, result.output
    d = json.loads(path.read_text())
    assert d["status"] == "converged"
    # the optimum is the library's own Newton fit of the same model
    table = {"temp": np.loadtxt(counts_csv, delimiter=",", skiprows=1, usecols=0),
             y: np.loadtxt(counts_csv, delimiter=",", skiprows=1, usecols=["temp", "count", "label", "kind"].index(y))}
    lib = gf.fit_glm(table, y, loss)
    np.testing.assert_allclose(list(d["params"].values()), list(lib.params.values()), rtol=1e-6, atol=1e-9)


# -- 2. the model when none is named ------------------------------------------------------------------


def test_user_data_without_a_model_fits_a_linear_model(points_csv, tmp_path):
    path = tmp_path / "r.json"
    result = invoke("fit", "--data", str(points_csv), "--json", str(path))
    assert result.exit_code == 0, result.output
    d = json.loads(path.read_text())
    assert d["model"].startswith("linear") and list(d["params"]) == ["Intercept", "a", "b"]
    assert "model linear" in result.stdout
    # least squares of a linear model is solved exactly: the same numbers as numpy's
    data = np.loadtxt(points_csv, delimiter=",", skiprows=1)
    exact = np.linalg.lstsq(np.column_stack([np.ones(len(data)), data[:, :2]]), data[:, 2], rcond=None)[0]
    np.testing.assert_allclose(list(d["params"].values()), exact, rtol=1e-10)
    assert d["optimizer"]["name"] == "lm" and "solved exactly" in d["stopped"]


def test_builtin_data_without_a_model_fits_gabor_and_help_says_so():
    assert "model gabor" in invoke("fit", "--steps", "5").stdout
    help_text = " ".join(invoke("fit", "--help").stdout.replace("│", " ").split())
    assert "gabor on built-in data, linear on --data" in help_text


# -- 3. design options need the regression model ----------------------------------------------------------


@pytest.mark.parametrize("model", ["gabor", "shallow"])
@pytest.mark.parametrize("option", [["--categorical", "kind"], ["--offset", "temp"]])
def test_design_options_need_the_linear_model(counts_csv, model, option):
    one_line_error(invoke("fit", "--data", str(counts_csv), "--y", "count", "--loss", "poisson", "--model", model,
                          *option), "--model linear", f"not --model {model}")


# -- 4. a continuous column given as categorical ---------------------------------------------------------


def test_categorical_on_a_continuous_column_warns_and_fits(tmp_path):
    rng = np.random.default_rng(5)
    x = np.arange(50) / 10
    x[1] = x[0]  # 49 distinct values in 50 rows
    path = write_csv(tmp_path / "w.csv", x=x, y=rng.poisson(3.0, 50))
    result = invoke("fit", "--data", str(path), "--y", "y", "--loss", "poisson", "--categorical", "x", "--steps",
                    "20")
    assert result.exit_code == 0, result.output
    warning = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
    assert len(warning) == 1 and "'x' has 49 levels in 50 rows" in warning[0], result.stderr
    assert "numeric column" in warning[0]
    assert "x[" in result.stdout  # fitted, one coefficient per level, names printed as they are


# -- 5. --no-polish ----------------------------------------------------------------------------------------


def test_no_polish_reports_what_the_optimizer_reached(tmp_path):
    args = ["fit", "--model", "linear", "--loss", "poisson", "--builtin", "pedestrians", "--lr", "0.01", "--steps",
            "30"]
    polished, raw = tmp_path / "p.json", tmp_path / "r.json"
    assert invoke(*args, "--json", str(polished)).exit_code == 0
    result = invoke(*args, "--no-polish", "--json", str(raw))
    assert result.exit_code == 0, result.output
    p, r = json.loads(polished.read_text()), json.loads(raw.read_text())
    assert p["status"] == "converged" and p["optimizer"]["polish"] == "newton"
    assert r["status"] == "max_steps" and r["steps"] == 30 and not r["optimizer"]["polish"]
    assert r["loss"] > p["loss"]
    # not at the optimum: no standard errors, and the report says why
    assert r["stderr"] is None and "no uncertainties" in result.stdout
    assert "then Newton" not in result.stdout


def test_polish_is_off_by_default_for_other_fits_and_can_be_asked_for(tmp_path):
    plain, polished = tmp_path / "a.json", tmp_path / "b.json"
    assert invoke("fit", "--steps", "50", "--json", str(plain)).exit_code == 0
    assert invoke("fit", "--steps", "50", "--polish", "--json", str(polished)).exit_code == 0
    a, b = json.loads(plain.read_text()), json.loads(polished.read_text())
    assert a["steps"] == 50 and not a["optimizer"].get("polish")
    assert b["steps"] > 50 and b["status"] == "converged"


# -- 6, 7. numbers out of range ------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["nan,10", "inf,10", "1,-inf"])
def test_non_finite_init_is_bad_input(value):
    one_line_error(invoke("fit", "--init", value), "--init holds a non-finite value")


@pytest.mark.parametrize(
    "args,fragment",
    [
        (["--seed", "-1"], "--seed must be a whole number >= 0"),
        (["--steps", "-5"], "--steps must be a whole number >= 0"),
        (["--batch-size", "0"], "--batch-size must be a whole number >= 1"),
        (["--epochs", "0"], "--epochs must be a whole number >= 1"),
        (["--tol", "-1"], "tol must be a number >= 0"),
        (["--lr", "nan"], "--lr must be a finite number"),
        (["--history-every", "0"], "--history-every must be a whole number >= 1"),
        (["--checkpoint-every", "0"], "--checkpoint-every must be a whole number >= 1"),
    ],
)
def test_numbers_out_of_range_are_one_line(args, fragment):
    one_line_error(invoke("fit", *args), fragment)


@pytest.mark.parametrize("command", ["lecture", "compare", "landscape"])
def test_negative_seed_in_the_figure_commands(command, tmp_path):
    one_line_error(invoke(command, "--seed", "-1", "--out", str(tmp_path / "o")), "--seed must be a whole number")


# -- 8. compare on a model that diverges ------------------------------------------------------------------------


def test_compare_shallow_model_on_user_data(tmp_path):
    # gd and momentum blow up on these counts (to parameters of 1e150): the slice is drawn
    # around the paths that did not
    rng = np.random.default_rng(0)
    temp = rng.uniform(0, 30, 200)
    path = write_csv(tmp_path / "c.csv", temp=temp, count=rng.poisson(np.exp(0.5 + 0.05 * temp)))
    out = tmp_path / "cmp"
    result = invoke("compare", "--model", "shallow", "--data", str(path), "--resolution", "30", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert (out / "compare.html").is_file() and (out / "compare.png").is_file()


# -- 9. --out naming a file --------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["lecture", "compare", "landscape"])
def test_out_naming_a_file_is_bad_input(command, tmp_path):
    target = tmp_path / "lecture.html"
    target.write_text("mine")
    one_line_error(invoke(command, "--out", str(target)), f"--out {target} is a file; give a folder")
    assert target.read_text() == "mine"


def test_library_figures_refuse_a_file_as_folder(tmp_path):
    from gradfit import lecture

    target = tmp_path / "x"
    target.write_text("")
    with pytest.raises(gf.GradfitError, match="is a file; give a folder"):
        lecture.explore(gf.linear(1), gf.normal(), gf.linear_data(0), gf.gd(0.1), target, steps=5)


# -- 10. divergence is said even under -q ----------------------------------------------------------------------


def test_divergence_is_said_on_stderr_even_when_quiet():
    result = invoke("fit", "--model", "linear", "--optimizer", "gd", "--lr", "5", "--tol", "0", "-q")
    assert result.exit_code == 3
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("diverged") and "non-finite" in lines[0], result.stderr


# -- 11. text is printed as it is, not as Rich markup ------------------------------------------------------------


def test_compare_table_shows_the_variant(tmp_path):
    result = invoke("compare", "--model", "linear", "--optimizers", "nesterov:torch,gd", "--steps", "20",
                    "--resolution", "10", "--out", str(tmp_path / "c"))
    assert result.exit_code == 0, result.output
    assert "nesterov [torch] (α=0.1" in result.stdout


def test_error_messages_keep_their_brackets(points_csv):
    one_line_error(invoke("fit", "--data", str(points_csv), "--x", "a[b]", "--y", "y"), "'a[b]'")


def test_usage_errors_are_one_line():
    one_line_error(invoke("fit", "--steps", "abc"), "'--steps'", "gradfit fit --help")
    one_line_error(invoke("fit", "--no-such-option"), "--no-such-option")
    one_line_error(invoke("fit", "--line-search", "true"), "true", "switches take no value")


# -- 12. conventional flags --------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", [[], ["fit"], ["lecture"], ["compare"], ["landscape"]])
def test_short_help(command):
    short, long = invoke(*command, "-h"), invoke(*command, "--help")
    assert short.exit_code == 0 and short.stdout == long.stdout and "Usage" in short.stdout


def test_version():
    result = invoke("--version")
    assert result.exit_code == 0 and result.stdout.strip() == f"gradfit {gf.__version__}"


def test_line_search_can_be_turned_off():
    on = invoke("fit", "--model", "linear", "--optimizer", "gd", "--line-search", "--steps", "20")
    off = invoke("fit", "--model", "linear", "--optimizer", "gd", "--line-search", "--no-line-search", "--steps", "20")
    assert on.exit_code == 0 and off.exit_code == 0
    assert "line search" in on.stdout and "line search" not in off.stdout


# -- 13. the report ----------------------------------------------------------------------------------------------


def test_report_says_each_number_once_and_what_the_loss_is():
    result = invoke("fit", "--model", "linear", "--loss", "poisson", "--builtin", "pedestrians")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert out.count("final loss") == 1 and out.count("log-likelihood -") == 1
    assert len(re.findall(r"^steps ", out, re.M)) == 1
    assert not re.search(r"^ *(log-likelihood|status|gradient norm|# steps) ", out, re.M)
    line = next(t for t in out.splitlines() if t.startswith("final loss"))
    assert "without its log y! terms" in line and "log-likelihood -" in line
    least_squares = invoke("fit", "--steps", "2000").stdout
    assert "(sum of squared residuals; log-likelihood" in least_squares and "chi-square  " not in least_squares


def test_readme_shows_the_real_report():
    readme = (gf.__file__ and __import__("pathlib").Path(__file__).parents[1] / "README.md").read_text()
    sample = readme.split("$ gradfit fit\n", 1)[1].split("```", 1)[0].splitlines()
    real = invoke("fit").stdout.splitlines()
    # the same lines; only the time may differ
    assert len(sample) == len(real)
    for shown, actual in zip(sample, real, strict=True):
        if not actual.startswith("time "):
            assert shown == actual


def test_no_familys():
    from gradfit.glm import GLM, glm

    with pytest.raises(gf.GradfitError, match="known families: "):
        GLM(glm({"x": [1.0, 2.0, 3.0], "y": [1, 0, 2]}, "y").design, np.array([1, 0, 2]), "binomial")


# -- 14. stalls, interrupts, checkpoints ---------------------------------------------------------------------------


def test_report_names_the_kind_of_point():
    # far from the data the Gabor model's loss hardly changes: a stop there is no minimum
    result = invoke("fit", "--init", "100,100")
    assert result.exit_code == 0, result.output
    assert re.search(r"^stopped +stalled", result.stdout, re.M)
    assert re.search(r"^point +saddle \(the Hessian has a negative eigenvalue\)$", result.stdout, re.M), result.stdout
    assert re.search(r"^point +minimum", invoke("fit").stdout, re.M)


def test_interrupted_fit_reports_writes_json_and_says_how_to_resume(monkeypatch, tmp_path):
    partial = gf.fit("linear", "normal", gf.linear_data(0), gf.gd(0.01), steps=7, tol=0)
    import dataclasses

    partial = dataclasses.replace(partial, status="interrupted", stopped="interrupted by SIGINT after 7 steps")
    saved = tmp_path / "ck"

    def stop(*args, **kwargs):
        raise gf.Interrupted(partial, saved)

    monkeypatch.setattr(gf, "fit", stop)
    path = tmp_path / "r.json"
    result = invoke("fit", "--model", "linear", "--checkpoint", str(saved), "--json", str(path))
    assert result.exit_code == 130, result.output
    assert "interrupted by SIGINT after 7 steps" in result.stdout
    assert json.loads(path.read_text())["status"] == "interrupted"
    line = result.stderr.strip()
    assert "\n" not in line and line.startswith("interrupted after 7 steps")
    command = line.split("resume with: ", 1)[1]
    assert shlex.split(command) == ["gradfit", "fit", "--model", "linear", "--checkpoint", str(saved), "--json",
                                    str(path), "--resume", str(saved)]


@pytest.mark.parametrize("command", ["lecture", "compare", "landscape"])
def test_interrupted_figures_say_what_was_written(monkeypatch, tmp_path, command):
    from gradfit import lecture

    out = tmp_path / "o"

    def stop(*args, **kwargs):
        out.mkdir(exist_ok=True)
        (out / "linear.png").write_bytes(b"")
        raise KeyboardInterrupt

    monkeypatch.setattr(lecture, {"lecture": "build", "compare": "compare", "landscape": "explore"}[command], stop)
    result = invoke(command, "--out", str(out), "--model", "linear") if command != "lecture" else \
        invoke(command, "--out", str(out))
    assert result.exit_code == 130, result.output
    assert result.stderr.strip() == f"interrupted; 1 file(s) written to {out} so far: linear.png"


def _gradfit(*args):
    return [sys.executable, "-m", "gradfit.cli", *args]


def test_ctrl_c_leaves_a_checkpoint_and_the_printed_command_resumes(tmp_path):
    # the real process and signal: Ctrl-C mid-fit, then the command it prints
    saved, path = tmp_path / "fit.ckpt", tmp_path / "r.json"
    args = ["fit", "--model", "linear", "--optimizer", "gd", "--lr", "0.001", "--steps", "300000", "--tol", "0",
            "--checkpoint", str(saved), "--checkpoint-every", "2048", "--json", str(path), "-q"]
    env = {**os.environ, "GRADFIT_NO_CACHE": "1"}
    proc = subprocess.Popen(_gradfit(*args), stderr=subprocess.PIPE, text=True, env=env)
    # the first checkpoint is written before the first chunk; the second, 2,048 steps in,
    # says the loop is running
    deadline, first = time.monotonic() + 120, None
    while time.monotonic() < deadline and proc.poll() is None:
        stamp = saved.stat().st_mtime_ns if saved.exists() else None
        if first is None:
            first = stamp
        elif stamp != first:
            break
        time.sleep(0.02)
    assert proc.poll() is None and saved.exists(), "the fit ended or wrote no checkpoint"
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and stderr.count("\n") == 1, stderr
    d = json.loads(path.read_text())
    assert d["status"] == "interrupted" and 0 < d["steps"] < 300_000
    resume = shlex.split(stderr.split("resume with: ", 1)[1])
    assert resume[:2] == ["gradfit", "fit"] and resume[-2:] == ["--resume", str(saved)]
    # the command as printed finishes the fit from where it stopped
    done = subprocess.run(_gradfit(*resume[1:]), capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    d = json.loads(path.read_text())
    assert d["status"] == "max_steps" and d["steps"] == 300_000


@pytest.mark.parametrize("sep, flag", [(";", ";"), ("\t", "\\t"), ("|", "|")])
def test_delimiter_is_detected_or_named(tmp_path, sep, flag):
    x = np.linspace(0.0, 2.0, 9)
    path = tmp_path / "d.csv"
    path.write_text(f"x{sep}y\n" + "".join(f"{a}{sep}{1.0 + 0.5 * a}\n" for a in x))
    detected = invoke("fit", "--data", str(path), "--steps", "50", "--json", str(tmp_path / "a.json"))
    named = invoke("fit", "--data", str(path), "--delimiter", flag, "--steps", "50", "--json", str(tmp_path / "b.json"))
    assert detected.exit_code == 0 and named.exit_code == 0, detected.output + named.output
    a, b = (json.loads((tmp_path / f).read_text()) for f in ("a.json", "b.json"))
    assert a["params"] == b["params"] and a["settings"]["n_examples"] == 9
    wrong = invoke("fit", "--data", str(path), "--delimiter", ",", "--steps", "5")
    one_line_error(wrong, "--delimiter")


@pytest.mark.parametrize("text, line", [("x,count\n1,2\n2,\n3,4\n4,5\n", 3), ("x,count\n1,2\n2,3\n,4\n4,5\n", 4)])
def test_regression_data_errors_name_the_file_line(tmp_path, text, line):
    path = tmp_path / "gaps.csv"
    path.write_text(text)
    result = invoke("fit", "--data", str(path), "--model", "linear", "--loss", "poisson")
    one_line_error(result, "gaps.csv", f"at line {line}")

"""`gradfit.sweep` and ``gradfit sweep``: one row per run, each the fit `gradfit.fit` runs alone; resuming,
refusals, Dask, and the command line."""

from __future__ import annotations

import itertools
import json
import math
import os
import signal
import socket
import time

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import gradfit as gf
from gradfit.cli import app
from gradfit.errors import GradfitError
from gradfit.sweeps import runner, store

GABOR = gf.gabor_data(0, n=30)
STEPS = 100
LRS = "0.01:0.5:log:4"
COLUMNS = {"optimizer", "variant", "lr", "beta", "seed", "init_phi0", "final_phi0", "final_loss", "best_loss", "steps",
           "status", "seconds", "run"}
NUMBERS = ("beta", "gamma", "eps", "weight_decay")

cli = CliRunner()
run_group = runner.run_group  # the real one, whatever a test patches in its place


def grid_sweep(**settings):
    """The sweep most tests share: adam and momentum, four learning rates, two seeds, full batch."""
    return gf.sweep("gabor", "normal", GABOR, "adam,momentum", grid={"lr": LRS}, seeds=2, steps=STEPS, tol=0,
                    **settings)


@pytest.fixture(scope="module")
def rows():
    return grid_sweep()


def optimizer_of(row):
    """The optimiser a row names: its rule, variant, lr and whichever of β, γ, ε, λ it has."""
    numbers = {k: row[k] for k in NUMBERS if k in row.index and not pd.isna(row[k])}
    return gf.make_optimizer(row["optimizer"], lr=row["lr"], variant=row["variant"], **numbers)


def fit_alone(row, data=GABOR, model="gabor", **settings):
    """The reference: the row's fit run on its own, from the row's start."""
    init = {name: row[f"init_{name}"] for name in ("phi0", "phi1") if f"init_{name}" in row.index}
    return gf.fit(model, "normal", data, optimizer_of(row), seed=int(row["seed"]), init=init or None, **settings)


def final_params(row, names=("phi0", "phi1")):
    return np.array([row[f"final_{name}"] for name in names])


class Calls:
    """A stand-in for `runner.run_group` that counts the runs it is given (and runs them, unless told not to)."""

    def __init__(self, run=True, fail_after=None):
        self.run, self.fail_after = run, fail_after
        self.runs: list[int] = []

    def __call__(self, group):
        if self.fail_after is not None and len(self.runs) >= self.fail_after:
            raise KeyboardInterrupt  # the sweep killed between groups
        self.runs.append(len(group.runs))
        if not self.run:
            raise AssertionError("the sweep ran a group where it should have run none")
        return run_group(group)


# -- rows -------------------------------------------------------------------------------------------


def test_one_row_per_run_in_the_order_of_configuration_then_seed(rows):
    assert len(rows) == 2 * 4 * 2
    assert COLUMNS <= set(rows.columns)
    lrs = np.geomspace(0.01, 0.5, 4).tolist()
    want = list(itertools.product(["adam", "momentum"], lrs, [0, 1]))
    assert list(zip(rows["optimizer"], rows["lr"], rows["seed"])) == want
    assert (rows["variant"] == "slides").all() and (rows["beta"] == 0.9).all()
    assert rows["run"].is_unique
    assert (rows["steps"] == STEPS).all() and (rows["status"] == "max_steps").all()
    assert np.all(np.isfinite(rows["seconds"])) and (rows["seconds"] > 0).all()


def test_each_row_is_the_fit_run_alone(rows):
    for _, row in rows.iterrows():
        ref = fit_alone(row, steps=STEPS, tol=0)
        assert row["final_loss"] == ref.loss
        np.testing.assert_array_equal(final_params(row), ref.x)
        np.testing.assert_array_equal([row["init_phi0"], row["init_phi1"]], ref.history.params[0])
        # the recorded losses are a vmapped pass after the loop: equal to the fit alone's to the last bit or so
        assert row["best_loss"] == pytest.approx(np.min(ref.history.loss[np.isfinite(ref.history.loss)]), rel=1e-12)
        assert row["best_loss"] <= row["final_loss"]


def test_a_grid_over_the_start_sets_each_rows_start():
    found = gf.sweep("gabor", "normal", GABOR, "sgd", grid={"lr": [0.001], "init.phi0": [-1.0, 0.5]}, seeds=[3, 5],
                     steps=STEPS, tol=0)
    assert found["init_phi0"].tolist() == [-1.0, -1.0, 0.5, 0.5]
    assert found["seed"].tolist() == [3, 5, 3, 5]
    model = gf.gabor()
    # the parameters not swept start where the row's seed starts them
    assert found["init_phi1"].tolist() == [model.default_init(s)[1] for s in (3, 5, 3, 5)]
    for _, row in found.iterrows():
        ref = fit_alone(row, steps=STEPS, tol=0)
        assert row["final_loss"] == ref.loss
        np.testing.assert_array_equal(final_params(row), ref.x)


def test_a_diverging_run_is_marked_and_leaves_the_others_alone():
    data = gf.linear_data(0)
    found = gf.sweep("linear", "normal", data, "gd", grid={"lr": [0.001, 0.01, 1e6]}, steps=STEPS, tol=0)
    assert found["status"].tolist() == ["max_steps", "max_steps", "diverged"]
    assert found["final_loss"].iloc[2] == math.inf
    assert np.isfinite(found["best_loss"].iloc[2]) and found["steps"].iloc[2] < STEPS
    for _, row in found.iloc[:2].iterrows():
        ref = gf.fit("linear", "normal", data, gf.gd(row["lr"]), steps=STEPS, tol=0)
        assert row["final_loss"] == ref.loss
        np.testing.assert_array_equal(final_params(row, ("phi0", "phi1")), ref.x)
    assert gf.fit("linear", "normal", data, gf.gd(1e6), steps=STEPS, tol=0).status == "diverged"


def test_fewer_lanes_per_call_give_the_same_rows(rows):
    # 8 runs in calls of 3: the last call is padded to 3 lanes, and its padding is no row
    narrow = gf.sweep("gabor", "normal", GABOR, "adam", grid={"lr": LRS}, seeds=2, steps=STEPS, tol=0, lanes=3)
    adam = rows[rows["optimizer"] == "adam"].reset_index(drop=True)
    assert narrow["run"].tolist() == adam["run"].tolist()
    timed_or_reduced = ["seconds", "best_loss"]
    pd.testing.assert_frame_equal(narrow.drop(columns=timed_or_reduced), adam.drop(columns=timed_or_reduced))
    np.testing.assert_allclose(narrow["best_loss"], adam["best_loss"], rtol=1e-12)  # a pass over 3 lanes, not 8


def test_minibatch_rows_are_the_fits_run_alone():
    found = gf.sweep("gabor", "normal", GABOR, "sgd", grid={"lr": [0.001, 0.003], "batch_size": [7]}, seeds=2,
                     steps=STEPS, tol=0)
    assert found["batch_size"].tolist() == [7] * 4
    for _, row in found.iterrows():
        ref = fit_alone(row, steps=STEPS, tol=0, batch_size=7)
        # vmapped reductions may round the last bit differently (see test_fitter)
        assert row["final_loss"] == pytest.approx(ref.loss, rel=1e-12)
        np.testing.assert_allclose(final_params(row), ref.x, rtol=1e-12)


def test_columns_come_in_the_documented_order_whichever_optimizer_runs_first(rows):
    found = gf.sweep("gabor", "normal", GABOR, "momentum,adam", grid={"lr": LRS}, seeds=2, steps=STEPS, tol=0)
    assert found.columns.tolist() == rows.columns.tolist()


# -- the output file --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["runs.parquet", "runs.csv"])
def test_a_sweep_resumes_from_its_output_file(name, tmp_path, monkeypatch, rows):
    out = tmp_path / name
    first = Calls(fail_after=1)  # adam's group is written, then the sweep is killed
    monkeypatch.setattr(runner, "run_group", first)
    with pytest.raises(KeyboardInterrupt):
        grid_sweep(out=out)
    written, meta = store.read(out)
    assert first.runs == [8] and len(written) == 8 and (written["optimizer"] == "adam").all()
    assert meta["steps"] == STEPS

    second = Calls()  # the rerun runs only momentum's group
    monkeypatch.setattr(runner, "run_group", second)
    progress = []
    done = grid_sweep(out=out, progress=lambda *counts: progress.append(counts))
    assert second.runs == [8]
    assert progress == [(8, 16, 8), (16, 16, 8)]  # (finished, all, skipped as already written)
    pd.testing.assert_frame_equal(done.drop(columns="seconds"), rows.drop(columns="seconds"))
    assert len(store.read(out)[0]) == 16

    monkeypatch.setattr(runner, "run_group", Calls(run=False))  # everything is there: nothing runs
    again = grid_sweep(out=out)
    pd.testing.assert_frame_equal(again, done)


def test_a_file_of_another_sweep_is_refused_saying_what_differs(tmp_path, monkeypatch):
    out = tmp_path / "runs.csv"
    kwargs = dict(grid={"lr": [0.1]}, steps=STEPS, tol=0, out=out)
    gf.sweep("gabor", "normal", GABOR, "adam", seeds=1, **kwargs)
    assert (tmp_path / "runs.csv.meta.json").is_file()
    monkeypatch.setattr(runner, "run_group", Calls(run=False))
    with pytest.raises(GradfitError) as caught:
        gf.sweep("gabor", "normal", GABOR, "adam", seeds=2, **kwargs)
    assert str(caught.value) == (f"{out} holds another sweep (space.seeds: [0] there, [0,1] now): give a new --out, "
                                 "or delete the file to start again")
    with pytest.raises(GradfitError, match=r"holds another sweep \(data: "):
        gf.sweep("gabor", "normal", gf.gabor_data(1, n=30), "adam", seeds=1, **kwargs)
    with pytest.raises(GradfitError, match=r"holds another sweep \(steps: 100 there, 50 now\)"):
        gf.sweep("gabor", "normal", GABOR, "adam", seeds=1, **{**kwargs, "steps": 50})
    assert len(pd.read_csv(out)) == 1  # refused, the file is as it was


# -- refusals ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("optimizer, settings, fragments", [
    ("adam", dict(grid={"lr": []}), ["lr has no values"]),
    ("adam", dict(grid=["lr="]), ["gives lr no values"]),
    ("sgd", dict(grid={"beta": [0.5]}), ["sgd takes no beta"]),
    ("adam,momentum", dict(grid={"gamma": [0.9]}), ["momentum takes no gamma", "drop gamma"]),
    ("adam", dict(grid={"lr": [0.1, 0.0]}), ["lr must be > 0, not 0"]),
    ("adam", dict(grid={"lr": "-1:1:lin:3"}), ["lr must be > 0, not -1"]),
    ("momentum", dict(grid={"beta": [0.5, 1.0]}), ["beta must lie in [0, 1), not 1"]),
    ("adam", dict(batch_size=31), ["batch size 31 is larger than the data (30 examples)"]),
    ("adam", dict(grid={"batch_size": [5, 31]}), ["batch size 31 is larger than the data (30 examples)"]),
    ("adam", dict(grid={"init.nope": [1.0]}), ["init.nope names no parameter of model 'gabor'", "phi0, phi1"]),
    ("adam", dict(search="optuna"), ["an Optuna search needs trials"]),
    ("adam", dict(grid={"lr": "0.001:1:log"}), ["has no count"]),
    ("adam", dict(grid={"lr": [0.1]}, seeds=0), ["seeds must be at least 1"]),
    ("lm", dict(), ["second-order method"]),
], ids=["empty-list", "empty-text", "no-beta", "one-lacks-gamma", "lr-0", "lr-negative", "beta-1", "batch-size",
        "batch-size-axis", "init-nope", "optuna-no-trials", "no-count", "no-seeds", "second-order"])
def test_bad_input_is_refused_before_anything_runs(optimizer, settings, fragments, monkeypatch):
    monkeypatch.setattr(runner, "run_group", Calls(run=False))
    with pytest.raises(GradfitError) as caught:
        gf.sweep("gabor", "normal", GABOR, optimizer, **{"steps": STEPS, **settings})
    for fragment in fragments:
        assert fragment in str(caught.value)


def test_a_sweep_too_big_for_memory_is_refused_at_once(monkeypatch):
    monkeypatch.setattr(runner, "run_group", Calls(run=False))
    start = time.perf_counter()
    with pytest.raises(GradfitError) as caught:
        gf.sweep("gabor", "normal", GABOR, "adam", grid={"lr": "0.001:1:log:100000", "beta": "0.1:0.9:lin:100000"})
    assert time.perf_counter() - start < 1
    message = str(caught.value)
    assert message.startswith("the sweep asks for 10,000,000,000 runs")
    assert "memory" in message and "--random N" in message


def test_a_huge_count_on_a_whole_number_axis_is_refused_or_reduced(monkeypatch):
    runs = []  # the groups are counted, not run
    monkeypatch.setattr(runner, "run_group", lambda group: runs.append(len(group.runs)) or pd.DataFrame())
    try:  # steps=1:100:lin:10^12 is the whole numbers 1..100, or a refusal; never 7 TiB of points
        gf.sweep("gabor", "normal", GABOR, "adam", grid={"steps": "1:100:lin:1000000000000"})
    except GradfitError:
        return
    assert sum(runs) == 100


# -- Dask -------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_workers_give_the_rows_of_the_in_process_run(rows):
    pytest.importorskip("distributed")
    remote = grid_sweep(workers=2)
    assert remote["run"].tolist() == rows["run"].tolist()
    np.testing.assert_array_equal(remote["final_loss"], rows["final_loss"])
    np.testing.assert_array_equal(remote[["final_phi0", "final_phi1"]], rows[["final_phi0", "final_phi1"]])
    # the same table, columns in the same order, whichever group finished first
    pd.testing.assert_frame_equal(remote.drop(columns="seconds"), rows.drop(columns="seconds"))


@pytest.mark.slow
def test_a_worker_killed_mid_sweep_loses_and_repeats_no_run(tmp_path):
    distributed = pytest.importorskip("distributed")
    out = tmp_path / "runs.parquet"
    lrs, sizes = [0.001, 0.002, 0.003], [5, 6, 10, 15, 29, 30]  # six groups, each a few seconds
    settings = dict(grid={"lr": lrs, "batch_size": sizes}, seeds=2, steps=2000, tol=0)
    killed = []
    with (distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                   dashboard_address=None) as local,
          distributed.Client(local, set_as_default=False) as client):
        client.wait_for_workers(2, timeout=60)
        pids = client.run(os.getpid)

        def progress(done, total, skipped):
            # called as each group's rows are written: kill a worker that is running a group
            busy = [w for w, tasks in client.processing().items() if tasks and w in pids]
            if done and busy and not killed:
                killed.append(busy[0])
                os.kill(pids[busy[0]], signal.SIGKILL)

        found = gf.sweep("gabor", "normal", GABOR, "sgd", scheduler=client, out=out, progress=progress, **settings)
    assert killed, "no worker was running a group when the first rows were written"
    written, _ = store.read(out)
    runs = list(zip(written["lr"], written["batch_size"], written["seed"]))
    assert len(runs) == len(set(runs)) == 3 * 6 * 2  # every run once
    assert set(runs) == set(itertools.product(lrs, sizes, [0, 1]))
    assert written["run"].is_unique and pd.read_parquet(out)["run"].is_unique
    assert written["status"].eq("max_steps").all() and np.isfinite(written["final_loss"]).all()
    pd.testing.assert_frame_equal(found.sort_values("run", ignore_index=True),
                                  written.sort_values("run", ignore_index=True), check_like=True)
    for _, row in found.iloc[[0, -1]].iterrows():  # rows of the first and last groups, against fits run alone
        ref = fit_alone(row, steps=2000, tol=0, batch_size=int(row["batch_size"]))
        assert row["final_loss"] == pytest.approx(ref.loss, rel=1e-12)


# -- the command line -------------------------------------------------------------------------------

ISSUE = ["sweep", "--model", "gabor", "--optimizer", "adam,momentum", "--grid", "lr=0.001:1:log:4", "--grid",
         "beta=0.5,0.9", "--seeds", "2", "--steps", str(STEPS)]


@pytest.fixture(scope="module")
def cli_sweep(tmp_path_factory):
    """The issue's command, small: its result and output file."""
    out = tmp_path_factory.mktemp("cli") / "runs.parquet"
    return cli.invoke(app, [*ISSUE, "--out", str(out)]), out


def test_cli_sweep_prints_a_table_writes_every_run_and_resumes(cli_sweep, monkeypatch):
    result, out = cli_sweep
    assert result.exit_code == 0, result.output
    assert "32 runs" in result.stdout and "median final loss" in result.stdout
    assert "adam" in result.stdout and "momentum" in result.stdout
    written = pd.read_parquet(out)
    assert len(written) == 2 * 4 * 2 * 2 and written["run"].is_unique
    assert sorted(set(written["beta"])) == [0.5, 0.9]
    assert np.allclose(sorted(set(written["lr"])), np.geomspace(0.001, 1, 4), rtol=1e-15)
    # the table: each optimiser's best configuration by the median final loss over its seeds
    medians = written.groupby(["optimizer", "lr", "beta"])["final_loss"].median()
    for name in ("adam", "momentum"):
        assert f"{medians[name].min():.6g}" in result.stdout

    monkeypatch.setattr(runner, "run_group", Calls(run=False))
    again = cli.invoke(app, [*ISSUE, "--out", str(out)])
    assert again.exit_code == 0, again.output
    assert "32 runs" in again.stdout
    pd.testing.assert_frame_equal(pd.read_parquet(out), written)


def test_a_cli_row_reruns_with_gradfit_fit(cli_sweep, tmp_path):
    _, out = cli_sweep
    written = pd.read_parquet(out)
    # gradfit fit --seed S seeds its built-in data too; the sweep's data are those of --data-seed 0. So a row of
    # seed 0 reruns on the built-in data, and any row on the same data from a file.
    data = tmp_path / "gabor.csv"
    builtin = gf.gabor_data(0, s=8.0)
    pd.DataFrame({"x": builtin.x.ravel(), "y": builtin.y.ravel()}).to_csv(data, index=False)
    for index, source in ((4, []), (29, ["--data", str(data)])):
        row = written.iloc[index]
        assert int(row["seed"]) == (0 if not source else 1)
        report = tmp_path / f"{row['run']}.json"
        args = ["fit", *source, "--model", "gabor", "--optimizer", row["optimizer"], "--variant", row["variant"],
                "--lr", repr(float(row["lr"])), "--beta", repr(float(row["beta"])), "--seed", str(int(row["seed"])),
                "--steps", str(STEPS), "--json", str(report), "--quiet"]
        done = cli.invoke(app, args)
        assert done.exit_code == 0, done.output
        fitted = json.loads(report.read_text())
        assert fitted["loss"] == pytest.approx(row["final_loss"], rel=1e-12)
        assert [fitted["params"]["phi0"], fitted["params"]["phi1"]] == pytest.approx(final_params(row), rel=1e-12)


def test_cli_random_search_to_csv(tmp_path):
    out = tmp_path / "runs.csv"
    result = cli.invoke(app, ["sweep", "--random", "5", "--grid", "lr=0.001:1:log", "--steps", str(STEPS), "--out",
                              str(out)])
    assert result.exit_code == 0, result.output
    written = pd.read_csv(out)
    assert len(written) == 5 and written["lr"].nunique() == 5
    assert written["lr"].between(0.001, 1).all()
    assert json.loads((tmp_path / "runs.csv.meta.json").read_text())["meta"]["space"]["random"] == 5


def test_cli_optuna_search(tmp_path):
    pytest.importorskip("optuna")
    out = tmp_path / "runs.parquet"
    result = cli.invoke(app, ["sweep", "--search", "optuna", "--trials", "4", "--grid", "lr=0.001:1:log", "--seeds",
                              "2", "--steps", str(STEPS), "--out", str(out)])
    assert result.exit_code == 0, result.output
    written = pd.read_parquet(out)
    assert len(written) == 4 * 2 and sorted(set(written["trial"])) == [0, 1, 2, 3]
    assert written["lr"].between(0.001, 1).all()


def test_cli_plot_writes_a_png(tmp_path):
    path = tmp_path / "s.png"
    result = cli.invoke(app, ["sweep", "--grid", "lr=0.01,0.1", "--steps", str(STEPS), "--plot", str(path), "--quiet"])
    assert result.exit_code == 0, result.output
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_step_schedule_rows_are_the_fits_run_alone(tmp_path):
    out = tmp_path / "runs.csv"
    result = cli.invoke(app, ["sweep", "--schedule", "step", "--decay-factor", "0.5", "--decay-every", "20", "--grid",
                              "lr=0.05,0.2", "--steps", str(STEPS), "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    written = pd.read_csv(out)
    assert written["schedule"].tolist() == ["step", "step"] and written["factor"].tolist() == [0.5, 0.5]
    builtin = gf.gabor_data(0, s=8.0)
    for _, row in written.iterrows():
        ref = gf.fit("gabor", "normal", builtin, gf.adam(gf.step_decay(row["lr"], 0.5, 20)), steps=STEPS)
        assert row["final_loss"] == ref.loss


@pytest.mark.parametrize("schedule", ["exponential", "cosine"])
def test_cli_sweeps_every_schedule(schedule, tmp_path):
    out = tmp_path / "runs.csv"
    result = cli.invoke(app, ["sweep", "--schedule", schedule, "--grid", "lr=0.05,0.2", "--steps", str(STEPS),
                              "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    written = pd.read_csv(out)
    assert written["schedule"].tolist() == [schedule] * 2


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("args, fragment", [
    (["--grid", "lr="], "gives lr no values"),
    (["--optimizer", "sgd", "--grid", "beta=0.5"], "sgd takes no beta"),
    (["--grid", "lr=0,0.1"], "lr must be > 0"),
    (["--grid", "beta=0.5,1"], "beta must lie in [0, 1)"),
    (["--grid", "lr=0.001:1:log:100000", "--grid", "beta=0.1:0.9:lin:100000"], "runs, whose rows alone need"),
    (["--batch-size", "1000"], "is larger than the data"),
    (["--grid", "batch_size=5,1000"], "is larger than the data"),
    (["--grid", "init.nope=1,2"], "init.nope names no parameter"),
    (["--search", "optuna"], "needs --trials"),
    (["--trials", "4"], "--trials is for --search optuna"),
    (["--grid", "lr=0.001:1:log"], "has no count"),
    (["--out", "runs.txt"], "cannot tell the format"),
], ids=["empty", "no-beta", "lr-0", "beta-1", "memory", "batch-size", "batch-size-axis", "init-nope",
        "optuna-no-trials", "trials-no-optuna", "no-count", "out-format"])
def test_cli_bad_input_is_one_error_line_and_exit_2(args, fragment, monkeypatch):
    monkeypatch.setattr(runner, "run_group", Calls(run=False))
    result = cli.invoke(app, ["sweep", *args])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert fragment in lines[0]
    assert result.stdout == ""


def test_cli_scheduler_nobody_listens_on_fails_fast():
    start = time.perf_counter()
    result = cli.invoke(app, ["sweep", "--grid", "lr=0.01,0.1", "--steps", str(STEPS), "--scheduler",
                              f"tcp://127.0.0.1:{free_port()}"])
    assert time.perf_counter() - start < 10
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: cannot reach the Dask scheduler at tcp://127.0.0.1:")

"""Optuna search over sweep runs: the search space, batches of vmapped trials, pruning, resuming, refusals."""

from __future__ import annotations

import importlib.util
import json
import math
import re
import sys
from pathlib import Path

import numpy as np
import pytest

import gradfit as gf
from gradfit.errors import GradfitError
from gradfit.sweeps import runner
from gradfit.sweeps import search as sweep_search
from gradfit.sweeps.search import describe, search
from gradfit.sweeps.space import Axis, Space
from gradfit.sweeps.store import Store

optuna = pytest.importorskip("optuna")

GABOR = gf.gabor_data(0, n=30)
SEEDS = (0, 1)
COLUMNS = ["trial", "optimizer", "variant", "schedule", "lr", "seed", "final_loss", "best_loss", "steps", "status",
           "seconds", "trial_params", "run"]


def problem(steps: int, model: str = "gabor", data=GABOR) -> runner.Problem:
    return runner.Problem(model, "normal", data, tol=0.0, dtype="float64", steps=steps)


def lr_space(lo: float, hi: float, optimizers=(("adam", None),), **axes: Axis) -> Space:
    """Ranges without counts: what ``--search optuna`` builds (``random`` only lets the ranges go uncounted)."""
    return Space(optimizers, {"lr": Axis("lr", lo=lo, hi=hi, scale="log"), **axes}, SEEDS, random=1)


def trial_values(rows) -> dict[int, float]:
    """Each trial's objective from its rows: the mean final loss over its seeds."""
    return {int(t): float(g["final_loss"].mean()) for t, g in rows.groupby("trial")}


# -- searching ------------------------------------------------------------------------------------


def test_search_over_lr_finds_at_least_the_default_and_repeats_with_its_seed():
    space = lr_space(0.01, 1.0)
    calls = []
    found = search(problem(100), space, 8, parallel=4, seed=3, progress=lambda *a: calls.append(a))
    rows, study = found.rows, found.study

    assert len(rows) == 8 * len(SEEDS)
    assert set(COLUMNS) <= set(rows.columns)
    assert rows["trial"].tolist() == [t for t in range(8) for _ in SEEDS]
    assert rows["seed"].tolist() == list(SEEDS) * 8
    assert rows["run"].is_unique
    assert rows["lr"].between(0.01, 1.0).all()
    assert (rows.groupby("trial")["lr"].nunique() == 1).all()  # a trial's seeds share its values
    assert set(rows["status"]) == {"max_steps"}
    assert calls == [(0, 8, 0), (4, 8, 0), (8, 8, 0)]

    # Optuna saw what the table holds: each trial's lr, and its mean final loss over the seeds.
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE] * 8
    values = trial_values(rows)
    for t in study.trials:
        assert t.value == pytest.approx(values[t.number], rel=1e-12)
        assert json.loads(rows.loc[rows["trial"] == t.number, "trial_params"].iloc[0]) == t.params
        assert rows.loc[rows["trial"] == t.number, "lr"].iloc[0] == t.params["lr"]

    # The optimiser's default learning rate (what a run without --grid lr takes), on the same seeds.
    fitter = gf.Fitter("gabor", "normal", runner.optimizer_for({"optimizer": "adam"}, problem(100)), steps=100,
                       tol=0.0, dtype="float64")
    default = float(np.mean([f.loss for f in fitter(GABOR, seed=np.array(SEEDS))]))
    assert study.best_value <= default + 1e-12

    again = search(problem(100), space, 8, parallel=4, seed=3)
    assert again.rows["trial_params"].tolist() == rows["trial_params"].tolist()
    assert again.rows["final_loss"].tolist() == rows["final_loss"].tolist()
    other = search(problem(100), space, 8, parallel=4, seed=4)
    assert other.rows["lr"].tolist() != rows["lr"].tolist()


def test_several_optimizers_are_one_categorical_choice_each_group_its_own_call():
    space = lr_space(0.01, 1.0, optimizers=(("adam", None), ("momentum", "heavy-ball")))
    optuna.logging.set_verbosity(optuna.logging.INFO)
    try:
        found = search(problem(50), space, 6, parallel=6, sampler="random", pruner="none", seed=1)
        assert optuna.logging.get_verbosity() == optuna.logging.INFO  # quiet during the search only
    finally:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
    rows, study = found.rows, found.study
    chosen = [t.params["optimizer"] for t in study.trials]
    assert set(chosen) == {"adam:slides", "momentum:heavy-ball"}  # seed 1 draws both
    by_trial = rows.drop_duplicates("trial").set_index("trial")
    assert [f"{o}:{v}" for o, v in zip(by_trial["optimizer"], by_trial["variant"])] == chosen
    assert "gamma" not in rows.columns or rows.loc[rows["optimizer"] == "momentum", "gamma"].isna().all()


def test_the_search_space_follows_the_axes():
    space = Space((("adam", None), ("momentum", None)), {
        "lr": Axis("lr", lo=1e-3, hi=1.0, scale="log"),
        "beta": Axis("beta", lo=0.5, hi=0.99, scale="lin", n=4),  # a count is ignored: the range is searched
        "steps": Axis("steps", lo=10, hi=1000, scale="log"),
        "batch_size": Axis("batch_size", values=(5, 10)),
    }, SEEDS, random=1)
    d = sweep_search._distributions(optuna, space)
    dist = optuna.distributions
    assert d["optimizer"] == dist.CategoricalDistribution(["adam:slides", "momentum:slides"])  # default variants
    assert d["lr"] == dist.FloatDistribution(1e-3, 1.0, log=True)
    assert d["beta"] == dist.FloatDistribution(0.5, 0.99)
    assert d["steps"] == dist.IntDistribution(10, 1000, log=True)
    assert d["batch_size"] == dist.CategoricalDistribution([5, 10])
    meta = describe(space, sampler="tpe", pruner=optuna.pruners.NopPruner(), seed=2, parallel=4)
    assert meta["axes"]["beta"] == {"lo": 0.5, "hi": 0.99, "scale": "lin"}
    assert (meta["pruner"], meta["seed"], meta["parallel"]) == ("NopPruner", 2, 4)
    assert "random" not in meta and "trials" not in meta  # more trials continue the same search


def test_diverged_runs_make_an_infinite_objective_that_optuna_ranks_last():
    linear = problem(100, "linear", gf.linear_data(0, n=30))
    space = lr_space(1e-3, 10.0, optimizers=(("gd", None),))
    found = search(linear, space, 6, parallel=3, sampler="random", pruner="none", seed=0)
    rows, study = found.rows, found.study
    diverged = rows.groupby("trial")["status"].apply(lambda s: (s == "diverged").any())
    assert diverged.any() and not diverged.all()
    for t in study.trials:
        assert t.state == optuna.trial.TrialState.COMPLETE
        assert math.isinf(t.value) == bool(diverged[t.number])
    assert rows.loc[rows["status"] == "diverged", "final_loss"].map(math.isinf).all()
    assert math.isfinite(study.best_value)


# -- pruning ----------------------------------------------------------------------------------


@pytest.mark.parametrize("pruner", [optuna.pruners.ThresholdPruner(upper=0.5), "median"],
                         ids=["threshold", "median"])
def test_pruned_trials_stop_their_runs_between_chunks(pruner, tmp_path):
    space = lr_space(1e-5, 1e-2)
    # 6000 full-batch steps run as chunks of 2048: the pruner is asked at steps 2048 and 4096.
    found = search(problem(6000), space, 8, parallel=2, pruner=pruner, store=Store.open(tmp_path / "s.parquet", {}))
    rows, study = found.rows, found.study
    pruned = rows[rows["status"] == "pruned"]
    assert len(pruned) > 0
    assert (pruned["steps"] < 6000).all()
    assert set(rows.loc[rows["status"] != "pruned", "status"]) <= {"max_steps"}
    states = {t.number: t.state for t in study.trials}
    assert {int(t) for t in pruned["trial"]} == {n for n, s in states.items() if s == optuna.trial.TrialState.PRUNED}
    for t in study.trials:
        assert t.intermediate_values  # reported at the chunk boundaries
        assert set(t.intermediate_values) <= {2048, 4096}

    # Rebuilt from the file, the study holds the same trials, pruned ones pruned; nothing more runs.
    again = search(problem(6000), space, 8, parallel=2, pruner=pruner, store=Store.open(tmp_path / "s.parquet", {}))
    assert [t.state for t in again.study.trials] == [states[n] for n in range(8)]
    assert [t.params for t in again.study.trials] == [t.params for t in study.trials]
    assert again.rows.equals(rows)


def test_a_batch_pruned_whole_stops_every_run():
    # Every trial is pruned at its first report, so the monitor stops the call's last running lanes.
    found = search(problem(6000), lr_space(1e-3, 1e-2), 2, parallel=2, pruner=optuna.pruners.ThresholdPruner(upper=0))
    assert set(found.rows["status"]) == {"pruned"}
    assert (found.rows["steps"] == 2047).all()  # the last record before the chunk boundary at 2048
    assert {t.state for t in found.study.trials} == {optuna.trial.TrialState.PRUNED}


# -- resuming -----------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_a_rerun_with_more_trials_runs_only_the_new_ones(tmp_path, suffix):
    space = lr_space(0.01, 1.0)
    meta = {"space": describe(space, parallel=2)}
    path = tmp_path / f"search{suffix}"
    first = search(problem(50), space, 4, parallel=2, store=Store.open(path, meta))
    calls = []
    more = search(problem(50), space, 6, parallel=2, store=Store.open(path, meta),
                  progress=lambda *a: calls.append(a))
    assert calls == [(4, 6, 4), (6, 6, 4)]  # one batch of 2 new trials
    rows = more.rows
    assert len(rows) == 6 * len(SEEDS)
    assert rows["run"].is_unique
    assert sorted(set(rows["trial"])) == list(range(6))
    assert rows.iloc[:len(first.rows)][["trial", "lr", "seed", "final_loss", "run"]].reset_index(drop=True).equals(
        first.rows[["trial", "lr", "seed", "final_loss", "run"]])
    assert len(more.study.trials) == 6
    assert [t.params for t in more.study.trials[:4]] == [t.params for t in first.study.trials]
    assert [t.value for t in more.study.trials[:4]] == pytest.approx([t.value for t in first.study.trials])
    assert len(Store.open(path, meta).frame()) == 6 * len(SEEDS)

    same = search(problem(50), space, 5, parallel=2, store=Store.open(path, meta))  # fewer than stored: none run
    assert len(same.rows) == 6 * len(SEEDS) and len(same.study.trials) == 6


def test_a_file_of_another_kind_is_not_resumed(tmp_path):
    store = Store.open(tmp_path / "grid.csv", {})
    store.append(runner.run_group(runner.groups_of(Space((("adam", None),), {"lr": Axis("lr", values=(0.1,))}),
                                                   problem(10))[0][0]))
    with pytest.raises(GradfitError, match="not an Optuna search's output"):
        search(problem(10), lr_space(0.01, 1.0), 2, store=Store.open(tmp_path / "grid.csv", {}))


# -- refusals -----------------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs, message", [
    ({"sampler": "grid"}, "unknown sampler 'grid'; known samplers: cmaes, random, tpe"),
    ({"pruner": "asha"}, "unknown pruner 'asha'; known pruners: hyperband, median, none"),
    ({"sampler": 3}, "the sampler is a name"),
    ({"pruner": optuna.samplers.RandomSampler()}, "the pruner is a name"),
    ({"trials": 0}, "trials must be a whole number >= 1, not 0"),
    ({"trials": 2.5}, "trials must be a whole number >= 1"),
    ({"trials": True}, "trials must be a whole number >= 1"),
    ({"parallel": 0}, "parallel must be a whole number >= 1"),
    ({"seed": -1}, "seed must be a whole number >= 0"),
    ({"sampler": "cmaes"}, "the cmaes sampler adapts a covariance over two or more ranges"),
])
def test_bad_input_is_refused_before_anything_runs(kwargs, message):
    kwargs = {"trials": 4, **kwargs}
    with pytest.raises(GradfitError, match=re.escape(message)):
        search(problem(10), lr_space(0.01, 1.0), **kwargs)


def test_nothing_to_search_is_refused():
    with pytest.raises(GradfitError, match="nothing to choose"):
        search(problem(10), Space((("adam", None),)), 4)


def test_without_optuna_the_module_imports_and_search_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "optuna", None)  # import optuna now raises ImportError
    path = Path(sweep_search.__file__)
    name = "gradfit.sweeps._search_without_optuna"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)
    spec.loader.exec_module(module)
    with pytest.raises(GradfitError, match=r"Optuna search needs Optuna: pip install 'gradfit\[sweep\]'"):
        module.search(problem(10), lr_space(0.01, 1.0), 4)

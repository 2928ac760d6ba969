"""Hyperparameter search with Optuna: its samplers choose the trials, each batch of trials runs in one compiled call.

``search(problem, space, trials)`` asks Optuna for ``parallel`` trials at a time
(``study.ask()``), groups them by what shapes the compiled loop (`runner.GROUP_KEYS`:
optimiser, variant, batch size, ...) and runs each group as one vmapped `gradfit.Fitter`
call with a lane per (trial, seed): every trial runs on all of ``space.seeds``, and its
objective is the mean final loss over them. Each call is padded to the batch's width
(``parallel`` × seeds lanes), so a group's settings compile once for the whole search.

The search space comes from the `Space`: a range ``lo:hi:log`` or ``lo:hi:lin`` is
``suggest_float(name, lo, hi, log=...)`` (``suggest_int`` for whole-number names; a
range's count, if any, is ignored), a list is ``suggest_categorical``, and several
optimisers are a categorical ``optimizer`` of ``"name:variant"`` texts. A rule's
hyperparameter is suggested only for the optimisers that take it (Optuna's
define-by-run spaces are conditional), though `Space` already refuses a swept
hyperparameter that a listed optimiser lacks.

Pruning works through the `Fitter`'s monitor, between compiled chunks (2048 steps, or
an epoch of mini-batches when that is longer; fits of one chunk are never pruned): each
running trial reports the mean over its seeds of their latest full-data losses,
``trial.report(value, step=steps_done)``, and the lanes of a trial that
``trial.should_prune()`` stop there. A trial with a stopped run is told
``TrialState.PRUNED``; its stopped runs get the status ``pruned`` (runs of it that had
already finished keep theirs). Samplers see the trials of a batch as running until the
batch's group has run (TPE's constant liar keeps a batch from piling onto one point).

A diverged run's final loss is +inf, and so is the objective of its trial. Optuna accepts
infinity (only NaN is refused) and its samplers rank by value, so a trial that diverged
ranks below every finite one; telling ``FAIL`` instead would hide it from the sampler,
which would then keep drawing from the region that diverges.

Resuming: with a `Store` that already holds rows, the study is rebuilt from them
(``optuna.trial.create_trial``, one trial per stored trial number: its parameters from the
``trial_params`` column, its value the mean final loss, PRUNED when a run of it was), and
only the remaining ``trials - stored`` trials run. The rebuilt trials hold no intermediate
values except a pruned trial's last, so the pruner compares new trials only with those of
this session; and the sampler's random state starts afresh, so a resumed search is a
valid search but not the very one an uninterrupted run would have made.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import GradfitError, unknown_name
from ..optimizers import RULES
from . import runner
from .space import OPTIMIZER_SETTINGS, Space, whole_number
from .store import run_key

if TYPE_CHECKING:
    import optuna
    import pandas as pd

    from .store import Store

__all__ = ["search", "describe", "SearchResult", "SAMPLERS", "PRUNERS"]

#: Progress callback: (trials finished, trials in all, trials found already in the output file).
SearchProgress = Callable[[int, int, int], None]

_INSTALL = "Optuna search needs Optuna: pip install 'gradfit[sweep]'"


def _tpe(optuna, seed: int, space: Space):
    return optuna.samplers.TPESampler(seed=seed)


def _random(optuna, seed: int, space: Space):
    return optuna.samplers.RandomSampler(seed=seed)


def _cmaes(optuna, seed: int, space: Space):
    ranges = [name for name, axis in space.axes.items() if axis.values is None]
    if len(ranges) < 2:
        raise GradfitError(f"the cmaes sampler adapts a covariance over two or more ranges, and this search has "
                           f"{len(ranges)} ({', '.join(ranges) or 'none'}); use the tpe or random sampler")
    try:
        import cmaes  # noqa: F401 - Optuna imports it lazily, at the first trial; fail before anything runs
    except ImportError:
        raise GradfitError("the cmaes sampler needs the cmaes package: pip install cmaes") from None
    # Lists and the optimiser choice are categorical: CMA-ES leaves them to its independent sampler.
    return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)


#: Samplers by name: (optuna, seed, space) -> sampler.
_SAMPLERS: dict[str, Callable[[Any, int, Space], Any]] = {"tpe": _tpe, "random": _random, "cmaes": _cmaes}

#: Pruners by name: optuna -> pruner, with Optuna's defaults.
_PRUNERS: dict[str, Callable[[Any], Any]] = {
    "median": lambda optuna: optuna.pruners.MedianPruner(),
    "hyperband": lambda optuna: optuna.pruners.HyperbandPruner(),
    "none": lambda optuna: optuna.pruners.NopPruner(),
}

#: The samplers and pruners `search` takes by name.
SAMPLERS: tuple[str, ...] = tuple(_SAMPLERS)
PRUNERS: tuple[str, ...] = tuple(_PRUNERS)


@dataclass(frozen=True)
class SearchResult:
    """What `search` returns: one row per run (trial × seed), and the Optuna study of the trials."""

    rows: pd.DataFrame
    study: optuna.Study


def search(problem: runner.Problem, space: Space, trials: int, *, parallel: int = 8, sampler: Any = "tpe",
           pruner: Any = "median", seed: int = 0, store: Store | None = None,
           progress: SearchProgress | None = None) -> SearchResult:
    """Search ``space`` with Optuna for the configuration of least mean final loss over ``space.seeds``.

    Parameters
    ----------
    problem
        The model, loss, data and fixed settings every run shares.
    space
        The optimisers, the swept names (ranges searched continuously, lists as choices)
        and the seeds. ``space.random`` and a range's count are ignored, so build a space
        of ranges without counts with ``random=trials``.
    trials
        How many trials the study holds when the search ends, those in ``store`` included.
    parallel
        Trials asked at once, and run side by side (one compiled call per group of them).
    sampler, pruner
        By name (`SAMPLERS`: ``tpe``, ``random``, ``cmaes``; `PRUNERS`: ``median``,
        ``hyperband``, ``none``, each with Optuna's defaults) or an Optuna sampler or pruner.
    seed
        The named sampler's seed: the same seed draws the same trials.
    store
        An opened `Store`: each batch's rows are appended as it finishes, and trials
        already in it are loaded into the study, not rerun.
    progress
        ``progress(trials finished, trials in all, trials loaded from the store)``.

    Returns
    -------
    SearchResult
        ``rows``: a pandas DataFrame, one row per run, ordered by trial then seed: ``trial``
        (Optuna's trial number), the columns of `gradfit.sweep`'s rows (status ``pruned``
        for runs the pruner stopped), ``trial_params`` (the trial's parameters as Optuna
        holds them, as JSON) and ``run`` (`store.run_key` of the configuration, seed and
        trial number). ``study``: the Optuna study, for ``best_params``, its trials and
        Optuna's plots.
    """
    trials = whole_number(trials, 1, "trials")
    parallel = whole_number(parallel, 1, "parallel")
    seed = whole_number(seed, 0, "the sampler's seed")
    _check_name(sampler, _SAMPLERS, "sampler")
    _check_name(pruner, _PRUNERS, "pruner")
    if not space.axes and len(space.optimizers) == 1:
        raise GradfitError("an Optuna search has nothing to choose: give a --grid range or list, or several "
                           "optimizers")
    optuna = _optuna()
    if isinstance(sampler, str):
        sampler = _SAMPLERS[sampler](optuna, seed, space)
    if isinstance(pruner, str):
        pruner = _PRUNERS[pruner](optuna)
    _check_instance(sampler, optuna.samplers.BaseSampler, "sampler", SAMPLERS)
    _check_instance(pruner, optuna.pruners.BasePruner, "pruner", PRUNERS)
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.create_study(direction="minimize", sampler=sampler, pruner=pruner)
        return _search(optuna, study, problem, space, trials, parallel, store, progress)
    finally:
        optuna.logging.set_verbosity(verbosity)


def describe(space: Space, *, sampler: Any = "tpe", pruner: Any = "median", seed: int = 0,
             parallel: int = 8) -> dict[str, Any]:
    """The search as JSON-able data, for the output file's ``meta``: a file resumes only the same search.

    The number of trials is left out (a rerun with more trials continues the search), as
    are `Space.random` and a range's count, which the search ignores. An Optuna object
    given as the sampler or pruner is described by its class name only.
    """
    axes = {}
    for name, axis in space.axes.items():
        axes[name] = {"values": list(axis.values)} if axis.values is not None else \
            {"lo": axis.lo, "hi": axis.hi, "scale": axis.scale}
    return {
        "search": "optuna",
        "optimizers": [list(pair) for pair in _choices(space).values()],
        "schedule": space.schedule,
        "axes": axes,
        "seeds": list(space.seeds),
        "sampler": sampler if isinstance(sampler, str) else type(sampler).__name__,
        "pruner": pruner if isinstance(pruner, str) else type(pruner).__name__,
        "seed": seed,
        "parallel": parallel,
    }


# -- the search loop ------------------------------------------------------------------------------


def _search(optuna, study, problem, space, trials, parallel, store, progress) -> SearchResult:
    import pandas as pd

    distributions = _distributions(optuna, space)
    loaded = _rebuild(optuna, study, store, distributions) if store is not None else 0
    total = max(trials, loaded)
    remaining = total - loaded
    width = min(parallel, max(remaining, 1)) * len(space.seeds)
    if progress is not None:
        progress(loaded, total, loaded)
    frames = []
    done = 0
    while done < remaining:
        batch = [_ask(study, space, distributions) for _ in range(min(parallel, remaining - done))]
        rows = _run_batch(optuna, study, problem, space, batch, width)
        if store is not None:
            store.append(rows)  # a whole batch at once, so a kill never leaves part of a trial's seeds
        frames.append(rows)
        done += len(batch)
        if progress is not None:
            progress(loaded + done, total, loaded)
    frame = store.frame() if store is not None else (pd.concat(frames, ignore_index=True) if frames
                                                       else pd.DataFrame())
    return SearchResult(_ordered(frame, space), study)


def _ask(study, space: Space, distributions) -> tuple[Any, dict[str, Any]]:
    """A new trial and its configuration: the optimiser, its variant and the swept values."""
    trial = study.ask()
    choices = _choices(space)
    if "optimizer" in distributions:
        name, variant = choices[_suggest(trial, "optimizer", distributions["optimizer"])]
    else:
        name, variant = next(iter(choices.values()))
    config = {"optimizer": name, "variant": variant}
    for key in space.axes:
        if key in OPTIMIZER_SETTINGS and key not in RULES[name].defaults:
            continue
        config[key] = _suggest(trial, key, distributions[key])
    return trial, config


def _run_batch(optuna, study, problem, space, batch, width: int):
    """Run a batch's trials, one compiled call per group of them, and tell Optuna how each ended."""
    import pandas as pd

    groups: dict[tuple, list] = {}
    for trial, config in batch:
        settings = tuple((k, config[k]) for k in runner.GROUP_KEYS if k in config)
        groups.setdefault(settings, []).append((trial, config))
    untold = {trial.number: trial for trial, _ in batch}
    frames = []
    try:
        for index, (settings, members) in enumerate(groups.items()):
            rows = _run_group(problem, space, index, settings, members, width)
            for trial, _ in members:
                mine = rows[rows["trial"] == trial.number]
                if (mine["status"] == "pruned").any():
                    study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                else:
                    study.tell(trial, _objective(mine["final_loss"].to_numpy(float)))
                del untold[trial.number]
            frames.append(rows)
    except BaseException:
        for trial in untold.values():  # leave no trial running in a study the caller may still use
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
        raise
    return pd.concat(frames, ignore_index=True)


def _run_group(problem, space, index: int, settings, members, width: int):
    """The rows of one group's trials × seeds, run in one `Fitter` call of ``width`` lanes, pruned as they go."""
    import pandas as pd

    runs, lanes = [], []
    for trial, config in members:
        first = len(runs)
        for seed in space.seeds:
            run = {k: v for k, v in config.items() if k not in runner.GROUP_KEYS}
            key = run_key({**config, "seed": int(seed), "trial": trial.number})
            runs.append({**run, "seed": int(seed), "run": key})
        lanes.append(np.arange(first, len(runs)))
    fitter = runner._fitter(runner.Group(index, problem, settings, tuple(runs), width))
    checked = fitter.problem(problem.data)
    model, names = checked.model, list(checked.optimizer.values)
    padded = runs + [runs[-1]] * (width - len(runs))  # one width for every call, so one compile per group
    values = {k: np.array([r[k] for r in padded], float) for k in names if k in padded[0]}
    seeds = np.array([int(r["seed"]) for r in padded])
    monitor = _Pruning([trial for trial, _ in members], lanes, len(runs))
    t0 = time.perf_counter()
    fits = fitter(problem.data, init=runner._starts(model, padded, seeds), seed=seeds, monitor=monitor, **values)
    share = (time.perf_counter() - t0) / width
    rows = []
    for (trial, _), trial_lanes in zip(members, lanes):
        params = json.dumps(trial.params, sort_keys=True)
        for lane in trial_lanes:
            row = runner._row(fits[lane], runs[lane], dict(settings), model, share)
            if row["status"] == "stopped":  # only the pruner stops a run here
                row["status"] = "pruned"
            key = row.pop("run")
            rows.append({"trial": trial.number, **row, "trial_params": params, "run": key})
    return pd.DataFrame(rows)


@dataclass
class _Pruning:
    """The `Fitter` monitor of one group: each running trial reports its mean loss, and stops if pruned.

    ``lanes[k]`` are trial k's lanes; lanes from ``runs`` on are padding, stopped at once.
    """

    trials: Sequence[Any]
    lanes: Sequence[np.ndarray]
    runs: int
    pruned: set[int] = field(default_factory=set)

    def __call__(self, steps: int, losses: np.ndarray) -> np.ndarray:
        stop = np.zeros(len(losses), bool)
        stop[self.runs:] = True
        for k, (trial, lanes) in enumerate(zip(self.trials, self.lanes)):
            if k in self.pruned:
                continue
            trial.report(_objective(losses[lanes]), step=int(steps))
            if trial.should_prune():
                self.pruned.add(k)
                stop[lanes] = True
        return stop


def _objective(losses: np.ndarray) -> float:
    """A trial's value: the mean loss over its seeds, +inf if any run diverged (or has no finite loss)."""
    losses = np.asarray(losses, float)
    return float(np.mean(np.where(np.isfinite(losses), losses, math.inf)))


# -- the search space -------------------------------------------------------------------------


def _choices(space: Space) -> dict[str, tuple[str, str]]:
    """The optimisers as Optuna's categorical choices: ``"name:variant"`` -> (name, variant)."""
    out = {}
    for name, variant in space.optimizers:
        head = space._head(name, variant)
        out[f"{head['optimizer']}:{head['variant']}"] = (head["optimizer"], head["variant"])
    return out


def _distributions(optuna, space: Space) -> dict[str, Any]:
    """Each parameter's Optuna distribution: the optimiser choice (when several), then one per axis."""
    dist = optuna.distributions
    out: dict[str, Any] = {}
    if len(space.optimizers) > 1:
        out["optimizer"] = dist.CategoricalDistribution(list(_choices(space)))
    for name, axis in space.axes.items():
        if axis.values is not None:
            out[name] = dist.CategoricalDistribution(list(axis.values))
        else:
            kind = dist.IntDistribution if axis.whole else dist.FloatDistribution
            out[name] = kind(axis.lo, axis.hi, log=axis.scale == "log")
    return out


def _suggest(trial, name: str, distribution) -> Any:
    """``trial.suggest_*`` for a distribution of `_distributions`."""
    import optuna

    if isinstance(distribution, optuna.distributions.CategoricalDistribution):
        return trial.suggest_categorical(name, distribution.choices)
    if isinstance(distribution, optuna.distributions.IntDistribution):
        return trial.suggest_int(name, distribution.low, distribution.high, log=distribution.log)
    return trial.suggest_float(name, distribution.low, distribution.high, log=distribution.log)


# -- resuming -----------------------------------------------------------------------------------


def _rebuild(optuna, study, store: Store, distributions) -> int:
    """Add the store's trials to ``study``, numbered as stored; returns how many there were.

    A trial number missing from the file (rows removed by hand) becomes a FAIL trial, which
    samplers ignore, so the stored numbers stay the study's.
    """
    frame = store.frame()
    if frame.empty:
        return 0
    missing = [c for c in ("trial", "trial_params", "final_loss", "status", "steps") if c not in frame.columns]
    if missing:
        raise GradfitError(f"{store.path} has no {', '.join(missing)} column: it is not an Optuna search's "
                           "output; give another --out")
    TrialState, create = optuna.trial.TrialState, optuna.trial.create_trial
    count = added = 0
    for number, rows in frame.groupby("trial", sort=True):
        for _ in range(added, int(number)):
            study.add_trial(create(state=TrialState.FAIL))
        added = int(number) + 1
        params = json.loads(rows["trial_params"].iloc[0])
        unknown = sorted(set(params) - set(distributions))
        if unknown:
            raise GradfitError(f"trial {number} in {store.path} sets {', '.join(unknown)}, which this search does "
                               "not search; give another --out")
        value = _objective(rows["final_loss"].to_numpy(float))
        pruned = bool((rows["status"] == "pruned").any())
        extra = {"state": TrialState.PRUNED, "intermediate_values": {int(rows["steps"].max()): value}} \
            if pruned else {}
        try:
            study.add_trial(create(params=params, distributions={k: distributions[k] for k in params},
                                   value=value, **extra))
        except ValueError as exc:
            raise GradfitError(f"trial {number} in {store.path} does not fit this search's space ({exc}); "
                               "give another --out") from None
        count += 1
    return count


def _ordered(frame, space: Space):
    """The rows by trial, then in the order of the space's seeds."""
    if frame.empty:
        return frame
    rank = frame["seed"].map({s: i for i, s in enumerate(space.seeds)})
    return frame.assign(_rank=rank).sort_values(["trial", "_rank"], kind="stable").drop(columns="_rank") \
        .reset_index(drop=True)


# -- checks -----------------------------------------------------------------------------------


def _optuna():
    try:
        import optuna
    except ImportError:
        raise GradfitError(_INSTALL) from None
    return optuna


def _check_name(value: Any, known: dict[str, Any], kind: str) -> None:
    if isinstance(value, str) and value not in known:
        raise unknown_name(kind, value, known)


def _check_instance(value: Any, base: type, kind: str, known: Sequence[str]) -> None:
    if not isinstance(value, base):
        raise GradfitError(f"the {kind} is a name ({', '.join(known)}) or an optuna.{kind}s.{base.__name__}, "
                           f"not {value!r}")

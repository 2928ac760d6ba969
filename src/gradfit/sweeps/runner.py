"""Running a sweep: runs grouped by what shapes the compiled loop, each group a few vmapped `Fitter` calls.

A run is a configuration (`gradfit.sweeps.space`) and a seed. Runs that differ only in
real numbers (α, β, γ, ε, λ, a schedule's factor, rate or floor, the start's values) and
in their seeds share a *group*: one `gradfit.Fitter`, called with those numbers as
arrays, runs them side by side under ``vmap`` in one compiled loop. Each value of a
discrete setting (optimiser, variant, schedule, batch size, step cap, ...) is a group of
its own. A group's runs go through the compiled loop in calls of at most ``lanes`` runs,
the last one padded to the same width, so a group compiles once whatever its size.

A group is a plain, picklable `Group`; `run_group` runs it and returns its rows, in
this process or on a Dask worker (`gradfit.sweeps.cluster`). Workers keep one model
object per distinct model, so the groups they run reuse the compiled loop.
"""

from __future__ import annotations

import hashlib
import math
import os
import pickle
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import GradfitError

#: The settings that shape the compiled loop: each combination of their values is a group.
GROUP_KEYS = ("optimizer", "variant", "schedule", "batch_size", "steps", "epochs", "every", "decay_steps", "warmup")

#: The columns every row ends with.
OUTCOMES = ("final_loss", "best_loss", "steps", "status", "seconds")

#: Memory one compiled call of a group may use for its history and batches (bytes).
CALL_BUDGET = 256 << 20

#: A sweep refuses to start when its rows alone would take more than this share of the free memory.
MEMORY_SHARE = 0.5


@dataclass(frozen=True)
class Problem:
    """What every run of a sweep shares: the model, loss and data, and the fit's fixed settings."""

    model: Any  # a Model, or a name / formula text
    loss: Any
    data: Any  # a Dataset
    tol: float = 1e-6
    reduction: str = "sum"
    dtype: str | None = None
    history_every: int | None = None
    steps: int | None = None
    epochs: int | None = None
    batch_size: int | None = None
    schedule: str = "constant"


@dataclass(frozen=True)
class Group:
    """Runs that share one compiled loop: their discrete settings, and each run's numbers and seed."""

    index: int
    problem: Problem
    settings: tuple[tuple[str, Any], ...]  # the GROUP_KEYS values this group has
    runs: tuple[Mapping[str, Any], ...]  # each: continuous values, ``init.<name>`` values, ``seed``, ``run``
    lanes: int = 1024

    @property
    def label(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.settings) + f" ({len(self.runs)} runs)"


def optimizer_for(settings: Mapping[str, Any], problem: Problem):
    """The optimiser a group's settings name, with its defaults for the numbers its runs set."""
    from ..optimizers import make_optimizer
    from ..schedules import make_schedule, warmup

    kind = settings.get("schedule") or problem.schedule
    extra = {"every": settings["every"]} if settings.get("every") is not None else {}
    if kind == "cosine":
        steps = settings.get("decay_steps") or settings.get("steps") or problem.steps or 1000
        extra = {"steps": int(steps)}
    schedule = make_schedule(kind, 0.1, **extra)
    if settings.get("warmup"):
        schedule = warmup(schedule, int(settings["warmup"]))
    return make_optimizer(settings["optimizer"], lr=schedule, variant=settings.get("variant"))


# -- running a group (in this process or on a worker) ---------------------------------------------

_MODELS: dict[str, Any] = {}
_FITTERS: dict[tuple, Any] = {}


def _canonical(obj: Any) -> Any:
    """One object per distinct pickled value, so the groups a worker runs share compiled loops
    (a model unpickled afresh for each task would be a new model to JAX's cache)."""
    if isinstance(obj, str):
        return obj
    try:
        key = hashlib.sha256(pickle.dumps(obj)).hexdigest()
    except Exception:  # noqa: BLE001 - unpicklable here means it came with this process: keep it
        return obj
    return _MODELS.setdefault(key, obj)


def fitter_for(problem: Problem, settings: Mapping[str, Any], model: Any = None, loss: Any = None):
    """The `gradfit.Fitter` of a group: the problem's fixed settings, with the group's discrete ones in
    their place (a swept step cap replaces a fixed epoch cap, and the other way round)."""
    from ..fitting import Fitter

    steps = None if "epochs" in settings else settings.get("steps", problem.steps)
    epochs = None if "steps" in settings else settings.get("epochs", problem.epochs)
    return Fitter(problem.model if model is None else model, problem.loss if loss is None else loss,
                  optimizer_for(settings, problem), steps=steps, epochs=epochs,
                  batch_size=settings.get("batch_size", problem.batch_size), tol=problem.tol,
                  reduction=problem.reduction, dtype=problem.dtype, history_every=problem.history_every)


def _fitter(group: Group):
    """The group's Fitter, one per process for each model and settings (so its compiled loop is reused)."""
    problem = group.problem
    model, loss = _canonical(problem.model), _canonical(problem.loss)
    key = (id(model), id(loss), group.settings, problem.tol, problem.reduction, problem.dtype,
           problem.history_every, problem.steps, problem.epochs, problem.batch_size, problem.schedule)
    if key not in _FITTERS:
        _FITTERS[key] = fitter_for(problem, dict(group.settings), model, loss)
    return _FITTERS[key]


def run_group(group: Group):
    """The rows of a group's runs (a pandas DataFrame), in the order of ``group.runs``."""
    import pandas as pd

    fitter = _fitter(group)
    problem = fitter.problem(group.problem.data)
    model = problem.model
    names = list(problem.optimizer.values)
    runs = list(group.runs)
    rows: list[dict[str, Any]] = []
    width = max(1, min(group.lanes, len(runs)))
    for first in range(0, len(runs), width):
        part = runs[first:first + width]
        padded = part + [part[-1]] * (width - len(part))  # one width, so one compile for the whole group
        values = {k: np.array([r[k] for r in padded], float) for k in names if k in padded[0]}
        seeds = np.array([int(r["seed"]) for r in padded])
        init = _starts(model, padded, seeds)
        t0 = time.perf_counter()
        fits = fitter(group.problem.data, init=init, seed=seeds, **values)
        share = (time.perf_counter() - t0) / len(padded)
        for k, run in enumerate(part):
            rows.append(_row(fits[k], run, dict(group.settings), model, share))
    return pd.DataFrame(rows)


def _starts(model, runs: Sequence[Mapping[str, Any]], seeds: np.ndarray) -> np.ndarray | None:
    """Each run's start: the model's start for its seed, with the ``init.<name>`` values it sets."""
    given = [k for k in runs[0] if k.startswith("init.")]
    if not given:
        return None
    starts = np.stack([model.default_init(int(s)) for s in seeds]).astype(float)
    names = list(model.flat_names)
    for key in given:
        starts[:, names.index(key[5:])] = [r[key] for r in runs]
    return starts


def _row(fit, run: Mapping[str, Any], settings: Mapping[str, Any], model, seconds: float) -> dict[str, Any]:
    """One run's row: its configuration, its start, where it ended and how."""
    opt = fit.optimizer
    row: dict[str, Any] = {"optimizer": opt["name"], "variant": opt["variant"], "schedule": opt["schedule"]["kind"],
                           "lr": opt["schedule"]["lr"]}
    row.update((k, opt["schedule"][k]) for k in ("factor", "rate", "floor") if k in opt["schedule"])
    row.update((k, opt[k]) for k in ("beta", "gamma", "eps", "weight_decay") if k in opt)
    for key, value in settings.items():
        if key not in row:
            row["max_steps" if key == "steps" else key] = value
    row["seed"] = int(run["seed"])
    start = fit.history.params[0]
    row.update((f"init_{name}", float(start[j])) for j, name in enumerate(model.flat_names))
    row.update((f"final_{name}", float(fit.x[j])) for j, name in enumerate(model.flat_names))
    finite = fit.history.loss[np.isfinite(fit.history.loss)]
    row["final_loss"] = float(fit.loss) if fit.status != "diverged" else math.inf
    row["best_loss"] = float(np.min(finite)) if finite.size else math.nan
    row["steps"] = int(fit.steps)
    row["status"] = fit.status
    row["seconds"] = seconds
    row["run"] = run["run"]
    return row


# -- building the groups --------------------------------------------------------------------------


def groups_of(space, problem: Problem, done: frozenset[str] = frozenset(), lanes: int | None = None
              ) -> tuple[list[Group], int]:
    """The groups of a space's runs not in ``done``, and how many runs were already done."""
    from .store import run_key

    buckets: dict[tuple, list[dict[str, Any]]] = {}
    skipped = 0
    for config in space.configurations():
        settings = tuple((k, config[k]) for k in GROUP_KEYS if k in config)
        for seed in space.seeds:
            run = {**{k: v for k, v in config.items() if k not in GROUP_KEYS}, "seed": int(seed)}
            key = run_key({**config, "seed": int(seed)})
            if key in done:
                skipped += 1
                continue
            buckets.setdefault(settings, []).append({**run, "run": key})
    groups = []
    for i, (settings, runs) in enumerate(buckets.items()):
        width = lanes or _lanes_for(problem, dict(settings), len(runs))
        groups.append(Group(i, problem, settings, tuple(runs), width))
    return groups, skipped


def _lanes_for(problem: Problem, settings: Mapping[str, Any], runs: int) -> int:
    """How many runs one compiled call takes, so its history and batches stay within `CALL_BUDGET`."""
    n = len(problem.data)
    steps = settings.get("steps", problem.steps) or 1000
    batch = settings.get("batch_size", problem.batch_size)
    if settings.get("epochs", problem.epochs):
        steps = int(settings.get("epochs", problem.epochs)) * (-(-n // batch) if batch else 1)
    per_chunk = min(max(int(steps), 64), 2048)
    params = _model_size(problem)
    per_run = per_chunk * (params + 3) * 8 * 3 + min(int(steps), 100_000) * (params + 4) * 8
    if batch:
        per_run += per_chunk * int(batch) * 5
    most = max(1, CALL_BUDGET // per_run)
    calls = -(-runs // most)
    return -(-runs // calls)  # as even a split as the budget allows: the last call pads least


def check_memory(space, problem: Problem) -> None:
    """Refuse, before anything runs, a sweep whose rows alone would not fit in memory."""
    runs = space.runs()
    columns = 16 + 2 * _model_size(problem)
    need = runs * (columns * 8 + 120)
    free = _free_memory()
    if free is not None and need > MEMORY_SHARE * free:
        raise GradfitError(
            f"the sweep asks for {runs:,} runs, whose rows alone need about {_bytes(need)}, more than half the "
            f"{_bytes(free)} of memory free: sweep fewer values, or search with --random N")


def _model_size(problem: Problem) -> int:
    """The model's parameter count (16, a generous guess, for a model given by name)."""
    model = problem.model
    return int(getattr(model, "size", 16)) if not isinstance(model, str) else 16


def _free_memory() -> int | None:
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if n < 1024 or unit == "PB":
            return f"{n:.3g} {unit}"
        n /= 1024
    return f"{n:.3g} PB"


@dataclass
class Tally:
    """How a sweep is going: its runs in all, those skipped as already done, and those done now."""

    total: int
    skipped: int = 0
    done: int = 0

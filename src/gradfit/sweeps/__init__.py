"""Hyperparameter sweeps: grids and random search vmapped in one compile, Optuna search, Dask execution.

``gradfit.sweep(model, loss, data, "adam,momentum", grid={"lr": "0.001:1:log:64"}, seeds=8)``
runs every configuration for every seed and returns one row per run (a pandas
DataFrame). The parts, one concept a module:

- `space`: what to run (grids, random search, their checks);
- `runner`: runs grouped by what shapes the compiled loop, each group vmapped in one
  `gradfit.Fitter` (so 64 learning rates × 8 seeds compile once);
- `store`: the output file (Parquet or CSV), written as groups finish, resumable;
- `cluster`: the groups on Dask (a `LocalCluster` of processes, or a scheduler);
- `search`: Optuna's samplers and pruners over the same runs;
- `plots`: sensitivity curves and heat maps from the table.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import GradfitError

__all__ = ["sweep"]

#: Progress callback: (runs finished, runs in all, runs skipped as already in the output file).
SweepProgress = Callable[[int, int, int], None]


def sweep(model, loss, data, optimizer: str | Sequence[Any] = "adam", *,
          grid: Mapping[str, Any] | Iterable[str] | None = None, random: int | None = None, random_seed: int = 0,
          seeds: int | Sequence[int] = 1, steps: int | None = None, epochs: int | None = None,
          batch_size: int | None = None, tol: float = 1e-6, schedule: str = "constant", reduction: str = "sum",
          dtype: str | None = None, history_every: int | None = None, out: str | Path | None = None,
          scheduler: Any = None, workers: int | None = None, lanes: int | None = None,
          search: str = "grid", trials: int | None = None, sampler: Any = "tpe", pruner: Any = "median",
          parallel: int = 8, progress: SweepProgress | None = None):
    """Fit ``model`` to ``data`` once per configuration and seed; one row per run.

    Parameters
    ----------
    optimizer
        ``"adam,momentum"``, ``"momentum:heavy-ball"``, or a list of names or
        (name, variant) pairs.
    grid
        The swept values by name: ``{"lr": "0.001:1:log:64", "beta": [0.5, 0.9, 0.99]}``,
        or the CLI's texts ``["lr=0.001:1:log:64", "beta=0.5,0.9,0.99"]``. Names: the
        optimiser's numbers (``lr``, ``beta``, ``gamma``, ``eps``, ``weight_decay``, a
        schedule's ``factor``, ``rate``, ``floor``), ``init.<parameter>`` for starts, and
        discrete settings (``variant``, ``batch_size``, ``steps``, ``epochs``, ``schedule``,
        ``every``, ``decay_steps``, ``warmup``), each value of which is its own compiled group.
    random
        Draw this many configurations (ranges as uniform or log-uniform distributions,
        lists as choices) instead of the grid's product; reproducible from ``random_seed``.
    seeds
        How many seeds (0, 1, ...), or the seeds. A row's seed is what ``seed`` is to
        `gradfit.fit`: its start (unless ``init.<name>`` sets it) and its mini-batches, so
        any row reruns alone with `gradfit.fit` and the row's settings.
    steps, epochs, batch_size, tol, reduction, dtype, history_every
        As `gradfit.fit`, for every run (unless swept).
    out
        A ``.parquet`` or ``.csv`` file, written as groups finish (atomically: a kill
        leaves the rows written so far). Rerun with the same file, runs already in it
        are skipped; a file from another sweep is refused, saying what differs.
    scheduler, workers
        Run the groups on Dask: a scheduler address (``"tcp://host:8786"``) or a
        ``distributed.Client``; or ``workers=N`` for a local cluster of N processes
        bound to 127.0.0.1. Default: in this process.
    lanes
        Runs per compiled call (default: as many as fit in 256 MB of history).
    search, trials, sampler, pruner, parallel
        ``search="optuna"``: ``trials`` configurations chosen by Optuna's ``sampler``
        (``"tpe"``, ``"random"``, ``"cmaes"`` or a sampler object) from the grid's ranges
        and lists (a range needs no count), ``parallel`` trials at a time in one compiled
        call, each on every seed, its objective the mean final loss; the ``pruner``
        (``"median"``, ``"hyperband"``, ``"none"`` or an object) stops trials between
        compiled chunks from their reported losses (`gradfit.sweeps.search`). Runs in
        this process; ``progress`` then counts trials. Rows gain ``trial`` and
        ``trial_params``.

    Returns
    -------
    pandas.DataFrame
        One row per run, in the configurations' order: ``optimizer``, ``variant``,
        ``schedule``, the optimiser's numbers, the swept discrete settings, ``seed``, the
        start (``init_<parameter>``), the end (``final_<parameter>``), ``final_loss``
        (inf when the run diverged), ``best_loss`` (the lowest recorded full-data loss),
        ``steps`` (taken), ``status``, ``seconds`` (the run's share of its compiled call)
        and ``run`` (a key of its configuration and seed).
    """
    try:
        import pandas  # noqa: F401
    except ImportError:
        raise GradfitError("sweeps return a pandas DataFrame, and pandas is missing: pip install pandas") from None
    from . import cluster
    from .runner import Problem, Tally, check_memory, groups_of, run_group

    if lanes is not None and (isinstance(lanes, bool) or not isinstance(lanes, int) or lanes < 1):
        raise GradfitError(f"lanes (runs per compiled call) must be a whole number >= 1, not {lanes!r}")
    if search not in ("grid", "random", "optuna"):
        raise GradfitError(f"search is 'grid', 'random' or 'optuna', not {search!r}")
    if search == "optuna":
        if trials is None or isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
            raise GradfitError(f"an Optuna search needs trials, a whole number >= 1, not {trials!r}")
        if random is not None:
            raise GradfitError("give random=N (random search) or search='optuna' with trials=N, not both")
        if scheduler is not None or workers is not None:
            raise GradfitError("an Optuna search runs its trials in this process: leave out scheduler and workers")
        random = trials
    elif trials is not None:
        raise GradfitError("trials is for search='optuna'; a grid runs all its points, random=N draws N")
    space = _space(optimizer, grid, random, random_seed, seeds, schedule)
    problem = Problem(model, loss, data, tol, reduction, dtype, history_every, steps, epochs, batch_size, schedule)
    check_memory(space, problem)
    fitted = _checked(problem, space)
    problem = dataclasses.replace(problem, data=fitted.data)
    store = None
    if out is not None:
        from .store import Store

        meta = _meta(problem, fitted, space)
        if search == "optuna":
            from .search import describe

            meta["space"] = describe(space, sampler=sampler, pruner=pruner, seed=random_seed, parallel=parallel)
        store = Store.open(out, meta)
    if search == "optuna":
        from .search import search as optuna_search

        return optuna_search(problem, space, trials, parallel=parallel, sampler=sampler, pruner=pruner,
                             seed=random_seed, store=store, progress=progress).rows
    groups, skipped = groups_of(space, problem, store.done if store is not None else frozenset(), lanes)
    tally = Tally(space.runs(), skipped)
    frames = []

    def finished(index: int, rows) -> None:
        if store is not None:
            store.append(rows)
        frames.append(rows)
        tally.done += len(rows)
        if progress is not None:
            progress(tally.done + tally.skipped, tally.total, tally.skipped)

    if progress is not None:
        progress(skipped, tally.total, skipped)
    with cluster.connect(scheduler, workers) as client:
        cluster.run_groups(client, run_group, groups, finished)
    return _ordered(store.frame() if store is not None else _concat(frames), space)


def _space(optimizer, grid, random, random_seed, seeds, schedule):
    from .space import Axis, Space, parse_grid, parse_optimizers

    if isinstance(optimizer, str):
        optimizers = parse_optimizers(optimizer)
    else:
        optimizers = tuple((o, None) if isinstance(o, str) else tuple(o) for o in optimizer)
    axes: dict[str, Axis] = {}
    if isinstance(grid, Mapping):
        items = [f"{k}={v}" if isinstance(v, str) else (k, v) for k, v in grid.items()]
    else:
        items = list(grid or [])
    for item in items:
        if isinstance(item, str):
            name, axis = parse_grid(item)
        else:
            name, values = item
            values = [values] if isinstance(values, str | int | float) else list(values)
            axis = Axis(name, values=tuple(values))
        if name in axes:
            raise GradfitError(f"{name} is swept twice: give its values once")
        axes[name] = axis
    if isinstance(seeds, bool) or not isinstance(seeds, int | Sequence | range):
        raise GradfitError(f"seeds is a count or a list of seeds, not {seeds!r}")
    if isinstance(seeds, int):
        if seeds < 1:
            raise GradfitError(f"seeds must be at least 1 (a count), not {seeds}")
        seeds = range(seeds)
    return Space(optimizers, axes, tuple(seeds), random, random_seed, schedule)


def _checked(problem, space):
    """The checked problem of the sweep's first group, which catches bad input before anything runs."""
    from .runner import fitter_for

    fitted = fitter_for(problem, _first_settings(space)).problem(problem.data)
    names = fitted.model.flat_names
    for name in space.axes:
        if name.startswith("init.") and name[5:] not in names:
            raise GradfitError(f"{name} names no parameter of model {fitted.model.name!r}; its parameters: "
                               f"{', '.join(names)}")
    axis = space.axes.get("batch_size")
    for size in axis.grid_values() if axis is not None and space.random is None else ():
        if size > len(fitted.data):
            raise GradfitError(f"the batch size {size} is larger than the data ({len(fitted.data)} examples): "
                               f"sweep batch sizes of at most {len(fitted.data)}")
    return fitted


def _first_settings(space) -> dict[str, Any]:
    """The discrete settings of the space's first group, without building its configurations."""
    from .runner import GROUP_KEYS
    from .space import _default_variant

    name, variant = space.optimizers[0]
    first = {"optimizer": name, "variant": _default_variant(name, variant)}
    for key, axis in space.axes.items():
        if key in GROUP_KEYS:
            first[key] = axis.values[0] if axis.values is not None else axis.grid_values()[0]
    return first


def _meta(problem, fitted, space) -> dict[str, Any]:
    """What the output file must match to be resumed: the problem, the fixed settings and the space."""
    from ..checkpoint import digest

    data = fitted.data
    return {
        "model": fitted.model.describe(),
        "loss": fitted.objective.loss.describe(),
        "data": digest(data.x, data.y, *(() if data.weights is None else (data.weights,))),
        "steps": problem.steps, "epochs": problem.epochs, "batch_size": problem.batch_size, "tol": problem.tol,
        "reduction": problem.reduction, "dtype": fitted.dtype, "history_every": problem.history_every,
        "space": space.describe(),
    }


def _concat(frames):
    import pandas as pd

    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _ordered(frame, space):
    """The rows in the order of the space's configurations, then seeds."""
    from .store import run_key

    if frame.empty:
        return frame
    order = {}
    for i, config in enumerate(space.configurations()):
        for j, seed in enumerate(space.seeds):
            order[run_key({**config, "seed": int(seed)})] = i * len(space.seeds) + j
    rank = frame["run"].map(order).fillna(math.inf)
    frame = frame.assign(_rank=rank).sort_values("_rank", kind="stable").drop(columns="_rank").reset_index(drop=True)
    return frame[sorted(frame.columns, key=_column_rank)]


#: The table's columns in order (others, such as the model's parameters, where their kind puts them).
COLUMNS = ("trial", "optimizer", "variant", "schedule", "lr", "factor", "rate", "floor", "beta", "gamma", "eps",
           "weight_decay", "batch_size", "max_steps", "epochs", "every", "decay_steps", "warmup", "seed")
_AFTER = ("final_loss", "best_loss", "steps", "status", "seconds", "trial_params", "run")


def _column_rank(name: str) -> tuple[int, int]:
    if name in COLUMNS:
        return 0, COLUMNS.index(name)
    if name.startswith("init_"):
        return 1, 0
    if name.startswith("final_") and name not in _AFTER:
        return 2, 0
    return (3, _AFTER.index(name)) if name in _AFTER else (4, 0)

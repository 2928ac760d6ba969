"""`gradfit.fit`: check the inputs, plan the compiled loop, run it chunk by chunk, build the result.

A fit flows one way: the model, loss, data and optimiser are resolved and checked; a
`loop.Plan` fixes the shape of the compiled chunk; the chunks run one after another
(`gradfit.loop`), with mini-batches from `gradfit.batches`, the history kept within a
budget by `gradfit.history`, the state saved by `gradfit.checkpoint`, and Ctrl-C or
SIGTERM noted by `gradfit.interrupts` and acted on between chunks; then each start's
`FitResult` is built (`MultiFit` for many starts), optionally finished by Newton's
method, and a stop for a small gradient is classified by the Hessian
(`gradfit.points`): only a minimum is ``converged``.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import numpy as np

from . import batches, interrupts, loop, newton, parameters, points
from . import checkpoint as checkpoints
from . import polish as polish_mod
from .batches import seed_words
from .data import Dataset, _is_table, as_dataset
from .errors import GradfitError, Interrupted
from .history import Recorder, default_max_rows
from .loop import CONVERGED, DIV_GRAD, DIV_LOSS, DIV_PARAMS, RUNNING, STOPPED, default_dtype
from .losses import Loss, make_loss
from .models import Model, linear_for, make_model, output_shape
from .objective import Objective
from .optimizers import Optimizer, make_optimizer
from .polish import SecondOrder
from .result import FitResult, History, MultiFit

__all__ = ["fit", "Fitter", "default_dtype"]

_DIVERGED_WHAT = {DIV_LOSS: "the loss", DIV_GRAD: "the gradient", DIV_PARAMS: "a parameter"}

#: Without ``checkpoint_every``, a checkpoint is written at most this often (seconds), and at the end.
CHECKPOINT_SECONDS = 30.0

#: Mini-batch fits of data over 2,048 rows record their history once every this many epochs by default.
RECORD_EPOCHS = 10

#: Progress callback: (steps run so far, step cap, lowest current loss or NaN).
Progress = Callable[[int, int, float], None]

#: Monitor of many runs (`Fitter`): (steps run so far, each run's latest recorded loss) -> the runs
#: to stop now (a boolean array; None or all False: none). A stopped run keeps its last recorded
#: point and ends with status ``stopped``: how a search prunes the runs it gives up on.
Monitor = Callable[[int, np.ndarray], Any]


def fit(
    model: Model | str,
    loss: Loss | str,
    data: Dataset | tuple[Any, Any],
    optimizer: Optimizer | str = "adam",
    *,
    init: Mapping[str, Any] | Sequence[Any] | np.ndarray | None = None,
    steps: int | None = None,
    epochs: int | None = None,
    batch_size: int | None = None,
    tol: float = 1e-6,
    seed: int = 0,
    reduction: str = "sum",
    dtype: str | None = None,
    history_every: int | None = None,
    max_history: int | None = None,
    progress: Progress | None = None,
    polish: bool | SecondOrder = False,
    checkpoint: str | Path | None = None,
    checkpoint_every: int | None = None,
    resume: str | Path | None = None,
    bounds: Mapping[str, Any] | None = None,
    fixed: Mapping[str, Any] | None = None,
    sigma: Any = None,
    absolute_sigma: bool = False,
    weights: Any = None,
) -> FitResult | MultiFit:
    """Minimise L[φ] = Σ_i ℓ(f[x_i, φ], y_i) by the optimiser's rule.

    Parameters
    ----------
    model, loss, optimizer
        Objects, or names (``"gabor"``, ``"normal"``, ``"adam"``) with default settings.
    data
        A `Dataset`, an ``(x, y)`` pair, a table (a pandas DataFrame, a pyarrow Table, a
        dict of columns: y the last column, x the others) or a CSV/Parquet path
        (`gradfit.data.as_dataset`); or a `gradfit.stream` of files larger than memory,
        fitted with mini-batches as they are read (`gradfit.streamfit`).
    init
        A dict name -> value, a flat vector in parameter order, or many of either
        (a list of dicts, or an array of shape (S, P)) to fit S starts at once.
        Default: the model's own start.
    steps, epochs
        The cap: updates, or passes over the data (give one). Default 1000 steps.
    batch_size
        Mini-batch size; ``None`` is full batch. Batches are drawn without replacement
        and reshuffled each epoch, reproducibly from ``seed``.
    tol
        Stop once the full-data gradient norm is at most tol; 0 runs every step. The
        point it stopped at is then classified by its Hessian (models of at most 200
        parameters): status ``converged`` at a minimum, ``stalled`` at a saddle point,
        a maximum or on flat ground (``FitResult.point`` says which).
    history_every
        Record φ, the full-data loss and gradient norm every this many steps
        (default 1; for mini-batches of data over 2,048 rows, where a record costs a
        pass over the data, about an epoch's steps: once every 10 epochs, so records
        cost about a tenth of the fit). A fit's start and end are always recorded.
    max_history
        Keep at most this many history rows per start: past it, every second row is
        dropped, then every fourth, ... (start and end always kept). Default: a budget
        of about half a million numbers per start (`gradfit.history`), so a run of 10⁷
        steps keeps a bounded history.
    polish
        Finish from where the optimiser stopped with a second-order method
        (`gradfit.polish`): Levenberg–Marquardt for least squares (the normal loss),
        trust-region Newton for any other likelihood, each to its relative stopping
        rules: a first-order run to the right valley, then fast convergence to the
        optimum, as a curve fitter would. Their iterates join the history. Give a
        `gradfit.polish.SecondOrder` (``gf.lm(max_iter=...)``) to set its rules.
    optimizer "lm", "newton"
        Second-order methods run on their own (`gradfit.polish`): ``steps`` caps
        their iterations, and they stop on their relative tests (ftol, xtol, gtol),
        not on ``tol``. A linear model with the normal loss is solved exactly (by the
        SVD of its column-scaled design) rather than iterated.
    bounds, fixed
        ``bounds={"k": (0, None)}`` keeps k >= 0; ``fixed={"a": 1.0}`` holds a at 1 and
        does not fit it. Every optimiser runs on unbounded internal variables
        (`gradfit.parameters`); the result is in the model's own parameters, and
        ``settings["at_bound"]`` names those that ended on a bound.
    sigma, absolute_sigma
        Standard deviations of the targets, one per example (or one for all), for
        least squares: each squared residual is weighted by 1/σ_i², as scipy's
        ``curve_fit``. ``absolute_sigma=True`` says the σ_i are absolute, so standard
        errors are not rescaled by the residuals' spread (`gradfit.inference`).
    weights
        Per-example weights w_i > 0 for any likelihood: L = Σ_i w_i ℓ_i.
    dtype
        ``"float64"`` (default on CPU) or ``"float32"``. The fit runs under JAX's x64
        setting for its own duration only; the caller's setting is left as it was.
    checkpoint, checkpoint_every
        Write the fit's whole state to this file (atomically) every ``checkpoint_every``
        steps (rounded up to the compiled chunk, at most 2,048 steps), or, by default,
        at most every 30 s; and when the fit ends or is interrupted.
    resume
        Continue from a checkpoint written by this same fit (same data and settings,
        else an error says what differs): the result is bit-identical to the fit run
        without a break. Checkpoints go on being written to ``checkpoint``, or to this
        file if ``checkpoint`` is not given.

    Raises
    ------
    GradfitError
        For bad input, before any step is run.
    Interrupted
        On SIGINT (Ctrl-C) or SIGTERM: the fit finishes its current compiled chunk and
        stops; ``exc.result`` holds where it got to (status ``interrupted``) and
        ``exc.checkpoint`` the checkpoint it wrote, if asked for one.
    """
    if _is_stream(data):
        from . import streamfit

        return streamfit.fit(model, loss, data, optimizer, init=init, steps=steps, epochs=epochs,
                             batch_size=batch_size, tol=tol, seed=seed, reduction=reduction, dtype=dtype,
                             history_every=history_every, progress=progress, checkpoint=checkpoint,
                             checkpoint_every=checkpoint_every, resume=resume, max_history=max_history,
                             polish=polish, bounds=bounds, fixed=fixed, sigma=sigma, absolute_sigma=absolute_sigma,
                             weights=weights)
    problem = _Problem.build(model, loss, data, optimizer, steps=steps, epochs=epochs, batch_size=batch_size,
                             tol=tol, reduction=reduction, dtype=dtype, history_every=history_every,
                             max_history=max_history, polish=polish, checkpoint=checkpoint, resume=resume,
                             checkpoint_every=checkpoint_every, bounds=bounds, fixed=fixed, sigma=sigma,
                             absolute_sigma=absolute_sigma, weights=weights)
    return problem.run(init, seed, progress=progress, checkpoint=checkpoint, checkpoint_every=checkpoint_every,
                       resume=resume)


@dataclass(frozen=True)
class _Problem:
    """A fit's checked settings that do not depend on where it starts: built once by `fit`, and
    once per data set by a `Fitter`, which then runs it from many starts, seeds and numbers."""

    model: Model  # the user's model (the objective's may be its internal, bounded form)
    objective: Objective
    optimizer: Optimizer | SecondOrder
    data: Dataset
    given: Any  # parameters.Constraints or None
    total: int
    per_epoch: int
    batch_size: int | None
    every: int
    tol: float
    dtype: str
    epochs: int | None
    max_history: int | None
    polish: Any
    absolute_sigma: bool

    @classmethod
    def build(cls, model, loss, data, optimizer, *, steps, epochs, batch_size, tol, reduction, dtype, history_every,
              max_history, polish, checkpoint, resume, checkpoint_every, bounds, fixed, sigma, absolute_sigma,
              weights) -> _Problem:
        objective, optimizer, data = _resolve(model, loss, data, optimizer, reduction)
        data = _weighted(data, objective.loss, sigma, absolute_sigma, weights)
        objective = dataclasses.replace(objective, weighted=data.weights is not None)
        model = objective.model
        given = parameters.constraints(model, bounds, fixed)
        second = isinstance(optimizer, SecondOrder)
        if second:
            optimizer = _second_order_settings(optimizer, objective, steps, epochs, batch_size, checkpoint, resume)
            steps = optimizer.max_iter
        dtype = dtype or default_dtype()
        if dtype not in ("float64", "float32"):
            raise GradfitError(f"dtype must be 'float64' or 'float32', not {dtype!r}")
        n = len(data)
        minibatch = batch_size is not None
        if minibatch:
            if not _whole(batch_size) or batch_size < 1:
                raise GradfitError(f"the batch size must be a positive whole number, not {batch_size}")
            if batch_size > n:
                raise GradfitError(
                    f"the batch size {batch_size} is larger than the data ({n} examples); "
                    f"use at most {n}, or leave it out for full-batch descent"
                )
            batch_size = int(batch_size)
            batches.check_size(n)
        if not second and optimizer.line_search and minibatch:
            raise GradfitError("the line search is for full-batch gradient descent; leave out the batch size")
        per_epoch = -(-n // batch_size) if minibatch else 1
        total = _step_cap(steps, epochs, per_epoch)
        if not isinstance(tol, int | float | np.floating | np.integer) or not tol >= 0:
            raise GradfitError(f"tol must be a number >= 0, not {tol!r}")
        every = history_every if history_every is not None else (
            RECORD_EPOCHS * per_epoch if minibatch and n > 2048 else 1)
        if not _whole(every) or every < 1:
            raise GradfitError(f"history_every must be a positive whole number, not {history_every}")
        every = min(int(every), max(total, 1))  # a stride past the cap records the start only
        if max_history is not None and (not _whole(max_history) or max_history < 2):
            raise GradfitError(f"max_history must be a whole number >= 2 (the start and the end), not {max_history}")
        if checkpoint_every is not None and (not _whole(checkpoint_every) or checkpoint_every < 1):
            raise GradfitError(f"checkpoint_every must be a positive whole number of steps, not {checkpoint_every}")
        if polish is not False and polish is not None:
            _polish_settings(polish, objective, False)  # checked now; whether it fits the starts, when they come
        if given is not None:
            objective = dataclasses.replace(objective, model=parameters.internal_model(model, given))
        return cls(model, objective, optimizer, data, given, total, per_epoch, batch_size, every, float(tol), dtype,
                   epochs, max_history, polish, bool(absolute_sigma))

    def run(self, init, seed, *, values: Mapping[str, Any] | None = None, progress=None, checkpoint=None,
            checkpoint_every=None, resume=None, monitor: Monitor | None = None) -> FitResult | MultiFit:
        """The fit from ``init`` (or the model's start for each seed), with the optimiser's numbers
        ``values`` (each a number, or one per run: runs are the starts, the seeds or the values given)."""
        model, dtype = self.model, self.dtype
        seeds = np.asarray(seed)
        if seeds.ndim > 1 or seeds.size == 0 or not all(_whole(v) and v >= 0 for v in seeds.ravel().tolist()):
            raise GradfitError(f"the seed must be a whole number >= 0 (or a list of them), not {_clip(seed)}")
        starts, batched = _starts(model, init, int(seeds.ravel()[0]))
        lanes, numbers = _lanes(self.optimizer, values, len(starts) if batched else None, seeds)
        if lanes is not None:  # runs that differ in their seeds or numbers
            seeds = np.broadcast_to(seeds, (lanes,)).astype(np.int64)
            if init is None:
                starts = np.stack([model.default_init(int(k)) for k in seeds])
            elif not batched:
                starts = np.broadcast_to(starts, (lanes, model.size))
            batched = True
        else:
            seeds = np.full(len(starts), int(seeds), np.int64)
        limit = float(np.finfo(dtype).max)
        if np.any(np.abs(starts) > limit):
            raise GradfitError(f"init holds {float(np.max(np.abs(starts))):g}, beyond the largest {dtype} "
                               f"({limit:.3g}); start from smaller values, or fit in float64")
        finish = _polish_settings(self.polish, self.objective, batched)
        given = self.given
        if given is not None:
            if init is None:  # the model's own start, not the user's: move it inside the bounds rather than refuse
                starts = given.inside(starts)
            starts = given.internal(starts)
        size = self.objective.model.size
        rows = int(self.max_history) if self.max_history is not None else default_max_rows(size, len(starts))
        run = _Run(self.objective, self.optimizer, self.data, np.asarray(starts, float), batched, self.total,
                   self.per_epoch, self.batch_size, self.every, self.tol, dtype, self.epochs, rows, numbers, seeds)
        source = (model, self.objective.loss, self.data)
        try:
            with jax.enable_x64(dtype == "float64"):
                if isinstance(self.optimizer, SecondOrder):
                    result = _second_order(run, self.optimizer)
                else:
                    result = _run(run, progress, checkpoint if checkpoint is not None else resume, checkpoint_every,
                                  resume, monitor)
                if finish is not None and result.status not in ("diverged",):
                    result = _polish(result, run, finish)
        except Interrupted as exc:
            exc.result = _in_model_terms(exc.result, given, source, self.absolute_sigma, run)
            raise
        return _in_model_terms(result, given, source, self.absolute_sigma, run)


@functools.lru_cache(maxsize=256)
def _own_numbers(optimizer, shape: tuple[int, ...]) -> dict[str, np.ndarray]:
    """The optimiser's own numbers, each as an array of ``shape`` (read-only: shared between fits)."""
    own = optimizer.values if isinstance(optimizer, Optimizer) else {}
    numbers = {k: np.full(shape, v, float) for k, v in own.items()}
    for array in numbers.values():
        array.flags.writeable = False
    return numbers


def _lanes(optimizer, values, starts: int | None, seeds: np.ndarray) -> tuple[int | None, dict[str, np.ndarray]]:
    """How many runs the seeds and numbers ask for (None: one seed and the optimiser's own numbers, so the
    runs are the starts), and each of the optimiser's numbers per run (shape (runs,), or () for one)."""
    values = dict(values or {})
    if not values and seeds.ndim == 0:  # the common call: the optimiser's own numbers, one seed
        return None, _own_numbers(optimizer, () if starts is None else (starts,))
    if values and isinstance(optimizer, SecondOrder):
        raise GradfitError(f"{optimizer.method} takes no {', '.join(values)}: it has no learning rate or momentum")
    own = optimizer.values if isinstance(optimizer, Optimizer) else {}
    unknown = sorted(set(values) - set(own))
    if unknown:
        raise GradfitError(f"{optimizer.name} takes no {', '.join(unknown)}; its numbers are {', '.join(own)}")
    arrays = {k: np.asarray(v, float) for k, v in values.items()}
    sizes = {len(a) for a in arrays.values() if a.ndim == 1} | ({len(seeds)} if seeds.ndim == 1 else set())
    if any(a.ndim > 1 for a in arrays.values()):
        raise GradfitError("each of the optimiser's numbers is one number, or a list of them (one per run)")
    if starts is not None and sizes:
        sizes.add(starts)
    if len(sizes) > 1:
        raise GradfitError(f"the runs' lists have different lengths ({', '.join(map(str, sorted(sizes)))}): "
                           "give each list one value per run, or a single number for all")
    lanes = sizes.pop() if sizes else None
    shape = (lanes if lanes is not None else starts,) if (lanes is not None or starts is not None) else ()
    numbers = {k: np.broadcast_to(arrays.get(k, v), shape).astype(float) for k, v in own.items()}
    if values:
        optimizer.check_values(numbers)
    return lanes, numbers


class Fitter:
    """Many fits of one problem, checked and compiled once: ``Fitter(model, loss, optimizer, ...)(data)``.

    The constructor takes the settings of `fit` that define the problem; a call takes the
    data and where to start, and returns what `fit` would::

        fitter = gf.Fitter("gabor", "normal", gf.adam(0.05), steps=1000, tol=0)
        for data in data_sets:
            result = fitter(data, init={"phi0": 1.0, "phi1": 10.0})

    The first call with a data set checks the data and the settings as `fit` does; later
    calls with the same data object skip those checks and reuse the compiled loop (a new
    data set of the same shape reuses it too, after its checks).

    Calls can also run many fits at once, in one compiled call: give the optimiser's
    numbers (``lr``, ``beta``, ``gamma``, ``eps``, ``weight_decay``, and a schedule's
    ``factor``, ``rate`` or ``floor``) or ``seed`` as lists, one value per run::

        runs = fitter(data, lr=np.geomspace(1e-3, 1, 64).repeat(8), seed=np.tile(np.arange(8), 64))

    returns a `MultiFit` of 512 fits, the first compiled once. Run k is the fit that
    ``fit(model, loss, data, optimizer.with_values(lr=lr[k]), seed=seed[k], ...)`` runs
    alone: the same rule, the same start (the model's start for that seed, unless
    ``init`` is given) and the same mini-batches. `gradfit.sweeps` is built on this.
    """

    def __init__(self, model: Model | str, loss: Loss | str, optimizer: Optimizer | str = "adam", *,
                 steps: int | None = None, epochs: int | None = None, batch_size: int | None = None,
                 tol: float = 1e-6, reduction: str = "sum", dtype: str | None = None,
                 history_every: int | None = None, max_history: int | None = None,
                 polish: bool | SecondOrder = False, bounds: Mapping[str, Any] | None = None,
                 fixed: Mapping[str, Any] | None = None):
        if isinstance(optimizer, str):
            optimizer = make_optimizer(optimizer)
        self.model, self.loss, self.optimizer = model, loss, optimizer
        self._settings = dict(steps=steps, epochs=epochs, batch_size=batch_size, tol=tol, reduction=reduction,
                              dtype=dtype, history_every=history_every, max_history=max_history, polish=polish,
                              bounds=bounds, fixed=fixed, checkpoint=None, resume=None, checkpoint_every=None)
        self._key: tuple | None = None
        self._problem: _Problem | None = None

    def problem(self, data, *, sigma=None, absolute_sigma: bool = False, weights=None) -> _Problem:
        """The checked problem for this data set (cached for the data object last given): its
        ``model`` (the resolved `Model`), ``data`` (the `Dataset`), ``objective``, ``optimizer``,
        ``dtype``, step cap ``total`` and the other settings `fit` would run with."""
        key = (id(data), id(sigma), id(weights), absolute_sigma)
        if self._problem is None or key != self._key or self._held[0] is not data:
            self._problem = _Problem.build(self.model, self.loss, data, self.optimizer, sigma=sigma,
                                           absolute_sigma=absolute_sigma, weights=weights, **self._settings)
            self._key, self._held = key, (data, sigma, weights)  # held, so their ids stay theirs
        return self._problem

    def __call__(self, data, init: Mapping[str, Any] | Sequence[Any] | np.ndarray | None = None, *,
                 seed: int | Sequence[int] = 0, progress: Progress | None = None, sigma: Any = None,
                 absolute_sigma: bool = False, weights: Any = None, monitor: Monitor | None = None,
                 **values: Any) -> FitResult | MultiFit:
        """Fit ``data`` from ``init`` (as `fit`), with the optimiser's numbers overridden by ``values``.

        ``monitor(steps, losses)`` is called between compiled chunks with each run's latest
        recorded loss; the runs it returns True for stop there (status ``stopped``).
        """
        problem = self.problem(data, sigma=sigma, absolute_sigma=absolute_sigma, weights=weights)
        return problem.run(init, seed, values=values, progress=progress, monitor=monitor)


def _weighted(data: Dataset, loss: Loss, sigma, absolute_sigma, weights) -> Dataset:
    """The data with per-example weights from ``sigma`` (1/σ²) or ``weights``, checked."""
    if not isinstance(absolute_sigma, bool | np.bool_):
        raise GradfitError(f"absolute_sigma must be True or False, not {absolute_sigma!r}")
    if sigma is None and weights is None:
        if absolute_sigma:
            raise GradfitError("absolute_sigma=True says how to read sigma: give sigma too")
        return data
    if sigma is not None and weights is not None:
        raise GradfitError("give sigma (standard deviations, for least squares) or weights, not both")
    if data.weights is not None:
        raise GradfitError("the data carry weights already; leave out sigma and weights, or pass unweighted data")
    if sigma is not None:
        if loss.name != "normal":
            raise GradfitError(f"sigma gives the normal loss's standard deviations; the {loss.name} loss takes "
                               "weights= (w_i multiplies each example's loss) instead")
        try:
            values = np.asarray(sigma, dtype=float)
        except (TypeError, ValueError):
            raise GradfitError("sigma must be numbers: one standard deviation per example, or one for all") from None
        values = np.broadcast_to(values, (len(data),)) if values.ndim == 0 else values
        if values.ndim != 1 or len(values) != len(data):
            raise GradfitError(f"sigma has shape {values.shape}; the data have {len(data)} examples: give one "
                               "standard deviation per example, or one for all")
        bad = ~(np.isfinite(values) & (values > 0))
        if bad.any():
            i = int(np.nonzero(bad)[0][0])
            raise GradfitError(f"sigma must be finite and > 0; it is {values[i]} at row index {i}")
        with np.errstate(over="ignore", under="ignore", divide="ignore"):
            w = 1.0 / (values * values)
        if not np.all(np.isfinite(w)):
            raise GradfitError("sigma holds values so small that 1/σ² overflows: rescale the targets")
        return dataclasses.replace(data, weights=w)
    if absolute_sigma:
        raise GradfitError("absolute_sigma=True reads sigma as absolute standard deviations: give sigma, not weights")
    return dataclasses.replace(data, weights=weights)


def _second_order_settings(settings, objective, steps, epochs, batch_size, checkpoint, resume):
    """A second-order method's settings for this fit, or a clear error for what it does not take."""
    if settings.method == "lm" and not polish_mod.least_squares(objective):
        raise GradfitError(polish_mod.lm_refusal(objective.loss.name))
    if batch_size is not None or epochs is not None:
        raise GradfitError(f"{settings.method} uses all the data at every iteration: leave out the batch size "
                           "and epochs (steps caps its iterations)")
    if checkpoint is not None or resume is not None:
        raise GradfitError(f"{settings.method} runs in one compiled call of a few iterations: it keeps no "
                           "checkpoint; leave out checkpoint and resume")
    if steps is not None:
        if _whole(steps) and steps > polish_mod.MAX_ITER_CAP:
            raise GradfitError(f"steps caps {settings.method}'s iterations; it may be at most "
                               f"{polish_mod.MAX_ITER_CAP:,}, not {steps:,}")
        if not _whole(steps) or steps < 1:
            raise GradfitError(f"steps (the cap on {settings.method}'s iterations) must be a whole number >= 1, "
                               f"not {steps!r}")
        settings = dataclasses.replace(settings, max_iter=int(steps))
    return settings


def _polish_settings(polish, objective, batched) -> SecondOrder | None:
    if polish is False or polish is None:
        return None
    if isinstance(polish, SecondOrder):
        if polish.method == "lm" and not polish_mod.least_squares(objective):
            raise GradfitError(polish_mod.lm_refusal(objective.loss.name))
        finish = polish
    elif polish is True:
        finish = polish_mod.lm() if polish_mod.least_squares(objective) else polish_mod.newton()
    else:
        raise GradfitError(f"polish must be True, False or a second-order method (gf.lm(), gf.trust_newton()), "
                           f"not {polish!r}")
    if batched:
        raise GradfitError("polish finishes one start; fit the starts, then polish the best "
                           "(or fit them all with optimizer 'lm')")
    return finish


def _in_model_terms(result, given, source, absolute_sigma, run):
    """A result in the model's own parameters (from a bounded fit's internal variables), with its source."""
    model, loss, data = source

    def convert(one: FitResult) -> FitResult:
        extra = {"absolute_sigma": bool(absolute_sigma)} if data.weights is not None else {}
        if given is None:
            return dataclasses.replace(one, source=source, settings={**one.settings, **extra})
        h = one.history
        theta = given.external(one.x, np)
        history = History(step=h.step, params=given.external(h.params, np), loss=h.loss, grad_norm=h.grad_norm,
                          lr=h.lr)
        at_bound = _pinned(run, model, given, given.at_bound(one.x), theta)
        settings = {**one.settings, **given.settings(), "at_bound": at_bound, **extra}
        return dataclasses.replace(one, params=model.named(theta), history=history, shapes=model.shapes,
                                   model=model.describe(), settings=settings, source=source)

    if isinstance(result, MultiFit):
        fits = result
        params = given.external(fits.params, np) if given is not None else fits.params
        return MultiFit.lazy(len(fits), lambda s: convert(fits[s]), params, fits.losses)
    return convert(result)


def _is_stream(data) -> bool:
    """Whether ``data`` is a `gradfit.streaming.Stream` (checked without importing its module)."""
    return type(data).__name__ == "Stream" and type(data).__module__ == "gradfit.streaming"


def _whole(value) -> bool:
    """Whether value is a whole number (an int, or a float with no fraction), not a bool or text."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        return False
    if isinstance(value, int | np.integer):
        return True
    return math.isfinite(value) and int(value) == value


@dataclass(frozen=True)
class _Run:
    """One fit's checked settings: everything its chunks, history and result depend on."""

    objective: Objective
    optimizer: Optimizer
    data: Dataset
    starts: np.ndarray  # (S, P)
    batched: bool
    total: int
    per_epoch: int
    batch_size: int | None
    every: int
    tol: float
    dtype: str
    epochs: int | None
    max_rows: int
    values: dict[str, np.ndarray]  # the optimiser's numbers: shape (S,) when batched, () for one start
    seeds: np.ndarray  # (S,): each start's seed (its mini-batches; its start, when init was not given)

    @property
    def seed(self) -> int:
        """The fit's seed: the first start's (all starts share it unless the runs carry their own)."""
        return int(self.seeds[0])

    @property
    def float_t(self):
        return np.float64 if self.dtype == "float64" else np.float32

    @property
    def lane_batches(self) -> bool:
        """Whether the starts draw different mini-batches (their seeds differ)."""
        return self.batch_size is not None and len(np.unique(self.seeds)) > 1

    def optimizer_of(self, s: int) -> Optimizer:
        """Start s's optimiser: the fit's, with start s's numbers."""
        mine = {k: float(v[s] if np.ndim(v) else v) for k, v in self.values.items()}
        return self.optimizer if mine == self.optimizer.values else self.optimizer.with_values(**mine)

    def h(self) -> dict[str, np.ndarray]:
        """The optimiser's numbers as the compiled chunk takes them."""
        return {k: np.asarray(v, self.float_t) for k, v in self.values.items()}

    def fingerprint(self, chunk: int) -> dict[str, Any]:
        """What a checkpoint of this fit must match to be resumed by it."""
        return {
            "data": checkpoints.digest(self.data.x, self.data.y),
            "starts": checkpoints.digest(np.asarray(self.starts, float)),
            "model": self.objective.model.describe(),
            "loss": self.objective.loss.describe(),
            "reduction": self.objective.reduction,
            "optimizer": self.optimizer.to_dict(),
            "dtype": self.dtype,
            "steps": self.total,
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            **({"batch_order": batches.ORDER} if self.batch_size is not None else {}),
            "tol": self.tol,
            "seed": self.seed,
            **({"runs": checkpoints.digest(np.asarray(self.seeds, float),
                                           *(np.asarray(v, float) for v in self.values.values()))}
               if self.batched and (self.lane_batches or any(np.ndim(v) and np.any(v != v[0])
                                                            for v in self.values.values())) else {}),
            "history_every": self.every,
            "max_history": self.max_rows,
            "chunk": chunk,
        }


def _pinned(run: _Run, model: Model, given: parameters.Constraints, candidates: dict[str, str],
            theta: np.ndarray) -> dict[str, str]:
    """The candidates (free scalars where dφ/du is about 0) that their bound really holds.

    One Newton step on L in φ_j alone, -g_j / H_jj, would cross the bound by more than the
    parameter's distance to it: the optimum lies beyond, and the bound is what stops it.
    A parameter that sits close to its bound at its own optimum (k = 2·10⁻¹² with k >= 0)
    has g_j about 0 and is not held. The test is free of the parameter's scale.
    """
    if not candidates:
        return {}
    objective = dataclasses.replace(run.objective, model=model)
    names = model.flat_names
    with jax.enable_x64(run.dtype == "float64"):
        x, y = loop.on_device(run.data, run.float_t)
        point = np.asarray(theta, run.float_t)
        grad = np.asarray(jax.device_get(newton.value_and_grad(objective)(point, x, y)[1]), float)
        held = {}
        for name, side in candidates.items():
            j = names.index(name)
            unit = np.zeros_like(point)
            unit[j] = 1
            curvature = float(np.asarray(jax.device_get(_curvature_along(objective)(point, unit, x, y)))[j])
            bound = given.lower[j] if side == "lower" else given.upper[j]
            outward = grad[j] > 0 if side == "lower" else grad[j] < 0
            step = abs(grad[j]) / curvature if curvature > 0 else np.inf
            if outward and step > abs(theta[j] - bound):
                held[name] = side
    return held


@functools.lru_cache(maxsize=64)
def _curvature_along(objective: Objective):
    """H v: the Hessian of L times a direction, compiled once per objective (forward over reverse)."""
    grad = jax.grad(objective.value)
    return jax.jit(lambda theta, v, x, y: jax.jvp(lambda t: grad(t, x, y), (theta,), (v,))[1])


def _second_order(run: _Run, settings: SecondOrder) -> FitResult | MultiFit:
    """A fit by Levenberg–Marquardt or trust-region Newton from every start (`gradfit.polish`)."""
    t0 = time.perf_counter()
    x, y = loop.on_device(run.data, run.float_t)
    with interrupts.deferred() as pending:
        out = _second_order_outcome(run, settings, run.starts.astype(run.float_t), x, y)
    elapsed = time.perf_counter() - t0

    def build(s: int) -> FitResult:
        history, code, steps = _second_order_history(run, out, s)
        status, point, why = _second_order_status(run, settings, out, s, code)
        return FitResult(
            params=run.objective.model.named(out.theta[s]), loss=float(history.loss[-1]),
            grad_norm=float(history.grad_norm[-1]), steps=steps, status=status, stopped=why, history=history,
            shapes=run.objective.model.shapes, model=run.objective.model.describe(),
            objective=f"{run.objective.loss.describe()}, {run.objective.reduction}", optimizer=settings.to_dict(),
            settings={**_settings(run, s), "iterations": int(out.iterations[s])}, elapsed=elapsed, point=point)

    result = MultiFit.lazy(len(run.starts), build, out.theta, out.rows[np.arange(len(out.theta)), np.minimum(
        out.taken, out.rows.shape[1] - 1), -1]) if run.batched else build(0)
    if pending:
        raise Interrupted(result, None, pending.name, steps=int(np.max(out.taken)))
    return result


def _second_order_outcome(run: _Run, settings: SecondOrder, starts, x, y) -> polish_mod.Outcome:
    """polish.minimize, or the exact solution of a linear least-squares problem."""
    if settings.method == "lm" and polish_mod.linear_model(run.objective):
        return polish_mod.linear_least_squares(run.objective, starts, x, y)
    return polish_mod.minimize(run.objective, starts, x, y, settings)


def _second_order_history(run: _Run, out: polish_mod.Outcome, s: int) -> tuple[History, int, int]:
    """Start s's rows (one per step taken; the last ones thinned past `polish.MAX_ROWS`)."""
    size, taken = run.objective.model.size, int(out.taken[s])
    kept = min(taken + 1, out.rows.shape[1])
    rows = out.rows[s, :kept]
    step = np.arange(kept)
    step[-1] = taken
    lr = rows[:, size + 1].copy()
    lr[-1] = np.nan
    history = History(step=step, params=rows[:, :size], loss=rows[:, size + 2], grad_norm=np.sqrt(rows[:, size]),
                      lr=lr)
    return history, int(out.code[s]), taken


def _second_order_status(run, settings, out, s, code):
    """(status, point, stopped text) of start s of a second-order fit."""
    iterations, taken = int(out.iterations[s]), int(out.taken[s])
    label = settings.label if code != polish_mod.SOLVED else "linear least squares"
    reason = polish_mod.REASONS[code].format(max_iter=settings.max_iter)
    done = f"{label}: {reason}" + ("" if code == polish_mod.SOLVED else
                                   f" after {iterations} iteration(s), {taken} step(s) taken")
    if code == polish_mod.NOT_FINITE:
        return "diverged", None, f"diverged: {reason}; choose another start"
    if code == polish_mod.MAX_ITER:
        return "max_steps", None, done
    loss = float(out.rows[s, min(taken, out.rows.shape[1] - 1), -1])
    if out.hessian is not None and not np.any(out.hessian[s]):
        point = "minimum"  # LM at a point where JᵀJ is positive definite (polish.program)
    elif out.hessian is not None:
        point = points.kind(np.asarray(out.hessian[s], float), out.theta[s], loss, run.dtype)
    else:
        point = _point_at(run, out.theta[s], loss)
    if point in (None, "minimum"):
        return "converged", point, f"converged: {done}"
    return "stalled", point, f"stalled at {points.DESCRIPTION[point]}: {done}; try another start"


def _polish(result: FitResult, run: _Run, settings: SecondOrder) -> FitResult:
    """The result finished by a second-order method, its steps appended to the history."""
    t0 = time.perf_counter()
    x, y = loop.on_device(run.data, run.float_t)
    out = _second_order_outcome(run, settings, result.x[None, :].astype(run.float_t), x, y)
    history, code, taken = _second_order_history(run, out, 0)
    if code == polish_mod.NOT_FINITE:
        return result
    status, point, why = _second_order_status(run, settings, out, 0, code)
    old = result.history
    lr = old.lr.copy()
    lr[-1] = history.lr[0]  # the damping the first second-order step left the optimiser's last point with
    joined = History(
        step=np.concatenate([old.step, result.steps + history.step[1:]]),
        params=np.vstack([old.params, history.params[1:]]),
        loss=np.concatenate([old.loss, history.loss[1:]]),
        grad_norm=np.concatenate([old.grad_norm, history.grad_norm[1:]]),
        lr=np.concatenate([lr, history.lr[1:]]),
    )
    why = why.split(": ", 1)[1] if status == "converged" else why
    return dataclasses.replace(
        result,
        params=run.objective.model.named(out.theta[0]),
        loss=float(history.loss[-1]),
        grad_norm=float(history.grad_norm[-1]),
        steps=result.steps + taken,
        status=status,
        point=point,
        stopped=f"{result.stopped}; then {why}",
        history=joined,
        settings={**result.settings, "polish": settings.to_dict()},
        elapsed=result.elapsed + time.perf_counter() - t0,
    )


def _point_at(run: _Run, theta: np.ndarray, loss: float) -> str | None:
    """The kind of point θ is, by the full-data Hessian (None for models over points.MAX_SIZE)."""
    if run.objective.model.size > points.MAX_SIZE:
        return None
    with jax.enable_x64(run.dtype == "float64"):
        x, y = loop.on_device(run.data, run.float_t)
        h = jax.device_get(newton.hessian(run.objective)(np.asarray(theta, run.float_t), x, y))
    return points.kind(np.asarray(h, float), theta, loss, run.dtype)


def _resolve(model, loss, data, optimizer, reduction):
    inputs = getattr(getattr(model, "fn", None), "inputs", None) if isinstance(model, Model) else None
    if inputs and isinstance(data, (str, Path)) or (inputs and _is_table(data)):
        data = as_dataset(data, list(inputs))  # a formula's inputs, by name, from a table's columns
    else:
        data = as_dataset(data)
    if isinstance(model, str):
        model = linear_for(data) if model == "linear" else make_model(model)
    if isinstance(loss, str):
        loss = make_loss(loss)
    if isinstance(optimizer, str):
        optimizer = make_optimizer(optimizer)
    if not isinstance(model, Model):
        raise GradfitError(f"model must be a gradfit Model or a model name, not {type(model).__name__}")
    if not isinstance(loss, Loss):
        raise GradfitError(f"loss must be a gradfit loss (gf.normal(), gf.poisson(), ...) or a loss name, "
                           f"not {type(loss).__name__}")
    if not isinstance(optimizer, Optimizer | SecondOrder):
        raise GradfitError(
            f"optimizer must be a gradfit optimiser (gf.adam(0.1), gf.gd(0.01), ...) or its name, not "
            f"{type(optimizer).__name__}; gradfit's optimisers are optax transformations themselves, but "
            "gf.fit needs its own, which also name their rule and record their rate")
    objective = Objective(model, loss, reduction)
    probe = data.x[: min(len(data), 2)]
    out = output_shape(model, probe.shape)
    if len(out.shape) == 0 or out.shape[0] != probe.shape[0]:
        got = "a scalar" if len(out.shape) == 0 else f"{out.shape[0]} outputs"
        raise GradfitError(
            f"model {model.name!r} gives {got} for {probe.shape[0]} examples; "
            "it must return one output per example, shape (N,) or (N, K)"
        )
    loss.check_outputs(out.shape, model.name)
    loss.check_targets(data.y, out.shape[1] if len(out.shape) == 2 else 1)
    return objective, optimizer, data


def _step_cap(steps, epochs, per_epoch) -> int:
    if steps is not None and epochs is not None:
        raise GradfitError("give either steps or epochs as the cap, not both")
    if epochs is not None:
        if not _whole(epochs) or epochs < 1:
            raise GradfitError(f"epochs must be a positive whole number, not {epochs}")
        return _capped(int(epochs) * per_epoch, "epochs")
    steps = 1000 if steps is None else steps
    if not _whole(steps) or steps < 0:
        raise GradfitError(f"steps must be a whole number >= 0, not {steps}")
    return _capped(int(steps), "steps")


#: The loop counts steps in 32-bit integers (as XLA does best): a cap leaves room for one more chunk.
MAX_STEPS = 2**31 - 2**20


def _capped(total: int, what: str) -> int:
    if total > MAX_STEPS:
        raise GradfitError(f"{what} ask for {total:,} steps; a fit runs at most {MAX_STEPS:,} "
                           "(run it in parts, each starting from the parameters where the last one stopped)")
    return total


def _starts(model: Model, init, seed: int) -> tuple[np.ndarray, bool]:
    """Starting points as an (S, P) array, and whether several were asked for."""
    if init is None:
        return model.default_init(seed)[None, :], False
    try:
        if isinstance(init, Mapping):
            arr, batched = model.vector(init)[None, :].astype(float), False
        elif isinstance(init, Sequence) and not isinstance(init, str) and init and isinstance(init[0], Mapping):
            arr, batched = np.stack([model.vector(p) for p in init]).astype(float), True
        else:
            arr = np.asarray(init, dtype=float)
            batched = arr.ndim == 2
            arr = arr[None, :] if arr.ndim == 1 else arr
    except (TypeError, ValueError, OverflowError) as exc:
        raise GradfitError(f"init must hold numbers (a dict name -> value, or values in parameter order "
                           f"{', '.join(model.flat_names[:8])}), not {_clip(init)}: {exc}") from None
    if arr.ndim != 2 or arr.shape[1] != model.size or arr.shape[0] < 1:
        shape = np.shape(init) if not isinstance(init, Mapping) else arr.shape
        raise GradfitError(
            f"init has shape {shape}; model {model.name!r} has {model.size} parameter value(s) "
            f"({', '.join(model.flat_names[:8])}{' ...' if model.size > 8 else ''}): give {model.size} "
            f"values in that order, or an array of shape (starts, {model.size})"
        )
    bad = ~np.isfinite(arr)
    if bad.any():
        start, col = (int(i) for i in np.argwhere(bad)[0])
        where = f"start {start}, " if batched else ""
        raise GradfitError(f"init holds {arr[start, col]} ({where}parameter {model.flat_names[col]}); "
                           "starting values must be finite numbers")
    return arr, batched


def _clip(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# -- running the chunks ---------------------------------------------------------------------------------


def _run(run: _Run, progress, checkpoint, checkpoint_every, resume, monitor=None) -> FitResult | MultiFit:
    t0 = time.perf_counter()
    objective, starts, total, every = run.objective, run.starts, run.total, run.every
    minibatch, batched, size = run.batch_size is not None, run.batched, objective.model.size
    length = loop.chunk_steps(total, every, minibatch, run.per_epoch)
    plan = loop.Plan(objective, run.optimizer.skeleton, minibatch, batched, length // every, every, run.data.x.size,
                     len(starts) if batched else 0, run.lane_batches, len(run.data) if minibatch else 0,
                     run.batch_size or 0)
    init, run_chunk, final_of = loop.runner(plan)
    x, y = loop.on_device(run.data, run.float_t)
    tol = run.float_t(run.tol)
    rows_cap = (total - 1) // every + 1  # records the fit makes: after 0, every, 2·every, ... < total steps

    # The loop state stays on the device between chunks. Its leaves are strongly typed,
    # so a state restored from a checkpoint's arrays is the very input of the
    # uninterrupted run's next chunk, and the chunk computes the same bits from it.
    h = run.h()
    carry = init(starts.astype(run.float_t) if batched else starts[0].astype(run.float_t), h)
    fingerprint = run.fingerprint(length) if checkpoint is not None else None
    done_steps, elapsed_before, replay = 0, 0.0, False
    recorder = Recorder(run.max_rows, len(starts), size + 3)
    if resume is not None:
        saved = checkpoints.load(resume)
        checkpoints.check(saved, fingerprint, resume)
        carry = checkpoints.restore(carry, saved.leaves, resume)
        recorder = Recorder.from_state(saved.history)
        done_steps, elapsed_before = saved.steps_done, saved.elapsed
        # A finished fit resumed runs one chunk of no steps, for the final loss and gradient;
        # its rows are not records (they must not count against the history budget).
        replay = bool(saved.header.get("finished"))
    words = None
    if minibatch:  # each step draws its batch from the seed's words (`batches.batch_rows`)
        words = np.stack([seed_words(k) for k in run.seeds]) if run.lane_batches else seed_words(run.seed)

    def save(finished: bool) -> None:
        leaves = jax.device_get(jax.tree_util.tree_leaves(carry))
        checkpoints.save(checkpoint, fingerprint, done_steps, elapsed_before + time.perf_counter() - t0,
                         leaves, recorder.state(), finished)

    if checkpoint is not None and resume is None:
        checkpoints.check_target(checkpoint)  # never write over a fit that could still be resumed
        save(False)  # from the first moment on, a killed fit can be resumed
    last_saved_at, last_saved_step = time.monotonic(), done_steps
    with interrupts.deferred() as pending:
        while True:
            out = run_chunk(carry, done_steps, total, words, x, y, tol, h)
            row0 = done_steps // every
            done_steps += length
            carry = out[0]
            theta, done, code, n, chunk_rows, chunk_losses, *final = loop.unpack(np.asarray(out[1]), plan, size)
            run_rows = min(done_steps // every, rows_cap)
            recorder.add(row0, chunk_rows, chunk_losses, limit=row0 if replay else rows_cap)
            recorder.track_ends(row0, chunk_rows, chunk_losses, np.where(done, n // every, run_rows - 1))
            if progress is not None:
                finite = np.isfinite(chunk_losses)
                progress(min(done_steps, total), total, float(np.min(chunk_losses[finite])) if finite.any()
                         else float("nan"))
            if monitor is not None and not done_steps >= total:
                carry, done = _stopped(carry, done, monitor(min(done_steps, total), recorder.end_losses.copy()),
                                       (run_rows - 1) * every)
                code, n = (np.atleast_1d(a) for a in jax.device_get((carry[3], carry[4])))  # if no chunk follows
            finished = done_steps >= total or bool(np.all(done))
            if checkpoint is not None and (finished or pending or (
                    done_steps - last_saved_step >= checkpoint_every if checkpoint_every
                    else time.monotonic() - last_saved_at >= CHECKPOINT_SECONDS)):
                save(finished)
                last_saved_at, last_saved_step = time.monotonic(), done_steps
            if finished or pending:
                break
    interrupted = pending.name if pending and not finished else ""
    if interrupted:  # stopped before the last chunk, which takes the end point's loss and gradient
        final = jax.device_get(final_of(carry[0], x, y))
    elapsed = elapsed_before + time.perf_counter() - t0

    final_loss, final_gnorm = (np.atleast_1d(np.asarray(a, float)) for a in final)
    theta = np.asarray(theta, float).reshape(len(starts), size)
    run_to = min(done_steps, total) if interrupted else total
    ends = _outcomes(recorder, theta, np.asarray(starts, float), done, np.atleast_1d(code), n, final_loss,
                     final_gnorm, run_to, every, size)
    index, rows, losses = recorder.arrays()

    def build(s: int) -> FitResult:
        return _result(run, s, index, rows[:, s], losses[:, s], recorder, {k: v[s] for k, v in ends.items()},
                       interrupted, elapsed)

    result = MultiFit.lazy(len(starts), build, ends["theta"], ends["loss"]) if batched else build(0)
    if pending:  # even when the last chunk finished the fit: the caller must still learn of the signal
        raise Interrupted(result, checkpoint, pending.name, steps=run_to)
    return result


def _settings(run: _Run, s: int = 0) -> dict[str, Any]:
    """The settings start s's result records."""
    return {
        "seed": int(run.seeds[s]), "batch_size": run.batch_size, "epochs": run.epochs, "steps": run.total,
        "tol": run.tol, "dtype": run.dtype, "reduction": run.objective.reduction, "history_every": run.every,
        "max_history": run.max_rows, "n_examples": len(run.data), "data": run.data.name,
    }


def _stopped(carry, done, stop, at: int):
    """The loop state with the runs in ``stop`` (not yet done) stopped at their last record, step ``at``."""
    if stop is None:
        return carry, done
    stop = np.asarray(stop)
    if stop.shape not in ((), done.shape) or stop.dtype.kind not in "bui":
        raise GradfitError(f"a monitor returns None, or one True or False for each of the {done.size} runs; it "
                           f"returned {stop.dtype} of shape {stop.shape}")
    stop = np.broadcast_to(stop.astype(bool), done.shape) & ~done
    if not stop.any():
        return carry, done
    theta, opt_state, was, code, n = carry
    shape = np.shape(was)
    mask = stop.reshape(shape)
    carry = (theta, opt_state, np.logical_or(was, mask), np.where(mask, STOPPED, code).astype(np.int32),
             np.where(mask, at, n).astype(np.int32))
    return jax.device_put(carry), done | stop


def _outcomes(recorder, theta, starts, done, code, n, final_loss, final_gnorm, total, every, size):
    """Where each start ended, for all starts at once (all arrays have a leading starts axis).

    A start that stopped ends at its stop row (or at its start, if even that was not
    finite); one that ran to the cap ends at the final θ, or at its last recorded row
    if the last updates left the finite numbers.
    """
    kept = np.where(done, np.floor_divide(n, every) + 1, (total - 1) // every + 1)
    kept = np.maximum(kept, 0)
    row_theta = recorder.end_rows[:, :size]
    row_loss = recorder.end_losses
    row_gnorm = np.sqrt(recorder.end_rows[:, size])
    theta_ok = np.all(np.isfinite(theta), axis=1)
    final_ok = np.isfinite(final_loss) & np.isfinite(final_gnorm) & theta_ok
    at_end = ~done & final_ok
    at_start = ~at_end & (kept == 0)
    fell = ~done & ~final_ok
    fell_code = np.where(~theta_ok, DIV_PARAMS, np.where(~np.isfinite(final_loss), DIV_LOSS, DIV_GRAD))
    return {
        "kept": kept,
        "theta": np.where(at_end[:, None], theta, np.where(at_start[:, None], starts, row_theta)),
        "loss": np.where(at_end, final_loss, np.where(at_start, np.nan, row_loss)),
        "grad_norm": np.where(at_end, final_gnorm, np.where(at_start, np.nan, row_gnorm)),
        "steps": np.where(at_end, total, np.where(at_start, 0, np.where(fell, (kept - 1) * every, n))),
        "code": np.where(fell, fell_code, code),
        "append_final": at_end & ((kept == 0) | ((kept - 1) * every != total)),
    }


def _result(run: _Run, s: int, index, rows, row_losses, recorder: Recorder, end, interrupted: str,
            elapsed: float) -> FitResult:
    """Start s's FitResult: its kept history rows, and where it ended (`_outcomes`)."""
    model, size, every = run.objective.model, run.objective.model.size, run.every
    kept = int(end["kept"])
    mine = index < kept
    index, rows, loss = index[mine], rows[mine], row_losses[mine]
    if kept > 0 and recorder.end_index[s] == kept - 1 and (len(index) == 0 or index[-1] != kept - 1):
        index = np.append(index, kept - 1)
        rows = np.vstack([rows, recorder.end_rows[s][None, :]])
        loss = np.append(loss, recorder.end_losses[s])
    step = index * every
    params, gnorm, lr = rows[:, :size], np.sqrt(rows[:, size]), rows[:, size + 1].copy()
    theta, final_loss, final_gnorm = end["theta"], float(end["loss"]), float(end["grad_norm"])
    n, code = int(end["steps"]), int(end["code"])
    if kept == 0 and not end["append_final"]:  # not even the start was finite: keep it, to show where it began
        step, params = np.zeros(1, np.int64), theta[None, :]
        loss, gnorm, lr = np.full(1, np.nan), np.full(1, np.nan), np.full(1, np.nan)
    if end["append_final"]:
        step = np.append(step, n)
        params = np.vstack([params, theta[None, :]])
        loss, gnorm, lr = np.append(loss, final_loss), np.append(gnorm, final_gnorm), np.append(lr, np.nan)
    if len(lr):
        lr[-1] = np.nan
    point = None
    if code == CONVERGED:
        point = _point_at(run, theta, final_loss)
        small = f"gradient norm {final_gnorm:.3g} <= tol {run.tol:g} after {n} steps"
        if point in (None, "minimum"):
            status, why = "converged", f"converged: {small}"
        else:
            status, why = "stalled", f"stalled at {points.DESCRIPTION[point]}: {small}; try another start"
    elif code == STOPPED:
        status, why = "stopped", f"stopped by its monitor after {n} steps (a search gave up on it)"
    elif code == RUNNING and interrupted:
        status, why = "interrupted", f"interrupted by {interrupted} after {n} steps"
    elif code == RUNNING:
        status = "max_steps"
        why = (f"reached the epoch cap ({run.epochs} epochs, {run.total} steps)" if run.epochs is not None
               else f"reached the step cap ({run.total} steps)")
    else:
        status = "diverged"
        by = f"at step {n + 1}" if every == 1 else f"by step {n + every}"
        why = (f"diverged {by}: {_DIVERGED_WHAT[code]} became non-finite; "
               f"kept the last finite parameters, after {n} steps")
        if kept == 0:
            why = f"diverged: {_DIVERGED_WHAT[code]} is not finite at the start; choose another start"
    history = History(step=step, params=params, loss=loss, grad_norm=gnorm, lr=lr)
    objective = run.objective
    return FitResult(
        params=model.named(theta),
        loss=final_loss,
        grad_norm=final_gnorm,
        steps=n,
        status=status,
        stopped=why,
        history=history,
        shapes=model.shapes,
        model=model.describe(),
        objective=f"{objective.loss.describe()}, {objective.reduction}",
        optimizer=run.optimizer_of(s).to_dict(),
        settings={**_settings(run, s), "history_thinned_to_every": every * recorder.stride},
        elapsed=elapsed,
        point=point,
    )

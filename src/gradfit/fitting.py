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
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import numpy as np

from . import checkpoint as checkpoints
from . import interrupts, loop, newton, points
from .batches import BatchSource
from .data import Dataset, as_dataset
from .errors import GradfitError, Interrupted
from .history import Recorder, default_max_rows
from .loop import CONVERGED, DIV_GRAD, DIV_LOSS, DIV_PARAMS, RUNNING, default_dtype
from .losses import Loss, make_loss
from .models import Model, linear, make_model, output_shape
from .objective import Objective
from .optimizers import Optimizer, make_optimizer
from .result import FitResult, History, MultiFit

__all__ = ["fit", "default_dtype"]

_DIVERGED_WHAT = {DIV_LOSS: "the loss", DIV_GRAD: "the gradient", DIV_PARAMS: "a parameter"}

#: Without ``checkpoint_every``, a checkpoint is written at most this often (seconds), and at the end.
CHECKPOINT_SECONDS = 30.0

#: Progress callback: (steps run so far, step cap, lowest current loss or NaN).
Progress = Callable[[int, int, float], None]


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
    polish: bool = False,
    checkpoint: str | Path | None = None,
    checkpoint_every: int | None = None,
    resume: str | Path | None = None,
) -> FitResult | MultiFit:
    """Minimise L[φ] = Σ_i ℓ(f[x_i, φ], y_i) by the optimiser's rule.

    Parameters
    ----------
    model, loss, optimizer
        Objects, or names (``"gabor"``, ``"normal"``, ``"adam"``) with default settings.
    data
        A `Dataset`, an ``(x, y)`` pair, a table (a pandas DataFrame, a pyarrow Table, a
        dict of columns: y the last column, x the others) or a CSV/Parquet path
        (`gradfit.data.as_dataset`).
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
        (default 1; once per epoch for mini-batches of data over 2,048 rows, where each
        record costs a full pass over the data).
    max_history
        Keep at most this many history rows per start: past it, every second row is
        dropped, then every fourth, ... (start and end always kept). Default: a budget
        of about half a million numbers per start (`gradfit.history`), so a run of 10⁷
        steps keeps a bounded history.
    polish
        Finish with damped Newton steps (`gradfit.newton`, the autodiff Hessian) from
        where the optimiser stopped, until the Newton decrement √(gᵀH⁻¹g) is at most
        1e-8: a first-order run to the right valley, then quadratic convergence to
        the optimum, as a curve fitter would. The Newton iterates join the history.
        One start only.
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
    objective, optimizer, data = _resolve(model, loss, data, optimizer, reduction)
    model = objective.model
    dtype = dtype or default_dtype()
    if dtype not in ("float64", "float32"):
        raise GradfitError(f"dtype must be 'float64' or 'float32', not {dtype!r}")
    if not _whole(seed) or seed < 0:
        raise GradfitError(f"the seed must be a whole number >= 0, not {seed!r}")
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
    if optimizer.line_search and minibatch:
        raise GradfitError("the line search is for full-batch gradient descent; leave out the batch size")
    per_epoch = -(-n // batch_size) if minibatch else 1
    total = _step_cap(steps, epochs, per_epoch)
    if not isinstance(tol, int | float | np.floating | np.integer) or not tol >= 0:
        raise GradfitError(f"tol must be a number >= 0, not {tol!r}")
    every = history_every if history_every is not None else (per_epoch if minibatch and n > 2048 else 1)
    if not _whole(every) or every < 1:
        raise GradfitError(f"history_every must be a positive whole number, not {history_every}")
    every = min(int(every), max(total, 1))  # a stride past the cap records the start only
    if max_history is not None and (not _whole(max_history) or max_history < 2):
        raise GradfitError(f"max_history must be a whole number >= 2 (the start and the end), not {max_history}")
    if checkpoint_every is not None and (not _whole(checkpoint_every) or checkpoint_every < 1):
        raise GradfitError(f"checkpoint_every must be a positive whole number of steps, not {checkpoint_every}")
    starts, batched = _starts(model, init, seed)
    limit = float(np.finfo(dtype).max)
    if np.any(np.abs(starts) > limit):
        raise GradfitError(f"init holds {float(np.max(np.abs(starts))):g}, beyond the largest {dtype} ({limit:.3g}); "
                           "start from smaller values, or fit in float64")
    if polish and batched:
        raise GradfitError("polish finishes one start with Newton's method; fit the starts, then polish the best")

    size = model.size
    rows = int(max_history) if max_history is not None else default_max_rows(size, len(starts))
    run = _Run(objective, optimizer, data, starts, batched, total, per_epoch, batch_size, every, float(tol),
               int(seed), dtype, epochs, rows)
    with jax.enable_x64(dtype == "float64"):
        result = _run(run, progress, checkpoint if checkpoint is not None else resume, checkpoint_every, resume)
        if polish and result.status not in ("diverged",):
            result = _polish(result, run)
    return result


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
    seed: int
    dtype: str
    epochs: int | None
    max_rows: int

    @property
    def float_t(self):
        return np.float64 if self.dtype == "float64" else np.float32

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
            "tol": self.tol,
            "seed": self.seed,
            "history_every": self.every,
            "max_history": self.max_rows,
            "chunk": chunk,
        }


#: Newton's polish stops once the Newton decrement √(gᵀH⁻¹g) is at most this.
POLISH_TOL = 1e-8


def _polish(result: FitResult, run: _Run) -> FitResult:
    """The result finished by Newton's method, its iterates appended to the history."""
    objective = run.objective
    x, y = loop.on_device(run.data, run.float_t)
    t0 = time.perf_counter()
    out = newton.minimize(objective, result.x.astype(run.float_t), (x, y), tol=POLISH_TOL)
    if out.status == newton.NOT_FINITE:
        return result
    size, h = objective.model.size, out.history
    thetas, losses, gnorms, steps_taken = h[:, :size], h[:, 2 * size], h[:, 2 * size + 1], h[:, 2 * size + 3]
    old = result.history
    lr = old.lr.copy()
    lr[-1] = steps_taken[0]  # the first Newton step leaves the optimiser's last point
    history = History(
        step=np.concatenate([old.step, result.steps + np.arange(1, len(thetas))]),
        params=np.vstack([old.params, thetas[1:]]),
        loss=np.concatenate([old.loss, losses[1:]]),
        grad_norm=np.concatenate([old.grad_norm, gnorms[1:]]),
        lr=np.concatenate([lr, steps_taken[1:]]),
    )
    k = out.iterations
    point = None
    if out.status in (newton.CONVERGED, newton.STALLED):
        how = (f"Newton decrement {out.decrement:.2g} <= {POLISH_TOL:g}" if out.status == newton.CONVERGED
               else "no further decrease at machine precision")
        point = _point_at(run, out.theta, float(out.value))
        status = "converged" if point in (None, "minimum") else "stalled"
        at = "" if status == "converged" else f", at {points.DESCRIPTION[point]}"
        why = f"{result.stopped}; then Newton's method: {how} after {k} more step(s){at}"
    else:
        status, why = "max_steps", f"{result.stopped}; then Newton's method stopped at its cap of {k} steps"
    return dataclasses.replace(
        result,
        params=objective.model.named(out.theta),
        loss=float(out.value),
        grad_norm=float(np.sqrt(out.grad @ out.grad)),
        steps=result.steps + k,
        status=status,
        point=point,
        stopped=why,
        history=history,
        settings={**result.settings, "polish": "newton"},
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
    data = as_dataset(data)
    if isinstance(model, str):
        model = linear(data.n_inputs) if model == "linear" else make_model(model)
    if isinstance(loss, str):
        loss = make_loss(loss)
    if isinstance(optimizer, str):
        optimizer = make_optimizer(optimizer)
    if not isinstance(model, Model):
        raise GradfitError(f"model must be a gradfit Model or a model name, not {type(model).__name__}")
    if not isinstance(loss, Loss):
        raise GradfitError(f"loss must be a gradfit loss (gf.normal(), gf.poisson(), ...) or a loss name, "
                           f"not {type(loss).__name__}")
    if not isinstance(optimizer, Optimizer):
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


def _run(run: _Run, progress, checkpoint, checkpoint_every, resume) -> FitResult | MultiFit:
    t0 = time.perf_counter()
    objective, starts, total, every = run.objective, run.starts, run.total, run.every
    minibatch, batched, size = run.batch_size is not None, run.batched, objective.model.size
    length = loop.chunk_steps(total, every, minibatch, run.per_epoch)
    plan = loop.Plan(objective, run.optimizer, minibatch, batched, length // every, every, run.data.x.size,
                     len(starts) if batched else 0)
    init, run_chunk = loop.runner(plan)
    x, y = loop.on_device(run.data, run.float_t)
    tol = run.float_t(run.tol)
    rows_cap = (total - 1) // every + 1  # records the fit makes: after 0, every, 2·every, ... < total steps

    # The loop state stays on the device between chunks. Its leaves are strongly typed,
    # so a state restored from a checkpoint's arrays is the very input of the
    # uninterrupted run's next chunk, and the chunk computes the same bits from it.
    carry = init(starts.astype(run.float_t) if batched else starts[0].astype(run.float_t))
    fingerprint = run.fingerprint(length) if checkpoint is not None else None
    done_steps, elapsed_before, replay = 0, 0.0, False
    recorder = Recorder(run.max_rows, len(starts), size + 3)
    if resume is not None:
        saved = checkpoints.load(resume)
        checkpoints.check(saved, fingerprint, resume)
        carry = _restore(carry, saved.leaves, resume)
        recorder = Recorder.from_state(saved.history)
        done_steps, elapsed_before = saved.steps_done, saved.elapsed
        # A finished fit resumed runs one chunk of no steps, for the final loss and gradient;
        # its rows are not records (they must not count against the history budget).
        replay = bool(saved.header.get("finished"))
    batches = BatchSource(len(run.data), run.batch_size, run.seed) if minibatch else None

    def chunk_batches(first_step):
        if batches is None:
            return None
        shape = (plan.groups, every, run.batch_size)
        if first_step >= total:  # a chunk that runs no step (resuming a finished fit) still takes batches
            return np.zeros(shape, np.int32), np.zeros(shape, bool)
        bidx, bmask = batches.steps(first_step, length)
        return bidx.reshape(shape), bmask.reshape(shape)

    def save(finished: bool) -> None:
        leaves = jax.device_get(jax.tree_util.tree_leaves(carry))
        checkpoints.save(checkpoint, fingerprint, done_steps, elapsed_before + time.perf_counter() - t0,
                         leaves, recorder.state(), finished)

    if checkpoint is not None and resume is None:
        checkpoints.check_target(checkpoint)  # never write over a fit that could still be resumed
        save(False)  # from the first moment on, a killed fit can be resumed
    last_saved_at, last_saved_step = time.monotonic(), done_steps
    with interrupts.deferred() as pending:
        batch = chunk_batches(done_steps)
        while True:
            out = run_chunk(carry, done_steps, total, batch, x, y, tol)
            row0 = done_steps // every
            done_steps += length
            batch = chunk_batches(done_steps)  # JAX runs the chunk asynchronously: draw the next batches meanwhile
            carry = out[0]
            theta, done, code, n, chunk_rows, chunk_losses, final = jax.device_get(
                (carry[0], carry[2], carry[3], carry[4], *out[1:]))
            if not batched:  # one start: the same code, with a starts axis of length 1
                chunk_rows, chunk_losses = chunk_rows[:, None], chunk_losses[:, None]
            done, n = np.atleast_1d(done), np.atleast_1d(n)
            run_rows = min(done_steps // every, rows_cap)
            recorder.add(row0, chunk_rows, chunk_losses, limit=row0 if replay else rows_cap)
            recorder.track_ends(row0, chunk_rows, chunk_losses, np.where(done, n // every, run_rows - 1))
            if progress is not None:
                finite = np.isfinite(chunk_losses)
                progress(min(done_steps, total), total, float(np.min(chunk_losses[finite])) if finite.any()
                         else float("nan"))
            finished = done_steps >= total or bool(np.all(done))
            if checkpoint is not None and (finished or pending or (
                    done_steps - last_saved_step >= checkpoint_every if checkpoint_every
                    else time.monotonic() - last_saved_at >= CHECKPOINT_SECONDS)):
                save(finished)
                last_saved_at, last_saved_step = time.monotonic(), done_steps
            if finished or pending:
                break
    interrupted = pending.name if pending and not finished else ""
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


def _restore(carry, leaves: list[np.ndarray], path) -> Any:
    """The loop state with a checkpoint's leaves, checked leaf by leaf against this fit's own."""
    mine, tree = jax.tree_util.tree_flatten(carry)
    if len(mine) != len(leaves) or any(np.shape(a) != np.shape(b) or a.dtype != b.dtype
                                       for a, b in zip(mine, leaves)):
        raise GradfitError(f"checkpoint {path} holds an optimiser state of another shape; "
                           "resume with the same optimiser and starts, or start afresh without resuming")
    return jax.device_put(jax.tree_util.tree_unflatten(tree, leaves))


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
        optimizer=run.optimizer.to_dict(),
        settings={
            "seed": run.seed, "batch_size": run.batch_size, "epochs": run.epochs, "steps": run.total,
            "tol": run.tol, "dtype": run.dtype, "reduction": objective.reduction, "history_every": every,
            "max_history": run.max_rows, "history_thinned_to_every": every * recorder.stride,
            "n_examples": len(run.data), "data": run.data.name,
        },
        elapsed=elapsed,
        point=point,
    )

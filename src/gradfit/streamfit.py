"""Fits over streamed data: SGD and its relatives on data larger than memory (`gradfit.stream`).

`gf.fit(model, loss, gf.stream(...), optimizer, batch_size=..., epochs=...)` comes here. The
stream's background thread reads, shuffles and batches the rows (`gradfit.stream`), a
block of K steps at a time, while the compiled steps run; a block is K mini-batches of
the rows themselves, so the device never holds more than a few blocks of the data.

A step is the in-memory fit's step: the rule's update from the mini-batch gradient (at
the look-ahead point for Nesterov's look-ahead variants). A step whose gradient or new
parameters are not finite is not taken: the fit stops there (``diverged``) with the
last finite parameters. The history records φ, the full-data loss and gradient norm,
and the rate, every ``history_every`` steps (by default every 10 epochs), at the start
and at the end. Each record is a pass over the data in file order (`Stream.scan`),
about the cost of an epoch; a record's gradient norm at most ``tol`` stops the fit
(``converged``). When the stream's buffer holds all the rows the shuffle is exact, and
the fit takes the very steps `gf.fit` takes on the same rows in memory.

A checkpoint holds θ, the optimiser's state, the steps done and the history; resuming
regenerates the epoch it stopped in from (seed, epoch) and skips to the step, so the
resumed fit is bit-identical to the uninterrupted one. Ctrl-C and SIGTERM stop it
between blocks, as they do the in-memory fit; an error in the data found while
streaming (NaN in a late row group) stops it too, keeping the last good state, and
the `GradfitError` carries it as ``.result``.
"""

from __future__ import annotations

import time
from functools import lru_cache
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from . import checkpoint as checkpoints
from . import interrupts
from .data import Dataset
from .errors import GradfitError, Interrupted
from .loop import default_dtype
from .objective import Objective
from .optimizers import Optimizer
from .result import FitResult, History

#: The stream's blocks hold about this many bytes of mini-batch data (x and y): K steps a block.
BLOCK_BYTES = 16 << 20
#: Rows a full-data pass takes at a time.
SCAN_ROWS = 1 << 16
#: Stream fits record their history once every this many epochs by default.
RECORD_EPOCHS = 10
#: Without ``checkpoint_every``, a checkpoint is written at most this often (seconds), and at the end.
CHECKPOINT_SECONDS = 30.0


@lru_cache(maxsize=32)
def _steps_fn(objective: Objective, optimizer: Optimizer):
    """The compiled run of ``count`` steps from row ``offset`` of a block, given the numbers ``h``.

    Carry: (θ, optimiser state, stopped, steps taken, rate of the first step).
    """
    grad = jax.grad(objective.masked_value)

    def run(carry, xb, yb, mb, offset, count, h):
        rule = optimizer.rule(h)

        def body(c):
            k, theta, state, bad, taken, rate0 = c
            x, y, m = xb[offset + k], yb[offset + k], mb[offset + k]
            point = optimizer.gradient_point(theta, state, h)
            g = grad(point, x, y, m)
            updates, new_state = rule.update(g, state, theta,
                                             value_fn=lambda p: objective.masked_value(p, x, y, m))
            new_theta = theta + updates
            ok = jnp.all(jnp.isfinite(new_theta)) & jnp.all(jnp.isfinite(g))
            theta = jnp.where(ok, new_theta, theta)
            state = jax.tree_util.tree_map(lambda a, b: jnp.where(ok, a, b), new_state, state)
            rate0 = jnp.where(k == 0, optimizer.last_lr(new_state).astype(theta.dtype), rate0)
            return k + 1, theta, state, ~ok, taken + ok.astype(taken.dtype), rate0

        def more(c):
            return (c[0] < count) & ~c[3]

        theta, state, bad, taken, rate0 = carry
        _, theta, state, bad, taken, rate0 = lax.while_loop(
            more, body, (jnp.zeros((), jnp.int32), theta, state, bad, taken, rate0))
        return theta, state, bad, taken, rate0

    return jax.jit(run)


@lru_cache(maxsize=32)
def _pass_fn(objective: Objective):
    """The compiled sum of L and its gradient over one block of a full-data pass (reduction sum)."""
    summed = Objective(objective.model, objective.loss, "sum")
    return jax.jit(jax.value_and_grad(summed.masked_value))


def _full_pass(stream, objective: Objective, theta, float_t) -> tuple[float, float]:
    """The full-data loss and gradient norm at θ: one pass over the stream in file order."""
    rows = min(SCAN_ROWS, stream.n_rows)
    value_grad = _pass_fn(objective)
    total, g = jnp.zeros((), float_t), jnp.zeros_like(theta)
    with stream.scan(rows, float_t) as blocks:
        for x, y, m in blocks:
            v, dg = value_grad(theta, x, y, m)
            total, g = total + v, g + dg
    if objective.reduction == "mean":
        total, g = total / stream.n_rows, g / stream.n_rows
    return float(total), float(jnp.sqrt(jnp.sum(g * g)))


def fit(model, loss, stream, optimizer, *, init, steps, epochs, batch_size, tol, seed, reduction, dtype,
        history_every, progress, checkpoint, checkpoint_every, resume, **others) -> FitResult:
    """`gradfit.fit` over a `Stream` (see the module's docstring); the checks come first."""
    from .fitting import _resolve, _starts, _step_cap, _whole

    given = sorted(k for k, v in others.items() if v is not None and v is not False)
    if given:
        raise GradfitError(f"{', '.join(given)} cannot be used with streamed data: a streamed fit takes the model, "
                           "loss, optimiser, caps, batch size, tol, seed, reduction, dtype, history_every and "
                           "checkpoints; load the data into memory for the rest")
    if batch_size is None:
        raise GradfitError("a streamed fit needs a batch size: give batch_size (--batch-size), as each step "
                           "reads a mini-batch of the stream")
    if not _whole(batch_size) or batch_size < 1:
        raise GradfitError(f"the batch size must be a positive whole number, not {batch_size}")
    batch_size = int(batch_size)
    n = stream.n_rows
    if batch_size > n:
        raise GradfitError(f"the batch size {batch_size} is larger than the data ({n} rows); use at most {n}")
    dtype = dtype or default_dtype()
    if dtype not in ("float64", "float32"):
        raise GradfitError(f"dtype must be 'float64' or 'float32', not {dtype!r}")
    if not isinstance(seed, int | np.integer) or isinstance(seed, bool) or seed < 0:
        raise GradfitError(f"the seed must be a whole number >= 0, not {seed!r}")
    if not isinstance(tol, int | float | np.floating | np.integer) or not tol >= 0:
        raise GradfitError(f"tol must be a number >= 0, not {tol!r}")
    per_epoch = -(-n // batch_size)
    total = _step_cap(steps, epochs, per_epoch)
    every = history_every if history_every is not None else RECORD_EPOCHS * per_epoch
    if not _whole(every) or every < 1:
        raise GradfitError(f"history_every must be a positive whole number, not {history_every}")
    every = min(int(every), max(total, 1))
    if checkpoint_every is not None and (not _whole(checkpoint_every) or checkpoint_every < 1):
        raise GradfitError(f"checkpoint_every must be a positive whole number of steps, not {checkpoint_every}")
    with stream.scan(min(2, n), np.float64) as first:
        x, y, _ = next(first)
    objective, optimizer, _ = _resolve(model, loss, Dataset(x, y, stream.x_names, stream.y_name), optimizer,
                                       reduction)
    if not isinstance(optimizer, Optimizer):
        raise GradfitError(f"{optimizer.method} is a second-order method over all the data at once; a streamed "
                           "fit takes a first-order optimiser (sgd, momentum, adam, ...)")
    if optimizer.line_search:
        raise GradfitError("the line search is for full-batch gradient descent, not for a stream's mini-batches")
    starts, many = _starts(objective.model, init, int(seed))
    if many:
        raise GradfitError("a streamed fit runs from one start; give init as one dict or one vector")
    run = _StreamRun(stream, objective, optimizer, np.asarray(starts[0], float), total, per_epoch, batch_size,
                     every, float(tol), dtype, epochs, int(seed))
    with jax.enable_x64(dtype == "float64"):
        return run.go(progress, checkpoint if checkpoint is not None else resume, checkpoint_every, resume)


class _StreamRun:
    """One streamed fit's settings and its host loop (`go`)."""

    def __init__(self, stream, objective, optimizer, start, total, per_epoch, batch_size, every, tol, dtype, epochs,
                 seed):
        self.stream, self.objective, self.optimizer = stream, objective, optimizer
        self.start, self.total, self.per_epoch, self.batch_size = start, total, per_epoch, batch_size
        self.every, self.tol, self.dtype, self.epochs, self.seed = every, tol, dtype, epochs, seed
        self.float_t = np.dtype(dtype).type
        width = batch_size * (stream.n_inputs + 1) * np.dtype(dtype).itemsize
        self.block_steps = int(max(1, min(4096, total or 1, BLOCK_BYTES // width)))

    def fingerprint(self) -> dict[str, Any]:
        """What a checkpoint of this fit must match to be resumed by it."""
        return {
            "stream": self.stream.fingerprint(), "starts": checkpoints.digest(self.start),
            "model": self.objective.model.describe(), "loss": self.objective.loss.describe(),
            "reduction": self.objective.reduction, "optimizer": self.optimizer.to_dict(), "dtype": self.dtype,
            "steps": self.total, "epochs": self.epochs, "batch_size": self.batch_size, "tol": self.tol,
            "seed": self.seed, "history_every": self.every,
        }

    def go(self, progress, checkpoint, checkpoint_every, resume) -> FitResult:
        t0 = time.perf_counter()
        h = {k: np.asarray(v, self.float_t) for k, v in self.optimizer.values.items()}
        theta = jnp.asarray(self.start, self.float_t)
        carry = (theta, self.optimizer.rule(h).init(theta), jnp.asarray(False), jnp.zeros((), jnp.int32),
                 jnp.asarray(np.nan, self.float_t))
        history: dict[str, list] = {"step": [], "params": [], "loss": [], "grad_norm": [], "lr": []}
        done, elapsed_before, status = 0, 0.0, "max_steps"
        fingerprint = self.fingerprint() if checkpoint is not None else None
        if resume is not None:
            saved = checkpoints.load(resume)
            checkpoints.check(saved, fingerprint, resume)
            carry = checkpoints.restore(carry, saved.leaves, resume)
            history = {k: list(v) for k, v in saved.history.items()}
            done, elapsed_before = saved.steps_done, saved.elapsed
            if saved.header.get("finished"):
                status = self.status_of(done, history)
        elif checkpoint is not None:
            checkpoints.check_target(checkpoint)

        def save(finished: bool) -> None:
            leaves = jax.device_get(jax.tree_util.tree_leaves(carry))
            arrays = {k: np.asarray(v) for k, v in history.items()}
            checkpoints.save(checkpoint, fingerprint, done, elapsed_before + time.perf_counter() - t0, leaves,
                             arrays, finished)

        def record(step: int) -> float:
            loss, gnorm = _full_pass(self.stream, self.objective, carry[0], self.float_t)
            history["step"].append(step)
            history["params"].append(np.asarray(carry[0], float))
            history["loss"].append(loss)
            history["grad_norm"].append(gnorm)
            history["lr"].append(np.nan)
            return gnorm

        steps_fn = _steps_fn(self.objective, self.optimizer.skeleton)
        K = self.block_steps
        last_saved_at, last_saved_step = time.monotonic(), done
        failure: GradfitError | None = None
        interrupted = ""
        finished = status in ("converged", "diverged") or done >= self.total
        if checkpoint is not None and resume is None:
            save(False)
        with interrupts.deferred() as pending:
            blocks = None if finished else self.stream.blocks(self.batch_size, K, self.seed, done, self.float_t)
            try:
                block, offset = None, 0
                while not finished:
                    if done % self.every == 0 and not (history["step"] and history["step"][-1] == done):
                        gnorm = record(done)
                        if self.tol > 0 and gnorm <= self.tol:
                            status, finished = "converged", True
                            break
                    if block is None:
                        block, offset = jax.device_put(next(blocks)), 0
                    count = min(K - offset, self.every - done % self.every, self.total - done)
                    before = int(carry[3])
                    carry = steps_fn(carry, *block, offset, count, h)
                    taken = int(carry[3]) - before
                    if history["step"] and history["step"][-1] == done and np.isnan(history["lr"][-1]):
                        history["lr"][-1] = float(carry[4])
                    done += taken
                    offset += count
                    if offset >= K:
                        block = None
                    if bool(carry[2]):
                        status, finished = "diverged", True
                    elif done >= self.total:
                        finished = True
                    if progress is not None:
                        progress(done, self.total, history["loss"][-1] if history["loss"] else float("nan"))
                    if checkpoint is not None and not finished and (pending or (
                            done - last_saved_step >= checkpoint_every if checkpoint_every
                            else time.monotonic() - last_saved_at >= CHECKPOINT_SECONDS)):
                        save(False)
                        last_saved_at, last_saved_step = time.monotonic(), done
                    if pending and not finished:
                        interrupted = pending.name
                        break
            except GradfitError as exc:  # the data went bad while streaming: keep what was done
                failure = exc
            finally:
                if blocks is not None:
                    blocks.close()
            if failure is None and not interrupted and not (history["step"] and history["step"][-1] == done):
                record(done)  # the end point
            if checkpoint is not None:
                save(finished and failure is None and not interrupted)
        elapsed = elapsed_before + time.perf_counter() - t0
        result = self.result(carry, history, done, status, interrupted, elapsed, failure)
        if failure is not None:
            failure.result = result
            failure.checkpoint = checkpoint
            raise failure
        if pending:
            raise Interrupted(result, checkpoint, pending.name, steps=done)
        return result

    def status_of(self, done: int, history: dict[str, list]) -> str:
        """How a finished fit ended, from its steps and its last record (a checkpoint keeps no status)."""
        if done >= self.total:
            return "max_steps"
        if self.tol > 0 and history["grad_norm"] and history["grad_norm"][-1] <= self.tol:
            return "converged"
        return "diverged"

    def result(self, carry, history, done, status, interrupted, elapsed, failure) -> FitResult:
        model = self.objective.model
        step = np.asarray(history["step"], np.int64)
        params = np.asarray(history["params"], float).reshape(len(step), model.size)
        loss, gnorm = np.asarray(history["loss"], float), np.asarray(history["grad_norm"], float)
        lr = np.asarray(history["lr"], float)
        if len(lr):
            lr[-1] = np.nan
        theta = np.asarray(carry[0], float)
        ended_at_record = len(step) and step[-1] == done
        final_loss = float(loss[-1]) if ended_at_record else float("nan")
        final_gnorm = float(gnorm[-1]) if ended_at_record else float("nan")
        if interrupted:
            status, why = "interrupted", f"interrupted by {interrupted} after {done} steps"
        elif failure is not None:
            status, why = "stopped", f"stopped after {done} steps: {failure}"
        elif status == "converged":
            why = f"converged: gradient norm {final_gnorm:.3g} <= tol {self.tol:g} after {done} steps"
        elif status == "diverged":
            why = (f"diverged at step {done + 1}: the gradient or a parameter became non-finite; kept the last "
                   f"finite parameters, after {done} steps")
        else:
            why = (f"reached the epoch cap ({self.epochs} epochs, {self.total} steps)" if self.epochs is not None
                   else f"reached the step cap ({self.total} steps)")
        stream = self.stream
        return FitResult(
            params=model.named(theta), loss=final_loss, grad_norm=final_gnorm, steps=int(done), status=status,
            stopped=why, history=History(step=step, params=params, loss=loss, grad_norm=gnorm, lr=lr),
            shapes=model.shapes, model=model.describe(),
            objective=f"{self.objective.loss.describe()}, {self.objective.reduction}",
            optimizer=self.optimizer.to_dict(),
            settings={"seed": self.seed, "batch_size": self.batch_size, "epochs": self.epochs, "steps": self.total,
                      "tol": self.tol, "dtype": self.dtype, "reduction": self.objective.reduction,
                      "history_every": self.every, "n_examples": stream.n_rows, "data": stream.name,
                      "stream": {"files": len(stream.files), "buffer_rows": stream.buffer_rows,
                                 "exact_shuffle": stream.exact, "block_steps": self.block_steps}},
            elapsed=elapsed,
        )

"""The fit loop: compiled steps and epochs, history, stopping, many starts at once.

The loop runs in chunks of a fixed number of steps, each one jitted call. Inside a
chunk, a while loop runs blocks of 16 *groups*; a group is one recording step (which
writes a history row [φ, |g|², α]) and ``history_every - 1`` plain steps. After each
block, the block's rows are checked at once: a non-finite gradient or parameter
stops a start (diverged, keeping the row before), a gradient norm at most ``tol``
stops it (converged, at that row). After the while loop the full-data losses of all
recorded rows are computed in one batched pass, and a non-finite loss stops the fit
at the row before it. Checking a block at a time, and computing losses after the
loop, keep each step to the model's gradient, the update and one row write.

Every chunk of a plan has one shape (a short last mini-batch is padded with masked
rows, and the step cap is a runtime argument), so a plan compiles once. Between
chunks the host draws the next epochs' permutations, reports progress, and stops
once every start has stopped. Many starts run together under ``vmap``.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from . import newton
from .data import Dataset, epoch_batches
from .errors import GradfitError
from .losses import Loss, make_loss
from .models import Model, linear, make_model
from .objective import Objective
from .optimizers import Optimizer, make_optimizer
from .result import FitResult, History, MultiFit

RUNNING, CONVERGED, DIV_LOSS, DIV_GRAD, DIV_PARAMS = 0, 1, 2, 3, 4
_DIVERGED_WHAT = {DIV_LOSS: "the loss", DIV_GRAD: "the gradient", DIV_PARAMS: "a parameter"}

#: Progress callback: (steps run so far, step cap, lowest current loss or NaN).
Progress = Callable[[int, int, float], None]


@dataclass(frozen=True)
class _Plan:
    """The static shape of a compiled chunk: what the trace depends on."""

    objective: Objective
    optimizer: Optimizer
    minibatch: bool
    batched: bool
    groups: int
    every: int
    data_size: int = 1  # rows × columns of x, to size the loss pass after the loop
    starts: int = 0

    @property
    def free_metrics(self) -> bool:
        """Whether each step's own gradient is the full-data gradient at θ (so a record
        needs no extra pass over the data for it)."""
        return not self.minibatch and not self.optimizer.looks_ahead


def default_dtype() -> str:
    """float64 on the CPU (as scipy and lmfit), float32 on accelerators."""
    return "float64" if jax.default_backend() == "cpu" else "float32"


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
    progress: Progress | None = None,
    polish: bool = False,
) -> FitResult | MultiFit:
    """Minimise L[φ] = Σ_i ℓ(f[x_i, φ], y_i) by the optimiser's rule.

    Parameters
    ----------
    model, loss, optimizer
        Objects, or names (``"gabor"``, ``"normal"``, ``"adam"``) with default settings.
    data
        A `Dataset` or an ``(x, y)`` pair.
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
        Stop once the full-data gradient norm is at most tol; 0 runs every step.
    history_every
        Record φ, the full-data loss and gradient norm every this many steps
        (default 1; once per epoch for mini-batches of data over 2,048 rows, where each
        record costs a full pass over the data).
    polish
        Finish with damped Newton steps (`gradfit.newton`, the autodiff Hessian) from
        where the optimiser stopped, until the Newton decrement √(gᵀH⁻¹g) is at most
        1e-8: a first-order run to the right valley, then quadratic convergence to
        the optimum, as a curve fitter would. The Newton iterates join the history.
        One start only.
    dtype
        ``"float64"`` (default on CPU) or ``"float32"``. The fit runs under JAX's x64
        setting for its own duration only; the caller's setting is left as it was.
    """
    objective, optimizer, data = _resolve(model, loss, data, optimizer, reduction)
    model = objective.model
    dtype = dtype or default_dtype()
    if dtype not in ("float64", "float32"):
        raise GradfitError(f"dtype must be 'float64' or 'float32', not {dtype!r}")
    n = len(data)
    minibatch = batch_size is not None
    if minibatch:
        if int(batch_size) != batch_size or batch_size < 1:
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
    if not tol >= 0:
        raise GradfitError(f"tol must be >= 0, not {tol}")
    every = history_every if history_every is not None else (per_epoch if minibatch and n > 2048 else 1)
    if int(every) != every or every < 1:
        raise GradfitError(f"history_every must be a positive whole number, not {history_every}")
    every = min(int(every), max(total, 1))  # a stride past the cap records the start only
    starts, batched = _starts(model, init, seed)

    if polish and batched:
        raise GradfitError("polish finishes one start with Newton's method; fit the starts, then polish the best")
    with jax.enable_x64(dtype == "float64"):
        result = _run(objective, optimizer, data, starts, batched, total, per_epoch, batch_size,
                      every, tol, seed, dtype, epochs, progress)
        if polish and result.status != "diverged":
            result = _polish(result, objective, data, dtype)
    return result


#: Newton's polish stops once the Newton decrement √(gᵀH⁻¹g) is at most this.
POLISH_TOL = 1e-8


def _polish(result: FitResult, objective: Objective, data: Dataset, dtype: str) -> FitResult:
    """The result finished by Newton's method, its iterates appended to the history."""
    float_t = np.float64 if dtype == "float64" else np.float32
    x, y = _on_device(data, float_t)
    t0 = time.perf_counter()
    out = newton.minimize(objective, result.x.astype(float_t), (x, y), tol=POLISH_TOL)
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
    if out.status in (newton.CONVERGED, newton.STALLED):
        status = "converged"
        how = (f"Newton decrement {out.decrement:.2g} <= {POLISH_TOL:g}" if out.status == newton.CONVERGED
               else "no further decrease at machine precision")
        why = f"{result.stopped}; then Newton's method: {how} after {k} more step(s)"
    else:
        status, why = "max_steps", f"{result.stopped}; then Newton's method stopped at its cap of {k} steps"
    return dataclasses.replace(
        result,
        params=objective.model.named(out.theta),
        loss=float(out.value),
        grad_norm=float(np.sqrt(out.grad @ out.grad)),
        steps=result.steps + k,
        status=status,
        stopped=why,
        history=history,
        settings={**result.settings, "polish": "newton"},
        elapsed=result.elapsed + time.perf_counter() - t0,
    )


def _resolve(model, loss, data, optimizer, reduction):
    if not isinstance(data, Dataset):
        try:
            x, y = data
        except (TypeError, ValueError):
            raise GradfitError("data must be a Dataset or an (x, y) pair") from None
        data = Dataset(x, y)
    if isinstance(model, str):
        model = linear(data.n_inputs) if model == "linear" else make_model(model)
    if isinstance(loss, str):
        loss = make_loss(loss)
    if isinstance(optimizer, str):
        optimizer = make_optimizer(optimizer)
    if not isinstance(model, Model):
        raise GradfitError(f"model must be a gradfit Model or a model name, not {type(model).__name__}")
    objective = Objective(model, loss, reduction)
    probe = data.x[: min(len(data), 2)]
    try:
        out = _output_shape(model, probe.shape)
    except GradfitError:
        raise
    except Exception as err:  # the model cannot take these inputs: say which, not JAX's trace
        cols = data.n_inputs
        raise GradfitError(
            f"model {model.describe()} cannot take inputs with {cols} column(s) "
            f"(x of shape {data.x.shape}): {type(err).__name__}: {str(err).splitlines()[0]}"
        ) from None
    if len(out.shape) == 0 or out.shape[0] != probe.shape[0]:
        got = "a scalar" if len(out.shape) == 0 else f"{out.shape[0]} outputs"
        raise GradfitError(
            f"model {model.name!r} gives {got} for {probe.shape[0]} examples; "
            "it must return one output per example, shape (N,) or (N, K)"
        )
    loss.check_outputs(out.shape, model.name)
    loss.check_targets(data.y, out.shape[1] if len(out.shape) == 2 else 1)
    return objective, optimizer, data


@lru_cache(maxsize=256)
def _output_shape(model: Model, x_shape: tuple[int, ...]) -> jax.ShapeDtypeStruct:
    """The model's output shape for inputs of this shape, traced once per model and shape."""
    probe = jax.ShapeDtypeStruct(x_shape, jnp.float32)
    return jax.eval_shape(lambda x: model(x, model.unravel(jnp.zeros(model.size))), probe)


def _step_cap(steps, epochs, per_epoch) -> int:
    if steps is not None and epochs is not None:
        raise GradfitError("give either steps or epochs as the cap, not both")
    if epochs is not None:
        if int(epochs) != epochs or epochs < 1:
            raise GradfitError(f"epochs must be a positive whole number, not {epochs}")
        return int(epochs) * per_epoch
    steps = 1000 if steps is None else steps
    if int(steps) != steps or steps < 0:
        raise GradfitError(f"steps must be a whole number >= 0, not {steps}")
    return int(steps)


def _starts(model: Model, init, seed: int) -> tuple[np.ndarray, bool]:
    """Starting points as an (S, P) array, and whether several were asked for."""
    if init is None:
        return model.default_init(seed)[None, :], False
    if isinstance(init, Mapping):
        return model.vector(init)[None, :], False
    if isinstance(init, Sequence) and init and isinstance(init[0], Mapping):
        return np.stack([model.vector(p) for p in init]), True
    arr = np.asarray(init, dtype=float)
    if arr.ndim == 1 and arr.shape[0] == model.size:
        return arr[None, :], False
    if arr.ndim == 2 and arr.shape[1] == model.size and arr.shape[0] >= 1:
        return arr, True
    raise GradfitError(
        f"init has shape {arr.shape}; model {model.name!r} has {model.size} parameter value(s) "
        f"({', '.join(model.flat_names[:8])}{' ...' if model.size > 8 else ''}): give {model.size} "
        "values in that order, or an array of shape (starts, "
        f"{model.size})"
    )


# -- the compiled chunk ----------------------------------------------------------------


def _step_fns(plan: _Plan):
    """The two kinds of step for one start, as pure functions of (θ, state).

    ``record(θ, state, batch)`` also returns a history row [φ..., |g|², α, L]: the squared
    full-data gradient norm at θ, the rate of the update it takes, and the full-data
    loss where the record already makes a pass over the data for its gradient
    (mini-batches, look-ahead). Where the update's own gradient is the full-data one,
    L is left out (NaN) and the recorded rows' losses are computed after the loop, all
    at once, so a step does not pay for a second pass that its update does not need.
    ``plain(θ, state, batch)`` only updates. Neither checks anything: the chunk checks
    a block of rows at once, which costs a few operations a block instead of a dozen a
    step (on small problems each compiled operation costs as much as the model).
    """
    objective, optimizer = plan.objective, plan.optimizer
    full_vg = jax.value_and_grad(objective.value)
    full_grad = jax.grad(objective.value)
    batch_vg = jax.value_and_grad(objective.batch_value)
    def direction(theta, state, batch, x, y):
        """The gradient the rule uses, and the objective a line search would probe."""
        point = optimizer.gradient_point(theta, state)
        if plan.minibatch:
            idx, mask = batch
            return batch_vg(point, x, y, idx, mask)[1], lambda p: objective.batch_value(p, x, y, idx, mask)
        return full_vg(point, x, y)[1], lambda p: objective.value(p, x, y)

    def update(theta, state, grad, value_fn):
        updates, state = optimizer.transform.update(grad, state, theta, value_fn=value_fn)
        return theta + updates, state

    def plain(theta, state, batch, x, y):
        grad, value_fn = direction(theta, state, batch, x, y)
        return update(theta, state, grad, value_fn)

    def record(theta, state, batch, x, y):
        nan = jnp.full((), jnp.nan, theta.dtype)
        if plan.free_metrics:  # the update's own gradient is the full-data one at θ
            grad = full_grad(theta, x, y)
            grad_at_theta, value_fn, loss = grad, (lambda p: objective.value(p, x, y)), nan
        else:  # a pass over the data for the record: take the loss in the same pass
            loss, grad_at_theta = full_vg(theta, x, y)
            grad, value_fn = direction(theta, state, batch, x, y)
        new_theta, state = update(theta, state, grad, value_fn)
        rate = optimizer.last_lr(state).astype(theta.dtype)
        row = jnp.concatenate([theta, jnp.stack([jnp.sum(grad_at_theta * grad_at_theta), rate, loss])])
        return new_theta, state, row

    return record, plain


#: How many recorded steps run between two checks for a stop, and how many of them
#: the compiled loop unrolls.
BLOCK = 16
UNROLL = 4


def _first_stop(rows, in_range, tol, size):
    """The first row of a block (K, [S,] P+3) at which a fit stops, if any.

    Returns (any stop, its row index, its code): a row stops the fit when its gradient
    or parameters are not finite (diverged; the fit keeps the row before) or when
    tol > 0 and its gradient norm is at most tol (converged, at that row).
    """
    theta, g2 = rows[..., :size], rows[..., size]
    theta_ok = jnp.all(jnp.isfinite(theta), axis=-1)
    finite = theta_ok & jnp.isfinite(g2)
    conv = (tol > 0) & (g2 <= tol * tol)
    in_range = jnp.reshape(in_range, in_range.shape + (1,) * (g2.ndim - 1))
    event = in_range & (~finite | conv)
    first = jnp.argmax(event, axis=0)
    pick = lambda a: jnp.take_along_axis(a, first[None], axis=0)[0]  # noqa: E731
    code = jnp.where(pick(finite), CONVERGED, jnp.where(~pick(theta_ok), DIV_PARAMS, DIV_GRAD))
    return jnp.any(event, axis=0), first, code


def _first_bad_loss(losses, limit):
    """The first row before ``limit`` whose loss is not finite: (any, index)."""
    index = jnp.arange(losses.shape[0]).reshape((-1,) + (1,) * (losses.ndim - 1))
    event = ~jnp.isfinite(losses) & (index < limit)
    return jnp.any(event, axis=0), jnp.argmax(event, axis=0)


@lru_cache(maxsize=64)
def _runner(plan: _Plan):
    """The compiled pieces of one plan: the start state, and a chunk of steps."""
    record, plain = _step_fns(plan)
    if plan.batched:
        record = jax.vmap(record, in_axes=(0, 0, None, None, None))
        plain = jax.vmap(plain, in_axes=(0, 0, None, None, None))
    optimizer, every = plan.optimizer, plan.every
    blocks = -(-plan.groups // BLOCK)

    def chunk(carry, start, total, batches, x, y, tol):
        # carry: θ, optimiser state, stopped?, stop code, stop step (per start)
        size = carry[0].shape[-1]
        rows = jnp.full((blocks * BLOCK, *carry[0].shape[:-1], size + 3), jnp.nan, carry[0].dtype)
        n_groups = jnp.minimum(plan.groups, (total - start + every - 1) // every)

        def batch_at(g, e):
            return None if batches is None else (batches[0][g, e], batches[1][g, e])

        def group(g, state):
            theta, opt_state, rows = state
            s0 = start + g * every
            theta, opt_state, row = record(theta, opt_state, batch_at(g, 0), x, y)
            rows = lax.dynamic_update_index_in_dim(rows, row, g, 0)
            if every > 1:
                def step(e, c):
                    return plain(c[0], c[1], batch_at(g, e), x, y)

                theta, opt_state = lax.fori_loop(1, jnp.minimum(every, total - s0), step, (theta, opt_state))
            return theta, opt_state, rows

        def block(state):
            b, (theta, opt_state, done, code, n), rows = state
            g0 = b * BLOCK
            # A whole block runs as a static loop, unrolled, which XLA runs faster than a
            # loop of unknown length; only the last, partial block takes the other path.
            full = g0 + BLOCK <= n_groups
            theta, opt_state, rows = lax.cond(
                full,
                lambda c: lax.fori_loop(0, BLOCK, lambda j, cj: group(g0 + j, cj), c, unroll=UNROLL),
                lambda c: lax.fori_loop(g0, jnp.minimum(g0 + BLOCK, n_groups), group, c),
                (theta, opt_state, rows),
            )
            window = lax.dynamic_slice_in_dim(rows, g0, BLOCK)
            stop, first, why = _first_stop(window, g0 + jnp.arange(BLOCK) < n_groups, tol, size)
            new = stop & ~done
            converged = why == CONVERGED
            at = start + (g0 + first - jnp.where(converged, 0, 1)) * every  # diverged: the row before
            carry = (theta, opt_state, done | new, jnp.where(new, why, code).astype(code.dtype),
                     jnp.where(new, at, n).astype(n.dtype))
            return b + 1, carry, rows

        def more(state):
            b, carry, _ = state
            return (b * BLOCK < n_groups) & ~jnp.all(carry[2])

        _, carry, rows = lax.while_loop(more, block, (jnp.asarray(0), carry, rows))
        rows = rows[: plan.groups]
        losses = rows[..., size + 2] if not plan.free_metrics else _row_losses(rows[..., :size], n_groups, x, y)
        # A non-finite loss stops the fit too, at the row before it (rows past a stop,
        # or past the cap, were not run, and do not count).
        theta, opt_state, done, code, n = carry
        limit = jnp.where(done, (n - start) // every + 1, n_groups)
        bad, first = _first_bad_loss(losses, limit)
        carry = (theta, opt_state, done | bad, jnp.where(bad, DIV_LOSS, code).astype(code.dtype),
                 jnp.where(bad, start + (first - 1) * every, n).astype(n.dtype))
        return carry, rows, losses, final(carry[0], x, y)

    def row_loss(theta, x, y):
        return plan.objective.value(theta, x, y)

    if plan.batched:
        row_loss = jax.vmap(row_loss, in_axes=(0, None, None))
    # Small data: all rows in one batched pass. Large data: one row at a time, each a
    # full pass over the data, skipping the rows that were not run (memory stays at
    # one pass, and no pass is spent on padding).
    per_pass = (1 << 22) // max(1, plan.data_size * (plan.starts or 1))

    def _row_losses(thetas, n_rows, x, y):
        if per_pass >= plan.groups:
            return jax.vmap(row_loss, in_axes=(0, None, None))(thetas, x, y)
        if per_pass > 1:
            return lax.map(lambda t: row_loss(t, x, y), thetas, batch_size=per_pass)

        def one(inp):
            i, t = inp
            skip = jnp.full(t.shape[:-1], jnp.nan, t.dtype)
            return lax.cond(i < n_rows, lambda: row_loss(t, x, y), lambda: skip)

        return lax.map(one, (jnp.arange(plan.groups), thetas))

    def metrics(theta, x, y):
        value, grad = jax.value_and_grad(plan.objective.value)(theta, x, y)
        return value, jnp.sqrt(jnp.sum(grad * grad))

    final = jax.vmap(metrics, in_axes=(0, None, None)) if plan.batched else metrics

    def init(theta):
        return (theta, optimizer.init(theta), jnp.asarray(False), jnp.asarray(RUNNING, jnp.int32),
                jnp.zeros((), jnp.int32))

    if plan.batched:
        init = jax.vmap(init)
    return jax.jit(init), jax.jit(chunk)


def _chunk_steps(total: int, every: int, minibatch: bool, per_epoch: int) -> int:
    """How many steps one compiled call runs.

    A power of two from 64 up to 2048 (or one epoch, if longer), so fits of one problem
    with different caps share a few compiled shapes, and long fits report progress and
    stop early between calls. Steps past the cap are skipped inside the call.
    """
    cap = max(per_epoch, 2048) if minibatch else 2048
    want = min(max(total, 64), cap)
    length = 1 << (want - 1).bit_length()
    return -(-length // every) * every


def _run(objective, optimizer, data, starts, batched, total, per_epoch, batch_size, every, tol,
         seed, dtype, epochs, progress):
    t0 = time.perf_counter()
    float_t = np.float64 if dtype == "float64" else np.float32
    minibatch = batch_size is not None
    length = _chunk_steps(total, every, minibatch, per_epoch)
    plan = _Plan(objective, optimizer, minibatch, batched, length // every, every, data.x.size,
                 len(starts) if batched else 0)
    init, run_chunk = _runner(plan)

    x, y = _on_device(data, float_t)
    carry = init(starts.astype(float_t) if batched else starts[0].astype(float_t))
    tol_arr = float_t(tol)
    batches = _BatchSource(len(data), batch_size, seed) if minibatch else None

    def chunk_batches(first_step):
        if not minibatch:
            return None
        bidx, bmask = batches.steps(first_step, length)
        return bidx.reshape(plan.groups, every, batch_size), bmask.reshape(plan.groups, every, batch_size)

    rows, losses = [], []
    done_steps = 0
    batch = chunk_batches(0)
    while True:
        carry, chunk_rows, chunk_losses, final = run_chunk(carry, done_steps, total, batch, x, y, tol_arr)
        done_steps += length
        # JAX runs the chunk asynchronously: draw the next chunk's batches meanwhile.
        batch = chunk_batches(done_steps) if done_steps < total else None
        done, chunk_rows, chunk_losses, final, theta, code, n = jax.device_get(
            (carry[2], chunk_rows, chunk_losses, final, carry[0], carry[3], carry[4]))
        rows.append(chunk_rows)
        losses.append(chunk_losses)
        if progress is not None:
            best = float(np.nanmin(chunk_losses)) if np.isfinite(chunk_losses).any() else float("nan")
            progress(min(done_steps, total), total, best)
        if done_steps >= total or bool(np.all(done)):
            break

    final_loss, final_gnorm = final
    elapsed = time.perf_counter() - t0
    rows = np.concatenate(rows, axis=0).astype(float)
    losses = np.concatenate(losses, axis=0).astype(float)
    if not batched:  # one start: the same code, with a starts axis of length 1
        rows, losses, theta = rows[:, None], losses[:, None], np.asarray(theta)[None]
        done, code, n, final_loss, final_gnorm = (np.asarray(a)[None] for a in (done, code, n, final_loss, final_gnorm))
    ends = _outcomes(rows, losses, np.asarray(theta, float), np.asarray(starts, float), np.asarray(done),
                     np.asarray(code), np.asarray(n), np.asarray(final_loss, float), np.asarray(final_gnorm, float),
                     total, every, objective.model.size)
    context = (objective, optimizer, data, total, every, tol, seed, batch_size, epochs, dtype, elapsed)

    def build(s: int) -> FitResult:
        return _result(rows[:, s], losses[:, s], {k: v[s] for k, v in ends.items()}, *context)

    if batched:
        return MultiFit.lazy(len(starts), build, ends["theta"], ends["loss"])
    return build(0)


def _on_device(data: Dataset, float_t) -> tuple[Any, Any]:
    """The data as the compiled loop takes it.

    Small data go as numpy arrays, which jit's fast C++ path copies more cheaply than a
    Python ``device_put``. Large data go onto the device once and stay cached on the
    (immutable) data set, so repeated fits of it, and every chunk of one fit, reuse
    one copy.
    """
    x, y = data.x.astype(float_t, copy=False), data.y.astype(float_t, copy=False)
    if x.size + y.size <= 1 << 16:
        return x, y
    cache = data.__dict__.setdefault("_device_copies", {})
    key = (np.dtype(float_t).name, jax.default_backend())
    if key not in cache:
        cache.clear()  # one copy at a time
        cache[key] = jax.device_put((x, y))
    return cache[key]


def _outcomes(rows, losses, theta, starts, done, code, n, final_loss, final_gnorm, total, every, size):
    """Where each start ended, for all starts at once (rows: (R, S, P+2), the rest (S, ...)).

    A start that stopped ends at its stop row (or at its start, if even that was not
    finite); one that ran to the cap ends at the final θ, or at its last recorded row
    if the last updates left the finite numbers.
    """
    starts_axis = np.arange(rows.shape[1])
    kept = np.where(done, np.floor_divide(n, every) + 1, (total - 1) // every + 1)
    kept = np.clip(kept, 0, rows.shape[0])
    last = np.maximum(kept - 1, 0)
    row_theta = rows[last, starts_axis, :size]
    row_loss = losses[last, starts_axis]
    row_gnorm = np.sqrt(rows[last, starts_axis, size])
    theta_ok = np.all(np.isfinite(theta), axis=1)
    final_ok = np.isfinite(final_loss) & np.isfinite(final_gnorm) & theta_ok
    at_start = done & (kept == 0)
    at_end = ~done & final_ok
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


class _BatchSource:
    """Mini-batch indices for any run of global steps, epoch by epoch from the seed."""

    def __init__(self, n: int, batch_size: int, seed: int):
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.per_epoch = -(-n // batch_size)
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def _epoch(self, e: int):
        if e not in self._cache:
            self._cache = {k: v for k, v in self._cache.items() if k >= e - 1}
            self._cache[e] = epoch_batches(self.n, self.batch_size, self.seed, e)
        return self._cache[e]

    def steps(self, start: int, length: int) -> tuple[np.ndarray, np.ndarray]:
        idx = np.zeros((length, self.batch_size), np.int32)
        mask = np.zeros((length, self.batch_size), bool)
        s = start
        while s < start + length:
            e, j = divmod(s, self.per_epoch)
            take = min(self.per_epoch - j, start + length - s)
            bi, bm = self._epoch(e)
            idx[s - start: s - start + take] = bi[j: j + take]
            mask[s - start: s - start + take] = bm[j: j + take]
            s += take
        return idx, mask


def _result(rows, row_losses, end, objective, optimizer, data, total, every, tol, seed, batch_size, epochs,
            dtype, elapsed) -> FitResult:
    """One start's FitResult: its kept history rows, and where it ended (`_outcomes`)."""
    model, size = objective.model, objective.model.size
    kept = int(end["kept"])
    rows, loss = rows[:kept], row_losses[:kept]
    step = np.arange(kept) * every
    params, gnorm, lr = rows[:, :size], np.sqrt(rows[:, size]), rows[:, size + 1].copy()
    theta, final_loss, final_gnorm = end["theta"], float(end["loss"]), float(end["grad_norm"])
    n, code = int(end["steps"]), int(end["code"])
    if end["append_final"]:
        step = np.append(step, n)
        params = np.vstack([params, theta[None, :]])
        loss, gnorm, lr = np.append(loss, final_loss), np.append(gnorm, final_gnorm), np.append(lr, np.nan)
    if len(lr):
        lr[-1] = np.nan
    if code == CONVERGED:
        status, why = "converged", f"converged: gradient norm {final_gnorm:.3g} <= tol {tol:g} after {n} steps"
    elif code == RUNNING:
        status = "max_steps"
        why = (f"reached the epoch cap ({epochs} epochs, {total} steps)" if epochs is not None
               else f"reached the step cap ({total} steps)")
    else:
        status = "diverged"
        by = f"at step {n + 1}" if every == 1 else f"by step {n + every}"
        why = (f"diverged {by}: {_DIVERGED_WHAT[code]} became non-finite; "
               f"kept the last finite parameters, after {n} steps")
        if kept == 0:
            why = f"diverged: {_DIVERGED_WHAT[code]} is not finite at the start; choose another start"
    history = History(step=step, params=params, loss=loss, grad_norm=gnorm, lr=lr)
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
        optimizer=optimizer.to_dict(),
        settings={
            "seed": seed, "batch_size": batch_size, "epochs": epochs, "steps": total, "tol": tol,
            "dtype": dtype, "reduction": objective.reduction, "history_every": every,
            "n_examples": len(data), "data": data.name,
        },
        elapsed=elapsed,
    )

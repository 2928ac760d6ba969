"""The compiled chunk of the fit loop: steps, records, stop checks, many starts at once.

A chunk is one jitted call that runs a fixed number of steps. Inside it, a while loop
runs blocks of 16 *groups*; a group is one recording step (which writes a history row
[φ, |g|², α]) and ``history_every - 1`` plain steps. After each block, the block's rows
are checked at once: a non-finite gradient or parameter stops a start (diverged,
keeping the row before), a gradient norm at most ``tol`` stops it (converged, at that
row). After the while loop the full-data losses of all recorded rows are computed in
one batched pass, and a non-finite loss stops the fit at the row before it. Checking a
block at a time, and computing losses after the loop, keep each step to the model's
gradient, the update and one row write (asking the gradient's pass for its loss as
well makes XLA split the pass: a record of 512 vmapped starts then costs 1.4× one
without it). A chunk returns its rows, the end state and the final loss in one packed
array (`unpack`): one transfer to the host.

Every chunk of a plan has one shape (a short last mini-batch is padded with masked
rows, and the step cap is a runtime argument), so a plan compiles once. The optimiser's
real numbers (α, β, γ, ε, ...) are arguments too, one set per start: the plan holds the
rule's `Optimizer.skeleton`, so fits (and the runs of a sweep) that differ only in them
share the compiled loop, and each start may carry its own. Each step draws
its own mini-batch from the seed (`gradfit.batches.batch_rows`). The host side
(`gradfit.fitting`) runs the chunks one after another, keeps the history, writes
checkpoints and stops between chunks. Many starts run together under
``vmap``, sharing the mini-batches or each drawing its own (``lane_batches``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from .batches import batch_rows
from .data import Dataset
from .objective import Objective
from .optimizers import Optimizer

RUNNING, CONVERGED, DIV_LOSS, DIV_GRAD, DIV_PARAMS, STOPPED = 0, 1, 2, 3, 4, 5


@dataclass(frozen=True)
class Plan:
    """The static shape of a compiled chunk: what the trace depends on."""

    objective: Objective
    optimizer: Optimizer  # a skeleton: its numbers come as the chunk's argument ``h``
    minibatch: bool
    batched: bool
    groups: int
    every: int
    data_size: int = 1  # rows × columns of x, to size the loss pass after the loop
    starts: int = 0
    lane_batches: bool = False  # each start its own mini-batches (a sweep over seeds)
    n_rows: int = 0  # examples, and the mini-batch size: the compiled loop draws each step's batch
    batch_size: int = 0

    @property
    def free_metrics(self) -> bool:
        """Whether each step's own gradient is the full-data gradient at θ (so a record
        needs no extra pass over the data for it)."""
        return not self.minibatch and not self.optimizer.looks_ahead


def default_dtype() -> str:
    """float64 on the CPU (as scipy and lmfit), float32 on accelerators."""
    return "float64" if jax.default_backend() == "cpu" else "float32"


def _step_fns(plan: Plan):
    """The two kinds of step for one start, as pure functions of (θ, state), given the
    optimiser's numbers ``h``.

    ``record(θ, state, batch, x, y, h)`` also returns a history row [φ..., |g|², α, L]: the squared
    full-data gradient norm at θ, the rate of the update it takes, and the full-data
    loss where the record already makes a pass over the data for its gradient
    (mini-batches, look-ahead). Where the update's own gradient is the full-data one,
    L is left out (NaN) and the recorded rows' losses are computed after the loop, all
    at once, so a step does not pay for a second pass that its update does not need.
    ``plain(θ, state, batch, x, y, h)`` only updates. Neither checks anything: the chunk checks
    a block of rows at once, which costs a few operations a block instead of a dozen a
    step (on small problems each compiled operation costs as much as the model).
    """
    objective, optimizer = plan.objective, plan.optimizer
    full_vg = jax.value_and_grad(objective.value)
    full_grad = jax.grad(objective.value)
    batch_vg = jax.value_and_grad(objective.batch_value)
    def direction(theta, state, batch, x, y, h):
        """The gradient the rule uses, and the objective a line search would probe."""
        point = optimizer.gradient_point(theta, state, h)
        if plan.minibatch:
            idx, mask = batch
            return batch_vg(point, x, y, idx, mask)[1], lambda p: objective.batch_value(p, x, y, idx, mask)
        return full_vg(point, x, y)[1], lambda p: objective.value(p, x, y)

    def update(theta, state, grad, value_fn, h):
        updates, state = optimizer.rule(h).update(grad, state, theta, value_fn=value_fn)
        return theta + updates, state

    def plain(theta, state, batch, x, y, h):
        grad, value_fn = direction(theta, state, batch, x, y, h)
        return update(theta, state, grad, value_fn, h)

    def record(theta, state, batch, x, y, h):
        nan = jnp.full((), jnp.nan, theta.dtype)
        if plan.free_metrics:  # the update's own gradient is the full-data one at θ
            grad = full_grad(theta, x, y)
            grad_at_theta, value_fn, loss = grad, (lambda p: objective.value(p, x, y)), nan
        else:  # a pass over the data for the record: take the loss in the same pass
            loss, grad_at_theta = full_vg(theta, x, y)
            grad, value_fn = direction(theta, state, batch, x, y, h)
        new_theta, state = update(theta, state, grad, value_fn, h)
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
def runner(plan: Plan):
    """The compiled pieces of one plan (`Runner`)."""
    record, plain = _step_fns(plan)
    if plan.batched:
        lanes = 0 if plan.lane_batches else None
        record = jax.vmap(record, in_axes=(0, 0, lanes, None, None, 0))
        plain = jax.vmap(plain, in_axes=(0, 0, lanes, None, None, 0))
    optimizer, every = plan.optimizer, plan.every
    blocks = -(-plan.groups // BLOCK)

    def chunk(carry, start, total, words, x, y, tol, h):
        # carry: θ, optimiser state, stopped?, stop code, stop step (per start); words: the
        # seed's (`batches.seed_words`), one pair per start with lane_batches, None full-batch
        size = carry[0].shape[-1]
        rows = jnp.full((blocks * BLOCK, *carry[0].shape[:-1], size + 3), jnp.nan, carry[0].dtype)
        n_groups = jnp.minimum(plan.groups, (total - start + every - 1) // every)

        def draw(step):
            """Step ``step``'s mini-batch (None full-batch). Each step draws the next step's batch
            and carries it: a batch computed in the step that uses it is fused by XLA into the
            gathers of the rows, which then recompute each row's index once per column."""
            if words is None:
                return None
            if plan.lane_batches:  # each start its own batch: (starts, batch size)
                return jax.vmap(lambda w: batch_rows(step, w, plan.n_rows, plan.batch_size))(words)
            return batch_rows(step, words, plan.n_rows, plan.batch_size)

        def group(g0, j, state):
            """Group g0 + j: its record goes to row j of the block's window."""
            theta, opt_state, window, batch = state
            g = g0 + j
            s0 = start + g * every
            theta, opt_state, row = record(theta, opt_state, batch, x, y, h)
            batch = draw(s0 + 1)
            window = lax.dynamic_update_index_in_dim(window, row, j, 0)
            if every > 1:
                def step(e, c):
                    theta, opt_state = plain(c[0], c[1], c[2], x, y, h)
                    return theta, opt_state, draw(s0 + e + 1)

                theta, opt_state, batch = lax.fori_loop(1, jnp.minimum(every, total - s0), step,
                                                        (theta, opt_state, batch))
            return theta, opt_state, window, batch

        def block(state):
            b, (theta, opt_state, done, code, n), rows, batch = state
            g0 = b * BLOCK
            # A whole block runs as a static loop, unrolled, which XLA runs faster than a
            # loop of unknown length; only the last, partial block takes the other path.
            # The block writes its rows into a window of its own, copied into the chunk's
            # rows once, so the branch and the unrolled loop carry only the block's rows.
            full = g0 + BLOCK <= n_groups
            window = jnp.full((BLOCK, *rows.shape[1:]), jnp.nan, rows.dtype)
            theta, opt_state, window, batch = lax.cond(
                full,
                lambda c: lax.fori_loop(0, BLOCK, lambda j, cj: group(g0, j, cj), c, unroll=UNROLL),
                lambda c: lax.fori_loop(0, jnp.minimum(BLOCK, n_groups - g0), lambda j, cj: group(g0, j, cj), c),
                (theta, opt_state, window, batch),
            )
            rows = lax.dynamic_update_slice_in_dim(rows, window, g0, 0)
            stop, first, why = _first_stop(window, g0 + jnp.arange(BLOCK) < n_groups, tol, size)
            new = stop & ~done
            converged = why == CONVERGED
            at = start + (g0 + first - jnp.where(converged, 0, 1)) * every  # diverged: the row before
            carry = (theta, opt_state, done | new, jnp.where(new, why, code).astype(code.dtype),
                     jnp.where(new, at, n).astype(n.dtype))
            return b + 1, carry, rows, batch

        def more(state):
            b, carry = state[:2]
            return (b * BLOCK < n_groups) & ~jnp.all(carry[2])

        _, carry, rows, _ = lax.while_loop(more, block, (jnp.asarray(0), carry, rows, draw(start)))
        rows = rows[: plan.groups]
        losses = rows[..., size + 2] if not plan.free_metrics else _row_losses(rows[..., :size], n_groups, x, y)
        # A non-finite loss stops the fit too, at the row before it (rows past a stop,
        # or past the cap, were not run, and do not count).
        theta, opt_state, done, code, n = carry
        limit = jnp.where(done, (n - start) // every + 1, n_groups)
        bad, first = _first_bad_loss(losses, limit)
        carry = (theta, opt_state, done | bad, jnp.where(bad, DIV_LOSS, code).astype(code.dtype),
                 jnp.where(bad, start + (first - 1) * every, n).astype(n.dtype))
        # The end point's loss and gradient cost a pass over the data: taken in the last chunk
        # only (a fit stopped between chunks by a signal takes them with `Runner.final`).
        nan = jnp.full(carry[2].shape, jnp.nan, carry[0].dtype)
        final_loss, final_gnorm = lax.cond(start + plan.groups * every >= total, lambda t: final(t, x, y),
                                           lambda t: (nan, nan), carry[0])
        # What the host reads, in one array (one transfer a chunk): `unpack` takes it apart.
        dtype = rows.dtype
        # Step counts reach 2³¹: float32 holds whole numbers only to 2²⁴, so they travel bit for bit.
        steps = carry[4].astype(dtype) if dtype == jnp.float64 else lax.bitcast_convert_type(carry[4], dtype)
        packed = jnp.concatenate([rows.ravel(), losses.ravel(), carry[0].ravel(), carry[2].astype(dtype).ravel(),
                                  carry[3].astype(dtype).ravel(), steps.ravel(), final_loss.ravel(),
                                  final_gnorm.ravel()])
        return carry, packed

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

    def init(theta, h):
        return (theta, optimizer.rule(h).init(theta), jnp.asarray(False), jnp.asarray(RUNNING, jnp.int32),
                jnp.zeros((), jnp.int32))

    if plan.batched:
        init = jax.vmap(init)
    return Runner(jax.jit(init), jax.jit(chunk), jax.jit(final))


class Runner(NamedTuple):
    """A plan's compiled pieces: ``init(θ, h)`` the loop state, ``chunk(...)`` a chunk of steps,
    ``final(θ, x, y)`` the end point's loss and gradient norm."""

    init: Any
    chunk: Any
    final: Any


def unpack(packed: np.ndarray, plan: Plan, size: int) -> tuple[np.ndarray, ...]:
    """A chunk's packed output as (θ, done, code, n, rows, losses, final loss, final |g|), each with a
    leading starts axis (S = 1 for one start): rows (groups, S, size + 3), losses (groups, S)."""
    s, g = max(plan.starts, 1), plan.groups
    a = g * s * (size + 3)
    b = a + g * s
    c = b + s * size
    rows, losses, theta = packed[:a], packed[a:b], packed[b:c]
    done, code, n, final_loss, final_gnorm = packed[c:c + 5 * s].reshape(5, s)
    n = n.astype(np.int64) if packed.dtype == np.float64 else n.view(np.int32).astype(np.int64)
    return (theta.reshape(s, size), done.astype(bool), code.astype(np.int32), n,
            rows.reshape(g, s, size + 3), losses.reshape(g, s), final_loss, final_gnorm)


def chunk_steps(total: int, every: int, minibatch: bool, per_epoch: int) -> int:
    """How many steps one compiled call runs.

    A power of two from 64 up to 2048 (or one epoch, if longer), so fits of one problem
    with different caps share a few compiled shapes, and long fits report progress and
    stop early between calls. Steps past the cap are skipped inside the call.
    """
    cap = max(per_epoch, 2048) if minibatch else 2048
    want = min(max(total, 64), cap)
    length = 1 << (want - 1).bit_length()
    return -(-length // every) * every


def on_device(data: Dataset, float_t) -> tuple[Any, Any]:
    """The data as the compiled loop takes it.

    Small data go as numpy arrays, which jit's fast C++ path copies more cheaply than a
    Python ``device_put``. Large data go onto the device once and stay cached on the
    (immutable) data set, so repeated fits of it, and every chunk of one fit, reuse
    one copy.
    """
    x = data.x.astype(float_t, copy=False)
    y = Objective.targets(data.y.astype(float_t, copy=False), data.weights)
    if x.size + y.size <= 1 << 16:
        return x, y
    cache = data.__dict__.setdefault("_device_copies", {})
    key = (np.dtype(float_t).name, jax.default_backend())
    if key not in cache:
        cache.clear()  # one copy at a time
        cache[key] = jax.device_put((x, y))
    return cache[key]


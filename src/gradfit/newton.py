"""Damped Newton's method with the autodiff Hessian: the second-order polish.

Each iteration solves H d = -g for the Newton step, with H = ∇²L by autodiff (a
Hessian that is not positive definite has its eigenvalues replaced by their absolute
values, floored, so d is always a descent direction), then backtracks
t = 1, 1/2, 1/4, ... until L[θ + t d] ≤ L[θ] + 10⁻⁴ t gᵀd (Armijo). It stops when the
Newton decrement λ = √(gᵀH⁻¹g) is at most ``tol``: for a negative log-likelihood λ is
the distance to the optimum in standard errors, and λ²/2 the loss still to gain.

The Hessian may come from other data than the gradient (a subsample of the rows,
scaled up): the iteration then converges linearly instead of quadratically, at a
fraction of the cost per step on large data.

Newton takes a handful of iterations, each a pass or two over the data, so the loop
is plain Python around two compiled functions (the value with its gradient, and the
Hessian): compiling a whole ``lax.while_loop`` costs seconds, a Python iteration
microseconds. The objective is any hashable object with a method
``value(theta, *args)``; its compiled functions are cached, so every call on data of
one shape reuses them.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any, NamedTuple

import jax
import numpy as np

RUNNING, CONVERGED, MAX_ITER, STALLED, NOT_FINITE = 0, 1, 2, 3, 4
ARMIJO = 1e-4
MAX_HALVINGS = 40


class NewtonResult(NamedTuple):
    """Where Newton's method ended, and its iterations.

    ``history`` rows are [θ..., g..., L, |g|, λ, t]: each point visited, its gradient,
    loss, gradient norm and Newton decrement, and the step length t taken from it
    (NaN on the last row, which took none).
    """

    theta: np.ndarray
    value: float
    grad: np.ndarray
    decrement: float
    iterations: int
    status: int
    history: np.ndarray


@lru_cache(maxsize=128)
def value_and_grad(fn: Any):
    """``fn.value`` and its gradient, compiled once per objective."""
    return jax.jit(jax.value_and_grad(fn.value))


@lru_cache(maxsize=128)
def hessian(fn: Any):
    """The Hessian of ``fn.value`` by autodiff (forward over reverse), compiled once per objective."""
    return jax.jit(jax.hessian(fn.value))


def direction(hess: np.ndarray, grad: np.ndarray) -> tuple[np.ndarray, float]:
    """The Newton step d = -H⁻¹g and λ² = -gᵀd, through |H| floored where H is not positive definite."""
    hess = 0.5 * (hess + hess.T)
    try:
        chol = np.linalg.cholesky(hess)
        step = -np.linalg.solve(chol.T, np.linalg.solve(chol, grad))
    except np.linalg.LinAlgError:
        w, v = np.linalg.eigh(hess)
        floor = max(float(np.max(np.abs(w))), 1e-300) * 1e-14
        step = -(v @ ((v.T @ grad) / np.maximum(np.abs(w), floor)))
    return step, float(-grad @ step)


def minimize(
    fn: Any,
    theta0: np.ndarray,
    args: tuple = (),
    *,
    hess_fn: Any = None,
    hess_args: tuple | None = None,
    hess_scale: float = 1.0,
    value_scale: float = 1.0,
    tol: float = 1e-9,
    max_iter: int = 100,
) -> NewtonResult:
    """Minimise ``fn.value(θ, *args)`` by damped Newton from θ₀.

    ``hess_fn.value(θ, *hess_args)`` times ``hess_scale`` is the Hessian used (default:
    ``fn`` on ``args``, the exact Newton step). ``value_scale`` multiplies the objective
    (so that λ and ``tol`` are in the units wanted, e.g. standard errors). Call under
    ``jax.enable_x64`` for float64.
    """
    vg = value_and_grad(fn)
    hess = hessian(fn if hess_fn is None else hess_fn)
    hess_args = args if hess_args is None else hess_args
    return iterate(lambda theta: jax.device_get(vg(theta, *args)),
                   lambda theta: jax.device_get(hess(theta, *hess_args)), theta0, hess_scale=hess_scale,
                   value_scale=value_scale, tol=tol, max_iter=max_iter)


def iterate(
    value_and_grad: Callable[[np.ndarray], tuple[Any, Any]],
    hessian: Callable[[np.ndarray], Any],
    theta0: np.ndarray,
    *,
    hess_scale: float = 1.0,
    value_scale: float = 1.0,
    tol: float = 1e-9,
    max_iter: int = 100,
) -> NewtonResult:
    """Damped Newton from θ₀ on an objective given by its evaluations: `minimize`'s loop.

    ``value_and_grad(θ)`` gives L and ∇L, ``hessian(θ)`` the Hessian (times ``hess_scale``),
    as arrays of any kind: compiled functions on data in memory, or sums over a cluster's
    partitions (`gradfit.glm_cluster`).
    """

    def evaluate(theta):
        v, g = value_and_grad(theta)
        return float(v) * value_scale, np.asarray(g, dtype=float) * value_scale

    theta = np.asarray(theta0, dtype=float)
    value, grad = evaluate(theta)
    rows = []
    status, it, dec = RUNNING, 0, np.inf
    while status == RUNNING:
        if not (np.isfinite(value) and np.all(np.isfinite(grad))):
            status = NOT_FINITE
            break
        h = np.asarray(hessian(theta), dtype=float) * (hess_scale * value_scale)
        if not np.all(np.isfinite(h)):
            status = NOT_FINITE
            break
        step, dec2 = direction(h, grad)
        dec = float(np.sqrt(max(dec2, 0.0)))
        row = [theta, grad, [value, np.sqrt(grad @ grad), dec, np.nan]]
        if dec <= tol:
            rows.append(np.concatenate(row))
            status = CONVERGED
            break
        if it >= max_iter:
            rows.append(np.concatenate(row))
            status = MAX_ITER
            break
        t, accepted = 1.0, False
        # Rounding in L of about 1e-15 |L| must not reject a good step near the optimum.
        slack = 1e-13 * abs(value)
        for _ in range(MAX_HALVINGS):
            v_new, g_new = evaluate(theta + t * step)
            if np.isfinite(v_new) and v_new <= value - ARMIJO * t * dec2 + slack:
                accepted = True
                break
            t *= 0.5
        row[2][3] = t if accepted else np.nan
        rows.append(np.concatenate(row))
        if not accepted:
            status = STALLED
            break
        theta, value, grad = theta + t * step, v_new, g_new
        it += 1
    if status == NOT_FINITE:
        rows.append(np.concatenate([theta, grad, [value, np.sqrt(grad @ grad), np.nan, np.nan]]))
    history = np.array(rows)
    size = len(theta)
    history[:, size:2 * size + 2] /= value_scale
    return NewtonResult(theta, value / value_scale, grad / value_scale, dec, it, status, history)

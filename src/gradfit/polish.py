"""Second-order fits: Levenberg–Marquardt for least squares, trust-region Newton otherwise.

Both methods take a step from the minimiser of a local quadratic model of the loss,
damped by λ, with the parameters scaled so that any parameter scale works:

- **Levenberg–Marquardt** (least squares, F = ½‖r‖², r_i = √w_i (f(x_i, φ) - y_i)):
  the model is ½‖r + Jδ‖² with J = ∂r/∂φ by JAX (forward mode when there are more
  residuals than parameters, reverse mode otherwise). The step solves
  (JᵀJ + λ D²) δ = -Jᵀr, with D = diag(d_j), d_j the largest column norm ‖J_j‖ met so
  far (Marquardt's scaling, MINPACK's ``mode=1``). It is computed from the SVD of the
  scaled Jacobian J̃ = J D⁻¹ = U S Vᵀ as δ = -D⁻¹ V diag(s / (s² + λ)) Uᵀ r, never by
  squaring a badly conditioned J (where the scaled Gram matrix J̃ᵀJ̃ is well conditioned,
  its eigenvectors give the same factors more cheaply). A condition number of 10¹⁶ in
  the unscaled problem costs no digits that the data hold. Geodesic acceleration
  (Transtrum & Sethna 2012) adds a second-order correction along curved valleys.
- **Trust-region Newton** (any other likelihood): the model is gᵀδ + ½ δᵀHδ with the
  autodiff Hessian H, scaled by D = diag(√|H_jj|) (the largest met so far). Where H̃ =
  D⁻¹HD⁻¹ is indefinite its eigenvalues are replaced by their absolute values (floored
  at 10⁻¹⁴ of the largest), so the model is convex and the step descends.

The damping is adapted by the gain ratio ρ = (actual decrease) / (the model's
predicted decrease) (Nielsen, 1999): a step with ρ > 10⁻⁴ is taken and λ multiplied by
max(1/3, 1 - (2ρ - 1)³); otherwise λ is multiplied by ν and ν doubled (ν = 2 after each
taken step). λ starts at ``damping`` · max s²: 1 for LM (from NIST's far starts a smaller
start λ lets the first accelerated step jump onto a plateau), 10⁻³ for Newton. It stops,
as MINPACK's ``lmder`` does, on relative tests only:

- ``ftol``: the actual and predicted relative decreases of F are both at most ftol;
- ``xtol``: the scaled step ‖Dδ‖ is at most xtol (‖Dφ‖ + xtol);
- ``gtol``: the largest cosine between r and a column of J is at most gtol (least
  squares), or the Newton decrement √(gᵀH⁻¹g) is at most gtol · √(|L| + 1) (others);
- F = 0 (an exact fit);

and otherwise at ``max_iter`` iterations. Every iteration runs inside one compiled
``lax.while_loop``, vmapped over starts, so many starts cost one call.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from . import points
from .errors import GradfitError
from .models import _linear_fn
from .newton import value_and_grad
from .objective import Objective

RUNNING, FTOL, XTOL, GTOL, EXACT, MAX_ITER, NO_DECREASE, NOT_FINITE, SOLVED = range(9)

#: What each stop means, as a FitResult's ``stopped`` text says it.
REASONS = {
    FTOL: "the relative decrease of the loss fell to ftol",
    XTOL: "the relative step fell to xtol",
    GTOL: "the gradient test fell to gtol",
    EXACT: "the residuals are all zero",
    MAX_ITER: "reached its cap of {max_iter} iterations",
    NO_DECREASE: "no step decreases the loss at machine precision",
    NOT_FINITE: "the loss or its derivatives are not finite at the start",
    SOLVED: "solved exactly (the SVD of the column-scaled design)",
}

#: The most iterations a second-order fit may be asked for.
MAX_ITER_CAP = 10**7

#: LM's geodesic acceleration is used while 2‖a‖/‖v‖ is at most this (Transtrum & Sethna's α).
ACCELERATION = 0.75

#: The step h of the finite difference for the residuals' curvature in the acceleration.
ACCELERATION_STEP = 0.1

#: The largest history a second-order fit keeps: one row per step taken, to this many.
MAX_ROWS = 1024


@dataclass(frozen=True)
class SecondOrder:
    """A second-order method and its stopping rules (`lm` or `newton` builds one).

    ``method`` is ``"lm"`` (Levenberg–Marquardt, least squares only) or ``"newton"``
    (trust-region Newton, any likelihood). The tolerances are relative (module
    docstring); ``max_iter`` caps the iterations (steps tried, taken or not).
    """

    method: str = "lm"
    ftol: float = 1e-15
    xtol: float = 1e-12
    gtol: float = 1e-12
    max_iter: int = 10000
    damping: float = 1.0

    def __post_init__(self):
        if self.method not in ("lm", "newton"):
            raise GradfitError(f"a second-order method is 'lm' or 'newton', not {self.method!r}")
        for key in ("ftol", "xtol", "gtol"):
            value = getattr(self, key)
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                raise GradfitError(f"{key} must be a number >= 0, not {value!r}")
        if not (isinstance(self.damping, int | float) and math.isfinite(self.damping) and self.damping > 0):
            raise GradfitError(f"the initial damping must be a number > 0, not {self.damping!r}")
        if isinstance(self.max_iter, bool) or not isinstance(self.max_iter, int | np.integer) or not (
                1 <= self.max_iter <= MAX_ITER_CAP):
            raise GradfitError(f"max_iter must be a whole number from 1 to {MAX_ITER_CAP:,}, not {self.max_iter!r}")

    @property
    def name(self) -> str:
        return self.method

    @property
    def variant(self) -> str:
        return "marquardt" if self.method == "lm" else "trust-region"

    @property
    def label(self) -> str:
        return "Levenberg-Marquardt" if self.method == "lm" else "trust-region Newton"

    def describe(self) -> str:
        return (f"{self.method}(ftol={self.ftol:g}, xtol={self.xtol:g}, gtol={self.gtol:g}, "
                f"max_iter={int(self.max_iter)})")

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.method, "variant": self.variant,
                "ftol": self.ftol, "xtol": self.xtol, "gtol": self.gtol, "max_iter": int(self.max_iter),
                "damping": self.damping}


def lm(ftol: float = 1e-15, xtol: float = 1e-12, gtol: float = 1e-12, max_iter: int = 10000,
       damping: float = 1.0) -> SecondOrder:
    """Levenberg–Marquardt for least squares (the normal loss), with Marquardt's scaling.

    (JᵀJ + λD²) δ = -Jᵀr, D the column norms of J, λ adapted by the gain ratio; stops on
    MINPACK's relative tests ftol, xtol, gtol (module docstring) or after ``max_iter``
    iterations. ``damping`` is λ's start relative to the largest scaled curvature.
    """
    return SecondOrder("lm", float(ftol), float(xtol), float(gtol), max_iter, float(damping))


def newton(ftol: float = 1e-15, xtol: float = 1e-12, gtol: float = 1e-10, max_iter: int = 1000,
           damping: float = 1e-3) -> SecondOrder:
    """Trust-region Newton for any likelihood: the autodiff Hessian, made positive definite, damped by λ.

    Stops on the relative tests ftol and xtol, or once the Newton decrement √(gᵀH⁻¹g) is at
    most gtol √(|L| + 1), or after ``max_iter`` iterations.
    """
    return SecondOrder("newton", float(ftol), float(xtol), float(gtol), max_iter, float(damping))


def least_squares(objective: Objective) -> bool:
    """Whether the objective is a sum of squares LM can take: the normal loss (with σ or without)."""
    return objective.loss.name == "normal"


# -- the local models -------------------------------------------------------------------------------------


class _Local(NamedTuple):
    """The quadratic model at the current point, in scaled coordinates and the eigenbasis.

    With z = Vᵀ D δ, the model's decrease is -(cᵀz + ½ Σ w z²); the damped step is
    z = -c / (w + λ). ``test`` is the gradient test's value at the point; ``loss`` and
    ``grad`` are the objective L and its gradient there, for the history.
    """

    value: jax.Array  # F
    basis: jax.Array  # V (P, P)
    curvature: jax.Array  # w (P,)
    slope: jax.Array  # c (P,)
    scale: jax.Array  # D (P,)
    test: jax.Array
    loss: jax.Array
    grad: jax.Array
    jac: jax.Array  # J D⁻¹ (N, P) for LM's acceleration; (0, P) otherwise
    residuals: jax.Array  # r (N,) for LM's acceleration; (0,) otherwise


def _residuals(objective: Objective):
    """r(φ) = √w (f(x, φ) - y): the residuals whose ½‖r‖² LM minimises (same minimiser as L)."""

    def residuals(theta, x, y):
        f = objective.model(x, objective.model.unravel(theta))
        f = f[:, 0] if f.ndim == 2 else f
        if objective.weighted:
            return jnp.sqrt(y[:, 1]) * (f - y[:, 0])
        return f - y

    return residuals


def _svd(a, r):
    """(s², V, S Uᵀr) of a = U S Vᵀ: what the damped step needs.

    A tall a (columns of unit norm at most) with a well-conditioned Gram matrix aᵀa
    (condition below 10⁸) takes the eigenvectors of aᵀa, an N·P² product and a P×P
    eigenproblem; otherwise a QR then the SVD of R, which loses no digits to squaring.
    The step's accuracy only sets how fast the iteration converges, not where: the
    residuals and gradient that decide the optimum are evaluated directly.
    """
    def by_svd(_):
        if a.shape[0] >= 2 * a.shape[1]:
            q, upper = jnp.linalg.qr(a)
            u, s, vt = jnp.linalg.svd(upper)
            return s * s, vt.T, s * (u.T @ (q.T @ r))
        u, s, vt = jnp.linalg.svd(a, full_matrices=False)
        return s * s, vt.T, s * (u.T @ r)

    if a.shape[0] < 2 * a.shape[1]:
        return by_svd(None)
    gram = a.T @ a
    w, v = jnp.linalg.eigh(0.5 * (gram + gram.T))
    w = jnp.maximum(w, 0.0)
    well = jnp.min(w) > 1e-8 * jnp.max(w)
    return lax.cond(well, lambda _: (w, v, v.T @ (a.T @ r)), by_svd, None)


def _lm_local(objective: Objective, n_rows: int, size: int):
    residuals = _residuals(objective)

    def with_aux(theta, x, y):
        r = residuals(theta, x, y)
        return r, r

    # one pass gives r and J: forward mode for tall J, reverse mode for wide
    jac = (jax.jacfwd if n_rows >= size else jax.jacrev)(with_aux, has_aux=True)
    sigma = dict(objective.loss.settings).get("sigma")
    # L = a ‖r‖² + b for the normal loss: a from σ and the reduction, b the dropped constants
    a = (1.0 if sigma is None else 1.0 / (2.0 * sigma * sigma)) / (n_rows if objective.reduction == "mean" else 1)

    def local(theta, scale, x, y, offset):
        j, r = jac(theta, x, y)
        norms = jnp.sqrt(jnp.sum(j * j, axis=0))
        scale = jnp.maximum(scale, jnp.where(norms > 0, norms, 1.0))
        w, basis, c = _svd(j / scale, r)
        square = jnp.sum(r * r)
        rnorm = jnp.sqrt(square)
        jtr = j.T @ r
        cosines = jnp.abs(jtr) / jnp.maximum(norms * rnorm, jnp.finfo(r.dtype).tiny)
        return _Local(0.5 * square, basis, w, c, scale, jnp.max(cosines), a * square + offset, 2 * a * jtr,
                      j / scale, r)

    def offset(theta, x, y):
        if sigma is None and objective.reduction == "sum":  # L = ‖r‖² itself: nothing dropped, no pass needed
            return jnp.zeros((), theta.dtype)
        r = residuals(theta, x, y)
        return objective.value(theta, x, y) - a * jnp.sum(r * r)

    return local, offset


def _newton_local(objective: Objective):
    vg = jax.value_and_grad(objective.value)
    hess = jax.hessian(objective.value)

    def local(theta, scale, x, y, offset):
        v, g = vg(theta, x, y)
        h = hess(theta, x, y)
        h = 0.5 * (h + h.T)
        d = jnp.sqrt(jnp.abs(jnp.diag(h)))
        scale = jnp.maximum(scale, jnp.where(d > 0, d, 1.0))
        w, basis = jnp.linalg.eigh(h / jnp.outer(scale, scale))
        w = jnp.abs(w)
        w = jnp.maximum(w, 1e-14 * jnp.max(w))
        c = basis.T @ (g / scale)
        decrement = jnp.sqrt(jnp.sum(c * c / jnp.where(w > 0, w, 1.0)))
        return _Local(v, basis, w, c, scale, decrement / jnp.sqrt(jnp.abs(v) + 1.0), v, g,
                      jnp.zeros((0, theta.shape[0]), theta.dtype), jnp.zeros((0,), theta.dtype))

    def offset(theta, x, y):
        return jnp.zeros((), theta.dtype)

    return local, offset


# -- the iteration ----------------------------------------------------------------------------------------


class _State(NamedTuple):
    theta: jax.Array
    local: _Local
    lam: jax.Array
    nu: jax.Array
    iteration: jax.Array
    taken: jax.Array
    code: jax.Array
    rows: jax.Array  # (R, P + 3): [φ..., |∇L|², λ, L] at each point taken
    smooth: jax.Array  # the last step was taken with ρ > 0.75: the next needs no acceleration


@lru_cache(maxsize=64)
def program(objective: Objective, method: str, n_rows: int, history: int):
    """The compiled fits (one start, many starts): (starts (S, P), x, y, tolerances) -> final states.

    Each is compiled once per objective, method, data length and history length, on
    its first call; the tolerances and the cap are runtime arguments.
    """
    size = objective.model.size
    local, offset_at = (_lm_local(objective, n_rows, size) if method == "lm" else _newton_local(objective))
    hessian = jax.hessian(objective.value)
    residuals = _residuals(objective)

    def curvature_along(theta, v, here: _Local, x, y):
        """r_vv ≈ d²/dt² r(θ + t v) at t = 0 by one extra evaluation, (2/h)((r(θ + hv) - r)/h - Jv), h = 0.1,
        as GSL's geodesic acceleration does (the correction needs its direction, not many digits)."""
        h = ACCELERATION_STEP
        jv = here.jac @ (here.scale * v)
        return (2.0 / h) * ((residuals(theta + h * v, x, y) - here.residuals) / h - jv)

    def row(theta, lam, here: _Local):
        return jnp.concatenate([theta, jnp.stack([jnp.sum(here.grad * here.grad), lam, here.loss])])

    def run(theta0, x, y, ftol, xtol, gtol, max_iter, damping):
        dtype = theta0.dtype
        eps = jnp.finfo(dtype).eps  # no test asks for less than rounding can show
        ftol, xtol, gtol = jnp.maximum(ftol, 4 * eps), jnp.maximum(xtol, 4 * eps), jnp.maximum(gtol, 4 * eps)
        offset = offset_at(theta0, x, y)
        here = local(theta0, jnp.ones_like(theta0), x, y, offset)
        lam = damping * jnp.max(jnp.where(jnp.isfinite(here.curvature), here.curvature, 0.0))
        lam = jnp.where(lam > 0, lam, damping)
        rows = jnp.full((history, size + 3), jnp.nan, dtype)
        rows = rows.at[0].set(row(theta0, lam, here))
        finite = jnp.isfinite(here.value) & jnp.all(jnp.isfinite(here.slope)) & jnp.all(
            jnp.isfinite(here.curvature))
        code = jnp.where(~finite, NOT_FINITE,
                         jnp.where(here.value == 0, EXACT, jnp.where(here.test <= gtol, GTOL, RUNNING)))
        state = _State(theta0, here, lam.astype(dtype), jnp.asarray(2.0, dtype), jnp.asarray(0, jnp.int32),
                       jnp.asarray(0, jnp.int32), code.astype(jnp.int32), rows, jnp.asarray(False))

        def step(state: _State) -> _State:
            here, lam = state.local, state.lam
            z = -here.slope / (here.curvature + lam)
            delta = (here.basis @ z) / here.scale
            if method == "lm":
                # Geodesic acceleration (Transtrum & Sethna 2012): a second-order correction
                # a = -(J̃ᵀJ̃ + λ)⁻¹ J̃ᵀ r_vv follows a curved valley; δ = v + a/2, taken only
                # while the correction is small, 2‖a‖ ≤ 0.75 ‖v‖ (scaled).
                # Where the last step went as the model said (ρ > 0.75) the valley is not
                # curving away, and the correction (one more evaluation) is left out.
                rvv = lax.cond(state.smooth, lambda _: jnp.zeros_like(here.residuals),
                               lambda _: curvature_along(state.theta, delta, here, x, y), None)
                za = -(here.basis.T @ (here.jac.T @ rvv)) / (here.curvature + lam)
                small = 2 * jnp.sqrt(jnp.sum(za * za)) <= ACCELERATION * jnp.sqrt(jnp.sum(z * z))
                small = small | ~jnp.all(jnp.isfinite(za))
                za = jnp.where(jnp.all(jnp.isfinite(za)) & small, za, 0.0)
                z = z + 0.5 * za
                delta = (here.basis @ z) / here.scale
            else:
                small = jnp.asarray(True)
            predicted = -jnp.sum(here.slope * z + 0.5 * here.curvature * z * z)
            trial = state.theta + delta
            # The model at the trial point in the same pass as its value (forward mode gives
            # r with J): a refused step wastes it, a taken one (most) saves an evaluation.
            there = local(trial, here.scale, x, y, offset)
            new_value = there.value
            good = jnp.isfinite(there.value) & jnp.all(jnp.isfinite(there.slope)) & jnp.all(
                jnp.isfinite(there.curvature))
            actual = here.value - new_value
            rho = jnp.where(predicted > 0, actual / predicted, -1.0)
            # Near the optimum the decrease falls below the rounding of F while the model's
            # step is still exact: take such a step (the tests on x and g then end the fit).
            eps = jnp.finfo(dtype).eps
            in_noise = (predicted <= 1e-12 * jnp.abs(here.value)) & (actual >= -8 * eps * jnp.abs(here.value))
            take = good & ((rho > 1e-4) | in_noise) & small
            rho = jnp.where(take & (rho <= 1e-4), 1.0, rho)
            scaled_step = jnp.sqrt(jnp.sum((here.scale * delta) ** 2))
            scaled_x = jnp.sqrt(jnp.sum((here.scale * state.theta) ** 2))
            there = jax.tree.map(lambda a, b: jnp.where(take, a, b), there, here)
            theta = jnp.where(take, trial, state.theta)
            factor = jnp.maximum(1.0 / 3.0, 1.0 - (2.0 * rho - 1.0) ** 3)
            lam_new = jnp.where(take, lam * factor, lam * state.nu)
            nu = jnp.where(take, 2.0, 2.0 * state.nu)
            taken_count = state.taken + take.astype(jnp.int32)
            at = jnp.minimum(taken_count, history - 1)
            rows = lax.cond(take, lambda r: r.at[at].set(row(theta, lam_new, there)), lambda r: r, state.rows)
            scale_f = jnp.maximum(here.value, jnp.finfo(dtype).tiny)
            ftol_met = (jnp.abs(actual) <= ftol * scale_f) & (predicted <= ftol * scale_f)
            xtol_met = scaled_step <= xtol * (scaled_x + xtol)
            iteration = state.iteration + 1
            code = jnp.where(take & (there.value == 0), EXACT,
                   jnp.where(take & (there.test <= gtol), GTOL,
                   jnp.where(ftol_met, FTOL,
                   jnp.where(xtol_met, XTOL,
                   jnp.where(~jnp.isfinite(lam_new) | (lam_new > jnp.sqrt(jnp.finfo(dtype).max)), NO_DECREASE,
                   jnp.where(iteration >= max_iter, MAX_ITER, RUNNING))))))
            return _State(theta, there, lam_new.astype(dtype), nu.astype(dtype), iteration, taken_count,
                          code.astype(jnp.int32), rows, take & (rho > 0.75))

        end = lax.while_loop(lambda s: s.code == RUNNING, step, state)
        if size > points.MAX_SIZE:
            return end, jnp.zeros((0, 0), dtype)
        # The Hessian of L where it ended tells a minimum from a saddle or a plateau
        # (`gradfit.points`). Least squares needs it only where the scaled Jacobian is
        # nearly singular: elsewhere JᵀJ is positive definite, and a fit that only ever
        # descends does not come to rest on a saddle. A zero matrix marks "not needed".
        w = end.local.curvature
        needed = (jnp.min(w) <= 1e-10 * jnp.maximum(jnp.max(w), 1.0)) if method == "lm" else jnp.asarray(True)
        h = lax.cond(needed, lambda t: hessian(t, x, y), lambda t: jnp.zeros((size, size), dtype), end.theta)
        return end, h

    def packed(theta0, *args):
        """What the host needs, as one vector (one transfer): θ, code, iterations, steps taken, H, rows."""
        end, h = run(theta0, *args)
        dtype = theta0.dtype
        counts = jnp.stack([end.code, end.iteration, end.taken]).astype(dtype)
        return jnp.concatenate([end.theta, counts, jnp.ravel(h), jnp.ravel(end.rows)])

    def one(starts, *args):  # one start: no vmap, so lax.cond skips the branch not taken
        return packed(starts[0], *args)[None]

    many = jax.vmap(packed, in_axes=(0, None, None, None, None, None, None, None))
    return jax.jit(one), jax.jit(many)


class Outcome(NamedTuple):
    """Where a second-order fit ended, per start (leading axis S)."""

    theta: np.ndarray  # (S, P)
    code: np.ndarray  # (S,)
    iterations: np.ndarray
    taken: np.ndarray
    rows: np.ndarray  # (S, R, P + 3)
    hessian: np.ndarray | None = None  # (S, P, P) of L at theta, zero where LM needs none; None over MAX_SIZE


def minimize(objective: Objective, starts: np.ndarray, x, y, settings: SecondOrder) -> Outcome:
    """Run the second-order method from each start (S, P) on data already as the objective takes it."""
    if settings.method == "lm" and not least_squares(objective):
        raise GradfitError(lm_refusal(objective.loss.name))
    history = int(min(settings.max_iter + 1, MAX_ROWS))
    single, batched = program(objective, settings.method, int(np.shape(y)[0]), history)
    fit = single if len(starts) == 1 else batched
    dtype = starts.dtype
    out = np.asarray(jax.device_get(fit(starts, x, y, dtype.type(settings.ftol), dtype.type(settings.xtol),
                                        dtype.type(settings.gtol), np.int32(settings.max_iter),
                                        dtype.type(settings.damping))))
    size = starts.shape[1]
    h_size = size * size if size <= points.MAX_SIZE else 0
    theta, counts = out[:, :size], out[:, size:size + 3].astype(np.int64)
    hess = out[:, size + 3:size + 3 + h_size].reshape(len(out), size, size) if h_size else None
    rows = out[:, size + 3 + h_size:].reshape(len(out), history, size + 3)
    return Outcome(theta, counts[:, 0], counts[:, 1], counts[:, 2], rows, hess)


def lm_refusal(loss_name: str) -> str:
    return (f"Levenberg-Marquardt fits least squares (the normal loss), not the {loss_name} loss: use the "
            "optimizer 'newton' (trust-region Newton, any likelihood), or a first-order optimiser such as adam "
            "with polish=True (--polish), which finishes with trust-region Newton")


# -- linear least squares -------------------------------------------------------------------------------


def linear_model(objective: Objective) -> bool:
    """Whether the fit is linear least squares: gradfit's linear model with the normal loss."""
    return objective.model.fn is _linear_fn and least_squares(objective)


def linear_least_squares(objective: Objective, starts: np.ndarray, x, y) -> Outcome:
    """The exact least-squares coefficients of a linear model, as an `Outcome` of one step from each start.

    Solves min ‖√w (Aφ - y)‖ with A = [1, X] by LAPACK's SVD-based least squares on A with
    its columns scaled to unit norm, then one step of iterative refinement (the
    residual of the solution solved again), so the answer holds as many digits as the
    conditioning of the scaled columns allows: Longley's data to about 10.
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    w = y[:, 1] if objective.weighted else np.ones(len(y))
    target = y[:, 0] if objective.weighted else y
    design = np.column_stack([np.ones(len(target)), x.reshape(len(target), -1)])
    root = np.sqrt(w)
    a, b = design * root[:, None], target * root
    scale = np.linalg.norm(a, axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    scaled = a / scale

    def solve(rhs):
        return np.linalg.lstsq(scaled, rhs, rcond=None)[0] / scale

    theta = solve(b)
    theta = theta + solve(b - a @ theta)
    vg = value_and_grad(objective)  # compiled once per objective
    dtype = starts.dtype
    rows = []
    for point in (starts, np.broadcast_to(theta.astype(dtype), starts.shape)):
        values = [jax.device_get(vg(p, x.astype(dtype), y.astype(dtype))) for p in point]
        rows.append(np.stack([np.concatenate([p, [np.sum(np.square(g)), 0.0, v]]) for p, (v, g) in
                              zip(point, values)]))
    n = len(starts)
    theta_all = np.broadcast_to(theta, starts.shape).astype(float)
    return Outcome(theta_all, np.full(n, SOLVED), np.ones(n, int), np.ones(n, int), np.stack(rows, axis=1))

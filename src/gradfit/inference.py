"""Inference at the optimum of a fit: covariance, standard errors, intervals, likelihood statistics, predictions.

At the maximum-likelihood estimate θ̂ of a negative log-likelihood L(θ) = -Σ w_i log Pr(y_i | θ)
(w_i = 1 without weights; a fit with ``sigma=`` has w_i = 1/σ_i²), the covariance of θ̂ is
the inverse of one of three information matrices, ``covariance=``:

- ``gauss-newton``: JᵀWJ/σ² with J = ∂f/∂θ the Jacobian of the model outputs and
  W = diag(w). For least squares (σ unknown) the covariance is σ̂²(JᵀWJ)⁻¹ with
  σ̂² = Σ w_i r_i²/(n - k), as NIST certifies, OLS, lmfit and scipy's ``curve_fit``
  compute it; with ``absolute_sigma`` (the σ_i taken as known) it is (JᵀWJ)⁻¹, as
  ``curve_fit(absolute_sigma=True)``; for a normal loss with σ given, σ²(JᵀWJ)⁻¹. It is
  the default for the normal loss, and is found from the SVD of the column-scaled
  √W J D⁻¹ (D the column norms), never by inverting an unscaled JᵀJ;
- ``observed``: the Hessian H = ∇²L(θ̂) by autodiff (for least squares, of the normal
  negative log-likelihood at σ̂): the default for every other loss;
- ``fisher``: the expected information I = E_y[∇²L(θ̂)], the Hessian of
  Σ E_{y~Pr(·|θ̂)} ℓ(f_i(θ), y). It equals H for the canonical links of linear models
  (Poisson log, logistic, softmax, identity) and equals the Gauss-Newton matrix for the
  normal loss; it differs otherwise (Poisson softplus, nonlinear models).

From the covariance: standard errors √diag, correlations, t (or z) values θ̂/se with
two-sided p-values, and Wald intervals θ̂ ± q·se, q from Student's t with n - k degrees
of freedom for least squares (σ estimated), from the normal otherwise; and
profile-likelihood intervals {t : 2(min_{θ_j = t} L - L(θ̂)) ≤ z²}. Also: the log-likelihood
with every constant (log y! for counts), deviance, Pearson χ², AIC = 2k - 2ℓ and
BIC = k log n - 2ℓ, as statsmodels computes them (for least squares: χ² = Σ w r²,
reduced χ² = χ²/(n-k), R², σ̂, and the log-likelihood of WLS at σ̂² = χ²/n).

Parameters held fixed are not estimated: they are left out of J and H, k counts the
others, and their standard errors are NaN. Free parameters that ended at a bound are
left out of the covariance as an active-set method would (their standard errors NaN
too), but count in k: the data chose them.

Every decision is scale-invariant, so parameters of sizes 1e-3 and 1e4 are treated
alike: a matrix M is judged by its correlation-scaled form C = D⁻¹MD⁻¹, D = √diag M.
Uncertainties are refused where C is singular (condition number over 1/(100·P·ε)),
naming the parameters involved; where the Hessian has a negative eigenvalue (a saddle
point or a maximum); and at a point that is not stationary: the Newton decrement
λ = √(gᵀM⁻¹g), the distance to the optimum in standard errors, must be at most a
small tolerance (for Gauss-Newton, λ = ‖Uᵀ√W r‖/σ̂, the residuals' projection on the
columns of J, in units of σ̂, accepted too when it is within the rounding of the
model's outputs, as for a near-perfect fit).

`predict` gives the fitted model at new inputs with delta-method confidence and
prediction intervals.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import gammaln, i0e, i1e
from scipy import stats as distributions

from . import newton
from .data import Dataset, as_dataset
from .errors import GradfitError
from .losses import Loss, make_loss, poisson
from .models import Model, linear_for, make_model
from .objective import Objective
from .result import FitResult, Inference

#: Default largest Newton decrement (in standard errors) at which a point counts as stationary.
STATIONARY_TOL = 1e-3

#: The covariance forms `infer` computes (``auto``: Gauss-Newton for the normal loss, else observed).
COVARIANCE_FORMS = ("auto", "gauss-newton", "observed", "fisher")


def _rcond(size: int) -> float:
    """Smallest eigenvalue ratio of a correlation-scaled matrix of ``size`` rows still counted as regular.

    Its eigenvalues are computed to about ε·size relative to the largest; a hundred times
    that is a condition number of 1/(100·size·ε), about 1.5e13 for three parameters.
    """
    return 100.0 * max(size, 1) * float(np.finfo(float).eps)


# -- per-likelihood pieces ------------------------------------------------------------------


def _rate(f, link):
    return np.exp(f) if link == "exp" else np.logaddexp(0.0, f)


def _xlogy(y, x):
    return np.where(y == 0, 0.0, y * np.log(np.where(y == 0, 1.0, x)))


def _sigmoid(f):
    return 0.5 * (1.0 + np.tanh(0.5 * f))


def _softmax(f):
    e = np.exp(f - f.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@dataclass(frozen=True)
class _Family:
    """What inference needs to know about one likelihood beyond its per-example NLL.

    ``constant(y, **settings)`` is what the loss dropped, per example (log y! for
    counts), so that loss + constant is the full negative log-likelihood; ``expected(f, f̂, **settings)``
    is E_{y~Pr(·|f̂)} ℓ(f, y) up to constants, whose Hessian at f = f̂ is the Fisher
    information; ``deviance`` and ``pearson`` give the per-example unit deviance and
    squared Pearson residual from the model outputs (numpy), or are None.
    """

    constant: Callable[..., float]
    expected: Callable[..., jax.Array]
    deviance: Callable[..., np.ndarray] | None = None
    pearson: Callable[..., np.ndarray] | None = None


def _normal_expected(f, fhat, sigma):
    r = f - fhat
    return r * r if sigma is None else r * r / (2.0 * sigma * sigma)


def _poisson_expected(f, fhat, link, full):
    rate_hat = jnp.exp(fhat) if link == "exp" else jax.nn.softplus(fhat)
    return poisson(link).nll(f, rate_hat, link=link, full=False)


def _poisson_deviance(f, y, link, full):
    mu = _rate(f, link)
    return 2.0 * (_xlogy(y, y / mu) - (y - mu))


def _poisson_pearson(f, y, link, full):
    mu = _rate(f, link)
    return (y - mu) ** 2 / mu


def _bernoulli_expected(f, fhat):
    return jax.nn.softplus(f) - jax.nn.sigmoid(fhat) * f


def _bernoulli_deviance(f, y):
    return 2.0 * (np.logaddexp(0.0, f) - y * f)


def _bernoulli_pearson(f, y):
    p = _sigmoid(f)
    return (y - p) ** 2 / (p * (1.0 - p))


def _categorical_expected(f, fhat):
    return jax.nn.logsumexp(f, axis=1) - jnp.sum(jax.nn.softmax(fhat, axis=1) * f, axis=1)


def _categorical_deviance(f, y):
    logp = f - np.log(np.sum(np.exp(f - f.max(axis=1, keepdims=True)), axis=1, keepdims=True)) - f.max(
        axis=1, keepdims=True)
    return -2.0 * logp[np.arange(len(y)), y.astype(int)]


def _categorical_pearson(f, y):
    p = _softmax(f)
    onehot = np.zeros_like(p)
    onehot[np.arange(len(y)), y.astype(int)] = 1.0
    return np.sum((onehot - p) ** 2 / p, axis=1)


def _hetero_expected(f, fhat, link):
    mu, raw = f[:, 0], f[:, 1]
    mu_hat, raw_hat = fhat[:, 0], fhat[:, 1]
    if link == "softplus":
        var, var_hat = jax.nn.softplus(raw) ** 2, jax.nn.softplus(raw_hat) ** 2
    else:
        var, var_hat = raw * raw, raw_hat * raw_hat
    return 0.5 * jnp.log(var) + ((mu - mu_hat) ** 2 + var_hat) / (2.0 * var)


def _von_mises_expected(f, fhat, kappa, full):
    mean_resultant = i1e(kappa) / i0e(kappa)  # E cos(y - μ̂) = I1(κ)/I0(κ)
    return -kappa * mean_resultant * jnp.cos(jnp.reshape(f, (-1,)) - jnp.reshape(fhat, (-1,)))


def _none(y, **settings) -> np.ndarray:
    return np.zeros(len(y))


def _poisson_constant(y, link, full) -> np.ndarray:
    return np.zeros(len(y)) if full else np.asarray(gammaln(jnp.asarray(y) + 1.0), dtype=float)


def _von_mises_constant(y, kappa, full) -> np.ndarray:
    return np.full(len(y), 0.0 if full else float(np.log(2.0 * np.pi) + np.log(i0e(kappa)) + kappa))


FAMILIES: dict[str, _Family] = {
    "normal": _Family(_none, _normal_expected,
                      lambda f, y, sigma: (y - f) ** 2, lambda f, y, sigma: (y - f) ** 2),
    "poisson": _Family(_poisson_constant, _poisson_expected, _poisson_deviance, _poisson_pearson),
    "bernoulli": _Family(_none, _bernoulli_expected, _bernoulli_deviance, _bernoulli_pearson),
    "categorical": _Family(_none, _categorical_expected, _categorical_deviance, _categorical_pearson),
    "hetero_normal": _Family(_none, _hetero_expected),
    "von_mises": _Family(_von_mises_constant, _von_mises_expected),
}


def _least_squares(loss: Loss) -> bool:
    """The slides' least squares: the normal likelihood with σ unknown (estimated from the fit)."""
    return loss.name == "normal" and dict(loss.settings).get("sigma") is None


# -- the likelihood a fit minimised -----------------------------------------------------------


@dataclass(frozen=True)
class _Weighted:
    """θ -> Σ_i w_i ℓ(f_i(θ), y_i): the summed loss, each example by its weight."""

    objective: Objective

    def value(self, theta, x, y, w):
        return jnp.sum(w * self.objective.per_example(theta, x, y))


@dataclass(frozen=True)
class _Expected:
    """θ -> Σ_i w_i E_{y ~ Pr(·|f̂_i)} ℓ(f_i(θ), y): its Hessian at θ̂ is the Fisher information."""

    model: Model
    loss: Loss

    def value(self, theta, x, fhat, w):
        f = self.model(x, self.model.unravel(theta))
        f = f[:, 0] if f.ndim == 2 and self.loss.outputs == 1 else f
        return jnp.sum(w * FAMILIES[self.loss.name].expected(f, fhat, **dict(self.loss.settings)))


@dataclass(frozen=True)
class _Constrained:
    """u -> L(base + basis·u): the objective on an affine subspace (a profile's inner problem)."""

    objective: Any

    def value(self, u, base, basis, *args):
        return self.objective.value(base + basis @ u, *args)


@dataclass(frozen=True)
class Likelihood:
    """The negative log-likelihood a fit minimised, in its working coordinates.

    ``objective.per_example(θ', x, y)`` are the losses in working coordinates θ', summed
    with the ``weights`` w_i (None: all 1); the
    reported parameters are θ = A θ' with A = ``transform`` (None: θ' = θ). A fit that
    standardised its inputs works in standardised coordinates, where the Hessian is
    well conditioned, and reports on the original scale through A. ``names`` are the
    reported scalar names; ``intercept`` says whether R² is centred (None: yes).
    ``canonical`` says the Fisher information is known to equal the observed one.
    """

    objective: Objective
    x: Any
    y: Any
    names: tuple[str, ...]
    transform: np.ndarray | None = None
    intercept: bool | None = None
    canonical: bool = False
    weights: Any = None

    @property
    def loss(self) -> Loss:
        return self.objective.loss

    @property
    def summed(self) -> _Weighted:
        """The weighted sum of the losses, ``summed.value(θ', *args)``."""
        return _Weighted(self.objective)

    @property
    def w(self) -> jax.Array:
        return jnp.ones(len(self.y)) if self.weights is None else jnp.asarray(self.weights, dtype=jnp.float64)

    @property
    def args(self) -> tuple[Any, Any, Any]:
        """The data arguments of ``summed.value``: (x, y, w)."""
        return self.x, self.y, self.w

    @property
    def size(self) -> int:
        return len(self.names)

    def matrix(self) -> np.ndarray:
        return np.eye(self.size) if self.transform is None else np.asarray(self.transform, float)


def _single(f: jax.Array) -> jax.Array:
    return f[:, 0] if f.ndim == 2 and f.shape[1] == 1 else f


def _jacobian(model: Model, theta: jax.Array, x: jax.Array) -> jax.Array:
    """∂f_i/∂θ_j of the model outputs, (N, P): forward mode for tall Jacobians, reverse for wide ones."""
    def outputs(t):
        return _single(model(x, model.unravel(t)))

    rows = jax.eval_shape(outputs, theta).shape[0]  # x may be a tuple (a design and its offset)
    mode = jax.jacfwd if rows >= theta.shape[0] else jax.jacrev
    return mode(outputs)(theta)


@lru_cache(maxsize=64)
def _evaluate(summed: _Weighted, expected: _Expected | None, jacobian: bool):
    """One compiled pass at θ: L, ∇L, ∇²L, the model outputs f and, unless not asked for, the
    Fisher information and the Jacobian of f.

    One function rather than six: on small problems compiling costs more than running.
    """
    vg = jax.value_and_grad(summed.value)
    hess = jax.hessian(summed.value)
    fisher = None if expected is None else jax.hessian(expected.value)
    model = summed.objective.model

    def run(theta, x, y, w):
        value, grad = vg(theta, x, y, w)
        f = model(x, model.unravel(theta))
        info = None
        if fisher is not None:
            fhat = jax.lax.stop_gradient(f[:, 0] if f.ndim == 2 and expected.loss.outputs == 1 else f)
            info = fisher(theta, x, fhat, w)
        jac = _jacobian(model, theta, x) if jacobian else None
        return value, grad, hess(theta, x, y, w), f, info, jac

    return jax.jit(run)


# -- statistics -------------------------------------------------------------------------------


@dataclass(frozen=True)
class RowSums:
    """The sums over the examples that `statistics` is made of, at one point θ'.

    ``value``, ``grad``, ``hess``: L = Σ w ℓ and its derivatives; ``fisher``: the Hessian of
    the expected loss Σ w E ℓ (None where the link is canonical, or for the normal loss);
    ``constant``: Σ w c(y) of the constants the loss dropped (log y! for counts);
    ``deviance``, ``pearson``: Σ w of the unit deviances and squared Pearson residuals (None
    where the likelihood has none). For the normal loss: ``rss`` = Σ w r², ``tss`` =
    Σ w (y - ȳ)² about a centre ȳ fixed beforehand (the weighted mean, 0 without an
    intercept), ``log_w`` = Σ log w, and, where the examples are not kept, ``gram`` = JᵀWJ,
    ``jwr`` = JᵀW r and ``wf2`` = Σ w f². Sums over disjoint parts of the data add up
    (``a + b``), so they can be computed part by part, on a cluster's partitions, and combined.
    """

    n: int
    value: float
    grad: np.ndarray
    hess: np.ndarray
    fisher: np.ndarray | None = None
    constant: float = 0.0
    deviance: float | None = None
    pearson: float | None = None
    rss: float = 0.0
    tss: float = 0.0
    log_w: float = 0.0
    wf2: float = 0.0
    gram: np.ndarray | None = None
    jwr: np.ndarray | None = None

    def __add__(self, other: RowSums) -> RowSums:
        def add(a, b):
            return None if a is None or b is None else a + b

        return RowSums(**{f.name: add(getattr(self, f.name), getattr(other, f.name))
                          for f in dataclasses.fields(self)})


class _Rows(NamedTuple):
    """The examples behind in-memory `RowSums`: weights, Jacobian of the outputs (normal loss), targets, outputs."""

    w: np.ndarray
    jac: np.ndarray | None
    y: np.ndarray
    f: np.ndarray


def row_sums(objective: Objective, canonical: bool, theta: Any, x: Any, y: Any, w: Any, centre: float) -> RowSums:
    """The `RowSums` of ``objective`` on one part of the data, weights ``w`` (0 for padding rows),
    R²'s ``centre`` ȳ given (call under ``jax.enable_x64``).

    ``canonical`` says the link is canonical, so the Fisher information is the Hessian.
    """
    return _row_sums(objective, canonical, theta, (x, y, w, centre), keep_rows=False)[0]


def _row_sums(objective: Objective, canonical: bool, theta: Any, data: tuple, *,
              keep_rows: bool) -> tuple[RowSums, _Rows | None]:
    x, y, w, centre = data
    loss = objective.loss
    normal = loss.name == "normal"
    settings = dict(loss.settings)
    expected = None if canonical or normal else _Expected(objective.model, loss)
    value, grad, hess, f, fisher_info, jac = jax.device_get(
        _evaluate(_Weighted(objective), expected, normal)(jnp.asarray(theta, dtype=jnp.float64), x, y, w))
    hess, f, grad = (np.asarray(a, dtype=float) for a in (hess, f, grad))
    y = np.asarray(y, dtype=float)
    w = np.asarray(w, dtype=float)
    f1 = f[:, 0] if f.ndim == 2 and loss.outputs == 1 else f
    family = FAMILIES[loss.name]
    deviance = pearson = None
    if family.deviance is not None:
        with np.errstate(divide="ignore", invalid="ignore"):  # a fitted p of exactly 0 or 1 gives inf
            deviance = float(np.sum(w * family.deviance(f1, y, **settings)))
            pearson = float(np.sum(w * family.pearson(f1, y, **settings)))
    parts: dict[str, Any] = {}
    if normal:
        parts = {"rss": float(np.sum(w * (y - f1) ** 2)), "tss": float(np.sum(w * (y - centre) ** 2)),
                 "log_w": float(np.sum(np.log(w[w > 0]))) if not keep_rows else float(np.sum(np.log(w)))}
        if not keep_rows:
            jac = np.asarray(jac, dtype=float)
            parts.update(gram=jac.T @ (w[:, None] * jac), jwr=jac.T @ (w * (y - f1)), wf2=float(np.sum(w * f1 * f1)))
    sums = RowSums(n=int(np.count_nonzero(w)) if not keep_rows else len(y), value=float(value), grad=grad, hess=hess,
                   fisher=None if fisher_info is None else np.asarray(fisher_info, dtype=float),
                   constant=float(np.sum(w * family.constant(y, **settings))), deviance=deviance, pearson=pearson,
                   **parts)
    return sums, (_Rows(w, jac, y, f1) if keep_rows else None)



def infer(
    result: FitResult,
    model: Model | None = None,
    loss: Loss | None = None,
    data: Dataset | tuple[Any, Any] | None = None,
    *,
    level: float = 0.95,
    profile: Sequence[str] | str = (),
    stationary_tol: float = STATIONARY_TOL,
    covariance: str = "auto",
) -> FitResult:
    """``result`` with its `Inference` attached, for a fit of ``model`` and ``loss`` to ``data``.

    ``model``, ``loss`` and ``data`` default to the ones the fit ran on
    (``result.source``); a result read from JSON has none, so pass them. Works for any
    fit of `gradfit.fit` (the reduction it used does not matter: inference is on the
    summed negative log-likelihood). The fit's settings say which parameters were held
    fixed or ended at a bound, and whether its σ_i are absolute (``absolute_sigma``).
    ``covariance`` is ``auto``, ``gauss-newton``, ``observed`` or ``fisher`` (module
    docstring). ``profile`` names parameters (or ``"all"``) to get profile-likelihood
    intervals for. At a point that is not stationary the standard errors are None and
    ``inference.message`` says why.
    """
    model, loss, data = _sources(result, model, loss, data)
    if result.status == "diverged":
        raise GradfitError(
            f"the fit diverged ({result.stopped}): there are no uncertainties at parameters where the loss "
            "overflows; refit with a smaller learning rate or another optimiser, then call infer"
        )
    if not (np.all(np.isfinite(result.x)) and np.isfinite(result.loss)):
        raise GradfitError(
            "the fit ended at non-finite parameters or loss: no uncertainties there; refit with a smaller "
            "learning rate or another optimiser, then call infer"
        )
    if tuple(result.param_names) != tuple(model.param_names):
        raise GradfitError(
            f"the result has parameters {', '.join(result.param_names)}; model {model.name!r} has "
            f"{', '.join(model.param_names)}: infer needs the model the result was fitted with"
        )
    settings = result.settings or {}
    excluded = {name: "fixed" for name in settings.get("fixed") or {}}
    excluded.update({name: f"at {side} bound" for name, side in (settings.get("at_bound") or {}).items()
                     if name not in excluded})
    stats = evaluate(model, loss, data, result.params, level=level, profile=profile, stationary_tol=stationary_tol,
                     method=result.optimizer.get("name", ""), covariance=covariance,
                     absolute_sigma=bool(settings.get("absolute_sigma", False)), excluded=excluded)
    return dataclasses.replace(result, inference=stats)


def _sources(result: FitResult, model, loss, data):
    """The model, loss and data to use: those given (objects or names, as `gradfit.fit` takes
    them), else those the fit ran on."""
    if not isinstance(result, FitResult):
        what = "many starts (a MultiFit): infer one of them, e.g. gf.infer(fits.best)" if hasattr(
            result, "best") else type(result).__name__
        raise GradfitError(f"infer takes one fit's FitResult, not {what}")
    if isinstance(loss, str):
        loss = make_loss(loss)
    if data is not None and not isinstance(data, Dataset):
        data = as_dataset(data)
    if isinstance(model, str):
        if data is None and result.source is not None:
            data = result.source[2]
        model = linear_for(data) if model == "linear" and data is not None else make_model(model)
    if model is not None and loss is not None and data is not None:
        return model, loss, data
    if result.source is None:
        missing = ", ".join(name for name, value in (("model", model), ("loss", loss), ("data", data))
                            if value is None)
        raise GradfitError(
            f"this result does not carry the model, loss and data it was fitted with (a result read from JSON, "
            f"or made by hand): pass the {missing}, as gf.infer(result, model, loss, data)"
        )
    source_model, source_loss, source_data = result.source
    return (source_model if model is None else model, source_loss if loss is None else loss,
            source_data if data is None else data)


def evaluate(
    model: Model,
    loss: Loss,
    data: Dataset | tuple[Any, Any],
    params: Mapping[str, Any] | Sequence[float] | np.ndarray,
    *,
    level: float = 0.95,
    profile: Sequence[str] | str = (),
    stationary_tol: float = STATIONARY_TOL,
    method: str = "",
    covariance: str = "auto",
    absolute_sigma: bool = False,
    excluded: Mapping[str, str] | None = None,
) -> Inference:
    """The `Inference` of ``model`` and ``loss`` on ``data`` at ``params`` (a dict, or a flat vector).

    ``excluded`` maps scalar parameter names to why they are not estimated (``fixed``,
    ``at lower bound``, ``at upper bound``); ``absolute_sigma`` takes the weights of
    weighted least squares as known 1/σ_i².
    """
    if not isinstance(data, Dataset):
        data = Dataset(*data)
    theta = model.vector(params) if isinstance(params, Mapping) else np.asarray(params, dtype=float).ravel()
    if theta.shape != (model.size,):
        raise GradfitError(f"model {model.name!r} has {model.size} parameter values, not {theta.size}")
    if not np.all(np.isfinite(theta)):
        bad = [n for n, v in zip(model.flat_names, theta, strict=True) if not np.isfinite(v)]
        raise GradfitError(f"parameter(s) {', '.join(bad[:5])} are not finite: no statistics at such a point")
    with jax.enable_x64(True):
        lik = Likelihood(Objective(model, loss, "sum"), jnp.asarray(data.x), jnp.asarray(data.y), model.flat_names,
                         weights=data.weights)
        return statistics(lik, theta, level=level, profile=profile, stationary_tol=stationary_tol, method=method,
                          covariance=covariance, absolute_sigma=absolute_sigma, excluded=excluded)


@dataclass(frozen=True)
class _Scaled:
    """An information matrix M over the free parameters as D·C·D, C = V diag(w) Vᵀ with unit diagonal.

    ``u`` (Gauss-Newton only) spans the columns of √W J, for the Newton decrement.
    """

    d: np.ndarray
    w: np.ndarray  # ascending
    v: np.ndarray
    u: np.ndarray | None = None

    def singular(self) -> bool:
        return not self.w[0] > _rcond(len(self.w)) * max(float(np.max(np.abs(self.w))), 1e-300)

    def covariance(self) -> np.ndarray:
        cov = (self.v / self.w) @ self.v.T / np.outer(self.d, self.d)
        return 0.5 * (cov + cov.T)

    def decrement(self, grad: np.ndarray) -> float:
        """√(gᵀM⁻¹g), in the scaled coordinates where it is computed stably."""
        with np.errstate(over="ignore", invalid="ignore"):  # huge values give inf, refused by the caller
            return float(np.sqrt(max(float(np.sum((self.v.T @ (grad / self.d)) ** 2 / self.w)), 0.0)))


def _scale_of(m: np.ndarray) -> np.ndarray:
    d = np.sqrt(np.abs(np.diag(m)))
    return np.where(d > 0, d, 1.0)  # a zero diagonal: the row is flat (or the matrix indefinite)


def _from_matrix(m: np.ndarray) -> _Scaled:
    d = _scale_of(m)
    c = m / np.outer(d, d)
    w, v = np.linalg.eigh(0.5 * (c + c.T))
    return _Scaled(d, w, v)


def _from_jacobian(jw: np.ndarray, sigma2: float) -> _Scaled:
    """JᵀWJ/σ² from √W J, by the SVD of its column-scaled form: its condition is the square root of JᵀWJ's."""
    d = np.linalg.norm(jw, axis=0)
    d = np.where(d > 0, d, 1.0)
    js = jw / d
    if js.shape[0] < js.shape[1]:  # fewer outputs than parameters: singular, no SVD of full rank to take
        w, v = np.linalg.eigh(js.T @ js)
        return _Scaled(d / math.sqrt(sigma2), w, v)
    u, sv, vt = np.linalg.svd(js, full_matrices=False)
    order = np.argsort(sv)
    return _Scaled(d / math.sqrt(sigma2), sv[order] ** 2, vt[order].T, u[:, order])


def _form(covariance: str, loss: Loss) -> str:
    if covariance not in COVARIANCE_FORMS:
        raise GradfitError(f"unknown covariance {covariance!r}; use one of {', '.join(COVARIANCE_FORMS)}")
    normal = loss.name == "normal"
    if covariance == "auto" or (covariance == "fisher" and normal):
        return "gauss-newton" if normal else "observed"
    if covariance == "gauss-newton" and not normal:
        raise GradfitError(f"the Gauss-Newton covariance is for the normal loss (least squares), not the {loss.name} "
                           "loss; use covariance='observed' or 'fisher'")
    return covariance


def statistics(
    lik: Likelihood,
    theta: np.ndarray,
    *,
    level: float = 0.95,
    profile: Sequence[str] | str = (),
    stationary_tol: float = STATIONARY_TOL,
    method: str = "",
    covariance: str = "auto",
    absolute_sigma: bool = False,
    excluded: Mapping[str, str] | None = None,
    sums: RowSums | None = None,
) -> Inference:
    """The `Inference` of ``lik`` at working coordinates ``theta`` (call under ``jax.enable_x64``).

    ``sums`` are the `RowSums` at ``theta`` computed elsewhere (part by part, on a cluster's
    partitions, say): then ``lik.x`` and ``lik.y`` are not read, and the Gauss-Newton
    information comes from JᵀWJ rather than from the SVD of √W J; no profile intervals.
    """
    if not 0 < level < 1:
        raise GradfitError(f"the confidence level must be between 0 and 1, not {level}")
    loss = lik.loss
    if loss.name not in FAMILIES:
        raise GradfitError(f"gradfit has no inference for the {loss.name} loss yet")
    form = _form(covariance, loss)
    excluded = dict(excluded or {})
    unknown = [name for name in excluded if name not in lik.names]
    if unknown:
        raise GradfitError(f"no parameter named {', '.join(map(repr, unknown))} to leave out; the parameters are: "
                           f"{', '.join(lik.names[:20])}")
    if excluded and lik.transform is not None:
        raise GradfitError("parameters can be held fixed only where the fit works in the reported coordinates")
    settings = dict(loss.settings)
    least_squares = _least_squares(loss)
    normal = loss.name == "normal"
    absolute = bool(absolute_sigma) and least_squares and lik.weights is not None
    rows = None  # the examples' weights, Jacobian, targets and outputs, for the SVD of √W J
    if sums is None:
        w = np.asarray(lik.w, dtype=float)
        y = np.asarray(lik.y, dtype=float)
        centre = float(np.sum(w * y) / np.sum(w)) if lik.intercept is not False else 0.0
        sums, rows = _row_sums(lik.objective, lik.canonical, theta, (*lik.args, centre), keep_rows=True)
    elif profile:
        raise GradfitError("profile intervals refit the model on the data, which sums computed elsewhere do not "
                           "carry: ask for them where the data are in memory")
    value, grad, hess, fisher_info = sums.value, sums.grad, sums.hess, sums.fisher
    n = sums.n
    free = np.array([name not in excluded for name in lik.names])
    idx = np.nonzero(free)[0]
    k = sum(1 for name in lik.names if excluded.get(name) != "fixed")
    a = lik.matrix()
    deviance, pearson = sums.deviance, sums.pearson
    extra: dict[str, Any] = {}
    scale = 1.0  # σ̂² for least squares (the covariance is scaled by it), else 1
    info_factor = 1.0  # the information is H / info_factor (H: the Hessian of the summed loss)
    noise = 1.0  # σ² in the Gauss-Newton information JᵀWJ/σ²
    if normal:
        rss, tss = sums.rss, sums.tss
        dof = n - k
        sigma2 = rss / dof if dof > 0 else math.nan
        sigma = settings.get("sigma")
        extra = {
            "chisqr": rss if sigma is None else rss / sigma**2,
            "rsquared": 1.0 - rss / tss if tss > 0 else math.nan,
            "sigma": math.sqrt(sigma2) if dof > 0 else math.nan,
        }
        extra["redchi"] = extra["chisqr"] / dof if dof > 0 else math.nan
        log_w = sums.log_w
        if absolute:  # the σ_i known: the full normal log-likelihood, L = Σ w r² = 2 × its negative + const
            loglik = -0.5 * (rss + n * math.log(2.0 * math.pi) - log_w)
            info_factor = 2.0
        elif least_squares:  # WLS's: the normal log-likelihood at σ̂² = Σ w r²/n
            loglik = -0.5 * n * (math.log(2.0 * math.pi * rss / n) + 1.0) + 0.5 * log_w if rss > 0 else math.inf
            scale = noise = sigma2
            info_factor = 2.0 * sigma2  # L = Σ w r² = 2σ̂² × (normal NLL) + const
        else:
            loglik = -0.5 * rss / sigma**2 - n * math.log(sigma) - 0.5 * n * math.log(2.0 * math.pi) + 0.5 * log_w
            noise = sigma**2
    else:
        loglik = -(float(value) + sums.constant)
    aic = 2.0 * k - 2.0 * loglik
    bic = k * math.log(n) - 2.0 * loglik
    dist = "t" if least_squares and not absolute else "z"
    label = form
    if form == "gauss-newton" and absolute:
        label = "gauss-newton, absolute sigma"
    elif form == "gauss-newton" and not least_squares:
        label = "gauss-newton, fixed sigma"

    base = dict(names=lik.names, n=n, k=k, loss=loss.describe(), loglik=loglik, aic=aic, bic=bic,
                deviance=deviance, pearson_chi2=pearson, level=level, method=method, covariance_form=label,
                weighted=lik.weights is not None, df=n - k if dist == "t" else None, dist=dist, excluded=excluded,
                **{key: float(v) for key, v in extra.items()})
    grad_reported = np.linalg.solve(a.T, grad)  # ∂L/∂θ = A⁻ᵀ ∂L/∂θ'
    gnorm = float(np.sqrt(np.sum(grad_reported[idx] ** 2)))

    def refuse(message: str, decrement: float = math.nan) -> Inference:
        return Inference(**base, stationary=False, message=message, decrement=decrement, grad_norm=gnorm)

    finite = np.all(np.isfinite(hess)) and np.all(np.isfinite(grad)) and np.isfinite(loglik)
    if not (finite and (rows is None or rows.jac is None or np.all(np.isfinite(rows.jac)))
            and (sums.gram is None or np.all(np.isfinite(sums.gram)))):
        return refuse("the likelihood, its gradient or its Hessian is not finite here: no uncertainties")
    if least_squares and not absolute and not n > k:
        return refuse(f"{n} examples for {k} parameters leave no degrees of freedom to estimate σ: "
                      "no uncertainties")
    if len(idx) == 0:
        return refuse("every parameter is held fixed: there is nothing to estimate")

    # Whatever the form, the point must be a minimum: the Hessian, scaled, has no negative eigenvalue.
    observed = _from_matrix(0.5 * (hess + hess.T)[np.ix_(idx, idx)] / info_factor)
    top = max(float(np.max(np.abs(observed.w))), 1e-300)
    negative = observed.w < -_rcond(len(idx)) * top
    if negative.any():
        names = _involved(observed, observed.v[:, negative], a, idx, lik.names)
        return refuse("the Hessian of the negative log-likelihood is not positive definite: this is a saddle point "
                      f"or a maximum, not a minimum ({', '.join(names)}); no uncertainties")
    gauss_newton = None
    if normal and rows is not None:
        gauss_newton = _from_jacobian(np.sqrt(rows.w)[:, None] * np.asarray(rows.jac, dtype=float)[:, idx], noise)
    elif normal:  # JᵀWJ summed over parts: the same matrix, its condition squared (fine in standardised coordinates)
        gauss_newton = _from_matrix(sums.gram[np.ix_(idx, idx)] / noise)
    if form == "gauss-newton":
        info, what = gauss_newton, "the Gauss-Newton information JᵀWJ"
        why = "the model's outputs do not change along a combination of them"
    elif form == "fisher":
        fi = hess if fisher_info is None else np.asarray(fisher_info, dtype=float)
        info, what = _from_matrix(0.5 * (fi + fi.T)[np.ix_(idx, idx)] / info_factor), "the Fisher information"
        why = "the expected likelihood is flat along a combination of them"
    else:
        info, what = observed, "the Hessian of the negative log-likelihood"
        why = "the likelihood is flat along a combination of them"
    if info.singular():
        flat = info.w <= _rcond(len(idx)) * max(float(np.max(np.abs(info.w))), 1e-300)
        names = _involved(info, info.v[:, flat], a, idx, lik.names)
        return refuse(f"{what} is singular: {why} ({', '.join(names)}); these parameters are not identified here: "
                      "no uncertainties")
    floor = 0.0  # the decrement that rounding alone can cause
    if info is gauss_newton and rows is not None:  # ‖Uᵀ√W r‖/σ: the residuals' reach along J, in standard errors
        decrement = float(np.linalg.norm(info.u.T @ (np.sqrt(rows.w) * (rows.y - rows.f))) / math.sqrt(noise))
        # each output is computed to a few ulps: a near-perfect fit (NIST's Lanczos1, σ̂ ≈ 1e-13)
        # cannot get its residuals' projection below that
        floor = 16.0 * float(np.finfo(float).eps) * float(np.linalg.norm(np.sqrt(rows.w) * rows.f)) / math.sqrt(noise)
    elif info is gauss_newton:  # the same, √(rᵀWJ (JᵀWJ)⁻¹ JᵀWr)/σ, from the sums
        decrement = info.decrement(sums.jwr[idx] / noise)
        floor = 16.0 * float(np.finfo(float).eps) * math.sqrt(sums.wf2) / math.sqrt(noise)
    else:
        decrement = info.decrement(grad[idx] / info_factor)
    if not np.isfinite(decrement):
        return refuse("the likelihood, its gradient or its Hessian overflows here: no uncertainties")
    if not decrement <= max(stationary_tol, floor):
        return refuse(
            f"the fit is not at a stationary point: the gradient norm is {gnorm:.3g} and a Newton step "
            f"would move the parameters by {decrement:.3g} standard errors (tolerance {stationary_tol:g}); "
            "no uncertainties are reported. Fit longer or with a smaller tol, or finish with Newton's method "
            "(gradfit.glm for regression models)",
            decrement,
        )

    cov = _reported(info.covariance(), a, idx, lik.size, lik.transform is not None)
    stderr = np.sqrt(np.diag(cov))
    alternative = None
    if form == "observed" and gauss_newton is not None:
        alternative = gauss_newton
    elif form == "observed" and fisher_info is not None:
        m_fisher = 0.5 * (fisher_info + fisher_info.T)[np.ix_(idx, idx)] / info_factor
        m_observed = 0.5 * (hess + hess.T)[np.ix_(idx, idx)] / info_factor
        # reported only where it differs from the observed information, compared scale-free
        if np.max(np.abs(m_fisher - m_observed) / np.outer(observed.d, observed.d)) > 1e-8:
            fisher = _from_matrix(m_fisher)
            alternative = fisher if fisher.w[0] > 0 else None
    covariance_fisher = None
    if alternative is not None and not alternative.singular():
        covariance_fisher = _reported(alternative.covariance(), a, idx, lik.size, lik.transform is not None)
    theta_reported = a @ np.asarray(theta)
    with np.errstate(invalid="ignore"):  # excluded parameters: NaN throughout
        tvalues = theta_reported / stderr
    law = distributions.t(n - k) if dist == "t" else distributions.norm()
    q = float(law.ppf(0.5 + level / 2.0))
    pvalues = 2.0 * law.sf(np.abs(tvalues))
    wald = np.column_stack([theta_reported - q * stderr, theta_reported + q * stderr])
    stats = Inference(**base, stationary=True, message="", decrement=decrement, grad_norm=gnorm,
                      stderr=stderr, covariance=cov, covariance_fisher=covariance_fisher, scale=scale, wald=wald,
                      tvalues=tvalues, pvalues=pvalues)
    wanted = _wanted(profile, lik.names, excluded)
    if wanted:
        intervals = {name: profile_interval(lik, theta, name, level=level, stats=stats) for name in wanted}
        stats = dataclasses.replace(stats, profile=intervals)
    return stats


def _reported(cov_free: np.ndarray, a: np.ndarray, idx: np.ndarray, size: int, transformed: bool) -> np.ndarray:
    """The covariance of the reported parameters: A·cov·Aᵀ, or NaN rows for the parameters left out."""
    if transformed:  # no parameter is left out where the fit works in other coordinates
        cov = a @ cov_free @ a.T
        return 0.5 * (cov + cov.T)
    cov = np.full((size, size), np.nan)
    cov[np.ix_(idx, idx)] = cov_free
    return cov


def _involved(info: _Scaled, directions: np.ndarray, a: np.ndarray, idx: np.ndarray,
              names: Sequence[str]) -> list[str]:
    """The parameters that move along ``directions`` (columns, in the scaled free coordinates).

    Each direction is mapped to the reported parameters and measured in each one's
    own scale (√ of its diagonal information), so the answer does not depend on units.
    """
    if len(idx) < len(names):
        moves = directions / info.d[:, None]
        scales = info.d
        chosen = [names[i] for i in idx]
    else:
        moves = a @ (directions / info.d[:, None])
        a_inv = np.linalg.inv(a)
        m = info.d[:, None] * (info.v * info.w) @ info.v.T * info.d
        scales = _scale_of(a_inv.T @ m @ a_inv)
        chosen = list(names)
    weight = np.max(np.abs(moves) * scales[:, None], axis=1)
    weight = weight / max(float(weight.max()), 1e-300)
    return [chosen[j] for j in np.nonzero(weight >= 0.1)[0]]


def _wanted(profile, names, excluded=None) -> list[str]:
    excluded = excluded or {}
    if isinstance(profile, str):
        profile = [n for n in names if n not in excluded] if profile == "all" else [profile]
    unknown = [p for p in profile if p not in names]
    if unknown:
        raise GradfitError(
            f"no parameter named {', '.join(map(repr, unknown))} to profile; the parameters are: "
            f"{', '.join(names[:20])}{' ...' if len(names) > 20 else ''}"
        )
    left_out = [p for p in profile if p in excluded]
    if left_out:
        raise GradfitError(f"no profile interval for {', '.join(f'{p} ({excluded[p]})' for p in left_out)}: "
                           "only the parameters estimated freely have one")
    return list(profile)


# -- profile likelihood -----------------------------------------------------------------------


def profile_interval(
    lik: Likelihood, theta: np.ndarray, name: str, *, level: float = 0.95, stats: Inference | None = None,
) -> tuple[float, float]:
    """The profile-likelihood interval of parameter ``name`` at confidence ``level``.

    The profile is P(t) = min L(θ) over θ with θ_name = t (the other free parameters
    re-fitted by Newton at every t; those in ``stats.excluded`` stay where they are);
    the interval is {t : D(t) ≤ z²} with D(t) = 2(P(t) - L(θ̂)), or n log(χ²(t)/χ²(θ̂))
    for least squares (σ profiled out too; with absolute σ, χ²(t) - χ²(θ̂)). Each end is
    found by a secant iteration on the signed root ±√D(t), which is nearly linear in t,
    started from the Wald end. An end where D never reaches z² (a likelihood that
    flattens out, as under separation) is ±inf.
    """
    stats = stats or statistics(lik, theta, level=level)
    if stats.stderr is None:
        raise GradfitError(f"no profile interval for {name!r}: {stats.message}")
    _wanted([name], lik.names, stats.excluded)
    j = list(lik.names).index(name)
    a = lik.matrix()
    row = a[j]
    # the free subspace (working coordinates), and within it the directions that keep θ_name
    span = np.eye(lik.size)[:, [i for i, n in enumerate(lik.names) if n not in stats.excluded]]
    theta = np.asarray(theta, dtype=float)
    held = theta - span @ (span.T @ theta)  # the parameters left out, in place; 0 elsewhere
    r = row @ span
    q, _ = np.linalg.qr(r[:, None], mode="complete")
    basis = span @ q[:, 1:]
    least_squares = _least_squares(lik.loss)
    absolute = "absolute" in stats.covariance_form
    summed = lik.summed
    inner = _Constrained(summed)
    best = float(newton.value_and_grad(summed)(jnp.asarray(theta), *lik.args)[0])
    centre = float(row @ theta)
    offset = float(row @ held)
    se = float(stats.stderr[j])
    # value_scale that makes Newton's decrement read in standard errors: L = Σ w r² is 2σ̂² times the NLL
    scale = 1.0 / (2.0 * stats.scale) if least_squares else 1.0
    n = stats.n
    z = float(distributions.norm.ppf(0.5 + level / 2.0))
    along = span @ r / float(r @ r)
    state = {"u": basis.T @ theta}

    def signed_root(t: float) -> float:
        base = held + along * (t - offset)
        out = newton.minimize(inner, state["u"], (jnp.asarray(base), jnp.asarray(basis), *lik.args),
                              value_scale=scale, tol=1e-10, max_iter=200)
        if np.all(np.isfinite(out.theta)):
            state["u"] = out.theta
        if least_squares and absolute:
            stat = out.value - best
        elif least_squares:
            stat = n * math.log(out.value / best) if best > 0 else math.inf
        else:
            stat = 2.0 * (out.value - best)
        return math.copysign(math.sqrt(max(stat, 0.0)), t - centre)

    ends = []
    for sign in (-1.0, 1.0):
        state["u"] = basis.T @ theta
        ends.append(_solve_end(signed_root, centre, sign, z, se))
    return ends[0], ends[1]


def _solve_end(signed_root: Callable[[float], float], centre: float, sign: float, z: float, se: float) -> float:
    """The t on one side of ``centre`` where the signed root reaches ``sign·z``.

    Secant steps outwards (from the centre, where the root is 0) until the end is
    bracketed, then regula falsi inside the bracket; the root is nearly linear in t, so
    a few profile fits suffice. Beyond 10⁶ standard errors the end is taken as infinite.
    """
    target = sign * z
    inside = (centre, 0.0)
    outside = None
    t = centre + sign * z * se
    for _ in range(100):
        r = signed_root(t)
        if not math.isfinite(r):
            r = target * 1e6  # past a region where the likelihood is not finite: outside
        if abs(r - target) <= 1e-9 * z:
            return t
        previous = inside
        if sign * (r - target) > 0:
            outside = (t, r)
        else:
            inside = (t, r)
        if outside is None:
            step = t - centre
            if abs(step) > 1e6 * se:
                return sign * math.inf
            (t0, r0), (t1, r1) = previous, inside
            slope = (r1 - r0) / (t1 - t0) if t1 != t0 else 0.0
            guess = t1 + (target - r1) / slope if sign * slope > 0 else math.nan
            far = centre + 4.0 * step
            t = guess if math.isfinite(guess) and sign * (guess - far) < 0 else far
        else:
            (ti, ri), (to, ro) = inside, outside
            if abs(to - ti) <= 1e-10 * se:
                return 0.5 * (ti + to)
            t = ti + (target - ri) * (to - ti) / (ro - ri)
            width = abs(to - ti)
            if not (min(ti, to) + 1e-3 * width < t < max(ti, to) - 1e-3 * width):
                t = 0.5 * (ti + to)
    return t


# -- predictions ------------------------------------------------------------------------------


class Prediction(NamedTuple):
    """The fitted model's outputs ``mean`` at new inputs, with an interval [``lower``, ``upper``].

    ``stderr`` is the standard error behind the interval: of ŷ as an estimate of the
    mean response (a confidence interval), or of a new observation there (a prediction
    interval).
    """

    mean: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    stderr: np.ndarray


#: The intervals `predict` gives.
INTERVALS = ("confidence", "prediction")


@lru_cache(maxsize=64)
def _outputs_and_jacobian(model: Model):
    def run(theta, x):
        return _single(model(x, model.unravel(theta))), _jacobian(model, theta, x)

    return jax.jit(run)


def predict(
    result: FitResult,
    x_new: Any,
    *,
    interval: str | None = None,
    level: float = 0.95,
    model: Model | None = None,
    sigma: Any = None,
) -> np.ndarray | Prediction:
    """The fitted model at ``x_new``: ŷ = f(x_new, θ̂) alone, or a `Prediction` with an interval.

    By the delta method, with g = ∂f/∂θ at x_new (the free parameters) and the
    covariance Σ of the fit's `Inference` (computed by `infer` first if the result has
    none): ``interval="confidence"`` bounds the mean response, var = gΣgᵀ;
    ``"prediction"`` bounds a new observation, var = gΣgᵀ + s², with s² = σ̂² for least
    squares (σ̂² σ_new² when the fit was weighted by relative σ_i: give the new points'
    ``sigma``), σ_new² with absolute σ_i, σ² for a normal loss with σ fixed. The
    quantile is Student's t with the fit's n - k degrees of freedom for least squares,
    the normal's otherwise. ``model`` is the fitted model, needed where the result does
    not carry it (a result read from JSON).
    """
    if interval not in (None, *INTERVALS):
        raise GradfitError(f"unknown interval {interval!r}; use 'confidence', 'prediction' or None")
    if not 0 < level < 1:
        raise GradfitError(f"the confidence level must be between 0 and 1, not {level}")
    if model is None:
        if result.source is None:
            raise GradfitError("this result does not carry its model (a result read from JSON, or made by hand): "
                               "pass it, as gf.predict(result, x_new, model=...)")
        model = result.source[0]
    if tuple(result.param_names) != tuple(model.param_names):
        raise GradfitError(f"the result has parameters {', '.join(result.param_names)}; model {model.name!r} has "
                           f"{', '.join(model.param_names)}: predict needs the model the result was fitted with")
    x = np.asarray(x_new, dtype=float)
    x = x[None] if x.ndim == 0 else x
    if not np.all(np.isfinite(x)):
        raise GradfitError("x_new holds NaN or inf: predictions need finite inputs")
    with jax.enable_x64(True):
        mean, jac = jax.device_get(_outputs_and_jacobian(model)(jnp.asarray(model.vector(result.params)),
                                                                jnp.asarray(x)))
    mean, jac = np.asarray(mean, dtype=float), np.asarray(jac, dtype=float)
    if interval is None:
        return mean
    if mean.ndim != 1:
        raise GradfitError(f"intervals are for models of one output per example; model {model.name!r} gives "
                           f"{mean.shape[1]}")
    inf = result.inference
    if inf is None:
        if result.source is None:
            raise GradfitError("this result has no inference, and does not carry the loss and data to compute it: "
                               "call gf.infer(result, model, loss, data) first")
        inf = infer(result, model).inference
    if inf.covariance is None:
        raise GradfitError(f"no interval: the fit has no covariance ({inf.message})")
    free = [j for j, name in enumerate(inf.names) if name not in inf.excluded]
    g = jac[:, free]
    variance = np.einsum("ij,jk,ik->i", g, inf.covariance[np.ix_(free, free)], g)
    if interval == "prediction":
        variance = variance + _noise_variance(result, inf, sigma, len(mean))
    law = distributions.t(inf.df) if inf.dist == "t" else distributions.norm()
    q = float(law.ppf(0.5 + level / 2.0))
    se = np.sqrt(np.maximum(variance, 0.0))
    return Prediction(mean, mean - q * se, mean + q * se, se)


def _noise_variance(result: FitResult, inf: Inference, sigma: Any, size: int) -> np.ndarray:
    """The variance of one new observation about the mean response, at each of ``size`` new points."""
    if not inf.loss.startswith("normal"):
        raise GradfitError(f"prediction intervals need a normal loss, not {inf.loss}: use interval='confidence' "
                           "for the model's output")
    if sigma is not None:
        sigma = np.broadcast_to(np.asarray(sigma, dtype=float), (size,))
        if not np.all(np.isfinite(sigma) & (sigma > 0)):
            raise GradfitError("sigma for the new points must be finite and > 0")
    fixed = _fixed_sigma(result, inf)
    if fixed is not None:  # σ known from the loss
        return np.full(size, fixed**2) if sigma is None else sigma**2
    if "absolute" in inf.covariance_form:
        if sigma is None:
            raise GradfitError("the fit took its σ_i as absolute: give the new points' own, predict(..., sigma=...)")
        return sigma**2
    if sigma is None and inf.weighted:
        raise GradfitError("the fit was weighted by relative σ_i: give the new points' own, predict(..., sigma=...); "
                           "the noise there is σ̂²σ_new²")
    return inf.scale * (np.ones(size) if sigma is None else sigma**2)


def _fixed_sigma(result: FitResult, inf: Inference) -> float | None:
    if result.source is not None:
        return dict(result.source[1].settings).get("sigma")
    found = re.search(r"sigma=([^,)]+)", inf.loss)
    return None if found is None else float(found.group(1))

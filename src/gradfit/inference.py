"""Inference at the optimum of a fit: covariance, standard errors, intervals, likelihood statistics.

At the maximum-likelihood estimate θ̂ of a negative log-likelihood L(θ) = -Σ log Pr(y_i | θ):

- observed information: H = ∇²L(θ̂), by autodiff; the covariance is H⁻¹;
- expected (Fisher) information: I = E_y[∇²L(θ̂)], the Hessian of Σ E_{y~Pr(·|θ̂)} ℓ(f_i(θ), y),
  which equals H for the canonical links of linear models (Poisson log, logistic,
  softmax, identity) and differs otherwise (Poisson softplus, nonlinear models);
- standard errors √diag(H⁻¹), correlations, Wald intervals θ̂ ± z·se;
- profile-likelihood intervals {t : 2(min_{θ_j = t} L - L(θ̂)) ≤ z²};
- log-likelihood with every constant (log y! for counts), deviance, Pearson χ², AIC = 2k - 2ℓ
  and BIC = k log n - 2ℓ, as statsmodels computes them;
- for the normal likelihood fitted by least squares (σ unknown): χ² = RSS, reduced χ² = RSS/(n-k),
  R², σ̂ = √(RSS/(n-k)), and the covariance scaled by σ̂², as lmfit and OLS do; the
  log-likelihood is OLS's, at σ̂² = RSS/n.

Uncertainties are refused at a point that is not stationary: the Newton decrement
λ = √(gᵀH⁻¹g), the distance to the optimum in standard errors, must be at most a
small tolerance, and H positive definite; otherwise `Inference.message` says why.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from statistics import NormalDist
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import gammaln, i0e, i1e

from . import newton
from .data import Dataset
from .errors import GradfitError
from .losses import Loss, poisson
from .models import Model
from .objective import Objective
from .result import FitResult, Inference

#: Default largest Newton decrement (in standard errors) at which a point counts as stationary.
STATIONARY_TOL = 1e-3


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

    ``constant(y, **settings)`` is what the loss dropped (Σ log y! for counts), so that
    loss + constant is the full negative log-likelihood; ``expected(f, f̂, **settings)``
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


def _none(y, **settings) -> float:
    return 0.0


def _poisson_constant(y, link, full) -> float:
    return 0.0 if full else float(np.sum(np.asarray(gammaln(jnp.asarray(y) + 1.0))))


def _von_mises_constant(y, kappa, full) -> float:
    return 0.0 if full else len(y) * float(np.log(2.0 * np.pi) + np.log(i0e(kappa)) + kappa)


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
class _Expected:
    """θ -> Σ_i E_{y ~ Pr(·|f̂_i)} ℓ(f_i(θ), y): its Hessian at θ̂ is the Fisher information."""

    model: Model
    loss: Loss

    def value(self, theta, x, fhat):
        f = self.model(x, self.model.unravel(theta))
        f = f[:, 0] if f.ndim == 2 and self.loss.outputs == 1 else f
        return jnp.sum(FAMILIES[self.loss.name].expected(f, fhat, **dict(self.loss.settings)))


@dataclass(frozen=True)
class _Constrained:
    """u -> L(base + basis·u): the objective on an affine subspace (a profile's inner problem)."""

    objective: Any

    def value(self, u, base, basis, *args):
        return self.objective.value(base + basis @ u, *args)


@dataclass(frozen=True)
class Likelihood:
    """The negative log-likelihood a fit minimised, in its working coordinates.

    ``objective.value(θ', x, y)`` is the summed loss in working coordinates θ'; the
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

    @property
    def loss(self) -> Loss:
        return self.objective.loss

    @property
    def size(self) -> int:
        return len(self.names)

    def matrix(self) -> np.ndarray:
        return np.eye(self.size) if self.transform is None else np.asarray(self.transform, float)


@lru_cache(maxsize=64)
def _evaluate(objective: Objective, expected: _Expected | None):
    """One compiled pass at θ: L, ∇L, ∇²L, the model outputs f and, unless None, the Fisher information.

    One function rather than five: on small problems compiling costs more than running.
    """
    vg = jax.value_and_grad(objective.value)
    hess = jax.hessian(objective.value)
    fisher = None if expected is None else jax.hessian(expected.value)

    def run(theta, x, y):
        value, grad = vg(theta, x, y)
        f = objective.model(x, objective.model.unravel(theta))
        info = None
        if fisher is not None:
            fhat = jax.lax.stop_gradient(f[:, 0] if f.ndim == 2 and expected.loss.outputs == 1 else f)
            info = fisher(theta, x, fhat)
        return value, grad, hess(theta, x, y), f, info

    return jax.jit(run)


# -- statistics -------------------------------------------------------------------------------


def infer(
    result: FitResult,
    model: Model,
    loss: Loss,
    data: Dataset | tuple[Any, Any],
    *,
    level: float = 0.95,
    profile: Sequence[str] | str = (),
    stationary_tol: float = STATIONARY_TOL,
) -> FitResult:
    """``result`` with its `Inference` attached, for a fit of ``model`` and ``loss`` to ``data``.

    Works for any fit of `gradfit.fit` (the reduction it used does not matter: inference
    is on the summed negative log-likelihood). ``profile`` names parameters (or
    ``"all"``) to get profile-likelihood intervals for. At a point that is not
    stationary the standard errors are None and ``inference.message`` says why.
    """
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
    stats = evaluate(model, loss, data, result.params, level=level, profile=profile, stationary_tol=stationary_tol,
                     method=result.optimizer.get("name", ""))
    return dataclasses.replace(result, inference=stats)


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
) -> Inference:
    """The `Inference` of ``model`` and ``loss`` on ``data`` at ``params`` (a dict, or a flat vector)."""
    if not isinstance(data, Dataset):
        data = Dataset(*data)
    theta = model.vector(params) if isinstance(params, Mapping) else np.asarray(params, dtype=float).ravel()
    if theta.shape != (model.size,):
        raise GradfitError(f"model {model.name!r} has {model.size} parameter values, not {theta.size}")
    if not np.all(np.isfinite(theta)):
        bad = [n for n, v in zip(model.flat_names, theta, strict=True) if not np.isfinite(v)]
        raise GradfitError(f"parameter(s) {', '.join(bad[:5])} are not finite: no statistics at such a point")
    with jax.enable_x64(True):
        lik = Likelihood(Objective(model, loss, "sum"), jnp.asarray(data.x), jnp.asarray(data.y), model.flat_names)
        return statistics(lik, theta, level=level, profile=profile, stationary_tol=stationary_tol, method=method)


def statistics(
    lik: Likelihood,
    theta: np.ndarray,
    *,
    level: float = 0.95,
    profile: Sequence[str] | str = (),
    stationary_tol: float = STATIONARY_TOL,
    method: str = "",
) -> Inference:
    """The `Inference` of ``lik`` at working coordinates ``theta`` (call under ``jax.enable_x64``)."""
    if not 0 < level < 1:
        raise GradfitError(f"the confidence level must be between 0 and 1, not {level}")
    loss = lik.loss
    if loss.name not in FAMILIES:
        raise GradfitError(f"gradfit has no inference for the {loss.name} loss yet")
    settings = dict(loss.settings)
    least_squares = _least_squares(loss)
    objective = lik.objective
    theta = jnp.asarray(theta, dtype=jnp.float64)
    expected = None if lik.canonical else _Expected(objective.model, loss)
    value, grad, hess, f, fisher_info = jax.device_get(_evaluate(objective, expected)(theta, lik.x, lik.y))
    hess, f, grad = (np.asarray(a, dtype=float) for a in (hess, f, grad))
    y = np.asarray(lik.y, dtype=float)
    n, k = len(y), lik.size
    a = lik.matrix()
    f1 = f[:, 0] if f.ndim == 2 and loss.outputs == 1 else f

    family = FAMILIES[loss.name]
    deviance = pearson = None
    if family.deviance is not None:
        with np.errstate(divide="ignore", invalid="ignore"):  # a fitted p of exactly 0 or 1 gives inf
            deviance = float(np.sum(family.deviance(f1, y, **settings)))
            pearson = float(np.sum(family.pearson(f1, y, **settings)))
    extra: dict[str, Any] = {}
    scale = 1.0  # σ̂² for least squares (the covariance is scaled by it), else 1
    info_factor = 1.0  # the information is H / info_factor (H: the Hessian of the summed loss)
    if loss.name == "normal":
        rss = float(np.sum((y - f1) ** 2))
        centre = y.mean() if lik.intercept is not False else 0.0
        tss = float(np.sum((y - centre) ** 2))
        dof = n - k
        sigma2 = rss / dof if dof > 0 else math.nan
        sigma = settings.get("sigma")
        extra = {
            "chisqr": rss if sigma is None else rss / sigma**2,
            "rsquared": 1.0 - rss / tss if tss > 0 else math.nan,
            "sigma": math.sqrt(sigma2) if dof > 0 else math.nan,
        }
        extra["redchi"] = extra["chisqr"] / dof if dof > 0 else math.nan
        if least_squares:
            loglik = -0.5 * n * (math.log(2.0 * math.pi * rss / n) + 1.0) if rss > 0 else math.inf
            scale, info_factor = sigma2, 2.0 * sigma2  # L = Σr² = 2σ² × (normal NLL) + const
        else:
            loglik = -float(value)
    else:
        loglik = -(float(value) + family.constant(y, **settings))
    aic = 2.0 * k - 2.0 * loglik
    bic = k * math.log(n) - 2.0 * loglik

    base = dict(names=lik.names, n=n, k=k, loss=loss.describe(), loglik=loglik, aic=aic, bic=bic,
                deviance=deviance, pearson_chi2=pearson, level=level, method=method,
                **{key: float(v) for key, v in extra.items()})
    grad_reported = np.linalg.solve(a.T, grad)  # ∂L/∂θ = A⁻ᵀ ∂L/∂θ'
    gnorm = float(np.sqrt(np.sum(grad_reported**2)))

    def refuse(message: str, decrement: float = math.nan) -> Inference:
        return Inference(**base, stationary=False, message=message, decrement=decrement, grad_norm=gnorm)

    if not (np.all(np.isfinite(hess)) and np.all(np.isfinite(grad)) and np.isfinite(loglik)):
        return refuse("the likelihood, its gradient or its Hessian is not finite here: no uncertainties")
    if least_squares and not n > k:
        return refuse(f"{n} examples for {k} parameters leave no degrees of freedom to estimate σ: "
                      "no uncertainties")
    info = 0.5 * (hess + hess.T) / info_factor
    w, v = np.linalg.eigh(info)
    top = max(float(np.max(np.abs(w))), 1e-300)
    if w[0] <= 1e-12 * top:
        bad = v[:, w <= 1e-12 * top]
        names = _involved(a @ bad, lik.names)
        kind = ("is not positive definite: this is a saddle point or a maximum, not a minimum"
                if w[0] < -1e-12 * top else "is singular: the likelihood is flat along a combination of them")
        return refuse(f"the Hessian of the negative log-likelihood {kind} ({', '.join(names)}); "
                      "these parameters are not identified here: no uncertainties")
    with np.errstate(over="ignore", invalid="ignore"):  # huge values give inf, refused below, not an error
        decrement = float(np.sqrt(max(grad @ np.linalg.solve(info, grad) / np.float64(info_factor) ** 2, 0.0)))
    if not np.isfinite(decrement):
        return refuse("the likelihood, its gradient or its Hessian overflows here: no uncertainties")
    if not decrement <= stationary_tol:
        return refuse(
            f"the fit is not at a stationary point: the gradient norm is {gnorm:.3g} and a Newton step "
            f"would move the parameters by {decrement:.3g} standard errors (tolerance {stationary_tol:g}); "
            "no uncertainties are reported. Fit longer or with a smaller tol, or finish with Newton's method "
            "(gradfit.glm for regression models)",
            decrement,
        )

    cov_w = (v / w) @ v.T
    cov = a @ cov_w @ a.T
    cov = 0.5 * (cov + cov.T)
    stderr = np.sqrt(np.diag(cov))
    fisher = None
    if fisher_info is not None:
        fi = np.asarray(fisher_info, dtype=float) / info_factor
        if not np.allclose(fi, info, rtol=1e-8, atol=1e-10 * top):
            fw, fv = np.linalg.eigh(0.5 * (fi + fi.T))
            if fw[0] > 1e-12 * max(float(np.max(np.abs(fw))), 1e-300):
                fisher = a @ ((fv / fw) @ fv.T) @ a.T
    z = NormalDist().inv_cdf(0.5 + level / 2.0)
    theta_reported = a @ np.asarray(theta)
    wald = np.column_stack([theta_reported - z * stderr, theta_reported + z * stderr])
    stats = Inference(**base, stationary=True, message="", decrement=decrement, grad_norm=gnorm,
                      stderr=stderr, covariance=cov, covariance_fisher=fisher, scale=scale, wald=wald)
    wanted = _wanted(profile, lik.names)
    if wanted:
        intervals = {name: profile_interval(lik, theta, name, level=level, stats=stats) for name in wanted}
        stats = dataclasses.replace(stats, profile=intervals)
    return stats


def _involved(directions: np.ndarray, names: Sequence[str]) -> list[str]:
    weight = np.max(np.abs(directions), axis=1)
    weight = weight / max(float(weight.max()), 1e-300)
    return [names[j] for j in np.nonzero(weight >= 0.1)[0]]


def _wanted(profile, names) -> list[str]:
    if isinstance(profile, str):
        profile = list(names) if profile == "all" else [profile]
    unknown = [p for p in profile if p not in names]
    if unknown:
        raise GradfitError(
            f"no parameter named {', '.join(map(repr, unknown))} to profile; the parameters are: "
            f"{', '.join(names[:20])}{' ...' if len(names) > 20 else ''}"
        )
    return list(profile)


# -- profile likelihood -----------------------------------------------------------------------


def profile_interval(
    lik: Likelihood, theta: np.ndarray, name: str, *, level: float = 0.95, stats: Inference | None = None,
) -> tuple[float, float]:
    """The profile-likelihood interval of parameter ``name`` at confidence ``level``.

    The profile is P(t) = min L(θ) over θ with θ_name = t (the other parameters
    re-fitted by Newton at every t); the interval is {t : D(t) ≤ z²} with
    D(t) = 2(P(t) - L(θ̂)), or n log(RSS(t)/RSS(θ̂)) for least squares (σ profiled out
    too). Each end is found by a secant iteration on the signed root ±√D(t), which is
    nearly linear in t, started from the Wald end. An end where D never reaches z²
    (a likelihood that flattens out, as under separation) is ±inf.
    """
    stats = stats or statistics(lik, theta, level=level)
    if stats.stderr is None:
        raise GradfitError(f"no profile interval for {name!r}: {stats.message}")
    j = list(lik.names).index(name)
    a = lik.matrix()
    row = a[j]
    q, _ = np.linalg.qr(row[:, None], mode="complete")
    basis = q[:, 1:]
    theta = np.asarray(theta, dtype=float)
    least_squares = _least_squares(lik.loss)
    objective = lik.objective
    inner = _Constrained(objective)
    best = float(newton.value_and_grad(objective)(jnp.asarray(theta), lik.x, lik.y)[0])
    centre = float(row @ theta)
    se = float(stats.stderr[j])
    # value_scale that makes Newton's decrement read in standard errors: L = Σr² is 2σ̂² times the NLL
    scale = 1.0 / (2.0 * stats.scale) if least_squares else 1.0
    n = stats.n
    z = NormalDist().inv_cdf(0.5 + level / 2.0)
    norm2 = float(row @ row)
    state = {"u": basis.T @ theta}

    def signed_root(t: float) -> float:
        base = row * (t / norm2)
        out = newton.minimize(inner, state["u"], (jnp.asarray(base), jnp.asarray(basis), lik.x, lik.y),
                              value_scale=scale, tol=1e-10, max_iter=200)
        if np.all(np.isfinite(out.theta)):
            state["u"] = out.theta
        if least_squares:
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

"""Regression models for every likelihood, fitted to the optimum on badly scaled data.

A generalised linear model predicts a distribution's parameter from a linear
predictor η = Xβ (+ offset) through a link:

| family | y | link (default first) | mean | loss |
|---|---|---|---|---|
| ``poisson`` | counts | ``exp``, ``softplus`` | λ = exposure · e^η (or · softplus η) | λ - y log λ (+ log y!) |
| ``bernoulli`` | 0 or 1 | ``logit`` | p = sigmoid(η) | softplus(η) - y η |
| ``categorical`` | K labels | ``softmax`` | p_k ∝ e^{η_k}, η_1 = 0 (baseline) | logsumexp(η) - η_y |
| ``normal`` | real | ``identity`` | μ = η | (η - y)², least squares |

How a fit reaches the optimum when columns differ in scale by many orders of
magnitude: it works in standardised coordinates z_j = (x_j - m_j)/s_j, where the
Hessian is well conditioned, and reports β = A θ' on the original scale (A exact, see
`gradfit.design.Scaling`). It minimises by damped Newton with the autodiff Hessian
(`gradfit.newton`); on large data (over 2^18 rows) the first steps run on a subsample
of 2^16 rows and the full-data steps use the subsample's Hessian scaled up, so a
step costs one pass over the data for the gradient (each step then gains a factor
of about 30 instead of squaring the error). It stops when the Newton decrement, the
distance to the optimum in standard errors, is at most ``tol`` (10⁻⁶). Given
an optimiser, the fit first runs `gradfit.fit` with it (in standardised coordinates)
and then polishes with Newton (``polish=False`` keeps where the optimiser got to).

`fit_glm` on a Dask DataFrame, or with ``scheduler=`` / ``workers=`` and Parquet files, runs
the same Newton fit on a cluster, each pass a map-reduce over the partitions
(`gradfit.glm_cluster`); `GLM._finish` reads the data only through its working object, in
memory (`_Working`) or on the workers.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from . import design as design_mod
from . import inference as inference_mod
from . import newton
from .data import Dataset, read_table
from .design import Design
from .errors import GradfitError, Interrupted, unknown_name
from .losses import Loss, _safe_log_softplus, bernoulli, categorical, normal, poisson
from .models import Model
from .objective import Objective
from .result import FitResult, History

SUBSAMPLE_ROWS = 1 << 16
SUBSAMPLE_ABOVE = 1 << 18
DEFAULT_TOL = 1e-6


class SeparationWarning(UserWarning):
    """The classes are (quasi-)separated: the maximum-likelihood estimate does not exist."""


# -- families ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Totals:
    """What a family's starting intercept needs from the data: sums over the rows.

    ``n`` rows, Σy, Σ offset and Σ e^offset (None without an offset), and for
    ``categorical`` the count of each class code. Sums of parts add up, so a cluster
    computes them partition by partition.
    """

    n: int
    sum_y: float
    sum_offset: float | None = None
    sum_exp_offset: float | None = None
    class_counts: np.ndarray | None = None

    @classmethod
    def of(cls, y: np.ndarray, offset: np.ndarray | None, classes: int = 0) -> Totals:
        """The totals of rows in memory (``classes``: how many class codes y holds, 0 if not categorical)."""
        counts = np.bincount(y.astype(int), minlength=classes).astype(float) if classes else None
        if offset is None:
            return cls(len(y), float(np.sum(y)), class_counts=counts)
        return cls(len(y), float(np.sum(y)), float(np.sum(offset)), float(np.sum(np.exp(offset))), counts)

    def __add__(self, other: Totals) -> Totals:
        def add(a, b):
            return None if a is None or b is None else a + b

        return Totals(self.n + other.n, self.sum_y + other.sum_y, add(self.sum_offset, other.sum_offset),
                      add(self.sum_exp_offset, other.sum_exp_offset), add(self.class_counts, other.class_counts))


@dataclass(frozen=True)
class Family:
    """One likelihood of a GLM: its links, target domain, loss and starting intercept (from `Totals`)."""

    name: str
    links: tuple[str, ...]
    loss: Callable[[str, float | None], Loss]
    start: Callable[[Totals, str, int], np.ndarray]
    canonical: tuple[str, ...]


def _poisson_start(totals, link, blocks):
    total = totals.sum_y
    if total <= 0:
        raise GradfitError("every count is zero: a Poisson model has no rate to fit (its log would be -inf)")
    rate = total / (totals.n if totals.sum_exp_offset is None else totals.sum_exp_offset)
    return np.array([math.log(rate) if link == "exp" else math.log(math.expm1(rate))])


def _mean_offset(totals) -> float:
    return 0.0 if totals.sum_offset is None else totals.sum_offset / totals.n


def _bernoulli_start(totals, link, blocks):
    p = totals.sum_y / totals.n
    if p in (0.0, 1.0):
        raise GradfitError(f"every label is {int(p)}: a logistic model has nothing to separate")
    return np.array([math.log(p / (1.0 - p)) - _mean_offset(totals)])


def _categorical_start(totals, link, blocks):
    counts = totals.class_counts
    return np.log(counts[1:] / counts[0]) - _mean_offset(totals)


def _normal_start(totals, link, blocks):
    return np.array([totals.sum_y / totals.n - _mean_offset(totals)])


FAMILIES: dict[str, Family] = {
    "poisson": Family("poisson", ("exp", "softplus"), lambda link, sigma: poisson(link), _poisson_start, ("exp",)),
    "bernoulli": Family("bernoulli", ("logit",), lambda link, sigma: bernoulli(), _bernoulli_start, ("logit",)),
    "categorical": Family("categorical", ("softmax",), lambda link, sigma: categorical(), _categorical_start,
                          ("softmax",)),
    "normal": Family("normal", ("identity",), lambda link, sigma: normal(sigma), _normal_start, ("identity",)),
}
#: Loss names (as `gradfit fit --loss` takes them) that are GLM families.
LOSS_FAMILY = {"poisson": "poisson", "bernoulli": "bernoulli", "categorical": "categorical", "normal": "normal"}


# -- the working model: standardised coefficients over columns stored one to a row ------------


def _linear_predictor(cols, center, scale, theta, n_cols, blocks, intercept):
    coef = jnp.reshape(theta, (blocks, n_cols + intercept))
    if intercept:
        w = coef[:, 1:] / scale
        c = coef[:, 0] - w @ center
    else:
        w = coef / scale
        c = jnp.zeros(blocks, coef.dtype)
    # w @ cols reads the columns in their stored order for η and for the gradient cols @ r;
    # cols.T @ w would have XLA copy the whole matrix into row order on every call.
    if blocks == 1:
        return w[0] @ cols + c[0]
    return (w @ cols).T + c


def _columns_fn(x, params, n_cols, blocks, intercept, softplus_exposure, classes):
    """f from x = (columns (D, I), centre (D,), scale (D,), offset or None, log exposure or None)."""
    cols, center, scale, offset, log_exposure = x
    eta = _linear_predictor(cols, center, scale, params["theta"], n_cols, blocks, intercept)
    return _outputs(eta, offset, log_exposure, softplus_exposure, classes)


def _rows_fn(x, params, n_cols, blocks, intercept, softplus_exposure, classes, extra):
    """The same f from rows of standardised columns z (I, D), then the offset and log exposure."""
    x = jnp.reshape(x, (x.shape[0], -1))  # a Dataset keeps one column as shape (I,)
    z = x[:, :n_cols]
    coef = jnp.reshape(params["theta"], (blocks, n_cols + intercept))
    eta = z @ (coef[:, 1:] if intercept else coef).T
    if intercept:
        eta = eta + coef[:, 0]
    eta = eta[:, 0] if blocks == 1 else eta
    offset = x[:, n_cols] if "offset" in extra else None
    log_exposure = x[:, -1] if "log_exposure" in extra else None
    return _outputs(eta, offset, log_exposure, softplus_exposure, classes)


def _outputs(eta, offset, log_exposure, softplus_exposure, classes):
    if offset is not None:
        eta = eta + (offset if eta.ndim == 1 else offset[:, None])
    if softplus_exposure:  # λ = exposure · softplus(η): f = log λ for the exp-link loss
        return log_exposure + _safe_log_softplus(eta)
    if classes:
        return jnp.concatenate([jnp.zeros((eta.shape[0], 1), eta.dtype), eta], axis=1)
    return eta


# -- the model ----------------------------------------------------------------------------------


def _breakdown_is_a_scale_problem(method):
    """Linear algebra that breaks down (a singular matrix, a division by zero) on a design of
    sane columns means values of an extreme scale: say so, and the fix, in one line."""

    @functools.wraps(method)
    def wrapped(*args, **kwargs):
        try:
            return method(*args, **kwargs)
        except (np.linalg.LinAlgError, ZeroDivisionError, FloatingPointError, OverflowError) as exc:
            raise GradfitError(
                f"the regression broke down numerically ({type(exc).__name__}: {exc}); a column or the target has "
                "values of an extreme scale (near 1e±300?): rescale it, e.g. to units where it is near 1"
            ) from None

    return wrapped


@dataclass(frozen=True, eq=False)
class GLM:
    """A regression model: a `Design`, targets y, a family and a link.

    Build one with `glm`. ``fit()`` returns a `FitResult` on the original scale, with
    its `Inference` attached. For ``categorical`` the targets are stored as codes
    0..K-1 of ``classes`` (sorted; the first is the baseline, whose linear predictor
    is 0), and the coefficients are named ``y=<label>:<column>``.
    """

    design: Design
    y: np.ndarray
    family: str = "poisson"
    link: str | None = None
    sigma: float | None = None
    classes: tuple[Any, ...] = ()
    y_name: str = "y"

    def __post_init__(self):
        if self.family not in FAMILIES:
            raise unknown_name("family", self.family, FAMILIES)
        fam = FAMILIES[self.family]
        link = fam.links[0] if self.link is None else self.link
        if link not in fam.links:
            raise unknown_name(f"{self.family} link", link, fam.links)
        object.__setattr__(self, "link", link)
        y = np.asarray(self.y)
        if y.ndim != 1 or len(y) != self.design.n_rows:
            raise GradfitError(f"y has shape {y.shape}; the design has {self.design.n_rows} rows, so y needs "
                               f"({self.design.n_rows},)")
        if self.family == "categorical":
            if not self.classes:
                classes, codes = np.unique(y, return_inverse=True)
                object.__setattr__(self, "classes", tuple(v.item() if hasattr(v, "item") else v for v in classes))
                y = codes
            if len(self.classes) < 2:
                raise GradfitError(f"every label is {self.classes[0]!r}: a categorical model needs two or more")
        if y.dtype.kind not in "biuf":  # text labels: say so and how to recode, not numpy's conversion error
            self.loss.check_targets(y, max(len(self.classes), 1), name=self.y_name)
        y = y.astype(float)
        if not np.all(np.isfinite(y)):
            raise GradfitError(f"{self.y_name} holds NaN or inf; drop or fill those rows first")
        self.loss.check_targets(y, max(len(self.classes), 1))
        if self.design.exposure is not None and self.family != "poisson":
            raise GradfitError("an exposure multiplies a count's rate, so it is for the poisson family; "
                               "use an offset for the linear predictor of other families")
        if self.sigma is not None and self.family != "normal":
            raise GradfitError(f"sigma is a setting of the normal family, not of {self.family}")
        y.setflags(write=False)
        object.__setattr__(self, "y", y)

    # the pieces ---------------------------------------------------------------------------

    @property
    def blocks(self) -> int:
        """Blocks of coefficients: K - 1 for categorical, else 1."""
        return len(self.classes) - 1 if self.family == "categorical" else 1

    @property
    def softplus_exposure(self) -> bool:
        return self.family == "poisson" and self.link == "softplus" and self.design.exposure is not None

    @property
    def loss(self) -> Loss:
        """The loss of the working model's outputs (the log-rate for a softplus rate with exposure)."""
        if self.softplus_exposure:
            return poisson("exp")
        return FAMILIES[self.family].loss(self.link, self.sigma)

    @property
    def names(self) -> tuple[str, ...]:
        if self.family != "categorical":
            return self.design.names
        return tuple(f"y={label}:{name}" for label in self.classes[1:] for name in self.design.names)

    @property
    def n_coef(self) -> int:
        return self.blocks * self.design.n_coef

    def describe(self) -> str:
        extra = f", sigma={self.sigma:g}" if self.sigma is not None else ""
        expo = ", exposure" if self.design.exposure is not None else ""
        off = ", offset" if self.design.offset is not None else ""
        return f"glm({self.family}, link={self.link}{extra}{expo}{off}; {self.n_coef} coefficients)"

    def _settings(self) -> dict[str, Any]:
        d = self.design
        return {"n_cols": d.columns.shape[0], "blocks": self.blocks, "intercept": d.intercept,
                "softplus_exposure": self.softplus_exposure, "classes": self.family == "categorical"}

    def _offsets(self) -> tuple[np.ndarray | None, np.ndarray | None]:
        """(additive offset of η, log exposure of a softplus rate), either None when absent."""
        d = self.design
        if self.softplus_exposure:
            return d.offset, np.log(d.exposure)
        return (d.log_offset() if self.family == "poisson" else d.offset), None

    def working_model(self) -> Model:
        """The model in standardised coordinates over columns stored one to a row."""
        settings = tuple(self._settings().items())
        return Model("glm", _columns_fn, (("theta", (self.n_coef,)),), settings)

    def _rows_model(self, extra: tuple[str, ...]) -> Model:
        settings = (*self._settings().items(), ("extra", extra))
        return Model("glm", _rows_fn, (("theta", (self.n_coef,)),), settings)

    def transform(self, scaling: design_mod.Scaling) -> np.ndarray:
        """A with β = A θ' for all blocks of coefficients."""
        return np.kron(np.eye(self.blocks), scaling.matrix)

    def _start(self, offset: np.ndarray | None) -> np.ndarray:
        classes = self.blocks + 1 if self.family == "categorical" else 0
        return self._start_from(Totals.of(self.y, offset, classes))

    def _start_from(self, totals: Totals) -> np.ndarray:
        """Standardised coefficients of the intercept-only fit (0 for every column)."""
        p = self.design.n_coef
        theta = np.zeros((self.blocks, p))
        if self.design.intercept:
            theta[:, 0] = FAMILIES[self.family].start(totals, self.link, self.blocks)
        return theta.ravel()

    # fitting ------------------------------------------------------------------------------

    @_breakdown_is_a_scale_problem
    def fit(
        self,
        optimizer: Any = None,
        *,
        steps: int | None = None,
        epochs: int | None = None,
        batch_size: int | None = None,
        tol: float = DEFAULT_TOL,
        max_iter: int = 100,
        init: Mapping[str, float] | Sequence[float] | None = None,
        polish: bool = True,
        seed: int = 0,
        inference: bool = True,
        profile: Sequence[str] | str = (),
        level: float = 0.95,
        progress: Any = None,
        history_every: int | None = None,
        checkpoint: str | Path | None = None,
        checkpoint_every: int | None = None,
        resume: str | Path | None = None,
    ) -> FitResult:
        """Fit by maximum likelihood; the result is on the original scale of the columns.

        Without ``optimizer``: damped Newton from the intercept-only fit, in standardised
        coordinates, until the Newton decrement is at most ``tol`` standard errors.
        With one (a gradfit optimizer or its name): `gradfit.fit` runs it first, for
        ``steps`` / ``epochs`` (with ``batch_size``), in standardised coordinates, and
        Newton polishes its end unless ``polish=False`` (then the result is where the
        optimiser got to, with standard errors only if that is stationary).
        ``history_every``, ``checkpoint``, ``checkpoint_every`` and ``resume`` go to
        that first-order run as in `gradfit.fit`; an `Interrupted` raised by it carries
        its result on the original scale. ``init`` is a start on the original scale.
        With ``inference`` the result carries standard errors and the likelihood
        statistics (and profile intervals for the names in ``profile``).
        """
        t0 = time.perf_counter()
        given = {"history_every": history_every, "checkpoint": checkpoint, "checkpoint_every": checkpoint_every,
                 "resume": resume}
        given = {k: v for k, v in given.items() if v is not None}
        if given and optimizer is None:
            raise GradfitError(f"{', '.join(given)} are settings of the first-order run: give an optimizer")
        with jax.enable_x64(True):
            work = _Working(self)
            before = None
            theta = work.start(init)
            if optimizer is not None:
                try:
                    before = work.first_order(optimizer, theta, steps=steps, epochs=epochs, batch_size=batch_size,
                                              seed=seed, tol=tol, progress=progress, **given)
                except Interrupted as exc:  # where it got to, in this model's coefficients
                    exc.result = work.result(exc.result.x, exc.result, [], tol, time.perf_counter() - t0)
                    raise
            return self._finish(work, theta, before, t0=t0, polish=optimizer is None or polish, tol=tol,
                                max_iter=max_iter, inference=inference, profile=profile, level=level)

    def _finish(self, work: _Working, theta: np.ndarray, before: FitResult | None, *, t0: float, polish: bool,
                tol: float, max_iter: int, inference: bool, profile: Sequence[str] | str,
                level: float) -> FitResult:
        """Newton from ``theta`` (or from where ``before`` ended) on ``work``'s data, the result, its inference.

        ``work`` is where the data are: in memory (`_Working`) or on a cluster's workers
        (`gradfit.glm_cluster`); everything here reads them only through it.
        """
        if before is not None:
            theta = before.x
        stages = []
        if polish:
            stages = work.newton(theta, tol=tol, max_iter=max_iter)
            theta = stages[-1].theta
        result = work.result(theta, before, stages, tol, time.perf_counter() - t0)
        separated = self._separation(work, theta)
        if inference:
            result = work.infer(result, theta, profile=profile, level=level, separated=separated)
        return result

    def infer(self, result: FitResult, *, profile: Sequence[str] | str = (), level: float = 0.95,
              stationary_tol: float = inference_mod.STATIONARY_TOL) -> FitResult:
        """``result`` (a fit of this model) with its `Inference` recomputed, e.g. with profile intervals."""
        if tuple(result.param_names) != self.names:
            raise GradfitError("the result's parameters are not this model's coefficients")
        with jax.enable_x64(True):
            work = _Working(self)
            theta = work.scaling_inverse(np.array([result.params[n] for n in self.names]))
            return work.infer(result, theta, profile=profile, level=level, stationary_tol=stationary_tol,
                              separated=self._separation(work, theta, warn=False))

    def _separation(self, work: _Working, theta: np.ndarray, warn: bool = True) -> str:
        """A message when fitted probabilities are numerically 0 or 1 (empty when not)."""
        if self.family not in ("bernoulli", "categorical"):
            return ""
        rows = work.certain_rows(theta)
        if rows == 0:
            return ""
        coef = np.reshape(theta, (self.blocks, self.design.n_coef))
        if self.design.intercept:
            coef = coef[:, 1:]
        weight = np.max(np.abs(coef), axis=0)
        cols = self.design.column_names
        named = [cols[j] for j in np.nonzero(weight >= 0.5 * weight.max())[0]] if len(cols) else []
        message = (
            f"separation: {rows} row(s) are predicted with probability numerically 1, so the classes are "
            f"(quasi-)separated by column(s) {', '.join(map(repr, named))}; the maximum-likelihood estimate "
            "does not exist (those coefficients grow without bound). Drop or merge the column, or add data"
        )
        if warn:
            warnings.warn(message, SeparationWarning, stacklevel=3)
        return message

    # after the fit ------------------------------------------------------------------------

    def coefficients(self, result: FitResult) -> np.ndarray:
        """The coefficients of a result, in this model's order, shape (blocks, P)."""
        return np.array([result.params[n] for n in self.names]).reshape(self.blocks, self.design.n_coef)

    def predict(self, result: FitResult) -> np.ndarray:
        """The fitted mean of every row: λ (with exposure), p, class probabilities (I, K), or μ."""
        d = self.design
        beta = self.coefficients(result)
        eta = d.columns.T @ (beta[:, 1:] if d.intercept else beta).T
        if d.intercept:
            eta = eta + beta[:, 0]
        if d.offset is not None:
            eta = eta + d.offset[:, None]
        eta = eta[:, 0] if self.blocks == 1 else eta
        if self.family == "poisson":
            rate = np.exp(eta) if self.link == "exp" else np.logaddexp(0.0, eta)
            return rate * (d.exposure if d.exposure is not None else 1.0)
        if self.family == "bernoulli":
            return 0.5 * (1.0 + np.tanh(0.5 * eta))
        if self.family == "categorical":
            full = np.concatenate([np.zeros((len(eta), 1)), eta], axis=1)
            e = np.exp(full - full.max(axis=1, keepdims=True))
            return e / e.sum(axis=1, keepdims=True)
        return eta


def certain_rows(family: str, f: np.ndarray, y: np.ndarray) -> int:
    """How many rows the model outputs ``f`` predict their own label ``y`` of with probability
    numerically 1 (a sign of separation; 0 for families without labels)."""
    if family == "bernoulli":
        p = 0.5 * (1.0 + np.tanh(0.5 * f))
        own = np.where(y == 1, p, 1.0 - p)
    elif family == "categorical":
        logp = f - np.max(f, axis=1, keepdims=True)
        logp = logp - np.log(np.sum(np.exp(logp), axis=1, keepdims=True))
        own = np.exp(logp[np.arange(len(y)), y.astype(int)])
    else:
        return 0
    eps = 10 * np.finfo(float).eps  # R's glm.fit threshold for "numerically 0 or 1"
    return int(np.sum(own > 1.0 - eps))


@lru_cache(maxsize=32)
def _compiled_outputs(model: Model):
    return jax.jit(lambda theta, x: model(x, model.unravel(theta)))


class _Working:
    """A GLM's data in working form: on the device, standardised, with its subsample."""

    def __init__(self, model: GLM):
        self.glm = model
        d = model.design
        n = d.n_rows
        self.n = n
        self.rows = None
        if n > SUBSAMPLE_ABOVE:  # every k-th row: a view, copied once
            self.rows = slice(0, (n // SUBSAMPLE_ROWS) * SUBSAMPLE_ROWS, n // SUBSAMPLE_ROWS)
            sub_cols = np.ascontiguousarray(d.columns[:, self.rows])
            self.scaling = d.scaling(sub_cols=sub_cols)
        else:
            self.scaling = d.scaling()
        self.a = model.transform(self.scaling)
        self.model = model.working_model()
        self.objective = Objective(self.model, model.loss, "sum")
        offset, log_exposure = model._offsets()
        self.offset, self.log_exposure = offset, log_exposure
        put = jax.device_put
        self.x = (put(d.columns), put(self.scaling.center), put(self.scaling.scale),
                  None if offset is None else put(offset), None if log_exposure is None else put(log_exposure))
        self.y = put(model.y)
        if self.rows is not None:
            r = self.rows
            self.sub_x = (put(sub_cols), self.x[1], self.x[2],
                          None if offset is None else put(offset[r]),
                          None if log_exposure is None else put(log_exposure[r]))
            self.sub_y = put(model.y[r])
        # Least squares is Σr², 2σ² times the normal NLL: scaling by 1/(2σ²) makes Newton's
        # decrement read in standard errors; var(y) stands in for σ² until the fit gives σ̂².
        self.value_scale = 1.0
        if model.family == "normal" and model.sigma is None:
            self.value_scale = 0.5 / max(float(np.var(model.y)), 1e-300)

    def scaling_inverse(self, beta: np.ndarray) -> np.ndarray:
        return np.linalg.solve(self.a, beta)

    def start(self, init) -> np.ndarray:
        if init is None:
            return self.glm._start(self.offset)
        names = self.glm.names
        if isinstance(init, Mapping):
            missing = [n for n in names if n not in init]
            if missing:
                raise GradfitError(f"init lacks coefficient(s) {', '.join(missing[:5])}")
            beta = np.array([float(init[n]) for n in names])
        else:
            beta = np.asarray(init, dtype=float).ravel()
            if beta.shape != (len(names),):
                raise GradfitError(f"init has {beta.size} value(s); the model has {len(names)} coefficients: "
                                   f"{', '.join(names[:8])}{' ...' if len(names) > 8 else ''}")
        return self.scaling_inverse(beta)

    def outputs(self, theta):
        return _compiled_outputs(self.model)(jnp.asarray(theta), self.x)

    def certain_rows(self, theta) -> int:
        return certain_rows(self.glm.family, np.asarray(self.outputs(theta)), self.glm.y)

    # first-order phase -------------------------------------------------------------------------

    def first_order(self, optimizer, theta, *, steps, epochs, batch_size, seed, tol, progress, **given) -> FitResult:
        from .fitting import fit as loop_fit

        d = self.glm.design
        z = ((d.columns - self.scaling.center[:, None]) / self.scaling.scale[:, None]).T
        extra, parts = [], [z]
        if self.offset is not None:
            extra.append("offset")
            parts.append(self.offset[:, None])
        if self.log_exposure is not None:
            extra.append("log_exposure")
            parts.append(self.log_exposure[:, None])
        x = np.hstack(parts) if len(parts) > 1 else z
        if x.shape[1] == 0:  # intercept only: the model reads no column, but x needs one
            x = np.zeros((self.n, 1))
        model = self.glm._rows_model(tuple(extra))
        data = Dataset(x, self.glm.y, name="design")
        return loop_fit(model, self.glm.loss, data, optimizer, init=np.asarray(theta), steps=steps, epochs=epochs,
                        batch_size=batch_size, tol=tol, seed=seed, dtype="float64", progress=progress, **given)

    # Newton ------------------------------------------------------------------------------------------

    def newton(self, theta, *, tol, max_iter) -> list[newton.NewtonResult]:
        stages = []
        vs = self.value_scale
        if self.rows is not None:
            # Newton on the subsample for a start near the optimum, then full-data gradients
            # with the subsample's Hessian (scaled to all rows); exact Newton if that stalls.
            first = self.minimize(theta, rows="subsample", tol=1e-3, max_iter=max_iter, value_scale=vs)
            if np.all(np.isfinite(first.theta)):
                theta = first.theta
            stages.append(self.minimize(theta, rows="all", hessian="subsample", tol=tol, max_iter=max_iter,
                                        value_scale=vs))
            if stages[-1].status != newton.CONVERGED:
                stages.append(self.minimize(stages[-1].theta, rows="all", tol=tol, max_iter=max_iter,
                                            value_scale=vs))
        else:
            stages.append(self.minimize(theta, rows="all", tol=tol, max_iter=max_iter, value_scale=vs))
        last = stages[-1]
        if vs != 1.0 and np.isfinite(last.value) and self.n > len(theta):
            # least squares: σ̂² from the fit, and a check in those units
            sigma2 = last.value / (self.n - len(theta))
            if sigma2 > 0:
                self.value_scale = 0.5 / sigma2
                stages.append(self.minimize(last.theta, rows="all", tol=tol, max_iter=max_iter,
                                            value_scale=self.value_scale))
        return stages

    def minimize(self, theta, *, rows: str, hessian: str | None = None, tol: float, max_iter: int,
                 value_scale: float) -> newton.NewtonResult:
        """`newton.minimize` of the summed loss over ``rows`` (``all`` or the ``subsample``), with the
        Hessian from ``hessian`` rows (default: the same; the subsample's is scaled up to all rows)."""
        args = (self.x, self.y) if rows == "all" else (self.sub_x, self.sub_y)
        if hessian is None or hessian == rows:
            return newton.minimize(self.objective, theta, args, tol=tol, max_iter=max_iter, value_scale=value_scale)
        return newton.minimize(self.objective, theta, args, hess_args=(self.sub_x, self.sub_y),
                               hess_scale=self.n / len(self.sub_y), tol=tol, max_iter=max_iter,
                               value_scale=value_scale)

    # results -----------------------------------------------------------------------------------------

    def result(self, theta, before: FitResult | None, stages, tol, elapsed) -> FitResult:
        model = self.glm
        names = model.names
        a = self.a
        size = len(names)
        steps_hist, params_hist, loss_hist, gnorm_hist, lr_hist = [], [], [], [], []
        done = 0
        if before is not None:
            h = before.history
            params_hist.append(h.params @ a.T)
            loss_hist.append(h.loss)
            gnorm_hist.append(self._grad_norms(h.params))
            lr_hist.append(h.lr)
            steps_hist.append(h.step)
            done = before.steps
        for stage in stages:
            rows = stage.history
            if steps_hist:  # the stage starts where the last ended: drop its repeated first row
                rows = rows[1:]
                if lr_hist and len(lr_hist[-1]):
                    lr_hist[-1] = lr_hist[-1].copy()
                    lr_hist[-1][-1] = stage.history[0, 2 * size + 3]
            if len(rows) == 0:
                continue
            params_hist.append(rows[:, :size] @ a.T)
            grads = np.linalg.solve(a.T, rows[:, size:2 * size].T).T
            gnorm_hist.append(np.sqrt(np.sum(grads**2, axis=1)))
            loss_hist.append(rows[:, 2 * size])
            lr_hist.append(rows[:, 2 * size + 3])
            first_step = done + (1 if steps_hist else 0)
            steps_hist.append(first_step + np.arange(len(rows)))
            done = int(steps_hist[-1][-1])
        history = History(step=np.concatenate(steps_hist), params=np.concatenate(params_hist),
                          loss=np.concatenate(loss_hist), grad_norm=np.concatenate(gnorm_hist),
                          lr=np.concatenate(lr_hist))
        if len(history.lr):
            lr = history.lr.copy()
            lr[-1] = np.nan
            history = dataclasses.replace(history, lr=lr)
        beta = a @ np.asarray(theta)
        status, why = self._status(before, stages, tol, history)
        optimizer = {"name": "newton", "variant": "standardised", "tol": tol}
        if before is not None:
            optimizer = {**before.optimizer, "polish": "newton" if stages else None}
        settings = {
            "family": model.family, "link": model.link, "tol": tol, "dtype": "float64", "reduction": "sum",
            "n_examples": self.n, "data": model.y_name, "standardised": True,
            "newton_iterations": [s.iterations for s in stages],
            "subsample_rows": None if self.rows is None else len(self.sub_y),
            "center": self.scaling.center.tolist(), "scale": self.scaling.scale.tolist(),
        }
        if before is not None:
            settings = {**before.settings, **settings}
        return FitResult(
            params=dict(zip(names, beta, strict=True)), loss=float(history.loss[-1]),
            grad_norm=float(history.grad_norm[-1]), steps=int(history.step[-1]), status=status, stopped=why,
            history=history, shapes=tuple((n, ()) for n in names), model=model.describe(),
            objective=f"{model.loss.describe()}, sum", optimizer=optimizer, settings=settings, elapsed=elapsed,
        )

    def _grad_norms(self, thetas: np.ndarray) -> np.ndarray:
        """Gradient norms on the original scale at rows of working coordinates (Newton's compiled gradient)."""
        vg = newton.value_and_grad(self.objective)
        grads = np.array([np.asarray(vg(jnp.asarray(t), self.x, self.y)[1]) for t in thetas])
        return np.sqrt(np.sum(np.linalg.solve(self.a.T, grads.T) ** 2, axis=0))

    def _status(self, before, stages, tol, history) -> tuple[str, str]:
        if not stages:
            return before.status, before.stopped
        last = stages[-1]
        total = sum(s.iterations for s in stages)
        gnorm = history.grad_norm[-1]
        where = f"after {total} Newton step(s)" + (f" polishing {before.optimizer.get('name')}" if before else "")
        if last.status == newton.CONVERGED and before is not None and total == 0:
            return "converged", (f"converged: {before.optimizer.get('name')} reached the optimum in {before.steps} "
                                 f"steps (Newton decrement {last.decrement:.3g} <= tol {tol:g} standard errors, no "
                                 f"Newton step needed); gradient norm {gnorm:.3g}")
        if last.status == newton.CONVERGED:
            return "converged", (f"converged: Newton decrement {last.decrement:.3g} <= tol {tol:g} standard errors "
                                 f"{where}; gradient norm {gnorm:.3g}")
        if last.status == newton.NOT_FINITE:
            return "diverged", f"diverged: the loss or its gradient became non-finite {where}"
        if last.status == newton.STALLED and last.decrement <= max(tol, 1e-6):
            return "converged", (f"converged: no further decrease at rounding level, Newton decrement "
                                 f"{last.decrement:.3g} {where}; gradient norm {gnorm:.3g}")
        what = "stalled" if last.status == newton.STALLED else "reached the iteration cap"
        return "max_steps", (f"{what}: Newton decrement {last.decrement:.3g} > tol {tol:g} {where}; "
                             f"gradient norm {gnorm:.3g}")

    def row_sums(self, theta) -> inference_mod.RowSums | None:
        """The `RowSums` inference needs at ``theta``, or None: `inference.statistics` computes them from x and y."""
        return None

    def infer(self, result, theta, *, profile, level, separated, stationary_tol=inference_mod.STATIONARY_TOL):
        model = self.glm
        lik = inference_mod.Likelihood(
            self.objective, self.x, self.y, model.names, transform=self.a, intercept=model.design.intercept,
            canonical=model.link in FAMILIES[model.family].canonical,
        )
        method = result.optimizer.get("name", "newton")
        sums = self.row_sums(theta)
        if separated:
            stats = inference_mod.statistics(lik, theta, level=level, stationary_tol=stationary_tol, method=method,
                                             sums=sums)
            stats = dataclasses.replace(stats, stationary=False, message=separated, stderr=None, covariance=None,
                                        covariance_fisher=None, wald=None, profile={})
        else:
            stats = inference_mod.statistics(lik, theta, level=level, profile=profile,
                                             stationary_tol=stationary_tol, method=method, sums=sums)
        return dataclasses.replace(result, inference=stats)


# -- building a model ---------------------------------------------------------------------------


def glm(
    data: Mapping[str, Any] | Dataset | Design | str | Path,
    y: str | Sequence[Any] | np.ndarray | None = None,
    family: str = "poisson",
    *,
    x: Sequence[str] | None = None,
    categorical: Sequence[str] = (),
    link: str | None = None,
    intercept: bool = True,
    offset: str | np.ndarray | None = None,
    exposure: str | np.ndarray | None = None,
    sigma: float | None = None,
    baselines: Mapping[str, Any] | None = None,
) -> GLM:
    """A regression model of ``y`` on columns of ``data``, for the likelihood ``family``.

    ``data`` is a dict name -> values, a CSV / Parquet path, a `Dataset` (its input
    columns and, by default, its targets) or a ready `Design`. ``y`` is a column
    name or the values. ``x`` lists the numeric columns (default: every column but y,
    the categorical ones, the offset and the exposure); ``categorical`` columns are
    one-hot encoded against a baseline level. ``exposure`` (positive; counts only)
    multiplies the rate; ``offset`` is added to the linear predictor.
    """
    y_name = y if isinstance(y, str) else "y"
    if isinstance(data, Design):
        if y is None or isinstance(y, str):
            raise GradfitError("with a ready Design, give y as the target values")
        return GLM(data, np.asarray(y), family, link, sigma, y_name=y_name)
    if isinstance(data, Dataset):
        columns = {name: col for name, col in zip(data.x_names, data.x.T if data.x.ndim == 2 else [data.x],
                                                  strict=True)}
        if y is None:
            y, y_name = data.y, data.y_name
    elif isinstance(data, (str, Path)):
        columns = read_table(data)
    else:
        columns = dict(data)
    if y is None:
        raise GradfitError("name the target column with y")
    if isinstance(y, str):
        if y not in columns:
            raise GradfitError(f"there is no target column {y!r}; the columns are: {', '.join(columns)}")
        y_values = columns[y]
    else:
        y_values = y
    side = {v for v in (offset, exposure) if isinstance(v, str)}
    if x is None:
        x = [c for c in columns if c != y_name and c not in categorical and c not in side]
    used = [c for c in (*x, *categorical, *side) if isinstance(c, str)]
    if isinstance(y, str) and y in used:
        raise GradfitError(f"column {y!r} is the target; it cannot be an input, categorical or offset column too")
    built = design_mod.build(columns, list(x), list(categorical), intercept=intercept, offset=offset,
                             exposure=exposure, baselines=baselines)
    return GLM(built, np.asarray(y_values), family, link, sigma, y_name=y_name)


def fit_glm(data, y=None, family: str = "poisson", **kwargs: Any) -> FitResult:
    """``glm(data, y, family, ...)`` fitted: keyword arguments of `glm` and of `GLM.fit` both go here.

    On a Dask cluster (`gradfit.glm_cluster`) when ``data`` is a Dask DataFrame, or when
    ``scheduler=`` (an address or a `distributed.Client`) or ``workers=N`` (a local cluster)
    is given, with ``data`` a Parquet path or glob: the same fit, by map-reduce over partitions.
    """
    scheduler, workers = kwargs.pop("scheduler", None), kwargs.pop("workers", None)
    if scheduler is not None or workers is not None or _is_dask_frame(data):
        from .glm_cluster import fit_glm as fit_on_cluster

        return fit_on_cluster(data, y, family, scheduler=scheduler, workers=workers, **kwargs)
    fit_keys = {"optimizer", "steps", "epochs", "batch_size", "tol", "max_iter", "init", "polish", "seed",
                "inference", "profile", "level", "progress", "history_every", "checkpoint", "checkpoint_every",
                "resume"}
    fit_kwargs = {k: kwargs.pop(k) for k in list(kwargs) if k in fit_keys}
    return glm(data, y, family, **kwargs).fit(**fit_kwargs)


def _is_dask_frame(data: Any) -> bool:
    """Whether ``data`` is a Dask DataFrame, told without importing Dask."""
    return type(data).__module__.split(".")[0] == "dask" and hasattr(data, "npartitions")


# -- plotting -----------------------------------------------------------------------------------


def plot_rates(model: GLM, result: FitResult, ax=None, *, bins: int = 20):
    """Observed counts against the fitted rates: each row (jittered), the mean count per bin of
    fitted rate, and the line observed = fitted. Needs matplotlib (imported here only)."""
    import matplotlib.pyplot as plt

    if model.family == "categorical":
        raise GradfitError("plot_rates draws one fitted mean per row; a categorical model has one per class")
    fitted = model.predict(result)
    observed = model.y
    if ax is None:
        _, ax = plt.subplots(figsize=(5.5, 4.5))
    rng = np.random.default_rng(0)
    jitter = rng.uniform(-0.2, 0.2, len(observed)) if model.family != "normal" else 0.0
    ax.scatter(fitted, observed + jitter, s=6, alpha=0.25, color="0.5", label="rows (jittered)")
    edges = np.unique(np.quantile(fitted, np.linspace(0, 1, bins + 1)))
    which = np.clip(np.searchsorted(edges, fitted, side="right") - 1, 0, len(edges) - 2)
    mean_fit = np.array([fitted[which == b].mean() for b in range(len(edges) - 1) if np.any(which == b)])
    mean_obs = np.array([observed[which == b].mean() for b in range(len(edges) - 1) if np.any(which == b)])
    ax.plot(mean_fit, mean_obs, "o-", color="C0", label="mean observed per bin")
    top = max(float(np.max(fitted)), float(np.max(mean_obs)))
    ax.plot([0, top], [0, top], "--", color="C3", label="observed = fitted")
    what = {"poisson": "rate λ", "bernoulli": "probability p", "normal": "mean μ"}[model.family]
    ax.set_xlabel(f"fitted {what}")
    ax.set_ylabel(f"observed {model.y_name}")
    ax.legend(loc="upper left", frameon=False)
    return ax

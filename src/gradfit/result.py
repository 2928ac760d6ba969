"""Fit results as immutable data, with lossless JSON in and out.

`FitResult` holds what a fit did; `Inference` holds what can be said about its
optimum (standard errors, covariance, likelihood-based statistics). Both are plain
data: `gradfit.inference` computes the numbers, `gradfit.textreport` prints them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from math import prod
from pathlib import Path
from typing import Any

import numpy as np

from .errors import GradfitError
from .files import atomic_write

STATUSES = ("converged", "stalled", "max_steps", "diverged", "interrupted")


def _frozen(a, dtype=float) -> np.ndarray:
    a = np.array(a, dtype=dtype)
    a.setflags(write=False)
    return a


@dataclass(frozen=True)
class History:
    """What the fit recorded: entry k holds φ and the full-data loss after ``step[k]`` updates.

    ``lr[k]`` is the rate (or line-search step) of the update that left entry k; the
    last entry has none (NaN). With a stride of 1, entry k is after k updates.
    """

    step: np.ndarray
    params: np.ndarray  # (K, P) flat, in parameter order
    loss: np.ndarray
    grad_norm: np.ndarray
    lr: np.ndarray

    def __post_init__(self):
        object.__setattr__(self, "step", _frozen(self.step, np.int64))
        for name in ("params", "loss", "grad_norm", "lr"):
            object.__setattr__(self, name, _frozen(getattr(self, name)))

    def __len__(self) -> int:
        return len(self.step)


@dataclass(frozen=True)
class Inference:
    """What the likelihood says at a fit's optimum: uncertainties and goodness of fit.

    ``names`` are the scalar parameter names in parameter order (``FitResult.x``
    order). ``stationary`` says whether the fit ended at a stationary point of the
    likelihood (the Newton decrement √(gᵀM⁻¹g), the distance to the optimum in
    standard errors, at most a small tolerance, M the information the covariance
    inverts, regular, and the Hessian with no negative eigenvalue); when it did not,
    ``stderr``, ``covariance`` and the intervals are None and ``message`` says why.
    ``loglik`` keeps every constant of the likelihood (log y! for counts), so AIC and
    BIC compare across likelihoods; for least squares it is the normal log-likelihood
    at σ̂² = RSS/n, as in OLS (WLS's, with weights). ``scale`` is the factor the
    covariance was scaled by: σ̂² = RSS/(n-k) for least squares (as lmfit and OLS do),
    else 1 (RSS = Σ w_i r_i² with weights).

    ``covariance_form`` says which matrix the covariance inverts: ``gauss-newton``
    (σ̂²(JᵀWJ)⁻¹, least squares), ``gauss-newton, absolute sigma`` ((JᵀWJ)⁻¹, the σ_i
    taken as known), ``gauss-newton, fixed sigma`` (σ²(JᵀWJ)⁻¹, a normal loss with σ
    given), ``observed`` (the Hessian of the negative log-likelihood) or ``fisher``
    (the expected information); ``weighted`` says whether the examples carried weights
    W = diag(w_i). ``tvalues`` are θ̂/se and ``pvalues`` their two-sided p-values, from
    Student's t with ``df`` degrees of freedom where ``dist`` is ``t`` (least squares,
    σ estimated) or from the normal where it is ``z`` (``df`` None). Parameters in
    ``excluded`` (name -> ``fixed``, ``at lower bound`` or ``at upper bound``) were not
    estimated freely: their standard errors, covariance rows and intervals are NaN.
    """

    names: tuple[str, ...]
    n: int
    k: int
    loss: str
    loglik: float
    aic: float
    bic: float
    deviance: float | None = None
    pearson_chi2: float | None = None
    stationary: bool = False
    message: str = ""
    decrement: float = math.nan
    grad_norm: float = math.nan
    stderr: np.ndarray | None = None
    covariance: np.ndarray | None = None
    covariance_fisher: np.ndarray | None = None
    scale: float = 1.0
    level: float = 0.95
    wald: np.ndarray | None = None
    profile: dict[str, tuple[float, float]] = field(default_factory=dict)
    chisqr: float | None = None
    redchi: float | None = None
    rsquared: float | None = None
    sigma: float | None = None
    method: str = ""
    covariance_form: str = ""
    weighted: bool = False
    tvalues: np.ndarray | None = None
    pvalues: np.ndarray | None = None
    df: int | None = None
    dist: str = "z"
    excluded: dict[str, str] = field(default_factory=dict)

    def __post_init__(self):
        object.__setattr__(self, "names", tuple(self.names))
        object.__setattr__(self, "excluded", dict(self.excluded))
        for name in ("stderr", "covariance", "covariance_fisher", "wald", "tvalues", "pvalues"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, _frozen(value))
        object.__setattr__(self, "profile", {k: (float(lo), float(hi)) for k, (lo, hi) in self.profile.items()})

    @property
    def df_resid(self) -> int:
        return self.n - self.k

    @property
    def correlation(self) -> np.ndarray | None:
        """The correlation matrix of the estimates, from the covariance."""
        if self.covariance is None:
            return None
        sd = np.sqrt(np.diag(self.covariance))
        corr = self.covariance / np.outer(sd, sd)
        np.fill_diagonal(corr, np.where(np.isfinite(sd), 1.0, np.nan))  # NaN for parameters left out
        return _frozen(corr)

    def to_dict(self) -> dict[str, Any]:
        """The JSON keys: the headline numbers at the top level, the rest under ``inference``."""
        names = self.names
        top: dict[str, Any] = {
            "stderr": None if self.stderr is None else dict(zip(names, _plain(self.stderr), strict=True)),
            "tvalues": None if self.tvalues is None else dict(zip(names, _plain(self.tvalues), strict=True)),
            "pvalues": None if self.pvalues is None else dict(zip(names, _plain(self.pvalues), strict=True)),
            "covariance": None if self.covariance is None else _plain(self.covariance),
            "loglik": _plain(self.loglik),
            "aic": _plain(self.aic),
            "bic": _plain(self.bic),
        }
        for key in ("deviance", "pearson_chi2"):
            if getattr(self, key) is not None:
                top[key] = _plain(getattr(self, key))
        rest: dict[str, Any] = {
            "names": list(names), "n": self.n, "k": self.k, "loss": self.loss,
            "stationary": self.stationary, "message": self.message,
            "decrement": _plain(self.decrement), "grad_norm": _plain(self.grad_norm),
            "scale": _plain(self.scale), "level": _plain(self.level), "method": self.method,
            "covariance_form": self.covariance_form, "weighted": self.weighted, "df": self.df, "dist": self.dist,
            "excluded": dict(self.excluded),
            "profile": {k: _plain(v) for k, v in self.profile.items()},
        }
        if self.wald is not None:
            rest["wald"] = dict(zip(names, _plain(self.wald), strict=True))
        if self.covariance_fisher is not None:
            rest["covariance_fisher"] = _plain(self.covariance_fisher)
        for key in ("chisqr", "redchi", "rsquared", "sigma"):
            if getattr(self, key) is not None:
                rest[key] = _plain(getattr(self, key))
        return {**top, "inference": rest}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Inference:
        """The inverse of `to_dict`, from a result's JSON dict (top-level keys and ``inference``)."""
        rest = d["inference"]
        names = tuple(rest["names"])

        def optional(source, key):
            value = source.get(key)
            return None if value is None else float(_floats(value))

        def by_name(value):
            return None if value is None else _floats([value[n] for n in names])

        df = rest.get("df")
        return cls(
            names=names, n=int(rest["n"]), k=int(rest["k"]), loss=rest["loss"],
            loglik=float(_floats(d["loglik"])), aic=float(_floats(d["aic"])), bic=float(_floats(d["bic"])),
            deviance=optional(d, "deviance"), pearson_chi2=optional(d, "pearson_chi2"),
            stationary=bool(rest["stationary"]), message=rest["message"],
            decrement=float(_floats(rest["decrement"])), grad_norm=float(_floats(rest["grad_norm"])),
            stderr=by_name(d.get("stderr")), tvalues=by_name(d.get("tvalues")), pvalues=by_name(d.get("pvalues")),
            covariance=None if d.get("covariance") is None else _floats(d["covariance"]),
            covariance_fisher=None if rest.get("covariance_fisher") is None else _floats(rest["covariance_fisher"]),
            scale=float(_floats(rest["scale"])), level=float(_floats(rest["level"])),
            wald=by_name(rest.get("wald")),
            profile={k: tuple(_floats(v)) for k, v in rest.get("profile", {}).items()},
            chisqr=optional(rest, "chisqr"), redchi=optional(rest, "redchi"),
            rsquared=optional(rest, "rsquared"), sigma=optional(rest, "sigma"), method=rest.get("method", ""),
            covariance_form=rest.get("covariance_form", ""), weighted=bool(rest.get("weighted", False)),
            df=None if df is None else int(df), dist=rest.get("dist", "z"), excluded=rest.get("excluded", {}),
        )


@dataclass(frozen=True)
class FitResult:
    """The outcome of one fit: parameters, final loss, why it stopped, and its history.

    ``params`` maps each parameter name to its value (a float, or an array for array
    parameters), in parameter order. ``status`` is one of

    - ``converged``: the gradient norm fell to tol at a minimum;
    - ``stalled``: the gradient norm fell to tol at a point that is not a minimum (a
      saddle point, a maximum, or flat ground; ``point`` says which);
    - ``max_steps``: the step or epoch cap;
    - ``diverged``: a non-finite loss, gradient or parameter (``params`` are then the
      last finite ones);
    - ``interrupted``: stopped by Ctrl-C or SIGTERM after its last finished chunk.

    ``point`` is the kind of point a stop for a small gradient ended at (``minimum``,
    ``saddle``, ``maximum``, ``flat``; `gradfit.points`), or None where it was not
    classified (other stops, or models of over 200 parameters).
    """

    params: dict[str, Any]
    loss: float
    grad_norm: float
    steps: int
    status: str
    stopped: str
    history: History
    shapes: tuple[tuple[str, tuple[int, ...]], ...]
    model: str = ""
    objective: str = ""
    optimizer: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    elapsed: float = 0.0
    inference: Inference | None = None
    point: str | None = None
    #: The (model, loss, data) the fit ran on, for `infer` and `predict`: not compared, not in the JSON.
    source: Any = field(default=None, compare=False, repr=False)

    def __post_init__(self):
        frozen = {}
        for name, value in self.params.items():
            value = np.asarray(value, dtype=float)
            frozen[name] = float(value) if value.shape == () else _frozen(value)
        object.__setattr__(self, "params", frozen)

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.shapes)

    @property
    def converged(self) -> bool:
        return self.status == "converged"

    @property
    def x(self) -> np.ndarray:
        """The parameters as one flat vector, in parameter order (``--init`` order)."""
        return np.concatenate([np.ravel(self.params[n]) for n in self.param_names])

    def predict(self, x_new: Any, interval: str | None = None, level: float = 0.95, **options: Any) -> Any:
        """The fitted model at ``x_new``, with a confidence or prediction interval: `gradfit.inference.predict`."""
        from .inference import predict  # JAX is imported only when a prediction is asked for

        return predict(self, x_new, interval=interval, level=level, **options)

    # JSON -------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        h = self.history
        out = {
            "params": {n: _plain(self.params[n]) for n in self.param_names},
            "loss": _plain(self.loss),
            "grad_norm": _plain(self.grad_norm),
            "steps": self.steps,
            "status": self.status,
            "point": self.point,
            "stopped": self.stopped,
            "model": self.model,
            "objective": self.objective,
            "optimizer": self.optimizer,
            "settings": self.settings,
            "elapsed": self.elapsed,
            "shapes": {n: list(s) for n, s in self.shapes},
            "history": {
                "step": h.step.tolist(),
                "loss": _plain(h.loss),
                "grad_norm": _plain(h.grad_norm),
                "lr": _plain(h.lr),
                "params": [_named(row, self.shapes) for row in h.params],
            },
        }
        if self.inference is not None:
            out.update(self.inference.to_dict())
        return out

    def to_json(self, path: str | Path | None = None, indent: int | None = 1) -> str:
        """The result as JSON text (written to ``path`` too, when given, atomically)."""
        text = json.dumps(self.to_dict(), indent=indent, allow_nan=False)
        if path is not None:
            _write_text(path, text)
        return text

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FitResult:
        """The inverse of `to_dict`; a dict that is not a fit result's gets a GradfitError naming what is missing."""
        try:
            return cls._from_dict(d)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError) as exc:
            what = f"it lacks the key {exc}" if isinstance(exc, KeyError) else f"{type(exc).__name__}: {exc}"
            raise GradfitError(f"this JSON is not a gradfit fit result ({what}); read a file written by "
                               "FitResult.to_json or gradfit fit --json") from None

    @classmethod
    def _from_dict(cls, d: dict[str, Any]) -> FitResult:
        if not isinstance(d, dict):
            raise TypeError(f"a JSON {type(d).__name__}, not an object")
        shapes = tuple((n, tuple(s)) for n, s in d["shapes"].items())
        h = d["history"]
        flat = [np.concatenate([np.ravel(np.asarray(row[n], float)) for n, _ in shapes]) for row in h["params"]]
        size = sum(prod(s) for _, s in shapes)
        history = History(
            step=h["step"],
            params=np.reshape(np.array(flat, float), (len(flat), size)),
            loss=_floats(h["loss"]),
            grad_norm=_floats(h["grad_norm"]),
            lr=_floats(h["lr"]),
        )
        return cls(
            params={n: np.asarray(_floats(d["params"][n])) for n, _ in shapes},
            loss=_floats(d["loss"]),
            grad_norm=_floats(d["grad_norm"]),
            steps=_count(d["steps"]),
            status=_status(d["status"]),
            point=d.get("point"),
            stopped=d["stopped"],
            history=history,
            shapes=shapes,
            model=d.get("model", ""),
            objective=d.get("objective", ""),
            optimizer=d.get("optimizer", {}),
            settings=d.get("settings", {}),
            elapsed=float(d.get("elapsed", 0.0)),
            inference=Inference.from_dict(d) if "inference" in d else None,
        )

    @classmethod
    def from_json(cls, text_or_path: str | Path) -> FitResult:
        """A result from JSON text or from a file holding it."""
        return cls.from_dict(_read_json(text_or_path))

    def __repr__(self) -> str:
        shown = []
        for name in self.param_names[:6]:
            value = self.params[name]
            shown.append(f"{name}={value:.6g}" if isinstance(value, float) else f"{name}=<array {value.shape}>")
        more = f", ... ({len(self.param_names)} in all)" if len(self.param_names) > 6 else ""
        point = f", point={self.point!r}" if self.point else ""
        return (f"FitResult(status={self.status!r}{point}, loss={self.loss:.6g}, steps={self.steps}, "
                f"params={{{', '.join(shown)}{more}}}, history={len(self.history)} rows)")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FitResult):
            return NotImplemented
        return json.dumps(self.to_dict(), sort_keys=True) == json.dumps(other.to_dict(), sort_keys=True)

    __hash__ = None  # type: ignore[assignment]


class MultiFit:
    """Fits of one problem from many starts, run together; ``best`` has the lowest loss.

    The final parameters and losses of all starts are arrays; each start's full
    `FitResult`, with its history, is built when first asked for, so ten thousand
    starts cost arrays rather than ten thousand objects.
    """

    def __init__(self, fits: Sequence[FitResult]):
        fits = tuple(fits)
        self._n = len(fits)
        self._made = dict(enumerate(fits))
        self._build = None
        self._params = _frozen(np.stack([f.x for f in fits])) if fits else _frozen(np.zeros((0, 0)))
        self._losses = _frozen([f.loss for f in fits])

    @classmethod
    def lazy(cls, n: int, build: Callable[[int], FitResult], params: np.ndarray, losses: np.ndarray) -> MultiFit:
        """n fits whose results ``build(i)`` makes on demand; their final params and losses given."""
        self = cls.__new__(cls)
        self._n, self._made, self._build = n, {}, build
        self._params, self._losses = _frozen(params), _frozen(losses)
        return self

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, i: int) -> FitResult:
        if not -self._n <= i < self._n:
            raise IndexError(f"start {i} of {self._n}")
        i %= self._n
        if i not in self._made:
            self._made[i] = self._build(i)
        return self._made[i]

    def __iter__(self) -> Iterator[FitResult]:
        return (self[i] for i in range(self._n))

    @property
    def fits(self) -> tuple[FitResult, ...]:
        return tuple(self)

    @property
    def losses(self) -> np.ndarray:
        """Final loss of every start, shape (S,)."""
        return self._losses

    @property
    def params(self) -> np.ndarray:
        """Final parameters of every start, shape (S, P), in parameter order."""
        return self._params

    @property
    def best(self) -> FitResult:
        losses = np.where(np.isfinite(self._losses), self._losses, np.inf)
        return self[int(np.argmin(losses))]

    def to_json(self, path: str | Path | None = None, indent: int | None = None) -> str:
        """Every start's result as JSON text, ``{"fits": [...]}`` (written to ``path`` too, atomically)."""
        text = json.dumps({"fits": [f.to_dict() for f in self]}, indent=indent, allow_nan=False)
        if path is not None:
            _write_text(path, text)
        return text

    @classmethod
    def from_json(cls, text_or_path: str | Path) -> MultiFit:
        d = _read_json(text_or_path)
        if not isinstance(d, dict) or not isinstance(d.get("fits"), list):
            raise GradfitError('this JSON is not a gradfit MultiFit (no "fits" list); read a file written by '
                               "MultiFit.to_json")
        return cls(FitResult.from_dict(f) for f in d["fits"])

    def __repr__(self) -> str:
        if self._n == 0:
            return "MultiFit(0 starts)"
        finite = np.isfinite(self._losses)
        if not finite.any():
            return f"MultiFit({self._n} starts, no finite loss)"
        lo, mid, hi = np.percentile(self._losses[finite], [0, 50, 100])
        return (f"MultiFit({self._n} starts, best loss {lo:.6g} (start {int(np.nanargmin(self._losses))}), "
                f"median {mid:.6g}, worst {hi:.6g}, {int((~finite).sum())} non-finite)")


def _count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"steps must be a whole number >= 0, not {value!r}")
    return value


def _status(value: Any) -> str:
    if value not in STATUSES:
        raise ValueError(f"unknown status {value!r}")
    return value


def _read_json(text_or_path: str | Path) -> Any:
    """JSON from text, or from the file it names; errors name the file and the fix."""
    text = str(text_or_path)
    if not text.lstrip().startswith(("{", "[")):
        try:
            text = Path(text_or_path).read_text(encoding="utf-8-sig")  # a BOM from an editor is no error
        except OSError as exc:
            raise GradfitError(f"cannot read {text_or_path}: {exc.strerror or exc}") from None
        except UnicodeDecodeError:
            raise GradfitError(f"{text_or_path} is not a JSON text file") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise GradfitError(f"not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})") from None


def _write_text(path: str | Path, text: str) -> None:
    atomic_write(path, lambda file: file.write((text + "\n").encode()))


def _plain(value: Any) -> Any:
    """Numbers and arrays as JSON values; NaN becomes null (JSON has no NaN)."""
    a = np.asarray(value, dtype=float)
    if a.shape == ():
        v = float(a)
        return v if math.isfinite(v) else (None if math.isnan(v) else ("inf" if v > 0 else "-inf"))
    return [_plain(v) for v in a]


def _floats(value: Any) -> Any:
    """The inverse of `_plain`."""
    if isinstance(value, list):
        return np.array([_floats(v) for v in value], dtype=float)
    if value is None:
        return math.nan
    if isinstance(value, str):
        return float(value)
    return float(value)


def _named(row: np.ndarray, shapes: Sequence[tuple[str, tuple[int, ...]]]) -> dict[str, Any]:
    out, start = {}, 0
    for name, shape in shapes:
        stop = start + prod(shape)
        out[name] = _plain(np.reshape(row[start:stop], shape))
        start = stop
    return out

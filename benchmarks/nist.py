"""NIST StRD nonlinear regression: the 27 certified problems, and gradfit, scipy and lmfit on them.

NIST's Statistical Reference Datasets give, for each problem, a model, two starts
(start 1 far from the solution, start 2 near it), the certified parameters b̂, their
certified standard deviations √diag(s²(JᵀJ)⁻¹) with s² = RSS/(n − k), and the certified
residual sum of squares. A tool's accuracy is NIST's log relative error

    LRE(e, c) = −log10(|e − c| / |c|)        (−log10 |e| when c = 0),

the number of digits an estimate e shares with the certified value c, clipped to
[0, `LRE_CAP`] and 0 for a non-finite estimate. A (problem, start) pair is *solved*
when the smallest LRE over the parameters is at least `SOLVED_LRE` (4), the usual
threshold (McCullough 1999); its standard errors are counted good when their smallest
LRE is at least 4 as well.

Every model is written once, ``f(x, b, xp)`` with ``xp`` numpy or jax.numpy, so the
same formula serves gradfit (`gradfit.custom`, parameters b1..bK) and scipy / lmfit.

The tools, each with its library's default settings and the same setting for all 54
pairs (nothing tuned per problem):

- gradfit: `gradfit_setting`, the one place that says how gradfit fits;
- scipy ``least_squares(method="lm")`` (MINPACK's LM) and ``method="trf"``: ftol = xtol =
  gtol = 1e-8, at most 100·k function evaluations besides the Jacobian's, the Jacobian by
  scipy's default two-point finite differences (no analytic Jacobian, as most users
  fit); x_scale is scipy's default ("jac" for lm, 1 for trf). Standard errors as
  ``curve_fit`` computes them: σ̂²(JᵀJ)⁻¹ from the SVD of the final finite-difference
  Jacobian, singular values below eps·max(n, k)·s₁ dropped, σ̂² = RSS/(n − k);
- lmfit ``Minimizer.leastsq`` (MINPACK's lmdif): ftol = xtol = 1.5e-8, gtol = 0, at most
  2000·(k + 1) evaluations, its forward-difference Jacobian (epsfcn = 1e-10, so steps of
  1e-5 relative); standard errors are lmfit's own, from MINPACK's (JᵀJ)⁻¹ scaled by the
  reduced χ² (``scale_covar=True``).

Times are of the solving call alone: gradfit's `gradfit.fit` (standard errors come
from `gradfit.infer` afterwards, untimed), scipy's ``least_squares`` (the SVD after,
untimed), and lmfit's ``leastsq``, which estimates its covariance within the call.
"""

from __future__ import annotations

import math
import re
import statistics
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache, partial
from pathlib import Path
from typing import Any

import numpy as np

#: The 27 problems in NIST's order: lower, then average, then higher difficulty.
PROBLEMS: tuple[str, ...] = (
    "Misra1a", "Chwirut2", "Chwirut1", "Lanczos3", "Gauss1", "Gauss2", "DanWood", "Misra1b",
    "Kirby2", "Hahn1", "Nelson", "MGH17", "Lanczos1", "Lanczos2", "Gauss3", "Misra1c", "Misra1d", "Roszman1",
    "ENSO",
    "MGH09", "Thurber", "BoxBOD", "Rat42", "MGH10", "Eckerle4", "Rat43", "Bennett5",
)

#: Where the data sit, relative to the repository root (they are not shipped with it).
SHARED_ROOT = Path(__file__).resolve().parents[2] / "shared" / "data" / "nist"
#: The data sets beside the checkout (../shared/data/nist) when they are there, else this repository's copy.
COPY_ROOT = Path(__file__).resolve().parent / "data" / "nist"
DEFAULT_ROOT = SHARED_ROOT if (SHARED_ROOT / "Misra1a.dat").is_file() else COPY_ROOT

#: LREs are clipped here: the certified values carry 11 significant digits, so more
#: agreement than 11 digits cannot be measured against them.
LRE_CAP = 11.0

#: A pair is solved when every parameter has at least this many correct digits.
SOLVED_LRE = 4.0


# -- the 27 models, from the formulas in the files' headers ---------------------------


def _misra1a(x, b, xp):  # also BoxBOD
    b1, b2 = b
    return b1 * (1 - xp.exp(-b2 * x))


def _chwirut(x, b, xp):
    b1, b2, b3 = b
    return xp.exp(-b1 * x) / (b2 + b3 * x)


def _lanczos(x, b, xp):
    b1, b2, b3, b4, b5, b6 = b
    return b1 * xp.exp(-b2 * x) + b3 * xp.exp(-b4 * x) + b5 * xp.exp(-b6 * x)


def _gauss(x, b, xp):
    b1, b2, b3, b4, b5, b6, b7, b8 = b
    return b1 * xp.exp(-b2 * x) + b3 * xp.exp(-((x - b4) ** 2) / b5**2) + b6 * xp.exp(-((x - b7) ** 2) / b8**2)


def _danwood(x, b, xp):
    b1, b2 = b
    return b1 * x**b2


def _misra1b(x, b, xp):
    b1, b2 = b
    return b1 * (1 - (1 + b2 * x / 2) ** (-2))


def _kirby2(x, b, xp):
    b1, b2, b3, b4, b5 = b
    return (b1 + b2 * x + b3 * x**2) / (1 + b4 * x + b5 * x**2)


def _cubic_over_cubic(x, b, xp):  # Hahn1 and Thurber
    b1, b2, b3, b4, b5, b6, b7 = b
    return (b1 + b2 * x + b3 * x**2 + b4 * x**3) / (1 + b5 * x + b6 * x**2 + b7 * x**3)


def _nelson(x, b, xp):
    # NIST's model is for log(y); `load` takes the log of the response, so this is log y.
    b1, b2, b3 = b
    x1, x2 = x[:, 0], x[:, 1]
    return b1 - b2 * x1 * xp.exp(-b3 * x2)


def _mgh17(x, b, xp):
    b1, b2, b3, b4, b5 = b
    return b1 + b2 * xp.exp(-x * b4) + b3 * xp.exp(-x * b5)


def _misra1c(x, b, xp):
    b1, b2 = b
    return b1 * (1 - (1 + 2 * b2 * x) ** (-0.5))


def _misra1d(x, b, xp):
    b1, b2 = b
    return b1 * b2 * x * (1 + b2 * x) ** (-1)


def _roszman1(x, b, xp):
    b1, b2, b3, b4 = b
    return b1 - b2 * x - xp.arctan(b3 / (x - b4)) / np.pi


def _enso(x, b, xp):
    b1, b2, b3, b4, b5, b6, b7, b8, b9 = b
    w0, w1, w2 = 2 * np.pi * x / 12, 2 * np.pi * x / b4, 2 * np.pi * x / b7
    return (b1 + b2 * xp.cos(w0) + b3 * xp.sin(w0) + b5 * xp.cos(w1) + b6 * xp.sin(w1)
            + b8 * xp.cos(w2) + b9 * xp.sin(w2))


def _mgh09(x, b, xp):
    b1, b2, b3, b4 = b
    return b1 * (x**2 + x * b2) / (x**2 + x * b3 + b4)


def _rat42(x, b, xp):
    b1, b2, b3 = b
    return b1 / (1 + xp.exp(b2 - b3 * x))


def _mgh10(x, b, xp):
    b1, b2, b3 = b
    return b1 * xp.exp(b2 / (x + b3))


def _eckerle4(x, b, xp):
    b1, b2, b3 = b
    return (b1 / b2) * xp.exp(-0.5 * ((x - b3) / b2) ** 2)


def _rat43(x, b, xp):
    b1, b2, b3, b4 = b
    return b1 / (1 + xp.exp(b2 - b3 * x)) ** (1 / b4)


def _bennett5(x, b, xp):
    b1, b2, b3 = b
    return b1 * (b2 + x) ** (-1 / b3)


Model = Callable[[Any, Sequence[Any], Any], Any]

#: Each problem's model ``f(x, b, xp)``; problems that share a formula share a function.
MODELS: dict[str, Model] = {
    "Misra1a": _misra1a, "Chwirut2": _chwirut, "Chwirut1": _chwirut, "Lanczos3": _lanczos, "Gauss1": _gauss,
    "Gauss2": _gauss, "DanWood": _danwood, "Misra1b": _misra1b, "Kirby2": _kirby2, "Hahn1": _cubic_over_cubic,
    "Nelson": _nelson, "MGH17": _mgh17, "Lanczos1": _lanczos, "Lanczos2": _lanczos, "Gauss3": _gauss,
    "Misra1c": _misra1c, "Misra1d": _misra1d, "Roszman1": _roszman1, "ENSO": _enso, "MGH09": _mgh09,
    "Thurber": _cubic_over_cubic, "BoxBOD": _misra1a, "Rat42": _rat42, "MGH10": _mgh10, "Eckerle4": _eckerle4,
    "Rat43": _rat43, "Bennett5": _bennett5,
}


# -- reading the files ------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class NistProblem:
    """One NIST StRD nonlinear regression problem, as its file certifies it.

    ``x`` has shape (n,), or (n, 2) for Nelson; ``y`` is the response the model is
    fitted to: the file's y, except for Nelson, whose model is for log y (NIST fits
    log y, and certifies that fit), so ``y`` is log of the file's column and
    ``y_file`` keeps the column as printed. ``starts`` are NIST's start 1 and start 2.
    ``dof`` is the file's "Degrees of Freedom" as printed: n − k in every file but
    Rat43's, which prints 9 where n − k = 11 (its residual deviation and certified
    standard deviations use 11), so the tools here use n − k.
    """

    name: str
    level: str  # "lower", "average" or "higher"
    formula: str
    model: Model = field(repr=False)
    starts: tuple[np.ndarray, np.ndarray] = field(repr=False)
    certified: np.ndarray = field(repr=False)
    certified_sd: np.ndarray = field(repr=False)
    rss: float
    residual_sd: float
    dof: int
    x: np.ndarray = field(repr=False)
    y: np.ndarray = field(repr=False)
    y_file: np.ndarray = field(repr=False)

    @property
    def n(self) -> int:
        return len(self.y)

    @property
    def k(self) -> int:
        return len(self.certified)

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(f"b{i + 1}" for i in range(self.k))

    def start(self, which: int) -> np.ndarray:
        """NIST's start 1 or start 2."""
        if which not in (1, 2):
            raise ValueError(f"NIST gives start 1 and start 2, not {which!r}")
        return self.starts[which - 1]

    def predict(self, b: Sequence[float]) -> np.ndarray:
        return self.model(self.x, np.asarray(b, dtype=float), np)

    def residual_ss(self, b: Sequence[float]) -> float:
        """Σ (y − f(x, b))², in numpy's float64."""
        r = self.y - self.predict(b)
        return float(r @ r)


_LINES = re.compile(r"(Starting Values|Certified Values|Data)\s*\(lines\s+(\d+)\s+to\s+(\d+)\s*\)", re.IGNORECASE)
_PARAM = re.compile(r"^\s*b(\d+)\s*=\s*(.*)$")
_COUNT = re.compile(r"(\d+)\s+Parameters?\b")
_OBS = re.compile(r"(\d+)\s+Observations\b")
_LEVEL = re.compile(r"(Lower|Average|Higher)\s+Level\s+of\s+Difficulty", re.IGNORECASE)
_STAT = {
    "rss": re.compile(r"Residual Sum of Squares:\s*(\S+)"),
    "residual_sd": re.compile(r"Residual Standard Deviation:\s*(\S+)"),
    "dof": re.compile(r"Degrees of Freedom:\s*(\S+)"),
    "n": re.compile(r"Number of Observations:\s*(\S+)"),
}


def _number(text: str, where: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{where}: {text!r} is not a number") from None


def _formula(lines: list[str]) -> str:
    """The model's formula: the lines after 'N Parameters', up to the starting values."""
    start = next(i for i, line in enumerate(lines) if line.startswith("Model:"))
    start = next(i for i in range(start, len(lines)) if _COUNT.search(lines[i])) + 1
    stop = next(i for i in range(start, len(lines)) if "starting values" in lines[i].lower())
    return " ".join(line.strip() for line in lines[start:stop] if line.strip())


def load(name: str, root: str | Path = DEFAULT_ROOT) -> NistProblem:
    """Read ``<root>/<name>.dat``: where its parts lie is read from the header's line numbers."""
    path = Path(root) / f"{name}.dat"
    lines = path.read_text().splitlines()
    header = "\n".join(lines[:60])
    spans = {m.group(1).lower(): (int(m.group(2)), int(m.group(3))) for m in _LINES.finditer(header)}
    if set(spans) != {"starting values", "certified values", "data"}:
        raise ValueError(f"{path}: the header does not give the line numbers of the starts, values and data")

    def block(key: str) -> list[str]:
        first, last = spans[key]
        return lines[first - 1:last]  # the header counts lines from 1, inclusive

    starts, certified, sds = [], [], []
    for line in block("starting values"):
        m = _PARAM.match(line)
        if m is None:
            raise ValueError(f"{path}: expected a parameter line 'bK = ...', found {line!r}")
        if int(m.group(1)) != len(starts) + 1:
            raise ValueError(f"{path}: parameter b{m.group(1)} out of order")
        fields = m.group(2).split()
        if len(fields) != 4:
            raise ValueError(f"{path}: b{m.group(1)} needs start 1, start 2, value and deviation: {line!r}")
        s1, s2, value, sd = (_number(f, f"{path} b{m.group(1)}") for f in fields)
        starts.append((s1, s2))
        certified.append(value)
        sds.append(sd)
    stats_text = "\n".join(block("certified values"))
    stats = {}
    for key, pattern in _STAT.items():
        m = pattern.search(stats_text)
        if m is None:
            raise ValueError(f"{path}: no {pattern.pattern.split(':')[0]!r} among the certified values")
        stats[key] = _number(m.group(1), f"{path} {key}")

    rows = [line.split() for line in block("data") if line.strip()]
    columns = {len(r) for r in rows}
    if len(columns) != 1:
        raise ValueError(f"{path}: data rows have differing numbers of columns {sorted(columns)}")
    data = np.array([[_number(v, str(path)) for v in r] for r in rows])
    y_file, x = data[:, 0], data[:, 1:]  # NIST lists y first, then the predictor(s)
    x = x[:, 0] if x.shape[1] == 1 else x

    k = len(certified)
    declared_k = _COUNT.search(header)
    declared_n = _OBS.search(header)
    level = _LEVEL.search(header)
    if declared_k is None or int(declared_k.group(1)) != k:
        raise ValueError(f"{path}: the header declares {declared_k and declared_k.group(1)} parameters; found {k}")
    if declared_n is None or int(declared_n.group(1)) != len(y_file) or int(stats["n"]) != len(y_file):
        raise ValueError(f"{path}: the header declares {stats['n']:g} observations; found {len(y_file)}")
    if level is None:
        raise ValueError(f"{path}: no level of difficulty in the header")
    if name not in MODELS:
        raise ValueError(f"no model written for {name!r}; known: {', '.join(MODELS)}")

    formula = _formula(lines)
    log_response = formula.replace(" ", "").lower().startswith("log[y]")
    y = np.log(y_file) if log_response else y_file
    s = np.array(starts)
    return NistProblem(
        name=name, level=level.group(1).lower(), formula=formula, model=MODELS[name],
        starts=(s[:, 0], s[:, 1]), certified=np.array(certified), certified_sd=np.array(sds),
        rss=stats["rss"], residual_sd=stats["residual_sd"], dof=int(stats["dof"]), x=x, y=y, y_file=y_file,
    )


def load_all(root: str | Path = DEFAULT_ROOT, names: Iterable[str] = PROBLEMS) -> list[NistProblem]:
    return [load(name, root) for name in names]


# -- accuracy -------------------------------------------------------------------------


def lre(estimate: Any, certified: Any, cap: float = LRE_CAP) -> np.ndarray | float:
    """NIST's log relative error, elementwise, clipped to [0, cap]; 0 where the estimate is not finite.

    −log10(|e − c| / |c|), or the log absolute error −log10 |e| where c = 0. An estimate
    equal to the certified value scores the cap.
    """
    e = np.asarray(estimate, dtype=float)
    c = np.asarray(certified, dtype=float)
    e, c = np.broadcast_arrays(e, c)
    err = np.abs(e - c)
    scale = np.where(c == 0, 1.0, np.abs(c))
    with np.errstate(divide="ignore", invalid="ignore"):
        digits = -np.log10(err / scale)
    digits = np.where(err == 0, cap, digits)
    digits = np.where(np.isfinite(e), np.clip(digits, 0.0, cap), 0.0)
    return float(digits) if digits.ndim == 0 else digits


def min_lre(estimate: Any, certified: Any) -> float:
    """The smallest LRE over a vector (0 when the estimate is missing)."""
    if estimate is None:
        return 0.0
    return float(np.min(lre(estimate, certified)))


# -- the tools ------------------------------------------------------------------------


@dataclass(frozen=True)
class Fit:
    """What one tool returned for one (problem, start): estimates, standard errors, time."""

    params: np.ndarray
    stderr: np.ndarray | None
    seconds: float
    status: str = ""


def gradfit_setting() -> tuple[Any, dict[str, Any]]:
    """The one way gradfit fits every NIST problem: ``(optimizer, keyword arguments of gradfit.fit)``.

    To change how gradfit is benchmarked (here, in `benchmarks.hard` and in the tests),
    change this function alone: Levenberg–Marquardt (``"lm"``) with its default tolerances.
    """
    return "lm", {}


@cache
def gradfit_model(name: str, k: int):
    """The NIST model as a `gradfit.custom` model with parameters b1..bk (one per problem, so JIT caches hold)."""
    import jax.numpy as jnp

    import gradfit as gf

    f = MODELS[name]
    names = tuple(f"b{i + 1}" for i in range(k))

    def model(x, params):
        return f(x, [params[n] for n in names], jnp)

    model.__name__ = name
    return gf.custom(model, list(names), name=name)


def solve_gradfit(problem: NistProblem, start: Sequence[float], stderr: bool = True) -> Fit:
    """gradfit with `gradfit_setting`; standard errors from `gradfit.infer`.

    The standard errors are None without ``stderr``, or where `gradfit.infer` refuses them.
    """
    import gradfit as gf

    optimizer, settings = gradfit_setting()
    model = gradfit_model(problem.name, problem.k)
    data = (problem.x, problem.y)
    t0 = time.perf_counter()
    result = gf.fit(model, "normal", data, optimizer, init=np.asarray(start, dtype=float), **settings)
    seconds = time.perf_counter() - t0
    errors = None
    if stderr and result.status != "diverged" and np.all(np.isfinite(result.x)) and np.isfinite(result.loss):
        errors = gf.infer(result, model, gf.normal(), data).inference.stderr
    return Fit(result.x, None if errors is None else np.asarray(errors, dtype=float), seconds, result.status)


def curve_fit_stderr(jac: np.ndarray, rss: float, dof: int) -> np.ndarray:
    """√diag(σ̂²(JᵀJ)⁻¹), σ̂² = RSS/dof, by the SVD of J with tiny singular values dropped, as curve_fit does."""
    _, s, vt = np.linalg.svd(jac, full_matrices=False)
    keep = s > np.finfo(float).eps * max(jac.shape) * s[0]
    cov = (vt[keep].T / s[keep] ** 2) @ vt[keep]
    return np.sqrt(np.diag(cov) * rss / dof)


def solve_scipy(problem: NistProblem, start: Sequence[float], method: str = "lm", stderr: bool = True) -> Fit:
    """scipy.optimize.least_squares with its defaults (two-point finite-difference Jacobian)."""
    from scipy.optimize import least_squares

    f, x, y = problem.model, problem.x, problem.y

    def residuals(b):
        return f(x, b, np) - y

    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        out = least_squares(residuals, np.asarray(start, dtype=float), method=method)
        seconds = time.perf_counter() - t0
        errors = None
        if stderr:
            try:
                errors = curve_fit_stderr(out.jac, float(out.fun @ out.fun), problem.n - problem.k)
            except (np.linalg.LinAlgError, ValueError):
                errors = None
    return Fit(np.asarray(out.x), errors, seconds, out.message)


def solve_lmfit(problem: NistProblem, start: Sequence[float], stderr: bool = True) -> Fit:
    """lmfit's ``Minimizer.leastsq`` with its defaults; its own standard errors (None -> NaN).

    lmfit estimates the covariance within the fit whatever ``stderr`` says.
    """
    import lmfit

    f, x, y, names = problem.model, problem.x, problem.y, problem.param_names
    params = lmfit.Parameters()
    for name, value in zip(names, start):
        params.add(name, value=float(value))

    def residuals(p):
        return f(x, [p[n].value for n in names], np) - y

    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        out = lmfit.Minimizer(residuals, params).leastsq()
        seconds = time.perf_counter() - t0
    values = np.array([out.params[n].value for n in names])
    errors = [out.params[n].stderr for n in names]
    found = None if all(e is None for e in errors) else np.array([np.nan if e is None else e for e in errors])
    return Fit(values, found if stderr else None, seconds, out.message)


#: ``solver(problem, start, stderr=True) -> Fit``.
Solver = Callable[..., Fit]

#: The tools of the NIST table, by name.
TOOLS: dict[str, tuple[str, Solver]] = {
    "gradfit": ("gradfit (gradfit_setting)", solve_gradfit),
    "scipy_lm": ("scipy least_squares lm (MINPACK), 2-point Jacobian", partial(solve_scipy, method="lm")),
    "scipy_trf": ("scipy least_squares trf, 2-point Jacobian", partial(solve_scipy, method="trf")),
    "lmfit": ("lmfit Minimizer.leastsq", solve_lmfit),
}


# -- the table ------------------------------------------------------------------------


@dataclass(frozen=True)
class Score:
    """One tool on one (problem, start): the smallest LRE over parameters and over standard errors.

    ``seconds`` is the time of the call scored; ``first_seconds`` that of the first call
    when the pair was run twice (`table` with ``repeat=True``: for gradfit, the first
    call of a problem includes tracing and compiling), else equal to ``seconds``.
    """

    tool: str
    problem: str
    start: int
    lre: float
    se_lre: float
    seconds: float
    status: str
    first_seconds: float = math.nan

    @property
    def solved(self) -> bool:
        return self.lre >= SOLVED_LRE

    @property
    def se_ok(self) -> bool:
        return self.solved and self.se_lre >= SOLVED_LRE


def score(tool: str, solver: Solver, problem: NistProblem, which: int, repeat: bool = False) -> Score:
    """Run one solver on one pair (twice with ``repeat``, scoring the second call).

    An exception counts as a failure (LRE 0, time NaN), its message as the status.
    """
    times = []
    try:
        for _ in range(2 if repeat else 1):
            fit = solver(problem, problem.start(which))
            times.append(fit.seconds)
    except Exception as err:  # a benchmark reports a crash as a failure rather than stopping
        return Score(tool, problem.name, which, 0.0, 0.0, math.nan, f"error: {type(err).__name__}: {err}")
    return Score(tool, problem.name, which, min_lre(fit.params, problem.certified),
                 min_lre(fit.stderr, problem.certified_sd), times[-1], str(fit.status), times[0])


def table(
    root: str | Path = DEFAULT_ROOT,
    names: Sequence[str] = PROBLEMS,
    tools: Sequence[str] = tuple(TOOLS),
    starts: Sequence[int] = (1, 2),
    repeat: bool = False,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Every tool on every (problem, start): per-tool counts and per-pair scores, as plain data.

    ``summary[tool]`` holds ``pairs``, ``solved`` (min parameter LRE ≥ 4), ``se_ok``
    (solved, and min standard-error LRE ≥ 4), ``median_s`` over the pairs (of the second
    call of each with ``repeat``, and ``median_first_s`` of the first), and the pairs it
    failed (``failed``) and those whose standard errors fell short (``se_short``).
    ``scores`` lists every `Score` as a dict, in NIST's order. Times that could not be
    measured (a crash) are None, so the whole is valid JSON.
    """
    problems = [load(name, root) for name in names]
    scores: list[Score] = []
    for problem in problems:
        for which in starts:
            for tool in tools:
                row = score(tool, TOOLS[tool][1], problem, which, repeat)
                scores.append(row)
                if log is not None:
                    log(f"{problem.name} start {which} {tool}: LRE {row.lre:.1f}, SE LRE {row.se_lre:.1f}, "
                        f"{row.seconds:.4f} s; {row.status}")
    summary = {}
    for tool in tools:
        rows = [s for s in scores if s.tool == tool]
        summary[tool] = {
            "label": TOOLS[tool][0],
            "pairs": len(rows),
            "solved": sum(s.solved for s in rows),
            "se_ok": sum(s.se_ok for s in rows),
            "median_s": _median([s.seconds for s in rows]),
            "median_first_s": _median([s.first_seconds for s in rows]),
            "failed": [f"{s.problem}/{s.start}" for s in rows if not s.solved],
            "se_short": [f"{s.problem}/{s.start}" for s in rows if s.solved and not s.se_ok],
        }
    rows = [{k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in s.__dict__.items()}
            | {"solved": s.solved, "se_ok": s.se_ok} for s in scores]
    return {"summary": summary, "scores": rows, "solved_lre": SOLVED_LRE, "lre_cap": LRE_CAP}


def _median(values: Iterable[float]) -> float | None:
    finite = [v for v in values if math.isfinite(v)]
    return statistics.median(finite) if finite else None


def _digits(value: float) -> str:
    """An LRE to one decimal, truncated, so that 3.96 (not solved) never reads as 4.0."""
    return f"{math.floor(value * 10) / 10 + 0.0:.1f}"


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1e3:.1f} ms"


def markdown(result: dict[str, Any]) -> str:
    """The table as Markdown: per-tool counts, then every pair's min LRE (parameters / standard errors)."""
    summary = result["summary"]
    tools = list(summary)
    lines = ["| tool | solved | SE digits ≥ 4 (of solved) | median time | median first call |",
             "|---|---|---|---|---|"]
    for s in summary.values():
        lines.append(f"| {s['label']} | {s['solved']}/{s['pairs']} | {s['se_ok']}/{s['solved']} | "
                     f"{_ms(s['median_s'])} | {_ms(s['median_first_s'])} |")
    lines += ["", "Min LRE over parameters / over standard errors (truncated to one decimal):", "",
              "| problem | start | " + " | ".join(tools) + " |", "|---|---|" + "---|" * len(tools)]
    cells: dict[tuple[str, int], dict[str, str]] = {}
    for row in result["scores"]:
        cells.setdefault((row["problem"], row["start"]), {})[row["tool"]] = (
            f"{_digits(row['lre'])} / {_digits(row['se_lre'])}")
    for (problem, start), by_tool in cells.items():
        lines.append(f"| {problem} | {start} | " + " | ".join(by_tool.get(t, "") for t in tools) + " |")
    return "\n".join(lines)


if __name__ == "__main__":  # python -m benchmarks.nist [TOOL ...]
    import sys

    chosen = tuple(sys.argv[1:]) or tuple(TOOLS)
    print(markdown(table(tools=chosen, repeat=True, log=print)))

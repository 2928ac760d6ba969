"""Classic hard least-squares problems, from Moré, Garbow & Hillstrom (1981).

J. J. Moré, B. S. Garbow and K. E. Hillstrom, "Testing unconstrained optimization
software", ACM Transactions on Mathematical Software 7(1), 17–41 (1981): residuals
r(θ) ∈ ℝᵐ, a standard start θ₀, and the minimum of F(θ) = Σᵢ rᵢ(θ)². Each problem here
is written from the paper's formulas, numbered as in the paper, with the paper's
standard start and its value of F* (the paper prints values truncated, "8.21487...";
where NIST certifies the same problem, MGH09/MGH10/MGH17, its certified residual sum
of squares and parameters are used, to 11 digits).

A problem becomes a curve fit: the inputs are the row indices x = 0, 1, ..., m − 1
(floats), the targets y = 0, and the model f(x, θ) = r_x(θ) gathers the residual of
each row, so the least-squares loss Σ (f(xᵢ, θ) − yᵢ)² is F(θ):

    gf.fit(gradfit_model(p), "normal", (p.x, p.y), "lm", init=p.start)

A run *solves* a problem when it ends with F ≤ F*·(1 + 1e-6), F* taken at the top of
the paper's truncated interval (printed value plus one unit in its last digit), or
F ≤ 1e-10 where F* = 0. Several problems have other, local, minima, which the paper
reports (``local``): landing there is not solving.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np

#: Relative tolerance on F* for a problem to count as solved (absolute `ZERO_TOL` when F* = 0).
RTOL = 1e-6
ZERO_TOL = 1e-10

Residuals = Callable[[Sequence[Any], Any], Any]


@dataclass(frozen=True, eq=False)
class HardProblem:
    """One test problem: residuals ``r(θ, xp)`` (xp numpy or jax.numpy), its start and minimum.

    ``fstar`` is the global minimum of F = Σ r² as the source prints it and ``unit`` one
    unit in its last printed digit (0 for an exact value); ``local`` are the values of F
    at other minima the paper reports, each as (printed value, unit); ``minimiser`` a
    global minimiser where one is known exactly (or certified), else None.
    """

    number: int
    name: str
    residuals: Residuals
    m: int
    start: tuple[float, ...]
    fstar: float
    unit: float = 0.0
    local: tuple[tuple[float, float], ...] = ()
    minimiser: tuple[float, ...] | None = None
    note: str = ""

    @property
    def n(self) -> int:
        return len(self.start)

    @property
    def x(self) -> np.ndarray:
        """The row indices 0..m-1, as floats: the inputs of the curve fit."""
        return np.arange(self.m, dtype=float)

    @property
    def y(self) -> np.ndarray:
        return np.zeros(self.m)

    def model(self, x: Any, theta: Sequence[Any], xp: Any) -> Any:
        """f(x, θ) = r_x(θ): the residual of each row index in x."""
        return xp.take(self.residuals(theta, xp), x.astype(int))

    def value(self, theta: Sequence[float]) -> float:
        """F(θ) = Σ r(θ)², in numpy's float64."""
        r = np.asarray(self.residuals(np.asarray(theta, dtype=float), np), dtype=float)
        return float(r @ r)

    def solved(self, f: float) -> bool:
        """Whether F = f is the global minimum, within `RTOL` (or `ZERO_TOL` when F* = 0)."""
        if not math.isfinite(f):
            return False
        if self.fstar == 0:
            return f <= ZERO_TOL
        return f <= (self.fstar + self.unit) * (1 + RTOL)

    def at_local(self, f: float) -> bool:
        """Whether F = f is one of the local minima the paper reports (to its printed digits)."""
        return any(value * (1 - RTOL) <= f <= (value + unit) * (1 + RTOL) for value, unit in self.local)


def _vector(theta: Sequence[Any], xp: Any) -> Any:
    return xp.stack([xp.asarray(t) for t in theta])


# -- the problems, numbered as in the paper ------------------------------------------


def _rosenbrock(t, xp):
    x1, x2 = t
    return xp.stack([10 * (x2 - x1**2), 1 - x1])


def _freudenstein_roth(t, xp):
    x1, x2 = t
    return xp.stack([-13 + x1 + ((5 - x2) * x2 - 2) * x2, -29 + x1 + ((x2 + 1) * x2 - 14) * x2])


def _powell_badly_scaled(t, xp):
    x1, x2 = t
    return xp.stack([1e4 * x1 * x2 - 1, xp.exp(-x1) + xp.exp(-x2) - 1.0001])


def _brown_badly_scaled(t, xp):
    x1, x2 = t
    return xp.stack([x1 - 1e6, x2 - 2e-6, x1 * x2 - 2])


_BEALE_Y = np.array([1.5, 2.25, 2.625])


def _beale(t, xp):
    x1, x2 = t
    i = np.arange(1, 4)
    return _BEALE_Y - x1 * (1 - x2**i)


def _jennrich_sampson(t, xp):
    x1, x2 = t
    i = np.arange(1, 11, dtype=float)
    return 2 + 2 * i - (xp.exp(i * x1) + xp.exp(i * x2))


def _helical_valley(t, xp):
    x1, x2, x3 = t
    # θ = arctan(x2/x1)/2π, plus 1/2 when x1 < 0 (the paper's two branches)
    theta = xp.arctan(x2 / x1) / (2 * np.pi) + xp.where(x1 < 0, 0.5, 0.0)
    return xp.stack([10 * (x3 - 10 * theta), 10 * (xp.sqrt(x1**2 + x2**2) - 1), x3])


_BARD_Y = np.array([0.14, 0.18, 0.22, 0.25, 0.29, 0.32, 0.35, 0.39, 0.37, 0.58, 0.73, 0.96, 1.34, 2.10, 4.39])


def _bard(t, xp):
    x1, x2, x3 = t
    u = np.arange(1, 16, dtype=float)
    v = 16 - u
    w = np.minimum(u, v)
    return _BARD_Y - (x1 + u / (v * x2 + w * x3))


_GAUSSIAN_Y = np.array([0.0009, 0.0044, 0.0175, 0.0540, 0.1295, 0.2420, 0.3521, 0.3989,
                        0.3521, 0.2420, 0.1295, 0.0540, 0.0175, 0.0044, 0.0009])


def _gaussian(t, xp):
    x1, x2, x3 = t
    ti = (8 - np.arange(1, 16, dtype=float)) / 2
    return x1 * xp.exp(-x2 * (ti - x3) ** 2 / 2) - _GAUSSIAN_Y


_MEYER_Y = np.array([34780, 28610, 23650, 19630, 16370, 13720, 11540, 9744, 8261, 7030, 6005, 5147, 4427, 3820,
                     3307, 2872], dtype=float)


def _meyer(t, xp):
    x1, x2, x3 = t
    ti = 45 + 5 * np.arange(1, 17, dtype=float)
    return x1 * xp.exp(x2 / (ti + x3)) - _MEYER_Y


def _box_3d(t, xp):
    x1, x2, x3 = t
    ti = 0.1 * np.arange(1, 11, dtype=float)
    return xp.exp(-ti * x1) - xp.exp(-ti * x2) - x3 * (np.exp(-ti) - np.exp(-10 * ti))


def _powell_singular(t, xp):
    x1, x2, x3, x4 = t
    return xp.stack([x1 + 10 * x2, np.sqrt(5) * (x3 - x4), (x2 - 2 * x3) ** 2, np.sqrt(10) * (x1 - x4) ** 2])


def _wood(t, xp):
    x1, x2, x3, x4 = t
    return xp.stack([10 * (x2 - x1**2), 1 - x1, np.sqrt(90) * (x4 - x3**2), 1 - x3, np.sqrt(10) * (x2 + x4 - 2),
                     (x2 - x4) / np.sqrt(10)])


_KO_Y = np.array([0.1957, 0.1947, 0.1735, 0.1600, 0.0844, 0.0627, 0.0456, 0.0342, 0.0323, 0.0235, 0.0246])
_KO_U = np.array([4, 2, 1, 0.5, 0.25, 0.167, 0.125, 0.1, 0.0833, 0.0714, 0.0625])


def _kowalik_osborne(t, xp):
    x1, x2, x3, x4 = t
    u = _KO_U
    return _KO_Y - x1 * (u**2 + u * x2) / (u**2 + u * x3 + x4)


def _brown_dennis(t, xp):
    x1, x2, x3, x4 = t
    ti = np.arange(1, 21, dtype=float) / 5
    return (x1 + ti * x2 - np.exp(ti)) ** 2 + (x3 + x4 * np.sin(ti) - np.cos(ti)) ** 2


_OSBORNE1_Y = np.array([
    0.844, 0.908, 0.932, 0.936, 0.925, 0.908, 0.881, 0.850, 0.818, 0.784, 0.751, 0.718, 0.685, 0.658, 0.628, 0.603,
    0.580, 0.558, 0.538, 0.522, 0.506, 0.490, 0.478, 0.467, 0.457, 0.448, 0.438, 0.431, 0.424, 0.420, 0.414, 0.411,
    0.406,
])


def _osborne1(t, xp):
    x1, x2, x3, x4, x5 = t
    ti = 10 * np.arange(33, dtype=float)
    return _OSBORNE1_Y - (x1 + x2 * xp.exp(-ti * x4) + x3 * xp.exp(-ti * x5))


def _biggs_exp6(t, xp):
    x1, x2, x3, x4, x5, x6 = t
    ti = 0.1 * np.arange(1, 14, dtype=float)
    y = np.exp(-ti) - 5 * np.exp(-10 * ti) + 3 * np.exp(-4 * ti)
    return x3 * xp.exp(-ti * x1) - x4 * xp.exp(-ti * x2) + x6 * xp.exp(-ti * x5) - y


_WATSON_T = np.arange(1, 30, dtype=float) / 29


def _watson(t, xp):
    x = _vector(t, xp)
    n = len(t)
    powers = _WATSON_T[:, None] ** np.arange(n)  # t_i^(j-1), j = 1..n
    slope = powers[:, : n - 1] @ (np.arange(1, n) * x[1:])  # Σ_{j≥2} (j-1) x_j t_i^(j-2)
    level = powers @ x  # Σ_j x_j t_i^(j-1)
    return xp.concatenate([slope - level**2 - 1, xp.stack([x[0], x[1] - x[0] ** 2 - 1])])


PROBLEMS: tuple[HardProblem, ...] = (
    HardProblem(1, "Rosenbrock", _rosenbrock, 2, (-1.2, 1.0), 0.0, minimiser=(1.0, 1.0)),
    HardProblem(2, "Freudenstein-Roth", _freudenstein_roth, 2, (0.5, -2.0), 0.0, local=((48.9842, 1e-4),),
                minimiser=(5.0, 4.0), note="a local minimum F = 48.9842... at (11.41..., -0.8968...)"),
    HardProblem(3, "Powell badly scaled", _powell_badly_scaled, 2, (0.0, 1.0), 0.0,
                note="F = 0 at (1.098...e-5, 9.106...)"),
    HardProblem(4, "Brown badly scaled", _brown_badly_scaled, 3, (1.0, 1.0), 0.0, minimiser=(1e6, 2e-6)),
    HardProblem(5, "Beale", _beale, 3, (1.0, 1.0), 0.0, minimiser=(3.0, 0.5)),
    HardProblem(6, "Jennrich-Sampson", _jennrich_sampson, 10, (0.3, 0.4), 124.362, unit=1e-3,
                note="m = 10; the minimum at x1 = x2 = 0.2578..."),
    HardProblem(7, "Helical valley", _helical_valley, 3, (-1.0, 0.0, 0.0), 0.0, minimiser=(1.0, 0.0, 0.0)),
    HardProblem(8, "Bard", _bard, 15, (1.0, 1.0, 1.0), 8.21487e-3, unit=1e-8, local=((17.4286, 1e-4),),
                note="a local minimum F = 17.4286... at (0.8406..., -inf, -inf)"),
    HardProblem(9, "Gaussian", _gaussian, 15, (0.4, 1.0, 0.0), 1.12793e-8, unit=1e-13),
    HardProblem(10, "Meyer", _meyer, 16, (0.02, 4000.0, 250.0), 8.7945855171e1, unit=1e-9,
                minimiser=(5.6096364710e-3, 6.1813463463e3, 3.4522363462e2),
                note="NIST's MGH10; F* and the minimiser are NIST's certified values (paper: 87.9458...)"),
    HardProblem(12, "Box 3-D", _box_3d, 10, (0.0, 10.0, 20.0), 0.0, minimiser=(1.0, 10.0, 1.0),
                note="m = 10; F = 0 also at (10, 1, -1) and on the line x1 = x2, x3 = 0"),
    HardProblem(13, "Powell singular", _powell_singular, 4, (3.0, -1.0, 0.0, 1.0), 0.0,
                minimiser=(0.0, 0.0, 0.0, 0.0), note="the Jacobian is singular at the minimiser"),
    HardProblem(14, "Wood", _wood, 6, (-3.0, -1.0, -3.0, -1.0), 0.0, minimiser=(1.0, 1.0, 1.0, 1.0)),
    HardProblem(15, "Kowalik-Osborne", _kowalik_osborne, 11, (0.25, 0.39, 0.415, 0.39), 3.0750560385e-4,
                unit=1e-14, local=((1.02734e-3, 1e-8),),
                minimiser=(1.9280693458e-1, 1.9128232873e-1, 1.2305650693e-1, 1.3606233068e-1),
                note="NIST's MGH09 (certified values); a local minimum F = 1.02734...e-3 at (+inf, -14.07..., "
                     "-inf, -inf)"),
    HardProblem(16, "Brown-Dennis", _brown_dennis, 20, (25.0, 5.0, -5.0, -1.0), 85822.2, unit=0.1, note="m = 20"),
    HardProblem(17, "Osborne 1", _osborne1, 33, (0.5, 1.5, -1.0, 0.01, 0.02), 5.4648946975e-5, unit=1e-15,
                minimiser=(3.7541005211e-1, 1.9358469127, -1.4646871366, 1.2867534640e-2, 2.2122699662e-2),
                note="NIST's MGH17 (certified values)"),
    HardProblem(18, "Biggs EXP6", _biggs_exp6, 13, (1.0, 2.0, 1.0, 1.0, 1.0, 1.0), 0.0, local=((5.65565e-3, 1e-8),),
                minimiser=(1.0, 10.0, 1.0, 5.0, 4.0, 3.0), note="m = 13; a local minimum F = 5.65565...e-3"),
    HardProblem(20, "Watson", _watson, 31, (0.0,) * 6, 2.28767e-3, unit=1e-8, note="n = 6"),
)

BY_NAME = {p.name: p for p in PROBLEMS}


# -- solving ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Solution:
    """Where a solver ended on one problem: θ, F(θ), whether that solves it, its status, time."""

    problem: str
    theta: np.ndarray
    f: float
    solved: bool
    status: str
    seconds: float


def solve_minpack(problem: HardProblem) -> Solution:
    """The reference: scipy ``least_squares(method="lm")``, MINPACK's LM, with scipy's defaults.

    Defaults: ftol = xtol = gtol = 1e-8, at most 100·n evaluations besides the
    Jacobian's, the Jacobian by two-point finite differences, x_scale "jac" (MINPACK's
    column scaling).
    """
    from scipy.optimize import least_squares

    def residuals(theta):
        return np.asarray(problem.residuals(theta, np), dtype=float)

    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        out = least_squares(residuals, np.array(problem.start), method="lm")
        seconds = time.perf_counter() - t0
    f = problem.value(out.x)
    return Solution(problem.name, out.x, f, problem.solved(f), out.message, seconds)


@cache
def gradfit_model(name: str):
    """The problem as a `gradfit.custom` model, parameters t1..tn (one per problem, so JIT caches hold)."""
    import jax.numpy as jnp

    import gradfit as gf

    problem = BY_NAME[name]
    names = tuple(f"t{i + 1}" for i in range(problem.n))

    def model(x, params):
        return problem.model(x, [params[k] for k in names], jnp)

    model.__name__ = name.replace(" ", "_").replace("-", "_")
    return gf.custom(model, list(names), name=name)


def solve_gradfit(problem: HardProblem) -> Solution:
    """gradfit with the NIST benchmark's one setting (`benchmarks.nist.gradfit_setting`)."""
    import gradfit as gf

    from .nist import gradfit_setting

    optimizer, settings = gradfit_setting()
    t0 = time.perf_counter()
    result = gf.fit(gradfit_model(problem.name), "normal", (problem.x, problem.y), optimizer,
                    init=np.array(problem.start), **settings)
    seconds = time.perf_counter() - t0
    f = problem.value(result.x) if np.all(np.isfinite(result.x)) else math.nan
    return Solution(problem.name, result.x, f, problem.solved(f), result.status, seconds)


def table(solvers: dict[str, Callable[[HardProblem], Solution]] | None = None) -> dict[str, list[Solution]]:
    """Every solver on every problem (default: MINPACK alone)."""
    solvers = solvers or {"minpack": solve_minpack}
    return {name: [solve(p) for p in PROBLEMS] for name, solve in solvers.items()}


def markdown(results: dict[str, list[Solution]]) -> str:
    """One row a problem: F* and, for each solver, its final F: ✓ solved, "local" at a minimum the paper reports."""
    names = list(results)
    lines = ["| # | problem | m | n | F* | " + " | ".join(names) + " |", "|---|---|---|---|---|" + "---|" * len(names)]
    for i, p in enumerate(PROBLEMS):
        cells = [f"{s.f:.6g} {'✓' if s.solved else ('local' if p.at_local(s.f) else '✗')}"
                 for s in (results[n][i] for n in names)]
        lines.append(f"| {p.number} | {p.name} | {p.m} | {p.n} | {p.fstar:.6g} | " + " | ".join(cells) + " |")
    lines.append("| | solved | | | | " + " | ".join(f"{sum(s.solved for s in results[n])}/{len(PROBLEMS)}"
                                                   for n in names) + " |")
    return "\n".join(lines)


if __name__ == "__main__":  # python -m benchmarks.hard [gradfit]
    import sys

    chosen = {"minpack": solve_minpack}
    if "gradfit" in sys.argv[1:]:
        chosen["gradfit"] = solve_gradfit
    print(markdown(table(chosen)))

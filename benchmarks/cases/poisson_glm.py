"""Poisson regression to the maximum-likelihood optimum: gradfit against statsmodels and scikit-learn.

The problem: ``rows`` examples, ``cols`` standard-normal columns, counts drawn from a
Poisson model with log-rate 0.5 + Σ_j β_j x_j (β_j ~ N(0, 0.1²)), an intercept and the
log link. Every tool fits the same maximum-likelihood problem, from the same data,
and returns [intercept, β...]:

- gradfit: ``GLM(design, y, "poisson").fit(inference=False)``, the default fit
  (standardised coordinates, Newton with a subsample's Hessian on large data, to a
  Newton decrement of 1e-6 standard errors); ``gradfit_inference`` also computes the
  standard errors and likelihood statistics (one full-data Hessian more);
- statsmodels: ``GLM(y, X, family=Poisson()).fit()``, IRLS with its defaults (which
  also computes the covariance);
- scikit-learn: ``PoissonRegressor(alpha=0)`` with its defaults (L-BFGS), and with
  ``solver="newton-cholesky"`` for reference; both stop at their default tolerance
  (1e-4), about 1e-5 from the optimum in the coefficients but within 1e-8 of its loss.

Each tool gets the data in the form its API takes, built once before timing: the
design matrix with its constant column (statsmodels), the matrix without it
(scikit-learn), gradfit's `Design` (built from the columns like statsmodels' matrix;
its build time is in the notes). Before timing, the case fits gradfit and statsmodels
once and compares their full negative log-likelihoods (log y! included): the issue's
target is a relative gap of at most 1e-8.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from ..harness import Agreement, Case, Problem, Run, Target, Tool, cpu_count


def _data(p: dict[str, Any]):
    rng = np.random.default_rng(p["seed"])
    n, d = p["rows"], p["cols"]
    columns = {f"x{j + 1}": rng.normal(size=n) for j in range(d)}
    beta = rng.normal(0.0, 0.1, d)
    eta = 0.5 + sum(b * c for b, c in zip(beta, columns.values(), strict=True))
    y = rng.poisson(np.exp(eta)).astype(float)
    return columns, y


def _nll(params: np.ndarray, x: np.ndarray, y: np.ndarray) -> float:
    """The full Poisson negative log-likelihood, log y! included."""
    from math import lgamma

    eta = params[0] + x @ params[1:]
    log_factorial = np.array([lgamma(k + 1.0) for k in range(int(y.max()) + 1)])
    return float(np.sum(np.exp(eta) - y * eta + log_factorial[y.astype(int)]))


def _gradfit(design, y, inference: bool) -> Run:
    from gradfit.glm import GLM

    def run() -> np.ndarray:
        return GLM(design, y, "poisson").fit(inference=inference).x

    return run


def _statsmodels(exog, y) -> Run:
    import statsmodels.api as sm

    def run() -> np.ndarray:
        return np.asarray(sm.GLM(y, exog, family=sm.families.Poisson()).fit().params)

    return run


def _sklearn(x, y, solver: str) -> Run:
    from sklearn.linear_model import PoissonRegressor

    def run() -> np.ndarray:
        model = PoissonRegressor(alpha=0.0, solver=solver).fit(x, y)
        return np.concatenate([[model.intercept_], model.coef_])

    return run


def build(p: dict[str, Any]) -> Problem:
    from gradfit import design as design_mod

    columns, y = _data(p)
    t0 = time.perf_counter()
    design = design_mod.build(columns, list(columns))
    built = time.perf_counter() - t0
    x = np.column_stack(list(columns.values()))
    exog = np.column_stack([np.ones(len(y)), x])

    notes = [
        f"{p['rows']} rows × {p['cols']} columns (plus the intercept); counts with mean {y.mean():.3g}.",
        f"gradfit's Design from the {p['cols']} columns took {built:.3f} s to build (checks included), "
        "outside the timed call, as statsmodels' matrix is built outside its own.",
    ]
    try:  # the criterion: the same optimum, to 1e-8 of the loss
        import statsmodels.api as sm

        reference = np.asarray(sm.GLM(y, exog, family=sm.families.Poisson()).fit().params)
        ours = _gradfit(design, y, False)()
        l_ref, l_ours = _nll(reference, x, y), _nll(ours, x, y)
        gap = abs(l_ours - l_ref) / abs(l_ref)
        notes.append(
            f"full negative log-likelihood at the optimum: statsmodels IRLS {l_ref:.12g}, gradfit {l_ours:.12g}; "
            f"relative gap {gap:.2e} ({'within' if gap <= 1e-8 else 'NOT within'} the target 1e-8)."
        )
        try:
            from sklearn.linear_model import PoissonRegressor

            model = PoissonRegressor(alpha=0.0).fit(x, y)
            l_sk = _nll(np.concatenate([[model.intercept_], model.coef_]), x, y)
            notes.append(f"scikit-learn's default fit ends {abs(l_sk - l_ref) / abs(l_ref):.2e} (relative) "
                         "above statsmodels' loss.")
        except ImportError:
            pass
    except ImportError:
        notes.append("statsmodels is not installed: no reference optimum.")
    notes.append(f"the peers run with {cpu_count()} CPU(s) for their BLAS; gradfit on JAX's CPU backend.")

    tools = [
        Tool("gradfit", "gradfit GLM fit (Newton, standardised)", lambda: _gradfit(design, y, False), jax=True),
        Tool("gradfit_inference", "gradfit GLM fit + standard errors and statistics",
             lambda: _gradfit(design, y, True), jax=True),
        Tool("statsmodels", "statsmodels GLM, IRLS", lambda: _statsmodels(exog, y), requires=("statsmodels",)),
        Tool("sklearn", "scikit-learn PoissonRegressor(alpha=0), L-BFGS", lambda: _sklearn(x, y, "lbfgs"),
             requires=("sklearn",)),
        Tool("sklearn_newton", "scikit-learn PoissonRegressor(alpha=0), newton-cholesky",
             lambda: _sklearn(x, y, "newton-cholesky"), requires=("sklearn",)),
    ]
    return Problem(
        tools=tools,
        steps=1,
        baseline="gradfit",
        targets=[
            Target("gradfit faster than statsmodels' IRLS", "statsmodels", "gradfit", ">=", 1.0),
            Target("gradfit faster than scikit-learn's PoissonRegressor(alpha=0)", "sklearn", "gradfit", ">=", 1.0),
        ],
        agreements=[
            Agreement("gradfit_inference", "gradfit", 1e-12),
            Agreement("statsmodels", "gradfit", 1e-6),
            Agreement("sklearn", "gradfit", 1e-3, required=False),
            Agreement("sklearn_newton", "gradfit", 1e-3, required=False),
        ],
        notes=notes,
    )


CASE = Case(
    name="poisson_glm",
    title="Poisson regression (log link) to the maximum-likelihood optimum, float64",
    params={"rows": 1_000_000, "cols": 20, "seed": 0},
    build=build,
    quick={"rows": 2_000, "cols": 5},
)

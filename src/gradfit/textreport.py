"""A plain-text fit report in lmfit's layout: ``fit_report(result)``.

Sections, as lmfit prints them: ``[[Model]]``, ``[[Fit Statistics]]`` (with the
likelihood statistics statsmodels users expect: log-likelihood, deviance, Pearson χ²,
and which covariance the standard errors come from), ``[[Variables]]`` (value ±
standard error, its size relative to the value, the t (or z) value and its two-sided
p-value, and the Wald and profile-likelihood intervals; parameters held fixed or
stopped at a bound are marked so, without uncertainties) and ``[[Correlations]]``. A
fit without inference, or one that did not reach a stationary point, is reported
without uncertainties, with the reason.
"""

from __future__ import annotations

import math

import numpy as np

from .errors import GradfitError
from .result import FitResult, Inference


def _g(value: float | None, digits: int = 7) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float) and not math.isfinite(value):
        return "inf" if value > 0 else ("-inf" if value < 0 else "nan")
    return f"{value:.{digits}g}"


def fit_report(
    result: FitResult,
    *,
    variables: bool = True,
    correlations: bool = True,
    min_correl: float = 0.1,
) -> str:
    """The report of a fit as text: model, statistics, variables and correlations.

    ``variables=False`` leaves out the [[Variables]] section (for callers that print
    the parameters their own way); correlations below ``min_correl`` in size are not
    listed. A `MultiFit` (many starts) is reported as a table of its starts, then the
    best start's report.
    """
    if hasattr(result, "best") and hasattr(result, "losses"):  # a MultiFit
        return _starts_report(result, variables=variables, correlations=correlations, min_correl=min_correl)
    if not isinstance(result, FitResult):
        raise GradfitError(f"fit_report takes a FitResult or a MultiFit, not {type(result).__name__}")
    inf = result.inference
    lines = ["[[Model]]", f"    {result.model}", f"    loss {result.objective}"]
    lines.append("[[Fit Statistics]]")
    stats = fit_statistics(result)
    width = max(len(k) for k, _ in stats)
    lines += [f"    {k:<{width}} = {v}" for k, v in stats]
    lines.append(f"    stopped: {result.stopped}")
    if variables:
        lines += _variables(result, inf)
    if correlations and inf is not None and inf.covariance is not None:
        lines += correlation_lines(inf, min_correl)
    return "\n".join(lines)


def _starts_report(fits, **options) -> str:
    """Each start's outcome in a line, best first, then the best start's own report."""
    order = np.argsort(np.where(np.isfinite(fits.losses), fits.losses, np.inf), kind="stable")
    lines = [f"[[Starts]] {len(fits)} fits, best first"]
    for s in order:
        fit = fits[int(s)]
        values = ", ".join(f"{n}={_g(v, 6)}" for n, v in zip(_flat_names(fit), fit.x))
        lines.append(f"    start {int(s)}: loss {_g(fit.loss)}, {fit.status}, {values}")
    lines.append(f"[[Best start]] start {int(order[0])}")
    return "\n".join(lines) + "\n" + fit_report(fits[int(order[0])], **options)


def fit_statistics(result: FitResult) -> list[tuple[str, str]]:
    """The [[Fit Statistics]] of a fit as (name, value) pairs, in the report's order.

    The final loss is followed by what it is (`loss_meaning`): the losses drop
    constants of their negative log-likelihoods, so it is not -log-likelihood itself.
    """
    inf = result.inference
    stats: list[tuple[str, str]] = [
        ("# fitting method", _method(result)),
        ("# steps", str(result.steps)),
        ("# data points", str(result.settings.get("n_examples", inf.n if inf else "?"))),
        ("# variables", _variable_count(result)),
        ("status", result.status),
        ("final loss", f"{_g(result.loss)} ({loss_meaning(result)})"),
        ("gradient norm", _g(result.grad_norm, 3)),
    ]
    if inf is not None:
        if math.isfinite(inf.decrement):  # not when no parameter is left to estimate (all fixed or at bounds)
            stats.append(("Newton decrement", f"{_g(inf.decrement, 3)} (standard errors from the optimum)"))
        if inf.chisqr is not None:
            stats += [("chi-square", _g(inf.chisqr)), ("reduced chi-square", _g(inf.redchi)),
                      ("R-squared", _g(inf.rsquared)), ("sigma (estimated)", _g(inf.sigma))]
        stats += [("log-likelihood", _g(inf.loglik, 10))]
        if inf.chisqr is None:  # for least squares both are the chi-square again
            if inf.deviance is not None:
                stats.append(("deviance", _g(inf.deviance, 10)))
            if inf.pearson_chi2 is not None:
                stats.append(("Pearson chi-square", _g(inf.pearson_chi2, 10)))
        stats += [("Akaike info crit", _g(inf.aic, 10)), ("Bayesian info crit", _g(inf.bic, 10)),
                  ("degrees of freedom", str(inf.df_resid))]
        if inf.covariance_form:
            stats += [("standard errors", covariance_description(inf)), ("intervals", interval_description(inf))]
    return stats


def _variable_count(result: FitResult) -> str:
    fixed = len(result.settings.get("fixed") or {})
    free = len(result.x) - fixed
    return f"{free} ({fixed} fixed)" if fixed else str(free)


def covariance_description(inf: Inference) -> str:
    """Which covariance the standard errors are the square roots of, in words and symbols."""
    jtj = "JᵀWJ" if inf.weighted else "JᵀJ"
    form = inf.covariance_form
    if form == "gauss-newton":
        return f"σ̂²({jtj})⁻¹ (Gauss-Newton, σ̂ from the residuals)"
    if form == "gauss-newton, absolute sigma":
        return f"({jtj})⁻¹ (Gauss-Newton, absolute σ: the σ_i taken as known)"
    if form == "gauss-newton, fixed sigma":
        return f"σ²({jtj})⁻¹ (Gauss-Newton, σ fixed by the loss)"
    if form == "observed":
        at = " at σ̂" if inf.dist == "t" else ""
        return f"observed information H⁻¹ (H the Hessian of the negative log-likelihood{at})"
    if form == "fisher":
        return "expected (Fisher) information I⁻¹"
    return form


def interval_description(inf: Inference) -> str:
    """The law of the t (or z) values: Student's t with the residual degrees of freedom, or the normal."""
    level = f"{100 * inf.level:g}%"
    if inf.dist == "t":
        return f"Student t with {inf.df} degrees of freedom, {level}"
    return f"normal (z), {level}"


def p_text(p: float) -> str:
    """A p-value for print: three digits, and below what a double holds as such."""
    if not math.isfinite(p):
        return ""
    return f"{p:.3g}" if p > 0 else "<1e-300"


#: What each loss's value is, as `gradfit.losses` computes it by default.
_MEANINGS = {
    "normal": "sum of squared residuals",
    "poisson": "negative log-likelihood without its log y! terms",
    "von_mises": "negative log-likelihood without its log(2π I0(κ)) terms",
}


def loss_meaning(result: FitResult) -> str:
    """What the final loss of ``result`` is: e.g. the sum of squared residuals, or the
    negative log-likelihood without the log y! terms of a Poisson loss."""
    objective = result.objective
    name = objective.split("(")[0].split(",")[0].strip()
    full = "full=True" in objective or ("sigma=" in objective and "sigma=None" not in objective)
    meaning = "negative log-likelihood" if full else _MEANINGS.get(name, "negative log-likelihood")
    if "absolute_sigma" in result.settings:  # recorded for weighted fits (sigma= or weights=)
        meaning = ("weighted sum of squared residuals, Σ w (f - y)²" if meaning == "sum of squared residuals"
                   else f"weighted {meaning}")
    if objective.endswith(", mean"):
        meaning = ("mean squared residual" if meaning == "sum of squared residuals"
                   else f"{meaning}, averaged over the examples")
    return meaning


def _method(result: FitResult) -> str:
    spec = result.optimizer
    name = spec.get("name", "?")
    variant = spec.get("variant")
    text = f"{name} ({variant})" if variant else name
    if spec.get("polish"):
        text += f", polished by {spec['polish']}"
    return text


def _variables(result: FitResult, inf: Inference | None) -> list[str]:
    names = inf.names if inf is not None else _flat_names(result)
    values = result.x
    if inf is None:
        head = "[[Variables]] (no uncertainties: no inference was run on this fit)"
    elif inf.stderr is None:
        head = f"[[Variables]] (no uncertainties: {inf.message})"
    else:
        head = f"[[Variables]] (intervals at {100 * inf.level:g}%: Wald, and profile likelihood where computed)"
    lines = [head]
    width = max(len(n) for n in names) + 1
    excluded = excluded_parameters(result)
    for j, name in enumerate(names):
        text = f"    {name + ':':<{width}} {_g(float(values[j])):>14}"
        if name in excluded:
            text += f" ({excluded[name]})"
        elif inf is not None and inf.stderr is not None:
            se = float(inf.stderr[j])
            rel = f" ({100 * abs(se / values[j]):.2f}%)" if values[j] != 0 else ""
            text += f" +/- {_g(se, 5):<11}{rel:<10}"
            if inf.tvalues is not None:
                text += f"  {inf.dist} = {_g(float(inf.tvalues[j]), 4):<9}  p = {p_text(float(inf.pvalues[j])):<9}"
            lo, hi = inf.wald[j]
            text += f"  Wald [{_g(float(lo), 6)}, {_g(float(hi), 6)}]"
            if name in inf.profile:
                plo, phi = inf.profile[name]
                text += f"  profile [{_g(plo, 6)}, {_g(phi, 6)}]"
        lines.append(text.rstrip())
    return lines


def excluded_parameters(result: FitResult) -> dict[str, str]:
    """Parameters not estimated freely: name -> ``fixed``, ``at lower bound`` or ``at upper bound``."""
    inf = result.inference
    if inf is not None and inf.excluded:
        return dict(inf.excluded)
    out = {name: "fixed" for name in result.settings.get("fixed") or {}}
    out.update({name: f"at {side} bound" for name, side in (result.settings.get("at_bound") or {}).items()
                if name not in out})
    return out


def _flat_names(result: FitResult) -> list[str]:
    names = []
    for name, shape in result.shapes:
        if shape == ():
            names.append(name)
        else:
            names.extend(f"{name}[{','.join(map(str, i))}]" for i in np.ndindex(*shape))
    return names


def correlation_lines(inf: Inference, min_correl: float = 0.1) -> list[str]:
    """The [[Correlations]] section: pairs of parameters correlated by at least ``min_correl`` in size."""
    corr = inf.correlation
    pairs = []
    for i in range(len(inf.names)):
        for j in range(i + 1, len(inf.names)):
            if abs(corr[i, j]) >= min_correl:
                pairs.append((abs(corr[i, j]), inf.names[i], inf.names[j], corr[i, j]))
    if not pairs:
        return [f"[[Correlations]] (all correlations are < {min_correl:.3f})"]
    pairs.sort(key=lambda p: -p[0])
    width = max(len(f"C({a}, {b})") for _, a, b, _ in pairs)
    lines = [f"[[Correlations]] (unreported correlations are < {min_correl:.3f})"]
    lines += [f"    {f'C({a}, {b})':<{width}} = {c:+.4f}" for _, a, b, c in pairs]
    return lines

"""NIST StRD nonlinear regression: how many of the 54 (problem, start) pairs each tool solves, and how fast.

The problems, the accuracy measure (NIST's log relative error, LRE) and every tool's
settings are in `benchmarks.nist`. A case here is one table rather than one fit, so:

- ``build`` first scores every tool on every pair once (untimed by the harness):
  solved (min LRE over parameters ≥ 4), standard errors to ≥ 4 digits among the
  solved, and each fit's own time. The counts are the case's notes; the whole table
  (every pair's LREs and times) is its ``details`` in the JSON;
- each tool's timed call is one sweep over all the pairs, fits only (no standard
  errors, except lmfit, which always estimates them), and returns the pairs' min
  parameter LREs in place of parameters, so "max abs Δφ vs baseline" reads as the
  largest difference in correct digits between a tool and gradfit on any pair.
  "per step" is per fit (steps = the number of pairs).

Without the NIST data (../shared/data/nist, not shipped) the case measures nothing
and says so in its notes. ``--quick`` fits MGH09 alone, from both starts, so gradfit
compiles once (``--set problems=Misra1a,MGH09`` picks others).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..harness import Case, Problem, Run, Tool

#: The tools of the table, gradfit (the baseline) first.
TOOLS = ("gradfit", "scipy_lm", "scipy_trf", "lmfit")
_REQUIRES = {"gradfit": (), "scipy_lm": ("scipy",), "scipy_trf": ("scipy",), "lmfit": ("lmfit",)}


def _names(p: dict[str, Any]) -> tuple[str, ...]:
    from .. import nist

    if p["problems"] == "all":
        return nist.PROBLEMS
    names = tuple(n.strip() for n in str(p["problems"]).split(",") if n.strip())
    unknown = [n for n in names if n not in nist.PROBLEMS]
    if unknown:
        raise ValueError(f"no NIST problem {', '.join(unknown)}; known: {', '.join(nist.PROBLEMS)}")
    return names


def _sweep(tool: str, problems, starts) -> Run:
    from .. import nist

    solve = nist.TOOLS[tool][1]
    pairs = [(problem, problem.start(which)) for problem in problems for which in starts]

    def run() -> np.ndarray:
        out = np.zeros(len(pairs))
        for i, (problem, start) in enumerate(pairs):
            try:
                out[i] = nist.min_lre(solve(problem, start, stderr=False).params, problem.certified)
            except Exception:  # a crash scores 0 digits, as in the table
                out[i] = 0.0
        return out

    return run


def _absent(root) -> Problem:
    def prepare() -> Run:
        return lambda: np.zeros(1)

    return Problem(
        tools=[Tool("gradfit", "nothing measured", prepare)],
        steps=1,
        notes=[f"The NIST data are not at {root} (they are not shipped with the repository): nothing was measured."],
    )


def _summary_note(s: dict[str, Any]) -> str:
    failed = ", ".join(s["failed"]) or "none"
    short = ", ".join(s["se_short"]) or "none"
    median = "-" if s["median_s"] is None else f"{s['median_s'] * 1e3:.1f} ms"
    return (f"{s['label']}: solved {s['solved']}/{s['pairs']}; standard errors to ≥ 4 digits on "
            f"{s['se_ok']}/{s['solved']} solved; median {median} a fit (first calls included); "
            f"not solved: {failed}; standard errors short: {short}.")


def build(p: dict[str, Any]) -> Problem:
    from .. import nist

    root = nist.DEFAULT_ROOT
    names = _names(p)
    if not all((root / f"{name}.dat").is_file() for name in names):
        return _absent(root)
    starts = tuple(p["starts"])
    problems = [nist.load(name, root) for name in names]
    result = nist.table(root, names, TOOLS, starts)
    summary = result["summary"]
    pairs = len(problems) * len(starts)
    g = summary["gradfit"]
    rivals = max(summary[t]["solved"] for t in TOOLS[1:])
    target_solved = pairs - 1 if pairs == 54 else pairs
    met = {
        "solved": g["solved"] >= target_solved,
        "se": g["solved"] > 0 and g["se_ok"] >= 0.9 * g["solved"],
        "rivals": g["solved"] > rivals,
    }
    said = {key: "met" if value else "not met" for key, value in met.items()}
    notes = [
        f"{len(problems)} problems × starts {starts} = {pairs} pairs. Solved: the smallest LRE over the "
        f"parameters is at least {nist.SOLVED_LRE:g} (LREs capped at {nist.LRE_CAP:g}). Every tool runs its "
        "library's defaults, one setting for all pairs (benchmarks/nist.py says which).",
        *(_summary_note(summary[t]) for t in TOOLS),
        f"Targets for gradfit: solve ≥ {target_solved}/{pairs} ({said['solved']}); standard errors to ≥ 4 digits "
        f"on ≥ 90% of the solved ({said['se']}); solve more than scipy and lmfit ({said['rivals']}).",
        "The timed call of each tool sweeps all the pairs, fits only; it returns per-pair min LREs, so Δφ vs "
        "baseline is the largest difference in digits on one pair.",
    ]
    tools = [
        Tool(name, nist.TOOLS[name][0], (lambda name=name: _sweep(name, problems, starts)), jax=name == "gradfit",
             requires=_REQUIRES[name])
        for name in TOOLS
    ]
    return Problem(tools=tools, steps=pairs, notes=notes, details=result)


CASE = Case(
    name="nist",
    title="NIST StRD nonlinear regression, 27 problems × 2 starts: solved, standard errors, time",
    params={"problems": "all", "starts": (1, 2)},
    build=build,
    quick={"problems": "MGH09"},
)

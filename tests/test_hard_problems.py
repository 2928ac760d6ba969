"""Moré, Garbow & Hillstrom's least-squares test problems (benchmarks/hard.py).

The formulas are checked against the paper: at a known minimiser F = Σ r² is the
paper's F* (0, or NIST's certified value where NIST certifies the problem), and
MINPACK's Levenberg–Marquardt (scipy ``least_squares(method="lm")``), the reference,
ends at a minimum the paper reports, never below the global one; gradfit's
Levenberg–Marquardt must solve at least as many.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

# benchmarks/ sits beside src/ and is not installed: import it from the checkout.
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import hard  # noqa: E402

NAMES = [p.name for p in hard.PROBLEMS]


def _powell_badly_scaled_minimiser() -> tuple[float, float]:
    """The root of x1·x2 = 1e-4, e^{−x1} + e^{−x2} = 1.0001 with x1 small, from the maths."""
    from scipy.optimize import brentq

    def g(x1):
        return np.exp(-x1) + np.exp(-1e-4 / x1) - 1.0001

    x1 = brentq(g, 5e-6, 2e-5, xtol=1e-22, rtol=1e-15)
    return x1, 1e-4 / x1


@pytest.fixture(scope="module")
def minpack() -> dict[str, hard.Solution]:
    return {s.problem: s for s in hard.table()["minpack"]}


def test_the_set_covers_the_classic_problems():
    required = {"Rosenbrock", "Freudenstein-Roth", "Powell badly scaled", "Brown badly scaled", "Beale",
                "Jennrich-Sampson", "Helical valley", "Bard", "Box 3-D", "Powell singular", "Wood",
                "Kowalik-Osborne", "Meyer", "Osborne 1", "Biggs EXP6"}
    assert required <= set(NAMES)
    assert len(set(NAMES)) == len(NAMES) and len({p.number for p in hard.PROBLEMS}) == len(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_a_problem_is_a_curve_fit_of_its_residuals(name):
    p = hard.BY_NAME[name]
    start = np.array(p.start)
    r = np.asarray(p.residuals(start, np))
    assert r.shape == (p.m,) and p.m >= p.n and np.all(np.isfinite(r))
    # the model gathers the residual of each row, in any order: F is the least-squares loss
    rows = np.array([p.m - 1, 0, p.m // 2], dtype=float)
    np.testing.assert_array_equal(p.model(rows, start, np), r[rows.astype(int)])
    assert p.value(start) == pytest.approx(np.sum((p.model(p.x, start, np) - p.y) ** 2), rel=1e-15)
    assert p.value(start) > (p.fstar + p.unit) * (1 + hard.RTOL)  # the start is not a solution


def _minimisers():
    out = [(p.name, p.minimiser) for p in hard.PROBLEMS if p.minimiser is not None]
    return out + [("Powell badly scaled", None)]


@pytest.mark.parametrize(("name", "theta"), _minimisers())
def test_the_residuals_at_the_papers_minimiser_give_fstar(name, theta):
    p = hard.BY_NAME[name]
    if theta is None:
        theta = _powell_badly_scaled_minimiser()
        assert theta[0] == pytest.approx(1.098e-5, rel=1e-3) and theta[1] == pytest.approx(9.106, rel=1e-3)
    f = p.value(theta)
    if p.fstar == 0:
        assert f <= 1e-24
    else:  # NIST's certified minimiser and RSS, to 11 digits
        assert f == pytest.approx(p.fstar, rel=1e-9)
    assert p.solved(f)


def test_the_other_minima_the_paper_gives(minpack):
    # Jennrich-Sampson: F = 124.362... at x1 = x2 = 0.2578...
    js = hard.BY_NAME["Jennrich-Sampson"]
    assert js.value([0.2578, 0.2578]) == pytest.approx(124.362, abs=1e-3)
    # Freudenstein-Roth's local minimum at (11.41..., -0.8968...) has F = 48.9842...
    fr = minpack["Freudenstein-Roth"]
    assert fr.theta[0] == pytest.approx(11.41, abs=0.01) and fr.theta[1] == pytest.approx(-0.8968, abs=1e-4)
    assert hard.BY_NAME["Freudenstein-Roth"].at_local(fr.f)


@pytest.mark.parametrize("name", NAMES)
def test_minpack_ends_at_a_minimum_the_paper_reports(minpack, name):
    p, s = hard.BY_NAME[name], minpack[name]
    assert s.solved or p.at_local(s.f), (s.f, s.status)
    assert s.f >= p.fstar * (1 - hard.RTOL)  # nobody beats the global minimum


def test_minpack_solves_all_but_freudenstein_roth(minpack):
    # From the standard start MINPACK's LM descends into Freudenstein-Roth's local
    # valley, as the paper's remark on that problem leads one to expect.
    assert {name for name, s in minpack.items() if not s.solved} == {"Freudenstein-Roth"}


def test_the_table_marks_local_minima(minpack):
    text = hard.markdown({"minpack": list(minpack.values())})
    (row,) = [line for line in text.splitlines() if "| Freudenstein-Roth |" in line]
    assert row.endswith(" local |")
    assert f"| | solved | | | | {len(NAMES) - 1}/{len(NAMES)} |" in text


# -- gradfit ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["Rosenbrock", "Helical valley", "Powell singular", "Meyer"])
def test_gradfit_solves_a_classic(name):
    s = hard.solve_gradfit(hard.BY_NAME[name])
    assert s.solved, (s.f, s.status)


@pytest.mark.slow
def test_gradfit_solves_at_least_as_many_as_minpack(minpack):
    ours = {p.name: hard.solve_gradfit(p) for p in hard.PROBLEMS}
    solved = {name for name, s in ours.items() if s.solved}
    assert len(solved) >= sum(s.solved for s in minpack.values()), sorted(set(NAMES) - solved)

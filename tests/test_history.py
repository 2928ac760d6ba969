"""The history a fit keeps: bounded by a budget, thinned evenly, start and end always kept."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import gradfit as gf
from gradfit.history import Recorder, default_max_rows

X = np.linspace(0.0, 2.5, 6)
Y = np.array([0.9, 1.1, 1.6, 1.7, 2.2, 2.4])


def test_recorder_keeps_every_stride_th_row_within_budget():
    rec = Recorder(max_rows=10, starts=1, width=1)
    for row0 in range(0, 100, 7):  # uneven chunks
        index = np.arange(row0, min(row0 + 7, 100))
        rec.add(row0, index[:, None, None].astype(float), index[:, None].astype(float), limit=100)
    index, rows, losses = rec.arrays()
    assert len(index) <= 10 and index[0] == 0
    assert np.all(np.diff(index) == rec.stride)  # evenly spaced
    assert rec.stride == 16 and index.tolist() == list(range(0, 100, 16))
    np.testing.assert_array_equal(rows[:, 0, 0], index)  # each kept row is the row recorded at its index
    np.testing.assert_array_equal(losses[:, 0], index)


def test_thinned_history_is_the_full_history_at_fewer_steps():
    opt = gf.adam(0.01)
    full = gf.fit("linear", "normal", (X, Y), opt, init=[0.2, -0.1], steps=5000, tol=0)
    thin = gf.fit("linear", "normal", (X, Y), opt, init=[0.2, -0.1], steps=5000, tol=0, max_history=50)
    assert len(thin.history) <= 50 + 2  # the budget, plus the end row and the final point
    np.testing.assert_array_equal(thin.x, full.x)
    assert thin.loss == full.loss
    assert thin.history.step[0] == 0 and thin.history.step[-1] == 5000
    at = np.searchsorted(full.history.step, thin.history.step)
    np.testing.assert_array_equal(full.history.step[at], thin.history.step)
    np.testing.assert_array_equal(full.history.params[at], thin.history.params)
    np.testing.assert_array_equal(full.history.loss[at], thin.history.loss)
    assert thin.settings["history_thinned_to_every"] > 1


def test_a_diverged_thinned_fit_still_ends_at_its_last_finite_row():
    full = gf.fit("linear", "normal", (X, Y), gf.gd(0.25), steps=5000, tol=0)
    thin = gf.fit("linear", "normal", (X, Y), gf.gd(0.25), steps=5000, tol=0, max_history=8)
    assert full.status == thin.status == "diverged"
    assert thin.steps == full.steps and thin.history.step[-1] == full.history.step[-1]
    np.testing.assert_array_equal(thin.x, full.x)
    np.testing.assert_array_equal(thin.history.params[-1], full.history.params[-1])


def test_default_budget_bounds_a_run_of_any_length():
    assert default_max_rows(2, 1) * 6 <= 1 << 19
    assert default_max_rows(2, 10_000) * 6 * 10_000 <= 1 << 24
    assert default_max_rows(10**6, 1) >= 16
    result = gf.fit("linear", "normal", (X, Y), gf.gd(0.01), steps=200_000, tol=0)
    assert len(result.history) <= default_max_rows(2, 1) + 2
    assert result.history.step[-1] == 200_000


@pytest.mark.slow
def test_ten_million_steps_stay_within_memory_and_json_budgets(tmp_path):
    """The issue's measure: 10⁷ steps under 1 GB of RSS and a JSON under 50 MB."""
    out = tmp_path / "long.json"
    # The peak is read from /proc (VmHWM, reset by exec): ru_maxrss would also count the
    # forking pytest process, which it inherits across fork and exec.
    script = (
        "import pathlib, re, resource, sys, gradfit as gf\n"
        "r = gf.fit('gabor', 'normal', gf.gabor_data(0), gf.adam(0.01), steps=10**7, tol=0)\n"
        "r.to_json(sys.argv[1])\n"
        "status = pathlib.Path('/proc/self/status')\n"
        "hwm = re.search(r'VmHWM:\\s+(\\d+)', status.read_text()) if status.exists() else None\n"
        "print(hwm.group(1) if hwm else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(out)], capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr
    peak_kib = int(done.stdout.split()[-1])
    assert peak_kib < 1024 * 1024
    assert out.stat().st_size < 50 * 1024 * 1024
    d = json.loads(out.read_text())
    assert d["steps"] == 10**7 and d["history"]["step"][0] == 0 and d["history"]["step"][-1] == 10**7

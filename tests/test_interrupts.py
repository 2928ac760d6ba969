"""Ctrl-C and SIGTERM: the fit finishes its chunk, keeps every finished step, and can be resumed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import gradfit as gf
from gradfit import checkpoint as checkpoints
from gradfit import interrupts

X = np.linspace(0.0, 2.5, 6)
Y = np.array([0.9, 1.1, 1.6, 1.7, 2.2, 2.4])


def signal_at(chunk: int, signum=signal.SIGINT):
    calls = []

    def progress(done, total, loss):
        calls.append(done)
        if len(calls) == chunk:
            os.kill(os.getpid(), signum)

    return progress


def without_timing(result):
    d = result.to_dict()
    d.pop("elapsed")
    return json.dumps(d, sort_keys=True)


def test_deferred_notes_a_signal_and_a_second_ctrl_c_stops_at_once():
    before = signal.getsignal(signal.SIGINT)
    with interrupts.deferred() as pending:
        assert not pending
        os.kill(os.getpid(), signal.SIGTERM)
        assert pending and pending.name == "SIGTERM"
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is before


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_fit_keeps_its_work_and_resumes_to_the_same_end(tmp_path, signum):
    path = tmp_path / "fit.ckpt"
    args = ("linear", "normal", (X, Y), gf.adam(0.01))
    with pytest.raises(gf.Interrupted) as info:
        gf.fit(*args, init=[0.2, -0.1], steps=9000, tol=0, checkpoint=path, progress=signal_at(2, signum))
    part = info.value.result
    assert isinstance(info.value, KeyboardInterrupt)
    assert part.status == "interrupted" and signal.Signals(signum).name in part.stopped
    assert part.steps == 2 * 2048  # two whole chunks, nothing of the third
    assert part.history.step[-1] == part.steps and len(part.history) == part.steps + 1
    np.testing.assert_array_equal(part.x, part.history.params[-1])
    assert info.value.checkpoint == path and checkpoints.load(path).steps_done == part.steps
    whole = gf.fit(*args, init=[0.2, -0.1], steps=9000, tol=0)
    # the partial fit is the whole fit's first steps
    np.testing.assert_array_equal(whole.history.params[: part.steps + 1], part.history.params)
    resumed = gf.fit(*args, init=[0.2, -0.1], steps=9000, tol=0, resume=path)
    assert without_timing(resumed) == without_timing(whole)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handlers given back


def test_interrupted_many_starts_carry_a_multifit():
    starts = np.random.default_rng(0).uniform(-1, 1, size=(5, 2))
    with pytest.raises(gf.Interrupted) as info:
        gf.fit("linear", "normal", (X, Y), gf.gd(0.01), init=starts, steps=9000, tol=0, progress=signal_at(1))
    fits = info.value.result
    assert len(fits) == 5 and {f.status for f in fits} == {"interrupted"}
    assert str(info.value) == f"fit interrupted by SIGINT after {fits[0].steps} steps"
    assert info.value.checkpoint is None


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_real_signal_from_outside(tmp_path, signum):
    """Another process signals a running fit: it stops with its result, its checkpoint and exit 130."""
    path, out = tmp_path / "run.ckpt", tmp_path / "part.json"
    script = (
        "import sys, gradfit as gf\n"
        "try:\n"
        "    gf.fit('gabor', 'normal', gf.gabor_data(0), gf.adam(0.01), steps=10**8, tol=0,\n"
        "           checkpoint=sys.argv[1], checkpoint_every=2048)\n"
        "except gf.Interrupted as exc:\n"
        "    exc.result.to_json(sys.argv[2])\n"
        "    sys.exit(130)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", script, str(path), str(out)])
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and child.poll() is None:
            if path.exists() and checkpoints.load(path).steps_done > 0:
                break
            time.sleep(0.05)
        child.send_signal(signum)
        assert child.wait(60) == 130
    finally:
        if child.poll() is None:
            child.kill()
    part = gf.FitResult.from_json(out)
    assert part.status == "interrupted" and 0 < part.steps < 10**8
    assert checkpoints.load(path).steps_done == part.steps


def test_a_signal_during_the_last_chunk_is_not_lost():
    """The fit is complete, so its result is whole; the caller still learns of the Ctrl-C."""
    with pytest.raises(gf.Interrupted) as info:
        gf.fit("linear", "normal", (X, Y), gf.gd(0.01), steps=300, tol=0, progress=signal_at(1))
    whole = info.value.result
    assert whole.status == "max_steps" and whole.steps == 300

"""Checkpoints: a fit stopped at any chunk and resumed ends bit-identical to the fit run through."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gradfit as gf
from gradfit import checkpoint as checkpoints
from gradfit.files import atomic_write

X = np.linspace(0.0, 2.5, 6)
Y = np.array([0.9, 1.1, 1.6, 1.7, 2.2, 2.4])
DATA = (X, Y)
STEPS = 5000  # three compiled chunks of 2048 steps


class Killed(Exception):
    """Stands for SIGKILL: the process is gone between two chunks, the checkpoint left as it was."""


def kill_at(chunk: int):
    calls = []

    def progress(done, total, loss):
        calls.append(done)
        if len(calls) == chunk:
            raise Killed

    return progress


def same(a, b) -> bool:
    """Two results equal in every number and word of their JSON, timings apart."""
    def text(r):
        d = r.to_dict()
        d.pop("elapsed")
        return json.dumps(d, sort_keys=True)

    return text(a) == text(b)


def interrupted_then_resumed(tmp_path, chunk, *args, **kwargs):
    path = tmp_path / "fit.ckpt"
    with pytest.raises(Killed):
        gf.fit(*args, checkpoint=path, checkpoint_every=1, progress=kill_at(chunk), **kwargs)
    assert path.is_file()
    return gf.fit(*args, resume=path, **kwargs)


CASES = {
    "gd": (gf.gd(0.01), {}),
    "gd line search": (gf.gd(0.01, line_search=True), {}),
    "momentum heavy-ball": (gf.momentum(0.01, variant="heavy-ball"), {}),
    "nesterov book": (gf.nesterov(0.01, variant="book"), {}),
    "nesterov torch": (gf.nesterov(0.01, variant="torch"), {}),
    "normalized": (gf.normalized(0.001), {}),
    "adam": (gf.adam(0.01), {}),
    "adam standard": (gf.adam(0.01, variant="standard"), {}),
    "rmsprop": (gf.rmsprop(0.001), {}),
    "adagrad": (gf.adagrad(0.05), {}),
    "adamw": (gf.adamw(0.01, weight_decay=0.01), {}),
    "sgd mini-batches": (gf.sgd(0.01), {"batch_size": 4}),
    "sgd step decay": (gf.sgd(gf.step_decay(0.02, 0.5, 700)), {"batch_size": 5}),
    "momentum cosine, records every 3": (gf.momentum(gf.cosine(0.02, 4000)), {"batch_size": 3, "history_every": 3}),
    "adam warm-up, thinned history": (gf.adam(gf.warmup(gf.exponential(0.05, 0.9995), 100)), {"max_history": 40}),
}


@pytest.mark.parametrize("name", list(CASES))
def test_resumed_fit_is_bit_identical(tmp_path, name):
    opt, extra = CASES[name]
    whole = gf.fit("linear", "normal", DATA, opt, init=[0.2, -0.1], steps=STEPS, tol=0, **extra)
    resumed = interrupted_then_resumed(tmp_path, 2, "linear", "normal", DATA, opt, init=[0.2, -0.1], steps=STEPS,
                                       tol=0, **extra)
    assert same(whole, resumed)
    assert resumed.steps == STEPS


def test_many_starts_and_early_stops_resume_identically(tmp_path):
    data = gf.gabor_data(0)
    starts = np.random.default_rng(3).uniform([-10, 2.5], [10, 22.5], size=(12, 2))
    args = ("gabor", "normal", data, gf.adam(0.05))
    whole = gf.fit(*args, init=starts, steps=7000, tol=1e-4)
    assert {f.status for f in whole} >= {"converged"}  # some starts stop early, in different chunks
    resumed = interrupted_then_resumed(tmp_path, 2, *args, init=starts, steps=7000, tol=1e-4)
    assert all(same(a, b) for a, b in zip(whole, resumed, strict=True))


def test_resuming_a_finished_checkpoint_gives_the_result_again(tmp_path):
    path = tmp_path / "done.ckpt"
    whole = gf.fit("linear", "normal", DATA, gf.sgd(0.01), batch_size=4, epochs=30, tol=0, checkpoint=path)
    again = gf.fit("linear", "normal", DATA, gf.sgd(0.01), batch_size=4, epochs=30, tol=0, resume=path)
    assert same(whole, again)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(chunk=st.integers(1, 3), opt=st.sampled_from(["gd", "adam", "nesterov", "sgd"]),
       steps=st.sampled_from([2049, 4100, 6000]))
def test_kill_at_any_chunk_then_resume(tmp_path_factory, chunk, opt, steps):
    tmp = tmp_path_factory.mktemp("kill")
    extra = {"batch_size": 4} if opt == "sgd" else {}
    optimizer = gf.make_optimizer(opt if opt != "sgd" else "sgd", lr=0.01)
    whole = gf.fit("linear", "normal", DATA, optimizer, steps=steps, tol=0, **extra)
    if chunk > -(-steps // 2048):
        chunk = 1
    resumed = interrupted_then_resumed(tmp, chunk, "linear", "normal", DATA, optimizer, steps=steps, tol=0, **extra)
    assert same(whole, resumed)


def test_sigkill_at_a_random_moment_then_resume(tmp_path):
    """A real process killed with SIGKILL mid-run; the checkpoint it left resumes to the same end."""
    path = tmp_path / "k.ckpt"
    script = (
        "import gradfit as gf, sys\n"
        "gf.fit('gabor', 'normal', gf.gabor_data(0), gf.adam(0.01), steps=400_000, tol=0, "
        "checkpoint=sys.argv[1], checkpoint_every=2048)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", script, str(path)])
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and child.poll() is None:
            if path.exists() and checkpoints.load(path).steps_done > 0:  # past the compile, running chunks
                break
            time.sleep(0.05)
        assert path.exists(), "the child wrote no checkpoint"
        time.sleep(np.random.default_rng().uniform(0.0, 0.5))  # a kill at no particular moment
        child.send_signal(signal.SIGKILL)
        child.wait(30)
    finally:
        if child.poll() is None:
            child.kill()
    saved = checkpoints.load(path)  # never half-written
    assert 0 < saved.steps_done < 400_000
    args = ("gabor", "normal", gf.gabor_data(0), gf.adam(0.01))
    resumed = gf.fit(*args, steps=400_000, tol=0, resume=path)
    whole = gf.fit(*args, steps=400_000, tol=0)
    assert same(whole, resumed)


@pytest.mark.parametrize("change, words", [
    ({"steps": 4000}, "the step cap: 5000 in the checkpoint, 4000 now"),
    ({"data": (X, Y + 1)}, "the data differ"),
    ({"optimizer": gf.adam(0.02)}, "optimiser.schedule.lr: 0.01 in the checkpoint, 0.02 now"),
    ({"seed": 3}, "the seed: 0 in the checkpoint, 3 now"),
    ({"init": [0.3, -0.1]}, "the starting points differ"),
])
def test_a_checkpoint_of_another_fit_is_refused_saying_what_differs(tmp_path, change, words):
    path = tmp_path / "a.ckpt"
    settings_ = {"data": DATA, "optimizer": gf.adam(0.01), "steps": STEPS, "init": [0.2, -0.1], "seed": 0}
    with pytest.raises(Killed):
        gf.fit("linear", "normal", settings_["data"], settings_["optimizer"], init=settings_["init"],
               steps=settings_["steps"], tol=0, checkpoint=path, checkpoint_every=1, progress=kill_at(1))
    other = {**settings_, **change}
    with pytest.raises(gf.GradfitError, match="written by another fit") as info:
        gf.fit("linear", "normal", other["data"], other["optimizer"], init=other["init"], steps=other["steps"],
               tol=0, seed=other["seed"], resume=path)
    assert words in str(info.value)


def test_missing_damaged_and_foreign_checkpoints_get_one_clear_error(tmp_path):
    with pytest.raises(gf.GradfitError, match="no checkpoint at"):
        gf.fit("linear", "normal", DATA, steps=10, resume=tmp_path / "none.ckpt")
    path = tmp_path / "a.ckpt"
    gf.fit("linear", "normal", DATA, steps=10, checkpoint=path)
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(gf.GradfitError, match="not a readable gradfit checkpoint"):
        gf.fit("linear", "normal", DATA, steps=10, resume=path)
    np.savez(tmp_path / "other.npz", a=np.zeros(3))
    with pytest.raises(gf.GradfitError, match="not a readable gradfit checkpoint|not a gradfit checkpoint"):
        gf.fit("linear", "normal", DATA, steps=10, resume=tmp_path / "other.npz")


def test_the_format_is_versioned(tmp_path):
    path = tmp_path / "a.ckpt"
    gf.fit("linear", "normal", DATA, steps=10, checkpoint=path)
    saved = checkpoints.load(path)
    assert saved.header["format"] == "gradfit-checkpoint" and saved.header["version"] == checkpoints.VERSION
    assert saved.header["finished"] and saved.steps_done >= 10
    header = {**saved.header, "version": checkpoints.VERSION + 1}
    arrays = {"header": np.frombuffer(json.dumps(header).encode(), np.uint8)}
    arrays |= {f"carry_{i}": a for i, a in enumerate(saved.leaves)}
    arrays |= {f"history_{k}": v for k, v in saved.history.items()}
    np.savez(tmp_path / "future.npz", **arrays)
    with pytest.raises(gf.GradfitError, match=f"version {checkpoints.VERSION + 1} checkpoint"):
        gf.fit("linear", "normal", DATA, steps=10, resume=tmp_path / "future.npz")


def test_atomic_write_leaves_the_old_file_when_the_writer_fails(tmp_path):
    path = tmp_path / "state.bin"
    atomic_write(path, lambda f: f.write(b"old"))

    def broken(f):
        f.write(b"half of the new")
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError):
        atomic_write(path, broken)
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["state.bin"]  # no temporary file left behind
    with pytest.raises(gf.GradfitError, match="does not exist; create it first"):
        atomic_write(tmp_path / "no" / "such.bin", lambda f: f.write(b""))


@pytest.mark.parametrize("bad, words", [
    ({"checkpoint_every": 0}, "checkpoint_every"),
    ({"checkpoint_every": 2.5}, "checkpoint_every"),
    ({"max_history": 1}, "max_history"),
])
def test_bad_checkpoint_settings(tmp_path, bad, words):
    with pytest.raises(gf.GradfitError, match=words):
        gf.fit("linear", "normal", DATA, steps=10, checkpoint=tmp_path / "c.ckpt", **bad)


def test_resuming_a_fit_that_stopped_early_gives_the_same_thinned_history(tmp_path):
    path = tmp_path / "early.ckpt"
    starts = np.array([[0.2, -0.1], [3.0, 2.0]])
    args = ("linear", "normal", DATA, gf.adam(0.05))
    whole = gf.fit(*args, init=starts, steps=9000, tol=1e-3, max_history=8, checkpoint=path)
    assert all(f.status == "converged" and f.steps < 9000 for f in whole)
    again = gf.fit(*args, init=starts, steps=9000, tol=1e-3, max_history=8, resume=path)
    assert all(same(a, b) for a, b in zip(whole, again, strict=True))


def test_a_new_fit_never_writes_over_an_unfinished_checkpoint_or_another_file(tmp_path):
    path = tmp_path / "run.ckpt"
    with pytest.raises(Killed):
        gf.fit("linear", "normal", DATA, steps=STEPS, tol=0, checkpoint=path, checkpoint_every=1,
               progress=kill_at(2))
    before = path.read_bytes()
    with pytest.raises(gf.GradfitError, match=r"holds an unfinished fit \(2,048 steps done\).*--resume"):
        gf.fit("linear", "normal", DATA, steps=STEPS, tol=0, checkpoint=path)
    assert path.read_bytes() == before  # the work it holds is still there
    done = gf.fit("linear", "normal", DATA, steps=STEPS, tol=0, resume=path)
    assert checkpoints.load(path).header["finished"]
    again = gf.fit("linear", "normal", DATA, steps=STEPS, tol=0, checkpoint=path)  # a finished one may go
    assert same(done, again)
    data_file = tmp_path / "points.csv"
    data_file.write_text("x,y\n1,2\n")
    with pytest.raises(gf.GradfitError, match="is not a gradfit checkpoint"):
        gf.fit("linear", "normal", DATA, steps=10, checkpoint=data_file)
    assert data_file.read_text() == "x,y\n1,2\n"

"""A compiled fitter called in a Python loop: many fits of one problem, against a hand-written jitted scan.

The problem is the `gabor_adam` case's (30 Gabor points, s = 8, Adam in its standard
form from φ = (1, 10), 1,000 full-batch steps, float64); one timed call is ``calls``
fits of it, one after another from Python, as a user fitting many data sets or starts
would run them. ``gradfit.Fitter`` checks the problem once and reuses the compiled loop;
each call still builds a full `FitResult` with its history. ``gradfit.fit`` checks
everything on every call. The hand-written scans are the `gabor_adam` case's.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..harness import Agreement, Case, Problem, Run, Target, Tool
from .gabor_adam import START, _jax_scan


def _data(p: dict[str, Any]):
    import gradfit

    return gradfit.gabor_data(seed=p["seed"], n=p["n"], s=p["s"])


def _fitter(p: dict[str, Any], data, every: int | None = None) -> Run:
    import gradfit

    opt = gradfit.adam(p["lr"], beta=p["beta"], gamma=p["gamma"], eps=p["eps"], variant="standard")
    fitter = gradfit.Fitter(gradfit.gabor(s=p["s"]), gradfit.normal(), opt, steps=p["steps"], tol=0,
                            dtype="float64", history_every=every)
    init = np.array(START)

    def run() -> np.ndarray:
        for _ in range(p["calls"]):
            result = fitter(data, init=init)
        return result.x

    return run


def _fit(p: dict[str, Any], data) -> Run:
    import gradfit

    model, loss = gradfit.gabor(s=p["s"]), gradfit.normal()
    opt = gradfit.adam(p["lr"], beta=p["beta"], gamma=p["gamma"], eps=p["eps"], variant="standard")
    init = np.array(START)

    def run() -> np.ndarray:
        for _ in range(p["calls"]):
            result = gradfit.fit(model, loss, data, opt, init=init, steps=p["steps"], tol=0, dtype="float64")
        return result.x

    return run


def _scan(p: dict[str, Any], data, history: bool = False) -> Run:
    one = _jax_scan(p, data, history)

    def run() -> np.ndarray:
        for _ in range(p["calls"]):
            out = one()
        return out

    return run


def build(p: dict[str, Any]) -> Problem:
    data = _data(p)
    calls = p["calls"]
    tools = [
        Tool("gradfit_fitter", f"gradfit.Fitter, {calls} calls (history every step)", lambda: _fitter(p, data),
             jax=True),
        Tool("gradfit_fitter_every100", f"gradfit.Fitter, {calls} calls, history every 100 steps",
             lambda: _fitter(p, data, 100), jax=True),
        Tool("gradfit_fit", f"gradfit.fit, {calls} calls", lambda: _fit(p, data), jax=True),
        Tool("jax_scan", f"JAX lax.scan, hand-written Adam, {calls} calls", lambda: _scan(p, data), jax=True),
        Tool("jax_scan_history", f"JAX lax.scan + history and stop checks, {calls} calls",
             lambda: _scan(p, data, True), jax=True),
    ]
    return Problem(
        tools=tools,
        steps=p["steps"] * calls,
        baseline="gradfit_fitter",
        targets=[
            Target(f"{calls} Fitter calls at most 1.3× the same calls of a hand-written jitted scan",
                   "gradfit_fitter", "jax_scan", "<=", 1.3),
            Target("Fitter, history every 100 steps, at most 1.3× the hand-written scan", "gradfit_fitter_every100",
                   "jax_scan", "<=", 1.3),
            Target("Fitter at most 1.3× a hand scan keeping the same history", "gradfit_fitter", "jax_scan_history",
                   "<=", 1.3),
            Target("Fitter faster than gradfit.fit called the same way", "gradfit_fit", "gradfit_fitter", ">=", 1.0),
        ],
        agreements=[
            Agreement("jax_scan", "gradfit_fitter", 1e-10),
            Agreement("gradfit_fit", "gradfit_fitter", 0.0),
            Agreement("gradfit_fitter_every100", "gradfit_fitter", 1e-12),
        ],
        notes=[
            f"each timed call is {calls} fits of {p['steps']} steps, from φ = {START}, tol=0; per step is per step of "
            "one fit.",
            "each Fitter call returns a FitResult with the full history (φ, loss, gradient norm and rate every step, "
            "unless history_every says otherwise); the bare hand scan returns the final φ only.",
        ],
    )


CASE = Case(
    name="fitter",
    title="A compiled fitter in a Python loop: 1,000 Adam fits of the Gabor model",
    params={"n": 30, "steps": 1000, "calls": 1000, "lr": 0.05, "beta": 0.9, "gamma": 0.999, "eps": 1e-8, "s": 8.0,
            "seed": 0},
    build=build,
    quick={"calls": 20, "steps": 200},
)

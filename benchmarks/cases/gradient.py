"""One full-batch gradient of a large least-squares problem, against the memory bound.

A gradient of Σ_i (φ0 + x_i·φ - y_i)² reads every byte of X once (twice if computed
naively: once for the residuals, once for Xᵀr). On a CPU that is memory-bound: the
floor is the bytes of X divided by the rate this machine copies a large array,
measured in the same run. gradfit's compiled objective gradient is compared with
that bound, and with numpy's two matrix products.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from ..harness import Agreement, Case, Problem, Run, Target, Tool


def _data(p: dict[str, Any]):
    rng = np.random.default_rng(p["seed"])
    x = rng.standard_normal((p["n"], p["d"]))
    y = x @ np.linspace(-1.0, 1.0, p["d"]) + 0.5
    return x, y


def _phi(p: dict[str, Any]) -> np.ndarray:
    return np.linspace(0.1, 0.2, p["d"] + 1)


def _gradfit(p: dict[str, Any], x, y) -> Run:
    import jax

    import gradfit
    from gradfit.loop import on_device

    objective = gradfit.Objective(gradfit.linear(p["d"]), gradfit.normal())
    data = gradfit.Dataset(x, y)
    with jax.enable_x64(True):
        xd, yd = on_device(data, np.float64)
        grad = jax.jit(jax.grad(objective.value))
        phi = jax.device_put(_phi(p))

    def run() -> np.ndarray:
        with jax.enable_x64(True):
            return np.asarray(jax.device_get(grad(phi, xd, yd)))

    return run


def _numpy(p: dict[str, Any], x, y) -> Run:
    phi = _phi(p)

    def run() -> np.ndarray:
        r = phi[0] + x @ phi[1:] - y
        return 2.0 * np.concatenate([[r.sum()], x.T @ r])

    return run


def _copy_bound(p: dict[str, Any], x, y) -> Run:
    """Not a gradient: a copy of X, whose time is the floor for reading X once."""
    out = np.empty_like(x)
    phi = _phi(p)

    def run() -> np.ndarray:
        np.copyto(out, x)
        return phi  # stands in for the parameters, so the agreement checks skip it

    return run


def _copy_rate(x: np.ndarray, repeats: int = 5) -> float:
    out = np.empty_like(x)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        np.copyto(out, x)
        times.append(time.perf_counter() - t0)
    # a copy reads and writes every byte: 2 × nbytes moved
    return 2 * x.nbytes / float(np.median(times))


def build(p: dict[str, Any]) -> Problem:
    x, y = _data(p)
    rate = _copy_rate(x)
    tools = [
        Tool("gradfit", "gradfit Objective gradient, jitted", lambda: _gradfit(p, x, y), jax=True),
        Tool("bound", "memory bound: a copy of X (reads X once)", lambda: _copy_bound(p, x, y)),
        Tool("numpy", "numpy, r = Xφ - y then Xᵀr", lambda: _numpy(p, x, y)),
    ]
    return Problem(
        tools=tools,
        steps=1,
        targets=[Target("gradfit at most 2× the memory bound (a copy of X)", "gradfit", "bound", "<=", 2.0)],
        agreements=[Agreement("numpy", "gradfit", 1e-6 * p["n"])],
        notes=[
            f"X is {p['n']:,} × {p['d']} float64, {x.nbytes / 2**20:.0f} MiB; this machine copied it at "
            f"{rate / 2**30:.1f} GiB/s (bytes read plus written).",
            "The copy reads X once and writes it once, so it is a generous floor: a gradient that reads X "
            "once and writes nothing can beat it.",
        ],
    )


CASE = Case(
    name="gradient",
    title="One full-batch gradient, N × 16, against the memory bound",
    params={"n": 10_000_000, "d": 16, "seed": 0},
    build=build,
    quick={"n": 200_000},
)

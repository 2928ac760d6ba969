"""A sweep in one compile: 64 learning rates × 8 seeds of Adam on the Gabor model, against one fit.

The problem: gradfit's built-in Gabor data (30 points, s = 8), least squares, Adam
(slides' form), 1,000 full-batch steps, tol = 0. ``gradfit.sweep`` runs the 512
configurations (learning rates log-spaced on [10⁻³, 1], seeds 0-7, each seed its
model start) as one vmapped group; the issue's target compares it with a single
``gradfit.fit`` of one configuration. **Every call clears JAX's caches first**, so every
time here includes tracing and compiling, as a sweep run from the command line pays.

Peers: the same 512 fits as ``gradfit.fit`` calls in a Python loop (one compile, the
rates being arguments of the compiled loop), and a hand-written ``jax.vmap`` of an Adam
``lax.scan`` over the 512 (rates, starts), which keeps no history and makes no checks.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..harness import Agreement, Case, Problem, Run, Target, Tool


def _data(p: dict[str, Any]):
    import gradfit

    return gradfit.gabor_data(seed=p["seed"], n=p["n"], s=p["s"])


def _rates(p: dict[str, Any]) -> np.ndarray:
    return np.geomspace(p["lr_low"], p["lr_high"], p["rates"])


def _fresh() -> None:
    """Forget every compiled function, so the call that follows traces and compiles as a new process would."""
    import jax

    from gradfit import loop

    jax.clear_caches()
    loop.runner.cache_clear()


def _one(p: dict[str, Any], data) -> Run:
    import gradfit

    model, loss = gradfit.gabor(s=p["s"]), gradfit.normal()
    opt = gradfit.adam(float(_rates(p)[p["pick"]]))

    def run() -> np.ndarray:
        _fresh()
        return gradfit.fit(model, loss, data, opt, steps=p["steps"], tol=0, seed=0).x

    return run


def _sweep(p: dict[str, Any], data, counts: dict[str, int]) -> Run:
    import gradfit
    from gradfit import loop

    model, loss = gradfit.gabor(s=p["s"]), gradfit.normal()
    rates = [float(r) for r in _rates(p)]

    def run() -> np.ndarray:
        _fresh()
        frame = gradfit.sweep(model, loss, data, "adam", grid={"lr": rates}, seeds=p["seeds"], steps=p["steps"],
                              tol=0)
        counts["plans"] = loop.runner.cache_info().misses
        counts["runs"] = len(frame)
        row = frame[(frame["lr"] == rates[p["pick"]]) & (frame["seed"] == 0)].iloc[0]
        return np.array([row["final_phi0"], row["final_phi1"]])

    return run


def _loop(p: dict[str, Any], data) -> Run:
    import gradfit

    model, loss = gradfit.gabor(s=p["s"]), gradfit.normal()
    rates = _rates(p)

    def run() -> np.ndarray:
        _fresh()
        fits = {(k, s): gradfit.fit(model, loss, data, gradfit.adam(float(r)), steps=p["steps"], tol=0, seed=s)
                for k, r in enumerate(rates) for s in range(p["seeds"])}
        return fits[(p["pick"], 0)].x

    return run


def _jax(p: dict[str, Any], data) -> Run:
    import jax
    import jax.numpy as jnp
    from jax import lax

    import gradfit

    s, steps, eps = p["s"], p["steps"], 1e-8
    model = gradfit.gabor(s=s)
    starts = np.stack([model.default_init(k) for k in range(p["seeds"])])
    lrs = np.repeat(_rates(p), p["seeds"])
    phis = np.tile(starts, (p["rates"], 1))

    def loss(phi, x, y):
        z = phi[0] + 0.06 * phi[1] * x
        r = jnp.sin(z) * jnp.exp(-(z * z) / s) - y
        return jnp.sum(r * r)

    grad = jax.grad(loss)

    def one(phi, lr, x, y):
        def step(carry, _):
            phi, m, v, t = carry
            g = grad(phi, x, y)
            m = 0.9 * m + 0.1 * g
            v = 0.999 * v + 0.001 * g * g
            t = t + 1
            phi = phi - lr * (m / (1 - 0.9**t)) / jnp.sqrt(v / (1 - 0.999**t) + eps)
            return (phi, m, v, t), None

        zeros = jnp.zeros_like(phi)
        return lax.scan(step, (phi, zeros, zeros, jnp.zeros((), jnp.int32)), None, length=steps)[0][0]

    def run() -> np.ndarray:
        jax.clear_caches()
        with jax.enable_x64(True):
            fn = jax.jit(jax.vmap(one, in_axes=(0, 0, None, None)))
            out = np.asarray(jax.device_get(fn(jnp.asarray(phis), jnp.asarray(lrs), jnp.asarray(data.x),
                                                jnp.asarray(data.y))))
        return out[p["pick"] * p["seeds"]]

    return run


def build(p: dict[str, Any]) -> Problem:
    data = _data(p)
    counts: dict[str, int] = {}
    runs = p["rates"] * p["seeds"]
    tools = [
        Tool("gradfit_sweep", f"gradfit.sweep, {runs} runs, one group (with compile)", lambda: _sweep(p, data, counts),
             jax=True),
        Tool("gradfit_fit", "gradfit.fit, one run (with compile)", lambda: _one(p, data), jax=True),
        Tool("gradfit_loop", f"gradfit.fit × {runs} in a Python loop (with compile)", lambda: _loop(p, data),
             jax=True),
        Tool("jax_vmap", f"JAX vmap of a hand-written Adam scan, {runs} runs (with compile)", lambda: _jax(p, data),
             jax=True),
    ]
    return Problem(
        tools=tools,
        steps=p["steps"],
        baseline="gradfit_sweep",
        targets=[
            Target(f"the {runs}-run sweep at most 3× one fit, compiles included", "gradfit_sweep", "gradfit_fit",
                   "<=", 3.0),
            Target("the sweep faster than the same fits in a Python loop", "gradfit_loop", "gradfit_sweep", ">=",
                   1.0),
        ],
        agreements=[
            Agreement("gradfit_fit", "gradfit_sweep", 0.0),
            Agreement("gradfit_loop", "gradfit_sweep", 0.0),
            Agreement("jax_vmap", "gradfit_sweep", 1e-9),
        ],
        details=counts,
        notes=[
            f"{p['rates']} learning rates log-spaced on [{p['lr_low']:g}, {p['lr_high']:g}] × seeds 0-{p['seeds'] - 1} "
            f"(each seed its start), {p['steps']} steps of Adam, tol=0, float64; each call starts from empty caches.",
            "the agreements compare the sweep's row (rate no. "
            f"{p['pick']}, seed 0) with gradfit.fit of that configuration alone: tolerance 0, bit for bit.",
            "details.plans is how many compiled plans the sweep built (1: one compile for all its runs).",
            "gradfit's sweep records every run's history every step and builds one row per run; the hand-written "
            "vmap keeps only the final parameters.",
        ],
    )


CASE = Case(
    name="sweep",
    title="Sweep: 64 learning rates × 8 seeds, Adam on Gabor, one compile",
    params={"n": 30, "s": 8.0, "seed": 0, "steps": 1000, "rates": 64, "seeds": 8, "lr_low": 1e-3, "lr_high": 1.0,
            "pick": 40},
    build=build,
    quick={"rates": 8, "seeds": 2, "pick": 5, "steps": 200},
)

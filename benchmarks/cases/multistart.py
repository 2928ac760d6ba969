"""Many starts at once: gradient descent on the Gabor model from thousands of starts.

The problem: gradfit's built-in Gabor data (30 points, s = 8), least squares (sum),
plain gradient descent with a fixed rate, the same number of steps from every start;
starts uniform on φ0 ∈ [-10, 10], φ1 ∈ [2.5, 22.5] (the landscape of the lecture's
figures). gradfit runs them with one ``fit`` call on an (S, 2) array of starts; its
history is kept at the start and the end only, as a basin map needs.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..harness import Agreement, Case, Problem, Run, Target, Tool, cpu_count


def _starts(p: dict[str, Any]) -> np.ndarray:
    rng = np.random.default_rng(p["seed"])
    return rng.uniform([-10.0, 2.5], [10.0, 22.5], size=(p["starts"], 2))


def _data(p: dict[str, Any]):
    import gradfit

    return gradfit.gabor_data(seed=p["seed"], n=p["n"], s=p["s"])


def _gradfit(p: dict[str, Any], data, starts) -> Run:
    import gradfit

    model, loss, opt = gradfit.gabor(s=p["s"]), gradfit.normal(), gradfit.gd(p["lr"])
    fit = gradfit.fit

    def run() -> np.ndarray:
        return fit(model, loss, data, opt, init=starts, steps=p["steps"], tol=0,
                   history_every=p["steps"]).params

    return run


def _jax(p: dict[str, Any], data, starts) -> Run:
    import jax
    import jax.numpy as jnp
    from jax import lax

    s, lr, steps = p["s"], p["lr"], p["steps"]

    def loss(phi, x, y):
        z = phi[0] + 0.06 * phi[1] * x
        r = jnp.sin(z) * jnp.exp(-(z * z) / s) - y
        return jnp.sum(r * r)

    grad = jax.grad(loss)

    @jax.jit
    def run_all(phis, x, y):
        def one(phi):
            return lax.fori_loop(0, steps, lambda _, q: q - lr * grad(q, x, y), phi)

        return jax.vmap(one)(phis)

    with jax.enable_x64(True):
        x, y, phis = jnp.asarray(data.x), jnp.asarray(data.y), jnp.asarray(starts)

    def run() -> np.ndarray:
        with jax.enable_x64(True):
            return np.asarray(jax.device_get(run_all(phis, x, y)))

    return run


def _torch(p: dict[str, Any], data, starts) -> Run:
    import torch

    torch.set_num_threads(cpu_count())
    x = torch.tensor(data.x, dtype=torch.float64)
    y = torch.tensor(data.y, dtype=torch.float64)
    s, lr, steps = p["s"], p["lr"], p["steps"]

    def run() -> np.ndarray:
        phi = torch.tensor(starts, dtype=torch.float64, requires_grad=True)
        for _ in range(steps):
            z = phi[:, :1] + 0.06 * phi[:, 1:] * x[None, :]
            r = torch.sin(z) * torch.exp(-(z * z) / s) - y[None, :]
            (grad,) = torch.autograd.grad((r * r).sum(), phi)  # starts are independent: one sum
            with torch.no_grad():
                phi -= lr * grad
        return phi.detach().numpy().copy()

    return run


def _numpy(p: dict[str, Any], data, starts) -> Run:
    x, y = np.asarray(data.x), np.asarray(data.y)
    s, lr, steps = p["s"], p["lr"], p["steps"]

    def run() -> np.ndarray:
        phi = starts.copy()
        for _ in range(steps):
            z = phi[:, :1] + 0.06 * phi[:, 1:] * x[None, :]
            envelope, sin_z = np.exp(-(z * z) / s), np.sin(z)
            w = 2.0 * (sin_z * envelope - y) * envelope * (np.cos(z) - 2.0 * z * sin_z / s)
            phi = phi - lr * np.column_stack([w.sum(axis=1), 0.06 * (w @ x)])
        return phi

    return run


def build(p: dict[str, Any]) -> Problem:
    data, starts = _data(p), _starts(p)
    tools = [
        Tool("gradfit", "gradfit.fit, (S, 2) starts", lambda: _gradfit(p, data, starts), jax=True),
        Tool("jax_vmap", "JAX vmap + fori_loop, hand-written", lambda: _jax(p, data, starts), jax=True),
        Tool("torch", "torch, batched autograd", lambda: _torch(p, data, starts), requires=("torch",)),
        Tool("numpy", "numpy, vectorised hand gradient", lambda: _numpy(p, data, starts)),
    ]
    return Problem(
        tools=tools,
        steps=p["steps"],
        targets=[
            Target("gradfit at most 1.1× the hand-written vmap", "gradfit", "jax_vmap", "<=", 1.1),
            Target("gradfit faster than torch", "torch", "gradfit", ">=", 1.0),
            Target("gradfit faster than numpy", "numpy", "gradfit", ">=", 1.0),
        ],
        agreements=[
            Agreement("jax_vmap", "gradfit", 1e-8),
            Agreement("torch", "gradfit", 1e-6, required=False),
            Agreement("numpy", "gradfit", 1e-6, required=False),
        ],
        notes=[
            f"{p['starts']} starts × {p['steps']} steps of φ ← φ - {p['lr']} ∇L, float64; per step is per "
            "step of all starts together.",
            "gradfit records each start's history at its start and end only (history_every = steps), and "
            "checks every start for convergence and non-finite values; the hand-written vmap does neither.",
        ],
    )


CASE = Case(
    name="multistart",
    title="Gabor model from many starts at once, gradient descent, float64",
    params={"starts": 10_000, "steps": 200, "n": 30, "s": 8.0, "lr": 0.01, "seed": 0},
    build=build,
    quick={"starts": 500, "steps": 50},
)

"""A basin map: the Gabor model fitted from every start of a grid, each labelled by its minimum.

The problem: gradfit's built-in Gabor data (40 points, s = 8), least squares (sum),
gradient descent with a fixed rate for the same number of steps from each of
``grid`` × ``grid`` starts over φ0 ∈ [-10, 10], φ1 ∈ [2.5, 22.5] (the lecture's box),
float64. Then each end is labelled: it has reached a minimum where it lies inside the
box, the Hessian there is positive definite and the Newton step is under 0.5% of the
box; ends within 1% of the box of the lowest such end share its label, if Newton's
method from there lands on a minimum within 1% of the box.

``gradfit`` is `gradfit.landscape.basins`, the call the lecture's figure makes.
``jax_scan`` is the same work written by hand: one jitted vmap of a ``lax.scan`` of
the updates, the gradient and Hessian at every end, and the same grouping in numpy.
(The fits alone, without labels, are the ``multistart`` case.)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..harness import Agreement, Case, Problem, Run, Target, Tool

BOX = ((-10.0, 10.0), (2.5, 22.5))
SETTLE, MERGE = 0.005, 0.01


def _grid(p: dict[str, Any]) -> np.ndarray:
    a = np.linspace(*BOX[0], p["grid"])
    b = np.linspace(*BOX[1], p["grid"])
    aa, bb = np.meshgrid(a, b)
    return np.column_stack([aa.ravel(), bb.ravel()])


def _data(p: dict[str, Any]):
    import gradfit

    return gradfit.gabor_data(seed=p["seed"], n=p["n"], s=p["s"])


def _gradfit(p: dict[str, Any], data) -> Run:
    import gradfit
    from gradfit import landscape

    model, loss, opt = gradfit.gabor(s=p["s"]), gradfit.normal(), gradfit.gd(p["lr"])

    def run() -> np.ndarray:
        bm = landscape.basins(model, loss, data, opt, BOX, resolution=p["grid"], steps=p["steps"],
                              settle=SETTLE, merge=MERGE)
        return np.concatenate([bm.ends.reshape(-1), bm.labels.reshape(-1).astype(float)])

    return run


def _jax(p: dict[str, Any], data) -> Run:
    import jax
    import jax.numpy as jnp
    from jax import lax

    s, lr, steps = p["s"], p["lr"], p["steps"]

    def loss(phi, x, y):
        z = phi[0] + 0.06 * phi[1] * x
        r = jnp.sin(z) * jnp.exp(-(z * z) / s) - y
        return jnp.sum(r * r)

    grad, hessian = jax.grad(loss), jax.hessian(loss)

    @jax.jit
    def descend(phis, x, y):
        def one(phi):
            return lax.scan(lambda q, _: (q - lr * grad(q, x, y), None), phi, None, length=steps)[0]

        return jax.vmap(one)(phis)

    @jax.jit
    def curvature(phis, x, y):
        return jax.vmap(lambda q: (loss(q, x, y), grad(q, x, y), hessian(q, x, y)))(phis)

    with jax.enable_x64(True):
        x, y, phis = jnp.asarray(data.x), jnp.asarray(data.y), jnp.asarray(_grid(p))
    lows, span = np.array([BOX[0][0], BOX[1][0]]), np.array([BOX[0][1] - BOX[0][0], BOX[1][1] - BOX[1][0]])

    def run() -> np.ndarray:
        with jax.enable_x64(True):
            ends = np.asarray(jax.device_get(descend(phis, x, y)))
            value, g, h = jax.device_get(curvature(jnp.asarray(ends), x, y))
        inside = np.all((ends >= lows) & (ends <= lows + span), axis=1) & np.isfinite(value)
        posdef = np.all(np.linalg.eigvalsh(h) > 0, axis=1) & inside
        newton = np.zeros_like(ends)
        newton[posdef] = np.linalg.solve(h[posdef], g[posdef][..., None])[..., 0]
        settled = posdef & (np.max(np.abs(newton) / span, axis=1) <= SETTLE)
        labels = np.where(inside | ~np.isfinite(value), -1, -2)
        centres, free = [], settled.copy()
        while free.any():
            k = np.flatnonzero(free)[np.argmin(value[free])]
            near = free & (np.max(np.abs(ends - ends[k]) / span, axis=1) <= MERGE)
            labels[near] = len(centres)
            centres.append(ends[k] - newton[k])
            free &= ~near
        minima, real, minima_loss = polish(np.array(centres).reshape(-1, 2))
        renumber = np.cumsum(real) - 1
        labels = np.where(labels >= 0, np.where(real[np.maximum(labels, 0)], renumber[np.maximum(labels, 0)], -1),
                          labels)
        rank = np.argsort(np.argsort(minima_loss[real], kind="stable"))
        labels = np.where(labels >= 0, rank[np.maximum(labels, 0)] if len(rank) else labels, labels)
        return np.concatenate([ends.reshape(-1), labels.astype(float)])

    def polish(points):
        # Newton's method from each group's centre: is it a minimum within MERGE of the box?
        q = points.copy()
        with jax.enable_x64(True):
            for _ in range(30):
                _, g, h = (np.asarray(a) for a in jax.device_get(curvature(jnp.asarray(q), x, y)))
                q = q - (np.linalg.pinv(h) @ g[..., None])[..., 0]
            value, g, h = (np.asarray(a) for a in jax.device_get(curvature(jnp.asarray(q), x, y)))
        real = (np.all(np.linalg.eigvalsh(h) > 0, axis=1) & (np.linalg.norm(g * span, axis=1) <= 1e-7 * (1 + value))
                & (np.max(np.abs(q - points) / span, axis=1) <= MERGE))
        return q, real, value

    return run


def build(p: dict[str, Any]) -> Problem:
    data = _data(p)
    tools = [
        Tool("gradfit", "gradfit.landscape.basins (fit + labels)", lambda: _gradfit(p, data), jax=True),
        Tool("jax_scan", "JAX vmap + lax.scan + the same labelling, hand-written", lambda: _jax(p, data), jax=True),
    ]
    return Problem(
        tools=tools,
        steps=p["steps"],
        targets=[
            Target("basin map at most 1.2× the hand-written vmap + scan of the same work", "gradfit", "jax_scan",
                   "<=", 1.2),
        ],
        agreements=[Agreement("jax_scan", "gradfit", 1e-8)],
        notes=[
            f"{p['grid']}² = {p['grid'] ** 2} starts × {p['steps']} steps of φ ← φ - {p['lr']} ∇L, float64; "
            "per step is per step of all starts together.",
            "Both tools return every end point and every label; agreement to 1e-8 means the same ends and "
            "exactly the same labels.",
            "gradfit keeps each start's history at its start and end only (history_every = steps) and checks "
            "every start for non-finite values; the hand-written scan does neither.",
        ],
    )


CASE = Case(
    name="basins",
    title="Basin map of the Gabor model: 200 × 200 starts, 200 gradient-descent steps each, float64",
    params={"grid": 200, "steps": 200, "n": 40, "s": 8.0, "lr": 0.2, "seed": 0},
    build=build,
    quick={"grid": 40, "steps": 50},
)

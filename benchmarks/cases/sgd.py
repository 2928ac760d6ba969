"""SGD on a large least-squares problem: mini-batches drawn without replacement.

The problem: N rows, d standard-normal inputs, y = 0.5 + Σ_j j x_j + noise, the linear
model, least squares summed over each batch, plain SGD with a fixed rate, a few
epochs. Every tool uses gradfit's own batch order (``epoch_batches`` from the seed), so
all take exactly the same steps and end at the same parameters. The hand scan and the
peers get the batches' indices precomputed (not timed); gradfit's compiled loop draws
each step's batch itself from the seed. By default gradfit records the full-data loss
and gradient norm at the start, every 10 epochs and at the end (each record a pass over
the data); ``gradfit_epochs`` records them once an epoch, as gradfit did by default
before.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..harness import Agreement, Case, Problem, Run, Target, Tool, cpu_count


def _data(p: dict[str, Any]):
    import gradfit

    rng = np.random.default_rng(p["seed"])
    x = rng.normal(size=(p["n"], p["d"]))
    y = 0.5 + x @ np.arange(1.0, p["d"] + 1.0) + rng.normal(0.0, 0.1, p["n"])
    return gradfit.Dataset(x, y, name="sgd")


def _batches(p: dict[str, Any]):
    from gradfit.data import epoch_batches

    parts = [epoch_batches(p["n"], p["batch"], p["seed"], e) for e in range(p["epochs"])]
    return np.concatenate([i for i, _ in parts]), np.concatenate([m for _, m in parts])


def _gradfit(p: dict[str, Any], data, every=None) -> Run:
    import gradfit

    model, loss, opt = gradfit.linear(p["d"]), gradfit.normal(), gradfit.sgd(p["lr"])
    fit = gradfit.fit

    def run() -> np.ndarray:
        return fit(model, loss, data, opt, batch_size=p["batch"], epochs=p["epochs"], tol=0, seed=p["seed"],
                   history_every=every).x

    return run


def _jax(p: dict[str, Any], data) -> Run:
    import jax
    import jax.numpy as jnp
    from jax import lax

    lr = p["lr"]
    idx, mask = _batches(p)

    def loss(w, xb, yb, mb):
        r = w[0] + xb @ w[1:] - yb
        return jnp.sum(jnp.where(mb, r * r, 0.0))

    grad = jax.grad(loss)

    @jax.jit
    def run_all(w, x, y, idx, mask):
        def step(w, batch):
            i, m = batch
            return w - lr * grad(w, x[i], y[i], m), None

        return lax.scan(step, w, (idx, mask))[0]

    with jax.enable_x64(True):
        x, y, idx_d, mask_d = jax.device_put((data.x, data.y, idx, mask))
        w0 = jnp.zeros(p["d"] + 1)

    def run() -> np.ndarray:
        with jax.enable_x64(True):
            return np.asarray(jax.device_get(run_all(w0, x, y, idx_d, mask_d)))

    return run


def _torch(p: dict[str, Any], data) -> Run:
    import torch

    torch.set_num_threads(cpu_count())
    idx, mask = _batches(p)
    x = torch.from_numpy(np.array(data.x))  # a writable copy: the data set's arrays are read-only
    y = torch.from_numpy(np.array(data.y))
    ones = torch.ones((p["batch"], 1), dtype=torch.float64)
    idx_t, mask_t = torch.from_numpy(idx.astype(np.int64)), torch.from_numpy(mask)

    def run() -> np.ndarray:
        w = torch.zeros(p["d"] + 1, dtype=torch.float64, requires_grad=True)
        opt = torch.optim.SGD([w], lr=p["lr"])
        for k in range(idx_t.shape[0]):
            xb = torch.cat([ones, x.index_select(0, idx_t[k])], dim=1)
            r = xb @ w - y.index_select(0, idx_t[k])
            opt.zero_grad()
            (torch.where(mask_t[k], r * r, 0.0)).sum().backward()
            opt.step()
        return w.detach().numpy().copy()

    return run


def _numpy(p: dict[str, Any], data) -> Run:
    idx, mask = _batches(p)
    x, y, lr = data.x, data.y, p["lr"]

    def run() -> np.ndarray:
        w = np.zeros(p["d"] + 1)
        for k in range(idx.shape[0]):
            xb, m = x[idx[k]], mask[k]
            r = np.where(m, w[0] + xb @ w[1:] - y[idx[k]], 0.0)
            w = w - lr * 2.0 * np.concatenate([[r.sum()], xb.T @ r])
        return w

    return run


def build(p: dict[str, Any]) -> Problem:
    data = _data(p)
    steps = p["epochs"] * -(-p["n"] // p["batch"])
    nbytes = data.x.nbytes + data.y.nbytes
    tools = [
        Tool("gradfit", "gradfit.fit (default: records at the start, every 10 epochs, the end)",
             lambda: _gradfit(p, data), jax=True),
        Tool("gradfit_epochs", "gradfit.fit, a record every epoch", lambda: _gradfit(p, data, steps // p["epochs"]),
             jax=True),
        Tool("jax_scan", "JAX lax.scan, precomputed permutation", lambda: _jax(p, data), jax=True),
        Tool("torch", "torch.optim.SGD loop, index_select", lambda: _torch(p, data), requires=("torch",)),
        Tool("numpy", "numpy loop, hand gradient", lambda: _numpy(p, data)),
    ]
    return Problem(
        tools=tools,
        steps=steps,
        targets=[
            Target("gradfit at most 1.3× the hand scan", "gradfit", "jax_scan", "<=", 1.3),
            Target("gradfit at least 2× faster than torch", "torch", "gradfit", ">=", 2.0),
        ],
        agreements=[
            Agreement("jax_scan", "gradfit", 1e-8),
            Agreement("gradfit_epochs", "gradfit", 1e-8),
            Agreement("torch", "gradfit", 1e-6, required=False),
            Agreement("numpy", "gradfit", 1e-6, required=False),
        ],
        notes=[
            f"N = {p['n']:,}, d = {p['d']}, batch {p['batch']}, {p['epochs']} epochs ({steps} steps), "
            f"lr = {p['lr']}, float64; the data take {nbytes / 2**20:.1f} MiB.",
            "gradfit's default records the full-data loss and gradient norm at the start, every 10 epochs and at "
            "the end (each a pass over the data); the hand scan records nothing.",
        ],
    )


CASE = Case(
    name="sgd",
    title="SGD, linear least squares, mini-batches without replacement, float64",
    params={"n": 1_000_000, "d": 16, "batch": 1024, "epochs": 5, "lr": 2e-4, "seed": 0},
    build=build,
    quick={"n": 20_000, "epochs": 2},
)

"""A sweep of 8 groups on a Dask LocalCluster: 2 workers against 1, and in this process.

The sweep: Adam on the Gabor model (30 points, s = 8), ``rates`` learning rates ×
``seeds`` seeds per group, and 8 groups (step caps ``steps``, ``steps + 1``, ...,
``steps + 7``: one compiled shape, eight groups of nearly equal work). Each worker
process compiles the loop once (its first group), then reuses it. Clusters are started
once, before timing (as a user's cluster would be running), bound to 127.0.0.1 with the
dashboard off, as ``gradfit sweep --workers N`` starts them: one task thread each, and
each worker kept to its share of the cores (XLA would otherwise spread every worker's
computation over all of them). In-process, XLA uses every core. Peak resident memory per worker is reported
in ``details``.
"""

from __future__ import annotations

import atexit
from typing import Any

import numpy as np

from ..harness import Agreement, Case, Problem, Run, Target, Tool


def _grid(p: dict[str, Any]) -> dict[str, Any]:
    return {"lr": [float(r) for r in np.geomspace(1e-3, 1.0, p["rates"])],
            "steps": [p["steps"] + k for k in range(p["groups"])]}


def _run(p: dict[str, Any], scheduler) -> Run:
    import gradfit

    data = gradfit.gabor_data(seed=0, n=p["n"], s=p["s"])
    model, loss = gradfit.gabor(s=p["s"]), gradfit.normal()

    def run() -> np.ndarray:
        frame = gradfit.sweep(model, loss, data, "adam", grid=_grid(p), seeds=p["seeds"], tol=0, scheduler=scheduler)
        return frame["final_loss"].to_numpy()

    return run


def _cluster(p: dict[str, Any], workers: int, memory: dict[str, Any]) -> Run:
    import logging

    import distributed

    from gradfit.sweeps.cluster import SHARE_CORES, worker_memory

    cluster = distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                                       dashboard_address=None, silence_logs=logging.ERROR,
                                       env={SHARE_CORES: str(workers)})  # as gradfit sweep --workers N starts them
    client = distributed.Client(cluster, set_as_default=False)

    def close() -> None:
        client.close()
        cluster.close()

    atexit.register(close)
    inner = _run(p, client)

    def run() -> np.ndarray:
        out = inner()
        memory[f"{workers}_workers_peak_rss_mib"] = {k: round(v / 2**20, 1) for k, v in worker_memory(client).items()}
        return out

    return run


def build(p: dict[str, Any]) -> Problem:
    memory: dict[str, Any] = {}
    runs = p["rates"] * p["seeds"]
    tools = [
        Tool("dask_2", f"gradfit.sweep on a 2-worker LocalCluster, {p['groups']} groups of {runs} runs",
             lambda: _cluster(p, 2, memory), requires=("distributed",)),
        Tool("dask_1", "the same on a 1-worker LocalCluster", lambda: _cluster(p, 1, memory),
             requires=("distributed",)),
        Tool("in_process", "the same in this process (no Dask)", lambda: _run(p, None), jax=True),
    ]
    return Problem(
        tools=tools,
        steps=p["steps"],
        baseline="dask_2",
        targets=[Target("2 workers at least 1.6× faster than 1", "dask_1", "dask_2", ">=", 1.6)],
        agreements=[Agreement("dask_1", "dask_2", 0.0), Agreement("in_process", "dask_2", 0.0)],
        details=memory,
        notes=[
            f"{p['groups']} groups × {p['rates']} learning rates × {p['seeds']} seeds, Adam, about {p['steps']} steps "
            "each, tol=0, float64; the clusters run before timing starts, and keep their compiled loops between calls.",
            "the agreement compares every run's final loss: bit for bit across 1 worker, 2 workers and no Dask.",
        ],
    )


CASE = Case(
    name="sweep_cluster",
    title="Sweep on Dask: 8 groups on 2 workers against 1",
    params={"n": 30, "s": 8.0, "steps": 1000, "groups": 8, "rates": 32, "seeds": 8},
    build=build,
    quick={"steps": 200, "rates": 4, "seeds": 2},
)

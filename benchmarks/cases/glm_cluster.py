"""Poisson regression on a 2-worker Dask LocalCluster against the in-memory fit of the same rows.

The problem: ``rows`` examples in ``partitions`` equal parts, ``cols`` standard-normal
columns, counts drawn from a Poisson model with log-rate 0.5 + Σ_j β_j x_j (β_j ~ N(0, 0.1²)),
an intercept and the log link. Each part is generated from its own seed, on a worker for
the cluster and in this process for the in-memory fit, so both see the same rows.

- cluster: ``gf.fit_glm(frame, "y", "poisson", x=..., scheduler=client)`` on a Dask
  DataFrame already persisted on the workers (as a user's data would be): the timed call
  converts each partition to its working form, makes the first pass (standardisation,
  checks, totals, subsample), runs Newton by map-reduce and the inference pass;
- in_memory: ``gf.fit_glm(columns, "y", "poisson", x=...)`` on a dict of numpy columns in
  this process: the timed call builds the design (with its checks), fits, and computes
  the inference.

Not timed: generating the data, starting the cluster, persisting the partitions. The
cluster is started as ``gf.fit_glm(..., workers=2)`` starts it: 127.0.0.1, dashboard
off, one thread per worker, each worker kept to its share of the cores; in-process,
XLA uses every core. ``details`` holds the largest relative differences of the
coefficients, standard errors and likelihood statistics between the two fits (the
issue's target: 1e-8), and each worker's peak resident memory.
"""

from __future__ import annotations

import atexit
from typing import Any

import numpy as np

from ..harness import Agreement, Case, Problem, Run, Target, Tool

STATISTICS = ("loglik", "deviance", "pearson_chi2", "aic", "bic")


def _part(seed: int, index: int, rows: int, cols: int) -> dict[str, np.ndarray]:
    """Part ``index`` of the data: its own random stream, the same coefficients for every part."""
    beta = np.random.default_rng([seed, 0]).normal(0.0, 0.1, cols)
    rng = np.random.default_rng([seed, 1, index])
    x = rng.normal(size=(rows, cols))
    y = rng.poisson(np.exp(0.5 + x @ beta)).astype(float)
    return {**{f"x{j + 1}": x[:, j] for j in range(cols)}, "y": y}


def _frame_part(seed: int, index: int, rows: int, cols: int):
    import pandas as pd

    return pd.DataFrame(_part(seed, index, rows, cols))


def _sizes(p: dict[str, Any]) -> list[int]:
    base, extra = divmod(p["rows"], p["partitions"])
    return [base + (1 if i < extra else 0) for i in range(p["partitions"])]


def _names(p: dict[str, Any]) -> list[str]:
    return [f"x{j + 1}" for j in range(p["cols"])]


def _rel(ours: Any, reference: Any) -> float:
    ours, reference = np.asarray(ours, dtype=float), np.asarray(reference, dtype=float)
    return float(np.max(np.abs(ours - reference) / np.abs(reference)))


def _compare(fits: dict[str, Any], details: dict[str, Any]) -> None:
    """The agreement of the two fits' results, into ``details`` (once both have run)."""
    if len(fits) < 2:
        return
    ours, ref = fits["cluster"], fits["in_memory"]
    details["coef_max_rel_diff"] = _rel(ours.x, ref.x)
    details["stderr_max_rel_diff"] = _rel(ours.inference.stderr, ref.inference.stderr)
    details["statistics_max_rel_diff"] = max(_rel(getattr(ours.inference, k), getattr(ref.inference, k))
                                             for k in STATISTICS)
    details["newton_iterations"] = {"cluster": ours.settings["newton_iterations"],
                                    "in_memory": ref.settings["newton_iterations"]}
    details["cluster_passes"] = ours.settings["cluster"]["passes"]
    details["cluster_seconds_by_stage"] = ours.settings["cluster"]["seconds"]  # of the last call


def _in_memory(p: dict[str, Any], fits: dict[str, Any], details: dict[str, Any]) -> Run:
    import gradfit as gf

    parts = [_part(p["seed"], i, rows, p["cols"]) for i, rows in enumerate(_sizes(p))]
    columns = {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}
    del parts
    names = _names(p)

    def run() -> np.ndarray:
        fit = gf.fit_glm(columns, "y", "poisson", x=names)
        fits["in_memory"] = fit
        _compare(fits, details)
        return fit.x

    return run


def _cluster(p: dict[str, Any], fits: dict[str, Any], details: dict[str, Any]) -> Run:
    import logging

    import dask
    import dask.dataframe as dd
    import distributed

    import gradfit as gf
    from gradfit.cluster import SHARE_CORES, worker_memory

    workers = p["workers"]
    cluster = distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                                       dashboard_address=None, silence_logs=logging.ERROR,
                                       env={SHARE_CORES: str(workers)})  # as fit_glm(..., workers=N) starts them
    client = distributed.Client(cluster, set_as_default=False)

    def close() -> None:
        client.close()
        cluster.close()

    atexit.register(close)
    meta = _frame_part(p["seed"], 0, 0, p["cols"])
    parts = [dask.delayed(_frame_part)(p["seed"], i, rows, p["cols"]) for i, rows in enumerate(_sizes(p))]
    frame = client.persist(dd.from_delayed(parts, meta=meta))
    client.compute(frame.map_partitions(len)).result()  # the partitions are made and held before timing
    names = _names(p)

    def run() -> np.ndarray:
        fit = gf.fit_glm(frame, "y", "poisson", x=names, scheduler=client)
        fits["cluster"] = fit
        _compare(fits, details)
        details["worker_peak_rss_mib"] = {k: round(v / 2**20, 1) for k, v in worker_memory(client).items()}
        return fit.x

    return run


def build(p: dict[str, Any]) -> Problem:
    fits: dict[str, Any] = {}
    details: dict[str, Any] = {}
    return Problem(
        tools=[
            Tool("cluster", f"gf.fit_glm on a persisted Dask DataFrame, {p['workers']}-worker LocalCluster",
                 lambda: _cluster(p, fits, details), requires=("distributed", "pandas")),
            Tool("in_memory", "gf.fit_glm on numpy columns in this process", lambda: _in_memory(p, fits, details),
                 jax=True),
        ],
        steps=1,
        baseline="in_memory",
        targets=[Target("cluster within 2x the in-memory fit", "cluster", "in_memory", "<=", 2.0)],
        agreements=[Agreement("cluster", "in_memory", 1e-8)],
        details=details,
        notes=[
            f"{p['rows']} rows × {p['cols']} columns (plus the intercept) in {p['partitions']} partitions; "
            "timed: from data in memory (the driver's numpy columns, the workers' persisted partitions) to the "
            "result with its inference; not timed: generating the data, starting the cluster, persisting.",
            "details: the largest relative differences between the two fits' coefficients, standard errors and "
            f"likelihood statistics ({', '.join(STATISTICS)}); the issue's target is 1e-8.",
        ],
    )


CASE = Case(
    name="glm_cluster",
    title="Poisson regression on a 2-worker Dask LocalCluster against the in-memory fit",
    params={"rows": 10_000_000, "cols": 20, "partitions": 8, "workers": 2, "seed": 0},
    build=build,
    quick={"rows": 20_000, "cols": 5, "partitions": 4},
)

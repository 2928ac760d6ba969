"""Run a sweep's groups on Dask: join a scheduler or start a local cluster, run the groups, measure the workers.

A sweep is split into groups, each a vmapped batch of fits compiled once. `connect` gives a
`distributed.Client` (or None, to run in-process), `run_groups` runs ``fn(group)`` for every
group and hands each result to ``on_result`` in the driver as it finishes (so one process
writes the rows), and `worker_memory` reports each worker's peak memory. The Dask set-up
itself (`connect`, pinning workers to their cores, `worker_memory`) lives in the core
module `gradfit.cluster`, shared with regression on a cluster; this module re-exports it.

Dask is optional: this module imports without it, and asking for a cluster without it
installed raises a `GradfitError` saying what to install.

Workers compile once only if ``fn`` reaches them by reference: define ``fn``, and the
jitted functions it calls, at module level in an importable module (not in a script's
``__main__``, not as a lambda or closure, and not ``fn = jax.jit(...)`` itself). Anything
else is pickled by value, and each task then unpickles a fresh jitted function and compiles
it again.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from gradfit.cluster import (  # noqa: F401 - re-exported: the sweeps' cluster API
    CONNECT_TIMEOUT,
    SHARE_CORES,
    _client,
    _distributed,
    _probe,
    _scheduler_address,
    _worker_count,
    connect,
    on_its_cores,
    worker_memory,
)
from gradfit.errors import GradfitError

if TYPE_CHECKING:
    import distributed


def run_groups(
    client: distributed.Client | None,
    fn: Callable[[Any], Any],
    groups: Iterable[Any],
    on_result: Callable[[int, Any], None],
    *,
    retries: int = 2,
) -> None:
    """Run ``fn(group)`` for every group, calling ``on_result(index, result)`` in this process as each finishes.

    With no client the groups run here, in order, and an error in ``fn`` propagates as it
    is. On a client every group is submitted at once and results arrive in the order they
    finish, each exactly once: a task that raises is retried ``retries`` times, and one on
    a worker that dies is rescheduled by Dask. A group that still fails cancels the rest
    and raises a `GradfitError` naming the group and the worker's error; Ctrl-C (or any
    error from ``on_result``) cancels the rest and propagates.

    ``fn`` and each group are pickled to the workers; see the module's note on defining
    ``fn`` so that workers compile once.
    """
    if isinstance(retries, bool) or not isinstance(retries, numbers.Integral) or retries < 0:
        raise GradfitError(f"retries must be a whole number >= 0, not {retries!r}")
    groups = list(groups)
    if client is None:
        for index, group in enumerate(groups):
            on_result(index, fn(group))
        return
    distributed = _distributed()
    pending = {}
    try:
        for index, group in enumerate(groups):
            future = client.submit(on_its_cores, fn, group, retries=int(retries), pure=False)
            pending[future.key] = index, future
        for future in distributed.as_completed([f for _, f in pending.values()], loop=client.loop):
            index, _ = pending.pop(future.key)
            if future.status != "finished":
                raise _group_failed(index, groups[index], future, retries)
            on_result(index, future.result())
    except BaseException:
        if pending:
            client.cancel([f for _, f in pending.values()])
        raise


def _group_failed(index: int, group: Any, future: Any, retries: int) -> GradfitError:
    """The one-line error for a group that failed on the cluster, with the worker's error as its cause."""
    label = " ".join(repr(group).split())
    label = label if len(label) <= 60 else label[:57] + "..."
    if future.status != "error":
        return GradfitError(f"group {index} ({label}) was {future.status} on the Dask cluster (lost the scheduler?): "
                            "check the cluster and run the sweep again")
    cause = future.exception()
    lines = str(cause).strip().splitlines()
    what = type(cause).__name__ + (f": {lines[0]}" if lines else "")
    # Retries count errors raised by fn; a task whose workers died is given up on by the scheduler.
    tries = "" if type(cause).__name__ == "KilledWorker" else f" after {retries} retries"
    error = GradfitError(f"group {index} ({label}) failed on a Dask worker{tries}: {what}; "
                         "run the sweep in-process (no scheduler or workers) to see its traceback")
    error.__cause__ = cause
    return error

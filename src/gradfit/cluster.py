"""Dask set-up shared by everything gradfit runs on a cluster: join a scheduler or start a local one.

`connect` gives a `distributed.Client` (or None, to run in-process): a local cluster of
single-threaded worker processes on 127.0.0.1 with the dashboard off, a scheduler's
address, or a client of the caller's. `on_its_cores` runs a task on a worker of such a
local cluster kept to its share of the machine's cores, and `worker_memory` reports each
worker's peak memory. Sweeps (`gradfit.sweeps.cluster`) and regression on a cluster
(`gradfit.glm_cluster`) both start here.

Dask is optional: this module imports without it, and asking for a cluster without it
installed raises a `GradfitError` saying what to install.
"""

from __future__ import annotations

import contextlib
import logging
import numbers
import os
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from gradfit.errors import GradfitError

if TYPE_CHECKING:
    import distributed

#: Seconds to keep trying to reach a scheduler before giving up.
CONNECT_TIMEOUT = 10.0


def _distributed():
    """The `distributed` package, or the error that says how to install it."""
    try:
        import distributed
    except ImportError:
        raise GradfitError("a Dask cluster needs Dask: pip install 'gradfit[cluster]'") from None
    return distributed


@contextlib.contextmanager
def connect(
    scheduler: str | distributed.Client | None = None,
    workers: int | None = None,
    *,
    timeout: float = CONNECT_TIMEOUT,
) -> Iterator[distributed.Client | None]:
    """A context giving the Dask client to run on, or None to run in-process.

    - neither given: None (the caller runs the work in this process);
    - ``workers=N``: a local cluster of N single-threaded worker processes on 127.0.0.1
      (dashboard off), closed with its client when the context exits, also on an error
      or Ctrl-C;
    - ``scheduler="tcp://HOST:PORT"``: a client of that scheduler, closed on exit (the
      scheduler and its workers keep running); one not reached within ``timeout``
      seconds is a `GradfitError`;
    - ``scheduler=client``, a `distributed.Client` of the caller's (for TLS or any other
      setup an address cannot say): used as it is and left open.
    """
    if scheduler is not None and workers is not None:
        raise GradfitError("give a scheduler or a number of workers, not both: a scheduler joins a running "
                           "cluster, workers=N starts a local one")
    if not (isinstance(timeout, numbers.Real) and timeout > 0):
        raise GradfitError(f"timeout must be a number of seconds > 0, not {timeout!r}")
    if scheduler is None and workers is None:
        yield None
        return
    if workers is not None:
        n = _worker_count(workers)
        distributed = _distributed()
        # silence_logs lowers dask's own stderr handlers to ERROR for the cluster's life (in
        # the workers too), so starting and stopping prints nothing; a group that raises
        # still logs its error from the worker, once per try.
        with (
            distributed.LocalCluster(n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
                                     dashboard_address=None, silence_logs=logging.ERROR,
                                     env={SHARE_CORES: str(n)}) as cluster,
            distributed.Client(cluster, set_as_default=False) as client,
        ):
            yield client
        return
    if not isinstance(scheduler, str):
        if not isinstance(scheduler, _distributed().Client):
            raise GradfitError(f"scheduler must be an address like tcp://127.0.0.1:8786 or a distributed.Client, "
                               f"not {type(scheduler).__name__} {scheduler!r}")
        yield scheduler
        return
    address = _scheduler_address(scheduler)
    distributed = _distributed()
    _probe(address, timeout)
    with _client(distributed, address, timeout) as client:
        yield client


def _client(distributed, address: str, timeout: float):
    """A client of the scheduler at ``address``, or the error within about ``timeout`` seconds.

    Dask's own timeout covers connecting, not a peer that accepts the connection and then
    never answers its handshake; so the client is made in a thread of its own, given up on
    (left to finish or hang in the background) if it is not ready in time.
    """
    made: dict[str, Any] = {}

    def make() -> None:
        try:
            made["client"] = distributed.Client(address, timeout=timeout, set_as_default=False)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            made["error"] = exc

    thread = threading.Thread(target=make, name="gradfit-dask-connect", daemon=True)
    thread.start()
    thread.join(timeout + 1.0)
    if thread.is_alive() or isinstance(made.get("error"), OSError):  # the timeout dask raises is an OSError
        raise GradfitError(f"cannot reach the Dask scheduler at {address} within {timeout:g} s: start one with "
                           "'dask scheduler', or use --workers N for a local cluster")
    if "error" in made:
        raise made["error"]
    return made["client"]


def _probe(address: str, timeout: float) -> None:
    """Refuse at once an address where nothing listens (a refused connection), rather than after the
    client's whole timeout; a scheduler that answers slowly still gets the timeout."""
    host, _, port = address.removeprefix("tcp://").rpartition(":")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        why = "nothing listens there" if isinstance(exc, ConnectionRefusedError) else (exc.strerror or str(exc))
        raise GradfitError(f"cannot reach the Dask scheduler at {address} ({why}): start one with "
                           "'dask scheduler', or use --workers N for a local cluster") from None


def _worker_count(workers: Any) -> int:
    """``workers`` as a whole number >= 1 (2.0 is 2), or the error."""
    whole = (isinstance(workers, numbers.Integral) or (isinstance(workers, float) and workers.is_integer()))
    if isinstance(workers, bool) or not whole or workers < 1:
        raise GradfitError(f"workers must be a whole number >= 1 (the worker processes to start), not {workers!r}")
    return int(workers)


def _scheduler_address(scheduler: str) -> str:
    """``scheduler`` as a checked ``tcp://HOST:PORT`` address (``HOST:PORT`` means tcp), or the error.

    Checked here because dask raises on a malformed address from inside `Client`, which then
    stalls the interpreter's exit for seconds trying to close a client that never opened.
    """
    address = scheduler.strip()
    if "://" not in address:
        address = "tcp://" + address
    scheme, _, location = address.partition("://")
    host, colon, port = location.rpartition(":")
    if host.startswith("[") and host.endswith("]"):  # an IPv6 literal
        host = host[1:-1]
    if scheme != "tcp" or not colon or not host or "/" in location or not port.isdigit() or not 0 < int(port) < 65536:
        raise GradfitError(f"malformed Dask scheduler address {scheduler!r}: give tcp://HOST:PORT, e.g. "
                           "tcp://127.0.0.1:8786 (for tls:// or other setups, pass a distributed.Client)")
    return address


#: Set on the workers of a local cluster to their number: each then runs on its share of the cores.
SHARE_CORES = "GRADFIT_SHARE_CORES"

_PINNED: list[bool] = []


def pin_to_share() -> None:
    """Keep this worker of a local cluster to its share of the cores (once; a no-op elsewhere).

    XLA's CPU runtime spreads a computation over every core it sees. Two workers on a
    2-core machine would each use both, and a sweep on them would run no faster than on
    one (measured: 31.9 s on 2 workers against 33.3 s on 1). Worker k of n keeps to cores
    k·m/n ... (k+1)·m/n − 1 of the m it may use, fixed on its first task before its first
    computation, so the threads XLA then starts keep to them too. Linux only; elsewhere,
    and on the workers of a cluster gradfit did not start, nothing changes.
    """
    if _PINNED:
        return
    _PINNED.append(True)
    share = os.environ.get(SHARE_CORES)
    if share and hasattr(os, "sched_setaffinity"):
        try:
            name = _distributed().get_worker().name
            cores = sorted(os.sched_getaffinity(0))
            n, k = int(share), int(name)
            per = max(1, len(cores) // n)
            first = (k * per) % len(cores)
            os.sched_setaffinity(0, set(cores[first:first + per]))
        except (ValueError, TypeError, OSError):  # a worker not named by its number: leave it be
            pass


def on_its_cores(fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)`` on a worker, the worker first kept to its share of the cores (`pin_to_share`)."""
    pin_to_share()
    return fn(*args)


def worker_memory(client: distributed.Client) -> dict[str, int]:
    """Each worker's peak resident memory in bytes, by worker address (a restarted worker counts from its restart)."""
    return {address: int(rss) for address, rss in client.run(_peak_rss).items()}


def _peak_rss() -> int:
    """This process's peak resident set size in bytes (run on each worker)."""
    try:
        import resource
    except ImportError:  # Windows: psutil is a dependency of distributed
        import psutil

        info = psutil.Process().memory_info()
        return int(getattr(info, "peak_wset", info.rss))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)  # macOS counts bytes, Linux KiB

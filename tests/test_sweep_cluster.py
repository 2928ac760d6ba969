"""Running a sweep's groups on Dask: a real 2-process LocalCluster on 127.0.0.1, against the in-process run."""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import sys
import time

import pytest

from gradfit.errors import GradfitError
from gradfit.sweeps import cluster

distributed = pytest.importorskip("distributed")
cloudpickle = pytest.importorskip("cloudpickle")


# Work functions run on the workers. They travel by value (see the `client` fixture), so the
# workers need not be able to import this test module.
def square_sum(group):
    return sum(x * x for x in group)


def slow_index(group):
    index, seconds = group
    time.sleep(seconds)
    return index


def fail_on_three(index):
    if index == 3:
        raise ValueError(f"bad group {index}\nsecond line of the worker's message")
    return index


@pytest.fixture(scope="module")
def client():
    """A client of a 2-worker local cluster, started once for the module through `connect`."""
    module = sys.modules[__name__]
    cloudpickle.register_pickle_by_value(module)
    try:
        with cluster.connect(workers=2) as client:
            yield client
    finally:
        cloudpickle.unregister_pickle_by_value(module)


@pytest.fixture
def healthy(client):
    """The module's client with both workers up (a test that kills one waits for its restart)."""
    yield client
    client.wait_for_workers(2, timeout=30)


def collect(client, fn, groups, **kwargs):
    """The results of `run_groups` as (index, result) pairs, in the order `on_result` got them."""
    calls = []
    cluster.run_groups(client, fn, groups, lambda i, r: calls.append((i, r)), **kwargs)
    return calls


def test_neither_given_runs_in_process_in_order():
    with cluster.connect() as client:
        assert client is None
    groups = [[1, 2], [3], [], [4, 5, 6]]
    assert collect(None, square_sum, groups) == [(0, 5), (1, 9), (2, 0), (3, 77)]


def test_cluster_run_equals_in_process_run(healthy):
    groups = [list(range(i, i + 5)) for i in range(12)]
    calls = collect(healthy, square_sum, groups)
    assert sorted(i for i, _ in calls) == list(range(len(groups)))  # each group exactly once
    assert sorted(calls) == collect(None, square_sum, groups)


def test_no_groups_calls_nothing(healthy):
    assert collect(healthy, square_sum, []) == []


def test_failed_group_is_named_in_one_line_and_cancels_the_rest(healthy):
    with pytest.raises(GradfitError) as caught:
        collect(healthy, fail_on_three, range(6), retries=1)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("group 3 (3) failed on a Dask worker after 1 retries: ValueError: bad group 3;")
    assert isinstance(caught.value.__cause__, ValueError)


class CancelSpy:
    """A client that records what `run_groups` cancels."""

    def __init__(self, client):
        self._client = client
        self.cancelled = []

    def __getattr__(self, name):
        return getattr(self._client, name)

    def cancel(self, futures):
        self.cancelled.extend(futures)
        return self._client.cancel(futures)


def test_ctrl_c_cancels_the_rest_and_propagates(healthy):
    spy = CancelSpy(healthy)

    def interrupt(index, result):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        cluster.run_groups(spy, slow_index, [(i, 0.2) for i in range(6)], interrupt)
    assert len(spy.cancelled) == 5


def test_killed_worker_loses_and_repeats_no_group(healthy):
    pids = healthy.run(os.getpid)
    victim = next(iter(pids))
    groups = [(i, 0.5) for i in range(8)]
    calls, running_when_killed = [], []

    def on_result(index, result):
        calls.append((index, result))
        if len(calls) == 1:
            running_when_killed.extend(healthy.processing()[victim])
            os.kill(pids[victim], signal.SIGKILL)

    cluster.run_groups(healthy, slow_index, groups, on_result)
    assert running_when_killed, "the worker was killed between groups, not mid-group"
    assert sorted(calls) == [(i, i) for i in range(len(groups))]


def test_worker_memory_reports_each_worker(healthy):
    memory = cluster.worker_memory(healthy)
    assert memory.keys() == healthy.scheduler_info()["workers"].keys()
    assert all(isinstance(rss, int) and 10 * 2**20 < rss < 8 * 2**30 for rss in memory.values())


def test_connect_by_address_closes_only_its_own_client(healthy):
    address = healthy.scheduler.address
    with cluster.connect(scheduler=address) as client:
        assert client is not healthy
        assert sorted(collect(client, square_sum, [[2], [3]])) == [(0, 4), (1, 9)]
    assert client.status == "closed"
    assert healthy.status == "running"


def test_given_client_is_used_and_left_open(healthy):
    with cluster.connect(scheduler=healthy) as client:
        assert client is healthy
    assert healthy.status == "running"


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_port_nobody_listens_on_is_refused_at_once():
    address = f"tcp://127.0.0.1:{free_port()}"
    start = time.perf_counter()
    with pytest.raises(GradfitError) as caught, cluster.connect(scheduler=address, timeout=10):
        pass
    assert time.perf_counter() - start < 3
    assert str(caught.value) == (f"cannot reach the Dask scheduler at {address} (nothing listens there): start one "
                                 "with 'dask scheduler', or use --workers N for a local cluster")


@pytest.fixture
def silent_server():
    """A TCP port on 127.0.0.1 that accepts connections and never answers: a scheduler that hangs."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    yield f"tcp://127.0.0.1:{server.getsockname()[1]}"
    server.close()


def test_a_scheduler_that_never_answers_gives_up_within_the_timeout(silent_server):
    start = time.perf_counter()
    with pytest.raises(GradfitError) as caught, cluster.connect(scheduler=silent_server, timeout=1):
        pass
    assert time.perf_counter() - start < 1 + 2
    assert str(caught.value) == (f"cannot reach the Dask scheduler at {silent_server} within 1 s: start one with "
                                 "'dask scheduler', or use --workers N for a local cluster")


@pytest.mark.slow
def test_a_scheduler_that_never_answers_gives_up_within_10_s_by_default(silent_server):
    start = time.perf_counter()
    with pytest.raises(GradfitError, match=r"^cannot reach the Dask scheduler at .* within 10 s: "):
        with cluster.connect(scheduler=silent_server):
            pass
    assert time.perf_counter() - start < 10 + 2


@pytest.mark.parametrize("address", ["tcp://127.0.0.1", "tcp://127.0.0.1:abc", "tcp://:8786", "tcp://127.0.0.1:0",
                                     "tcp://127.0.0.1:99999", "tls://127.0.0.1:8786", "tcp://127.0.0.1:8786/x", ""])
def test_malformed_address_fails_at_once(address):
    start = time.perf_counter()
    with pytest.raises(GradfitError, match=r"^malformed Dask scheduler address .*: give tcp://HOST:PORT"):
        with cluster.connect(scheduler=address):
            pass
    assert time.perf_counter() - start < 1


def test_address_without_scheme_means_tcp():
    assert cluster._scheduler_address("127.0.0.1:8786") == "tcp://127.0.0.1:8786"
    assert cluster._scheduler_address("tcp://[::1]:8786") == "tcp://[::1]:8786"


def test_bad_timeout():
    with pytest.raises(GradfitError, match="^timeout must be a number of seconds > 0"):
        with cluster.connect(scheduler="tcp://127.0.0.1:8786", timeout=0):
            pass


def test_scheduler_of_another_type():
    with pytest.raises(GradfitError, match="^scheduler must be an address like tcp://127.0.0.1:8786 or a distributed"):
        with cluster.connect(scheduler=8786):
            pass


@pytest.mark.parametrize("workers", [0, -1, 1.5, True, "2", [2]])
def test_bad_workers(workers):
    with pytest.raises(GradfitError, match=r"^workers must be a whole number >= 1"):
        with cluster.connect(workers=workers):
            pass


def test_scheduler_and_workers_together():
    with pytest.raises(GradfitError, match="^give a scheduler or a number of workers, not both"):
        with cluster.connect(scheduler="tcp://127.0.0.1:8786", workers=2):
            pass


@pytest.mark.parametrize("retries", [-1, 1.5, True])
def test_bad_retries(retries):
    with pytest.raises(GradfitError, match="^retries must be a whole number >= 0"):
        cluster.run_groups(None, square_sum, [[1]], print, retries=retries)


def test_without_dask(monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed now raises ImportError
    monkeypatch.setitem(sys.modules, "dask", None)
    spec = importlib.util.spec_from_file_location("cluster_without_dask", cluster.__file__)
    fresh = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fresh)  # the module itself imports without dask
    with fresh.connect() as client:
        assert client is None
    with pytest.raises(GradfitError, match=r"^a Dask cluster needs Dask: pip install 'gradfit\[cluster\]'$"):
        with fresh.connect(workers=2):
            pass

"""gf.stream: every row once an epoch, exact = in-memory batches, resumable, bounded, and its errors."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import gradfit as gf
from gradfit import streaming
from gradfit.data import epoch_batches
from gradfit.errors import GradfitError

# -- data -------------------------------------------------------------------------------------


def columns_of(ids: np.ndarray) -> dict[str, np.ndarray]:
    """Columns that identify their row: a = id / 2, b = -3 id, c = id², id (the target)."""
    return {"a": ids / 2.0, "b": -3.0 * ids, "c": ids**2, "id": ids.astype(float)}


def write_parquet(folder: Path, n: int, files: int = 3, group: int = 37, name: str = "part") -> list[Path]:
    """n rows with ids 0..n-1 in file order, in ``files`` files of row groups of ``group`` rows."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k, ids in enumerate(np.array_split(np.arange(n), files)):
        path = folder / f"{name}-{k:02d}.parquet"
        pq.write_table(pa.table(columns_of(ids)), path, row_group_size=group)
        paths.append(path)
    return paths


def write_csv(folder: Path, n: int, files: int = 3) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k, ids in enumerate(np.array_split(np.arange(n), files)):
        path = folder / f"part-{k:02d}.csv"
        cols = columns_of(ids)
        lines = ["a,b,c,id"] + [",".join(repr(float(cols[c][i])) for c in cols) for i in range(len(ids))]
        path.write_text("\n".join(lines) + "\n")
        paths.append(path)
    return paths


def steps(source: gf.Stream, batch: int, count: int, *, seed: int = 0, first: int = 0, per_block: int = 3,
          dtype=np.float64) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``count`` global steps from ``first``, as (x, y, mask) of shape (count, batch, ...)."""
    xs, ys, ms = [], [], []
    with source.blocks(batch, per_block, seed, first, dtype) as blocks:
        while sum(len(m) for m in ms) < count:
            x, y, m = next(blocks)
            assert x.dtype == y.dtype == np.dtype(dtype) and m.dtype == bool
            xs.append(x)
            ys.append(y)
            ms.append(m)
    return np.concatenate(xs)[:count], np.concatenate(ys)[:count], np.concatenate(ms)[:count]


def epochs_of(source: gf.Stream, batch: int, epochs: int, seed: int = 0, columns_of_ids: bool = True
              ) -> list[np.ndarray]:
    """The targets each epoch visits, in order: the row ids, for data made by `columns_of`."""
    per_epoch = -(-source.n_rows // batch)
    x, y, mask = steps(source, batch, epochs * per_epoch, seed=seed)
    assert np.all(x[~mask] == 0) and np.all(y[~mask] == 0), "padding is zeros"
    if columns_of_ids:  # x belongs to y: rows are moved whole
        ids = y[mask]
        np.testing.assert_array_equal(x[mask], np.column_stack([ids / 2, -3 * ids, ids**2]))
    return [y[e * per_epoch:(e + 1) * per_epoch][mask[e * per_epoch:(e + 1) * per_epoch]] for e in range(epochs)]


def budget(share: float):
    """Settings giving a test ``share`` of the loaded profile's examples (its cost decides)."""
    return settings(max_examples=max(1, round(share * settings.default.max_examples)))


def no_stream_threads(wait: float = 2.0) -> bool:
    """Whether no stream thread is alive, within ``wait`` seconds (0: now)."""
    for _ in range(max(1, int(wait / 0.02))):
        if not any(t.name == "gradfit-stream" and t.is_alive() for t in threading.enumerate()):
            return True
        time.sleep(0.02)
    return False


# -- the shuffle --------------------------------------------------------------------------------


@pytest.mark.parametrize("buffer_rows", [1, 10, 150, 999])
def test_buffered_visits_every_row_once_an_epoch(tmp_path, buffer_rows):
    source = gf.stream(write_parquet(tmp_path, 1000), buffer_rows=buffer_rows)
    assert not source.exact and source.buffer_rows == buffer_rows
    orders = epochs_of(source, 64, 3, seed=5)
    for order in orders:
        np.testing.assert_array_equal(np.sort(order), np.arange(1000))
    assert not np.array_equal(orders[0], orders[1]) and not np.array_equal(orders[1], orders[2])
    if buffer_rows > 1:  # a buffer of one slot passes rows through in the units' order
        for order in orders:  # rows next to each other in the files seldom stay so (the flush too)
            assert np.mean(np.diff(order) == 1) < 0.3
    assert no_stream_threads()


def test_a_larger_buffer_moves_rows_further(tmp_path):
    """One row group read in order: how far rows move grows with the buffer."""
    path = write_parquet(tmp_path, 4000, files=1, group=4000)
    moved = {}
    for rows in (10, 1000):
        order = epochs_of(gf.stream(path, buffer_rows=rows), 100, 1)[0]
        moved[rows] = np.median(np.abs(order - np.arange(4000)))
    assert moved[10] < 30 < 300 < moved[1000]


def test_exact_shuffle_gives_the_in_memory_batches(tmp_path):
    source = gf.stream(write_parquet(tmp_path, 250, group=20))
    assert source.exact and source.buffer_rows == 250  # the default buffer holds small data whole
    data = source.read_all()
    np.testing.assert_array_equal(data.y, np.arange(250))
    per_epoch = -(-250 // 32)  # 8, the last batch has 26 rows and 6 padded
    x, y, mask = steps(source, 32, 3 * per_epoch, seed=11, per_block=5)  # blocks straddle epochs
    for epoch in range(3):
        index, keep = epoch_batches(250, 32, 11, epoch)
        got = slice(epoch * per_epoch, (epoch + 1) * per_epoch)
        np.testing.assert_array_equal(mask[got], keep)
        np.testing.assert_array_equal(y[got], np.where(keep, data.y[index], 0))
        np.testing.assert_array_equal(x[got], np.where(keep[..., None], data.x[index], 0))


@pytest.mark.parametrize("buffer_rows", [40, None])
def test_same_seed_same_blocks_other_seed_other_blocks(tmp_path, buffer_rows):
    source = gf.stream(write_parquet(tmp_path, 300), buffer_rows=buffer_rows)
    first = steps(source, 16, 30, seed=3)
    again = steps(gf.stream(sorted(tmp_path.glob("*.parquet")), buffer_rows=buffer_rows), 16, 30, seed=3)
    other = steps(source, 16, 30, seed=4)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[1], other[1])


@pytest.mark.parametrize("buffer_rows", [25, None])
@pytest.mark.parametrize("first", [1, 9, 20, 31])
def test_resuming_mid_epoch_gives_the_same_blocks(tmp_path, buffer_rows, first):
    source = gf.stream(write_parquet(tmp_path, 200, group=15), buffer_rows=buffer_rows)
    per_epoch = -(-200 // 18)  # 12 steps an epoch
    whole = steps(source, 18, first + 2 * per_epoch, seed=2, per_block=5)
    resumed = steps(source, 18, 2 * per_epoch, seed=2, first=first, per_block=5)
    for a, b in zip(whole, resumed):
        np.testing.assert_array_equal(a[first:], b)


def test_the_order_depends_not_on_batch_size_dtype_or_read_size(tmp_path, monkeypatch):
    paths = write_parquet(tmp_path, 3000, group=400)
    order = epochs_of(gf.stream(paths, buffer_rows=500), 64, 2, seed=9)
    assert all(np.array_equal(a, b) for a, b in zip(order, epochs_of(gf.stream(paths, buffer_rows=500), 7, 2, seed=9)))
    x, y, mask = steps(gf.stream(paths, buffer_rows=500), 64, 47, seed=9, dtype=np.float32)
    np.testing.assert_array_equal(y[mask], order[0])
    monkeypatch.setattr(streaming, "MIN_READ_ROWS", 1)
    monkeypatch.setattr(streaming, "READ_BYTES", 8 * 4 * 33)  # chunks of 33 rows, not 125
    monkeypatch.setattr(streaming, "UNIT_BYTES", 8 * 4 * 399)  # row groups read in pieces, not whole
    monkeypatch.setattr(streaming, "PIECE_BYTES", 8 * 4 * 150)
    small_reads = gf.stream(paths, buffer_rows=500)
    assert small_reads._read_rows == 33
    assert all(np.array_equal(a, b) for a, b in zip(order, epochs_of(small_reads, 64, 2, seed=9)))


@pytest.mark.fuzz
@given(
    sizes=st.lists(st.integers(0, 60), min_size=1, max_size=4).filter(lambda s: sum(s) > 0),
    group=st.integers(1, 25),
    buffer_rows=st.integers(1, 80),
    batch=st.integers(1, 40),
    seed=st.integers(0, 2**32),
    first=st.integers(0, 12),
)
@budget(0.5)  # each example writes its files and runs two streams
def test_every_row_once_an_epoch_and_resume_fuzzed(sizes, group, buffer_rows, batch, seed, first):
    with tempfile.TemporaryDirectory() as folder:
        start = 0
        for k, size in enumerate(sizes):
            ids = np.arange(start, start + size)
            pq.write_table(pa.table(columns_of(ids)), Path(folder) / f"p{k}.parquet", row_group_size=group)
            start += size
        source = gf.stream(folder, buffer_rows=buffer_rows)
        n, per_epoch = start, -(-start // batch)
        x, y, mask = steps(source, batch, first + 2 * per_epoch, seed=seed, per_block=4)
        for epoch in range(2):
            got = slice(epoch * per_epoch, (epoch + 1) * per_epoch)
            np.testing.assert_array_equal(np.sort(y[got][mask[got]]), np.arange(n))
            assert mask[got].sum() == n and mask[got][:-1].all()  # only the epoch's last batch is short
        tail = steps(source, batch, 2 * per_epoch, seed=seed, first=first, per_block=3)
        for a, b in zip((x, y, mask), tail):
            np.testing.assert_array_equal(a[first:], b)


@pytest.mark.fuzz
@given(
    size=st.integers(1, 30),
    slots=st.lists(st.integers(0, 29), min_size=1, max_size=60),
)
def test_exchange_is_the_row_by_row_shuffle_buffer(size, slots):
    slots = np.array([s % size for s in slots])
    buffer = np.arange(size * 2, dtype=float).reshape(size, 2)
    rows = 1000 + np.arange(len(slots) * 2, dtype=float).reshape(-1, 2)
    expected_buffer, expected_out = buffer.copy(), []
    for row, slot in zip(rows, slots):
        expected_out.append(expected_buffer[slot].copy())
        expected_buffer[slot] = row
    out = streaming._exchange(buffer, rows, slots)
    np.testing.assert_array_equal(out, np.array(expected_out))
    np.testing.assert_array_equal(buffer, expected_buffer)


def test_slot_draws_do_not_depend_on_how_rows_arrive():
    whole = streaming._Slots(np.random.default_rng(1), 50).take(100_000)
    cut = streaming._Slots(np.random.default_rng(1), 50)
    pieces = [cut.take(k) for k in (1, 70_000, 29_999)]
    np.testing.assert_array_equal(whole, np.concatenate(pieces))


# -- formats, columns, dtypes, scans ---------------------------------------------------------------


def test_csv_files_stream_like_parquet(tmp_path):
    write_csv(tmp_path / "csv", 120)
    write_parquet(tmp_path / "pq", 120)
    from_csv = gf.stream(str(tmp_path / "csv" / "*.csv"), buffer_rows=30)
    from_parquet = gf.stream(tmp_path / "pq", buffer_rows=500)
    assert from_csv.n_rows == 120 and from_csv.x_names == ("a", "b", "c") and from_csv.y_name == "id"
    for order in epochs_of(from_csv, 25, 2, seed=1):
        np.testing.assert_array_equal(np.sort(order), np.arange(120))
    exact = gf.stream(str(tmp_path / "csv" / "*.csv"))
    assert exact.exact
    np.testing.assert_array_equal(steps(exact, 25, 10, seed=1)[1], steps(from_parquet, 25, 10, seed=1)[1])
    np.testing.assert_array_equal(exact.read_all().x, from_parquet.read_all().x)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("buffer_rows", [17, None])
def test_dtypes(tmp_path, dtype, buffer_rows):
    source = gf.stream(write_parquet(tmp_path, 90), buffer_rows=buffer_rows)
    x, y, mask = steps(source, 20, 5, dtype=dtype)
    assert x.shape == (5, 20, 3) and y.shape == mask.shape == (5, 20)
    ids = y[mask].astype(np.float64)
    np.testing.assert_array_equal(x[mask], np.column_stack([ids / 2, -3 * ids, ids**2]).astype(dtype))
    with source.scan(50, dtype) as scan:
        assert all(b[0].dtype == b[1].dtype == np.dtype(dtype) for b in scan)


def test_columns_chosen_by_name_in_the_order_named(tmp_path):
    path = write_parquet(tmp_path, 60, files=1)[0]
    source = gf.stream(path, x=["c", "a"], y="b", buffer_rows=13)
    assert (source.x_names, source.y_name, source.n_inputs) == (("c", "a"), "b", 2)
    x, y, mask = steps(source, 10, 6)
    ids = -y[mask] / 3
    np.testing.assert_allclose(x[mask], np.column_stack([ids**2, ids / 2]))
    one = gf.stream(path, x="a", y="id")
    x, y, mask = steps(one, 10, 6)
    assert x.shape == (6, 10)  # one input: x has no column axis, as in memory
    np.testing.assert_array_equal(x[mask], y[mask] / 2)
    assert one.read_all().x.shape == (60,)


def test_default_inputs_are_the_numeric_columns_but_the_target(tmp_path):
    n = 20
    table = pa.table({
        "label": [f"s{i}" for i in range(n)], "k": np.arange(n), "flag": np.arange(n) % 2 == 0,
        "v": pa.array(np.arange(n) * 0.5, pa.float32()), "when": pa.array(np.arange(n), pa.timestamp("s")),
        "cat": pa.array(np.arange(n) % 3).dictionary_encode(), "y": np.arange(n, dtype=float),
    })
    pq.write_table(table, tmp_path / "t.parquet")
    source = gf.stream(tmp_path / "t.parquet", buffer_rows=7)
    assert source.x_names == ("k", "flag", "v", "cat")
    data = source.read_all()
    np.testing.assert_array_equal(data.x, np.column_stack([np.arange(n), np.arange(n) % 2 == 0,
                                                           np.arange(n) * 0.5, np.arange(n) % 3]))
    x, y, mask = steps(source, 8, 3)
    np.testing.assert_array_equal(x[mask][:, 0], y[mask])


def test_scan_passes_once_in_file_order(tmp_path):
    source = gf.stream(write_parquet(tmp_path, 130, group=11), buffer_rows=9)
    with source.scan(50, np.float64) as scan:
        blocks = list(scan)
    assert [b[0].shape for b in blocks] == [(50, 3)] * 3 and [int(b[2].sum()) for b in blocks] == [50, 50, 30]
    y = np.concatenate([b[1] for b in blocks])
    np.testing.assert_array_equal(y[:130], np.arange(130))
    assert not y[130:].any() and not blocks[-1][0][30:].any()
    assert next(scan, "done") == "done"
    exact = gf.stream(tmp_path)
    steps(exact, 7, 1)  # reads the data into memory; the scan then comes from there
    with exact.scan(128, np.float32) as scan:
        y = np.concatenate([b[1][b[2]] for b in scan])
    np.testing.assert_array_equal(y, np.arange(130))


def test_tab_separated_files(tmp_path):
    path = tmp_path / "t.tsv"
    path.write_text("u\tv\tw\n" + "".join(f"{i}\t{2 * i}\t{i % 2 == 0}\n" for i in range(50)))
    source = gf.stream(path, x=["w", "u"], y="v", buffer_rows=8)
    data = source.read_all()
    np.testing.assert_array_equal(data.x, np.column_stack([np.arange(50) % 2 == 0, np.arange(50)]))
    for order in epochs_of(source, 6, 2, columns_of_ids=False):
        np.testing.assert_array_equal(np.sort(order), 2 * np.arange(50))


def test_paths_globs_folders_and_lists(tmp_path):
    paths = write_parquet(tmp_path / "d", 30, files=3)
    (tmp_path / "d" / "_SUCCESS").write_text("")
    (tmp_path / "d" / "sub").mkdir()
    write_parquet(tmp_path / "d" / "sub", 6, files=1, name="zz")
    by_folder = gf.stream(tmp_path / "d")
    assert by_folder.files == tuple(str(p) for p in [*paths, tmp_path / "d" / "sub" / "zz-00.parquet"])
    assert by_folder.name == "d"
    by_list = gf.stream([str(paths[2]), paths[0], str(tmp_path / "d" / "part-0[1].parquet")])
    assert by_list.files == tuple(map(str, paths)) and by_list.n_rows == 30
    assert gf.stream(paths[1]).name == "part-01"
    assert gf.stream(str(tmp_path / "d" / "*.parquet")).name == "d"
    assert gf.stream(paths, name="mine").name == "mine"


def test_fingerprint_is_json_and_names_what_the_order_depends_on(tmp_path):
    paths = write_parquet(tmp_path, 50)
    source = gf.stream(paths, buffer_rows=20)
    print_ = source.fingerprint()
    assert json.loads(json.dumps(print_)) == print_
    assert [f["size"] for f in print_["files"]] == [p.stat().st_size for p in paths]
    assert [f["mtime_ns"] for f in print_["files"]] == [p.stat().st_mtime_ns for p in paths]
    assert (print_["n_rows"], print_["buffer_rows"], print_["x"], print_["y"]) == (50, 20, ["a", "b", "c"], "id")
    assert gf.stream(paths, buffer_rows=21).fingerprint() != print_
    assert gf.stream(paths, buffer_rows=20).fingerprint() == print_


def test_gf_stream_is_the_modules_function():
    assert gf.Stream is streaming.Stream and gf.stream is streaming.stream


# -- the background thread --------------------------------------------------------------------


def test_the_thread_runs_ahead_and_close_ends_it(tmp_path):
    source = gf.stream(write_parquet(tmp_path, 3000, group=500), buffer_rows=700)
    blocks = source.blocks(100, 4, 0, 0, np.float64)
    deadline = time.monotonic() + 10
    while blocks.ready < 2 and time.monotonic() < deadline:
        time.sleep(0.01)  # the consumer asks for nothing
    assert blocks.ready == 2  # made ahead, and no further: the queue is bounded
    time.sleep(0.1)
    assert blocks.ready == 2
    start = time.perf_counter()
    next(blocks)
    assert time.perf_counter() - start < 0.5  # waiting, not made on demand
    blocks.close()
    assert no_stream_threads(wait=0)  # close() waits for the thread
    blocks.close()  # idempotent
    assert blocks.closed
    with pytest.raises(StopIteration):
        next(blocks)


def test_leaving_early_stops_the_thread(tmp_path):
    source = gf.stream(write_parquet(tmp_path, 2000, group=100), buffer_rows=300)
    with pytest.raises(KeyboardInterrupt):
        with source.blocks(10, 2, 0, 0, np.float32) as blocks:
            next(blocks)
            raise KeyboardInterrupt  # as Ctrl-C would, in the consumer
    assert no_stream_threads()
    abandoned = source.blocks(10, 2, 0, 0, np.float32)
    next(abandoned)
    del abandoned
    gc.collect()
    assert no_stream_threads()


def test_close_stops_the_thread_while_it_skips_to_a_resumed_step(tmp_path, monkeypatch):
    """Resuming near the end of an epoch reads the epoch up to there; close() need not wait for it."""
    source = gf.stream(write_parquet(tmp_path, 102_400, files=1, group=10_240), buffer_rows=4096)
    exchange = streaming._exchange

    def slow_exchange(*args):
        time.sleep(0.05)  # about 100 chunks of 1,024 rows to skip: 5 s
        return exchange(*args)

    monkeypatch.setattr(streaming, "_exchange", slow_exchange)
    blocks = source.blocks(100, 2, 0, 1000, np.float64)
    time.sleep(0.2)
    assert blocks.ready == 0
    start = time.perf_counter()
    blocks.close()
    assert time.perf_counter() - start < 1.0 and no_stream_threads(wait=0)


def test_prefetch_raises_the_threads_error_in_the_consumer():
    def produce(stop):
        yield 1
        yield 2
        raise GradfitError("column 'q' of f.parquet holds nan")

    with streaming.Prefetch(produce) as blocks:
        assert [next(blocks), next(blocks)] == [1, 2]
        with pytest.raises(GradfitError, match="column 'q'") as first:
            next(blocks)
        with pytest.raises(GradfitError) as again:
            next(blocks)
        assert again.value is first.value
    assert no_stream_threads()


# -- memory --------------------------------------------------------------------------------------


MEMORY_PROBE = textwrap.dedent("""
    import importlib, sys, tracemalloc
    import numpy as np, pyarrow as pa
    import gradfit as gf
    path, buffer_rows, unit_bytes = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    from gradfit import streaming
    streaming.UNIT_BYTES, streaming.PIECE_BYTES = unit_bytes, unit_bytes // 4
    source = gf.stream(path, buffer_rows=buffer_rows)
    tracemalloc.start()
    seen = 0
    with source.blocks(500, 10, 0, 0, np.float64) as blocks:
        while seen < source.n_rows + 20_000:
            seen += int(next(blocks)[2].sum())
    print(tracemalloc.get_traced_memory()[1], pa.default_memory_pool().max_memory())
""")


@pytest.mark.parametrize("group", [30_000, 1_000_000])
def test_memory_is_bounded_by_the_buffer_not_the_file(tmp_path, group):
    n = 1_000_000  # 4 float64 columns: 32 MB of data; the buffer holds 20,000 rows (640 KB)
    path = write_parquet(tmp_path, n, files=1, group=group)[0]
    # row groups of up to 1 MiB are read whole (the first case); larger ones in batches of 256 KiB
    out = subprocess.run([sys.executable, "-c", MEMORY_PROBE, str(path), "20000", str(1 << 20)],
                         capture_output=True, text=True, timeout=120, env={**os.environ, "JAX_PLATFORMS": "cpu"})
    assert out.returncode == 0, out.stderr
    numpy_peak, arrow_peak = map(int, out.stdout.split())
    data_bytes = n * 4 * 8
    # numpy: the buffer (0.64 MB), blocks of 5,000 rows (0.16 MB each), the read chunk:
    # about 2.6 MB. Arrow: a row group read whole (1 MB), or a column chunk read through
    # a small buffer, however large the row group, each column keeping its dictionary
    # page (up to 1 MB): 4 MB, or 11 MB for the one row group (reading it whole: 42 MB).
    assert numpy_peak < data_bytes / 8, (numpy_peak, data_bytes)
    assert arrow_peak < data_bytes / 2, (arrow_peak, data_bytes)


# -- bad input ---------------------------------------------------------------------------------


def test_no_files(tmp_path):
    with pytest.raises(GradfitError, match=r"no file matches '.*\*\.parquet'; check the pattern"):
        gf.stream(str(tmp_path / "*.parquet"))
    with pytest.raises(GradfitError, match=r"no such file or folder: .*missing\.parquet"):
        gf.stream(tmp_path / "missing.parquet")
    with pytest.raises(GradfitError, match=r"the folder .* holds no \.parquet"):
        gf.stream(tmp_path)
    with pytest.raises(GradfitError, match="no data files given"):
        gf.stream([])


def test_formats(tmp_path):
    write_parquet(tmp_path, 10, files=1)
    write_csv(tmp_path, 10, files=1)
    with pytest.raises(GradfitError, match=r"mix Parquet files \(.*part-00\.parquet\) and CSV files \(.*part-00\.csv"):
        gf.stream(tmp_path)
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(GradfitError, match=r"cannot stream .*x\.json: gradfit reads \.parquet"):
        gf.stream(tmp_path / "x.json")


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_a_corrupt_parquet_file_is_named(tmp_path, damage):
    paths = write_parquet(tmp_path, 100)
    data = paths[1].read_bytes()
    paths[1].write_bytes({"truncated": data[:-20], "garbage": b"not parquet at all" * 10, "empty": b""}[damage])
    with pytest.raises(GradfitError, match=r"cannot read .*part-01\.parquet as Parquet \(.*\); replace the") as err:
        gf.stream(tmp_path)
    assert "\n" not in str(err.value)


def test_files_with_other_columns(tmp_path):
    write_parquet(tmp_path, 30, files=2)
    pq.write_table(pa.table({"a": [1.0], "b": [2.0], "c": [3.0], "id": [4.0], "extra": [5.0]}),
                   tmp_path / "part-02.parquet")
    with pytest.raises(GradfitError, match=r"part-02\.parquet has a column 'extra' that .*part-00\.parquet lacks: "
                                           r"the files' columns differ"):
        gf.stream(tmp_path)
    pq.write_table(pa.table({"a": [1.0], "c": [3.0], "id": [4.0]}), tmp_path / "part-02.parquet")
    with pytest.raises(GradfitError, match=r"part-02\.parquet has no column 'b' \(an input, which .*part-00"):
        gf.stream(tmp_path)
    with pytest.raises(GradfitError, match=r"part-02\.parquet lacks column 'b', which .*part-00\.parquet has"):
        gf.stream(tmp_path, x=["a", "c"])
    with pytest.raises(GradfitError, match=r"part-00\.parquet has no column 'q'; its columns are: a, b, c, id"):
        gf.stream(tmp_path, x=["q"])


def test_non_numeric_and_missing_inputs(tmp_path):
    pq.write_table(pa.table({"name": ["a", "b"], "y": [1.0, 2.0]}), tmp_path / "t.parquet")
    with pytest.raises(GradfitError, match=r"column 'name' of .*t\.parquet holds string values, not numbers"):
        gf.stream(tmp_path / "t.parquet", x=["name"])
    with pytest.raises(GradfitError, match=r"no numeric column besides the target 'y'; name the input columns"):
        gf.stream(tmp_path / "t.parquet")
    write_parquet(tmp_path / "ok", 10, files=1)
    with pytest.raises(GradfitError, match="column 'id' is the target; it cannot be an input too"):
        gf.stream(tmp_path / "ok", x=["a", "id"])
    with pytest.raises(GradfitError, match="x names no column: a fit needs at least one input column"):
        gf.stream(tmp_path / "ok", x=[])
    with pytest.raises(GradfitError, match="column 'a' is named twice in x"):
        gf.stream(tmp_path / "ok", x=["a", "b", "a"])
    with pytest.raises(GradfitError, match="buffer_rows must be a whole number of rows >= 1, not 0"):
        gf.stream(tmp_path / "ok", buffer_rows=0)


def test_a_non_numeric_csv_value_is_named_with_its_row(tmp_path):
    paths = write_csv(tmp_path, 3000, files=2)
    lines = paths[1].read_text().splitlines()
    lines[1201] = lines[1201].replace(lines[1201].split(",")[1], "n/a?", 1)  # data row 1200 of the second file
    paths[1].write_text("\n".join(lines) + "\n")
    with pytest.raises(GradfitError, match=r"column 'b' of .*part-01\.csv holds 'n/a\?' at row 1200 .*not a number"):
        gf.stream(tmp_path)


def test_blocks_arguments_are_checked(tmp_path):
    source = gf.stream(write_parquet(tmp_path, 10, files=1))
    with pytest.raises(GradfitError, match="float32 or float64"):
        source.blocks(4, 2, 0, 0, np.int32)
    with pytest.raises(GradfitError, match="batch_size must be a whole number >= 1, not 0"):
        source.blocks(0, 2, 0, 0, np.float32)
    with pytest.raises(GradfitError, match="first_step must be a whole number >= 0"):
        source.blocks(4, 2, 0, -1, np.float32)


def poisoned(tmp_path: Path, value) -> list[Path]:
    """Three files of 40 rows in row groups of 10; file 2's column b holds ``value`` at its row 27."""
    paths = write_parquet(tmp_path, 120, group=10)
    cols = columns_of(np.arange(80, 120))
    b = pa.array(cols["b"]).to_pylist()
    b[27] = value
    cols["b"] = pa.array(b, pa.float64())
    pq.write_table(pa.table(cols), paths[2], row_group_size=10)
    return paths


@pytest.mark.parametrize("buffer_rows", [15, None])
@pytest.mark.parametrize("value, says", [(float("nan"), "holds nan"), (float("inf"), "holds inf"),
                                         (None, "has an empty value")])
def test_a_bad_value_while_streaming_names_file_column_and_row(tmp_path, buffer_rows, value, says):
    source = gf.stream(poisoned(tmp_path, value), buffer_rows=buffer_rows)  # opening reads no data
    taken = 0
    with source.blocks(8, 2, 0, 0, np.float64) as blocks:
        with pytest.raises(GradfitError) as err:
            for _ in range(100):
                next(blocks)
                taken += 1
        message = str(err.value)
        with pytest.raises(GradfitError):  # and again: the stream does not carry on past it
            next(blocks)
    assert f"column 'b' of {tmp_path / 'part-02.parquet'} {says} at row 27 (counted from 0" in message
    assert message.endswith("drop or fill those rows first") and "\n" not in message
    assert taken < 8  # within the first epoch (8 blocks of 2 steps of 8 rows)
    with pytest.raises(GradfitError, match="row 27"), source.scan(1000, np.float32) as scan:
        list(scan)


def test_an_empty_csv_cell_while_streaming(tmp_path):
    paths = write_csv(tmp_path, 300, files=2)
    lines = paths[1].read_text().splitlines()
    lines[6] = ",".join(["", *lines[6].split(",")[1:]])  # data row 5 of the second file, column a
    paths[1].write_text("\n".join(lines) + "\n")
    source = gf.stream(tmp_path, buffer_rows=50)
    with pytest.raises(GradfitError, match=r"column 'a' of .*part-01\.csv has an empty value at row 5 "
                                           r"\(counted from 0 after the header\); drop or fill those rows first"):
        steps(source, 10, 100)


def test_a_value_too_large_for_float32(tmp_path):
    source = gf.stream(poisoned(tmp_path, 1e300), buffer_rows=15)
    steps(source, 8, 20, dtype=np.float64)  # fine in float64
    with pytest.raises(GradfitError, match=r"holds 1e\+300 at row 27 .*too large for float32; stream in float64"):
        steps(source, 8, 20, dtype=np.float32)


def test_a_file_changed_after_opening(tmp_path):
    paths = write_parquet(tmp_path, 60)
    source = gf.stream(paths, buffer_rows=10)
    write_parquet(tmp_path, 90)
    os.utime(paths[0], ns=(1, 1))
    with pytest.raises(GradfitError, match=r"part-0\d\.parquet changed after the stream was opened"):
        steps(source, 8, 10)

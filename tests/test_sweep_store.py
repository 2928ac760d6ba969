"""The sweep output store: round trips, resuming, refusals, and writes that survive a kill."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pandas as pd
import pytest

from gradfit.errors import GradfitError
from gradfit.sweeps import store as sweep_store
from gradfit.sweeps.store import Store, read, run_key

META = {"model": "gabor", "data": "gabor_data(seed=0)", "steps": 1000, "optimizer": {"name": "adam", "eps": 1e-8}}
SUFFIXES = [".parquet", ".csv"]


def runs(*lrs: float, seed: int = 0, **extra) -> pd.DataFrame:
    """A group of finished runs, one per learning rate."""
    rows = []
    for lr in lrs:
        config = {"optimizer": "adam", "lr": lr, "seed": seed}
        rows.append({"run": run_key(config), "optimizer": "adam", "lr": lr, "seed": seed,
                     "final_loss": lr / 3, "steps": 1000, "status": "converged", **extra})
    return pd.DataFrame(rows)


def files_in(folder) -> list[str]:
    return sorted(os.listdir(folder))


# -- round trips ---------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_round_trip(tmp_path, suffix):
    path = tmp_path / f"runs{suffix}"
    store = Store.open(path, META)
    assert not path.exists()  # nothing is written before the first rows
    lrs = [0.1, float(np.nextafter(0.1, 1.0)), 1 / 3, 1e-300, 2.5]
    rows = runs(*lrs).assign(init_phi0=[0.5, None, -1.25, None, 3.0], note=["a", None, "b,c", 'say "hi"', ""])
    assert store.append(rows) == len(lrs)

    frame, meta = read(path)
    assert meta == META
    assert list(frame.columns) == list(rows.columns)
    assert frame["lr"].tolist() == lrs  # every float exactly, the last digit too
    assert frame["run"].tolist() == rows["run"].tolist()
    assert frame["steps"].tolist() == [1000] * len(lrs)
    assert frame["init_phi0"].tolist()[::2] == [0.5, -1.25, 3.0]
    assert frame["init_phi0"].isna().tolist() == [False, True, False, True, False]
    assert frame["note"].tolist()[2:4] == ["b,c", 'say "hi"']
    assert frame["note"][4] == "" if suffix == ".parquet" else pd.isna(frame["note"][4])  # CSV has no ""
    assert Store.open(path, META).done == set(rows["run"])


def test_parquet_keeps_types_and_meta_in_the_schema(tmp_path):
    import pyarrow.parquet as pq

    path = tmp_path / "runs.pq"
    Store.open(path, META).append(runs(0.1, 0.2))
    schema = pq.read_schema(path)
    assert json.loads(schema.metadata[b"gradfit.sweeps"])["meta"] == META
    frame = pd.read_parquet(path)  # a plain reader reads it
    assert frame["steps"].dtype == np.int64 and frame["lr"].dtype == np.float64


def test_csv_meta_sits_in_a_sidecar_and_the_csv_reads_plainly(tmp_path):
    path = tmp_path / "runs.csv"
    Store.open(path, META).append(runs(0.1, 0.2))
    assert files_in(tmp_path) == ["runs.csv", "runs.csv.meta.json"]
    assert json.loads((tmp_path / "runs.csv.meta.json").read_text())["meta"] == META
    assert pd.read_csv(path)["lr"].tolist() == [0.1, 0.2]


def test_a_numeric_looking_run_key_stays_a_string_in_csv(tmp_path):
    path = tmp_path / "runs.csv"
    keys = ["1234567890123456", "12345e0012345678", "0000000000000001"]
    Store.open(path, META).append(pd.DataFrame({"run": keys, "lr": [0.1, 0.2, 0.3]}))
    assert read(path)[0]["run"].tolist() == keys
    assert Store.open(path, META).done == set(keys)


# -- resuming --------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_resume_skips_what_is_done(tmp_path, suffix):
    path = tmp_path / f"runs{suffix}"
    first = runs(0.1, 0.2, 0.3)
    Store.open(path, META).append(first)

    # The same meta, built another way: keys in another order, 1000.0 for 1000.
    same = {"optimizer": {"eps": 1e-8, "name": "adam"}, "steps": 1000.0, "data": META["data"], "model": "gabor"}
    store = Store.open(path, same)
    assert store.done == set(first["run"])
    assert store.append(runs(0.3, 0.4)) == 1  # 0.3 is done: only 0.4 is new
    frame, _ = read(path)
    assert frame["lr"].tolist() == [0.1, 0.2, 0.3, 0.4]
    assert frame["run"].is_unique
    assert Store.open(path, META).done == set(frame["run"])


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_a_retried_group_is_not_written_twice(tmp_path, suffix):
    path = tmp_path / f"runs{suffix}"
    store = Store.open(path, META)
    store.append(runs(0.1, 0.2))
    before = path.read_bytes()
    assert store.append(runs(0.1, 0.2)) == 0
    assert path.read_bytes() == before
    assert Store.open(path, META).append(runs(0.2, 0.1)) == 0
    assert len(read(path)[0]) == 2


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_columns_keep_their_order_when_a_later_group_adds_one(tmp_path, suffix):
    path = tmp_path / f"runs{suffix}"
    store = Store.open(path, META)
    store.append(runs(0.1)[["run", "optimizer", "lr", "final_loss"]])
    later = runs(0.2, beta=0.9)[["final_loss", "beta", "run", "lr", "optimizer"]]
    store.append(later)
    order = ["run", "optimizer", "lr", "final_loss", "beta"]
    assert list(store.frame().columns) == order
    frame, _ = read(path)
    assert list(frame.columns) == order
    assert np.isnan(frame["beta"][0]) and frame["beta"][1] == 0.9
    reopened = Store.open(path, META)
    reopened.append(runs(0.3)[["lr", "run"]])
    frame, _ = read(path)
    assert list(frame.columns) == order
    assert frame["lr"].tolist() == [0.1, 0.2, 0.3] and frame["optimizer"].isna().tolist() == [False, False, True]


# -- refusals --------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_another_sweeps_file_is_refused_naming_what_differs(tmp_path, suffix):
    path = tmp_path / f"runs{suffix}"
    Store.open(path, META).append(runs(0.1))
    other = {**META, "steps": 500, "model": "linear", "optimizer": {"name": "adam", "eps": 1e-7}}
    with pytest.raises(GradfitError) as info:
        Store.open(path, other)
    message = str(info.value)
    assert "\n" not in message
    assert f"runs{suffix} holds another sweep" in message
    assert "steps: 1000 there, 500 now" in message
    assert 'model: "gabor" there, "linear" now' in message
    assert "optimizer.eps: 1e-08 there, 1e-07 now" in message
    assert "give a new --out, or delete the file to start again" in message
    assert "data" not in message  # the same in both

    with pytest.raises(GradfitError, match="seed: nothing there, 3 now"):
        Store.open(path, {**META, "seed": 3})
    many = {f"k{i}": i for i in range(7)}
    with pytest.raises(GradfitError, match=r"k2: nothing there, 2 now; and 8 more\)"):
        Store.open(path, many)  # seven keys new, five gone: four listed, eight more


def test_a_parquet_file_that_no_sweep_wrote_is_refused(tmp_path):
    path = tmp_path / "data.parquet"
    pd.DataFrame({"run": ["a"], "x": [1.0]}).to_parquet(path)
    with pytest.raises(GradfitError, match=r"data.parquet is a Parquet file but not a gradfit sweep's output"):
        Store.open(path, META)
    with pytest.raises(GradfitError, match="not a gradfit sweep's output"):
        read(path)


@pytest.mark.parametrize("name", ["runs.parquet", "runs.pq"])
def test_a_damaged_parquet_file_is_refused(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b"PAR1 this is not parquet at all \x00\xff")
    with pytest.raises(GradfitError, match=rf"{name} is not a readable Parquet file"):
        Store.open(path, META)
    good = tmp_path / "good.parquet"
    Store.open(good, META).append(runs(0.1, 0.2))
    path.write_bytes(good.read_bytes()[:-100])  # cut short, as a copy interrupted
    with pytest.raises(GradfitError, match="not a readable Parquet file"):
        Store.open(path, META)


def test_a_csv_without_its_sidecar_or_with_a_damaged_one_is_refused(tmp_path):
    path = tmp_path / "runs.csv"
    path.write_text("run,lr\nabc,0.1\n")
    with pytest.raises(GradfitError, match=r"runs.csv has no runs.csv.meta.json beside it"):
        Store.open(path, META)
    (tmp_path / "runs.csv.meta.json").write_text("{not json")
    with pytest.raises(GradfitError, match="runs.csv.meta.json is not valid JSON"):
        Store.open(path, META)
    (tmp_path / "runs.csv.meta.json").write_text('{"something": "else"}')
    with pytest.raises(GradfitError, match="does not hold a gradfit sweep's metadata"):
        read(path)


def test_a_future_version_is_refused(tmp_path):
    path = tmp_path / "runs.csv"
    Store.open(path, META).append(runs(0.1))
    sidecar = tmp_path / "runs.csv.meta.json"
    sidecar.write_text(json.dumps({**json.loads(sidecar.read_text()), "version": 99}))
    with pytest.raises(GradfitError, match="version 99 sweep store"):
        Store.open(path, META)


@pytest.mark.parametrize("name, words", [
    ("runs.json", r"give a file name ending in \.parquet, \.pq, \.csv"),
    ("runs", r"ending in \.parquet"),
    ("missing/runs.parquet", "does not exist; create it first"),
])
def test_a_path_it_cannot_write_is_refused_at_open(tmp_path, name, words):
    with pytest.raises(GradfitError, match=words):
        Store.open(tmp_path / name, META)


def test_a_folder_is_refused(tmp_path):
    (tmp_path / "runs.parquet").mkdir()
    with pytest.raises(GradfitError, match="is a folder"):
        Store.open(tmp_path / "runs.parquet", META)
    with pytest.raises(GradfitError, match="is a folder"):
        read(tmp_path / "runs.parquet")
    with pytest.raises(GradfitError, match="does not exist"):
        read(tmp_path / "none.csv")


@pytest.mark.parametrize("rows, words", [
    (pd.DataFrame({"lr": [0.1]}), "no 'run' column"),
    (pd.DataFrame({"run": [1], "lr": [0.1]}), "run keys are strings"),
    (pd.DataFrame({"run": ["a", None]}), "run keys are strings"),
    (pd.DataFrame({"run": ["a", "b", "a"], "lr": [0.1, 0.2, 0.3]}), "hold run 'a' twice"),
    (pd.DataFrame([[1, 2]], columns=["run", "run"]), "have the column"),
    ({"run": ["a"]}, "takes a pandas DataFrame"),
])
def test_bad_rows_are_refused_and_nothing_is_written(tmp_path, rows, words):
    path = tmp_path / "runs.parquet"
    with pytest.raises(GradfitError, match=words):
        Store.open(path, META).append(rows)
    assert files_in(tmp_path) == []


def test_a_column_of_mixed_types_is_refused_before_writing(tmp_path):
    path = tmp_path / "runs.parquet"
    store = Store.open(path, META)
    store.append(runs(0.1))
    before = path.read_bytes()
    with pytest.raises(GradfitError, match="column lr mixes values"):
        store.append(pd.DataFrame({"run": ["x"], "lr": ["fast"]}).astype(object))
    assert path.read_bytes() == before and files_in(tmp_path) == ["runs.parquet"]


def test_meta_without_a_json_form_is_refused():
    with pytest.raises(GradfitError, match=r"meta.model is a function"):
        Store.open("runs.parquet", {"model": lambda x: x})
    with pytest.raises(GradfitError, match="keys must be strings"):
        Store.open("runs.parquet", {1: "a"})


# -- run keys --------------------------------------------------------------------------------


CONFIG = {"optimizer": "adam", "variant": "amsgrad", "lr": 0.1, "beta": (0.9, 0.999), "seed": 3,
          "init_phi0": None, "schedule": {"name": "cosine", "warmup": 10}, "nesterov": False}


def test_run_key_is_sixteen_hex_digits_and_pinned():
    key = run_key(CONFIG)
    assert len(key) == 16 and int(key, 16) >= 0
    # Pinned: a change to the canonical form would orphan every sweep file written before it.
    # It is the SHA-256 of {"beta":[0.9,0.999],"init_phi0":null,"lr":0.1,...,"variant":"amsgrad"}.
    assert key == "bb909dbdb3ec8f80"


def test_run_key_is_the_same_in_another_process():
    code = textwrap.dedent(f"""
        import numpy as np
        from gradfit.sweeps.store import run_key
        config = {CONFIG!r}
        # The same configuration built another way: other key order, NumPy scalars, a list for the tuple.
        config = dict(reversed(list(config.items())))
        config.update(lr=np.float64(0.1), seed=np.int64(3), beta=[np.float64(0.9), 0.999], nesterov=np.bool_(False))
        print(run_key(config))
    """)
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == run_key(CONFIG)


def test_run_key_sees_every_change():
    key = run_key(CONFIG)
    assert run_key({**CONFIG, "lr": float(np.nextafter(0.1, 1.0))}) != key  # the last digit of a float
    assert run_key({**CONFIG, "lr": 0.1000000001}) != key
    assert run_key({**CONFIG, "seed": 4}) != key
    assert run_key({**CONFIG, "init_phi0": 0.0}) != key
    assert run_key({**CONFIG, "schedule": {"name": "cosine", "warmup": 11}}) != key
    assert run_key({**CONFIG, "extra": None}) != key
    assert run_key({**CONFIG, "lr": np.float32(0.1)}) != key  # a float32 0.1 is another number
    assert run_key({**CONFIG, "lr": float("nan")}) == run_key({**CONFIG, "lr": np.nan})


def test_run_key_refuses_what_has_no_json_form():
    with pytest.raises(GradfitError, match=r"config.model is a function"):
        run_key({"model": lambda x: x})
    with pytest.raises(GradfitError, match="as a dict"):
        run_key([("lr", 0.1)])


# -- kills -----------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_a_kill_during_a_write_leaves_the_old_file(tmp_path, monkeypatch, suffix):
    path = tmp_path / f"runs{suffix}"
    store = Store.open(path, META)
    store.append(runs(0.1, 0.2))
    before, names = path.read_bytes(), files_in(tmp_path)

    fmt = type(store._format)
    real_dump = fmt.dump

    def killed(self, payload, file):
        file.write(b"the first half of the new table")
        raise KeyboardInterrupt  # as a signal would, mid-write

    monkeypatch.setattr(fmt, "dump", killed)
    with pytest.raises(KeyboardInterrupt):
        store.append(runs(0.3, 0.4))
    assert path.read_bytes() == before
    assert files_in(tmp_path) == names  # no temporary file left
    assert store.done == set(runs(0.1, 0.2)["run"])
    frame, _ = read(path)
    assert frame["lr"].tolist() == [0.1, 0.2]

    monkeypatch.setattr(fmt, "dump", real_dump)
    assert Store.open(path, META).append(runs(0.3, 0.4)) == 2  # the group is retried in full
    assert read(path)[0]["lr"].tolist() == [0.1, 0.2, 0.3, 0.4]


def test_open_removes_the_leftovers_of_a_killed_write_and_nothing_else(tmp_path):
    path = tmp_path / "runs.csv"
    Store.open(path, META).append(runs(0.1))
    leftovers = [".runs.csv.abcd1234.tmp", ".runs.csv.meta.json.x_y_z123.tmp"]
    others = [".runs.csvX.abcd1234.tmp", ".other.csv.abcd1234.tmp", "runs.csv.abcd1234.tmp", ".runs.csv.tmp"]
    for name in leftovers + others:
        (tmp_path / name).write_text("half a table")
    Store.open(path, META)
    assert files_in(tmp_path) == sorted(["runs.csv", "runs.csv.meta.json", *others])


def test_a_kill_during_the_first_csv_write_leaves_a_sidecar_that_a_new_sweep_replaces(tmp_path, monkeypatch):
    path = tmp_path / "runs.csv"

    def killed(self, payload, file):
        raise KeyboardInterrupt

    monkeypatch.setattr(sweep_store._Csv, "dump", killed)
    with pytest.raises(KeyboardInterrupt):
        Store.open(path, META).append(runs(0.1))
    assert files_in(tmp_path) == ["runs.csv.meta.json"]  # the sidecar goes first; no rows yet
    monkeypatch.undo()
    other = {**META, "steps": 500}
    store = Store.open(path, other)  # no rows: a new sweep, whatever the orphaned sidecar says
    assert store.done == set()
    store.append(runs(0.1))
    assert read(path)[1] == other


KILLED_WRITER = """
import itertools, sys
import pandas as pd
from gradfit.sweeps.store import Store
store = Store.open(sys.argv[1], {"sweep": "killed"})
print("appending", flush=True)
for group in itertools.count(len(store.done) // 50):
    rows = [{"run": f"{group:08d}{i:08d}", "group": group, "x": group + i / 50, "pad": "p" * 200} for i in range(50)]
    store.append(pd.DataFrame(rows))
"""


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_a_process_killed_at_random_leaves_whole_groups(tmp_path, suffix):
    """SIGKILL a process appending groups of 50 rows, at a few random moments; every row is there once."""
    path = tmp_path / f"runs{suffix}"
    rng = np.random.default_rng(0)
    for _ in range(3):
        writer = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(path)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert writer.stdout.readline() == b"appending\n", writer.communicate()[1].decode()
        time.sleep(rng.uniform(0.05, 0.3))
        assert writer.poll() is None, writer.communicate()[1].decode()
        writer.send_signal(signal.SIGKILL)
        writer.communicate()
        frame, meta = read(path)
        assert meta == {"sweep": "killed"}
        assert frame["run"].is_unique
        counts = frame.groupby("group").size()
        assert (counts == 50).all() and counts.index.tolist() == list(range(len(counts)))
    store = Store.open(path, {"sweep": "killed"})
    assert len(store.done) == len(frame)
    assert not [name for name in files_in(tmp_path) if name.endswith(".tmp")]  # leftovers of cut writes, gone

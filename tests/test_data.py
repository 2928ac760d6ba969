"""Data: the built-in generators, the checks a Dataset makes, CSV / Parquet loading
with column choice and its errors, and epoch batching."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import gradfit as gf
from gradfit.data import BUILTIN, epoch_batches
from gradfit.errors import GradfitError

# -- built-in generators ------------------------------------------------------------------


@pytest.mark.parametrize("name", list(BUILTIN))
def test_builtin_data_is_reproducible_from_the_seed(name):
    make = BUILTIN[name]
    a, b, c = make(seed=3), make(seed=3), make(seed=4)
    np.testing.assert_array_equal(a.x, b.x)
    np.testing.assert_array_equal(a.y, b.y)
    assert a.x.shape == c.x.shape and a.y.shape == c.y.shape
    assert not np.array_equal(a.x, c.x)
    assert not np.array_equal(a.y, c.y)


@pytest.mark.parametrize("name", list(BUILTIN))
def test_builtin_data_has_the_asked_size_and_is_read_only(name):
    data = BUILTIN[name](seed=1, n=37)
    assert len(data) == 37 and data.x.shape[0] == 37
    with pytest.raises(ValueError):
        data.y[0] = 1.0


def test_linear_data_follows_its_line():
    data = gf.linear_data(seed=5, n=4000)
    design = np.column_stack([np.ones(len(data)), data.x])
    coef, *_ = np.linalg.lstsq(design, data.y, rcond=None)
    # 4000 points with noise sd 0.1 on x in [0, 2]: standard errors about 0.003
    np.testing.assert_allclose(coef, [0.8, 0.5], atol=0.015)
    assert np.std(data.y - design @ coef) == pytest.approx(0.1, rel=0.05)
    assert data.x.min() >= 0.0 and data.x.max() <= 2.0


@pytest.mark.parametrize("s", [8.0, 32.0])
def test_gabor_data_follows_the_gabor_model_with_its_s(x64, s):
    data = gf.gabor_data(seed=2, n=4000, s=s)
    assert data.notes["s"] == s
    clean = gf.gabor(s)(jnp.asarray(data.x), {k: jnp.asarray(v) for k, v in data.notes["true"].items()})
    assert np.std(data.y - np.asarray(clean)) == pytest.approx(0.1, rel=0.05)
    assert np.abs(np.mean(data.y - np.asarray(clean))) < 0.01
    assert data.x.min() >= -15.0 and data.x.max() <= 15.0


def test_pedestrian_counts_are_non_negative_integers():
    data = gf.pedestrian_data(seed=0)
    assert data.y_name == "count"
    assert np.all(data.y >= 0)
    np.testing.assert_array_equal(data.y, np.round(data.y))
    assert data.y.max() > 0
    assert data.x.shape == (len(data), len(data.x_names))
    assert data.x_names[:2] == ("hour_sin", "hour_cos")
    hour = data.notes["hour"]
    np.testing.assert_allclose(data.x[:, 0], np.sin(2 * np.pi * hour / 24), atol=1e-12)
    np.testing.assert_allclose(data.x[:, 1], np.cos(2 * np.pi * hour / 24), atol=1e-12)


def test_pedestrian_counts_follow_the_documented_effects():
    data = gf.pedestrian_data(seed=1, n=20_000)
    columns = dict(zip(data.x_names, data.x.T, strict=True))
    kinds = ("commercial", "park", "transit")
    one_hot = np.column_stack([columns[k] for k in kinds])
    assert set(np.unique(one_hot)) <= {0.0, 1.0}
    assert np.all(one_hot.sum(axis=1) <= 1)  # residential is the all-zero baseline
    means = {k: data.y[columns[k] == 1].mean() for k in kinds}
    means["residential"] = data.y[one_hot.sum(axis=1) == 0].mean()
    assert means["transit"] > means["commercial"] > means["residential"] > means["park"]
    hour = data.notes["hour"]
    rush, night = data.y[(hour > 7) & (hour < 9)].mean(), data.y[(hour > 2) & (hour < 4)].mean()
    assert rush > 1.5 * night


# -- Dataset checks ---------------------------------------------------------------------


def test_dataset_squeezes_columns_and_names_inputs():
    data = gf.Dataset(np.arange(4.0)[:, None], np.arange(4.0)[:, None])
    assert data.x.shape == (4,) and data.y.shape == (4,)
    assert data.x_names == ("x",) and data.n_inputs == 1
    two = gf.Dataset(np.ones((3, 2)), np.ones(3), x_names=("a",))
    assert two.x_names == ("x0", "x1") and two.n_inputs == 2
    named = gf.Dataset(np.ones((3, 2)), np.ones(3), x_names=("a", "b"))
    assert named.x_names == ("a", "b")


@pytest.mark.parametrize(
    ("x", "y", "message"),
    [
        (np.ones(5), np.ones(4), "x has 5 rows but y has 4"),
        (np.ones((3, 2)), np.ones(2), "x has 3 rows but y has 2"),
        (np.array([]), np.array([]), "is empty"),
        (np.ones((0, 2)), np.ones(0), "is empty"),
        (np.ones((2, 2, 2)), np.ones(2), r"shape \(I,\) or \(I, D\)"),
        (np.ones(2), np.ones((2, 2)), r"targets y must have shape \(I,\)"),
        (np.array([1.0, np.nan, 3.0]), np.ones(3), r"x holds NaN or inf in column\(s\) x at row\(s\) 1"),
        (np.ones(3), np.array([1.0, 2.0, np.inf]), r"y holds NaN or inf in column\(s\) y at row\(s\) 2"),
        (np.array([[1.0, 2.0], [3.0, -np.inf]]), np.ones(2), r"column\(s\) x1 at row\(s\) 1"),
    ],
)
def test_dataset_rejects_bad_data(x, y, message):
    with pytest.raises(GradfitError, match=message):
        gf.Dataset(x, y)


def test_fit_rejects_mismatched_lengths():
    with pytest.raises(GradfitError, match="x has 5 rows but y has 4"):
        gf.fit("linear", "normal", (np.ones(5), np.ones(4)), steps=1)


# -- loading files ----------------------------------------------------------------------


COLUMNS = {
    "a": np.array([0.5, 1.5, 2.5, 3.5]),
    "b": np.array([1, 2, 3, 4]),
    "c": np.array([-1.0, 0.0, 1.0, 2.0]),
    "target": np.array([0.0, 1.0, 1.0, 0.0]),
}


def _write(path, columns):
    table = pa.table({k: pa.array(v) for k, v in columns.items()})
    if path.suffix == ".parquet":
        pq.write_table(table, path)
    else:
        sep = "\t" if path.suffix == ".tsv" else ","
        rows = [sep.join(columns)] + [sep.join(str(v) for v in row) for row in zip(*columns.values(), strict=True)]
        path.write_text("\n".join(rows) + "\n")
    return path


@pytest.fixture(params=["csv", "tsv", "parquet"])
def table_file(request, tmp_path):
    return _write(tmp_path / f"small.{request.param}", COLUMNS)


def test_load_defaults_to_the_last_column_as_target(table_file):
    data = gf.load(table_file)
    assert data.y_name == "target" and data.x_names == ("a", "b", "c")
    np.testing.assert_array_equal(data.y, COLUMNS["target"])
    np.testing.assert_array_equal(data.x, np.column_stack([COLUMNS["a"], COLUMNS["b"], COLUMNS["c"]]))
    assert data.name == "small"


def test_load_takes_the_named_columns_in_the_given_order(table_file):
    data = gf.load(table_file, x=["c", "a"], y="b")
    assert data.x_names == ("c", "a") and data.y_name == "b"
    np.testing.assert_array_equal(data.x, np.column_stack([COLUMNS["c"], COLUMNS["a"]]))
    np.testing.assert_array_equal(data.y, COLUMNS["b"])
    assert data.y.dtype == np.float64


@pytest.mark.parametrize("x", ["c", ["c"], ("c",)])
def test_load_one_input_column(table_file, x):
    data = gf.load(table_file, x=x, y="a")
    assert data.x_names == ("c",) and data.x.shape == (4,)
    np.testing.assert_array_equal(data.x, COLUMNS["c"])


def test_load_target_only_sets_inputs_to_the_rest(table_file):
    data = gf.load(table_file, y="a")
    assert data.x_names == ("b", "c", "target")


def test_load_reads_parquet_booleans_and_integers(tmp_path):
    path = _write(tmp_path / "flags.parquet", {"flag": np.array([True, False, True]), "n": np.array([3, 0, 7])})
    data = gf.load(path)
    np.testing.assert_array_equal(data.x, [1.0, 0.0, 1.0])
    np.testing.assert_array_equal(data.y, [3.0, 0.0, 7.0])


def test_load_then_fit_from_a_file(tmp_path, rng):
    x = rng.uniform(0, 2, 30)
    path = _write(tmp_path / "line.csv", {"x": x, "noise": rng.normal(size=30), "y": 1.0 + 2.0 * x})
    data = gf.load(path, x=["x"], y="y")
    result = gf.fit("linear", "normal", data, gf.gd(0.005), steps=5000, tol=1e-9)
    np.testing.assert_allclose([result.params["phi0"], result.params["phi1"]], [1.0, 2.0], atol=1e-6)


def test_load_errors_on_a_missing_file(tmp_path):
    with pytest.raises(GradfitError, match="no such file: .*nothere.csv"):
        gf.load(tmp_path / "nothere.csv")


def test_load_errors_on_a_folder_or_another_format(tmp_path):
    with pytest.raises(GradfitError, match="is a folder"):
        gf.load(tmp_path)
    (tmp_path / "book.xlsx").write_bytes(b"PK")
    with pytest.raises(GradfitError, match=r"reads \.csv, \.tsv and \.parquet"):
        gf.load(tmp_path / "book.xlsx")


@pytest.mark.parametrize(("x", "y"), [(["a", "d"], "target"), (["a"], "z")])
def test_load_errors_on_an_unknown_column_and_lists_the_columns(table_file, x, y):
    missing = "d" if "d" in x else "z"
    with pytest.raises(GradfitError, match=f"no column '{missing}'; its columns are: a, b, c, target"):
        gf.load(table_file, x=x, y=y)


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_load_errors_on_a_text_column(tmp_path, suffix):
    path = _write(tmp_path / f"t.{suffix}", {"x": np.array([1.0, 2.0]), "kind": np.array(["park", "transit"])})
    with pytest.raises(GradfitError, match="column 'kind' .* is not numeric"):
        gf.load(path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("x,y\n1,2\n3,nan\n", r"y holds NaN or inf in column\(s\) y at row\(s\) 1"),
        ("x,y\n1,2\n3,\n", r"y holds NaN or inf in column\(s\) y at row\(s\) 1"),
        ("x,y\ninf,2\n3,4\n", r"x holds NaN or inf in column\(s\) x at row\(s\) 0"),
        ("x,y\n1,2\n-inf,4\n", r"x holds NaN or inf in column\(s\) x at row\(s\) 1"),
        ("", "Empty CSV file"),
        ("x,y\n", "has no rows"),
        ("y\n1\n2\n", "only the target column 'y'"),
        ("x,y\n1,2\n3\n", "cannot read"),
    ],
)
def test_load_errors_on_bad_contents(tmp_path, text, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(GradfitError, match=message):
        gf.load(path)


def test_load_errors_on_an_empty_parquet_file(tmp_path):
    path = tmp_path / "empty.parquet"
    pq.write_table(pa.table({"x": pa.array([], pa.float64()), "y": pa.array([], pa.float64())}), path)
    with pytest.raises(GradfitError, match="has no rows"):
        gf.load(path)


# -- epoch batching ---------------------------------------------------------------------


@pytest.mark.parametrize(("n", "batch_size"), [(10, 3), (12, 4), (7, 7), (5, 1), (1000, 64)])
def test_every_epoch_visits_each_example_once(n, batch_size):
    n_batches = -(-n // batch_size)
    for epoch in range(3):
        idx, mask = epoch_batches(n, batch_size, seed=11, epoch=epoch)
        assert idx.shape == mask.shape == (n_batches, batch_size)
        np.testing.assert_array_equal(np.sort(idx[mask]), np.arange(n))
        assert mask.sum() == n


def test_a_ragged_last_batch_is_padded_and_masked():
    idx, mask = epoch_batches(10, 4, seed=0, epoch=0)
    assert idx.shape == (3, 4)
    assert mask[:2].all()
    np.testing.assert_array_equal(mask[2], [True, True, False, False])
    np.testing.assert_array_equal(idx[2, 2:], [0, 0])
    full_idx, full_mask = epoch_batches(12, 4, seed=0, epoch=0)
    assert full_mask.all()


def test_batches_are_reproducible_from_the_seed_and_reshuffled_each_epoch():
    same = [epoch_batches(50, 8, seed=3, epoch=2)[0] for _ in range(2)]
    np.testing.assert_array_equal(same[0], same[1])
    other_seed = epoch_batches(50, 8, seed=4, epoch=2)[0]
    other_epoch = epoch_batches(50, 8, seed=3, epoch=3)[0]
    assert not np.array_equal(same[0], other_seed)
    assert not np.array_equal(same[0], other_epoch)


def test_masked_batches_sum_to_the_full_loss(x64, rng):
    # The padding repeats row 0; the mask must keep it from being counted twice.
    x, y = jnp.asarray(rng.normal(size=10)), jnp.asarray(rng.normal(size=10))
    theta = jnp.array([0.3, -1.2])
    objective = gf.Objective(gf.linear(), gf.normal())
    idx, mask = epoch_batches(10, 4, seed=5, epoch=0)
    batch_value = jax.jit(objective.batch_value)
    parts = [float(batch_value(theta, x, y, jnp.asarray(i), jnp.asarray(m))) for i, m in zip(idx, mask, strict=True)]
    assert sum(parts) == pytest.approx(float(objective.value(theta, x, y)), rel=1e-13)
    mean = gf.Objective(gf.linear(), gf.normal(), "mean")
    last = float(jax.jit(mean.batch_value)(theta, x, y, jnp.asarray(idx[2]), jnp.asarray(mask[2])))
    assert last == pytest.approx(parts[2] / 2, rel=1e-13)

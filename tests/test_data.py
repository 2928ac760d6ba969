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
from gradfit import data as data_module
from gradfit.data import BUILTIN, as_dataset, epoch_batches, read_table
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
        (np.array([1.0, np.nan, 3.0]), np.ones(3), r"x holds NaN or inf in column\(s\) x at row index 1;"),
        (np.ones(3), np.array([1.0, 2.0, np.inf]), r"y holds NaN or inf in column\(s\) y at row index 2;"),
        (np.array([[1.0, 2.0], [3.0, -np.inf]]), np.ones(2), r"column\(s\) x1 at row index 1;"),
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
    with pytest.raises(GradfitError, match=r"column 'kind' .* is not numeric: it holds text \(park, transit\)"):
        gf.load(path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "bad.csv is empty"),
        ("x,y\n", "has no rows"),
        ("y\n1\n2\n", "only the target column 'y'"),
        ("x,y\n1,2\n3\n", "cannot read .*line 3 has 1 field\\(s\\) where the header has 2"),
        # the first value that is not a number, named by its line
        ("x,y\n1,2\n3,abc\n4,5\n", "column 'y' of bad.csv is not numeric: line 3 holds 'abc', which is not a number"),
        ("x;y\n1,5;2\n2,5;3\n", "column 'x' of bad.csv is not numeric: its values \\(1,5, 2,5\\) have decimal commas"),
        ("x,y\n1,2\n\n2,3\n3,4x\n", "line 5 holds '4x'"),
    ],
)
def test_load_errors_on_bad_contents(tmp_path, text, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(GradfitError, match=message):
        gf.load(path)


# Each bad cell is marked "<", so the expected line is found in the text as an editor numbers it:
# blank lines count, and a quoted field over two lines puts the next record two lines on.
@pytest.mark.parametrize(
    "text",
    [
        "x,y\n1,2\n3,nan<\n",
        "x,y\n1,2\n3,<\n",
        "x,y\ninf<,2\n3,4\n",
        "x,y\n1,2\n-inf<,4\n",
        "x,y\n\n1,2\n\n\n3,NA<\n",
        'x,y,note\n1,2,"two\nlines"\n3,<,x\n',
        "x,y\r\n1,2\r\n5,6\r\n3,<\r\n",
    ],
)
def test_load_names_the_file_line_of_a_missing_or_infinite_cell(tmp_path, text):
    lines = text.replace("\r\n", "\n").split("\n")
    bad_line = next(i for i, line in enumerate(lines, start=1) if "<" in line)
    column = "x" if lines[bad_line - 1].split(",")[0].endswith("<") else "y"
    path = tmp_path / "bad.csv"
    path.write_text(text.replace("<", ""), newline="")
    with pytest.raises(GradfitError, match=f"column '{column}' of bad.csv has empty cells, NaN or inf at line "
                                           f"{bad_line}; drop or fill those lines first"):
        gf.load(path)


def test_load_lists_the_first_bad_lines(tmp_path):
    rows = [f"{i},{'' if i % 3 == 0 else i}" for i in range(30)]
    path = tmp_path / "gaps.csv"
    path.write_text("x,y\n" + "\n".join(rows) + "\n")
    # rows 0, 3, 6, ... are empty; data row r is on line r + 2
    expected = ", ".join(str(r + 2) for r in range(0, 15, 3))
    with pytest.raises(GradfitError, match=f"at lines {expected} ...;"):
        gf.load(path)


def test_load_names_the_row_index_of_a_bad_parquet_cell(tmp_path):
    path = tmp_path / "gap.parquet"
    pq.write_table(pa.table({"x": [1.0, 2.0, 3.0], "y": pa.array([1.0, None, 3.0])}), path)
    with pytest.raises(GradfitError, match="column 'y' of gap.parquet has empty cells, NaN or inf at row index 1;"):
        gf.load(path)


def test_text_labels_as_target_ask_to_be_recoded(tmp_path):
    path = tmp_path / "pets.csv"
    path.write_text("weight,label\n4.1,cat\n30.2,dog\n3.5,cat\n")
    with pytest.raises(GradfitError, match=r"column 'label' of pets.csv is not numeric: it holds text \(cat, dog\); "
                                           r"recode it as numbers, e.g. cat=0, dog=1"):
        gf.load(path, x=["weight"], y="label")


def test_a_text_input_column_points_to_categorical_columns(tmp_path):
    path = _write(tmp_path / "t.parquet", {"kind": np.array(["park", "transit", "park"]), "y": np.ones(3)})
    with pytest.raises(GradfitError, match=r"column 'kind' of t.parquet is not numeric: it holds text \(park, transit\)"
                                           r".*categorical=\['kind'\]"):
        gf.load(path)


# -- delimiters -----------------------------------------------------------------------------


@pytest.mark.parametrize("sep", [";", "\t", "|", ","])
def test_load_detects_the_delimiter_from_the_header(tmp_path, sep):
    text = sep.join(COLUMNS) + "\n" + "".join(sep.join(str(v) for v in row) + "\n" for row in zip(*COLUMNS.values()))
    path = tmp_path / "small.csv"
    path.write_text(text)
    for data in (gf.load(path), gf.load(path, delimiter=sep)):
        assert data.x_names == ("a", "b", "c") and data.y_name == "target"
        np.testing.assert_array_equal(data.y, COLUMNS["target"])
        np.testing.assert_array_equal(data.x[:, 0], COLUMNS["a"])
    assert list(read_table(path)) == list(COLUMNS)


def test_a_quoted_delimiter_does_not_count(tmp_path):
    path = tmp_path / "q.csv"
    path.write_text('"a;b",y\n1,2\n3,4\n')
    data = gf.load(path)
    assert data.x_names == ("a;b",)
    np.testing.assert_array_equal(data.y, [2.0, 4.0])


def test_an_ambiguous_delimiter_must_be_named(tmp_path):
    path = tmp_path / "amb.csv"
    path.write_text("a;b,c\n1;2,3\n4;5,6\n")
    with pytest.raises(GradfitError, match=r"cannot tell how the columns of amb.csv are separated.*"
                                           r"name the delimiter: delimiter=',' or delimiter=';'"):
        gf.load(path)
    by_comma, by_semicolon = read_table(path, delimiter=","), read_table(path, delimiter=";")
    assert list(by_comma) == ["a;b", "c"] and list(by_semicolon) == ["a", "b,c"]
    np.testing.assert_array_equal(by_comma["c"], [3.0, 6.0])
    np.testing.assert_array_equal(by_semicolon["a"], [1.0, 4.0])


def test_the_delimiter_used_is_said_when_it_matters(tmp_path):
    path = tmp_path / "spaces.csv"
    path.write_text("x y\n1 2\n3 4\n")
    with pytest.raises(GradfitError, match=r"only the target column 'x y'.*read with the comma ',' as delimiter"):
        gf.load(path)
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("x;y\n1;2\n3;4;5\n")
    with pytest.raises(GradfitError, match=r"line 3 has 3 field\(s\) where the header has 2 \(read with the "
                                           "semicolon ';'"):
        gf.load(ragged)


@pytest.mark.parametrize("bad", ["ab", "", "\n", 5])
def test_a_named_delimiter_is_one_character(table_file, bad):
    if table_file.suffix == ".parquet":
        with pytest.raises(GradfitError, match="delimiter is for CSV files"):
            gf.load(table_file, delimiter=",")
        return
    with pytest.raises(GradfitError, match="the delimiter must be one character"):
        gf.load(table_file, delimiter=bad)


# -- files too wide or with fields too long ----------------------------------------------------


def test_a_million_columns_are_refused_unless_the_needed_ones_are_named(tmp_path):
    n = 1_000_000
    path = tmp_path / "wide.csv"
    with open(path, "w") as f:
        f.write(",".join(f"c{j}" for j in range(n)) + "\n" + ",".join(str(j % 7) for j in range(n)) + "\n")
    with pytest.raises(GradfitError, match="wide.csv has 1,000,000 columns; gradfit reads at most 10,000"):
        gf.load(path)
    with pytest.raises(GradfitError, match="wide.csv has 1,000,000 columns"):
        read_table(path)


def test_named_columns_of_a_wide_file_are_read_alone(tmp_path, monkeypatch):
    monkeypatch.setattr(data_module, "MAX_COLUMNS", 10)
    path = tmp_path / "wide.csv"
    values = np.arange(2 * 30).reshape(2, 30)
    path.write_text(",".join(f"c{j}" for j in range(30)) + "\n" + "".join(",".join(map(str, r)) + "\n" for r in values))
    with pytest.raises(GradfitError, match="has 30 columns; gradfit reads at most 10"):
        gf.load(path, y="c3")
    data = gf.load(path, x=["c17", "c2"], y="c3")
    np.testing.assert_array_equal(data.x, values[:, [17, 2]])
    np.testing.assert_array_equal(data.y, values[:, 3])
    assert list(read_table(path, columns=["c5", "c1"])) == ["c5", "c1"]
    with pytest.raises(GradfitError, match="no column 'c30'"):
        gf.load(path, x=["c30"], y="c3")


def test_a_field_over_the_limit_is_named_with_its_line(tmp_path, monkeypatch):
    # The same path as a 150 MB field under the 1 MB limit, at a thousandth of the size.
    monkeypatch.setattr(data_module, "MAX_FIELD_BYTES", 150 * 1024)
    monkeypatch.setattr(data_module, "CSV_BLOCK_BYTES", 1024)
    path = tmp_path / "x.csv"
    path.write_text("x,y\n1,2\n3," + "9" * (150 * 1024 + 1) + "\n4,5\n")
    with pytest.raises(GradfitError, match="x.csv has a field of 150 KB at line 3; CSV fields above 150 KB are not "
                                           "supported"):
        gf.load(path)
    header = tmp_path / "h.csv"
    header.write_text("x," + "y" * (200 * 1024) + "\n1,2\n")
    with pytest.raises(GradfitError, match="h.csv has a field of 200 KB at line 1"):
        gf.load(header)


def test_lines_longer_than_a_block_are_read(tmp_path, monkeypatch, rng):
    monkeypatch.setattr(data_module, "CSV_BLOCK_BYTES", 256)
    values = rng.normal(size=(5, 40))
    path = tmp_path / "long_lines.csv"  # each line ~800 bytes, over three blocks
    path.write_text(",".join(f"x{j}" for j in range(40)) + "\n"
                    + "".join(",".join(repr(float(v)) for v in r) + "\n" for r in values))
    data = gf.load(path)
    np.testing.assert_array_equal(data.x, values[:, :39])
    np.testing.assert_array_equal(data.y, values[:, 39])


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


# -- text in arrays, and tables -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("x", "y", "message"),
    [
        (["a", "b"], [1, 2], r"^x is not numeric: it holds text \(a, b\); encode it as numbers"),
        ([1, 2], ["cat", "dog"], r"^y is not numeric: it holds text \(cat, dog\); recode it as numbers, e.g. cat=0, "
                                 r"dog=1"),
        ([1.0, "b", 3.0], [1, 2, 3], r"^x is not numeric: row index 1 holds 'b', which is not a number"),
        ([[1.0, 2.0], [3.0]], [1, 2], r"^x is not a table of numbers"),
    ],
)
def test_dataset_names_the_array_that_holds_text(x, y, message):
    with pytest.raises(GradfitError, match=message):
        gf.Dataset(x, y)


def test_dataset_still_takes_numbers_written_as_text_and_none_as_nan():
    np.testing.assert_array_equal(gf.Dataset(["1", "2.5"], [0, 1]).x, [1.0, 2.5])
    with pytest.raises(GradfitError, match="y holds NaN or inf in column\\(s\\) y at row index 1"):
        gf.Dataset([1.0, 2.0], [0.0, None])


try:
    import pandas as pd
except ImportError:  # pandas is optional: the DataFrame tests skip without it
    pd = None


@pytest.fixture
def frame():
    if pd is None:
        pytest.skip("needs pandas")
    return pd.DataFrame({"a": COLUMNS["a"], "b": COLUMNS["b"], "c": COLUMNS["c"], "target": COLUMNS["target"]})


def test_as_dataset_passes_a_dataset_and_builds_from_a_pair():
    data = gf.linear_data(n=5)
    assert as_dataset(data) is data
    pair = as_dataset((np.arange(3.0), np.ones(3)))
    np.testing.assert_array_equal(pair.x, [0.0, 1.0, 2.0])
    with pytest.raises(GradfitError, match="a Dataset has its columns already"):
        as_dataset(data, y="y")
    with pytest.raises(GradfitError, match="data must be a Dataset, an \\(x, y\\) pair"):
        as_dataset(3.0)


def test_as_dataset_reads_a_dataframe_like_load_reads_a_file(frame, tmp_path):
    from_frame = as_dataset(frame)
    from_file = gf.load(_write(tmp_path / "small.csv", COLUMNS))
    assert from_frame.x_names == from_file.x_names == ("a", "b", "c") and from_frame.y_name == "target"
    np.testing.assert_array_equal(from_frame.x, from_file.x)
    np.testing.assert_array_equal(from_frame.y, from_file.y)
    chosen = as_dataset(frame, x=["c", "a"], y="b")
    assert chosen.x_names == ("c", "a") and chosen.y_name == "b"
    np.testing.assert_array_equal(chosen.x, np.column_stack([COLUMNS["c"], COLUMNS["a"]]))
    one = as_dataset(frame, x="c", y="a")
    assert one.x_names == ("c",) and one.x.shape == (4,)


@pytest.mark.parametrize(
    "table",
    [
        lambda: dict(COLUMNS),
        lambda: pa.table({k: pa.array(v) for k, v in COLUMNS.items()}),
    ],
    ids=["dict", "pyarrow"],
)
def test_as_dataset_reads_other_tables(table):
    data = as_dataset(table())
    assert data.x_names == ("a", "b", "c") and data.y_name == "target"
    np.testing.assert_array_equal(data.y, COLUMNS["target"])


def test_as_dataset_reads_a_path(tmp_path):
    path = _write(tmp_path / "small.parquet", COLUMNS)
    np.testing.assert_array_equal(as_dataset(path, y="a").y, COLUMNS["a"])


@pytest.mark.parametrize(
    ("column", "values", "message"),
    [
        ("kind", lambda: pd.Categorical(["park", "transit", "park", "park"]),
         r"column 'kind' is not numeric: it holds text \(park, transit\); encode it as numbers, or fit a regression "
         r"with it as a categorical column: gf.fit_glm\(..., categorical=\['kind'\]\)"),
        ("kind", lambda: ["park", "transit", None, "park"],
         r"column 'kind' is not numeric: it holds text \(park, transit\)"),
        ("kind", lambda: [1.0, "two", 3.0, 4.0], r"column 'kind' is not numeric: row index 1 holds 'two'"),
        ("when", lambda: pd.to_datetime(["2024-01-01"] * 4), r"column 'when' holds dates or times"),
        ("n", lambda: pd.array([1, None, 3, 4], dtype="Int64"), r"x holds NaN or inf in column\(s\) n at row index 1"),
    ],
)
def test_as_dataset_refuses_what_is_not_numbers(frame, column, values, message):
    frame[column] = values()
    with pytest.raises(GradfitError, match=message):
        as_dataset(frame, y="target")


def test_as_dataset_asks_to_recode_text_labels(frame):
    frame["label"] = ["cat", "dog", "dog", "cat"]
    with pytest.raises(GradfitError, match=r"column 'label' is not numeric: it holds text \(cat, dog\); recode it as "
                                           r"numbers, e.g. cat=0, dog=1"):
        as_dataset(frame)
    with pytest.raises(GradfitError, match="no column 'z'; its columns are: a, b, c, target, label"):
        as_dataset(frame, y="z")


def test_a_dataframe_fit_matches_the_arrays_fit(frame):
    from_frame = gf.fit("linear", "normal", as_dataset(frame, x=["a"], y="c"), gf.gd(0.01), steps=3000, tol=1e-9)
    from_arrays = gf.fit("linear", "normal", (COLUMNS["a"], COLUMNS["c"]), gf.gd(0.01), steps=3000, tol=1e-9)
    np.testing.assert_allclose(from_frame.x, from_arrays.x, rtol=1e-12)
    # c = a - 1.5 exactly
    np.testing.assert_allclose(from_frame.x, [-1.5, 1.0], atol=1e-6)


def test_fit_takes_a_dataframe_directly(frame):
    """The issue's call: gf.fit("linear", "normal", df), y the last column, x the others."""
    direct = gf.fit("linear", "normal", frame[["a", "c"]], gf.gd(0.01), steps=3000, tol=1e-9)
    assert direct.status == "converged"
    np.testing.assert_allclose(direct.x, [-1.5, 1.0], atol=1e-6)


def test_a_header_that_is_not_utf8_is_named(tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes("température,y\n1,2\n2,3\n".encode("latin-1"))
    with pytest.raises(GradfitError, match=r"latin.csv is not UTF-8 text: its header holds the byte 0xe9"):
        gf.load(path)


def test_blank_lines_before_the_header_are_skipped(tmp_path):
    path = tmp_path / "blank.csv"
    path.write_text("\n\nx,y\n1,2\n2,4\n")
    data = gf.load(path)
    assert data.x_names == ("x",) and data.y.tolist() == [2.0, 4.0]


def test_column_names_with_tabs_or_edge_spaces_are_quoted_in_messages(tmp_path):
    path = tmp_path / "odd.csv"
    path.write_text("x,y,x\ty, z\n1,2,3,4\n")
    with pytest.raises(GradfitError, match=r"its columns are: x, y, 'x\\ty', ' z'"):
        gf.load(path, x=["a"], y="y")

"""What an adversarial new user tried, and gradfit now answers in one clear line (or does right)."""

from __future__ import annotations

import numpy as np
import optax
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

import gradfit as gf
from gradfit.cli import app

runner = CliRunner()


def one_line_error(args, *fragments):
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.mark.parametrize("args, fragment", [
    (["fit", "--steps", "20", "--warmup", "99999999999999999999"], "warm-up steps must be at most"),
    (["fit", "--steps", "20", "--schedule", "step", "--decay-every", "99999999999999999999"], "every must be at most"),
    (["fit", "--steps", "20", "--model", "shallow", "--width", "99999999999999999999"], "choose a smaller width"),
    (["compare", "--steps", "20", "--resolution", "100000"], "--resolution must be at most 4,000"),
    (["landscape", "--steps", "20", "--resolution", "99999999999999999999"], "--resolution must be at most"),
    (["landscape", "--scale", "0"], "the Gabor scale s must be a positive number"),
    (["compare", "--scale", "0"], "the Gabor scale s must be a positive number"),
])
def test_out_of_range_numbers_are_one_line(tmp_path, args, fragment):
    one_line_error([*args, *(["--out", str(tmp_path / "o")] if args[0] != "fit" else [])], fragment)


def test_numbers_stored_as_text_in_parquet_are_read_as_numbers(tmp_path):
    x = np.linspace(0.0, 2.0, 9)
    path = tmp_path / "text.parquet"
    pq.write_table(pa.table({"x": [repr(float(v)) for v in x], "y": 1.0 + 0.5 * x}), path)
    data = gf.load(path)
    np.testing.assert_array_equal(data.x, x)
    bad = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"x": ["1.5", "abc", None], "y": [1.0, 2.0, 3.0]}), bad)
    with pytest.raises(gf.GradfitError, match="'abc'"):
        gf.load(bad)


@pytest.mark.parametrize("call, fragment", [
    (lambda: gf.fit("linear", "normal", np.array([[1.0, 2.0], [3.0, 6.0]])), "pass the inputs and targets apart"),
    (lambda: gf.fit("gabor", "normal", gf.gabor_data(0), optax.adam(0.1)), "optimizer must be a gradfit optimiser"),
    (lambda: gf.fit("gabor", None, gf.gabor_data(0)), "loss must be a gradfit loss"),
    (lambda: gf.fit("gabor", "normal", gf.gabor_data(0), init=[10**400, 1]), "init must hold numbers"),
])
def test_library_calls_that_were_raw_exceptions(call, fragment):
    with pytest.raises(gf.GradfitError, match=fragment):
        call()


def test_the_target_is_never_an_input_too(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("x,y\n1,2\n2,3\n3,5\n")
    with pytest.raises(gf.GradfitError, match="'y' is the target; it cannot be an input too"):
        gf.load(path, x=["y"], y="y")
    columns = {"x": [1.0, 2.0, 3.0, 4.0], "c": [1, 2, 3, 4]}
    for extra in ({"x": ["c"]}, {"categorical": ["c"]}):
        with pytest.raises(gf.GradfitError, match="'c' is the target"):
            gf.fit_glm(columns, "c", "poisson", **extra)


@pytest.mark.parametrize("columns, family", [
    ({"x": [1e300, 2e300, 3e300, 4e300], "c": [1, 2, 3, 4]}, "poisson"),
    ({"x": [1.0, 2.0, 3.0, 4.0], "c": [1e300, 2.0, 3.0, 4.0]}, "normal"),
])
def test_regressions_at_extreme_scales_ask_for_rescaling(columns, family):
    with np.errstate(all="ignore"), pytest.raises(gf.GradfitError, match="rescale it"):
        gf.fit_glm(columns, "c", family)


def test_json_into_a_file_named_as_a_folder(tmp_path):
    (tmp_path / "a.csv").write_text("x\n")
    one_line_error(["fit", "--steps", "3", "--json", str(tmp_path / "a.csv" / "r.json")], "is a file, not a folder")


def test_an_empty_init_value_is_not_skipped():
    one_line_error(["fit", "--init", "1,,2"], "--init has an empty value")
    one_line_error(["fit", "--init", ",1,2"], "--init has an empty value")


def test_result_json_with_a_bom_reads_and_negative_steps_do_not(tmp_path):
    result = gf.fit("linear", "normal", gf.linear_data(0), gf.gd(0.01), steps=5)
    path = tmp_path / "r.json"
    path.write_bytes(b"\xef\xbb\xbf" + result.to_json().encode())
    assert gf.FitResult.from_json(path) == result
    d = result.to_dict()
    for steps in (-5, 1.5, True):
        with pytest.raises(gf.GradfitError, match="steps must be a whole number"):
            gf.FitResult.from_dict({**d, "steps": steps})

"""Design matrices: encoding, standardisation and its exact back-transform, and clear errors."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import gradfit as gf
from gradfit import design


@pytest.fixture
def columns(rng):
    n = 40
    return {
        "a": rng.normal(size=n),
        "b": rng.uniform(0, 1e5, size=n),
        "kind": rng.choice(["park", "commercial", "transit"], size=n),
        "minutes": rng.uniform(1, 10, size=n),
    }


def test_one_hot_against_the_first_level_with_the_intercept_first(columns):
    d = design.build(columns, ["a", "b"], ["kind"])
    assert d.names == ("intercept", "a", "b", "kind[park]", "kind[transit]")
    assert d.levels == (("kind", "commercial", ("park", "transit")),)
    x = d.matrix
    assert x.shape == (40, 5)
    np.testing.assert_array_equal(x[:, 0], 1.0)
    np.testing.assert_array_equal(x[:, 1], columns["a"])
    np.testing.assert_array_equal(x[:, 3], columns["kind"] == "park")
    np.testing.assert_array_equal(x[:, 4], columns["kind"] == "transit")
    assert d.sources["kind[park]"] == "kind"


def test_chosen_baseline_and_numeric_levels(columns):
    d = design.build(columns, ["a"], ["kind"], baselines={"kind": "transit"})
    assert d.names[-2:] == ("kind[commercial]", "kind[park]")
    codes = np.array([3, 1, 2, 3, 1, 2] * 5)
    d = design.build({"k": codes}, [], ["k"])
    assert d.names == ("intercept", "k[2]", "k[3]")


def test_columns_are_stored_aligned_and_read_only(columns):
    d = design.build(columns, ["a", "b"])
    assert d.columns.shape == (2, 40)
    assert d.columns.ctypes.data % 64 == 0  # so JAX uses the memory in place on the CPU
    with pytest.raises(ValueError):
        d.columns[0, 0] = 1.0


def test_offset_and_exposure(columns):
    d = design.build(columns, ["a"], exposure="minutes", offset=np.full(40, 0.5))
    np.testing.assert_allclose(d.log_offset(), 0.5 + np.log(columns["minutes"]))
    assert d.names == ("intercept", "a")


@pytest.mark.parametrize("intercept", [True, False])
def test_standardised_coefficients_map_back_exactly(columns, rng, intercept):
    d = design.build(columns, ["a", "b"], ["kind"], intercept=intercept)
    s = d.scaling()
    theta_std = rng.normal(size=d.n_coef)
    z = (d.columns - s.center[:, None]) / s.scale[:, None]
    if intercept:
        z = np.vstack([np.ones(40), z])
        np.testing.assert_allclose(z[1:].mean(axis=1), 0.0, atol=1e-12)
    np.testing.assert_allclose(z[-1].std() if intercept else np.sqrt(np.mean(z[-1] ** 2)), 1.0)
    beta = s.to_original(theta_std)
    np.testing.assert_allclose(d.matrix @ beta, z.T @ theta_std, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(s.to_standard(beta), theta_std, rtol=1e-10, atol=1e-12)


def test_from_dataset_uses_the_input_names():
    data = gf.pedestrian_data(n=50)
    d = design.from_dataset(data)
    assert d.names == ("intercept", *data.x_names)
    np.testing.assert_array_equal(d.matrix[:, 1:], data.x)


# -- bad input -----------------------------------------------------------------------------


def test_constant_columns_are_named(columns):
    with pytest.raises(gf.GradfitError, match=r"column 'c' is constant \(3 in every row\).*intercept"):
        design.build({**columns, "c": np.full(40, 3.0)}, ["a", "c"])
    with pytest.raises(gf.GradfitError, match="categorical column 'k' is constant"):
        design.build({**columns, "k": np.array(["x"] * 40)}, ["a"], ["k"])
    with pytest.raises(gf.GradfitError, match="column 'z' is zero in every row"):
        design.build({**columns, "z": np.zeros(40)}, ["a", "z"], intercept=False)
    # without an intercept a constant column is the intercept, and fine
    design.build({**columns, "c": np.full(40, 3.0)}, ["a", "c"], intercept=False)


@pytest.mark.parametrize(
    "extra,numeric,categorical,named",
    [
        (lambda c: {"c": c["a"] + 2 * c["b"]}, ["a", "b", "c"], [], ["a", "b", "c"]),
        (lambda c: {"c": 3 - 2 * c["a"]}, ["a", "b", "c"], [], ["a", "c"]),
        (lambda c: {"t": (c["kind"] == "transit") * 1.0}, ["a", "t"], ["kind"], ["t", "kind[transit]"]),
    ],
)
def test_collinear_columns_are_named(columns, extra, numeric, categorical, named):
    cols = {**columns, **extra(columns)}
    with pytest.raises(gf.GradfitError, match="perfectly collinear") as err:
        design.build(cols, numeric, categorical)
    message = str(err.value)
    for name in named:
        assert repr(name) in message
    assert "'minutes'" not in message


def test_collinear_on_a_large_design_is_confirmed_on_all_rows(rng):
    n = 300_000
    a = rng.normal(size=n)
    rare = np.zeros(n)
    rare[7] = 1.0  # zero on the subsample checked first, not on all rows
    design.build({"a": a, "rare": rare}, ["a", "rare"])
    with pytest.raises(gf.GradfitError, match="'a', 'b'"):
        design.build({"a": a, "b": 2 * a, "rare": rare}, ["a", "b", "rare"])


def test_offset_or_exposure_must_be_positive(columns):
    bad = columns["minutes"].copy()
    bad[[3, 9]] = [0.0, -2.0]
    with pytest.raises(gf.GradfitError, match=r"'minutes' must be positive.*row index\(es\) 3, 9"):
        design.build({**columns, "minutes": bad}, ["a"], exposure="minutes")


@pytest.mark.parametrize(
    "numeric,categorical,message",
    [
        (["kind"], [], r"not numeric.*--categorical kind"),
        (["nope"], [], "no column 'nope'"),
        (["a"], ["a"], "both numeric and categorical"),
        ([], [], "no columns"),
    ],
)
def test_bad_columns(columns, numeric, categorical, message):
    with pytest.raises(gf.GradfitError, match=message):
        design.build(columns, numeric, categorical, intercept=bool(numeric or categorical))


def test_nan_and_too_few_rows(columns):
    a = columns["a"].copy()
    a[5] = np.nan
    with pytest.raises(gf.GradfitError, match=r"'a' holds NaN or inf at row index\(es\) 5"):
        design.build({**columns, "a": a}, ["a"])
    few = {k: v[:2] for k, v in columns.items()}
    with pytest.raises(gf.GradfitError, match="3 coefficients but only 2 rows"):
        design.build(few, ["a", "b"])


def test_without_an_intercept_the_first_categorical_keeps_every_level(columns):
    d = design.build(columns, ["a"], ["kind"], intercept=False)
    assert d.names == ("a", "kind[commercial]", "kind[park]", "kind[transit]")
    assert d.levels[0][1] is None
    np.testing.assert_array_equal(d.matrix[:, 1:].sum(axis=1), 1.0)


def test_a_categorical_column_with_many_levels_warns(rng):
    n = 60
    continuous = {"x": rng.normal(size=n), "y": rng.normal(size=n)}
    with pytest.warns(design.ManyLevelsWarning, match="'x' has 60 levels in 60 rows"):
        built = design.build(continuous, categorical=["x"], check=False)
    assert built.n_coef == 60  # still encoded as asked
    many = {"store": np.repeat(np.arange(80), 20)}  # numeric codes: 80 levels of 1,600 rows
    with pytest.warns(design.ManyLevelsWarning, match="'store' has 80 levels"):
        design.build(many, categorical=["store"])
    named = {"store": np.repeat([f"s{k}" for k in range(80)], 20)}  # named levels, 20 rows each: a category
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        design.build(named, categorical=["store"])
        design.build({"kind": rng.choice(["a", "b", "c"], size=n)}, categorical=["kind"])

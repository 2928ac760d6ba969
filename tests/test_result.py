"""FitResult: immutable, and JSON in and out without loss."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

import gradfit as gf


@pytest.fixture(scope="module")
def gabor_fit():
    return gf.fit("gabor", "normal", gf.gabor_data(n=30), gf.adam(0.1), steps=40, tol=0)


@pytest.fixture(scope="module")
def net_fit():
    data = gf.gabor_data(n=30)
    return gf.fit(gf.shallow(4), "normal", data, gf.momentum(0.001, variant="heavy-ball"), steps=25, tol=0)


@pytest.mark.parametrize("which", ["gabor_fit", "net_fit"])
def test_json_round_trip_is_exact(which, request, tmp_path):
    result = request.getfixturevalue(which)
    back = gf.FitResult.from_json(result.to_json())
    assert back == result
    for name in result.param_names:
        np.testing.assert_array_equal(back.params[name], result.params[name])
    for field in ("step", "params", "loss", "grad_norm", "lr"):
        np.testing.assert_array_equal(getattr(back.history, field), getattr(result.history, field))
    path = tmp_path / "fit.json"
    result.to_json(path)
    assert gf.FitResult.from_json(path) == result


def test_json_contract(gabor_fit):
    d = json.loads(gabor_fit.to_json())
    assert list(d["params"]) == ["phi0", "phi1"]
    assert d["loss"] == gabor_fit.loss
    assert d["stopped"] == gabor_fit.stopped
    assert len(d["history"]["loss"]) == len(d["history"]["params"]) == 41
    assert d["history"]["params"][0] == {"phi0": 1.0, "phi1": 10.0}  # the model's default start
    assert d["history"]["params"][-1] == d["params"]
    assert d["history"]["lr"][-1] is None  # JSON has no NaN: the last entry has no update


def test_array_parameters_keep_their_shapes(net_fit):
    d = json.loads(net_fit.to_json())
    assert np.shape(d["params"]["omega0"]) == (4, 1)
    assert np.shape(d["history"]["params"][3]["omega1"]) == (1, 4)


def test_results_are_immutable(gabor_fit):
    with pytest.raises(dataclasses.FrozenInstanceError):
        gabor_fit.loss = 0.0
    with pytest.raises(ValueError):
        gabor_fit.history.loss[0] = 1.0
    with pytest.raises(ValueError):
        gabor_fit.history.params[0, 0] = 1.0


def test_multifit_round_trip():
    many = gf.fit("linear", "normal", gf.linear_data(), gf.gd(0.01), init=np.array([[0.0, 0.0], [1.0, 1.0]]),
                  steps=10, tol=0)
    back = gf.MultiFit.from_json(many.to_json())
    assert len(back) == 2 and all(a == b for a, b in zip(back, many))


def test_a_history_step_too_large_for_an_integer_is_a_gradfit_error():
    """Found by the fuzz test: a step of 9.2e18 (a float past int64) overflowed inside numpy."""
    data = gf.linear_data(0, 5)
    d = gf.fit(gf.linear(), gf.normal(), data, gf.gd(0.01), steps=3, tol=0).to_dict()
    d["history"]["step"] = 9.223372036854776e18
    with pytest.raises(gf.GradfitError, match="not a gradfit fit result"):
        gf.FitResult.from_dict(d)

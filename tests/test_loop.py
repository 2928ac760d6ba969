"""The fit loop: history semantics, batching, seeds, stopping, many starts, dtypes."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradfit as gf
from gradfit import loop

# A line through 6 points: small enough that every number below can be checked by hand.
X = np.array([0.0, 0.5, 1.0, 1.5, 2.0, 2.5])
Y = np.array([0.9, 1.1, 1.6, 1.7, 2.2, 2.4])


def line_grad(phi, x=X, y=Y):
    """REFERENCE §2: ∂L/∂φ0 = Σ 2 r_i, ∂L/∂φ1 = Σ 2 x_i r_i with r = φ0 + φ1 x - y."""
    r = phi[0] + phi[1] * x - y
    return np.array([2 * r.sum(), 2 * (x * r).sum()])


def line_loss(phi, x=X, y=Y):
    return float(((phi[0] + phi[1] * x - y) ** 2).sum())


def test_history_entry_k_is_after_k_updates():
    result = gf.fit("linear", "normal", (X, Y), gf.gd(0.01), init=[0.2, -0.1], steps=7, tol=0)
    phi = np.array([0.2, -0.1])
    assert result.history.step.tolist() == list(range(8))
    for k in range(8):
        np.testing.assert_allclose(result.history.params[k], phi, rtol=0, atol=1e-13)
        assert result.history.loss[k] == pytest.approx(line_loss(phi), rel=1e-13)
        assert result.history.grad_norm[k] == pytest.approx(np.linalg.norm(line_grad(phi)), rel=1e-12)
        phi = phi - 0.01 * line_grad(phi)
    np.testing.assert_allclose(result.history.lr[:-1], 0.01)
    assert np.isnan(result.history.lr[-1])
    assert result.steps == 7 and result.status == "max_steps"
    np.testing.assert_allclose(result.x, result.history.params[-1])
    assert result.loss == result.history.loss[-1]


def test_tolerance_stops_at_a_small_gradient():
    result = gf.fit("linear", "normal", (X, Y), gf.gd(0.02), steps=5000, tol=1e-8)
    assert result.status == "converged"
    assert result.grad_norm <= 1e-8
    assert result.steps < 5000
    closed = np.linalg.lstsq(np.column_stack([np.ones_like(X), X]), Y, rcond=None)[0]
    np.testing.assert_allclose(result.x, closed, atol=1e-8)
    # the stop happens at the first step whose gradient norm is under tol
    assert np.all(result.history.grad_norm[:-1] > 1e-8)


def test_tol_zero_runs_every_step():
    result = gf.fit("linear", "normal", (X, Y), gf.gd(0.02), steps=300, tol=0)
    assert result.steps == 300 and result.status == "max_steps"


def test_diverging_fit_stops_with_last_finite_parameters_and_history():
    # lr far above 2 / (largest Hessian eigenvalue): every step multiplies the error
    result = gf.fit("linear", "normal", (X, Y), gf.gd(5.0), steps=1000, tol=0)
    assert result.status == "diverged"
    assert "non-finite" in result.stopped
    assert 10 < result.steps < 1000
    assert np.all(np.isfinite(result.history.params))
    assert np.all(np.isfinite(result.history.loss))
    assert result.history.step.tolist() == list(range(result.steps + 1))
    np.testing.assert_array_equal(result.x, result.history.params[-1])
    assert np.isfinite(result.loss) and result.loss == result.history.loss[-1]
    # the next gradient step from the kept parameters is the one that overflows
    nxt = result.x - 5.0 * line_grad(result.x)
    with np.errstate(over="ignore", invalid="ignore"):
        assert not np.isfinite(line_loss(nxt)) or not np.all(np.isfinite(line_grad(nxt)))


def test_non_finite_start_is_reported():
    model = gf.custom(lambda x, p: jnp.log(p["a"]) * x, ["a"])
    result = gf.fit(model, "normal", (X, Y), gf.gd(0.1), init=[-1.0], steps=10)
    assert result.status == "diverged"
    assert result.steps == 0
    assert "at the start" in result.stopped


def _index_model(n):
    """f(x_i) = w[i]: each example owns one parameter, so a gradient step shows which
    examples a batch held."""
    return gf.custom(lambda x, p: p["w"][x.astype(jnp.int32)], {"w": np.zeros(n)})


@pytest.mark.parametrize("n,batch", [(10, 3), (12, 4), (7, 7), (5, 1)])
def test_each_epoch_visits_every_example_exactly_once(n, batch):
    y = np.arange(1.0, n + 1.0)
    x = np.arange(n, dtype=float)
    # One SGD step on (w_i - y_i)² with lr 0.25 halves the gap: w_i = y_i / 2 after one
    # visit, 3 y_i / 4 after two. After exactly one epoch every w_i must be y_i / 2.
    result = gf.fit(_index_model(n), "normal", (x, y), gf.sgd(0.25), batch_size=batch, epochs=1,
                    tol=0, seed=3)
    np.testing.assert_allclose(result.params["w"], y / 2, rtol=1e-12)
    result = gf.fit(_index_model(n), "normal", (x, y), gf.sgd(0.25), batch_size=batch, epochs=2,
                    tol=0, seed=3)
    np.testing.assert_allclose(result.params["w"], 3 * y / 4, rtol=1e-12)
    assert result.steps == 2 * -(-n // batch)


def test_batches_follow_the_documented_permutation():
    n, batch = 10, 4
    x = np.arange(n, dtype=float)
    y = np.arange(1.0, n + 1.0)
    # after the first batch of epoch 0, exactly the examples of that batch have moved
    result = gf.fit(_index_model(n), "normal", (x, y), gf.sgd(0.25), batch_size=batch, steps=1, tol=0, seed=11)
    first = gf.data.epoch_batches(n, batch, 11, 0)[0][0]
    moved = np.nonzero(result.params["w"])[0]
    assert sorted(moved.tolist()) == sorted(first.tolist())


def test_same_seed_same_fit_other_seed_other_fit():
    data = gf.linear_data(seed=1, n=50)
    kwargs = dict(batch_size=8, epochs=3, tol=0)
    a = gf.fit("linear", "normal", data, gf.sgd(0.01), seed=5, **kwargs)
    b = gf.fit("linear", "normal", data, gf.sgd(0.01), seed=5, **kwargs)
    c = gf.fit("linear", "normal", data, gf.sgd(0.01), seed=6, **kwargs)
    np.testing.assert_array_equal(a.history.params, b.history.params)
    assert not np.allclose(a.x, c.x, rtol=0, atol=1e-12)


def test_ragged_batches_compile_once():
    data = gf.linear_data(seed=2, n=23)
    loop.runner.cache_clear()
    for epochs, lr in ((1, 0.01), (2, 0.02), (3, 0.005)):  # the rate is an argument of the compiled loop
        gf.fit("linear", "normal", data, gf.sgd(lr), batch_size=5, epochs=epochs, tol=0)
    info = loop.runner.cache_info()
    assert info.misses == 1 and info.hits == 2
    run_chunk = loop.runner(next(iter(_plans(data)))).chunk
    assert run_chunk._cache_size() == 1


def _plans(data):
    # the plan the fits above used: one shape for every cap, so one compiled chunk
    objective = gf.Objective(gf.linear(1), gf.normal())
    yield loop.Plan(objective, gf.sgd(0.01).skeleton, True, False, loop.chunk_steps(5, 1, True, 5), 1, data.x.size,
                    n_rows=len(data), batch_size=5)


def test_minibatch_history_stride_is_per_epoch_when_asked():
    data = gf.linear_data(seed=2, n=40)
    result = gf.fit("linear", "normal", data, gf.sgd(0.01), batch_size=8, epochs=4, tol=0, history_every=5)
    assert result.history.step.tolist() == [0, 5, 10, 15, 20]
    obj = gf.Objective(gf.linear(1), gf.normal())
    with jax.enable_x64(True):
        for k, params in enumerate(result.history.params):
            want = obj.value(jnp.asarray(params), jnp.asarray(data.x), jnp.asarray(data.y))
            assert result.history.loss[k] == pytest.approx(float(want), rel=1e-12)


def test_many_starts_at_once_match_single_fits():
    data = gf.gabor_data(seed=0, n=30)
    starts = np.array([[1.0, 10.0], [-4.0, 15.0], [5.0, 5.0]])
    many = gf.fit("gabor", "normal", data, gf.gd(0.01), init=starts, steps=300, tol=1e-7)
    assert isinstance(many, gf.MultiFit) and len(many) == 3
    for start, result in zip(starts, many):
        one = gf.fit("gabor", "normal", data, gf.gd(0.01), init=start, steps=300, tol=1e-7)
        np.testing.assert_allclose(result.x, one.x, rtol=1e-12)
        assert result.steps == one.steps and result.status == one.status
        np.testing.assert_allclose(result.history.loss, one.history.loss, rtol=1e-12)
    assert many.best.loss == min(r.loss for r in many)
    assert many.params.shape == (3, 2)


def test_starts_stop_independently():
    # one start diverges, one converges; the others keep their own histories
    starts = np.array([[0.0, 0.0], [1e200, 1e200]])
    many = gf.fit("linear", "normal", (X, Y), gf.gd(0.02), init=starts, steps=4000, tol=1e-8)
    assert many[0].status == "converged"
    assert many[1].status == "diverged"


def test_lookahead_nesterov_history_and_stopping():
    result = gf.fit("linear", "normal", (X, Y), gf.nesterov(0.01, 0.8), steps=3000, tol=1e-8)
    assert result.status == "converged"
    assert result.history.step.tolist() == list(range(result.steps + 1))


def test_line_search_records_its_step_lengths():
    result = gf.fit("linear", "normal", (X, Y), gf.gd(line_search=True), steps=50, tol=0)
    lrs = result.history.lr[:-1]
    assert np.all((lrs > 0) & (lrs <= 1.0))
    # each recorded step reproduces the next entry: φ_{k+1} = φ_k - s_k g_k
    for k in range(5):
        phi = result.history.params[k]
        np.testing.assert_allclose(result.history.params[k + 1], phi - lrs[k] * line_grad(phi), rtol=1e-12)


def test_x64_setting_of_the_caller_is_left_alone():
    before = jax.config.jax_enable_x64
    result = gf.fit("linear", "normal", (X, Y), gf.gd(0.01), steps=5)
    assert jax.config.jax_enable_x64 == before
    assert jnp.ones(1).dtype == (jnp.float64 if before else jnp.float32)
    assert result.settings["dtype"] == "float64"


def test_float32_on_request():
    r32 = gf.fit("linear", "normal", (X, Y), gf.gd(0.01), steps=20, tol=0, dtype="float32")
    r64 = gf.fit("linear", "normal", (X, Y), gf.gd(0.01), steps=20, tol=0, dtype="float64")
    assert r32.settings["dtype"] == "float32"
    np.testing.assert_allclose(r32.x, r64.x, rtol=1e-5)
    assert not np.array_equal(r32.x, r64.x)  # float32 rounding shows at this precision


def test_zero_steps_returns_the_start():
    result = gf.fit("linear", "normal", (X, Y), gf.gd(0.01), init=[0.3, 0.4], steps=0)
    np.testing.assert_array_equal(result.x, [0.3, 0.4])
    assert result.steps == 0 and len(result.history) == 1


def test_progress_is_reported():
    calls = []
    gf.fit("linear", "normal", (X, Y), gf.gd(0.01), steps=5000, tol=0, progress=lambda *a: calls.append(a))
    assert calls and calls[-1][0] == 5000 and calls[-1][1] == 5000
    assert [c[0] for c in calls] == sorted(c[0] for c in calls)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(batch_size=7), "larger than the data"),
        (dict(batch_size=0), "positive whole"),
        (dict(steps=5, epochs=2), "either steps or epochs"),
        (dict(steps=-1), "steps must be"),
        (dict(tol=-1.0), "tol must be"),
        (dict(init=[1.0, 2.0, 3.0]), "parameter value"),
        (dict(init={"phi0": 1.0}), "missing: phi1"),
        (dict(dtype="float16"), "dtype"),
        (dict(history_every=0), "history_every"),
    ],
)
def test_bad_arguments_raise_clear_errors(kwargs, match):
    with pytest.raises(gf.GradfitError, match=match):
        gf.fit("linear", "normal", (X, Y), gf.gd(0.01), **kwargs)


def test_model_that_cannot_take_the_inputs():
    x2 = np.column_stack([X, X])
    with pytest.raises(gf.GradfitError, match="cannot take inputs with 2 column"):
        gf.fit("gabor", "normal", (x2, Y), gf.gd(0.01))


def test_model_with_a_scalar_output():
    model = gf.custom(lambda x, p: p["a"] * x.sum(), ["a"])
    with pytest.raises(gf.GradfitError, match="one output per example"):
        gf.fit(model, "normal", (X, Y), gf.gd(0.01))


def test_stride_longer_than_the_fit_records_start_and_end():
    result = gf.fit("linear", "normal", (X, Y), gf.gd(0.01), steps=30, tol=0, history_every=10**9)
    assert result.history.step.tolist() == [0, 30]
    assert result.steps == 30


def test_polish_reaches_the_least_squares_optimum_of_a_curve_fit():
    scipy_optimize = pytest.importorskip("scipy.optimize")
    data = gf.gabor_data(seed=3, n=200)

    def gabor(x, a, b):
        z = a + 0.06 * b * x
        return np.sin(z) * np.exp(-z * z / 8.0)

    reference, _ = scipy_optimize.curve_fit(gabor, data.x, data.y, p0=(0.5, 15.0), xtol=1e-14, ftol=1e-14)
    rough = gf.fit("gabor", "normal", data, gf.adam(0.05), init=[0.5, 15.0], steps=100, tol=0)
    result = gf.fit("gabor", "normal", data, gf.adam(0.05), init=[0.5, 15.0], steps=100, tol=0, polish=True)
    # the same optimum as Levenberg-Marquardt, and at least as low (scipy stops on xtol)
    np.testing.assert_allclose(result.x, reference, atol=1e-7)
    sse = lambda phi: float(np.sum((gabor(data.x, *phi) - data.y) ** 2))  # noqa: E731
    assert result.loss <= sse(reference) * (1 + 1e-14)
    assert result.grad_norm < 1e-8
    assert result.status == "converged" and "then Levenberg-Marquardt" in result.stopped
    assert not np.allclose(rough.x, reference, rtol=1e-6)  # Adam alone had not got there
    # the polish's iterates continue the history: steps, losses going down, the last entry is the result
    assert result.history.step[:101].tolist() == list(range(101))
    assert result.steps == result.history.step[-1] > 100
    assert np.all(np.diff(result.history.loss[100:]) <= 1e-12)
    np.testing.assert_array_equal(result.history.params[-1], result.x)
    back = gf.FitResult.from_json(result.to_json())
    assert back == result


def test_polish_takes_one_start():
    with pytest.raises(gf.GradfitError, match="one start"):
        gf.fit("linear", "normal", (X, Y), gf.gd(0.01), init=np.zeros((2, 2)), polish=True)


def test_a_start_beyond_the_dtype_is_bad_input():
    with pytest.raises(gf.GradfitError, match="beyond the largest float32"):
        gf.fit("linear", "normal", (np.arange(3.0), np.arange(3.0)), init=[1e300, 0.0], dtype="float32", steps=2)


def test_a_start_with_no_finite_loss_is_kept_in_the_history():
    result = gf.fit("linear", "normal", (X, Y), gf.adam(0.1), init=[1e308, 1e308], steps=20)
    assert result.status == "diverged" and result.steps == 0 and "at the start" in result.stopped
    assert result.history.step.tolist() == [0]
    np.testing.assert_array_equal(result.history.params[0], [1e308, 1e308])


def test_step_caps_beyond_the_loop_counter_are_bad_input():
    with pytest.raises(gf.GradfitError, match="a fit runs at most"):
        gf.fit("linear", "normal", (X, Y), steps=10**20)
    with pytest.raises(gf.GradfitError, match="a fit runs at most"):
        gf.fit("linear", "normal", (X, Y), batch_size=2, epochs=10**12)

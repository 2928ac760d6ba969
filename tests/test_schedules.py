"""Learning-rate schedules α_t against their formulas, and as an optimiser's rate in a fit."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradfit
from gradfit.errors import GradfitError
from gradfit.schedules import (
    SCHEDULES,
    as_schedule,
    constant,
    cosine,
    exponential,
    make_schedule,
    step_decay,
    warmup,
)

pytestmark = pytest.mark.usefixtures("x64")

T = 40  # steps evaluated: past every step length, decay horizon and warm-up below


def cosine_formula(lr, steps, floor):
    return lambda t: lr * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(t, steps) / steps)))


def warmup_formula(lr, warm, after):
    """α (t + 1)/(W + 1) for t < W, then the schedule ``after`` from its own start."""
    return lambda t: lr * (t + 1) / (warm + 1) if t < warm else after(t - warm)


FORMULAS = {
    "constant": (constant(0.3), lambda t: 0.3),
    # The slides' schedule: multiply α by a factor every M steps.
    "step": (step_decay(0.3, factor=0.5, every=7), lambda t: 0.3 * 0.5 ** (t // 7)),
    "step, every step": (step_decay(0.3, factor=0.8, every=1), lambda t: 0.3 * 0.8**t),
    "exponential": (exponential(0.3, rate=0.9), lambda t: 0.3 * 0.9**t),
    "cosine": (cosine(0.3, steps=25), cosine_formula(0.3, 25, 0.0)),
    "cosine with a floor": (cosine(0.3, steps=25, floor=0.1), cosine_formula(0.3, 25, 0.1)),
    "warm-up, then constant": (warmup(0.3, 4), warmup_formula(0.3, 4, lambda t: 0.3)),
    "warm-up, then step": (warmup(step_decay(0.3, 0.5, 7), 5),
                           warmup_formula(0.3, 5, lambda t: 0.3 * 0.5 ** (t // 7))),
    "warm-up, then cosine": (warmup(cosine(0.3, 20, 0.1), 3), warmup_formula(0.3, 3, cosine_formula(0.3, 20, 0.1))),
    "no warm-up": (warmup(exponential(0.3, 0.9), 0), lambda t: 0.3 * 0.9**t),
}


@pytest.mark.parametrize("case", sorted(FORMULAS))
def test_values_follow_the_formula(case):
    schedule, formula = FORMULAS[case]
    expected = np.array([formula(t) for t in range(T)])
    # The optimiser calls the schedule with its int32 step count, inside jit.
    counts = jnp.arange(T, dtype=jnp.int32)
    for values in (schedule(counts), jax.jit(jax.vmap(schedule))(counts)):
        assert values.dtype == jnp.float64  # a float64 fit gets float64 rates
        np.testing.assert_allclose(np.asarray(values), expected, rtol=1e-14, atol=1e-16)
    assert float(schedule(7)) == pytest.approx(formula(7), rel=1e-14)


def test_make_schedule_by_name():
    assert make_schedule("constant", 0.3) == constant(0.3)
    assert make_schedule("step", 0.3, factor=0.5, every=7) == step_decay(0.3, 0.5, 7)
    assert make_schedule("exponential", 0.3, rate=0.9) == exponential(0.3, 0.9)
    assert make_schedule("cosine", 0.3, steps=25, floor=0.1) == cosine(0.3, 25, 0.1)
    assert as_schedule(0.3) == constant(0.3)
    assert as_schedule(FORMULAS["step"][0]) is FORMULAS["step"][0]


@pytest.mark.parametrize("call, words", [
    (lambda: constant(0.0), ["learning rate"]),
    (lambda: constant(-0.1), ["learning rate"]),
    (lambda: constant(float("nan")), ["learning rate"]),
    (lambda: step_decay(float("inf")), ["learning rate"]),
    (lambda: step_decay(0.1, factor=0.0), ["factor"]),
    (lambda: step_decay(0.1, factor=1.5), ["factor"]),
    (lambda: step_decay(0.1, every=0), ["every"]),
    (lambda: exponential(0.1, rate=0.0), ["rate"]),
    (lambda: exponential(0.1, rate=1.01), ["rate"]),
    (lambda: cosine(0.1, steps=0), ["steps"]),
    # A floor below 0 would end in a negative rate, which climbs the loss.
    (lambda: cosine(0.1, steps=10, floor=-0.5), ["floor"]),
    (lambda: cosine(0.1, steps=10, floor=1.5), ["floor"]),
    (lambda: warmup(0.1, -1), ["warm-up"]),
    (lambda: as_schedule("fast"), ["fast"]),
    (lambda: make_schedule("linear", 0.1), ["linear", *SCHEDULES]),
    (lambda: gradfit.adam(lr="fast"), ["fast"]),
])
def test_bad_settings(call, words):
    with pytest.raises(GradfitError) as err:
        call()
    for word in words:
        assert word in str(err.value)


# -- a schedule inside a fit ------------------------------------------------------------

LINE_X = np.array([0.0, 0.5, 1.0, 1.5, 2.0])
LINE_Y = np.array([0.9, 1.0, 1.4, 1.6, 2.1])
LINE_START = (0.6, -0.2)


def line_grad(phi):
    # REFERENCE §2: ∂ℓ_i/∂φ0 = 2 r_i, ∂ℓ_i/∂φ1 = 2 x_i r_i, r_i = φ0 + φ1 x_i - y_i.
    r = phi[0] + phi[1] * LINE_X - LINE_Y
    return np.array([np.sum(2 * r), np.sum(2 * LINE_X * r)])


FIT_CASES = {
    "step": (step_decay(0.02, factor=0.5, every=3), lambda t: 0.02 * 0.5 ** (t // 3)),
    "warm-up, then step": (warmup(step_decay(0.02, 0.5, 3), 4),
                           warmup_formula(0.02, 4, lambda t: 0.02 * 0.5 ** (t // 3))),
}


@pytest.mark.parametrize("case", sorted(FIT_CASES))
def test_fit_records_and_uses_the_scheduled_rate(case):
    schedule, rate = FIT_CASES[case]
    steps = 12
    result = gradfit.fit("linear", "normal", (LINE_X, LINE_Y), gradfit.gd(schedule), init=LINE_START,
                         steps=steps, tol=0, dtype="float64")
    # history.lr[k] is the rate of the update that leaves entry k; the last has none.
    np.testing.assert_allclose(result.history.lr[:-1], [rate(k) for k in range(steps)], rtol=1e-14)
    assert np.isnan(result.history.lr[-1])
    phi = [np.array(LINE_START)]
    for k in range(steps):
        phi.append(phi[-1] - rate(k) * line_grad(phi[-1]))
    np.testing.assert_allclose(result.history.params, np.array(phi), rtol=1e-12, atol=1e-12)


def test_scheduled_adam_matches_optax():
    # optax.adam with the step decay written out (optax's own exponential_decay returns
    # float32 rates for an int32 count, so it could not match in float64).
    ours = gradfit.adam(step_decay(0.05, 0.5, 3), 0.8, 0.9, 1e-2, variant="standard")
    theirs = optax.adam(lambda t: 0.05 * 0.5 ** (t // 3), 0.8, 0.9, eps=1e-2)
    grad_fn = jax.grad(lambda phi: jnp.sum((phi[0] + phi[1] * LINE_X - LINE_Y) ** 2))

    ends = []
    for tx in (ours, theirs):
        params = jnp.asarray(LINE_START, jnp.float64)
        state = tx.init(params)
        for k in range(10):
            updates, state = tx.update(grad_fn(params), state, params)
            params = optax.apply_updates(params, updates)
            if tx is ours:  # the rate the k-th update used
                assert float(ours.last_lr(state)) == pytest.approx(0.05 * 0.5 ** (k // 3), rel=1e-15)
        ends.append(np.asarray(params))
    np.testing.assert_allclose(ends[0], ends[1], rtol=1e-12, atol=1e-12)

"""`gradfit.Fitter`: many fits of one problem, checked and compiled once, each lane the fit `gradfit.fit` runs alone."""

from __future__ import annotations

import jax
import numpy as np
import optax
import pytest

import gradfit as gf
from gradfit import loop
from gradfit.errors import GradfitError

GABOR = gf.gabor_data(0, n=30)
LRS = [0.01, 0.05, 0.2]
SEEDS = [0, 1, 2]

# Every short fit here runs 100 steps (one compiled chunk of 128) and many-run calls have 3 runs,
# so that tests share compiled loops: a compile costs about a second, a fit of the Gabor model
# to 30 points next to nothing.
STEPS = 100


def alone(optimizer, seed=0, **settings):
    """The reference: `gf.fit` of the Gabor model run on its own."""
    return gf.fit("gabor", "normal", GABOR, optimizer, seed=seed, **settings)


def assert_same_fit(lane, ref):
    """The same iterates, bit for bit, and the same final loss. The recorded losses are computed after the
    loop in one pass over all rows (and lanes), a vmapped reduction whose last bit XLA may round otherwise
    than the fit alone's: they agree to 1e-12."""
    np.testing.assert_array_equal(lane.x, ref.x)
    np.testing.assert_array_equal(lane.history.params, ref.history.params)
    np.testing.assert_allclose(lane.history.loss, ref.history.loss, rtol=1e-12)
    assert (lane.loss, lane.steps, lane.status) == (ref.loss, ref.steps, ref.status)


@pytest.fixture
def compiles(monkeypatch):
    """The plans `gradfit.fit` asks `loop.runner` for while the test runs, the runner's cache emptied first."""
    real = loop.runner
    real.cache_clear()
    plans = []

    def spy(plan):
        plans.append(plan)
        return real(plan)

    monkeypatch.setattr(loop, "runner", spy)
    return real, plans


# -- each lane is the fit run alone -----------------------------------------------------------------


@pytest.mark.parametrize("optimizer, numbers", [
    (gf.adam(0.1), {"beta": [0.5, 0.9, 0.99]}),
    (gf.momentum(0.1), {"beta": [0.0, 0.5, 0.9]}),
    (gf.sgd(0.01), {}),
], ids=["adam", "momentum", "sgd"])
def test_full_batch_lane_is_bit_identical_to_fit_alone(optimizer, numbers):
    lrs = [lr / 10 for lr in LRS] if optimizer.name == "sgd" else LRS  # sgd on the summed loss needs small steps
    fitter = gf.Fitter("gabor", "normal", optimizer, steps=STEPS, tol=0)
    runs = fitter(GABOR, lr=lrs, seed=SEEDS, **numbers)
    assert len(runs) == 3
    for k in range(3):
        own = {"lr": lrs[k], **{name: values[k] for name, values in numbers.items()}}
        ref = alone(optimizer.with_values(**own), seed=SEEDS[k], steps=STEPS, tol=0)
        assert_same_fit(runs[k], ref)
        # the lane says its own numbers and seed
        assert runs[k].optimizer == ref.optimizer
        assert runs[k].optimizer["schedule"]["lr"] == lrs[k]
        assert all(runs[k].optimizer[name] == own[name] for name in numbers)
        assert runs[k].settings["seed"] == SEEDS[k]


@pytest.mark.parametrize("optimizer, seeds", [
    (gf.sgd(0.001), [0, 1, 2]),  # each lane draws its own mini-batches
    (gf.sgd(0.001), [4, 4, 4]),  # one seed: the lanes share the mini-batches
    pytest.param(gf.adam(0.1), [0, 1, 2], marks=pytest.mark.slow),
    pytest.param(gf.momentum(0.1), [0, 1, 2], marks=pytest.mark.slow),
], ids=["sgd-own-batches", "sgd-shared-batches", "adam", "momentum"])
def test_minibatch_lane_equals_fit_alone(optimizer, seeds):
    # XLA's CPU code for a vmapped reduction may round the last bit differently from the
    # unbatched one (for some batch sizes), so mini-batch lanes are held to 1e-12, not bits.
    lrs = [optimizer.lr.lr * f for f in (0.5, 1.0, 2.0)]
    fitter = gf.Fitter("gabor", "normal", optimizer, steps=STEPS, batch_size=7, tol=0)
    runs = fitter(GABOR, lr=lrs, seed=seeds)
    for k in range(3):
        ref = alone(optimizer.with_values(lr=lrs[k]), seed=seeds[k], steps=STEPS, batch_size=7, tol=0)
        np.testing.assert_allclose(runs[k].x, ref.x, rtol=1e-12)
        np.testing.assert_allclose(runs[k].history.params, ref.history.params, rtol=1e-12)
        assert runs[k].history.step.tolist() == ref.history.step.tolist()
        assert runs[k].settings["seed"] == seeds[k] and runs[k].settings["batch_size"] == 7


EVERY_RULE = [
    (gf.gd(0.001), {}, "float64"),
    (gf.gd(line_search=True), None, "float64"),  # the line search takes no rate: the runs differ in their seeds
    (gf.momentum(0.01, variant="heavy-ball"), {"beta": [0.0, 0.5, 0.9]}, "float64"),
    # the look-ahead forms take a second gradient a step: a lane can round its last bit otherwise
    (gf.nesterov(0.05), {"beta": [0.5, 0.9, 0.95]}, "float64"),
    (gf.nesterov(0.05, variant="book"), {"beta": [0.5, 0.9, 0.95]}, "float64"),
    (gf.nesterov(0.05, variant="torch"), {"beta": [0.5, 0.9, 0.95]}, "float64"),
    (gf.normalized(0.05), {"eps": [1e-8, 1e-3, 0.0]}, "float64"),
    (gf.adam(0.1, variant="standard"), {"gamma": [0.9, 0.99, 0.999], "eps": [1e-8, 1e-4, 0.0]}, "float64"),
    (gf.adam(0.1), {"beta": [0.5, 0.9, 0.99]}, "float32"),
    (gf.rmsprop(0.01), {"gamma": [0.5, 0.9, 0.99]}, "float64"),
    (gf.adagrad(0.1), {"eps": [1e-10, 1e-3, 0.0]}, "float64"),
    (gf.adamw(0.01), {"weight_decay": [0.0, 0.01, 0.5]}, "float64"),
]


@pytest.mark.slow
@pytest.mark.parametrize("optimizer, numbers, dtype", EVERY_RULE,
                         ids=[f"{o.name}-{o.variant}-{d}" + ("-ls" if o.line_search else "") for o, _, d in EVERY_RULE])
def test_every_rule_runs_in_lanes_as_alone(optimizer, numbers, dtype):
    lrs = [optimizer.lr.lr * f for f in (0.5, 1.0, 2.0)]
    fitter = gf.Fitter("gabor", "normal", optimizer, steps=STEPS, tol=0, dtype=dtype)
    runs = fitter(GABOR, seed=SEEDS, **({} if numbers is None else {"lr": lrs, **numbers}))
    rtol = 1e-12 if dtype == "float64" else 1e-6
    for k in range(3):
        own = {} if numbers is None else {"lr": lrs[k], **{name: values[k] for name, values in numbers.items()}}
        ref = alone(optimizer.with_values(**own), seed=SEEDS[k], steps=STEPS, tol=0, dtype=dtype)
        np.testing.assert_allclose(runs[k].history.params, ref.history.params, rtol=rtol)
        np.testing.assert_allclose(runs[k].x, ref.x, rtol=rtol)
        assert runs[k].optimizer == ref.optimizer and runs[k].settings["dtype"] == dtype


def test_one_number_for_all_runs_is_the_fit_with_that_number():
    fitter = gf.Fitter("gabor", "normal", gf.adam(0.1), steps=STEPS, tol=0)
    one = fitter(GABOR, lr=0.03, beta=0.8)
    assert isinstance(one, gf.FitResult)
    assert_same_fit(one, alone(gf.adam(0.03, beta=0.8), steps=STEPS, tol=0))
    assert one.optimizer == gf.adam(0.03, beta=0.8).to_dict()


# -- the checked problem --------------------------------------------------------------------------------


def test_the_same_data_object_reuses_the_checked_problem():
    fitter = gf.Fitter("gabor", "normal", gf.adam(0.1), steps=STEPS, tol=0)
    problem = fitter.problem(GABOR)
    assert fitter.problem(GABOR) is problem
    fitter(GABOR, lr=LRS)
    assert fitter.problem(GABOR) is problem
    other = gf.gabor_data(1, n=30)
    assert fitter.problem(other) is not problem
    assert fitter.problem(other).data is not problem.data


def test_a_new_data_set_is_checked_again():
    fitter = gf.Fitter("gabor", "normal", gf.adam(0.1), steps=STEPS, tol=0)
    problem = fitter.problem(GABOR)
    with pytest.raises(GradfitError, match="NaN"):
        fitter((np.linspace(-1, 1, 5), np.array([1.0, np.nan, 0.0, 0.0, 0.0])))
    with pytest.raises(GradfitError, match="cannot take inputs with 2 column"):
        fitter((np.zeros((5, 2)), np.zeros(5)))
    assert fitter.problem(GABOR) is problem  # a refused data set leaves the checked one in place


# -- lists of numbers and seeds -----------------------------------------------------------------------------


def test_seeds_without_init_start_each_run_at_the_models_start_for_its_seed():
    model = gf.gabor()
    runs = gf.Fitter("gabor", "normal", gf.sgd(0.001), steps=STEPS, tol=0)(GABOR, seed=[0, 2, 7])
    for k, seed in enumerate([0, 2, 7]):
        np.testing.assert_array_equal(runs[k].history.params[0], model.default_init(seed))
        assert runs[k].settings["seed"] == seed
    assert len({tuple(r.history.params[0]) for r in runs}) == 3  # the seeds' starts differ


def test_seeds_with_one_init_start_every_run_there():
    runs = gf.Fitter("gabor", "normal", gf.sgd(0.001), steps=STEPS, tol=0)(GABOR, init={"phi0": 0.5, "phi1": 12.0},
                                                                          seed=[0, 1, 2])
    for run in runs:
        np.testing.assert_array_equal(run.history.params[0], [0.5, 12.0])


@pytest.mark.parametrize("call, fragments", [
    (dict(lr=[0.1, 0.2], seed=[0, 1, 2]), ["different lengths", "2, 3"]),
    (dict(lr=[0.1, 0.2, 0.3], beta=[0.5, 0.9]), ["different lengths", "2, 3"]),
    (dict(lr=[0.1, 0.2], init=[[0.0, 10.0], [1.0, 10.0], [2.0, 10.0]]), ["different lengths", "2, 3"]),
    (dict(lr=[0.1, -1.0]), ["lr", "positive", "-1", "run 1"]),
    (dict(lr=[0.1, np.nan]), ["lr", "run 1"]),
    (dict(beta=[0.5, 1.0]), ["beta", "[0, 1)", "run 1"]),
    (dict(beta=-0.1), ["beta", "[0, 1)"]),
    (dict(gamma=[0.5, 0.9]), ["momentum takes no gamma", "lr, beta"]),
    (dict(lr=[[0.1, 0.2]]), ["one number, or a list"]),
    (dict(seed=[0, -1]), ["seed", "whole number >= 0"]),
], ids=["lr-vs-seed", "lr-vs-beta", "lr-vs-starts", "negative-lr", "nan-lr", "beta-1", "beta-scalar", "unknown",
        "2d", "negative-seed"])
def test_bad_lists_are_refused_before_anything_runs(call, fragments):
    fitter = gf.Fitter("gabor", "normal", gf.momentum(0.1), steps=STEPS, tol=0)
    with pytest.raises(GradfitError) as caught:
        fitter(GABOR, **call)
    for fragment in fragments:
        assert fragment in str(caught.value)


def test_second_order_methods_and_polish_take_no_lists():
    with pytest.raises(GradfitError, match="^lm takes no lr: it has no learning rate"):
        gf.Fitter("gabor", "normal", "lm")(GABOR, lr=[0.1, 0.2])
    with pytest.raises(GradfitError, match="^polish finishes one start"):
        gf.Fitter("gabor", "normal", "adam", polish=True)(GABOR, lr=[0.1, 0.2])


def test_sgd_has_no_gamma():
    with pytest.raises(GradfitError, match="^sgd takes no gamma; its numbers are lr$"):
        gf.Fitter("gabor", "normal", "sgd", steps=10)(GABOR, gamma=[0.9, 0.99])


# -- schedules ----------------------------------------------------------------------------------------------


def test_step_decay_factors_as_a_list_equal_each_schedule_alone():
    factors = [0.1, 0.5, 1.0]
    fitter = gf.Fitter("gabor", "normal", gf.adam(gf.step_decay(0.1, 0.5, 20)), steps=STEPS, tol=0)
    runs = fitter(GABOR, factor=factors, lr=[0.05, 0.1, 0.2])
    for k, (factor, lr) in enumerate(zip(factors, [0.05, 0.1, 0.2])):
        ref = alone(gf.adam(gf.step_decay(lr, factor, 20)), steps=STEPS, tol=0)
        assert_same_fit(runs[k], ref)
        np.testing.assert_array_equal(runs[k].history.lr, ref.history.lr)
        assert runs[k].optimizer["schedule"] == {"kind": "step", "lr": lr, "warmup_steps": 0, "factor": factor,
                                                 "every": 20}
    # the rates the lanes used are the schedule's: α·factor^⌊t/20⌋
    t = runs[0].history.step[:-1]
    np.testing.assert_allclose(runs[0].history.lr[:-1], 0.05 * 0.1 ** (t // 20), rtol=1e-15)


def test_exponential_rates_as_a_list_equal_each_schedule_alone():
    rates = [0.9, 0.99, 1.0]
    fitter = gf.Fitter("gabor", "normal", gf.sgd(gf.exponential(0.01, 0.99)), steps=STEPS, tol=0)
    runs = fitter(GABOR, rate=rates)
    for k, rate in enumerate(rates):
        ref = alone(gf.sgd(gf.exponential(0.01, rate)), steps=STEPS, tol=0)
        assert_same_fit(runs[k], ref)
        assert runs[k].optimizer["schedule"]["rate"] == rate


def test_a_rate_outside_its_range_is_refused():
    fitter = gf.Fitter("gabor", "normal", gf.sgd(gf.exponential(0.01, 0.99)), steps=10)
    with pytest.raises(GradfitError, match=r"rate .*\(0, 1\].* 1\.5 \(run 1\)"):
        fitter(GABOR, rate=[0.9, 1.5])


COUNTS = [0, 1, 2, 7, 13, 49, 50, 51, 200, 10_000]


def test_schedule_at_equals_optax():
    with jax.enable_x64(True):
        cases = [
            (gf.exponential(0.3, 0.97), {"lr": 0.3, "rate": 0.97}, optax.exponential_decay(0.3, 1, 0.97)),
            (gf.exponential(0.3, 0.97), {"lr": 0.02, "rate": 0.5}, optax.exponential_decay(0.02, 1, 0.5)),
            (gf.step_decay(0.3, 0.5, 7), {"lr": 0.1, "factor": 0.25},
             optax.exponential_decay(0.1, 7, 0.25, staircase=True)),
            (gf.cosine(0.3, 50), {"lr": 0.3, "floor": 0.0}, optax.cosine_decay_schedule(0.3, 50)),
            (gf.cosine(0.3, 50, 0.1), {"lr": 0.7, "floor": 0.2}, optax.cosine_decay_schedule(0.7, 50, alpha=0.2)),
        ]
        for schedule, values, reference in cases:
            assert set(values) == set(schedule.values)
            for t in COUNTS:
                want = float(reference(t))
                assert float(schedule.at(t, values)) == pytest.approx(want, rel=1e-15, abs=1e-300), (schedule, t)
            if values == schedule.values:  # called plainly, the schedule uses its own numbers
                assert [float(schedule(t)) for t in COUNTS] == [float(schedule.at(t, values)) for t in COUNTS]


def test_optimizer_values_skeleton_and_with_values():
    opt = gf.adam(gf.step_decay(0.05, 0.5, 30), beta=0.8)
    assert opt.values == {"lr": 0.05, "factor": 0.5, "beta": 0.8, "gamma": 0.999, "eps": 1e-8}
    other = opt.with_values(lr=0.2, factor=0.1, gamma=0.9)
    assert other.values == {"lr": 0.2, "factor": 0.1, "beta": 0.8, "gamma": 0.9, "eps": 1e-8}
    assert other.lr.settings == (("factor", 0.1), ("every", 30))  # the whole-number setting stays
    assert other.skeleton == opt.skeleton  # numbers differ, the compiled shape does not
    assert gf.adam(0.1, variant="standard").skeleton != gf.adam(0.1).skeleton
    with pytest.raises(GradfitError, match="^adam takes no rate"):
        opt.with_values(rate=0.9)
    with pytest.raises(GradfitError, match="factor"):
        opt.with_values(factor=2.0)


# -- monitors -------------------------------------------------------------------------------------------------

# Monitors are called between compiled chunks of 2,048 steps: these fits run past the first.
MONITOR_LRS = [0.01, 0.02, 0.05, 0.1]


def test_a_monitor_stops_the_runs_it_returns_true_for():
    fitter = gf.Fitter("gabor", "normal", gf.adam(0.1), steps=2500, tol=0)
    calls = []

    def monitor(steps, losses):
        calls.append((steps, np.array(losses)))
        return np.array([True, False, True, False])

    runs = fitter(GABOR, lr=MONITOR_LRS, monitor=monitor)
    refs = [alone(gf.adam(lr), steps=2500, tol=0) for lr in MONITOR_LRS]
    assert len(calls) == 1
    steps, losses = calls[0]
    assert steps == 2048 and losses.shape == (4,)
    # each run's latest recorded loss: the row at step 2047, before the chunk's last update
    np.testing.assert_allclose(losses, [ref.history.loss[2047] for ref in refs], rtol=1e-12)
    for k in (0, 2):
        run = runs[k]
        assert run.status == "stopped" and run.steps == 2047 < 2500
        assert run.stopped.startswith("stopped by its monitor after 2047 steps")
        assert run.history.step[-1] == 2047 and len(run.history.step) == 2048
        np.testing.assert_array_equal(run.history.params, refs[k].history.params[:2048])
        np.testing.assert_array_equal(run.x, refs[k].history.params[2047])  # it ends at its last recorded row
        assert run.loss == run.history.loss[-1] == losses[k]
    for k in (1, 3):
        assert runs[k].status == "max_steps" and runs[k].steps == 2500
        assert_same_fit(runs[k], refs[k])


def test_a_monitor_that_stops_the_last_runs_stops_them_all():
    fitter = gf.Fitter("gabor", "normal", gf.adam(0.1), steps=4200, tol=0)
    calls = []

    def monitor(steps, losses):
        calls.append((steps, np.array(losses)))
        return [True, False, False, False] if len(calls) == 1 else True

    runs = fitter(GABOR, lr=MONITOR_LRS, monitor=monitor)
    assert [c[0] for c in calls] == [2048, 4096]
    assert all(c[1].shape == (4,) for c in calls)
    assert calls[1][1][0] == calls[0][1][0]  # a stopped run keeps its last recorded loss
    assert [r.status for r in runs] == ["stopped"] * 4
    assert [r.steps for r in runs] == [2047, 4095, 4095, 4095]
    ref = alone(gf.adam(MONITOR_LRS[1]), steps=4200, tol=0)
    np.testing.assert_array_equal(runs[1].x, ref.history.params[4095])


def test_a_monitor_returning_nothing_stops_nothing_and_one_chunk_never_asks():
    fitter = gf.Fitter("gabor", "normal", gf.adam(0.1), steps=2500, tol=0)
    runs = fitter(GABOR, lr=MONITOR_LRS, monitor=lambda steps, losses: None)
    assert [r.status for r in runs] == ["max_steps"] * 4
    calls = []
    short = gf.Fitter("gabor", "normal", gf.adam(0.1), steps=STEPS, tol=0)
    short(GABOR, lr=LRS, monitor=lambda steps, losses: calls.append(steps) or True)
    assert calls == []


def test_a_monitor_answering_for_the_wrong_number_of_runs_is_told_so():
    fitter = gf.Fitter("gabor", "normal", gf.adam(0.1), steps=2500, tol=0)
    with pytest.raises(GradfitError, match="each of the 4 runs"):
        fitter(GABOR, lr=MONITOR_LRS, monitor=lambda steps, losses: [True, False, True])


def test_a_monitor_stops_a_single_run_too():
    fitter = gf.Fitter("gabor", "normal", gf.adam(0.1), steps=2500, tol=0)
    seen = []
    run = fitter(GABOR, monitor=lambda steps, losses: seen.append(np.shape(losses)) or True)
    assert seen == [(1,)]
    assert run.status == "stopped" and run.steps == 2047


# -- the public name ------------------------------------------------------------------------------------------


def test_fitter_is_exported():
    from gradfit.fitting import Fitter

    assert gf.Fitter is Fitter
    assert "Fitter" in gf.__all__


# -- one compile --------------------------------------------------------------------------------------


def test_fits_differing_in_their_numbers_share_one_compiled_loop(compiles):
    real, plans = compiles
    for lr, beta in ((0.01, 0.9), (0.05, 0.5), (0.3, 0.99)):
        gf.fit("gabor", "normal", GABOR, gf.adam(lr, beta=beta), steps=STEPS, tol=0)
    info = real.cache_info()
    assert info.misses == 1 and info.hits == 2
    assert len(set(plans)) == 1
    run_chunk = real(plans[0]).chunk
    assert run_chunk._cache_size() == 1  # the numbers are arguments of the compiled chunk, not constants in it


def test_many_lanes_compile_one_chunk_for_every_call_and_data_set(compiles):
    real, plans = compiles
    fitter = gf.Fitter("gabor", "normal", gf.momentum(0.1), steps=STEPS, tol=0)
    fitter(GABOR, lr=np.geomspace(1e-3, 0.5, 16), beta=np.linspace(0, 0.95, 16), seed=np.arange(16) % 4)
    fitter(GABOR, lr=np.geomspace(1e-2, 0.1, 16), seed=np.arange(16))
    fitter(gf.gabor_data(1, n=30), lr=np.full(16, 0.1))  # another data set of the same shape
    assert real.cache_info().misses == 1
    assert len(set(plans)) == 1 and plans[0].starts == 16
    run_chunk = real(plans[0]).chunk
    assert run_chunk._cache_size() == 1

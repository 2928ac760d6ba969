"""Sweep spaces: parsing --grid and --optimizer, grid products, random draws, and bad input.

Expected grids come from numpy (``np.geomspace``, ``np.linspace``); random draws are checked
against their distributions (ranges, a Kolmogorov–Smirnov test of log-uniformity, the
whole-number log-uniform law), never against numbers copied from a run.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats

from gradfit.errors import GradfitError
from gradfit.optimizers import RULES, VARIANTS
from gradfit.sweeps.space import (
    CONTINUOUS,
    DISCRETE,
    WHOLE,
    Axis,
    Space,
    parse_grid,
    parse_grids,
    parse_optimizers,
)


def space(optimizers: str = "adam", *grids: str, **settings) -> Space:
    return Space(parse_optimizers(optimizers), parse_grids(grids), **settings)


# -- parsing one --grid --------------------------------------------------------------


def test_a_list_of_numbers():
    name, axis = parse_grid("beta=0.5, 0.9,0.99")
    assert name == "beta" == axis.name
    assert axis.grid_values() == (0.5, 0.9, 0.99)
    assert axis.size() == 3


@pytest.mark.parametrize(
    ("text", "values"),
    [
        ("variant=slides,standard", ("slides", "standard")),
        ("schedule=constant,cosine", ("constant", "cosine")),
    ],
)
def test_a_list_of_names(text, values):
    assert parse_grid(text)[1].grid_values() == values


def test_log_grid_is_geomspace():
    axis = parse_grid("lr=0.001:1:log:64")[1]
    np.testing.assert_array_equal(axis.grid_values(), np.geomspace(0.001, 1, 64))
    assert all(type(v) is float for v in axis.grid_values())


@pytest.mark.parametrize("text", ["init.phi0=-2:2:lin:5", "init.phi0=-2:2:5"])
def test_lin_grid_is_linspace(text):
    name, axis = parse_grid(text)
    assert name == "init.phi0"
    np.testing.assert_array_equal(axis.grid_values(), np.linspace(-2, 2, 5))


def test_one_point_is_lo():
    assert parse_grid("lr=0.01:1:log:1")[1].grid_values() == (0.01,)


@pytest.mark.parametrize("text", ["lr=0.001:1:log", "lr=0.001:1:lin", "lr=0.001:1"])
def test_a_range_without_a_count_is_a_distribution(text):
    axis = parse_grid(text)[1]
    assert axis.n is None
    with pytest.raises(GradfitError, match=r"has no count: give lr=0.001:1:\w+:64 for a grid, or use --random N"):
        axis.grid_values()


@pytest.mark.parametrize(
    ("text", "points"),
    [
        ("batch_size=1:100:log:10", np.geomspace(1, 100, 10)),
        ("steps=100:10000:log:7", np.geomspace(100, 10000, 7)),
        # More points than whole numbers in [10, 20]: each whole number once.
        ("warmup=10:20:lin:30", np.linspace(10, 20, 30)),
        ("every=1:1000:log:40", np.geomspace(1, 1000, 40)),
    ],
)
def test_whole_number_ranges_round_to_unique_whole_numbers(text, points):
    axis = parse_grid(text)[1]
    values = axis.grid_values()
    assert values == tuple(np.unique(np.round(points)).astype(int).tolist())
    assert all(type(v) is int for v in values)
    assert axis.size() == len(values) <= len(points)


def test_whole_number_lists_hold_ints():
    assert parse_grid("batch_size=8,16,32.0")[1].grid_values() == (8, 16, 32)
    assert all(type(v) is int for v in parse_grid("batch_size=8,16,32.0")[1].grid_values())


def test_every_known_name_parses_and_has_its_kind():
    for name in CONTINUOUS:
        assert parse_grid(f"{name}=0.5")[1].continuous
    for name in set(DISCRETE) - {"variant", "schedule"}:
        assert not parse_grid(f"{name}=5")[1].continuous
    assert parse_grid("init.φ0=1")[1].continuous
    assert set(WHOLE) < set(DISCRETE)


@pytest.mark.parametrize(
    ("text", "phrase"),
    [
        ("lr0.1", "has no '='"),
        ("=0.1", "names nothing before '='"),
        ("lr=", "gives lr no values"),
        ("lr= ", "gives lr no values"),
        ("lr=0.1,abc", "'abc' is not a number"),
        ("lr=0.1,,0.2", "has an empty value"),
        ("lr=0.001:abc:log:3", "'abc' is not a number"),
        ("lr=inf", "must be a finite number"),
        ("lr=0.001:1:log:0", "the count must be a whole number >= 1, not 0"),
        ("lr=0.001:1:log:-3", "the count must be a whole number >= 1"),
        ("lr=0.001:1:log:2.5", "the count must be a whole number >= 1"),
        ("lr=1:0.001:log:64", "lo 1 is above hi 0.001; give lr=0.001:1:log:64"),
        ("lr=0.1:0.1:lin:3", "lo equals hi"),
        ("init.phi0=0:1:log:3", "a log range needs lo > 0"),
        ("init.phi0=-1:1:log", "a log range needs lo > 0"),
        ("lr=0.001:1:cubic", "neither a scale (log, lin) nor a count"),
        ("lr=0.001:1:cubic:3", "the scale must be log or lin, not 'cubic'"),
        ("lr=1:2:3:4:5", "a range is lo:hi"),
        ("lr=0.1,0.2:0.3", "give a list"),
        ("lr=0.1,0.1", "lists 0.1 twice"),
        ("momentum=0.9", "unknown hyperparameter 'momentum'; known hyperparameters: batch_size, beta"),
        ("init.=1", "write init.<parameter>"),
        ("init.2x=1", "write init.<parameter>"),
        ("schedule=linear", "unknown schedule 'linear'; known schedules: constant, cosine, exponential, step"),
        ("batch_size=8,12.5", "batch_size takes whole numbers, not 12.5"),
        ("batch_size=1.5:64:log:4", "batch_size takes whole numbers, not 1.5"),
        # Each name's range of values.
        ("lr=0,0.1", "lr must be > 0, not 0"),
        ("lr=-0.1:1:lin:3", "lr must be > 0, not -0.1"),
        ("beta=0.5,1", "beta must lie in [0, 1), not 1"),
        ("gamma=-0.1,0.9", "gamma must lie in [0, 1), not -0.1"),
        ("eps=-1e-8", "eps must be >= 0"),
        ("weight_decay=-0.01", "weight_decay must be >= 0"),
        ("factor=0,0.5", "factor must lie in (0, 1], not 0"),
        ("rate=0.9:1.1:lin:3", "rate must lie in (0, 1], not 1.1"),
        ("floor=1.5", "floor must lie in [0, 1], not 1.5"),
        ("batch_size=0,8", "batch_size must be >= 1, not 0"),
        ("steps=0:100:lin:3", "steps must lie in [1, "),
        ("epochs=0", "epochs must be >= 1, not 0"),
        ("every=0", "every must lie in [1, "),
        ("decay_steps=0", "decay_steps must lie in [1, "),
        ("warmup=-1", "warmup must lie in [0, "),
        ("steps=3000000000", "the loop's step counter"),
    ],
)
def test_bad_grids_are_refused(text, phrase):
    with pytest.raises(GradfitError) as caught:
        parse_grid(text)
    assert phrase in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_name_swept_twice_is_refused():
    with pytest.raises(GradfitError, match="lr is swept twice"):
        parse_grids(["lr=0.1,0.2", "lr=0.001:1:log:3"])


@pytest.mark.parametrize(
    ("fields", "phrase"),
    [
        ({}, "holds values or a range"),
        ({"values": (0.1,), "lo": 0.1}, "holds values or a range"),
        ({"values": ()}, "lr has no values"),
        ({"lo": 0.1, "hi": 1.0, "scale": "exp"}, "the scale must be log or lin"),
    ],
)
def test_bad_axes_are_refused(fields, phrase):
    with pytest.raises(GradfitError, match=phrase):
        Axis("lr", **fields)


def test_axes_normalise_numpy_values():
    axis = Axis("lr", values=tuple(np.array([0.1, 0.2], np.float32)))
    assert all(type(v) is float for v in axis.values)
    assert Axis("batch_size", lo=np.int64(2), hi=np.float64(64), scale="log", n=np.int64(6)).grid_values() == tuple(
        np.unique(np.round(np.geomspace(2, 64, 6))).astype(int).tolist()
    )


# -- optimisers ------------------------------------------------------------------------


def test_parse_optimizers():
    assert parse_optimizers("adam,momentum:heavy-ball") == (("adam", None), ("momentum", "heavy-ball"))
    assert parse_optimizers(" sgd , nesterov : torch ") == (("sgd", None), ("nesterov", "torch"))


@pytest.mark.parametrize(
    ("text", "phrase"),
    [
        ("adamm", "unknown optimizer 'adamm'; known optimizers: adagrad, adam"),
        ("adam:heavy-ball", "unknown variant 'heavy-ball' of adam; known variants: slides, standard"),
        ("lm", "lm is a second-order method with no learning rate to sweep"),
        ("adam,newton", "newton is a second-order method"),
        ("", "has an empty entry"),
        ("adam,,sgd", "has an empty entry"),
        ("adam:", "has an empty entry"),
        ("adam,adam:slides", "adam:slides is listed twice"),
    ],
)
def test_bad_optimizers_are_refused(text, phrase):
    with pytest.raises(GradfitError) as caught:
        parse_optimizers(text)
    assert phrase in str(caught.value)


# -- grids -------------------------------------------------------------------------------


GRIDS = {
    "seeds only": ("adam", ()),
    "two optimizers, nothing else": ("adam,momentum", ()),
    "the CLI's example": ("adam,momentum", ("lr=0.001:1:log:64", "beta=0.5,0.9,0.99")),
    "whole and continuous": ("sgd", ("lr=0.01:1:log:5", "batch_size=1:100:log:10", "steps=100,1000")),
    "variants and starts": ("nesterov", ("variant=slides,torch", "init.phi0=-2:2:lin:5", "init.phi1=0,1")),
    "step schedule": ("adam", ("schedule=step", "factor=0.1:0.5:lin:3", "every=10:1000:log:5", "warmup=0,10")),
}


@pytest.mark.parametrize("case", sorted(GRIDS))
def test_a_grid_is_the_product_of_its_axes(case):
    optimizers, grids = GRIDS[case]
    sweep = space(optimizers, *grids, seeds=range(3))
    configurations = sweep.configurations()
    columns = [sweep.axes[name].grid_values() for name in sweep.axes]
    assert len(configurations) == sweep.size() == len(sweep.optimizers) * math.prod(map(len, columns))
    assert sweep.runs() == sweep.size() * 3
    # Every combination once; only the optimizer, its variant and the axes given; plain Python values.
    keys = [tuple(c.items()) for c in configurations]
    assert len(set(keys)) == len(keys)
    for configuration in configurations:
        assert list(configuration) == ["optimizer", "variant", *(n for n in sweep.axes if n != "variant")]
        assert all(type(v) in (float, int, str) for v in configuration.values())
        assert "seed" not in configuration
    for name, column in zip(sweep.axes, columns):
        assert {c[name] for c in configurations} == set(column)


def test_a_grid_varies_the_last_axis_fastest_and_fills_default_variants():
    sweep = space("adam,momentum:heavy-ball", "lr=0.1,0.2", "beta=0.5,0.9")
    assert sweep.configurations() == [
        {"optimizer": name, "variant": variant, "lr": lr, "beta": beta}
        for name, variant in (("adam", VARIANTS["adam"][0]), ("momentum", "heavy-ball"))
        for lr in (0.1, 0.2)
        for beta in (0.5, 0.9)
    ]


def test_a_seeds_only_sweep_has_one_configuration_per_optimizer():
    sweep = space("adamw", seeds=range(8))
    assert sweep.configurations() == [{"optimizer": "adamw", "variant": VARIANTS["adamw"][0]}]
    assert sweep.runs() == 8


def test_size_does_not_build_the_grid():
    # 10^5 points on each of three axes: 10^15 configurations, counted, never listed.
    n = 10**5
    sweep = space("adam", f"lr=0.0001:1:log:{n}", f"beta=0:0.99:lin:{n}", f"gamma=0.9:0.9999:log:{n}")
    assert sweep.size() == n**3


# -- random search -------------------------------------------------------------------------


def test_random_draws_lie_in_their_ranges():
    sweep = space("adam", "lr=0.0001:1:log", "beta=0.5:0.99", "batch_size=1:512:log", "steps=10:20:lin",
                  "eps=1e-8,1e-6", random=500, random_seed=1)
    configurations = sweep.configurations()
    assert len(configurations) == sweep.size() == 500
    for c in configurations:
        assert 0.0001 <= c["lr"] <= 1 and 0.5 <= c["beta"] <= 0.99
        assert type(c["batch_size"]) is int and 1 <= c["batch_size"] <= 512
        assert type(c["steps"]) is int and 10 <= c["steps"] <= 20
        assert c["eps"] in (1e-8, 1e-6)
    # Whole-number lin draws reach both ends.
    assert {c["steps"] for c in configurations} == set(range(10, 21))


def test_log_uniform_draws_are_uniform_in_log():
    lo, hi = 1e-4, 1.0
    draws = np.array(parse_grid(f"lr={lo}:{hi}:log")[1].sample(np.random.default_rng(7), 4000))
    uniform_in_log = stats.uniform(np.log(lo), np.log(hi) - np.log(lo))
    assert stats.kstest(np.log(draws), uniform_in_log.cdf).pvalue > 0.01
    # The test can tell: uniform draws on [lo, hi] are far from uniform in log.
    linear = np.array(parse_grid(f"lr={lo}:{hi}:lin")[1].sample(np.random.default_rng(7), 4000))
    assert stats.kstest(np.log(linear), uniform_in_log.cdf).pvalue < 1e-6
    assert stats.kstest(linear, stats.uniform(lo, hi - lo).cdf).pvalue > 0.01


def test_whole_number_log_draws_follow_the_log_uniform_law():
    lo, hi, n = 1, 8, 20000
    draws = np.array(parse_grid(f"batch_size={lo}:{hi}:log")[1].sample(np.random.default_rng(3), n))
    k = np.arange(lo, hi + 1)
    expected = np.log((k + 1) / k) / np.log((hi + 1) / lo)
    np.testing.assert_allclose(expected.sum(), 1.0)
    observed = np.bincount(draws, minlength=hi + 1)[lo:]
    assert stats.chisquare(observed, expected * n).pvalue > 0.01


def test_lists_and_optimizers_are_drawn_uniformly():
    n = 3000
    sweep = space("adam,momentum,sgd", "schedule=constant,cosine", random=n, random_seed=5)
    configurations = sweep.configurations()
    for key, choices in (("optimizer", ("adam", "momentum", "sgd")), ("schedule", ("constant", "cosine"))):
        counts = [sum(c[key] == choice for c in configurations) for choice in choices]
        assert stats.chisquare(counts).pvalue > 0.01
    assert all(c["variant"] == VARIANTS[c["optimizer"]][0] for c in configurations)


def test_random_search_is_reproducible_by_seed():
    grids = ("lr=0.001:1:log", "beta=0.5,0.9,0.99", "batch_size=8:256:log")
    first = space("adam,momentum", *grids, random=50, random_seed=11).configurations()
    assert first == space("adam,momentum", *grids, random=50, random_seed=11).configurations()
    assert first != space("adam,momentum", *grids, random=50, random_seed=12).configurations()
    # The order the options came in does not change the draws.
    assert first == [
        {k: c[k] for k in first[0]}
        for c in space("adam,momentum", *reversed(grids), random=50, random_seed=11).configurations()
    ]


def test_random_search_takes_grid_ranges_with_counts_too():
    sweep = space("adam", "lr=0.001:1:log:64", random=20)
    assert all(0.001 <= c["lr"] <= 1 for c in sweep.configurations())


# -- the space's checks -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("optimizers", "grids", "settings", "phrase"),
    [
        ("sgd", ("beta=0.5,0.9",), {}, "sgd takes no beta; it takes lr"),
        ("gd", ("eps=1e-8",), {}, "gd takes no eps; it takes lr"),
        ("adam,momentum", ("gamma=0.9,0.99",), {}, "momentum takes no gamma; it takes lr, beta"),
        ("adagrad,adamw", ("weight_decay=0.01",), {}, "adagrad takes no weight_decay; it takes lr, eps"),
        ("adam,momentum", ("variant=slides,standard",), {}, "momentum has no variant 'standard'"),
        ("adam:standard", ("variant=slides,standard",), {}, "adam:standard fixes the variant"),
        ("adam", ("steps=100,1000", "epochs=1,10"), {}, "steps and epochs are both swept"),
        ("adam", ("rate=0.9,0.99",), {}, "rate is a setting of the exponential schedule only"),
        ("adam", ("factor=0.5",), {"schedule": "cosine"}, "factor is a setting of the step schedule only"),
        ("adam", ("every=10,100",), {}, "every is a setting of the step schedule only"),
        ("adam", ("floor=0,0.1", "schedule=cosine,step"), {}, "floor is a setting of the cosine schedule only"),
        ("adam", ("decay_steps=100",), {"schedule": "step"}, "decay_steps is a setting of the cosine schedule"),
        ("adam", ("schedule=step,cosine",), {"schedule": "step"}, "the schedule is both fixed (step) and swept"),
        ("adam", (), {"schedule": "linear"}, "unknown schedule 'linear'"),
        ("adam", ("lr=0.001:1:log",), {}, "lr=0.001:1:log has no count"),
        ("adam", (), {"random": 10}, "random search has nothing to draw"),
        ("adam", ("lr=0.1,1",), {"random": 0}, "the number of random draws must be a whole number >= 1"),
        ("adam", ("lr=0.1,1",), {"random": 2.5}, "the number of random draws must be a whole number"),
        ("adam", ("lr=0.1,1",), {"random": 5, "random_seed": -1}, "the random seed must be a whole number >= 0"),
        ("adam", (), {"seeds": ()}, "no seeds"),
        ("adam", (), {"seeds": 8}, "for 8 seeds give range(8)"),
        ("adam", (), {"seeds": (0, -1)}, "seeds must be >= 0"),
        ("adam", (), {"seeds": (1, 1)}, "a seed is listed twice"),
        ("adam", (), {"seeds": (0.5,)}, "seeds must be whole numbers"),
    ],
)
def test_bad_spaces_are_refused(optimizers, grids, settings, phrase):
    with pytest.raises(GradfitError) as caught:
        space(optimizers, *grids, **settings)
    assert phrase in str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("optimizers", "axes", "phrase"),
    [
        ((), {}, "no optimizer to sweep"),
        ((("lm", None),), {}, "lm is a second-order method"),
        ((("adam", None),), {"beta": Axis("gamma", values=(0.9,))}, "the axis under 'beta' sweeps 'gamma'"),
        ((("adam", None),), {"lr": "0.1,0.2"}, "must be an Axis"),
    ],
)
def test_bad_spaces_built_by_hand_are_refused(optimizers, axes, phrase):
    with pytest.raises(GradfitError, match=phrase):
        Space(optimizers, axes)


def test_every_optimizer_takes_its_own_hyperparameters():
    for name, rule in RULES.items():
        grids = [f"{key}=0.5" for key in rule.defaults if key in ("beta", "gamma", "eps", "weight_decay")]
        assert space(name, "lr=0.1", *grids).size() == 1


@pytest.mark.parametrize(
    ("grids", "settings"),
    [
        (("factor=0.1,0.5", "every=10,100"), {"schedule": "step"}),
        (("schedule=exponential", "rate=0.9,0.99"), {}),
        (("floor=0,0.1", "decay_steps=100,1000"), {"schedule": "cosine"}),
        (("warmup=0,10", "schedule=constant,step,cosine"), {}),
    ],
)
def test_schedule_settings_go_with_their_schedule(grids, settings):
    sweep = space("adam", *grids, **settings)
    assert len(sweep.configurations()) == sweep.size()


# -- description ----------------------------------------------------------------------------------


def test_describe_is_json_and_tells_sweeps_apart():
    grids = ("lr=0.001:1:log:8", "beta=0.5,0.9", "batch_size=8:64:log:4")
    description = space("adam,momentum", *grids, seeds=range(4)).describe()
    assert json.loads(json.dumps(description)) == description
    assert description["search"] == "grid" and description["size"] == 2 * 8 * 2 * 4
    # "adam" and "adam:slides" are the same sweep; a grid's random_seed plays no part.
    assert space("adam:slides,momentum", *grids, seeds=range(4), random_seed=9).describe() == description
    assert space("adam,momentum", *grids, seeds=range(5)).describe() != description
    assert space("adam,momentum", "lr=0.001:1:log:9", *grids[1:], seeds=range(4)).describe() != description
    drawn = space("adam", *grids, random=10, random_seed=3).describe()
    assert json.loads(json.dumps(drawn)) == drawn
    assert (drawn["search"], drawn["random"], drawn["random_seed"]) == ("random", 10, 3)
    assert space("adam", *grids, random=10, random_seed=4).describe() != drawn

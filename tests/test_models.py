"""Models: parameter names, order and shapes, the flat vector, outputs against the
formulas in REFERENCE.md §2, and finite-difference gradients of L[φ] for every model
under every loss that suits its outputs."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradfit as gf
from gradfit.errors import GradfitError
from gradfit.models import output_shape

# -- names, order, shapes ------------------------------------------------------------


@pytest.mark.parametrize("d", [1, 2, 5])
def test_linear_names_are_intercept_then_one_per_column(d):
    model = gf.linear(d)
    assert model.param_names == tuple(f"phi{i}" for i in range(d + 1))
    assert model.flat_names == model.param_names
    assert model.size == d + 1
    assert all(shape == () for _, shape in model.shapes)


def test_linear_coefficients_follow_column_order(x64, rng):
    x = rng.normal(size=(7, 3))
    model = gf.linear(3)
    for j in range(3):
        params = {"phi0": 0.0, "phi1": 0.0, "phi2": 0.0, "phi3": 0.0, f"phi{j + 1}": 1.0}
        np.testing.assert_array_equal(model(jnp.asarray(x), params), x[:, j])
    params = {"phi0": 0.3, "phi1": -1.0, "phi2": 2.0, "phi3": 0.5}
    expected = 0.3 + x @ np.array([-1.0, 2.0, 0.5])
    np.testing.assert_allclose(model(jnp.asarray(x), params), expected, rtol=1e-13)


def test_linear_one_input_is_the_slides_line(x64, rng):
    x = rng.uniform(0, 2, 9)
    out = gf.linear()(jnp.asarray(x), {"phi0": 0.6, "phi1": -0.2})
    np.testing.assert_allclose(out, 0.6 - 0.2 * x, rtol=1e-13)


def test_linear_needs_an_input():
    with pytest.raises(GradfitError, match="at least one input"):
        gf.linear(0)


def test_shallow_names_and_shapes():
    model = gf.shallow(width=4, n_inputs=3, n_outputs=2)
    assert model.shapes == (
        ("beta0", (4,)),
        ("omega0", (4, 3)),
        ("beta1", (2,)),
        ("omega1", (2, 4)),
    )
    assert model.n_outputs == 2
    assert model.size == 4 + 12 + 2 + 8
    names = model.flat_names
    assert len(names) == model.size
    assert names[:5] == ("beta0[0]", "beta0[1]", "beta0[2]", "beta0[3]", "omega0[0,0]")
    assert names[4:7] == ("omega0[0,0]", "omega0[0,1]", "omega0[0,2]")  # row-major, as ravel
    assert names[-1] == "omega1[1,3]"


def test_shallow_accepts_whole_floats_and_rejects_others():
    assert gf.shallow(width=3.0).shapes == gf.shallow(width=3).shapes
    for bad in ({"width": 0}, {"width": 2.5}, {"n_inputs": -1}, {"n_outputs": 0}):
        with pytest.raises(GradfitError, match="positive whole"):
            gf.shallow(**bad)


def test_shallow_is_the_books_network(x64, rng):
    model = gf.shallow(width=5, n_inputs=2, n_outputs=3)
    params = model.unravel(jnp.asarray(rng.normal(size=model.size)))
    x = rng.normal(size=(6, 2))
    p = {k: np.asarray(v) for k, v in params.items()}
    hidden = np.maximum(0.0, p["beta0"][None, :] + x @ p["omega0"].T)
    expected = p["beta1"][None, :] + hidden @ p["omega1"].T
    np.testing.assert_allclose(model(jnp.asarray(x), params), expected, rtol=1e-12)
    one = gf.shallow(width=5, n_inputs=2, n_outputs=1)
    out = one(jnp.asarray(x), one.unravel(jnp.ones(one.size)))
    assert out.shape == (6,)


def test_shallow_default_start_is_he_from_the_seed():
    model = gf.shallow(width=200, n_inputs=4)
    a, b = model.default_init(1), model.default_init(1)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, model.default_init(2))
    p = model.unravel(jnp.asarray(a))
    assert np.all(np.asarray(p["beta0"]) == 0) and np.all(np.asarray(p["beta1"]) == 0)
    # He: omega0 ~ N(0, 2 / fan_in); 800 draws put the sample sd within 10% of sqrt(1/2)
    assert np.std(np.asarray(p["omega0"])) == pytest.approx(np.sqrt(2 / 4), rel=0.1)


# -- Gabor ---------------------------------------------------------------------------


@pytest.mark.parametrize("s", [8.0, 32.0, 3.5])
def test_gabor_is_the_formula(x64, rng, s):
    x = rng.uniform(-15, 15, 11)
    phi0, phi1 = 0.6, -0.2
    z = phi0 + 0.06 * phi1 * x
    expected = np.sin(z) * np.exp(-(z**2) / s)
    out = gf.gabor(s)(jnp.asarray(x), {"phi0": phi0, "phi1": phi1})
    np.testing.assert_allclose(out, expected, rtol=1e-13)


def test_gabor_default_is_the_slides_s_and_s_changes_outputs(x64):
    assert dict(gf.gabor().settings)["s"] == 8.0
    assert gf.gabor() == gf.gabor(8)
    assert gf.gabor(8) != gf.gabor(32)
    x = jnp.linspace(-15, 15, 31)
    params = {"phi0": 0.3, "phi1": 20.0}
    wide, narrow = gf.gabor(32)(x, params), gf.gabor(8)(x, params)
    assert not np.allclose(wide, narrow)
    # A wider envelope (larger s) shrinks |f| less: |f_32| >= |f_8| everywhere.
    assert np.all(np.abs(wide) >= np.abs(narrow) - 1e-15)


@pytest.mark.parametrize("s", [0.0, -1.0, float("nan")])
def test_gabor_rejects_a_bad_scale(s):
    with pytest.raises(GradfitError, match="positive"):
        gf.gabor(s)


# -- the flat vector -------------------------------------------------------------------


def _custom_arrays():
    def poly(x, p):
        return p["b"] + jnp.polyval(p["w"], x) * p["scale"][0, 0]

    return gf.custom(poly, {"w": np.array([0.5, -1.0, 2.0]), "b": 0.25, "scale": np.ones((1, 1))})


ROUND_TRIP_MODELS = {
    "linear1": lambda: gf.linear(),
    "linear4": lambda: gf.linear(4),
    "gabor": lambda: gf.gabor(32),
    "shallow": lambda: gf.shallow(3, 2, 2),
    "custom_arrays": _custom_arrays,
}


@pytest.mark.parametrize("name", list(ROUND_TRIP_MODELS))
def test_ravel_unravel_round_trip(x64, rng, name):
    model = ROUND_TRIP_MODELS[name]()
    flat = jnp.asarray(rng.normal(size=model.size))
    params = model.unravel(flat)
    assert tuple(params) == model.param_names
    assert tuple(np.shape(v) for v in params.values()) == tuple(shape for _, shape in model.shapes)
    np.testing.assert_array_equal(model.ravel(params), flat)
    # the flat names line up with the values they label
    for label, value in zip(model.flat_names, np.asarray(flat), strict=True):
        base, _, index = label.partition("[")
        arr = np.asarray(params[base])
        picked = arr[tuple(int(i) for i in index.rstrip("]").split(","))] if index else arr
        assert picked == value


def test_ravel_follows_the_models_order_not_the_dicts(x64):
    model = gf.linear(2)
    flat = model.ravel({"phi2": 3.0, "phi0": 1.0, "phi1": 2.0})
    np.testing.assert_array_equal(flat, [1.0, 2.0, 3.0])


def test_ravel_names_missing_unknown_and_misshapen_parameters():
    model = gf.shallow(2, 1, 1)
    good = {k: np.zeros(s) for k, s in model.shapes}
    with pytest.raises(GradfitError, match="missing: omega1"):
        model.ravel({k: v for k, v in good.items() if k != "omega1"})
    with pytest.raises(GradfitError, match="unknown: gamma"):
        model.ravel({**good, "gamma": 1.0})
    with pytest.raises(GradfitError, match=r"'omega0'.*needs shape \(2, 1\)"):
        model.ravel({**good, "omega0": np.zeros((1, 2))})


# -- custom models ----------------------------------------------------------------------


def test_custom_model_with_array_parameters(x64, rng):
    model = _custom_arrays()
    assert model.name == "poly"
    assert model.shapes == (("w", (3,)), ("b", ()), ("scale", (1, 1)))
    assert model.flat_names == ("w[0]", "w[1]", "w[2]", "b", "scale[0,0]")
    np.testing.assert_array_equal(model.default_init(), [0.5, -1.0, 2.0, 0.25, 1.0])
    x = rng.normal(size=8)
    out = model(jnp.asarray(x), model.unravel(jnp.asarray(model.default_init())))
    np.testing.assert_allclose(out, 0.25 + np.polyval([0.5, -1.0, 2.0], x), rtol=1e-13)


def test_custom_model_from_names_starts_at_zero():
    model = gf.custom(lambda x, p: p["a"] * x + p["c"], ["a", "c"], name="line")
    assert model.name == "line"
    assert model.param_names == ("a", "c")
    np.testing.assert_array_equal(model.default_init(), [0.0, 0.0])
    with pytest.raises(GradfitError, match="at least one parameter"):
        gf.custom(lambda x, p: x, [])


def test_custom_models_are_equal_when_their_functions_are():
    def f(x, p):
        return p["a"] * x

    assert gf.custom(f, ["a"]) == gf.custom(f, ["a"])
    assert gf.custom(f, ["a"]) != gf.custom(lambda x, p: p["a"] * x, ["a"])


def test_fit_returns_a_custom_models_arrays_in_their_shapes(rng):
    x = rng.uniform(-1, 1, 30)
    y = 1.0 - 2.0 * x + 0.5 * x**2
    model = gf.custom(lambda x, p: jnp.polyval(p["w"], x), {"w": np.zeros(3)}, name="quadratic")
    result = gf.fit(model, "normal", (x, y), gf.gd(0.01), steps=3000, tol=1e-10)
    assert result.params["w"].shape == (3,)
    np.testing.assert_allclose(result.params["w"], np.polyfit(x, y, 2), atol=1e-6)


@pytest.mark.parametrize("start", ["1", b"1", None, [1.0, "a"], {"v": 1}])
def test_custom_start_values_must_be_numbers(start):
    with pytest.raises(GradfitError, match="the start value of parameter 'a' of model 'line' is"):
        gf.custom(lambda x, p: p["a"] * x, {"a": start}, name="line")


def test_custom_start_values_must_be_finite():
    with pytest.raises(GradfitError, match="parameter 'b' of model 'line' is not finite"):
        gf.custom(lambda x, p: p["a"] * x, {"a": 1.0, "b": np.inf}, name="line")


def test_parameter_values_given_as_text_are_refused():
    with pytest.raises(GradfitError, match="parameter 'phi1' of model 'linear' is the text '2'"):
        gf.linear().vector({"phi0": 1.0, "phi1": "2"})


# -- the shape probe ---------------------------------------------------------------------


def _decay_np(x, p):
    return p["a"] * np.exp(-p["b"] * x)


def _decay_math(x, p):
    import math

    return p["a"] * math.exp(p["b"]) * x


def _decay_branch(x, p):
    return x * p["a"] if p["b"] > 0 else x


def _decay_missing(x, p):
    return p["a"] * jnp.exp(-p["k"] * x)


def _decay_bad_shapes(x, p):
    return jnp.dot(x, jnp.ones(5)) * p["a"]


@pytest.mark.parametrize(
    ("fn", "message"),
    [
        (_decay_np, r"model 'decay' calls numpy \(e.g. np.exp\) on traced values \(in test_models.py, line \d+: "
                    r"return p\[\"a\"\] \* np.exp\(-p\[\"b\"\] \* x\)\); write it with jax.numpy \(jnp.exp\)"),
        (_decay_math, r"model 'decay' needs a concrete number where it has a traced value \(in test_models.py"
                      r".*math.exp"),
        (_decay_branch, r"model 'decay' needs a concrete number.*if p\[\"b\"\] > 0"),
        (_decay_missing, r"model 'decay' reads parameter 'k', which is not among its parameters \(a, b\): add it to "
                         r"the starting values"),
        (_decay_bad_shapes, r"model decay cannot take inputs with 1 column\(s\) \(x of shape \(3,\)\).*TypeError: "
                            r"dot_general requires contracting dimensions to have the same shape"),
    ],
)
def test_output_shape_names_the_real_cause(fn, message):
    model = gf.custom(fn, {"a": 1.0, "b": 0.5}, name="decay")
    with pytest.raises(GradfitError, match=message):
        output_shape(model, (3,))


def test_output_shape_of_the_built_in_models():
    assert output_shape(gf.linear(2), (4, 2)).shape == (4,)
    assert output_shape(gf.shallow(5, 3, 2), (7, 3)).shape == (7, 2)
    assert output_shape(gf.custom(lambda x, p: jnp.stack([x, x * p["a"]], 1), ["a"]), (6,)).shape == (6, 2)
    with pytest.raises(GradfitError, match=r"model gabor\(s=8.0\) cannot take inputs with 2 column\(s\) "
                                           r"\(x of shape \(3, 2\)\): TypeError: cannot reshape"):
        output_shape(gf.gabor(), (3, 2))


def test_make_model_by_name():
    assert gf.make_model("gabor", s=32) == gf.gabor(32)
    assert gf.make_model("linear", n_inputs=2) == gf.linear(2)
    with pytest.raises(GradfitError, match="known models: gabor, linear, shallow"):
        gf.make_model("quadratic")


# -- finite-difference gradients of L[φ], models x losses ---------------------------------
#
# Central differences on Objective.value over the flat vector, against jax.grad, in
# float64. Each case draws its own inputs, targets in the loss's domain, and φ.


def _two_heads(x, p):  # a custom model with a mean and a scale output per example
    return jnp.stack([p["mean"][0] + p["mean"][1] * x, p["scale"][0] + p["scale"][1] * jnp.tanh(x)], axis=1)


def _softmax_regression(x, p):  # a custom model with K = 3 logits per example
    return x @ p["W"].T + p["b"]


def _rational(x, p):  # a custom model with a 1-D output and array parameters
    return p["a"] + x @ p["w"] / (1.0 + p["c"] ** 2)


# name -> (model, input columns, scale of x, φ draw)
MODELS = {
    "linear1": (lambda: gf.linear(), 1, 1.0, lambda r, m: r.normal(0, 0.5, m.size)),
    "linear3": (lambda: gf.linear(3), 3, 1.0, lambda r, m: r.normal(0, 0.5, m.size)),
    "gabor8": (lambda: gf.gabor(8), 1, 15.0, lambda r, m: r.normal(0, 1, 2) * [1, 10]),
    "gabor32": (lambda: gf.gabor(32), 1, 15.0, lambda r, m: r.normal(0, 1, 2) * [1, 10]),
    "shallow1": (lambda: gf.shallow(4, 2, 1), 2, 1.0, lambda r, m: r.normal(0, 0.7, m.size)),
    "custom1": (lambda: gf.custom(_rational, {"a": 0.0, "w": np.zeros(2), "c": 0.0}), 2, 1.0,
                lambda r, m: r.normal(0, 0.5, m.size)),
    "shallow2": (lambda: gf.shallow(4, 1, 2), 1, 1.0, lambda r, m: r.normal(0, 0.7, m.size)),
    "custom2": (lambda: gf.custom(_two_heads, {"mean": np.zeros(2), "scale": np.zeros(2)}, n_outputs=2), 1, 1.0,
                lambda r, m: np.array([0.2, -0.5, 1.5, 0.4]) + r.normal(0, 0.1, 4)),
    "shallow3": (lambda: gf.shallow(4, 2, 3), 2, 1.0, lambda r, m: r.normal(0, 0.7, m.size)),
    "custom3": (lambda: gf.custom(_softmax_regression, {"W": np.zeros((3, 2)), "b": np.zeros(3)}, n_outputs=3), 2,
                1.0, lambda r, m: r.normal(0, 0.7, m.size)),
}

# name -> (loss, target draw from (rng, n, classes))
LOSSES = {
    "normal": (lambda: gf.normal(), lambda r, n, k: r.normal(0, 1, n)),
    "normal_sigma": (lambda: gf.normal(sigma=0.7), lambda r, n, k: r.normal(0, 1, n)),
    "bernoulli": (lambda: gf.bernoulli(), lambda r, n, k: r.integers(0, 2, n).astype(float)),
    "poisson_exp": (lambda: gf.poisson("exp"), lambda r, n, k: r.poisson(1.5, n).astype(float)),
    "poisson_exp_full": (lambda: gf.poisson("exp", full=True), lambda r, n, k: r.poisson(1.5, n).astype(float)),
    "poisson_softplus": (lambda: gf.poisson("softplus"), lambda r, n, k: r.poisson(1.5, n).astype(float)),
    "poisson_softplus_full": (lambda: gf.poisson("softplus", full=True),
                              lambda r, n, k: r.poisson(1.5, n).astype(float)),
    "von_mises": (lambda: gf.von_mises(2.0), lambda r, n, k: r.uniform(-np.pi, np.pi, n)),
    "von_mises_full": (lambda: gf.von_mises(2.0, full=True), lambda r, n, k: r.uniform(-np.pi, np.pi, n)),
    "hetero_softplus": (lambda: gf.hetero_normal("softplus"), lambda r, n, k: r.normal(0, 1, n)),
    "hetero_square": (lambda: gf.hetero_normal("square"), lambda r, n, k: r.normal(0, 1, n)),
    "categorical": (lambda: gf.categorical(), lambda r, n, k: r.integers(0, k, n).astype(float)),
}

ONE_OUTPUT = ["linear1", "linear3", "gabor8", "gabor32", "shallow1", "custom1"]
ONE_OUTPUT_LOSSES = ["normal", "normal_sigma", "bernoulli", "poisson_exp", "poisson_exp_full", "poisson_softplus",
                     "poisson_softplus_full", "von_mises", "von_mises_full"]
CASES = (
    [(m, l) for m in ONE_OUTPUT for l in ONE_OUTPUT_LOSSES]
    + [(m, l) for m in ("shallow2", "custom2") for l in ("hetero_softplus", "hetero_square")]
    + [(m, "categorical") for m in ("shallow3", "custom3")]
)


def _steps(theta, h):
    """The 2P points θ ± h e_j, for central differences over the flat vector."""
    steps = h * np.eye(len(theta))
    return np.concatenate([theta + steps, theta - steps])


@pytest.mark.parametrize(("model_name", "loss_name"), CASES, ids=[f"{m}-{l}" for m, l in CASES])
def test_gradient_matches_finite_differences(x64, rng, model_name, loss_name):
    make_model, d, x_scale, draw_theta = MODELS[model_name]
    make_loss, draw_y = LOSSES[loss_name]
    model, loss = make_model(), make_loss()
    n = 25
    x = jnp.asarray(rng.uniform(-x_scale, x_scale, (n, d) if d > 1 else n))
    y = jnp.asarray(draw_y(rng, n, model.n_outputs))
    theta = np.asarray(draw_theta(rng, model), dtype=float)
    objective = gf.Objective(model, loss)

    @jax.jit  # one compile a case: eager dispatch of every op is slower than compiling
    def grad_and_values(t, points):
        return jax.grad(objective.value)(t, x, y), jax.vmap(lambda p: objective.value(p, x, y))(points)

    h = 1e-6
    grad, values = (np.asarray(a) for a in grad_and_values(jnp.asarray(theta), jnp.asarray(_steps(theta, h))))
    numeric = (values[: len(theta)] - values[len(theta):]) / (2 * h)
    assert grad.dtype == np.float64
    assert np.all(np.isfinite(grad))
    assert np.any(grad != 0)
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-7 * max(1.0, np.abs(grad).max()))


def test_mean_reduction_is_the_sum_over_the_count(x64, rng):
    x, y = jnp.asarray(rng.normal(size=(9, 2))), jnp.asarray(rng.poisson(2.0, 9).astype(float))
    theta = jnp.asarray(rng.normal(0, 0.3, 3))

    @jax.jit
    def value_and_grad(theta):
        both = [jax.value_and_grad(gf.Objective(gf.linear(2), gf.poisson(), r).value)(theta, x, y)
                for r in ("sum", "mean")]
        return tuple(both)

    (total, total_grad), (mean, mean_grad) = value_and_grad(theta)
    assert float(mean) == pytest.approx(float(total) / 9, rel=1e-14)
    np.testing.assert_allclose(mean_grad, total_grad / 9, rtol=1e-13)
    with pytest.raises(GradfitError, match="unknown reduction 'median'"):
        gf.Objective(gf.linear(2), gf.poisson(), "median")

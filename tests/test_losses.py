"""Losses: values against scipy.stats likelihoods, which constants they drop, stability
at extreme model outputs, and the checks on targets and on model output shapes."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special, stats

import gradfit as gf
from gradfit.errors import GradfitError

# Jitted helpers: one compile a call beats eager dispatch of every op, several-fold.


@functools.partial(jax.jit, static_argnums=0)
def _values(loss, f, y):
    return loss(jnp.asarray(f), jnp.asarray(y))


@functools.partial(jax.jit, static_argnums=0)
def _jit_value_and_grad(loss, f, y):
    return loss(f, y), jax.grad(lambda f: jnp.sum(loss(f, y)))(f)


def _value_and_grad(loss, f, y):
    """ℓ_i and ∂(Σℓ)/∂f at f, in the dtype JAX is set to (float64 under the x64 fixture)."""
    f, y = jnp.asarray(np.asarray(f, dtype=float)), jnp.asarray(np.asarray(y, dtype=float))
    values, grad = _jit_value_and_grad(loss, f, y)
    return np.asarray(values), np.asarray(grad)


# -- against scipy.stats ---------------------------------------------------------------
#
# name -> (loss, output draw f, target draw y, scipy's log-likelihood log Pr(y | f)).
# With the full NLL, loss == -logpdf; otherwise loss - c·(-logpdf) is constant in f.


def _onehot(y, k):
    return np.eye(k)[y.astype(int)]


def _multinomial_logpmf(f, y):
    counts, probs = _onehot(y, f.shape[1]), special.softmax(f, axis=1)
    return np.array([stats.multinomial.logpmf(c, 1, p) for c, p in zip(counts, probs, strict=True)])


REFERENCE = {
    "normal_sigma": (
        gf.normal(sigma=0.7), lambda r: r.normal(0, 2, 40), lambda r: r.normal(0, 2, 40),
        lambda f, y: stats.norm.logpdf(y, loc=f, scale=0.7),
    ),
    "hetero_softplus": (
        gf.hetero_normal("softplus"), lambda r: r.normal(0, 2, (40, 2)), lambda r: r.normal(0, 2, 40),
        lambda f, y: stats.norm.logpdf(y, loc=f[:, 0], scale=np.logaddexp(0.0, f[:, 1])),
    ),
    "hetero_square": (
        gf.hetero_normal("square"), lambda r: r.normal(0, 2, (40, 2)), lambda r: r.normal(0, 2, 40),
        lambda f, y: stats.norm.logpdf(y, loc=f[:, 0], scale=np.sqrt(f[:, 1] ** 2)),
    ),
    "bernoulli": (
        gf.bernoulli(), lambda r: r.normal(0, 3, 40), lambda r: r.integers(0, 2, 40).astype(float),
        lambda f, y: stats.bernoulli.logpmf(y, special.expit(f)),
    ),
    "categorical": (
        gf.categorical(), lambda r: r.normal(0, 3, (40, 4)), lambda r: r.integers(0, 4, 40).astype(float),
        _multinomial_logpmf,
    ),
    "poisson_exp_full": (
        gf.poisson("exp", full=True), lambda r: r.normal(0, 1.5, 40), lambda r: r.poisson(3.0, 40).astype(float),
        lambda f, y: stats.poisson.logpmf(y, np.exp(f)),
    ),
    "poisson_softplus_full": (
        gf.poisson("softplus", full=True), lambda r: r.normal(0, 3, 40), lambda r: r.poisson(3.0, 40).astype(float),
        lambda f, y: stats.poisson.logpmf(y, np.logaddexp(0.0, f)),
    ),
    "von_mises_full": (
        gf.von_mises(kappa=2.5, full=True), lambda r: r.uniform(-4, 4, 40), lambda r: r.uniform(-np.pi, np.pi, 40),
        lambda f, y: stats.vonmises.logpdf(y, 2.5, loc=f),
    ),
    "von_mises_full_large_kappa": (
        gf.von_mises(kappa=800.0, full=True), lambda r: r.uniform(-0.05, 0.05, 40),
        lambda r: r.uniform(-0.05, 0.05, 40),
        lambda f, y: stats.vonmises.logpdf(y, 800.0, loc=f),
    ),
}


@pytest.mark.parametrize("name", list(REFERENCE))
def test_full_nll_is_minus_scipys_log_likelihood(x64, rng, name):
    loss, draw_f, draw_y, logpdf = REFERENCE[name]
    f, y = draw_f(rng), draw_y(rng)
    value = np.asarray(_values(loss, f, y))
    assert value.shape == (40,)
    np.testing.assert_allclose(value, -logpdf(f, y), rtol=1e-10, atol=1e-12)


# name -> (loss without constants, its full version's log-likelihood, scale c, the dropped constant per example)
DROPPED = {
    "normal_least_squares": (
        gf.normal(), lambda f, y: stats.norm.logpdf(y, loc=f, scale=1.0), 2.0,
        lambda y: -np.log(2 * np.pi) * np.ones_like(y),  # (f-y)² = 2·NLL(σ=1) - log 2π
    ),
    "poisson_exp": (
        gf.poisson("exp"), lambda f, y: stats.poisson.logpmf(y, np.exp(f)), 1.0, lambda y: -special.gammaln(y + 1),
    ),
    "poisson_softplus": (
        gf.poisson("softplus"), lambda f, y: stats.poisson.logpmf(y, np.logaddexp(0.0, f)), 1.0,
        lambda y: -special.gammaln(y + 1),
    ),
    "von_mises": (
        gf.von_mises(kappa=2.5), lambda f, y: stats.vonmises.logpdf(y, 2.5, loc=f), 1.0,
        lambda y: -np.log(2 * np.pi * special.i0(2.5)) * np.ones_like(y),
    ),
}


@pytest.mark.parametrize("name", list(DROPPED))
def test_dropped_constants_do_not_depend_on_the_model_output(x64, rng, name):
    loss, logpdf, scale, constant = DROPPED[name]
    y = rng.poisson(3.0, 30).astype(float) if "poisson" in name else rng.uniform(-3, 3, 30)
    gaps = []
    for _ in range(3):  # three unrelated model outputs for the same targets
        f = rng.normal(0, 1.5, 30)
        gaps.append(np.asarray(_values(loss, f, y)) - scale * -logpdf(f, y))
    np.testing.assert_allclose(gaps[1], gaps[0], rtol=0, atol=1e-10)
    np.testing.assert_allclose(gaps[2], gaps[0], rtol=0, atol=1e-10)
    np.testing.assert_allclose(gaps[0], constant(y), rtol=1e-12, atol=1e-12)


def test_normal_pdf_from_the_loss(x64):
    f, y = jnp.array([-1.0, 0.4]), jnp.array([1.0, 0.4])
    density = np.exp(-np.asarray(_values(gf.normal(sigma=2.3), f, y)))
    np.testing.assert_allclose(density, stats.norm.pdf([1.0, 0.4], loc=[-1.0, 0.4], scale=2.3), rtol=1e-13)


# -- gradients that have a closed form ---------------------------------------------------


GRADIENTS = {  # ∂ℓ/∂f from the maths: the link's residuals
    "bernoulli": (gf.bernoulli(), lambda r: r.integers(0, 2, 20).astype(float), lambda f, y: special.expit(f) - y),
    "poisson_exp": (gf.poisson(), lambda r: r.poisson(2.0, 20).astype(float), lambda f, y: np.exp(f) - y),
    "normal": (gf.normal(), lambda r: r.normal(0, 1, 20), lambda f, y: 2 * (f - y)),
    "von_mises": (gf.von_mises(3.0), lambda r: r.uniform(-3, 3, 20), lambda f, y: -3.0 * np.sin(y - f)),
}


@pytest.mark.parametrize("name", list(GRADIENTS))
def test_gradient_in_the_output_is_the_links_residual(x64, rng, name):
    loss, draw_y, expected = GRADIENTS[name]
    f, y = rng.normal(0, 2, 20), draw_y(rng)
    _, grad = _value_and_grad(loss, f, y)
    np.testing.assert_allclose(grad, expected(f, y), rtol=1e-12, atol=1e-14)


def test_categorical_gradient_is_softmax_minus_onehot(x64, rng):
    f, y = rng.normal(0, 2, (20, 3)), rng.integers(0, 3, 20).astype(float)
    _, grad = _value_and_grad(gf.categorical(), f, y)
    np.testing.assert_allclose(grad, special.softmax(f, axis=1) - _onehot(y, 3), rtol=1e-12, atol=1e-14)


# -- stability: no log of 0, no overflow, finite gradients -------------------------------


def test_bernoulli_at_saturated_logits(x64):
    f = [1000.0, 1000.0, -1000.0, -1000.0]
    y = [1.0, 0.0, 1.0, 0.0]
    value, grad = _value_and_grad(gf.bernoulli(), f, y)
    # -log σ(1000) = 0 and -log(1 - σ(1000)) = 1000: the exact NLL is |f| when the label disagrees
    np.testing.assert_allclose(value, [0.0, 1000.0, 1000.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(grad, [0.0, 1.0, -1.0, 0.0], atol=1e-12)


def test_categorical_at_huge_logits(x64):
    f = [[1e4, 0.0, -1e4], [1e4, 0.0, -1e4], [1e4, 1e4, 0.0]]
    value, grad = _value_and_grad(gf.categorical(), f, [0.0, 2.0, 1.0])
    np.testing.assert_allclose(value, [0.0, 2e4, np.log(2.0)], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(grad, [[0, 0, 0], [1, 0, -1], [0.5, -0.5, 0]], atol=1e-12)


def test_categorical_at_huge_logits_in_float32(rng):
    f = jnp.asarray([[1e4, 0.0, -1e4], [-1e4, 1e4, 0.0]], dtype=jnp.float32)
    value, grad = _value_and_grad(gf.categorical(), f, [0.0, 0.0])
    assert np.all(np.isfinite(value)) and np.all(np.isfinite(grad))
    np.testing.assert_allclose(value, [0.0, 2e4], rtol=1e-6)


@pytest.mark.parametrize("full", [False, True])
def test_poisson_softplus_far_below_zero(x64, full):
    f = [-1000.0, -1000.0, -40.0, -29.9, -30.1]
    y = [0.0, 3.0, 3.0, 3.0, 3.0]
    value, grad = _value_and_grad(gf.poisson("softplus", full=full), f, y)
    assert np.all(np.isfinite(value)) and np.all(np.isfinite(grad))
    # λ = softplus(f) = log1p(e^f) and ℓ = λ - y log λ (+ log y!), from the maths in float64
    rate = np.log1p(np.exp(f))
    log_rate = np.where(rate > 0, np.log(np.where(rate > 0, rate, 1.0)), f)  # λ = 0 in float64: log λ ≈ f
    expected = rate - np.array(y) * log_rate + (special.gammaln(np.array(y) + 1) if full else 0.0)
    np.testing.assert_allclose(value, expected, rtol=1e-12)
    # ∂ℓ/∂f = σ(f) (1 - y/λ); for λ ≪ 1 that is σ(f) - y σ(f)/λ ≈ -y
    expected_grad = special.expit(f) - np.array(y) * special.expit(f) / np.where(rate > 0, rate, 1.0)
    expected_grad[0], expected_grad[1] = 0.0, -3.0
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-9, atol=1e-12)


def test_poisson_exp_with_zero_counts_takes_no_log(x64):
    value, grad = _value_and_grad(gf.poisson("exp", full=True), [-800.0, 5.0, 0.0], [0.0, 0.0, 0.0])
    np.testing.assert_allclose(value, np.exp([-800.0, 5.0, 0.0]), rtol=1e-13)
    np.testing.assert_allclose(grad, np.exp([-800.0, 5.0, 0.0]), rtol=1e-13)


@pytest.mark.parametrize("link", ["softplus", "square"])
def test_hetero_normal_with_large_inputs(x64, link):
    mu = np.array([1e8, -1e8, 0.0, 3.0, 1e150])
    raw = np.array([1e6, 1e6, 1e6, 1e3, 1e150])
    y = np.array([0.0, 1e8, 1e8, 3.0, 0.0])
    value, grad = _value_and_grad(gf.hetero_normal(link), np.column_stack([mu, raw]), y)
    assert np.all(np.isfinite(value)) and np.all(np.isfinite(grad))
    sigma = raw  # softplus(f) = f and |f| = f for these f, to within float64
    np.testing.assert_allclose(value, -stats.norm.logpdf(y, loc=mu, scale=sigma), rtol=1e-12)


def test_hetero_normal_softplus_with_a_tiny_scale(x64):
    # σ = softplus(-50) ≈ 2e-22: log σ is taken from f, not from log(softplus) = log 0
    f = np.array([[0.0, -50.0], [0.0, -50.0]])
    value, grad = _value_and_grad(gf.hetero_normal("softplus"), f, [0.0, 1e-20])
    assert np.all(np.isfinite(value)) and np.all(np.isfinite(grad))
    sigma = np.log1p(np.exp(-50.0))
    np.testing.assert_allclose(value, -stats.norm.logpdf([0.0, 1e-20], loc=0.0, scale=sigma), rtol=1e-12)


# -- target domains ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("loss", "y", "outputs", "message"),
    [
        (gf.poisson(), [0.0, 2.0, -1.0], 1, "counts 0, 1, 2.*-1"),
        (gf.poisson("softplus"), [0.0, 2.5, 1.0], 1, "counts 0, 1, 2.*2.5"),
        (gf.bernoulli(), [0.0, 1.0, 2.0], 1, "labels 0 or 1.*2"),
        (gf.bernoulli(), [0.0, 0.5], 1, "labels 0 or 1.*0.5"),
        (gf.bernoulli(), [-1.0, 1.0], 1, "labels 0 or 1.*-1"),
        (gf.categorical(), [0.0, 1.0, 3.0], 3, r"class labels 0\.\.2 .*3"),
        (gf.categorical(), [0.0, -1.0], 3, r"class labels 0\.\.2 .*-1"),
        (gf.categorical(), [0.0, 1.5], 3, r"class labels 0\.\.2 .*1.5"),
    ],
)
def test_targets_outside_the_domain_are_rejected(loss, y, outputs, message):
    with pytest.raises(GradfitError, match=message):
        loss.check_targets(np.array(y), outputs)


@pytest.mark.parametrize(
    ("loss", "y", "outputs"),
    [
        (gf.poisson(), [0.0, 1.0, 7.0], 1),
        (gf.bernoulli(), [0.0, 1.0, 1.0], 1),
        (gf.categorical(), [0.0, 1.0, 2.0], 3),
        (gf.normal(), [-1e9, 0.5, 3.0], 1),
        (gf.von_mises(), [-7.0, 0.0, 9.0], 1),
    ],
)
def test_targets_inside_the_domain_pass(loss, y, outputs):
    loss.check_targets(np.array(y), outputs)


@pytest.mark.parametrize(
    ("loss", "outputs", "needs"),
    [
        (gf.bernoulli(), 1, "0/1 targets"),
        (gf.poisson(), 1, r"counts 0, 1, 2, \.\.\."),
        (gf.categorical(), 3, r"class labels 0\.\.2"),
        (gf.normal(), 1, "numbers"),
    ],
)
@pytest.mark.parametrize("dtype", [object, str])
def test_text_targets_are_refused_with_the_recoding(loss, outputs, needs, dtype):
    y = np.array(["dog", "cat", "dog", None][: 3 if dtype is str else 4], dtype=dtype)
    with pytest.raises(GradfitError, match=f"column 'label' holds text \\(cat, dog\\); the {loss.name} loss needs "
                                           f"{needs}: recode them, e.g. cat=0, dog=1$"):
        loss.check_targets(y, outputs, name="label")
    with pytest.raises(GradfitError, match="^the targets hold text"):
        loss.check_targets(y, outputs)


def test_numbers_stored_as_objects_are_checked_as_numbers():
    gf.bernoulli().check_targets(np.array([0, 1.0, 1], dtype=object), 1)
    with pytest.raises(GradfitError, match="labels 0 or 1.*2"):
        gf.bernoulli().check_targets(np.array([0, 2], dtype=object), 1)


X6 = np.linspace(-1.0, 1.0, 6)  # six one-column inputs for fits that must stop before they start


@pytest.mark.parametrize(
    ("model", "loss", "y", "message"),
    [
        (gf.linear(), "poisson", [0, 1, 2, -3, 0, 1], "counts"),
        (gf.linear(), "poisson", [0, 1, 2, 0.5, 0, 1], "counts"),
        (gf.linear(), "bernoulli", [0, 1, 1, 0, 2, 1], "labels 0 or 1"),
        (gf.shallow(2, 1, 3), "categorical", [0, 1, 2, 3, 0, 1], r"class labels 0\.\.2"),
    ],
)
def test_fit_rejects_targets_outside_the_domain(model, loss, y, message):
    with pytest.raises(GradfitError, match=message):
        gf.fit(model, loss, (X6, np.array(y, dtype=float)), steps=1)


# -- model outputs that do not suit the loss ------------------------------------------------


SHAPE_MISMATCHES = [
    (gf.linear(), gf.hetero_normal(), "needs 2 model output"),
    (gf.shallow(2, 1, 3), gf.hetero_normal("square"), "needs 2 model output"),
    (gf.linear(), gf.categorical(), "one model output per class"),
    (gf.shallow(2, 1, 2), gf.normal(), "needs 1 model output"),
    (gf.shallow(2, 1, 3), gf.poisson(), "needs 1 model output"),
    (gf.shallow(2, 1, 2), gf.bernoulli(), "needs 1 model output"),
]
SHAPE_IDS = [f"{m.name}{m.n_outputs}-{l.name}" for m, l, _ in SHAPE_MISMATCHES]


@pytest.mark.parametrize(("model", "loss", "message"), SHAPE_MISMATCHES, ids=SHAPE_IDS)
def test_output_shape_mismatch_directly(model, loss, message):
    shape = (6,) if model.n_outputs == 1 else (6, model.n_outputs)
    with pytest.raises(GradfitError, match=message):
        loss.check_outputs(shape, model.name)


@pytest.mark.parametrize(("model", "loss", "message"), SHAPE_MISMATCHES, ids=SHAPE_IDS)
def test_output_shape_mismatch_in_the_objective(x64, model, loss, message):
    objective = gf.Objective(model, loss)
    x, y = jnp.linspace(-1.0, 1.0, 6), jnp.zeros(6)
    with pytest.raises(GradfitError, match=message):  # shapes are static: checked while tracing
        jax.jit(objective.value)(jnp.zeros(model.size), x, y)


@pytest.mark.parametrize(("model", "loss", "message"), SHAPE_MISMATCHES, ids=SHAPE_IDS)
def test_output_shape_mismatch_through_fit(model, loss, message):
    with pytest.raises(GradfitError, match=message):
        gf.fit(model, loss, (X6, np.zeros(6)), steps=1)


def test_objective_rejects_targets_shaped_as_a_column(x64):
    objective = gf.Objective(gf.linear(), gf.normal())
    x = jnp.arange(3.0)
    assert float(objective.value(jnp.array([0.0, 1.0]), x, x)) == 0.0
    with pytest.raises(GradfitError, match=r"y needs shape \(3,\)"):
        objective.value(jnp.array([0.0, 1.0]), x, x[:, None])


def test_output_checks_accept_matching_shapes():
    gf.normal().check_outputs((5,), "m")
    gf.hetero_normal().check_outputs((5, 2), "m")
    gf.categorical().check_outputs((5, 4), "m")
    with pytest.raises(GradfitError, match=r"\(N,\) or \(N, K\)"):
        gf.normal().check_outputs((5, 1, 1), "m")


# -- construction ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: gf.normal(sigma=0.0), "sigma > 0"),
        (lambda: gf.normal(sigma=-1.0), "sigma > 0"),
        (lambda: gf.von_mises(kappa=0.0), "kappa > 0"),
        (lambda: gf.poisson("log"), "known poisson links: exp, softplus"),
        (lambda: gf.hetero_normal("exp"), "known hetero_normal links: softplus, square"),
        (lambda: gf.make_loss("gamma"), "known losses: bernoulli, categorical"),
    ],
)
def test_bad_loss_settings_are_rejected(make, message):
    with pytest.raises(GradfitError, match=message):
        make()


def test_make_loss_by_name():
    assert gf.make_loss("poisson", link="softplus", full=True) == gf.poisson("softplus", full=True)
    assert gf.make_loss("normal") == gf.normal()

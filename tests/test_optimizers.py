"""The update rules of REFERENCE §3, checked four ways.

1. Against a plain-numpy transcription of each rule's formula (REFERENCE §3 and the
   docstrings), written here independently of gradfit, through the optax interface
   and through `gradfit.fit`.
2. Against optax and torch.optim where their rule is the same rule.
3. Against each other, where one rule with a hyperparameter at 0 is another.
4. On bad input, and inside a plain jitted JAX training loop on a dict pytree.

No expected number is copied from a run of gradfit: each comes from the formulas,
from optax or torch, or from REFERENCE.md.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax import lax

import gradfit
from gradfit.data import epoch_batches
from gradfit.errors import GradfitError
from gradfit.optimizers import RULES, VARIANTS, make_optimizer
from gradfit.schedules import step_decay

# Float64 (conftest's x64 fixture, which restores the setting after) lets the
# comparisons be tight.
pytestmark = pytest.mark.usefixtures("x64")


def assert_close(actual, expected, tol=1e-12):
    np.testing.assert_allclose(np.asarray(actual), np.asarray(expected), rtol=tol, atol=tol)


# -- problems with known gradients ---------------------------------------------------


# L = ½ (φ - c)ᵀ A (φ - c). A couples the coordinates and has eigenvalues from about
# 0.016 to 10.9, so per-coordinate scalings and momenta all change the path.
QUAD_A = np.array([[10.0, 3.0, 0.0], [3.0, 1.0, 0.2], [0.0, 0.2, 0.5]])
QUAD_C = np.array([1.0, -2.0, 0.5])


def quad_loss(phi):
    d = phi - QUAD_C
    return 0.5 * (d @ QUAD_A) @ d


def quad_grad(phi):
    return QUAD_A @ (phi - QUAD_C)


def rosen_loss(phi):
    return (1 - phi[0]) ** 2 + 100 * (phi[1] - phi[0] ** 2) ** 2


def rosen_grad(phi):
    x, y = phi
    return np.array([-2 * (1 - x) - 400 * x * (y - x * x), 200 * (y - x * x)])


@dataclass(frozen=True)
class Problem:
    name: str
    loss: Callable  # L[φ] in operators that jnp and torch both trace
    grad: Callable  # the analytic gradient in numpy, for the transcriptions
    start: tuple[float, ...]
    plain_lr: float  # a stable rate for the rules that do not rescale the gradient


QUADRATIC = Problem("quadratic", quad_loss, quad_grad, (0.0, 0.0, 0.0), 0.05)
# The classic start in the curved valley; the Hessian there is ~1330 along φ0.
ROSENBROCK = Problem("rosenbrock", rosen_loss, rosen_grad, (-1.2, 1.0), 1e-3)
PROBLEMS = [QUADRATIC, ROSENBROCK]

# The slides' line f = φ0 + φ1 x with least squares (sum) through five points, for the
# fit loop. REFERENCE §2: ∂ℓ_i/∂φ0 = 2 r_i, ∂ℓ_i/∂φ1 = 2 x_i r_i, r_i = φ0 + φ1 x_i - y_i.
LINE_X = np.array([0.0, 0.5, 1.0, 1.5, 2.0])
LINE_Y = np.array([0.9, 1.0, 1.4, 1.6, 2.1])
LINE_START = (0.6, -0.2)
LINE_LR = 0.02  # the loss's Hessian has largest eigenvalue ~23


def line_grad(phi, rows=slice(None)):
    x, y = LINE_X[rows], LINE_Y[rows]
    r = phi[0] + phi[1] * x - y
    return np.array([np.sum(2 * r), np.sum(2 * x * r)])


# -- the rules, transcribed from REFERENCE §3 and the docstrings --------------------
# Each takes φ_t, the moments s (updated in place), the gradient function, α_t, t and
# the hyperparameters h, and returns φ_{t+1}. m_0 = v_0 = 0.


def _plain(phi, s, grad, a, t, h):
    return phi - a * grad(phi)


def _momentum_slides(phi, s, grad, a, t, h):
    s["m"] = h["beta"] * s["m"] + (1 - h["beta"]) * grad(phi)
    return phi - a * s["m"]


def _heavy_ball(phi, s, grad, a, t, h):
    s["m"] = h["beta"] * s["m"] + grad(phi)
    return phi - a * s["m"]


def _nesterov_slides(phi, s, grad, a, t, h):
    s["m"] = h["beta"] * s["m"] + (1 - h["beta"]) * grad(phi - a * s["m"])
    return phi - a * s["m"]


def _nesterov_book(phi, s, grad, a, t, h):
    s["m"] = h["beta"] * s["m"] + (1 - h["beta"]) * grad(phi - a * h["beta"] * s["m"])
    return phi - a * s["m"]


def _nesterov_torch(phi, s, grad, a, t, h):
    g = grad(phi)
    s["m"] = h["beta"] * s["m"] + g
    return phi - a * (g + h["beta"] * s["m"])


def _normalized(phi, s, grad, a, t, h):
    m = grad(phi)
    v = m * m
    return phi - a * m / (np.sqrt(v) + h["eps"])


def _adam_moments(s, g, t, h):
    s["m"] = h["beta"] * s["m"] + (1 - h["beta"]) * g
    s["v"] = h["gamma"] * s["v"] + (1 - h["gamma"]) * g * g
    return s["m"] / (1 - h["beta"] ** (t + 1)), s["v"] / (1 - h["gamma"] ** (t + 1))


def _adam_slides(phi, s, grad, a, t, h):
    m, v = _adam_moments(s, grad(phi), t, h)
    return phi - a * m / np.sqrt(v + h["eps"])


def _adam_standard(phi, s, grad, a, t, h):
    m, v = _adam_moments(s, grad(phi), t, h)
    return phi - a * m / (np.sqrt(v) + h["eps"])


def _rmsprop(phi, s, grad, a, t, h):
    g = grad(phi)
    s["v"] = h["gamma"] * s["v"] + (1 - h["gamma"]) * g * g
    return phi - a * g / (np.sqrt(s["v"]) + h["eps"])


def _adagrad(phi, s, grad, a, t, h):
    g = grad(phi)
    s["v"] = s["v"] + g * g
    return phi - a * g / np.sqrt(s["v"] + h["eps"])


def _adamw(phi, s, grad, a, t, h):
    m, v = _adam_moments(s, grad(phi), t, h)
    return phi - a * (m / (np.sqrt(v) + h["eps"]) + h["weight_decay"] * phi)


TRANSCRIPTIONS = {
    ("gd", "slides"): _plain,
    ("sgd", "slides"): _plain,
    ("momentum", "slides"): _momentum_slides,
    ("momentum", "heavy-ball"): _heavy_ball,
    ("nesterov", "slides"): _nesterov_slides,
    ("nesterov", "book"): _nesterov_book,
    ("nesterov", "torch"): _nesterov_torch,
    ("normalized", "slides"): _normalized,
    ("adam", "slides"): _adam_slides,
    ("adam", "standard"): _adam_standard,
    ("rmsprop", "standard"): _rmsprop,
    ("adagrad", "standard"): _adagrad,
    ("adamw", "standard"): _adamw,
}
CASES = sorted(TRANSCRIPTIONS)

# Hyperparameters away from the defaults and a large ε, so that swapped β and γ, a
# missing bias correction or ε on the wrong side of the root moves the path far more
# than the comparisons allow (test_variants_are_told_apart checks that they do).
HYPER = {
    "gd": {},
    "sgd": {},
    "momentum": {"beta": 0.7},
    "nesterov": {"beta": 0.7},
    "normalized": {"eps": 1e-2},
    "adam": {"beta": 0.8, "gamma": 0.9, "eps": 1e-2},
    "rmsprop": {"gamma": 0.8, "eps": 1e-2},
    "adagrad": {"eps": 1e-2},
    "adamw": {"beta": 0.8, "gamma": 0.9, "eps": 1e-2, "weight_decay": 0.1},
}
# Rules that divide by a gradient scale move about α per coordinate on any problem.
ADAPTIVE_LR = {"normalized": 0.05, "adam": 0.05, "rmsprop": 0.05, "adagrad": 0.05, "adamw": 0.05}
STEPS = 5


def lr_for(name, plain_lr):
    return ADAPTIVE_LR.get(name, plain_lr)


def transcribe(name, variant, hyper, rate, grad, start, steps=STEPS):
    """φ_0, ..., φ_steps by the numpy transcription; ``grad(φ, t)`` is the t-th gradient."""
    step = TRANSCRIPTIONS[name, variant]
    phi = np.array(start, dtype=float)
    moments = {"m": np.zeros_like(phi), "v": np.zeros_like(phi)}
    path = [phi]
    for t in range(steps):
        phi = step(phi, moments, lambda p, t=t: grad(p, t), rate(t), t, hyper)
        path.append(phi)
    return np.array(path)


def interface_path(update, state, loss, start, steps, **extra):
    """φ_0, ..., φ_steps by an optax-style (update, state) pair, un-jitted."""
    grad_fn = jax.grad(loss)
    params = jnp.asarray(start, jnp.float64)
    path = [params]
    for _ in range(steps):
        updates, state = update(grad_fn(params), state, params, **extra)
        params = optax.apply_updates(params, updates)
        path.append(params)
    return np.asarray(path)


def gradfit_path(opt, problem, steps=STEPS):
    params = jnp.asarray(problem.start, jnp.float64)
    return interface_path(opt.update, opt.init(params), problem.loss, problem.start, steps,
                          grad_fn=jax.grad(problem.loss))


def optax_path(tx, problem, steps=STEPS):
    params = jnp.asarray(problem.start, jnp.float64)
    return interface_path(tx.update, tx.init(params), problem.loss, problem.start, steps)


def build(name, variant, plain_lr, schedule=None):
    return make_optimizer(name, lr=schedule or lr_for(name, plain_lr), variant=variant, **HYPER[name])


def constant_rate(value):
    return lambda t: value


# -- 1. first steps against the transcription ------------------------------------------


def test_table_covers_every_variant():
    # A new rule or variant must come with its transcription.
    assert set(TRANSCRIPTIONS) == {(name, v) for name, variants in VARIANTS.items() for v in variants}


@pytest.mark.parametrize("problem", PROBLEMS, ids=lambda p: p.name)
@pytest.mark.parametrize("name, variant", CASES)
def test_first_steps_follow_the_formula(name, variant, problem):
    lr = lr_for(name, problem.plain_lr)
    expected = transcribe(name, variant, HYPER[name], constant_rate(lr), lambda p, t: problem.grad(p),
                          problem.start)
    assert np.all(np.isfinite(expected))
    assert_close(gradfit_path(build(name, variant, problem.plain_lr), problem), expected)


@pytest.mark.parametrize("problem", PROBLEMS, ids=lambda p: p.name)
@pytest.mark.parametrize("name", [n for n, variants in VARIANTS.items() if len(variants) > 1])
def test_variants_are_told_apart(name, problem):
    # The settings above must make every pair of variants of a rule take visibly
    # different paths, or the table could not tell a swapped variant.
    lr = lr_for(name, problem.plain_lr)
    paths = [transcribe(name, v, HYPER[name], constant_rate(lr), lambda p, t: problem.grad(p), problem.start)
             for v in VARIANTS[name]]
    for i in range(len(paths)):
        for j in range(i):
            assert np.max(np.abs(paths[i] - paths[j])) > 1e-6


def _sgd_grad(batch_size, seed):
    """The gradient summed over the rows of the t-th mini-batch, as the fit loop draws them."""
    n = len(LINE_X)
    per_epoch = -(-n // batch_size)

    def grad(phi, t):
        epoch, j = divmod(t, per_epoch)
        idx, mask = epoch_batches(n, batch_size, seed, epoch)
        # REFERENCE §3: batches without replacement, one pass over the data an epoch.
        assert sorted(idx[mask]) == list(range(n))
        return line_grad(phi, idx[j][mask[j]])

    return grad


@pytest.mark.parametrize("name, variant", CASES)
def test_fit_history_follows_the_formula(name, variant):
    # SGD on mini-batches of 2 from 5 rows: a short last batch, and a reshuffle after 3 steps.
    batch_size, seed = (2 if name == "sgd" else None), 7
    grad = _sgd_grad(batch_size, seed) if batch_size else (lambda p, t: line_grad(p))
    lr = lr_for(name, LINE_LR)
    expected = transcribe(name, variant, HYPER[name], constant_rate(lr), grad, LINE_START)
    result = gradfit.fit("linear", "normal", (LINE_X, LINE_Y), build(name, variant, LINE_LR), init=LINE_START,
                         steps=STEPS, tol=0, batch_size=batch_size, seed=seed, dtype="float64")
    np.testing.assert_array_equal(result.history.step, np.arange(STEPS + 1))
    assert_close(result.history.params, expected)
    assert_close(result.history.lr[:-1], np.full(STEPS, lr))


@pytest.mark.parametrize("variant", ["slides", "book"])
def test_look_ahead_uses_the_current_rate(variant):
    # With a schedule, the look-ahead point φ - α_t m (or φ - α_t β m) takes this step's α_t.
    schedule = step_decay(0.02, factor=0.5, every=2)
    expected = transcribe("nesterov", variant, HYPER["nesterov"], lambda t: 0.02 * 0.5 ** (t // 2),
                          lambda p, t: line_grad(p), LINE_START)
    result = gradfit.fit("linear", "normal", (LINE_X, LINE_Y), build("nesterov", variant, LINE_LR, schedule),
                         init=LINE_START, steps=STEPS, tol=0, dtype="float64")
    assert_close(result.history.params, expected)


# -- 2. the same rule in optax and torch ------------------------------------------------

TWIN_STEPS = 10
OPTAX_TWINS = {
    "gd": (lambda lr: gradfit.gd(lr), lambda lr: optax.sgd(lr)),
    "sgd": (lambda lr: gradfit.sgd(lr), lambda lr: optax.sgd(lr)),
    "momentum heavy-ball": (lambda lr: gradfit.momentum(lr, 0.7, variant="heavy-ball"),
                            lambda lr: optax.sgd(lr, momentum=0.7)),
    "nesterov torch": (lambda lr: gradfit.nesterov(lr, 0.7, variant="torch"),
                       lambda lr: optax.sgd(lr, momentum=0.7, nesterov=True)),
    "adam standard": (lambda lr: gradfit.adam(lr, 0.8, 0.9, 1e-2, variant="standard"),
                      lambda lr: optax.adam(lr, 0.8, 0.9, eps=1e-2)),
    "adam slides": (lambda lr: gradfit.adam(lr, 0.8, 0.9, 1e-2, variant="slides"),
                    lambda lr: optax.adam(lr, 0.8, 0.9, eps=0.0, eps_root=1e-2)),
    "rmsprop": (lambda lr: gradfit.rmsprop(lr, 0.8, 1e-2),
                lambda lr: optax.rmsprop(lr, decay=0.8, eps=1e-2, eps_in_sqrt=False)),
    "adagrad": (lambda lr: gradfit.adagrad(lr, 1e-2),
                lambda lr: optax.adagrad(lr, initial_accumulator_value=0.0, eps=1e-2)),
    "adamw": (lambda lr: gradfit.adamw(lr, 0.8, 0.9, 1e-2, weight_decay=0.1),
              lambda lr: optax.adamw(lr, 0.8, 0.9, 1e-2, weight_decay=0.1)),
}


@pytest.mark.parametrize("problem", PROBLEMS, ids=lambda p: p.name)
@pytest.mark.parametrize("twin", sorted(OPTAX_TWINS))
def test_same_path_as_optax(twin, problem):
    ours, theirs = OPTAX_TWINS[twin]
    lr = lr_for(twin.split()[0], problem.plain_lr)
    expected = optax_path(theirs(lr), problem, TWIN_STEPS)
    assert_close(gradfit_path(ours(lr), problem, TWIN_STEPS), expected)


def test_rmsprop_differs_from_optax_default():
    # The docstring's warning: optax's rmsprop puts ε inside the root by default.
    ours = gradfit_path(gradfit.rmsprop(0.05, 0.8, 1e-2), QUADRATIC)
    theirs = optax_path(optax.rmsprop(0.05, decay=0.8, eps=1e-2), QUADRATIC)
    assert np.max(np.abs(ours - theirs)) > 1e-6


def _torch_path(make, loss, start, steps):
    torch = pytest.importorskip("torch")
    phi = torch.tensor(start, dtype=torch.float64, requires_grad=True)
    opt = make(torch, [phi])
    path = [phi.detach().numpy().copy()]
    for _ in range(steps):
        opt.zero_grad()
        loss(phi).backward()
        opt.step()
        path.append(phi.detach().numpy().copy())
    return np.array(path)


def _quad_loss_torch(phi):
    a = phi.new_tensor(QUAD_A)
    d = phi - phi.new_tensor(QUAD_C)
    return 0.5 * (d @ a) @ d


TORCH_LOSSES = {"quadratic": _quad_loss_torch, "rosenbrock": rosen_loss}
TORCH_TWINS = {
    "gd": (lambda lr: gradfit.gd(lr), lambda torch, p, lr: torch.optim.SGD(p, lr)),
    "momentum heavy-ball": (lambda lr: gradfit.momentum(lr, 0.7, variant="heavy-ball"),
                            lambda torch, p, lr: torch.optim.SGD(p, lr, momentum=0.7)),
    "nesterov torch": (lambda lr: gradfit.nesterov(lr, 0.7, variant="torch"),
                       lambda torch, p, lr: torch.optim.SGD(p, lr, momentum=0.7, nesterov=True)),
    "adam standard": (lambda lr: gradfit.adam(lr, 0.8, 0.9, 1e-2, variant="standard"),
                      lambda torch, p, lr: torch.optim.Adam(p, lr, betas=(0.8, 0.9), eps=1e-2)),
    "rmsprop": (lambda lr: gradfit.rmsprop(lr, 0.8, 1e-2),
                lambda torch, p, lr: torch.optim.RMSprop(p, lr, alpha=0.8, eps=1e-2)),
    "adamw": (lambda lr: gradfit.adamw(lr, 0.8, 0.9, 1e-2, weight_decay=0.1),
              lambda torch, p, lr: torch.optim.AdamW(p, lr, betas=(0.8, 0.9), eps=1e-2, weight_decay=0.1)),
    # torch adds ε outside the root and gradfit inside: with ε = 0 the two agree.
    "adagrad": (lambda lr: gradfit.adagrad(lr, 0.0),
                lambda torch, p, lr: torch.optim.Adagrad(p, lr, eps=0.0, initial_accumulator_value=0.0)),
}


@pytest.mark.parametrize("problem", PROBLEMS, ids=lambda p: p.name)
@pytest.mark.parametrize("twin", sorted(TORCH_TWINS))
def test_same_path_as_torch(twin, problem):
    ours, theirs = TORCH_TWINS[twin]
    lr = lr_for(twin.split()[0], problem.plain_lr)
    expected = _torch_path(lambda torch, p: theirs(torch, p, lr), TORCH_LOSSES[problem.name], problem.start,
                           TWIN_STEPS)
    # torch orders the same arithmetic differently (e.g. it folds the bias corrections
    # into the step size), so agreement is to rounding, not bit for bit.
    assert_close(gradfit_path(ours(lr), problem, TWIN_STEPS), expected, tol=1e-10)


# -- 3. rules that coincide ---------------------------------------------------------------

EQUIVALENT = {
    # With β = 0 the momentum is the gradient itself, and the look-ahead of the book's
    # form, φ - αβm, is φ.
    "momentum slides, beta 0 = gd": (lambda lr: gradfit.momentum(lr, 0.0), lambda lr: gradfit.gd(lr)),
    "momentum heavy-ball, beta 0 = gd": (lambda lr: gradfit.momentum(lr, 0.0, variant="heavy-ball"),
                                         lambda lr: gradfit.gd(lr)),
    "nesterov torch, beta 0 = gd": (lambda lr: gradfit.nesterov(lr, 0.0, variant="torch"),
                                    lambda lr: gradfit.gd(lr)),
    "nesterov book, beta 0 = gd": (lambda lr: gradfit.nesterov(lr, 0.0, variant="book"),
                                   lambda lr: gradfit.gd(lr)),
    "sgd = gd on the full batch": (lambda lr: gradfit.sgd(lr), lambda lr: gradfit.gd(lr)),
    # m_slides = (1 - β) m_heavy-ball at every step, by induction from m_0 = 0.
    "momentum slides = heavy ball with lr (1 - beta) lr": (
        lambda lr: gradfit.momentum(lr, 0.7), lambda lr: gradfit.momentum((1 - 0.7) * lr, 0.7, variant="heavy-ball")),
    # With β = γ = 0: m̃ = g and ṽ = g², so the step is g / (|g| + ε).
    "adam standard, beta = gamma = 0 = normalized": (
        lambda lr: gradfit.adam(lr, 0.0, 0.0, 1e-2, variant="standard"), lambda lr: gradfit.normalized(lr, 1e-2)),
    # With γ = 0: v = g², so the step is g / (|g| + ε).
    "rmsprop, gamma 0 = normalized": (lambda lr: gradfit.rmsprop(lr, 0.0, 1e-2),
                                      lambda lr: gradfit.normalized(lr, 1e-2)),
    "adamw, weight decay 0 = adam standard": (
        lambda lr: gradfit.adamw(lr, 0.8, 0.9, 1e-2, weight_decay=0.0),
        lambda lr: gradfit.adam(lr, 0.8, 0.9, 1e-2, variant="standard")),
}


@pytest.mark.parametrize("problem", PROBLEMS, ids=lambda p: p.name)
@pytest.mark.parametrize("pair", sorted(EQUIVALENT))
def test_equivalent_rules(pair, problem):
    one, other = EQUIVALENT[pair]
    lr = lr_for(pair.split()[0].rstrip(","), problem.plain_lr)
    assert_close(gradfit_path(one(lr), problem, TWIN_STEPS), gradfit_path(other(lr), problem, TWIN_STEPS))


@pytest.mark.parametrize("problem", PROBLEMS, ids=lambda p: p.name)
def test_nesterov_torch_is_the_book_form_seen_from_its_look_ahead(problem):
    # With u = m/(1-β) and a = α(1-β), the book's rule is u ← βu + ∇L[φ - aβu]; φ ← φ - au.
    # Its look-ahead points ψ = φ - aβu then obey ψ ← ψ - a(g(ψ) + βu), u ← βu + g(ψ):
    # the torch form at rate a, from ψ_0 = φ_0.
    lr, beta = problem.plain_lr, 0.7
    book = gradfit.nesterov(lr, beta, variant="book")
    grad_fn = jax.grad(problem.loss)
    params = jnp.asarray(problem.start, jnp.float64)
    state = book.init(params)
    look_ahead = []
    for _ in range(TWIN_STEPS + 1):
        look_ahead.append(book.gradient_point(params, state))
        updates, state = book.update(grad_fn(params), state, params, grad_fn=grad_fn)
        params = optax.apply_updates(params, updates)
    torch_form = gradfit_path(gradfit.nesterov(lr * (1 - beta), beta, variant="torch"), problem, TWIN_STEPS)
    assert_close(np.asarray(look_ahead), torch_form)


def test_normalized_direction_of_the_slides():
    # REFERENCE §4: m = g = [3, -2, 5], v = [9, 4, 25] give the direction [1, -1, 1].
    opt = gradfit.normalized(lr=1.0)
    g = jnp.array([3.0, -2.0, 5.0])
    updates, _ = opt.update(g, opt.init(g), g)
    np.testing.assert_allclose(-np.asarray(updates), [1.0, -1.0, 1.0], atol=1e-8)


# -- 4. bad input ---------------------------------------------------------------------------

BAD_NAMES = [
    (lambda: make_optimizer("adamm"), ["adamm", *RULES]),
    (lambda: gradfit.fit("linear", "normal", (LINE_X, LINE_Y), "adamm"), ["adamm", *RULES]),
    (lambda: make_optimizer("adam", variant="book"), ["book", "slides", "standard"]),
    (lambda: make_optimizer("nesterov", variant="heavy-ball"), ["heavy-ball", "slides", "book", "torch"]),
    (lambda: gradfit.momentum(variant="nesterov"), ["nesterov", "slides", "heavy-ball"]),
    (lambda: make_optimizer("adam", momentum=0.9), ["momentum", "lr", "beta", "gamma", "eps"]),
    (lambda: make_optimizer("gd", beta=0.9), ["beta", "lr", "line_search", "max_dist"]),
    (lambda: make_optimizer("rmsprop", beta=0.9), ["beta", "lr", "gamma", "eps"]),
    (lambda: make_optimizer("sgd", momentum=0.9), ["momentum", "lr"]),
]


@pytest.mark.parametrize("call, words", BAD_NAMES)
def test_unknown_names_list_the_known_ones(call, words):
    with pytest.raises(GradfitError) as err:
        call()
    for word in words:
        assert word in str(err.value)


@pytest.mark.parametrize("lr", [0.0, -0.1, float("nan"), float("inf")])
@pytest.mark.parametrize("name", sorted(RULES))
def test_learning_rate_must_be_positive(name, lr):
    with pytest.raises(GradfitError, match="learning rate"):
        make_optimizer(name, lr=lr)


DECAYS = [(name, key) for name, rule in sorted(RULES.items()) for key in ("beta", "gamma") if key in rule.defaults]


@pytest.mark.parametrize("value", [-0.1, 1.0, 1.5, float("nan")])
@pytest.mark.parametrize("name, key", DECAYS)
def test_decays_must_lie_in_unit_interval(name, key, value):
    with pytest.raises(GradfitError, match=key):
        make_optimizer(name, **{key: value})


@pytest.mark.parametrize("call", [
    lambda: gradfit.adam(eps=-1e-8),
    lambda: gradfit.adamw(weight_decay=-0.1),
    lambda: gradfit.momentum(beta=1.0, variant="heavy-ball"),
    lambda: gradfit.nesterov(beta=-0.5, variant="torch"),
    lambda: gradfit.gd(line_search=True, max_dist=0.0),
])
def test_named_constructors_check_their_settings(call):
    with pytest.raises(GradfitError):
        call()


@pytest.mark.parametrize("variant", ["slides", "book"])
def test_look_ahead_needs_a_gradient_function(variant):
    opt = gradfit.nesterov(variant=variant)
    params = jnp.zeros(3)
    with pytest.raises(GradfitError, match="grad_fn"):
        opt.update(params, opt.init(params), params)


# -- 5. inside a plain JAX training loop -----------------------------------------------------


def _as_dict(phi):
    # φ = (w0, w1, b) held as a vector and a scalar.
    return {"w": phi[:2], "b": phi[2]}


def _dict_loss(params):
    return quad_loss(jnp.concatenate([params["w"], params["b"][None]]))


@pytest.mark.parametrize("name, variant", CASES)
def test_jitted_scan_on_a_dict_pytree(name, variant):
    # float32 parameters with x64 on: the rates and the loss's constants are float64, yet
    # the updates and the state must stay float32, or the scan's carry changes type.
    tx = build(name, variant, QUADRATIC.plain_lr).as_optax()
    assert isinstance(tx, optax.GradientTransformationExtraArgs)
    grad_fn = jax.grad(_dict_loss)

    @jax.jit
    def train(params):
        def step(carry, _):
            params, state = carry
            updates, state = tx.update(grad_fn(params), state, params, grad_fn=grad_fn)
            params = optax.apply_updates(params, updates)
            return (params, state), params

        _, path = lax.scan(step, (params, tx.init(params)), length=STEPS)
        return path

    path = train(_as_dict(jnp.asarray(QUADRATIC.start, jnp.float32)))
    assert jax.tree.map(lambda leaf: leaf.dtype, path) == {"w": jnp.float32, "b": jnp.float32}
    flat = np.column_stack([path["w"], path["b"]])
    lr = lr_for(name, QUADRATIC.plain_lr)
    expected = transcribe(name, variant, HYPER[name], constant_rate(lr), lambda p, t: quad_grad(p), QUADRATIC.start)
    assert_close(flat, expected[1:], tol=1e-5)  # float32 arithmetic

"""Update rules of the lecture, their variants, and their optax forms.

Notation (REFERENCE §3): g_t = ∂L/∂φ at φ_t, α the learning rate (α_t with a
schedule), t counting updates from 0, β the momentum / first-moment decay, γ the
second-moment decay, ε the stabiliser. Every rule is an `Optimizer`: a frozen spec
(name, variant, hyperparameters, schedule) that builds an optax
``GradientTransformationExtraArgs``. Each is ``chain(direction, scale by -α_t)``, where
the direction block is optax's own when it is exactly the rule (``ema`` for the
slides' momentum, ``trace`` for heavy ball, ``scale_by_adam`` with ``eps`` or
``eps_root`` for the two Adams) and gradfit's where optax has none (normalised
gradients, the book's line search, the look-ahead of Nesterov's slides and book forms).

``opt.init`` and ``opt.update`` follow optax's signatures, so an `Optimizer` drops into
any JAX training loop. The look-ahead Nesterov forms need the gradient at a point
other than φ; in a plain optax loop they take it from a ``grad_fn`` keyword argument.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from . import polish
from .errors import GradfitError, unknown_name
from .linesearch import line_search
from .schedules import Schedule, as_schedule
from .schedules import check_schedule as _check_schedule

# -- building blocks -----------------------------------------------------------


class ScaleByLrState(NamedTuple):
    """How many updates have run, and the rate α the last one used (NaN before any)."""

    count: jax.Array
    lr: jax.Array


def scale_by_lr(schedule: Callable[[Any], Any]) -> optax.GradientTransformation:
    """u ← -α_t u, with α_t = schedule(t) (a `Schedule`, or any function of t); records α_t in the state."""

    def init(params):
        del params
        return ScaleByLrState(jnp.zeros([], jnp.int32), jnp.full([], jnp.nan, jnp.result_type(float)))

    def update(updates, state, params=None):
        del params
        rate = schedule(state.count)
        updates = jax.tree.map(lambda u: (-rate * u).astype(u.dtype), updates)
        return updates, ScaleByLrState(state.count + 1, jnp.asarray(rate, state.lr.dtype))

    return optax.GradientTransformation(init, update)


def scale_by_line_search(max_dist: float, thresh: float, max_iter: int) -> optax.GradientTransformationExtraArgs:
    """u ← -s u, with s from the book's line search on h(s) = L[φ - s u].

    Needs ``value_fn(params) -> L`` as a keyword argument of ``update`` (optax's
    convention for line searches); records s in the state as the rate.
    """

    def init(params):
        del params
        return ScaleByLrState(jnp.zeros([], jnp.int32), jnp.full([], jnp.nan, jnp.result_type(float)))

    def update(updates, state, params=None, *, value_fn=None, **extra):
        del extra
        if value_fn is None or params is None:
            raise GradfitError("the line search needs params and value_fn=L in update(...)")

        def h(s):
            return value_fn(jax.tree.map(lambda p, u: p - s * u, params, updates))

        step = line_search(h, max_dist, thresh, max_iter)
        updates = jax.tree.map(lambda u: (-step * u).astype(u.dtype), updates)
        return updates, ScaleByLrState(state.count + 1, jnp.asarray(step, state.lr.dtype))

    return optax.GradientTransformationExtraArgs(init, update)


def scale_by_normalized(eps: float) -> optax.GradientTransformation:
    """u ← m / (√v + ε) with m = g, v = g² (elementwise): about sign(g) per coordinate."""

    def init(params):
        del params
        return optax.EmptyState()

    def update(updates, state, params=None):
        del params
        return jax.tree.map(lambda g: g / (jnp.sqrt(g * g) + eps), updates), state

    return optax.GradientTransformation(init, update)


# -- the optimiser spec ----------------------------------------------------------


#: Hyperparameters that are real numbers a compiled loop takes at run time (with the
#: schedule's ``lr``, ``factor``, ``rate``, ``floor``), so fits that differ only in them
#: share one compile and a sweep can vmap over them. The line search's settings shape
#: the loop and stay fixed.
RUNTIME = ("beta", "gamma", "eps", "weight_decay")


@dataclass(frozen=True)
class Optimizer:
    """A named update rule with its variant, hyperparameters and learning-rate schedule.

    Equal specs compare equal. A compiled loop depends on `skeleton` only (the rule with
    its real numbers taken out) and takes `values` as arguments, so fits whose
    optimisers differ only in α, β, γ, ε or λ reuse one compiled loop.
    """

    name: str
    variant: str
    lr: Schedule
    hyper: tuple[tuple[str, Any], ...] = ()

    @cached_property
    def _rule(self) -> "_Rule":
        return RULES[self.name]

    @property
    def values(self) -> dict[str, float]:
        """The real numbers of this rule: ``lr`` (and the schedule's), ``beta``, ``gamma``, ``eps``, ..."""
        return {**self.lr.values, **{k: v for k, v in self.hyper if k in RUNTIME}}

    @cached_property
    def skeleton(self) -> "Optimizer":
        """This rule with every real number of `values` set to 1: what a compiled loop's shape depends on."""
        lr = dataclasses.replace(self.lr, lr=1.0, settings=tuple(
            (k, 1.0 if k in self.lr.values else v) for k, v in self.lr.settings))
        return dataclasses.replace(self, lr=lr, hyper=tuple((k, 1.0 if k in RUNTIME else v) for k, v in self.hyper))

    def with_values(self, **values: float) -> "Optimizer":
        """This rule with some of its real numbers changed, checked (``opt.with_values(lr=0.01, beta=0.5)``)."""
        unknown = sorted(set(values) - set(self.values))
        if unknown:
            raise GradfitError(f"{self.name} takes no {', '.join(unknown)}; its numbers are "
                               f"{', '.join(self.values)}")
        schedule = self.lr
        if "lr" in values or set(values) & set(schedule.values):
            settings = tuple((k, float(values.get(k, v))) if k in schedule.values else (k, v)
                             for k, v in schedule.settings)
            schedule = dataclasses.replace(schedule, lr=float(values.get("lr", schedule.lr)), settings=settings)
            _check_schedule(schedule)
        hyper = {k: (float(values[k]) if k in values else v) for k, v in self.hyper}
        _check_hyper(self.name, hyper)
        return dataclasses.replace(self, lr=schedule, hyper=tuple(hyper.items()))

    def check_values(self, values: dict[str, Any]) -> None:
        """Refuse numbers outside their ranges (each a number or an array of one per run), naming the first."""
        for key, value in values.items():
            arr = np.atleast_1d(np.asarray(value, float))
            holds, text = _VALUE_RANGES.get(key, _VALUE_RANGES["eps"])
            bad = ~holds(arr)
            if bad.any():
                i = int(np.argmax(bad))
                where = f" (run {i})" if arr.size > 1 else ""
                raise GradfitError(f"{key} for {self.name} {text}, not {arr[i]:g}{where}")

    def rule(self, values: dict[str, Any] | None = None) -> optax.GradientTransformationExtraArgs:
        """The rule as optax blocks, with the real numbers from ``values`` (traced arrays welcome;
        default: this optimiser's own), fed the gradient at `gradient_point`."""
        h = {**dict(self.hyper), **(self.values if values is None else values)}
        direction = self._rule.variants[self.variant](h)
        if h.get("line_search"):
            last = scale_by_line_search(h["max_dist"], h["thresh"], int(h["max_iter"]))
        else:
            last = scale_by_lr(functools.partial(self.lr.at, values=h))
        return optax.chain(direction, last)

    @cached_property
    def transform(self) -> optax.GradientTransformationExtraArgs:
        """The rule as optax blocks with this optimiser's own numbers."""
        return self.rule()

    @property
    def looks_ahead(self) -> bool:
        """Whether the gradient is taken at a look-ahead point rather than at φ."""
        return self.name == "nesterov" and self.variant in ("slides", "book")

    @property
    def line_search(self) -> bool:
        return bool(dict(self.hyper).get("line_search"))

    def gradient_point(self, params, state, values: dict[str, Any] | None = None):
        """Where the rule evaluates the gradient: φ, or φ - α m (slides), φ - αβm (book)."""
        if not self.looks_ahead:
            return params
        values = self.values if values is None else values
        momentum = state[0].ema
        rate = self.lr.at(state[-1].count, values)
        if self.variant == "book":
            rate = rate * values["beta"]
        # Keep each leaf's dtype: a float64 rate would turn float32 parameters' gradients,
        # and so the momentum, into float64, and a lax.scan carry would change type.
        return jax.tree.map(lambda p, m: (p - rate * m).astype(p.dtype), params, momentum)

    def last_lr(self, state) -> jax.Array:
        """The rate α (or line-search step) that the most recent update used."""
        return state[-1].lr

    # optax's interface ----------------------------------------------------------

    def init(self, params):
        return self.transform.init(params)

    def update(self, updates, state, params=None, **extra):
        """optax's ``update``; look-ahead Nesterov also needs ``grad_fn(params) -> g``."""
        if self.looks_ahead:
            grad_fn = extra.pop("grad_fn", None)
            if grad_fn is None or params is None:
                raise GradfitError(
                    f"nesterov ({self.variant}) takes its gradient at the look-ahead point: "
                    "call update(grads, state, params, grad_fn=jax.grad(loss)), "
                    "or use variant='torch', which needs no second gradient point"
                )
            updates = grad_fn(self.gradient_point(params, state))
        return self.transform.update(updates, state, params, **extra)

    def as_optax(self) -> optax.GradientTransformationExtraArgs:
        """This optimiser as an optax ``GradientTransformationExtraArgs``."""
        return optax.GradientTransformationExtraArgs(self.init, self.update)

    def describe(self) -> str:
        parts = [] if self.line_search else [self.lr.describe()]
        shown = [(k, v) for k, v in self.hyper if k != "line_search" and (self.line_search or k not in _LINE_SEARCH)]
        parts += [f"{k}={v:g}" for k, v in shown]
        parts += ["line search"] if self.line_search else []
        return f"{self.name}[{self.variant}]({', '.join(parts)})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "variant": self.variant,
            "schedule": {
                "kind": self.lr.kind, "lr": self.lr.lr, "warmup_steps": self.lr.warmup_steps, **dict(self.lr.settings)
            },
            **dict(self.hyper),
        }


@dataclass(frozen=True)
class _Rule:
    defaults: dict[str, Any]
    variants: dict[str, Callable[[dict[str, Any]], optax.GradientTransformation]]


def _identity(h):
    return optax.identity()


_LINE_SEARCH = {"line_search": False, "max_dist": 1.0, "thresh": 1e-4, "max_iter": 10}

RULES: dict[str, _Rule] = {
    "gd": _Rule(dict(_LINE_SEARCH), {"slides": _identity}),
    "sgd": _Rule({}, {"slides": _identity}),
    "momentum": _Rule(
        {"beta": 0.9},
        {
            "slides": lambda h: optax.ema(h["beta"], debias=False),
            "heavy-ball": lambda h: optax.trace(h["beta"]),
        },
    ),
    "nesterov": _Rule(
        {"beta": 0.9},
        {
            "slides": lambda h: optax.ema(h["beta"], debias=False),
            "book": lambda h: optax.ema(h["beta"], debias=False),
            "torch": lambda h: optax.trace(h["beta"], nesterov=True),
        },
    ),
    "normalized": _Rule({"eps": 1e-8}, {"slides": lambda h: scale_by_normalized(h["eps"])}),
    "adam": _Rule(
        {"beta": 0.9, "gamma": 0.999, "eps": 1e-8},
        {
            "slides": lambda h: optax.scale_by_adam(h["beta"], h["gamma"], eps=0.0, eps_root=h["eps"]),
            "standard": lambda h: optax.scale_by_adam(h["beta"], h["gamma"], eps=h["eps"], eps_root=0.0),
        },
    ),
    "rmsprop": _Rule(
        {"gamma": 0.9, "eps": 1e-8},
        {"standard": lambda h: optax.scale_by_rms(h["gamma"], h["eps"], eps_in_sqrt=False)},
    ),
    "adagrad": _Rule(
        {"eps": 1e-10},
        {"standard": lambda h: optax.scale_by_rss(initial_accumulator_value=0.0, eps=h["eps"])},
    ),
    "adamw": _Rule(
        {"beta": 0.9, "gamma": 0.999, "eps": 1e-8, "weight_decay": 1e-2},
        {
            "standard": lambda h: optax.chain(
                optax.scale_by_adam(h["beta"], h["gamma"], eps=h["eps"], eps_root=0.0),
                optax.add_decayed_weights(h["weight_decay"]),
            )
        },
    ),
}

#: The variants of each optimiser, the default first.
VARIANTS: dict[str, tuple[str, ...]] = {name: tuple(rule.variants) for name, rule in RULES.items()}

_RANGES = {
    "beta": (0.0, 1.0, "[0, 1)"),
    "gamma": (0.0, 1.0, "[0, 1)"),
}


#: Where each of an optimiser's numbers may lie (`Optimizer.check_values`; NaN lies nowhere).
_VALUE_RANGES: dict[str, tuple[Callable[[np.ndarray], np.ndarray], str]] = {
    "lr": (lambda a: np.isfinite(a) & (a > 0), "must be a positive number"),
    "beta": (lambda a: (a >= 0) & (a < 1), "must lie in [0, 1)"),
    "gamma": (lambda a: (a >= 0) & (a < 1), "must lie in [0, 1)"),
    "factor": (lambda a: (a > 0) & (a <= 1), "must lie in (0, 1]"),
    "rate": (lambda a: (a > 0) & (a <= 1), "must lie in (0, 1]"),
    "floor": (lambda a: (a >= 0) & (a <= 1), "must lie in [0, 1]"),
    "eps": (lambda a: np.isfinite(a) & (a >= 0), "must be >= 0"),
    "weight_decay": (lambda a: np.isfinite(a) & (a >= 0), "must be >= 0"),
}


def _check_hyper(name: str, h: dict[str, Any]) -> None:
    for key, value in h.items():
        if key == "line_search":
            continue
        if key in _RANGES:
            low, high, text = _RANGES[key]
            if not low <= value < high:
                raise GradfitError(f"{key} for {name} must lie in {text}, not {value}")
        elif key in ("eps", "weight_decay") and not value >= 0:
            raise GradfitError(f"{key} for {name} must be >= 0, not {value}")
        elif key in ("max_dist", "thresh", "max_iter") and not value > 0:
            raise GradfitError(f"{key} of the line search must be positive, not {value}")


def make_optimizer(
    name: str, *, lr: Schedule | float = 0.1, variant: str | None = None, **hyper: Any
) -> Optimizer:
    """An optimiser by name and variant, e.g. ``make_optimizer("adam", lr=0.05, variant="standard")``.

    Unknown names, variants and hyperparameters raise a `GradfitError` that lists the
    known ones; a non-positive learning rate or a momentum outside [0, 1) too.
    """
    if name in SECOND_ORDER:
        return _second_order(name, variant, hyper)
    try:
        rule = RULES[name]
    except KeyError:
        raise unknown_name("optimizer", name, [*RULES, *SECOND_ORDER]) from None
    variant = variant or next(iter(rule.variants))
    if variant not in rule.variants:
        raise GradfitError(
            f"unknown variant {variant!r} of {name}; known variants: {', '.join(rule.variants)}"
        )
    unknown = sorted(set(hyper) - set(rule.defaults))
    if unknown:
        takes = ", ".join(["lr", *rule.defaults]) if rule.defaults else "lr only"
        raise GradfitError(f"{name} takes no {', '.join(unknown)}; it takes {takes}")
    merged = {**rule.defaults, **{k: v for k, v in hyper.items() if v is not None}}
    merged = {k: (bool(v) if k == "line_search" else float(v)) for k, v in merged.items()}
    _check_hyper(name, merged)
    return Optimizer(name, variant, as_schedule(lr), tuple(merged.items()))


# -- the named rules ---------------------------------------------------------------


def gd(lr: Schedule | float = 0.1, *, line_search: bool = False, max_dist: float = 1.0,
       thresh: float = 1e-4, max_iter: int = 10) -> Optimizer:
    """Gradient descent: φ ← φ - α g, g the gradient of the full-data loss.

    With ``line_search=True`` the step is φ ← φ - s g, s chosen by the book's
    bracketing search (`gradfit.linesearch.line_search`) on [0, max_dist]; ``lr`` is
    then unused.
    """
    return make_optimizer("gd", lr=lr, line_search=line_search, max_dist=max_dist, thresh=thresh, max_iter=max_iter)


def sgd(lr: Schedule | float = 0.1) -> Optimizer:
    """Stochastic gradient descent: φ ← φ - α_t Σ_{i∈B_t} ∂ℓ_i/∂φ.

    The rule is gradient descent's; the fit loop draws the mini-batches B_t without
    replacement, one pass over the data per epoch, reshuffled every epoch.
    """
    return make_optimizer("sgd", lr=lr)


def momentum(lr: Schedule | float = 0.1, beta: float = 0.9, *, variant: str = "slides") -> Optimizer:
    """Momentum.

    - ``slides`` (default): m ← β m + (1 - β) g; φ ← φ - α m, an exponential moving
      average of the gradients (optax ``ema`` without debiasing), m_0 = 0.
    - ``heavy-ball``: m ← β m + g; φ ← φ - α m, as PyTorch's and optax's ``sgd`` with
      momentum (torch's ``dampening=β`` gives the EMA, but undamped on its first step).
    """
    return make_optimizer("momentum", lr=lr, beta=beta, variant=variant)


def nesterov(lr: Schedule | float = 0.1, beta: float = 0.9, *, variant: str = "slides") -> Optimizer:
    """Nesterov accelerated momentum.

    - ``slides`` (default): m ← β m + (1 - β) ∇L[φ - α m]; φ ← φ - α m.
    - ``book``: the same with the look-ahead φ - α β m (book eq. 6.12, as corrected).
    - ``torch``: m ← β m + g; φ ← φ - α (g + β m), PyTorch's and optax's
      reformulation, which needs no second gradient point.
    """
    return make_optimizer("nesterov", lr=lr, beta=beta, variant=variant)


def normalized(lr: Schedule | float = 0.1, eps: float = 1e-8) -> Optimizer:
    """Normalised gradients: m ← g; v ← g²; φ ← φ - α m / (√v + ε).

    Each coordinate moves by about α whatever the gradient's size: g = [3, -2, 5]
    gives the direction [1, -1, 1]. It makes progress on any slope but need not
    converge: near a minimum it keeps stepping α.
    """
    return make_optimizer("normalized", lr=lr, eps=eps)


def adam(lr: Schedule | float = 0.1, beta: float = 0.9, gamma: float = 0.999, eps: float = 1e-8,
         *, variant: str = "slides") -> Optimizer:
    """Adam: m ← β m + (1-β) g; v ← γ v + (1-γ) g²; m̃ = m/(1-β^{t+1}); ṽ = v/(1-γ^{t+1}).

    - ``slides`` (default): φ ← φ - α m̃ / √(ṽ + ε), ε inside the root
      (optax ``scale_by_adam(eps=0, eps_root=ε)``).
    - ``standard``: φ ← φ - α m̃ / (√ṽ + ε), ε outside the root, as in the book,
      Kingma & Ba (2015), PyTorch and optax's default.
    """
    return make_optimizer("adam", lr=lr, beta=beta, gamma=gamma, eps=eps, variant=variant)


def rmsprop(lr: Schedule | float = 0.01, gamma: float = 0.9, eps: float = 1e-8) -> Optimizer:
    """RMSProp: v ← γ v + (1-γ) g²; φ ← φ - α g / (√v + ε), v_0 = 0.

    ε outside the root, as PyTorch; optax's ``rmsprop`` puts it inside by default.
    """
    return make_optimizer("rmsprop", lr=lr, gamma=gamma, eps=eps)


def adagrad(lr: Schedule | float = 0.1, eps: float = 1e-10) -> Optimizer:
    """AdaGrad: v ← v + g²; φ ← φ - α g / √(v + ε), v_0 = 0 (Duchi et al., 2011).

    ε inside the root (optax ``scale_by_rss``); PyTorch adds it outside, which
    differs noticeably only where v is of the order of ε or below.
    """
    return make_optimizer("adagrad", lr=lr, eps=eps)


def adamw(lr: Schedule | float = 0.01, beta: float = 0.9, gamma: float = 0.999, eps: float = 1e-8,
          weight_decay: float = 1e-2) -> Optimizer:
    """AdamW: Adam (standard form) with decoupled weight decay λ (Loshchilov & Hutter, 2019).

    φ ← φ - α (m̃ / (√ṽ + ε) + λ φ), as optax's ``adamw`` and PyTorch's ``AdamW``.
    """
    return make_optimizer("adamw", lr=lr, beta=beta, gamma=gamma, eps=eps, weight_decay=weight_decay)


#: Second-order methods (`gradfit.polish`): they take a Jacobian or Hessian, not a learning rate.
SECOND_ORDER = {"lm": polish.lm, "newton": polish.newton}


def _second_order(name: str, variant: str | None, hyper: dict[str, Any]) -> polish.SecondOrder:
    factory = SECOND_ORDER[name]
    takes = ("ftol", "xtol", "gtol", "max_iter", "damping")
    given = {k: v for k, v in hyper.items() if v is not None}
    unknown = sorted(set(given) - set(takes))
    if unknown:
        raise GradfitError(f"{name} takes no {', '.join(unknown)} (nor a learning rate); it takes {', '.join(takes)}")
    method = factory(**given)
    if variant not in (None, method.variant):
        raise GradfitError(f"{name} has no variant {variant!r}; its one variant is {method.variant}")
    return method


#: Levenberg–Marquardt (optimizer name "lm") and trust-region Newton ("newton"), `gradfit.polish`'s
#: own builders (``gradfit.newton`` is the damped Newton module regression fits use).
lm, trust_newton = polish.lm, polish.newton


OPTIMIZERS: dict[str, Callable[..., Optimizer]] = {
    "gd": gd, "sgd": sgd, "momentum": momentum, "nesterov": nesterov, "normalized": normalized,
    "adam": adam, "rmsprop": rmsprop, "adagrad": adagrad, "adamw": adamw, "lm": lm, "newton": trust_newton,
}

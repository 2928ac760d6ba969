"""Losses as negative log-likelihoods, -log Pr(y | θ = link(f)), one value per example.

Each loss states its target domain, its link from the model output f to the
distribution's parameter, and which constants it drops unless ``full=True``. All are
computed from the model output directly (logits, linear predictors), never through
a probability that could round to 0 or 1, so no log of 0 and no overflow in exp.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import gammaln, i0e

from .data import text_summary
from .errors import GradfitError, unknown_name

_HALF_LOG_2PI = 0.5 * np.log(2.0 * np.pi)


@dataclass(frozen=True)
class Loss:
    """A per-example negative log-likelihood ``nll(f, y, **settings)``.

    ``outputs`` is how many model outputs one example needs: 1, 2 (mean and scale),
    or 0 for "one per class" (categorical). ``target`` names the domain of y.
    """

    name: str
    nll: Callable[..., jax.Array]
    settings: tuple[tuple[str, Any], ...]
    target: str
    outputs: int = 1

    def __call__(self, f: jax.Array, y: jax.Array) -> jax.Array:
        return self.nll(f, y, **dict(self.settings))

    def describe(self) -> str:
        settings = ", ".join(f"{k}={v}" for k, v in self.settings if v is not None)
        return f"{self.name}({settings})" if settings else self.name

    def check_targets(self, y: np.ndarray, n_outputs: int, name: str | None = None) -> None:
        """Raise a `GradfitError` if y is outside this likelihood's domain.

        Text labels (``cat``, ``dog``) are refused with the recoding to use; ``name``
        names the target column in the message.
        """
        y = np.asarray(y)
        if y.dtype.kind not in "biuf":
            try:
                y = y.astype(float)
            except (TypeError, ValueError):
                raise GradfitError(self._text_targets(y, n_outputs, name)) from None
        if self.target == "count":
            if np.any(y < 0) or np.any(y != np.round(y)):
                bad = y[(y < 0) | (y != np.round(y))][:3]
                raise GradfitError(
                    f"the {self.name} loss needs counts 0, 1, 2, ...; the targets include "
                    f"{', '.join(map(str, bad))}. Use a normal loss for real-valued targets."
                )
        elif self.target == "binary":
            if not np.all((y == 0) | (y == 1)):
                bad = np.unique(y[(y != 0) & (y != 1)])[:3]
                raise GradfitError(
                    f"the {self.name} loss needs labels 0 or 1; the targets include "
                    f"{', '.join(map(str, bad))}. Recode them, or use the categorical loss."
                )
        elif self.target == "class":
            bad = (y < 0) | (y >= n_outputs) | (y != np.round(y))
            if np.any(bad):
                raise GradfitError(
                    f"the {self.name} loss needs class labels 0..{n_outputs - 1} "
                    f"(the model has {n_outputs} outputs); the targets include "
                    f"{', '.join(map(str, np.unique(y[bad])[:3]))}"
                )

    def _text_targets(self, y: np.ndarray, n_outputs: int, name: str | None) -> str:
        labels = [v for v in y.ravel() if v is not None and not (isinstance(v, float) and v != v)]
        listed, recode = text_summary(labels)
        needs = {
            "binary": "0/1 targets",
            "count": "counts 0, 1, 2, ...",
            "class": f"class labels 0..{max(n_outputs, 2) - 1}",
        }.get(self.target, "numbers")
        what = f"column {name!r} holds" if name else "the targets hold"
        return f"{what} text ({listed}); the {self.name} loss needs {needs}: recode them, e.g. {recode}"

    def check_outputs(self, shape: tuple[int, ...], model_name: str) -> None:
        """Raise a `GradfitError` if the model output's shape does not suit this loss."""
        per_example = shape[1] if len(shape) == 2 else 1
        if len(shape) > 2:
            raise GradfitError(f"model {model_name!r} returns shape {shape}; a loss needs (N,) or (N, K)")
        if self.outputs == 0 and per_example < 2:
            raise GradfitError(
                f"the {self.name} loss needs one model output per class (N, K) with K >= 2; "
                f"model {model_name!r} gives {per_example}"
            )
        if self.outputs > 0 and per_example != self.outputs:
            raise GradfitError(
                f"the {self.name} loss needs {self.outputs} model output(s) per example; "
                f"model {model_name!r} gives {per_example}"
            )


def _squeeze(f: jax.Array) -> jax.Array:
    return f[:, 0] if f.ndim == 2 else f


def _safe_log_softplus(f: jax.Array) -> jax.Array:
    # log(softplus f) = log log(1 + e^f) underflows for very negative f, where
    # softplus f ≈ e^f and its log is f itself. The double where keeps gradients finite.
    small = f < -30.0
    safe = jnp.where(small, 0.0, f)
    return jnp.where(small, f, jnp.log(jax.nn.softplus(safe)))


def _xlogy_term(y: jax.Array, log_rate: jax.Array) -> jax.Array:
    # y log λ with 0 · log 0 = 0.
    return jnp.where(y == 0, 0.0, y * log_rate)


# -- normal ----------------------------------------------------------------------


def _normal_nll(f, y, sigma):
    r = _squeeze(f) - y
    if sigma is None:
        return r * r
    return r * r / (2.0 * sigma * sigma) + jnp.log(sigma) + _HALF_LOG_2PI


def normal(sigma: float | None = None) -> Loss:
    """Normal likelihood with fixed σ and mean μ = f.

    With no σ this is the slides' least-squares loss ℓ = (f - y)², which is the
    normal NLL scaled by 2σ² with its constants dropped. With σ given it is the full
    NLL ℓ = (y - f)² / (2σ²) + log σ + ½ log 2π.
    """
    if sigma is not None and not sigma > 0:
        raise GradfitError(f"the normal loss needs sigma > 0, not {sigma}")
    return Loss("normal", _normal_nll, (("sigma", None if sigma is None else float(sigma)),), "real")


def _hetero_nll(f, y, link):
    mu, raw = f[:, 0], f[:, 1]
    if link == "softplus":
        log_sigma = _safe_log_softplus(raw)
    else:  # σ² = f₂², so log σ = log |f₂|
        log_sigma = jnp.log(jnp.abs(raw))
    r = (y - mu) * jnp.exp(-log_sigma)
    return log_sigma + 0.5 * r * r + _HALF_LOG_2PI


def hetero_normal(link: str = "softplus") -> Loss:
    """Heteroscedastic normal: the model gives μ = f₁ and the scale from f₂.

    ℓ = log σ + (y - μ)² / (2σ²) + ½ log 2π, with σ = softplus(f₂) (default, always
    positive) or σ² = f₂² (``link="square"``, the book's form; undefined at f₂ = 0).
    """
    if link not in ("softplus", "square"):
        raise unknown_name("hetero_normal link", link, ("softplus", "square"))
    return Loss("hetero_normal", _hetero_nll, (("link", link),), "real", outputs=2)


# -- Bernoulli and categorical ---------------------------------------------------


def _bernoulli_nll(f, y):
    f = _squeeze(f)
    # -y log σ(f) - (1-y) log(1-σ(f)) = softplus(f) - y f, exact and stable for any f.
    return jax.nn.softplus(f) - y * f


def bernoulli() -> Loss:
    """Bernoulli likelihood for y in {0, 1} with λ = sigmoid(f), from the logit f.

    ℓ = -y log λ - (1-y) log(1-λ) = softplus(f) - y f, which never takes the log of 0.
    """
    return Loss("bernoulli", _bernoulli_nll, (), "binary")


def _categorical_nll(f, y):
    picked = jnp.take_along_axis(f, y.astype(jnp.int32)[:, None], axis=1)[:, 0]
    return jax.nn.logsumexp(f, axis=1) - picked


def categorical() -> Loss:
    """Categorical likelihood for a class y in 0..K-1 from K logits f.

    ℓ = -log softmax(f)_y = logsumexp(f) - f_y, computed with log-sum-exp.
    """
    return Loss("categorical", _categorical_nll, (), "class", outputs=0)


# -- Poisson ----------------------------------------------------------------------


def _poisson_nll(f, y, link, full):
    f = _squeeze(f)
    if link == "exp":
        rate, log_rate = jnp.exp(f), f
    else:
        rate, log_rate = jax.nn.softplus(f), _safe_log_softplus(f)
    value = rate - _xlogy_term(y, log_rate)
    return value + gammaln(y + 1.0) if full else value


def poisson(link: str = "exp", full: bool = False) -> Loss:
    """Poisson likelihood for counts y = 0, 1, 2, ... with rate λ = exp(f) or softplus(f).

    ℓ = λ - y log λ + log y!. The log y! term does not depend on the parameters and is
    dropped unless ``full=True`` (as PyTorch's PoissonNLLLoss does). With the exp link
    log λ is f itself, so no exp is taken inside a log; the rate e^f is the loss's own.
    """
    if link not in ("exp", "softplus"):
        raise unknown_name("poisson link", link, ("exp", "softplus"))
    return Loss("poisson", _poisson_nll, (("link", link), ("full", bool(full))), "count")


# -- von Mises --------------------------------------------------------------------


def _von_mises_nll(f, y, kappa, full):
    value = -kappa * jnp.cos(y - _squeeze(f))
    if full:  # log(2π I0(κ)) = log 2π + log i0e(κ) + κ, stable for large κ
        value = value + jnp.log(2.0 * jnp.pi) + jnp.log(i0e(kappa)) + kappa
    return value


def von_mises(kappa: float = 1.0, full: bool = False) -> Loss:
    """Von Mises likelihood for an angle y with mean direction μ = f and fixed κ.

    ℓ = -κ cos(y - f) + log(2π I0(κ)); the constant is dropped unless ``full=True``.
    """
    if not kappa > 0:
        raise GradfitError(f"the von Mises loss needs kappa > 0, not {kappa}")
    return Loss("von_mises", _von_mises_nll, (("kappa", float(kappa)), ("full", bool(full))), "angle")


LOSSES: dict[str, Callable[..., Loss]] = {
    "normal": normal,
    "hetero_normal": hetero_normal,
    "bernoulli": bernoulli,
    "categorical": categorical,
    "poisson": poisson,
    "von_mises": von_mises,
}


def make_loss(name: str, **settings: Any) -> Loss:
    """A loss by name; see `LOSSES` for the names."""
    try:
        factory = LOSSES[name]
    except KeyError:
        raise unknown_name("loss", name, LOSSES) from None
    return factory(**settings)

"""The objective L[φ] = Σ_i ℓ(f[x_i, φ], y_i): a model and a loss over data.

Sum over examples is the default, as in the slides; ``reduction="mean"`` divides by
the number of examples counted. A weighted objective is L[φ] = Σ_i w_i ℓ_i; its
targets then travel as an (N, 2) array [y, w], so the compiled loop, its batches and
Newton's method carry the weights without knowing of them (`Objective.targets`). A
mini-batch is a set of row indices with a mask, so batches of one static shape can hold
fewer real examples (the last of an epoch).
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from .errors import GradfitError
from .losses import Loss
from .models import Model

REDUCTIONS = ("sum", "mean")


@dataclass(frozen=True)
class Objective:
    """L[φ] for a model, a loss and a reduction; φ as a flat vector in parameter order."""

    model: Model
    loss: Loss
    reduction: str = "sum"
    weighted: bool = False

    def __post_init__(self):
        if self.reduction not in REDUCTIONS:
            raise GradfitError(f"unknown reduction {self.reduction!r}; use 'sum' or 'mean'")

    @staticmethod
    def targets(y, weights):
        """The targets as this objective takes them: y, or [y, w] when weighted (numpy)."""
        return y if weights is None else np.stack([y, np.asarray(weights, y.dtype)], axis=1)

    def per_example(self, theta: jax.Array, x: jax.Array, y: jax.Array) -> jax.Array:
        """w_i ℓ_i for every example (w_i = 1 unweighted), at the flat parameter vector θ."""
        if self.weighted:
            y, w = y[:, 0], y[:, 1]
            return w * self._terms(theta, x, y)
        return self._terms(theta, x, y)

    def _terms(self, theta, x, y):
        f = self.model(x, self.model.unravel(theta))
        # Shapes are static under jit, so these checks cost nothing per step. Without
        # them a loss silently reads only the first of a model's outputs, and targets of
        # shape (N, 1) broadcast against (N,) outputs into an (N, N) sum.
        self.loss.check_outputs(jnp.shape(f), self.model.name)
        if jnp.shape(y) != jnp.shape(f)[:1]:
            raise GradfitError(
                f"targets y have shape {jnp.shape(y)}; model {self.model.name!r} gives outputs of shape "
                f"{jnp.shape(f)}, so y needs shape {jnp.shape(f)[:1]}"
            )
        return self.loss(f, y)

    def value(self, theta: jax.Array, x: jax.Array, y: jax.Array) -> jax.Array:
        """L[θ] over all the examples given."""
        terms = self.per_example(theta, x, y)
        return jnp.sum(terms) if self.reduction == "sum" else jnp.mean(terms)

    def batch_value(self, theta: jax.Array, x: jax.Array, y: jax.Array, idx: jax.Array, mask: jax.Array) -> jax.Array:
        """L over the rows ``idx`` where ``mask`` is true (the rest count 0)."""
        return self.masked_value(theta, x[idx], y[idx], mask)

    def masked_value(self, theta: jax.Array, x: jax.Array, y: jax.Array, mask: jax.Array) -> jax.Array:
        """L over the rows of x and y where ``mask`` is true (a mini-batch's rows themselves)."""
        terms = self.per_example(theta, x, y)
        total = jnp.sum(jnp.where(mask, terms, 0.0))
        if self.reduction == "sum":
            return total
        return total / jnp.maximum(jnp.sum(mask), 1)

"""The book's bracketing line search (notebook 6.1), for choosing α in gradient descent.

Along a descent direction d, it narrows four points a < b < c < d on [0, max_dist]
around the minimum of h(s) = L[φ - s d], and returns (b + c)/2 as the step length.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax import lax


def line_search(
    h: Callable[[jax.Array], jax.Array],
    max_dist: float = 1.0,
    thresh: float = 1e-4,
    max_iter: int = 10,
) -> jax.Array:
    """The step length s on [0, max_dist] that the book's search picks for h(s).

    Start with a = 0, b = max_dist/3, c = 2 max_dist/3, d = max_dist. While
    |b - c| > thresh and fewer than ``max_iter`` rounds have run:

    1. if h(a) is the lowest of the four, move b, c and d halfway towards a;
    2. else if h(b) < h(c): d ← c, then b ← a + (d-a)/3, c ← a + 2(d-a)/3;
    3. else: a ← b, then b and c as above.

    A value of h that is not finite counts as +inf, so the search backs away from
    steps that overflow. Pure JAX: it runs inside jit, vmap and scan.
    """
    max_dist = jnp.asarray(max_dist, dtype=jnp.result_type(float))

    def safe_h(s):
        value = h(s)
        return jnp.where(jnp.isfinite(value), value, jnp.inf)

    def cond(state):
        a, b, c, d, n = state
        return (jnp.abs(b - c) > thresh) & (n < max_iter)

    def body(state):
        a, b, c, d, n = state
        ha, hb, hc, hd = safe_h(a), safe_h(b), safe_h(c), safe_h(d)
        a_lowest = (ha <= hb) & (ha <= hc) & (ha <= hd)
        # rule 1: halve the bracket towards a
        b1, c1, d1 = a + (b - a) / 2, a + (c - a) / 2, a + (d - a) / 2
        # rules 2 and 3: drop the right or the left third
        a2 = jnp.where(hb < hc, a, b)
        d2 = jnp.where(hb < hc, c, d)
        b2, c2 = a2 + (d2 - a2) / 3, a2 + 2 * (d2 - a2) / 3
        new = tuple(jnp.where(a_lowest, x1, x2) for x1, x2 in ((a, a2), (b1, b2), (c1, c2), (d1, d2)))
        return (*new, n + 1)

    zero = jnp.zeros_like(max_dist)
    start = (zero, max_dist / 3, 2 * max_dist / 3, max_dist, jnp.asarray(0))
    _, b, c, _, _ = lax.while_loop(cond, body, start)
    return (b + c) / 2

"""Bounds and fixed values of parameters, by a change of variables every optimiser can use.

A fit with ``bounds={"k": (0, None)}`` or ``fixed={"a": 1.0}`` runs on free internal
variables u, one per scalar that is not fixed, and the model sees φ = T(u):

| bounds | φ = T(u) | u = T⁻¹(φ) |
|---|---|---|
| none | u | φ |
| lower l | l - 1 + √(u² + 1) | √((φ - l + 1)² - 1) |
| upper h | h + 1 - √(u² + 1) | √((h - φ + 1)² - 1) |
| both | l + (h - l)(sin u + 1)/2 | arcsin(2(φ - l)/(h - l) - 1) |

(the transforms MINUIT introduced and lmfit uses; the one-sided ones are computed as
l + u²/(√(u² + 1) + 1) and √(d(d + 2)), d = φ - l, the same functions without the
cancellation that costs a parameter near its bound its digits). T maps every real u
inside the bounds (φ is clipped to them against rounding), so gradient descent, Adam,
Levenberg–Marquardt and Newton run unchanged on u, and the result, its history and its
report are in φ. A fixed scalar keeps its value and is not fitted. Where dφ/du
vanishes, φ sits on its bound: such a parameter is reported as at its bound
(``FitResult.settings["at_bound"]``), as lmfit does, and has no standard error. A start
on a bound is moved inside it by 10⁻⁶ of the bound's scale, since the gradient in u is
zero there.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jax.numpy as jnp
import numpy as np

from .errors import GradfitError
from .models import Model

#: |dφ/du| (relative to its largest value) below which a parameter counts as on its bound.
AT_BOUND = 1e-3
#: How far inside its bound a start on the bound is moved, relative to the bound's scale.
NUDGE = 1e-6


@dataclass(frozen=True)
class Constraints:
    """Per-scalar bounds and fixed values of one model's parameters (flat, in parameter order)."""

    names: tuple[str, ...]
    lower: tuple[float, ...]
    upper: tuple[float, ...]
    fixed: tuple[float | None, ...]

    @property
    def free(self) -> np.ndarray:
        return np.array([v is None for v in self.fixed])

    @property
    def free_names(self) -> tuple[str, ...]:
        return tuple(n for n, v in zip(self.names, self.fixed) if v is None)

    def external(self, u, xp=jnp):
        """φ = T(u): the full parameter vector from the free internal variables (numpy or JAX)."""
        lo, hi = np.array(self.lower)[self.free], np.array(self.upper)[self.free]
        both, low_only, high_only = _kinds(lo, hi)
        lo_s, hi_s = np.where(np.isfinite(lo), lo, 0.0), np.where(np.isfinite(hi), hi, 0.0)
        # √(u² + 1) - 1 written as u²/(√(u² + 1) + 1): without the cancellation, a parameter
        # of 10⁻¹² above its bound keeps all its digits (not 4), and u² cannot overflow
        rise = u * (u / (xp.hypot(u, 1.0) + 1.0))
        value = xp.where(both, lo_s + (hi_s - lo_s) * (xp.sin(u) + 1.0) / 2.0,
                         xp.where(low_only, lo_s + rise, xp.where(high_only, hi_s - rise, u)))
        # l + (h - l) may round past h: keep φ inside its bounds, as lmfit does
        value = xp.clip(value, lo, hi)
        fixed = np.array([0.0 if v is None else v for v in self.fixed])
        if xp is np:
            full = np.broadcast_to(fixed, np.shape(value)[:-1] + fixed.shape).astype(np.result_type(value, float))
            full[..., self.free] = value
            return full
        positions = np.cumsum(self.free) - 1
        gathered = xp.take(value, np.maximum(positions, 0), axis=-1)
        return xp.where(self.free, gathered, xp.asarray(fixed, value.dtype))

    def inside(self, theta: np.ndarray) -> np.ndarray:
        """Starts with each value outside its bounds moved inside: to the middle of two bounds,
        or past one bound by its own size (at least 1)."""
        theta = np.array(theta, dtype=float)
        lo, hi = np.array(self.lower), np.array(self.upper)
        with np.errstate(invalid="ignore", over="ignore"):  # the branches not taken hold inf - inf
            middle = np.where(np.isfinite(lo) & np.isfinite(hi), lo / 2 + hi / 2,
                              np.where(np.isfinite(lo), lo + np.maximum(np.abs(lo), 1.0),
                                       hi - np.maximum(np.abs(hi), 1.0)))
        return np.where((theta < lo) | (theta > hi), middle, theta)

    def internal(self, theta: np.ndarray, where: str = "init") -> np.ndarray:
        """u = T⁻¹(φ) for starts φ (S, P), each inside its bounds (nudged off a bound)."""
        theta = np.array(theta, dtype=float)
        names = np.array(self.names)
        lo, hi = np.array(self.lower), np.array(self.upper)
        outside = ((theta < lo) | (theta > hi)) & self.free  # a fixed scalar's start is not used
        if outside.any():
            s, j = (int(i) for i in np.argwhere(outside)[0])
            where = f"{where} (start {s})" if len(theta) > 1 else where
            raise GradfitError(f"{where} puts {names[j]} at {theta[s, j]:g}, outside its bounds "
                               f"[{_bound(lo[j])}, {_bound(hi[j])}]: start inside them")
        span = np.where(np.isfinite(hi - lo), hi - lo, np.maximum(1.0, np.where(np.isfinite(lo), np.abs(lo),
                                                                               np.abs(hi))))
        span = np.where(np.isfinite(span), span, 1.0)
        theta = np.where(theta <= lo, lo + NUDGE * span, theta)
        theta = np.where(theta >= hi, hi - NUDGE * span, theta)
        theta = theta[:, self.free]
        lo, hi = lo[self.free], hi[self.free]
        both, low_only, high_only = _kinds(lo, hi)
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            # (d + 1)² - 1 = d (d + 2), d the distance from the bound: no cancellation, no overflow
            above, below = np.maximum(theta - lo, 0.0), np.maximum(hi - theta, 0.0)
            u = np.where(both, np.arcsin(np.clip(2.0 * (theta - lo) / (hi - lo) - 1.0, -1.0, 1.0)),
                         np.where(low_only, np.sqrt(above) * np.sqrt(above + 2.0),
                                  np.where(high_only, np.sqrt(below) * np.sqrt(below + 2.0), theta)))
        return u

    def at_bound(self, u: np.ndarray) -> dict[str, str]:
        """Free scalars on a bound at u: name -> "lower" or "upper"."""
        lo, hi = np.array(self.lower)[self.free], np.array(self.upper)[self.free]
        both, low_only, high_only = _kinds(lo, hi)
        u = np.asarray(u, float)
        slope = np.where(both, np.abs(np.cos(u)), np.where(low_only | high_only, np.abs(u) / np.hypot(u, 1.0),
                                                            1.0))
        side = np.where(both, np.where(np.sin(u) < 0, "lower", "upper"), np.where(low_only, "lower", "upper"))
        return {n: str(s) for n, s, g in zip(self.free_names, side, slope) if g <= AT_BOUND}

    def settings(self) -> dict[str, Any]:
        """The bounds and fixed values, as a result's settings record them: None for no bound, as
        ``bounds=`` takes them (and as JSON can hold them, which it cannot ±inf)."""
        bounds = {n: [lo if math.isfinite(lo) else None, hi if math.isfinite(hi) else None]
                  for n, lo, hi in zip(self.names, self.lower, self.upper) if math.isfinite(lo) or math.isfinite(hi)}
        fixed = {n: v for n, v in zip(self.names, self.fixed) if v is not None}
        return {"bounds": bounds, "fixed": fixed}

    def describe(self) -> str:
        parts = [f"{n} in [{_bound(lo)}, {_bound(hi)}]" for n, lo, hi in zip(self.names, self.lower, self.upper)
                 if math.isfinite(lo) or math.isfinite(hi)]
        parts += [f"{n} = {v:g}" for n, v in self.settings()["fixed"].items()]
        return "; ".join(parts)


def _kinds(lo, hi):
    fl, fh = np.isfinite(lo), np.isfinite(hi)
    return fl & fh, fl & ~fh, ~fl & fh


def _bound(value: float) -> str:
    return "-inf" if value == -math.inf else "inf" if value == math.inf else f"{value:g}"


def constraints(model: Model, bounds: Mapping[str, Any] | None, fixed: Mapping[str, Any] | None) -> Constraints | None:
    """The checked bounds and fixed values of a model's parameters, or None if there are none.

    Keys are parameter names; a bound or value given for an array parameter applies to
    each of its elements, and single elements may be named as the history names them
    (``w[0,1]``). A bound is a pair (lower, upper), either None (or ±inf) for none.
    """
    bounds, fixed = dict(bounds or {}), dict(fixed or {})
    if not bounds and not fixed:
        return None
    names = model.flat_names
    lower, upper = np.full(len(names), -math.inf), np.full(len(names), math.inf)
    values: list[float | None] = [None] * len(names)
    for key, pair in bounds.items():
        where = _positions(model, key, "bounds")
        lo, hi = _pair(key, pair)
        lower[where], upper[where] = lo, hi
    for key, value in fixed.items():
        where = _positions(model, key, "fixed")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise GradfitError(f"fixed value of {key!r} must be a number, not {value!r}") from None
        if not math.isfinite(number):
            raise GradfitError(f"fixed value of {key!r} must be finite, not {value!r}")
        for j in where:
            values[j] = number
    for j, v in enumerate(values):
        if v is not None and not lower[j] <= v <= upper[j]:
            raise GradfitError(f"{names[j]} is fixed at {v:g}, outside its bounds [{_bound(lower[j])}, "
                               f"{_bound(upper[j])}]")
    if all(v is not None for v in values):
        raise GradfitError(f"every parameter of model {model.name!r} is fixed ({', '.join(names[:8])}): "
                           "leave at least one free to fit")
    return Constraints(names, tuple(map(float, lower)), tuple(map(float, upper)), tuple(values))


def _positions(model: Model, key: str, what: str) -> list[int]:
    names = model.flat_names
    if key in names:
        return [names.index(key)]
    element = [j for j, n in enumerate(names) if n.split("[", 1)[0] == key]
    if element:
        return element
    raise GradfitError(f"{what} names {key!r}, which is not a parameter of model {model.name!r}; "
                       f"its parameters are {', '.join(model.param_names)}")


def _pair(key: str, pair: Any) -> tuple[float, float]:
    try:
        lo, hi = pair
    except (TypeError, ValueError):
        raise GradfitError(f"the bounds of {key!r} must be a pair (lower, upper), None for no bound, "
                           f"not {pair!r}") from None
    out = []
    for value, default in ((lo, -math.inf), (hi, math.inf)):
        if value is None:
            out.append(default)
            continue
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise GradfitError(f"a bound of {key!r} must be a number or None, not {value!r}") from None
        if math.isnan(number):
            raise GradfitError(f"a bound of {key!r} is NaN; give a number, or None for no bound")
        out.append(number)
    lo, hi = out
    if lo == math.inf or hi == -math.inf:
        raise GradfitError(f"the bounds of {key!r} are [{_bound(lo)}, {_bound(hi)}]: nothing lies inside them")
    if not lo < hi:
        raise GradfitError(f"the lower bound of {key!r} ({_bound(lo)}) must be below its upper bound "
                           f"({_bound(hi)}); to hold it at one value, fix it instead")
    return lo, hi


@dataclass(frozen=True)
class _Constrained:
    """A model's function of the free internal variables u: f(x, T(u))."""

    model: Model
    constraints: Constraints

    def __call__(self, x, params, **settings):
        u = jnp.stack([params[n] for n in self.constraints.free_names])
        theta = self.constraints.external(u)
        return self.model(x, self.model.unravel(theta))


def internal_model(model: Model, given: Constraints) -> Model:
    """The model as a function of the free internal variables, one scalar parameter each."""
    shapes = tuple((n, ()) for n in given.free_names)
    return dataclasses.replace(model, fn=_Constrained(model, given), shapes=shapes, init_fn=None,
                               settings=(("of", model.describe()), ("constraints", given.describe())))

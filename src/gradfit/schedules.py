"""Learning-rate schedules α_t, t = 0, 1, 2, ... counting updates.

Each is a small frozen object: its kind and whole-number settings fix the shape of a
compiled loop, and its real numbers (α and the decay's factor, rate or floor,
`Schedule.values`) are arguments the compiled loop takes at run time, so fits that
differ only in them, and the runs of a sweep, share one compile. The formulas are
optax's (``exponential_decay``, ``cosine_decay_schedule``), written out here because
optax's builders take their rates as Python numbers, not as traced arrays.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jax.numpy as jnp

from .errors import GradfitError, unknown_name


@dataclass(frozen=True)
class Schedule:
    """A learning-rate schedule: ``kind`` and its settings; call it with the step t."""

    kind: str
    lr: float
    settings: tuple[tuple[str, Any], ...] = ()
    warmup_steps: int = 0

    def __post_init__(self):
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise GradfitError(f"the learning rate must be a positive number, not {self.lr}")

    @property
    def values(self) -> dict[str, float]:
        """The real numbers a compiled loop takes at run time: ``lr`` and the decay's real settings."""
        return {"lr": self.lr, **{k: v for k, v in self.settings if k in REAL_SETTINGS}}

    def __call__(self, count):
        return self.at(count, self.values)

    def at(self, count, values: Mapping[str, Any]):
        """α_t with the real numbers from ``values`` (`values`' keys; traced arrays welcome)."""
        count = jnp.asarray(count)
        lr = values["lr"]
        base = self._base(jnp.maximum(count - self.warmup_steps, 0), lr, values)
        if self.warmup_steps == 0:
            return base
        ramp = lr * (count + 1) / (self.warmup_steps + 1)
        return jnp.where(count < self.warmup_steps, ramp, base)

    def _base(self, t, lr, values):
        # An int32 count divided by the step length would give float32: a float64 fit
        # would get its rates rounded to float32. So t is a float of the fit's precision.
        t = jnp.asarray(t, jnp.result_type(float))
        s = dict(self.settings)
        if self.kind == "constant":
            return jnp.full_like(t, lr, dtype=jnp.result_type(float))
        if self.kind == "step":  # optax.exponential_decay(lr, every, factor, staircase=True)
            return jnp.where(t <= 0, lr, lr * jnp.power(values["factor"], jnp.floor(t / s["every"])))
        if self.kind == "exponential":  # optax.exponential_decay(lr, 1, rate)
            return jnp.where(t <= 0, lr, lr * jnp.power(values["rate"], t / 1))
        if self.kind == "cosine":  # optax.cosine_decay_schedule(lr, steps, alpha=floor)
            t = jnp.minimum(t, float(s["steps"]))
            decay = 0.5 * (1 + jnp.cos(jnp.pi * t / float(s["steps"])))
            floor = values["floor"]
            return lr * ((1 - floor) * decay + floor)
        raise unknown_name("schedule", self.kind, SCHEDULES)

    def describe(self) -> str:
        parts = [f"lr={self.lr:g}"] + [f"{k}={v:g}" for k, v in self.settings]
        if self.warmup_steps:
            parts.append(f"warmup={self.warmup_steps}")
        return f"{self.kind}({', '.join(parts)})"


#: The settings that are real numbers (the rest are whole numbers that shape the loop).
REAL_SETTINGS = ("factor", "rate", "floor")

#: Schedules count steps in 32-bit integers inside the compiled loop.
MAX_STEPS = 2**31 - 1


def _within_the_step_counter(what: str, value) -> None:
    if value > MAX_STEPS:
        raise GradfitError(f"{what} must be at most {MAX_STEPS:,} (the loop's step counter), not {value:,}")


def check_schedule(schedule: Schedule) -> Schedule:
    """The schedule, if its real settings lie in their ranges; else a `GradfitError` saying which."""
    s = dict(schedule.settings)
    if "factor" in s and not 0 < s["factor"] <= 1:
        raise GradfitError(f"a step-decay factor must lie in (0, 1], not {s['factor']}")
    if "rate" in s and not 0 < s["rate"] <= 1:
        raise GradfitError(f"an exponential decay rate must lie in (0, 1], not {s['rate']}")
    if "floor" in s and not 0 <= s["floor"] <= 1:  # below 0 the rate would end negative and climb the loss
        raise GradfitError(f"a cosine schedule's floor is a fraction of lr in [0, 1], not {s['floor']}")
    return schedule


def constant(lr: float) -> Schedule:
    """α_t = α."""
    return Schedule("constant", float(lr))


def step_decay(lr: float, factor: float = 0.5, every: int = 100) -> Schedule:
    """α_t = α · factor^⌊t / M⌋: multiply α by a factor every M steps (the slides' schedule)."""
    if every < 1:
        raise GradfitError(f"a step decay needs every >= 1 step, not {every}")
    _within_the_step_counter("a step decay's every", every)
    return check_schedule(Schedule("step", float(lr), (("factor", float(factor)), ("every", int(every)))))


def exponential(lr: float, rate: float = 0.99) -> Schedule:
    """α_t = α · rate^t."""
    return check_schedule(Schedule("exponential", float(lr), (("rate", float(rate)),)))


def cosine(lr: float, steps: int, floor: float = 0.0) -> Schedule:
    """α_t = α (floor + (1 - floor) · ½(1 + cos(π min(t, T) / T))), T = ``steps``."""
    if steps < 1:
        raise GradfitError(f"a cosine schedule needs steps >= 1, not {steps}")
    _within_the_step_counter("a cosine schedule's steps", steps)
    return check_schedule(Schedule("cosine", float(lr), (("steps", int(steps)), ("floor", float(floor)))))


def warmup(schedule: Schedule | float, steps: int) -> Schedule:
    """Linear warm-up: α_t = α_0 (t + 1)/(W + 1) for t < W, then the schedule from its start."""
    if steps < 0:
        raise GradfitError(f"warm-up steps must be >= 0, not {steps}")
    _within_the_step_counter("warm-up steps", steps)
    schedule = as_schedule(schedule)
    return Schedule(schedule.kind, schedule.lr, schedule.settings, int(steps))


def as_schedule(lr: Schedule | float) -> Schedule:
    """A schedule from a number (constant) or a schedule."""
    if isinstance(lr, Schedule):
        return lr
    try:
        value = float(lr)
    except (TypeError, ValueError):
        raise GradfitError(f"the learning rate must be a number or a Schedule, not {lr!r}") from None
    return constant(value)


SCHEDULES = {"constant": constant, "step": step_decay, "exponential": exponential, "cosine": cosine}


def make_schedule(kind: str, lr: float, **settings: Any) -> Schedule:
    """A schedule by name: constant, step, exponential or cosine."""
    try:
        factory = SCHEDULES[kind]
    except KeyError:
        raise unknown_name("schedule", kind, SCHEDULES) from None
    return factory(lr, **settings)

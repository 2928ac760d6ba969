"""The configurations a sweep runs: grid axes and random-search distributions over hyperparameters.

A sweep is a `Space`: the optimisers (each with a variant), one `Axis` per swept name, and
the seeds. An axis is a list of values or a range [lo, hi]. For a grid, a range gives n
points, both ends included: ``lin`` spaces them evenly (``np.linspace``), ``log``
geometrically (``np.geomspace``, x_k = lo (hi/lo)^{k/(n-1)}). For random search, ``lin``
is the uniform distribution on [lo, hi], ``log`` the log-uniform one (log x uniform on
[log lo, log hi]), whether or not the range has a count, and a list a uniform choice among
its values. Whole-number names (`WHOLE`) round a grid's points and keep each once.

Continuous names (`CONTINUOUS`, and ``init.<parameter>`` starts) are traced at run time,
so all their values share one compile; each value of a discrete name (`DISCRETE`) is its
own compiled group. Nothing here compiles or fits: the runner adds seeds and defaults, and
checks ``init.<parameter>`` names against the model.
"""

from __future__ import annotations

import itertools
import math
import operator
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import GradfitError, unknown_name
from ..optimizers import RULES, SECOND_ORDER, VARIANTS
from ..schedules import MAX_STEPS, SCHEDULES

#: Names traced at run time: every value of these shares one compiled loop.
CONTINUOUS: tuple[str, ...] = ("lr", "beta", "gamma", "eps", "weight_decay", "factor", "rate", "floor")

#: Names that change the compiled loop: each value is its own compiled group.
DISCRETE: tuple[str, ...] = ("variant", "batch_size", "steps", "epochs", "schedule", "every", "decay_steps", "warmup")

#: Discrete names that count something; their ranges round to unique whole numbers.
WHOLE: tuple[str, ...] = ("batch_size", "steps", "epochs", "every", "decay_steps", "warmup")

#: Names whose values are names, not numbers.
NAMED: tuple[str, ...] = ("variant", "schedule")

#: Hyperparameters of the update rule; an optimiser takes those in its `RULES` defaults (and lr).
OPTIMIZER_SETTINGS: tuple[str, ...] = ("beta", "gamma", "eps", "weight_decay")

#: The schedule each schedule setting belongs to (``every``: the step decay's period M,
#: ``decay_steps``: the cosine's horizon T).
SCHEDULE_OF: dict[str, str] = {
    "factor": "step", "every": "step", "rate": "exponential", "floor": "cosine", "decay_steps": "cosine",
}

SCALES = ("log", "lin")

#: The most values a whole-number (discrete) axis may take: each is a compiled group.
MAX_GROUPS = 10_000

_INIT = "init."


@dataclass(frozen=True)
class _Domain:
    holds: Callable[[float], bool]
    text: str


_POSITIVE = _Domain(lambda v: v > 0, "must be > 0")
_FRACTION_BELOW_ONE = _Domain(lambda v: 0 <= v < 1, "must lie in [0, 1)")
_NON_NEGATIVE = _Domain(lambda v: v >= 0, "must be >= 0")
_DECAY = _Domain(lambda v: 0 < v <= 1, "must lie in (0, 1]")
_AT_LEAST_ONE = _Domain(lambda v: v >= 1, "must be >= 1")
_STEP_COUNT = _Domain(lambda v: 1 <= v <= MAX_STEPS, f"must lie in [1, {MAX_STEPS}] (the loop's step counter)")

#: Where each numeric name's values may lie (init.<parameter> starts: any finite number).
_DOMAINS: dict[str, _Domain] = {
    "lr": _POSITIVE,
    "beta": _FRACTION_BELOW_ONE,
    "gamma": _FRACTION_BELOW_ONE,
    "eps": _NON_NEGATIVE,
    "weight_decay": _NON_NEGATIVE,
    "factor": _DECAY,
    "rate": _DECAY,
    "floor": _Domain(lambda v: 0 <= v <= 1, "must lie in [0, 1]"),
    "batch_size": _AT_LEAST_ONE,
    "epochs": _AT_LEAST_ONE,
    "steps": _STEP_COUNT,
    "every": _STEP_COUNT,
    "decay_steps": _STEP_COUNT,
    "warmup": _Domain(lambda v: 0 <= v <= MAX_STEPS, f"must lie in [0, {MAX_STEPS}] (the loop's step counter)"),
}


def _check_name(name: str) -> None:
    if name.startswith(_INIT):
        if not name[len(_INIT):].isidentifier():
            raise GradfitError(f"{name!r} is no start: write init.<parameter>, e.g. init.phi0")
        return
    if name not in CONTINUOUS and name not in DISCRETE:
        raise unknown_name("hyperparameter", name, [*CONTINUOUS, *DISCRETE, "init.<parameter>"])


def _show(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.12g}"
    return str(value)


@dataclass(frozen=True)
class Axis:
    """One swept name: explicit ``values``, or a range [lo, hi] on a ``lin`` or ``log`` scale with n points.

    A range without n is a distribution for random search only. Values are normalised on
    construction: names stay strings, whole-number names hold ints, the rest floats.
    """

    name: str
    values: tuple[Any, ...] | None = None
    lo: float | None = None
    hi: float | None = None
    scale: str | None = None
    n: int | None = None

    def __post_init__(self):
        _check_name(self.name)
        ranged = (self.lo, self.hi, self.scale, self.n) != (None, None, None, None)
        if (self.values is not None) == ranged:
            raise GradfitError(f"an Axis for {self.name} holds values or a range lo, hi, scale (and n), one of them")
        if self.values is not None:
            self._normalise_values()
        else:
            self._normalise_range()

    # -- construction ------------------------------------------------------------

    def _set(self, **fields: Any) -> None:
        for key, value in fields.items():
            object.__setattr__(self, key, value)

    def _normalise_values(self) -> None:
        values = tuple(self.values)
        self._set(values=values)
        if not values:
            raise GradfitError(f"{self.name} has no values: list them ({self.name}=a,b,c) or give a range "
                               f"({self.name}=lo:hi:log:n)")
        if self.name in NAMED:
            values = tuple(self._named(v) for v in values)
        else:
            values = tuple(self._numeric(v) for v in values)
        repeated = next((v for i, v in enumerate(values) if v in values[:i]), None)
        if repeated is not None:
            raise GradfitError(f"{self.text} lists {_show(repeated)} twice: give each value once")
        self._set(values=values)

    def _named(self, value: Any) -> str:
        if not isinstance(value, str) or not value.strip():
            raise GradfitError(f"{self.text}: {self.name} takes names, not {value!r}")
        value = value.strip()
        if self.name == "schedule" and value not in SCHEDULES:
            raise unknown_name("schedule", value, SCHEDULES)
        return value

    def _numeric(self, value: Any) -> float | int:
        if isinstance(value, str | bool):
            raise GradfitError(f"{self.text}: {value!r} is not a number")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise GradfitError(f"{self.text}: {value!r} is not a number") from None
        if not math.isfinite(number):
            raise GradfitError(f"{self.text}: {self.name} must be a finite number, not {_show(number)}")
        if self.whole:
            if not number.is_integer():
                raise GradfitError(f"{self.text}: {self.name} takes whole numbers, not {_show(number)}")
            number = int(number)
        domain = _DOMAINS.get(self.name)
        if domain is not None and not domain.holds(number):
            raise GradfitError(f"{self.text}: {self.name} {domain.text}, not {_show(number)}")
        return number

    def _normalise_range(self) -> None:
        if self.name in NAMED:
            raise GradfitError(f"{self.name} takes a list of names ({self.name}=a,b), not a range")
        if self.scale not in SCALES:
            raise GradfitError(f"{self.text}: the scale must be log or lin, not {self.scale!r}")
        if self.lo is None or self.hi is None:
            raise GradfitError(f"{self.text}: a range needs both lo and hi")
        if self.n is not None:
            n = float(self.n)
            if not (math.isfinite(n) and n.is_integer() and n >= 1):
                raise GradfitError(f"{self.text}: the count must be a whole number >= 1, not {_show(self.n)}")
            self._set(n=int(n))
            if self.whole and self.n > MAX_GROUPS:
                raise GradfitError(f"{self.text} asks for {self.n:,} values of {self.name}, each a compiled group of "
                                   f"its own: give at most {MAX_GROUPS:,}")
        self._set(lo=self._numeric(self.lo), hi=self._numeric(self.hi))
        if self.lo > self.hi:
            swapped = Axis(self.name, lo=self.hi, hi=self.lo, scale=self.scale, n=self.n)
            raise GradfitError(f"{self.text}: lo {_show(self.lo)} is above hi {_show(self.hi)}; give {swapped.text}")
        if self.lo == self.hi:
            raise GradfitError(f"{self.text}: lo equals hi; for one value give {self.name}={_show(self.lo)}")
        if self.scale == "log" and not self.lo > 0:
            raise GradfitError(
                f"{self.text}: a log range needs lo > 0, not {_show(self.lo)}; start above 0 or use lin"
            )

    # -- what it holds -------------------------------------------------------------

    @property
    def whole(self) -> bool:
        """Whether the values are whole numbers (counts of steps, epochs, rows)."""
        return self.name in WHOLE

    @property
    def continuous(self) -> bool:
        """Whether the values are traced at run time (one compile for all of them)."""
        return self.name in CONTINUOUS or self.name.startswith(_INIT)

    @property
    def text(self) -> str:
        """The axis as a ``--grid`` option: ``lr=0.001:1:log:64``, ``beta=0.5,0.9``."""
        if self.values is not None:
            return f"{self.name}={','.join(_show(v) for v in self.values)}"
        parts = [self.lo, self.hi, self.scale] + ([] if self.n is None else [self.n])
        return f"{self.name}={':'.join(_show(p) for p in parts)}"

    def _require_count(self) -> None:
        if self.values is None and self.n is None:
            raise GradfitError(f"{self.text} has no count: give {self.text}:64 for a grid, or use --random N")

    def grid_values(self) -> tuple[Any, ...]:
        """The values a grid runs: the list, or n points from lo to hi (whole names: rounded, unique)."""
        self._require_count()
        if self.values is not None:
            return self.values
        points = (np.geomspace if self.scale == "log" else np.linspace)(self.lo, self.hi, self.n)
        if self.whole:
            return tuple(int(v) for v in np.unique(np.round(points)))
        return tuple(float(v) for v in points)

    def size(self) -> int:
        """How many values a grid runs on this axis."""
        self._require_count()
        if self.values is not None:
            return len(self.values)
        return len(self.grid_values()) if self.whole else self.n

    def sample(self, rng: np.random.Generator, n: int) -> tuple[Any, ...]:
        """n draws: a uniform choice among the values, or x ~ U[lo, hi] (lin) or log x ~ U[log lo, log hi] (log).

        Whole numbers draw k ~ U{lo, ..., hi} (lin), or k = ⌊exp u⌋ with u ~ U[log lo, log(hi + 1))
        (log), so that P(k) = log((k + 1)/k) / log((hi + 1)/lo), the log-uniform law on whole numbers.
        """
        if self.values is not None:
            return tuple(self.values[i] for i in rng.integers(len(self.values), size=n))
        if self.whole:
            if self.scale == "lin":
                draws = rng.integers(self.lo, self.hi + 1, size=n)
            else:
                draws = np.floor(np.exp(rng.uniform(np.log(self.lo), np.log(self.hi + 1), size=n)))
            return tuple(int(v) for v in np.clip(draws, self.lo, self.hi))
        if self.scale == "lin":
            draws = rng.uniform(self.lo, self.hi, size=n)
        else:
            draws = np.exp(rng.uniform(np.log(self.lo), np.log(self.hi), size=n))
        # exp(log hi) can round to just above hi.
        return tuple(float(v) for v in np.clip(draws, self.lo, self.hi))

    def describe(self) -> dict[str, Any]:
        if self.values is not None:
            return {"values": list(self.values)}
        return {"lo": self.lo, "hi": self.hi, "scale": self.scale, "n": self.n}


# -- parsing the command line -------------------------------------------------------


def _number(piece: str, text: str) -> float:
    piece = piece.strip()
    if not piece:
        raise GradfitError(f"{text} has an empty value: separate values by single commas, e.g. beta=0.5,0.9")
    try:
        return float(piece)
    except ValueError:
        raise GradfitError(f"{text}: {piece!r} is not a number") from None


def _parse_range(name: str, rest: str, text: str) -> Axis:
    parts = [p.strip() for p in rest.split(":")]
    if len(parts) > 4:
        raise GradfitError(f"{text}: a range is lo:hi, lo:hi:n or lo:hi:log|lin[:n], e.g. {name}=0.001:1:log:64")
    lo, hi, tail = _number(parts[0], text), _number(parts[1], text), parts[2:]
    scale = tail.pop(0) if tail and (tail[0] in SCALES or len(tail) == 2) else "lin"
    if scale not in SCALES:
        raise GradfitError(f"{text}: the scale must be log or lin, not {scale!r}")
    if tail and tail[0].isalpha():
        raise GradfitError(f"{text}: {tail[0]!r} is neither a scale (log, lin) nor a count")
    n = _number(tail[0], text) if tail else None
    return Axis(name, lo=lo, hi=hi, scale=scale, n=n)


def parse_grid(text: str) -> tuple[str, Axis]:
    """One ``--grid`` option: ``name=v1,v2``, ``name=lo:hi:log:n``, ``name=lo:hi:lin:n`` or ``name=lo:hi:n``.

    Without the count, ``name=lo:hi:log`` (or ``lin``, or ``name=lo:hi``) is a distribution for random
    search only; ``variant`` and ``schedule`` take lists of names.
    """
    name, equals, rest = text.partition("=")
    name, rest = name.strip(), rest.strip()
    if not equals:
        raise GradfitError(f"grid {text!r} has no '=': write name=values, e.g. lr=0.001:1:log:64 or beta=0.5,0.9")
    if not name:
        raise GradfitError(f"grid {text!r} names nothing before '=': write name=values, e.g. lr=0.001:1:log:64")
    _check_name(name)
    if not rest:
        raise GradfitError(f"{text} gives {name} no values: list them ({name}=a,b,c) or give a range "
                           f"({name}=lo:hi:log:n)")
    if name in NAMED:
        return name, Axis(name, values=tuple(v.strip() for v in rest.split(",")))
    if ":" in rest:
        if "," in rest:
            raise GradfitError(f"{text}: give a list ({name}=a,b,c) or a range ({name}=lo:hi:log:n), not both")
        return name, _parse_range(name, rest, text)
    return name, Axis(name, values=tuple(_number(v, text) for v in rest.split(",")))


def parse_grids(texts: Iterable[str]) -> dict[str, Axis]:
    """Several ``--grid`` options as `Space.axes`; a name given twice is refused."""
    axes: dict[str, Axis] = {}
    for text in texts:
        name, axis = parse_grid(text)
        if name in axes:
            raise GradfitError(f"{name} is swept twice ({axes[name].text} and {axis.text}): give one --grid {name}")
        axes[name] = axis
    return axes


def _check_optimizer(name: str, variant: str | None) -> None:
    if name in SECOND_ORDER:
        raise GradfitError(f"{name} is a second-order method with no learning rate to sweep; sweep the first-order "
                           f"optimizers: {', '.join(RULES)}")
    if name not in RULES:
        raise unknown_name("optimizer", name, RULES)
    if variant is not None and variant not in VARIANTS[name]:
        raise GradfitError(f"unknown variant {variant!r} of {name}; known variants: {', '.join(VARIANTS[name])}")


def _default_variant(name: str, variant: str | None) -> str:
    return VARIANTS[name][0] if variant is None else variant


def _check_optimizers(optimizers: tuple[tuple[str, str | None], ...]) -> None:
    if not optimizers:
        raise GradfitError("no optimizer to sweep: give one or more, e.g. --optimizer adam,momentum")
    seen: set[tuple[str, str]] = set()
    for name, variant in optimizers:
        _check_optimizer(name, variant)
        resolved = (name, _default_variant(name, variant))
        if resolved in seen:
            raise GradfitError(f"{name}:{resolved[1]} is listed twice: give each optimizer and variant once")
        seen.add(resolved)


def parse_optimizers(text: str) -> tuple[tuple[str, str | None], ...]:
    """``"adam,momentum:heavy-ball"`` -> ``(("adam", None), ("momentum", "heavy-ball"))``."""
    optimizers = []
    for piece in text.split(","):
        name, colon, variant = (p.strip() for p in piece.partition(":"))
        if not name or (colon and not variant):
            raise GradfitError(f"--optimizer {text!r} has an empty entry: write name or name:variant, "
                               "separated by commas, e.g. adam,momentum:heavy-ball")
        optimizers.append((name, variant or None))
    optimizers = tuple(optimizers)
    _check_optimizers(optimizers)
    return optimizers


# -- the space ------------------------------------------------------------------------


@dataclass(frozen=True)
class Space:
    """What a sweep runs: each optimiser (name, variant or None for its default) × the axes' values, per seed.

    With ``random`` set, ``random`` configurations are drawn instead of the grid's product.
    ``schedule`` is the learning-rate schedule when no ``schedule`` axis sweeps it.
    """

    optimizers: tuple[tuple[str, str | None], ...]
    axes: dict[str, Axis] = field(default_factory=dict)
    seeds: tuple[int, ...] = (0,)
    random: int | None = None
    random_seed: int = 0
    schedule: str = "constant"

    def __post_init__(self):
        object.__setattr__(self, "optimizers", tuple((name, variant) for name, variant in self.optimizers))
        object.__setattr__(self, "axes", dict(self.axes))
        object.__setattr__(self, "seeds", _seeds(self.seeds))
        _check_optimizers(self.optimizers)
        for check in _CHECKS:
            check(self)

    @property
    def search(self) -> str:
        """``grid`` or ``random``."""
        return "grid" if self.random is None else "random"

    def size(self) -> int:
        """How many configurations (runs: this × len(seeds)), without building them."""
        if self.random is not None:
            return self.random
        return len(self.optimizers) * math.prod(axis.size() for axis in self.axes.values())

    def runs(self) -> int:
        """How many fits the sweep runs: configurations × seeds."""
        return self.size() * len(self.seeds)

    def _head(self, name: str, variant: str | None) -> dict[str, Any]:
        return {"optimizer": name, "variant": _default_variant(name, variant)}

    def configurations(self) -> list[dict[str, Any]]:
        """Each run's optimiser, variant and swept values (no seeds, no defaults), in a fixed order.

        A grid varies the last axis fastest and the optimisers slowest. Random search draws the
        optimiser (when there are several), then each axis in name order, from
        ``np.random.default_rng(random_seed)``.
        """
        names = list(self.axes)
        if self.random is None:
            columns = [self.axes[name].grid_values() for name in names]
            return [
                {**self._head(*optimizer), **dict(zip(names, row))}
                for optimizer in self.optimizers
                for row in itertools.product(*columns)
            ]
        rng = np.random.default_rng(self.random_seed)
        count = len(self.optimizers)
        picks = rng.integers(count, size=self.random) if count > 1 else np.zeros(self.random, int)
        draws = {name: self.axes[name].sample(rng, self.random) for name in sorted(names)}
        return [
            {**self._head(*self.optimizers[pick]), **{name: draws[name][i] for name in names}}
            for i, pick in enumerate(picks)
        ]

    def describe(self) -> dict[str, Any]:
        """The sweep as JSON-able data; two sweeps that run the same configurations describe alike."""
        description = {
            "search": self.search,
            "optimizers": [[name, _default_variant(name, variant)] for name, variant in self.optimizers],
            "schedule": self.schedule,
            "axes": {name: axis.describe() for name, axis in self.axes.items()},
            "seeds": list(self.seeds),
            "size": self.size(),
        }
        if self.random is not None:
            description["random"] = self.random
            description["random_seed"] = self.random_seed
        return description


def _seeds(seeds: Iterable[int]) -> tuple[int, ...]:
    if not isinstance(seeds, Iterable):
        raise GradfitError(f"seeds are a tuple of seeds, not {seeds!r}: for {seeds!r} seeds give range({seeds!r})")
    try:
        seeds = tuple(operator.index(s) for s in seeds)
    except TypeError:
        raise GradfitError(f"seeds must be whole numbers, not {seeds!r}") from None
    if not seeds:
        raise GradfitError("no seeds: give at least one, e.g. --seeds 1")
    if min(seeds) < 0:
        raise GradfitError(f"seeds must be >= 0, not {min(seeds)}")
    if len(set(seeds)) < len(seeds):
        raise GradfitError("a seed is listed twice: give each seed once")
    return seeds


def whole_number(value: Any, least: int, what: str) -> int:
    """``value`` as a whole number >= ``least`` (not a bool), or the error naming ``what``."""
    try:
        number = operator.index(value)
    except TypeError:
        number = None
    if isinstance(value, bool) or number is None or number < least:
        raise GradfitError(f"{what} must be a whole number >= {least}, not {value!r}")
    return number


def _check_search(space: Space) -> None:
    if space.random is not None:
        object.__setattr__(space, "random", whole_number(space.random, 1, "the number of random draws"))
        object.__setattr__(space, "random_seed", whole_number(space.random_seed, 0, "the random seed"))
        if not space.axes and len(space.optimizers) == 1:
            raise GradfitError("random search has nothing to draw: give a --grid range or list, or several optimizers")
        return
    for axis in space.axes.values():
        axis._require_count()


def _check_axes(space: Space) -> None:
    for name, axis in space.axes.items():
        if not isinstance(axis, Axis):
            raise GradfitError(f"the axis for {name} must be an Axis (see parse_grid), not {type(axis).__name__}")
        if axis.name != name:
            raise GradfitError(f"the axis under {name!r} sweeps {axis.name!r}: key each axis by its name")


def _check_takes(space: Space) -> None:
    """Each optimiser takes lr and the rule's own hyperparameters (`RULES` defaults)."""
    several = len(space.optimizers) > 1
    for key in space.axes:
        if key not in OPTIMIZER_SETTINGS:
            continue
        for name, _ in space.optimizers:
            defaults = RULES[name].defaults
            if key not in defaults:
                takes = ", ".join(["lr", *(k for k in defaults if k in OPTIMIZER_SETTINGS)])
                fix = f": drop {key}, or sweep {name} on its own" if several else ""
                raise GradfitError(f"{name} takes no {key}; it takes {takes}{fix}")


def _check_variants(space: Space) -> None:
    axis = space.axes.get("variant")
    if axis is None:
        return
    fixed = next(((n, v) for n, v in space.optimizers if v is not None), None)
    if fixed is not None:
        raise GradfitError(f"{fixed[0]}:{fixed[1]} fixes the variant that {axis.text} sweeps: give {fixed[0]} "
                           "alone, or drop the variant axis")
    for name, _ in space.optimizers:
        missing = [v for v in axis.values if v not in VARIANTS[name]]
        if missing:
            raise GradfitError(f"{name} has no variant {missing[0]!r}; its variants: {', '.join(VARIANTS[name])} "
                               "(sweep each optimizer's own variants as --optimizer adam:slides,adam:standard)")


def _check_caps(space: Space) -> None:
    if "steps" in space.axes and "epochs" in space.axes:
        raise GradfitError("steps and epochs are both swept, but a fit stops at one cap: sweep steps or epochs")


def _check_schedule(space: Space) -> None:
    """A schedule setting needs its schedule, and only it, in the sweep (no run ignores a swept value)."""
    if space.schedule not in SCHEDULES:
        raise unknown_name("schedule", space.schedule, SCHEDULES)
    axis = space.axes.get("schedule")
    if axis is not None and space.schedule != "constant":
        raise GradfitError(f"the schedule is both fixed ({space.schedule}) and swept ({axis.text}): give one")
    swept = set(axis.values) if axis is not None else {space.schedule}
    for key, kind in SCHEDULE_OF.items():
        if key in space.axes and swept != {kind}:
            raise GradfitError(f"{key} is a setting of the {kind} schedule only, and this sweep runs "
                               f"{', '.join(sorted(swept))}: set schedule={kind} (and only it), or drop {key}")


_CHECKS: tuple[Callable[[Space], None], ...] = (
    _check_axes, _check_search, _check_takes, _check_variants, _check_caps, _check_schedule,
)

"""Fit results as immutable data, with lossless JSON in and out."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from math import prod
from pathlib import Path
from typing import Any

import numpy as np

STATUSES = ("converged", "max_steps", "diverged")


def _frozen(a, dtype=float) -> np.ndarray:
    a = np.array(a, dtype=dtype)
    a.setflags(write=False)
    return a


@dataclass(frozen=True)
class History:
    """What the fit recorded: entry k holds φ and the full-data loss after ``step[k]`` updates.

    ``lr[k]`` is the rate (or line-search step) of the update that left entry k; the
    last entry has none (NaN). With a stride of 1, entry k is after k updates.
    """

    step: np.ndarray
    params: np.ndarray  # (K, P) flat, in parameter order
    loss: np.ndarray
    grad_norm: np.ndarray
    lr: np.ndarray

    def __post_init__(self):
        object.__setattr__(self, "step", _frozen(self.step, np.int64))
        for name in ("params", "loss", "grad_norm", "lr"):
            object.__setattr__(self, name, _frozen(getattr(self, name)))

    def __len__(self) -> int:
        return len(self.step)


@dataclass(frozen=True)
class FitResult:
    """The outcome of one fit: parameters, final loss, why it stopped, and its history.

    ``params`` maps each parameter name to its value (a float, or an array for array
    parameters), in parameter order. ``status`` is one of ``converged`` (gradient norm
    under tol), ``max_steps`` (the step or epoch cap) or ``diverged`` (a non-finite
    loss, gradient or parameter; ``params`` are then the last finite ones).
    """

    params: dict[str, Any]
    loss: float
    grad_norm: float
    steps: int
    status: str
    stopped: str
    history: History
    shapes: tuple[tuple[str, tuple[int, ...]], ...]
    model: str = ""
    objective: str = ""
    optimizer: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    elapsed: float = 0.0

    def __post_init__(self):
        frozen = {}
        for name, value in self.params.items():
            value = np.asarray(value, dtype=float)
            frozen[name] = float(value) if value.shape == () else _frozen(value)
        object.__setattr__(self, "params", frozen)

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.shapes)

    @property
    def converged(self) -> bool:
        return self.status == "converged"

    @property
    def x(self) -> np.ndarray:
        """The parameters as one flat vector, in parameter order (``--init`` order)."""
        return np.concatenate([np.ravel(self.params[n]) for n in self.param_names])

    # JSON -------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        h = self.history
        return {
            "params": {n: _plain(self.params[n]) for n in self.param_names},
            "loss": _plain(self.loss),
            "grad_norm": _plain(self.grad_norm),
            "steps": self.steps,
            "status": self.status,
            "stopped": self.stopped,
            "model": self.model,
            "objective": self.objective,
            "optimizer": self.optimizer,
            "settings": self.settings,
            "elapsed": self.elapsed,
            "shapes": {n: list(s) for n, s in self.shapes},
            "history": {
                "step": h.step.tolist(),
                "loss": _plain(h.loss),
                "grad_norm": _plain(h.grad_norm),
                "lr": _plain(h.lr),
                "params": [_named(row, self.shapes) for row in h.params],
            },
        }

    def to_json(self, path: str | Path | None = None, indent: int | None = 1) -> str:
        """The result as JSON text (written to ``path`` too, when given)."""
        text = json.dumps(self.to_dict(), indent=indent, allow_nan=False)
        if path is not None:
            Path(path).write_text(text + "\n")
        return text

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FitResult:
        shapes = tuple((n, tuple(s)) for n, s in d["shapes"].items())
        h = d["history"]
        flat = [np.concatenate([np.ravel(np.asarray(row[n], float)) for n, _ in shapes]) for row in h["params"]]
        size = sum(prod(s) for _, s in shapes)
        history = History(
            step=h["step"],
            params=np.reshape(np.array(flat, float), (len(flat), size)),
            loss=_floats(h["loss"]),
            grad_norm=_floats(h["grad_norm"]),
            lr=_floats(h["lr"]),
        )
        return cls(
            params={n: np.asarray(_floats(d["params"][n])) for n, _ in shapes},
            loss=_floats(d["loss"]),
            grad_norm=_floats(d["grad_norm"]),
            steps=int(d["steps"]),
            status=d["status"],
            stopped=d["stopped"],
            history=history,
            shapes=shapes,
            model=d.get("model", ""),
            objective=d.get("objective", ""),
            optimizer=d.get("optimizer", {}),
            settings=d.get("settings", {}),
            elapsed=float(d.get("elapsed", 0.0)),
        )

    @classmethod
    def from_json(cls, text_or_path: str | Path) -> FitResult:
        """A result from JSON text or from a file holding it."""
        text = str(text_or_path)
        if not text.lstrip().startswith("{"):
            text = Path(text_or_path).read_text()
        return cls.from_dict(json.loads(text))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FitResult):
            return NotImplemented
        return json.dumps(self.to_dict(), sort_keys=True) == json.dumps(other.to_dict(), sort_keys=True)

    __hash__ = None  # type: ignore[assignment]


@dataclass(frozen=True)
class MultiFit:
    """Fits of one problem from many starts, run together; ``best`` has the lowest loss."""

    fits: tuple[FitResult, ...]

    def __len__(self) -> int:
        return len(self.fits)

    def __iter__(self) -> Iterator[FitResult]:
        return iter(self.fits)

    def __getitem__(self, i: int) -> FitResult:
        return self.fits[i]

    @property
    def losses(self) -> np.ndarray:
        return np.array([f.loss for f in self.fits])

    @property
    def best(self) -> FitResult:
        losses = np.where(np.isfinite(self.losses), self.losses, np.inf)
        return self.fits[int(np.argmin(losses))]

    @property
    def params(self) -> np.ndarray:
        """Final parameters of every start, shape (S, P), in parameter order."""
        return np.stack([f.x for f in self.fits])

    def to_json(self, path: str | Path | None = None, indent: int | None = None) -> str:
        text = json.dumps({"fits": [f.to_dict() for f in self.fits]}, indent=indent, allow_nan=False)
        if path is not None:
            Path(path).write_text(text + "\n")
        return text

    @classmethod
    def from_json(cls, text_or_path: str | Path) -> MultiFit:
        text = str(text_or_path)
        if not text.lstrip().startswith("{"):
            text = Path(text_or_path).read_text()
        return cls(tuple(FitResult.from_dict(d) for d in json.loads(text)["fits"]))


def _plain(value: Any) -> Any:
    """Numbers and arrays as JSON values; NaN becomes null (JSON has no NaN)."""
    a = np.asarray(value, dtype=float)
    if a.shape == ():
        v = float(a)
        return v if math.isfinite(v) else (None if math.isnan(v) else ("inf" if v > 0 else "-inf"))
    return [_plain(v) for v in a]


def _floats(value: Any) -> Any:
    """The inverse of `_plain`."""
    if isinstance(value, list):
        return np.array([_floats(v) for v in value], dtype=float)
    if value is None:
        return math.nan
    if isinstance(value, str):
        return float(value)
    return float(value)


def _named(row: np.ndarray, shapes: Sequence[tuple[str, tuple[int, ...]]]) -> dict[str, Any]:
    out, start = {}, 0
    for name, shape in shapes:
        stop = start + prod(shape)
        out[name] = _plain(np.reshape(row[start:stop], shape))
        start = stop
    return out

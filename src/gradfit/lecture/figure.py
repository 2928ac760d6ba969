"""What a figure of the lecture is (`Built`: its files, its report section, its fits), what a run
wrote (`Output`), and the small helpers every figure uses to save and label itself. Draws nothing."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import report as rp
from ..data import Dataset
from ..errors import GradfitError
from ..models import Model


@dataclass(frozen=True)
class Built:
    """One figure's outcome: its files, its report section, and the fits behind it."""

    names: tuple[str, ...]
    section: rp.Section
    results: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Output:
    """What `build`, `compare` and `explore` wrote, and what they computed."""

    folder: Path
    report: Path
    figures: tuple[Path, ...]
    parts: tuple[Built, ...]
    elapsed: float


def make_folder(out: str | Path) -> Path:
    """The folder to write into, made if needed; a file of that name is an error, said before any work."""
    folder = Path(out)
    if folder.exists() and not folder.is_dir():
        raise GradfitError(f"{folder} is a file; give a folder to write the figures and the report into")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def save_figure(fig, folder: Path, name: str, caption: str) -> rp.Image:
    from .. import plots

    png, _ = plots.save(fig, folder, name)
    return rp.Image(caption, png=png.read_bytes(), name=f"{name}.png / {name}.svg")


def box_around(points: np.ndarray, margin: float = 0.15, min_half: float = 0.5):
    """A box holding the points (K, 2), widened by ``margin`` of its size on each side."""
    lo, hi = np.min(points, axis=0), np.max(points, axis=0)
    centre, half = (lo + hi) / 2, np.maximum((hi - lo) / 2 * (1 + 2 * margin), min_half)
    return tuple((float(c - h), float(c + h)) for c, h in zip(centre, half, strict=True))


def first_below(loss, level: float) -> int | None:
    """The first record whose loss is at or below ``level``, or None when none is."""
    below = np.flatnonzero(np.asarray(loss) <= level)
    return int(below[0]) if len(below) else None


def fmt_point(theta) -> str:
    return "(" + ", ".join(f"{v:.4g}" for v in np.ravel(theta)) + ")"


def grid_x(data: Dataset, pad: float = 0.05, n: int = 400) -> np.ndarray:
    lo, hi = float(np.min(data.x)), float(np.max(data.x))
    return np.linspace(lo - pad * (hi - lo), hi + pad * (hi - lo), n)


def curve_of(model: Model, x: np.ndarray, theta) -> np.ndarray:
    import jax

    with jax.enable_x64(True):
        return np.asarray(model(jax.numpy.asarray(x), model.unravel(jax.numpy.asarray(theta, dtype=float))))

"""The whole lecture: `build` runs every part, draws each figure and writes one HTML report."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from .. import report as rp
from ..errors import GradfitError
from .adam import normalized_figure
from .figure import Built, Output, make_folder
from .gabor import (
    basin_maps,
    basins_figure,
    gabor_model_figure,
    gabor_paths_figure,
    gabor_problem,
    gabor_surface_figure,
)
from .hyper import hyper_figure
from .linear import linear_figures, linear_problem
from .momentum import momentum_figure
from .settings import FULL, QUICK, Settings
from .sgd import sgd_figure


def build(out: str | Path, settings: Settings | None = None, *, quick: bool = False,
          log: Callable[[str], None] | None = None) -> Output:
    """Every figure of the lecture as PNG and SVG under ``out``, and ``out/lecture.html``.

    ``settings`` default to `FULL`, or `QUICK` with ``quick=True``.
    """
    t0 = time.perf_counter()
    s = settings or (QUICK if quick else FULL)
    if len(s.gabor_lr) != len(s.scales):
        raise GradfitError("give one gradient-descent rate per Gabor scale (gabor_lr and scales)")
    folder = make_folder(out)
    say = log or (lambda line: None)
    parts: list[Built] = []

    def step(label, fn, *args):
        start = time.perf_counter()
        value = fn(*args)
        say(f"{label} ({time.perf_counter() - start:.1f} s)")
        return value

    line = linear_problem(s)
    parts.append(step("linear regression", linear_figures, s, line, folder))
    problems = [step(f"Gabor surface and critical points, s = {scale:g}", gabor_problem, s, scale, lr)
                for scale, lr in zip(s.scales, s.gabor_lr, strict=True)]
    parts.append(step("Gabor model", gabor_model_figure, s, problems, folder))
    parts.append(step("Gabor surfaces", gabor_surface_figure, s, problems, folder))
    maps = step(f"basins of attraction ({s.basin_resolution}² starts × {len(problems)})", basin_maps, s, problems)
    for p, bm in zip(problems, maps, strict=True):
        parts.append(step(f"Gabor paths, s = {p.s:g}", gabor_paths_figure, s, p, bm, folder))
    parts.append(step("basins figure", basins_figure, s, problems, maps, folder))
    parts.append(step("SGD against gradient descent", sgd_figure, s, line, folder))
    parts.append(step("momentum and Nesterov", momentum_figure, s, line, folder))
    parts.append(step("normalised gradients against Adam", normalized_figure, s, folder))
    parts.append(step("hyperparameters", hyper_figure, s, line, folder))

    order = ["linear", "gabor-model", "gabor-surface", "gabor-paths", "basins", "sgd", "momentum", "normalized",
             "hyperparameters"]
    sections = sorted((b.section for b in parts), key=lambda sec: next(
        (k for k, a in enumerate(order) if sec.anchor.startswith(a)), len(order)))
    elapsed = time.perf_counter() - t0
    report = rp.Report(
        "Fitting models by gradient descent: the lecture's figures",
        "Every figure of the lecture on fitting, made by gradfit from its own built-in data "
        f"({'quick' if s == QUICK else 'full' if s == FULL else 'custom'} settings, {elapsed:.0f} s).",
        tuple(sections),
        footer=f"gradfit lecture; settings: {_settings_line(s)}.",
    )
    path = rp.write(report, folder / "lecture.html")
    figures = tuple(folder / f"{name}.{ext}" for b in parts for name in b.names for ext in ("png", "svg"))
    return Output(folder, path, figures, tuple(parts), elapsed)


def _settings_line(s: Settings) -> str:
    return ", ".join(f"{k}={v}" for k, v in s.as_dict().items() if not isinstance(v, tuple) or len(v) <= 4)

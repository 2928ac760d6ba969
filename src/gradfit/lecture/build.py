"""The whole lecture: `build` runs every part, draws each figure and writes one HTML report."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from .. import report as rp
from ..errors import GradfitError
from .adam import adam_bias_figure, normalized_example_figure, normalized_figure, steep_rates_figure
from .figure import Built, Output, make_folder
from .gabor import (
    basin_maps,
    basins_figure,
    gabor_minima_figure,
    gabor_model_figure,
    gabor_paths_figure,
    gabor_problem,
    gabor_surface_figure,
)
from .hyper import hyper_figure
from .linear import linear_figures, linear_problem
from .momentum import momentum_figure, momentum_gabor_figure, nesterov_lookahead_figure
from .poisson import poisson_figure
from .settings import FULL, QUICK, Settings
from .sgd import gabor_sgd_runs, sgd_batches_figure, sgd_figure, sgd_gabor_figure


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
    parts.append(step("Gabor model at each minimum", gabor_minima_figure, s, problems, folder))
    maps = step(f"basins of attraction ({s.basin_resolution}² starts × {len(problems)})", basin_maps, s, problems)
    for p, bm in zip(problems, maps, strict=True):
        parts.append(step(f"Gabor paths, s = {p.s:g}", gabor_paths_figure, s, p, bm, folder))
    parts.append(step("basins figure", basins_figure, s, problems, maps, folder))
    parts.append(step("SGD against gradient descent", sgd_figure, s, line, folder))
    gabor_sgd = step(f"SGD on the Gabor loss, s = {problems[0].s:g}", gabor_sgd_runs, s, problems[0])
    parts.append(step("SGD escaping a local minimum", sgd_gabor_figure, s, problems[0], gabor_sgd, folder))
    parts.append(step("mini-batch loss surfaces", sgd_batches_figure, s, problems[0], gabor_sgd, folder))
    parts.append(step("momentum and Nesterov", momentum_figure, s, line, folder))
    parts.append(step("momentum and Nesterov on the Gabor loss", momentum_gabor_figure, s, problems[0], folder))
    parts.append(step("Nesterov's look-ahead", nesterov_lookahead_figure, s, line, folder))
    parts.append(step("normalised gradients against Adam", normalized_figure, s, folder))
    parts.append(step("gradient descent on the steep quadratic", steep_rates_figure, s, folder))
    parts.append(step("Adam's bias correction", adam_bias_figure, s, folder))
    parts.append(step("normalised-gradient example", normalized_example_figure, s, folder))
    parts.append(step("hyperparameters", hyper_figure, s, line, folder))
    parts.append(step("Poisson exercise", poisson_figure, s, folder))

    order = ["linear", "gabor-model", "gabor-surface", "gabor-paths", "basins", "sgd", "momentum", "nesterov",
             "normalized-steep", "normalized-example", "normalized", "hyperparameters", "poisson"]
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

"""The whole lecture: `build` runs every part, draws each figure and writes one HTML report.

`OUTLINE` declares the lecture's parts in order: each its title, introduction, formulas
and the anchors of its figures' sections; a part's number is its place in the outline.
`arrange` numbers the sections from it ("2.3": part 2, its third section), so no number
can repeat; a section the outline does not name goes in a last part, never lost.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
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
from .viewers import lecture_viewers


@dataclass(frozen=True)
class OutlinePart:
    """One part of the lecture: its title, a short introduction, its formulas (names in
    `equations.EQUATIONS`) and the anchors of its sections, in order."""

    title: str
    intro: str
    equations: tuple[str, ...]
    anchors: tuple[str, ...]


OUTLINE: tuple[OutlinePart, ...] = (
    OutlinePart("Linear regression",
                "Fitting a line by least squares: the loss is a bowl, and gradient descent walks down it a "
                "step of α times the gradient at a time.", ("line", "least_squares", "gd"), ("linear",)),
    OutlinePart("The Gabor model",
                "A model whose loss has more than one valley: where gradient descent ends depends on where it "
                "starts. Each minimum has its basin of attraction; saddle points slow the paths that pass near "
                "them.", ("gabor", "least_squares", "gd"),
                ("gabor-model", "gabor-surface", "gabor-surface-minima", "gabor-paths-s8", "gabor-paths-s32",
                 "basins")),
    OutlinePart("Stochastic gradient descent",
                "Each step uses the gradient of a random mini-batch: cheaper and noisier. The noise can carry a "
                "path out of a local minimum; a decaying α lets it settle at the end.", ("sgd", "step_decay"),
                ("sgd", "sgd-gabor", "sgd-batches")),
    OutlinePart("Momentum",
                "Momentum steps along an average of recent gradients, smoothing the zig-zag across a valley; "
                "Nesterov's variant takes its gradient at the point momentum is about to reach.",
                ("momentum", "nesterov"), ("momentum", "momentum-gabor", "nesterov-lookahead")),
    OutlinePart("Adam",
                "When the loss is much steeper in one direction than another, no single α suits both. "
                "Normalising each gradient component by its size fixes that; Adam adds momentum to both moments "
                "and corrects their bias towards zero in the first steps.",
                ("normalized", "adam_moments", "adam_step"),
                ("normalized-steep", "normalized-example", "normalized", "normalized-bias")),
    OutlinePart("Hyperparameters",
                "The learning rate, the batch size and momentum, each varied with the others held, and the "
                "final loss they reach.", ("sgd", "momentum"), ("hyperparameters",)),
    OutlinePart("Count data: a Poisson loss",
                "For counts, a Poisson likelihood in place of least squares: the model predicts the log of the "
                "rate, and the loss is its negative log-likelihood.", ("poisson",), ("poisson",)),
)


def outline_for(s: Settings, outline: Sequence[OutlinePart] = OUTLINE) -> tuple[OutlinePart, ...]:
    """The outline with one Gabor-paths section per scale of ``s`` (the outline names the default scales')."""
    paths = tuple(f"gabor-paths-s{scale:g}" for scale in s.scales)

    def anchors(part: OutlinePart) -> tuple[str, ...]:
        kept = [a for a in part.anchors if not a.startswith("gabor-paths-s")]
        if len(kept) == len(part.anchors):
            return part.anchors
        at = next(k for k, a in enumerate(part.anchors) if a.startswith("gabor-paths-s"))
        return (*kept[:at], *paths, *kept[at:])

    return tuple(dataclasses.replace(part, anchors=anchors(part)) for part in outline)


def part_anchor(number: int) -> str:
    return f"part-{number}"


def arrange(sections: Sequence[rp.Section], outline: Sequence[OutlinePart] = OUTLINE) -> tuple[rp.Part, ...]:
    """The sections grouped and numbered by ``outline``, in its order ("2.3": part 2, its third section).

    Sections whose anchor the outline does not name keep their order in one last part;
    parts with no section present are left out, and numbers stay those of the outline.
    """
    from .equations import formula

    by_anchor: dict[str, list[rp.Section]] = {}
    for section in sections:
        by_anchor.setdefault(section.anchor, []).append(section)
    named = {a for part in outline for a in part.anchors}
    parts = []
    for n, part in enumerate(outline, 1):
        present = [sec for a in part.anchors for sec in by_anchor.get(a, [])]
        if present:
            parts.append(rp.Part(str(n), part.title, part_anchor(n), part.intro,
                                 tuple(formula(e, f"part{n}-") for e in part.equations), _numbered(present, n)))
    rest = [sec for sec in sections if sec.anchor not in named]
    if rest:
        n = len(outline) + 1
        parts.append(rp.Part(str(n), "More figures", part_anchor(n), "", (), _numbered(rest, n)))
    return tuple(parts)


def _numbered(sections: Sequence[rp.Section], part: int) -> tuple[rp.Section, ...]:
    return tuple(dataclasses.replace(sec, number=f"{part}.{k}") for k, sec in enumerate(sections, 1))


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

    viewers = step("interactive viewers", lecture_viewers, s, line, problems[0])
    sections = [dataclasses.replace(b.section, viewers=b.section.viewers + viewers.get(b.section.anchor, ()))
                for b in parts]
    elapsed = time.perf_counter() - t0
    report = rp.Report(
        "Fitting models by gradient descent: the lecture's figures",
        "Every figure of the lecture on fitting, made by gradfit from its own built-in data "
        f"({'quick' if s == QUICK else 'full' if s == FULL else 'custom'} settings, {elapsed:.0f} s). The sliders "
        "under some figures move through precomputed runs; the page needs no network.",
        footer=f"gradfit lecture; settings: {_settings_line(s)}.",
        parts=step("outline and formulas", arrange, sections, outline_for(s)),
    )
    path = rp.write(report, folder / "lecture.html")
    figures = tuple(folder / f"{name}.{ext}" for b in parts for name in b.names for ext in ("png", "svg"))
    return Output(folder, path, figures, tuple(parts), elapsed)


def _settings_line(s: Settings) -> str:
    return ", ".join(f"{k}={v}" for k, v in s.as_dict().items() if not isinstance(v, tuple) or len(v) <= 4)

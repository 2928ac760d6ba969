"""Part 1, linear regression (the slides' gradient-descent example; book Figure 6.1). Draws
`linear_fit` (the built-in line data, the line after a few fixed steps as in Figure 6.1d, and the
fitted lines) and `linear_paths` (gradient descent's paths over the least-squares loss, at a fixed
step and with the book's line search of notebook 6.1). `LinearProblem` is shared by parts 3, 4, 6."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import landscape as ls
from .. import report as rp
from ..data import Dataset, linear_data
from ..fitting import fit
from ..losses import normal
from ..models import Model, linear
from ..optimizers import gd
from ..result import FitResult
from .figure import Built, box_around, curve_of, first_below, fmt_point, grid_x, save_figure
from .settings import Settings


def linear_figures(s: Settings, p: LinearProblem, folder: Path) -> Built:
    from .. import plots

    model, loss, data, fn, exact = p.model, normal(), p.data, p.fn, p.exact
    fixed = fit(model, loss, data, gd(s.linear_lr), init=list(s.linear_start), steps=s.linear_steps, tol=0)
    searched = fit(model, loss, data, gd(line_search=True), init=list(s.linear_start), steps=s.line_search_steps,
                    tol=0)
    points = np.vstack([fixed.history.params, searched.history.params, exact[None]])
    surf = ls.surface(fn, ("phi0", "phi1"), box_around(points, margin=0.12), resolution=s.resolution)
    crit = [exact_point(p)]

    labels = [f"gradient descent, fixed step α={s.linear_lr:g}", "gradient descent, line search"]
    x = grid_x(data)
    runs = plots.traces([fixed, searched], labels)
    # the line at successive iterations (book Figure 6.1d), fading in; the three end lines
    # coincide, so each gets its own dash pattern and the exact one is drawn thin on top
    lines = [(f"start: φ = {fmt_point(s.linear_start)}", x, curve_of(model, x, s.linear_start), "#a0a0a0")]
    shown = [k for k in (1, 3, 10) if k < s.linear_steps]
    for n, k in enumerate(shown):
        theta = fixed.history.params[int(np.searchsorted(fixed.history.step, k))]
        lines.append((f"fixed step, after {k} step{'s' if k > 1 else ''}", x, curve_of(model, x, theta), runs[0].color,
                      {"alpha": 0.3 + 0.45 * n / max(len(shown), 1), "lw": 1.6}))
    lines += [(f"{run.label}: φ = {fmt_point(run.result.x)}", x, curve_of(model, x, run.result.x), run.color,
               {"ls": style, "lw": width})
              for run, style, width in zip(runs, ("solid", (0, (6, 3))), (3.4, 2.4), strict=True)]
    lines.append((f"least squares (closed form): φ = {fmt_point(exact)}", x, curve_of(model, x, exact),
                  plots.REFERENCE_COLOR, {"ls": (0, (1, 1.5)), "lw": 1.6}))
    fig_fit = plots.data_figure(data, lines, title="Linear regression: f = φ₀ + φ₁ x")
    fig_paths = plots.paths_figure(surf, runs, points=crit, floor=p.floor, excess=True,
                                   title="Linear regression: gradient descent on the least-squares loss")
    images = (
        save_figure(fig_fit, folder, "linear_fit", "The built-in linear data, the line after a few fixed steps, and "
                    "the fitted lines (they coincide: each has its own dash)."),
        save_figure(fig_paths, folder, "linear_paths",
                    "Loss contours over (φ₀, φ₁): a fixed step zig-zags across the valley; the line search "
                    "picks each step."),
    )
    table = rp.fits_table([fixed, searched], labels, caption="Final parameters and losses")
    exact_table = rp.Table(("", "phi0", "phi1", "loss"), (("least squares, closed form", *exact, float(fn(exact))),),
                           "The exact minimum, for reference")
    settings = {"data": f"linear_data(seed={s.seed}, n={s.linear_n})", "model": model.describe(),
                "loss": "least squares (sum)", "start": s.linear_start, "fixed step": f"α={s.linear_lr:g}, "
                f"{s.linear_steps} steps", "line search": f"book's search on [0, 1], {s.line_search_steps} steps",
                "surface": f"{s.resolution} × {s.resolution}"}
    reach = [first_below(np.asarray(r.history.loss) - p.floor, 1e-6) for r in (fixed, searched)]
    took = [f"{k} steps" if k is not None else f"more than {n} steps"
            for k, n in zip(reach, (s.linear_steps, s.line_search_steps), strict=True)]
    text = ("The loss of a line, L[φ] = Σ (φ₀ + φ₁xᵢ − yᵢ)², is a bowl with one minimum, which the normal "
            "equations give exactly (the star). Gradient descent walks down it from the same start in two ways. "
            f"\n\nWhat to see: with a fixed step α = {s.linear_lr:g} the path zig-zags across the valley, because "
            "the bowl is steep across and shallow along it: a step that crosses the floor quickly overshoots it. "
            "The line search chooses each step's length by trying points along the downhill direction, so it turns "
            f"at right angles and gets within 10⁻⁶ of the least loss in {took[1]}, against {took[0]} for the fixed "
            "step. The lines drawn after 1, 3 and 10 fixed steps swing towards the data; every method ends on the "
            "closed-form line.")
    section = rp.Section("Linear regression", text, images, settings, (table, exact_table), anchor="linear")
    return Built(("linear_fit", "linear_paths"), section, {"fixed": fixed, "line_search": searched, "exact": exact})


@dataclass(frozen=True)
class LinearProblem:
    """The built-in line data, its loss, and its exact least-squares minimum."""

    model: Model
    data: Dataset
    fn: ls.LossFunction
    exact: np.ndarray
    floor: float


def linear_problem(s: Settings) -> LinearProblem:
    data = linear_data(s.seed, s.linear_n)
    model = linear()
    fn = ls.LossFunction(model, normal(), data)
    exact = np.linalg.lstsq(np.column_stack([np.ones(len(data)), data.x]), data.y, rcond=None)[0]
    return LinearProblem(model, data, fn, exact, float(fn(exact)))


def paths_surface(p: LinearProblem, fits: Sequence[FitResult], s: Settings) -> ls.Surface:
    points = np.vstack([r.history.params for r in fits] + [p.exact[None]])
    return ls.surface(p.fn, ("phi0", "phi1"), box_around(points, 0.12), resolution=s.resolution)


def exact_point(p: LinearProblem) -> ls.CriticalPoint:
    return ls.CriticalPoint(p.exact, p.floor, 0.0, np.linalg.eigvalsh(p.fn.hessian(p.exact)), "minimum")

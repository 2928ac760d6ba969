"""The lecture's interactive viewers: plotly figures with a slider, precomputed by gradfit's fits.

- `step_viewer`: one fit's path over the loss contours; the slider moves the point along it
  and the model's curve over the data with it;
- `sweep_viewer`: one path per value of a hyperparameter (α, β); the slider picks which path
  and its loss curve are shown;
- `lecture_viewers`: the lecture's four (gradient descent step by step on the line and on the
  Gabor loss, the learning-rate and the momentum sliders), keyed by the anchor of the section
  each sits in.

Every number is the fit's own (`FitResult.history`), rounded to 6 significant digits; a path
longer than `MAX_POINTS` is drawn thinned, but the slider's positions are exact history rows.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .. import landscape as ls
from .. import report as rp
from ..data import Dataset
from ..fitting import fit
from ..losses import normal
from ..models import Model
from ..optimizers import gd, momentum
from ..plots import optimizer_color
from ..result import FitResult
from .figure import box_around, grid_x
from .gabor import GaborProblem
from .linear import LinearProblem
from .settings import Settings

#: The most points a drawn path, and the most positions a slider, has.
MAX_POINTS = 300
#: The most grid points per axis of a viewer's contours (the figures' own surfaces are finer).
MAX_GRID = 60
#: Learning rates of the α slider, as fractions of gradient descent's limit 2/λ_max on the line's
#: loss: from a crawl to just past the limit, where the path diverges.
RATE_FRACTIONS = (0.1, 0.25, 0.5, 0.75, 0.9, 0.98, 1.04)
CONTOUR = {"type": "contour", "colorscale": "Viridis", "showscale": False,
           "ncontours": 24, "line": {"width": 0.5}, "hoverinfo": "skip", "name": "log10 loss"}
#: The model curve and the data, in the static figures' colours; each path is in its optimiser's colour.
MODEL_COLOR, DATA_COLOR = "#0072B2", "#404040"


def rounded(values, digits: int = 6) -> list:
    """Values (any shape) as nested lists of floats to ``digits`` significant digits; NaN and ±inf as None."""
    array = np.asarray(values, dtype=float)
    flat = [float(f"{v:.{digits}g}") if np.isfinite(v) else None for v in array.ravel()]
    return np.array(flat, dtype=object).reshape(array.shape).tolist()


def thin(n: int, most: int = MAX_POINTS) -> np.ndarray:
    """At most ``most`` indices of 0 … n−1, evenly spread, the first and the last always among them."""
    return np.unique(np.round(np.linspace(0, n - 1, min(n, most))).astype(int))


def contour_trace(surface: ls.Surface, most: int = MAX_GRID) -> dict:
    """log10 of the surface's loss on at most ``most`` points per axis (every k-th of its grid)."""
    ka, kb = -(-len(surface.a) // most), -(-len(surface.b) // most)
    loss = np.maximum(surface.loss[::kb, ::ka], np.finfo(float).tiny)
    return {**CONTOUR, "x": rounded(surface.a[::ka]), "y": rounded(surface.b[::kb]), "z": rounded(np.log10(loss))}


def _axes(surface: ls.Surface, right: dict, title: str, panels: tuple[str, str]) -> dict:
    (a0, a1), (b0, b1) = (surface.a[0], surface.a[-1]), (surface.b[0], surface.b[-1])
    heads = [{"text": text, "showarrow": False, "xref": f"{x} domain", "yref": "y domain", "x": 0.5, "y": 1.0,
              "yanchor": "bottom", "font": {"size": 13, "color": "#4a5568"}}
             for text, x in zip(panels, ("x", "x2"), strict=True)]
    return {
        "title": {"text": title, "font": {"size": 15}}, "showlegend": False, "uirevision": "keep",
        "margin": {"l": 60, "r": 16, "t": 64, "b": 48}, "font": {"size": 13}, "annotations": heads,
        "xaxis": {"domain": [0, 0.46], "range": rounded([a0, a1]), "title": {"text": _symbol(surface.labels[0])}},
        "yaxis": {"range": rounded([b0, b1]), "title": {"text": _symbol(surface.labels[1])}},
        "xaxis2": {"domain": [0.58, 1], "anchor": "y2", **right.get("x", {})},
        "yaxis2": {"anchor": "x2", **right.get("y", {})},
    }


def _symbol(name: str) -> str:
    """phi0 as φ₀, as the slides write it."""
    return name.replace("phi", "φ").translate(str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉"))


def _curves(model: Model, x: np.ndarray, thetas: np.ndarray) -> np.ndarray:
    """The model at x for each row of ``thetas`` (K, P), shape (K, len(x))."""
    import jax
    import jax.numpy as jnp

    with jax.enable_x64(True):
        one = lambda theta: model(jnp.asarray(x), model.unravel(theta))
        return np.asarray(jax.vmap(one)(jnp.asarray(thetas, dtype=float)))


def step_viewer(id: str, title: str, model: Model, data: Dataset, surface: ls.Surface, result: FitResult, *,
                curve_points: int = 80, caption: str = "") -> rp.Viewer:
    """One fit step by step: its path over ``surface``, the point at the slider's step, and the model there.

    Traces: 0 the contours, 1 the path, 2 the point (its ``customdata`` is the history row),
    3 the data, 4 the model's curve (to 4 significant digits: it is only drawn).
    """
    h = result.history
    color = optimizer_color(result.optimizer)
    rows = thin(len(h.params))  # the slider's positions, and the path's drawn points
    x = grid_x(data, pad=0.0, n=curve_points)
    curves = _curves(model, x, h.params[rows])
    traces = (
        {**contour_trace(surface)},
        {"type": "scatter", "mode": "lines", "name": "path", "x": rounded(h.params[rows, 0]),
         "y": rounded(h.params[rows, 1]), "line": {"color": color, "width": 2.5}},
        {"type": "scatter", "mode": "markers", "name": "point", "x": [], "y": [],
         "marker": {"color": color, "size": 13, "line": {"color": "#202020", "width": 2}}},
        {"type": "scatter", "mode": "markers", "name": "data", "xaxis": "x2", "yaxis": "y2",
         "x": rounded(np.ravel(data.x)), "y": rounded(data.y), "marker": {"color": DATA_COLOR, "size": 6}},
        {"type": "scatter", "mode": "lines", "name": "model", "xaxis": "x2", "yaxis": "y2", "x": rounded(x),
         "y": [], "line": {"color": MODEL_COLOR, "width": 2.5}},
    )
    frames = tuple({2: {"x": rounded(h.params[r, :1]), "y": rounded(h.params[r, 1:2]), "customdata": [int(r)]},
                    4: {"y": rounded(curve, 4)}} for r, curve in zip(rows, curves, strict=True))
    positions = tuple(f"step {int(h.step[r])}: L = {h.loss[r]:.4g}" for r in rows)
    pad = 0.08 * float(np.ptp(data.y) or 1.0)
    right = {"x": {"title": {"text": "x"}},
             "y": {"title": {"text": "y"}, "range": rounded([np.min(data.y) - pad, np.max(data.y) + pad])}}
    panels = ("the path over the loss (log scale)", "the model at that step, over the data")
    return rp.Viewer(id, caption, traces, _axes(surface, right, title, panels), "step", positions, frames)


def sweep_viewer(id: str, title: str, surface: ls.Surface, results: Sequence[FitResult], values: Sequence[str],
                 label: str, *, start: int = 0, caption: str = "") -> rp.Viewer:
    """One path per fit, the slider choosing which: its path over ``surface`` and its loss by step.

    Traces: 0 the contours, 1 the path, 2 its start, 3 the loss by step (log scale).
    """
    frames = []
    for r in results:
        h = r.history
        drawn = thin(len(h.params))
        frames.append({1: {"x": rounded(h.params[drawn, 0]), "y": rounded(h.params[drawn, 1])},
                       3: {"x": [int(v) for v in h.step[drawn]], "y": rounded(h.loss[drawn])}})
    first = results[0].history.params[0]
    color = optimizer_color(results[0].optimizer)
    traces = (
        {**contour_trace(surface)},
        {"type": "scatter", "mode": "lines+markers", "name": "path", "x": [], "y": [],
         "line": {"color": color, "width": 2.5}, "marker": {"size": 4}},
        {"type": "scatter", "mode": "markers", "name": "start", "x": rounded(first[:1]), "y": rounded(first[1:2]),
         "marker": {"color": "white", "size": 10, "line": {"color": "black", "width": 1.5}}},
        {"type": "scatter", "mode": "lines", "name": "loss", "xaxis": "x2", "yaxis": "y2", "x": [], "y": [],
         "line": {"color": color, "width": 2.5}},
    )
    right = {"x": {"title": {"text": "step"}}, "y": {"title": {"text": "loss"}, "type": "log"}}
    panels = ("the path over the loss (log scale)", "the full-data loss by step")
    return rp.Viewer(id, caption, traces, _axes(surface, right, title, panels), label, tuple(values), tuple(frames),
                     start)


def rates(line: LinearProblem, s: Settings) -> tuple[float, ...]:
    """The α slider's rates: `RATE_FRACTIONS` of 2/λ_max at the line's minimum (3 significant digits),
    and the lecture's own fixed step."""
    limit = 2.0 / float(np.max(np.linalg.eigvalsh(line.fn.hessian(line.exact))))
    return tuple(sorted({float(f"{f * limit:.3g}") for f in RATE_FRACTIONS} | {s.linear_lr}))


def lecture_viewers(s: Settings, line: LinearProblem, problem: GaborProblem) -> dict[str, tuple[rp.Viewer, ...]]:
    """The lecture's viewers, keyed by the anchor of the section each belongs to.

    ``line`` and ``problem`` are the problems the figures use (``problem``: the Gabor loss at
    the slides' s = 8). Their fits share the figures' compiled code, so they take about a second.
    """
    start = list(s.linear_start)
    fixed = fit(line.model, normal(), line.data, gd(s.linear_lr), init=start, steps=s.linear_steps, tol=0)
    alphas = rates(line, s)
    by_rate = [fit(line.model, normal(), line.data, gd(lr), init=start, steps=s.linear_steps, tol=0) for lr in alphas]
    by_beta = [fit(line.model, normal(), line.data, momentum(s.linear_lr, b), init=start, steps=s.linear_steps, tol=0)
               for b in s.hyper_betas]
    # the box holds every path but the diverging ones, which run off it
    settled = [r.history.params for r in (fixed, *by_rate, *by_beta) if r.loss <= r.history.loss[0]]
    box = box_around(np.vstack([*settled, line.exact[None]]), margin=0.1)
    surface = ls.surface(line.fn, ("phi0", "phi1"), box, resolution=min(s.resolution, MAX_GRID))
    gabor_fit = fit(problem.model, normal(), problem.data, gd(problem.lr), init=list(s.sgd_gabor_start),
                    steps=s.path_steps, tol=0)

    line_steps = step_viewer(
        "viewer-linear-steps", f"Gradient descent on the line, α = {s.linear_lr:g}", line.model, line.data,
        surface, fixed, curve_points=2,  # the model is a straight line: its two ends draw it exactly
        caption="Move the slider: the point walks down the loss contours (left) and the line it stands for "
                "turns towards the data (right).")
    rate_viewer = sweep_viewer(
        "viewer-linear-rates", f"The learning rate: gradient descent, {s.linear_steps} steps", surface, by_rate,
        [f"α = {lr:g}" for lr in alphas], "α", start=alphas.index(s.linear_lr),
        caption=f"Each position is its own run of {s.linear_steps} steps. Small α crawls; near 2/λ_max "
                "the path zig-zags across the valley; past it, it diverges.")
    beta_viewer = sweep_viewer(
        "viewer-momentum-betas", f"Momentum: α = {s.linear_lr:g}, {s.linear_steps} full-batch steps", surface,
        by_beta, [f"β = {b:g}" for b in s.hyper_betas], "β",
        start=int(np.argmin(np.abs(np.asarray(s.hyper_betas) - s.beta))),
        caption="Each position is its own run. β = 0 is gradient descent; a larger β averages the gradients "
                "over more steps, so the path smooths its zig-zag, then overshoots and circles in.")
    gabor_steps = step_viewer(
        f"viewer-gabor-steps-s{problem.s:g}", f"Gradient descent on the Gabor loss, s = {problem.s:g}, "
        f"α = {problem.lr:g}", problem.model, problem.data, problem.surface, gabor_fit,
        caption=f"From {tuple(s.sgd_gabor_start)} gradient descent settles in a local minimum: the model "
                "matches some of the data's wiggles but not the others.")
    return {"linear": (line_steps, rate_viewer), "momentum": (beta_viewer,),
            f"gabor-paths-s{problem.s:g}": (gabor_steps,)}

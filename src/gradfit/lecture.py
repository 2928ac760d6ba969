"""The lecture on fitting, figure by figure, from gradfit's own built-in data.

`build` runs every fit the lecture shows, draws each figure (PNG and SVG) and writes
one self-contained HTML report with the figures, the settings that made them and
tables of final parameters and losses. `compare` and `explore` are the same machinery
for a user's own model and data: optimisers side by side over one loss surface, and
the loss landscape around a fit. The settings live in one frozen `Settings`;
`Settings.quick()` is the small variant (a few minutes on a laptop).

The figures:

1. linear regression: the data and fitted line; the loss contour over (φ0, φ1) with
   gradient descent's path at a fixed step and with the book's line search;
2. the Gabor model: the model for a few parameter settings; its loss surface for the
   slides' s = 8 and the book's s = 32 with the critical points (found by Newton's
   method, classified by the Hessian) marked; gradient-descent paths that reach the
   global minimum, get caught in a local minimum, and stall at a saddle point;
3. basins of attraction of gradient descent on the Gabor loss: a grid of starts, all
   run at once, coloured by the minimum each reaches, with the share per minimum;
4. SGD against full-batch gradient descent on the linear data, epochs marked, with
   and without a learning-rate schedule (a well-conditioned problem shows SGD's noise
   floor; on the Gabor valley every method crawls alike);
5. momentum and Nesterov against plain SGD on the same mini-batches, same data;
6. normalised gradients against Adam on a loss steep in one direction, shallow in the
   other;
7. final loss against learning rate, batch size and momentum, over several seeds.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import landscape as ls
from . import report as rp
from .data import Dataset, gabor_data, linear_data
from .errors import GradfitError
from .fitting import fit
from .losses import Loss, normal
from .models import Model, custom, gabor, linear
from .optimizers import Optimizer, adam, gd, momentum, nesterov, normalized, sgd
from .result import FitResult
from .schedules import step_decay

#: The box of the Gabor figures in the book's notebooks: φ0 in [-10, 10], φ1 in [2.5, 22.5].
GABOR_BOX = ((-10.0, 10.0), (2.5, 22.5))


@dataclass(frozen=True)
class Settings:
    """Everything the lecture's figures depend on. `quick` gives the small variant."""

    seed: int = 0
    resolution: int = 200  # grid points per axis of each loss surface
    critical_grid: int = 30  # Newton starts per axis when finding critical points
    # 1. linear regression
    linear_n: int = 20
    linear_start: tuple[float, float] = (-0.4, 2.2)
    linear_lr: float = 0.018
    linear_steps: int = 60
    line_search_steps: int = 20
    # 2-3. the Gabor model: a gradient-descent rate per s, paths, basins
    gabor_n: int = 40
    scales: tuple[float, ...] = (8.0, 32.0)
    gabor_lr: tuple[float, ...] = (0.3, 0.1)  # under 2 / the largest curvature at every minimum
    path_steps: int = 1500
    saddle_offset: float = 0.12  # start this far from the saddle (a fraction of the box), on its way in
    saddle_nudge: float = 1e-7  # arrive this far off it along its unstable direction, so it leaves in the end
    basin_resolution: int = 200
    basin_steps: int = 1000
    # 4-5, 7. SGD, momentum, Nesterov and their hyperparameters, on the linear data
    sgd_lr: float = 0.02
    batch_size: int = 4
    sgd_epochs: int = 60
    decay_factor: float = 0.5
    decay_epochs: int = 20
    beta: float = 0.9
    # 6. normalised gradients against Adam
    quad_scales: tuple[float, float] = (1.0, 25.0)
    quad_start: tuple[float, float] = (-2.95, 1.73)
    quad_lr: float = 0.1
    quad_steps: int = 150
    # 7. hyperparameters
    hyper_lrs: tuple[float, ...] = tuple(float(v) for v in np.geomspace(1e-3, 0.3, 11))
    hyper_batches: tuple[int, ...] = (1, 2, 4, 5, 10, 20)
    hyper_betas: tuple[float, ...] = (0.0, 0.5, 0.7, 0.8, 0.9, 0.95, 0.99)
    hyper_seeds: int = 5
    hyper_epochs: int = 40

    @classmethod
    def quick(cls) -> Settings:
        """Small settings: coarser surfaces, fewer steps and repeats."""
        return QUICK

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


FULL = Settings()
QUICK = Settings(
    resolution=90, critical_grid=20, path_steps=800, basin_resolution=200, basin_steps=400, sgd_epochs=40,
    hyper_lrs=tuple(float(v) for v in np.geomspace(1e-3, 0.3, 6)), hyper_batches=(1, 4, 10, 20),
    hyper_betas=(0.0, 0.5, 0.9, 0.99), hyper_seeds=3, hyper_epochs=30,
)


# -- what a figure is -------------------------------------------------------------------


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


def _folder(out: str | Path) -> Path:
    """The folder to write into, made if needed; a file of that name is an error, said before any work."""
    folder = Path(out)
    if folder.exists() and not folder.is_dir():
        raise GradfitError(f"{folder} is a file; give a folder to write the figures and the report into")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _save(fig, folder: Path, name: str, caption: str) -> rp.Image:
    from . import plots

    png, _ = plots.save(fig, folder, name)
    return rp.Image(caption, png=png.read_bytes(), name=f"{name}.png / {name}.svg")


def _box_around(points: np.ndarray, margin: float = 0.15, min_half: float = 0.5):
    """A box holding the points (K, 2), widened by ``margin`` of its size on each side."""
    lo, hi = np.min(points, axis=0), np.max(points, axis=0)
    centre, half = (lo + hi) / 2, np.maximum((hi - lo) / 2 * (1 + 2 * margin), min_half)
    return tuple((float(c - h), float(c + h)) for c, h in zip(centre, half, strict=True))


def _fmt_point(theta) -> str:
    return "(" + ", ".join(f"{v:.4g}" for v in np.ravel(theta)) + ")"


def _grid_x(data: Dataset, pad: float = 0.05, n: int = 400) -> np.ndarray:
    lo, hi = float(np.min(data.x)), float(np.max(data.x))
    return np.linspace(lo - pad * (hi - lo), hi + pad * (hi - lo), n)


def _curve(model: Model, x: np.ndarray, theta) -> np.ndarray:
    import jax

    with jax.enable_x64(True):
        return np.asarray(model(jax.numpy.asarray(x), model.unravel(jax.numpy.asarray(theta, dtype=float))))


# -- 1. linear regression -----------------------------------------------------------------


def linear_figures(s: Settings, p: LinearProblem, folder: Path) -> Built:
    from . import plots

    model, loss, data, fn, exact = p.model, normal(), p.data, p.fn, p.exact
    fixed = fit(model, loss, data, gd(s.linear_lr), init=list(s.linear_start), steps=s.linear_steps, tol=0)
    searched = fit(model, loss, data, gd(line_search=True), init=list(s.linear_start), steps=s.line_search_steps,
                    tol=0)
    points = np.vstack([fixed.history.params, searched.history.params, exact[None]])
    surf = ls.surface(fn, ("phi0", "phi1"), _box_around(points, margin=0.12), resolution=s.resolution)
    crit = [_exact_point(p)]

    labels = [f"gradient descent, fixed step α={s.linear_lr:g}", "gradient descent, line search"]
    x = _grid_x(data)
    lines = [(f"{lab}: φ = {_fmt_point(r.x)}", x, _curve(model, x, r.x), c)
             for lab, r, c in zip(labels, (fixed, searched), plots.PALETTE[:2], strict=True)]
    lines.append((f"least squares (closed form): φ = {_fmt_point(exact)}", x, _curve(model, x, exact), "#1b1b1b"))
    lines.insert(0, (f"start: φ = {_fmt_point(s.linear_start)}", x, _curve(model, x, s.linear_start), "#a0a0a0"))
    fig_fit = plots.data_figure(data, lines, title="Linear regression: f = φ0 + φ1 x")
    runs = [plots.Trace(r, lab, c) for r, lab, c in zip((fixed, searched), labels, plots.PALETTE[:2], strict=True)]
    fig_paths = plots.paths_figure(surf, runs, points=crit, floor=p.floor, excess=True,
                                   title="Linear regression: gradient descent on the least-squares loss")
    images = (
        _save(fig_fit, folder, "linear_fit", "The built-in linear data with the fitted lines."),
        _save(fig_paths, folder, "linear_paths",
              "Loss contours over (φ0, φ1): a fixed step zig-zags across the valley; the line search picks each step."),
    )
    table = rp.fits_table([fixed, searched], labels, caption="Final parameters and losses")
    exact_table = rp.Table(("", "phi0", "phi1", "loss"), (("least squares, closed form", *exact, float(fn(exact))),),
                           "The exact minimum, for reference")
    settings = {"data": f"linear_data(seed={s.seed}, n={s.linear_n})", "model": model.describe(),
                "loss": "least squares (sum)", "start": s.linear_start, "fixed step": f"α={s.linear_lr:g}, "
                f"{s.linear_steps} steps", "line search": f"book's search on [0, 1], {s.line_search_steps} steps",
                "surface": f"{s.resolution} × {s.resolution}"}
    section = rp.Section("1. Linear regression", "Gradient descent on the least-squares loss of a line, with a fixed "
                         "step and with the book's line search.", images, settings, (table, exact_table),
                         anchor="linear")
    return Built(("linear_fit", "linear_paths"), section, {"fixed": fixed, "line_search": searched, "exact": exact})


# -- 2. the Gabor model ------------------------------------------------------------------


@dataclass(frozen=True)
class GaborProblem:
    """The Gabor model at one s, its built-in data, its surface and critical points."""

    s: float
    lr: float
    model: Model
    data: Dataset
    fn: ls.LossFunction
    surface: ls.Surface
    points: tuple[ls.CriticalPoint, ...]

    @property
    def minima(self) -> list[ls.CriticalPoint]:
        return [p for p in self.points if p.kind == "minimum"]

    @property
    def saddles(self) -> list[ls.CriticalPoint]:
        return [p for p in self.points if p.kind == "saddle"]


def gabor_problem(s: Settings, scale: float, lr: float) -> GaborProblem:
    model, data = gabor(scale), gabor_data(s.seed, s.gabor_n, s=scale)
    fn = ls.LossFunction(model, normal(), data)
    surf = ls.surface(fn, ("phi0", "phi1"), GABOR_BOX, resolution=s.resolution)
    points = ls.critical_points(fn.scalar, GABOR_BOX, grid=s.critical_grid)
    return GaborProblem(scale, lr, model, data, fn, surf, points)


def gabor_model_figure(s: Settings, problems: Sequence[GaborProblem], folder: Path) -> Built:
    from . import plots

    shown = ((0.0, 16.6), (1.0, 10.0), (-1.5, 8.5), (2.5, 21.0))
    panels = []
    for p in problems:
        x = _grid_x(p.data, pad=0.0)
        curves = [(f"φ = {_fmt_point(phi)}" + (" (the data's own)" if k == 0 else ""), x, _curve(p.model, x, phi),
                   plots.PALETTE[k]) for k, phi in enumerate(shown)]
        panels.append((f"s = {p.s:g}" + (" (slides)" if p.s == 8 else " (book)" if p.s == 32 else ""), p.data,
                       curves))
    fig = plots.models_figure(panels, suptitle="The Gabor model f = sin(z)·exp(−z²/s), z = φ0 + 0.06 φ1 x")
    image = _save(fig, folder, "gabor_model", "The Gabor model for a few parameter settings, over the built-in data.")
    settings = {"data": f"gabor_data(seed={s.seed}, n={s.gabor_n}, s) for each s", "φ shown": list(shown)}
    return Built(("gabor_model",), rp.Section("2a. The Gabor model", "", (image,), settings, anchor="gabor-model"))


def _points_table(p: GaborProblem) -> rp.Table:
    rows = [(pt.kind, *pt.theta, pt.value, *pt.eigenvalues) for pt in p.points if pt.kind != "degenerate"]
    return rp.Table(("kind", "phi0", "phi1", "loss", "λ1", "λ2"), tuple(rows),
                    f"Critical points for s = {p.s:g} (∇L = 0; Hessian eigenvalues λ)")


def gabor_surface_figure(s: Settings, problems: Sequence[GaborProblem], folder: Path) -> Built:
    from . import plots

    titles = [f"s = {p.s:g}" + (" (slides)" if p.s == 8 else " (book)" if p.s == 32 else "") for p in problems]
    fig = plots.surfaces_figure([p.surface for p in problems], [p.points for p in problems], titles,
                                suptitle="Gabor least-squares loss: global minimum, local minima, saddles")
    image = _save(fig, folder, "gabor_surfaces", "Loss surfaces with every critical point in the box, "
                  "found by Newton's method and classified by the Hessian's eigenvalues.")
    settings = {"box": GABOR_BOX, "surface": f"{s.resolution} × {s.resolution}",
                "critical points": f"Newton's method from {s.critical_grid} × {s.critical_grid} starts"}
    return Built(("gabor_surfaces",), rp.Section("2b. The Gabor loss surface", "", (image,), settings,
                                                 tuple(_points_table(p) for p in problems), anchor="gabor-surface"))


def _interior(labels: np.ndarray) -> np.ndarray:
    """Cells whose four neighbours share their label (away from basin edges)."""
    same = np.zeros_like(labels, bool)
    same[1:-1, 1:-1] = True
    for dj, di in ((1, 0), (-1, 0), (0, 1), (0, -1)):
        rows, cols = labels.shape
        same[1:-1, 1:-1] &= labels[1:-1, 1:-1] == labels[1 + dj: rows - 1 + dj, 1 + di: cols - 1 + di]
    return same


def _start_in_basin(bm: ls.BasinMap, m: int, distance: float, edge: float = 0.06) -> np.ndarray | None:
    """A start well inside basin m, away from the box's edges, about ``distance`` of the box from its minimum."""
    span = np.array([bm.a[-1] - bm.a[0], bm.b[-1] - bm.b[0]])
    cells = np.argwhere((bm.labels == m) & _interior(bm.labels))
    starts = np.array([[bm.a[i], bm.b[j]] for j, i in cells]).reshape(-1, 2)
    lows = np.array([bm.a[0], bm.b[0]])
    away = np.all((starts - lows > edge * span) & (lows + span - starts > edge * span), axis=1)
    starts = starts[away] if away.any() else starts
    if not len(starts):
        return None
    plane_min = bm.minima[m][[int(np.argmax(bm.directions[0])), int(np.argmax(bm.directions[1]))]]
    d = np.max(np.abs(starts - plane_min) / span, axis=1)
    return starts[int(np.argmin(np.abs(d - distance)))]


def _saddle_candidates(p: GaborProblem, s: Settings) -> list[tuple]:
    """Starts from which gradient descent should run into a saddle point, one or two a saddle.

    Each is found by running gradient descent backwards from a point just beside a
    saddle (10 ``saddle_nudge`` of the box along its stable direction, 1 along its
    unstable one, towards the nearest minimum) until ``saddle_offset`` of the box away,
    or until the way in flattens out near a maximum. Returns (start, the point beside
    the saddle, steps to get there, the saddle, |λ₋|) each.
    """
    span = np.array([hi - lo for lo, hi in GABOR_BOX])
    distance = s.saddle_offset * float(np.linalg.norm(span))
    minima = np.array([q.theta for q in p.minima]).reshape(-1, 2)
    candidates = []
    for saddle in p.saddles:
        lam, vectors = np.linalg.eigh(p.fn.hessian(saddle.theta))
        down, up = vectors[:, 0], vectors[:, 1]
        if len(minima):
            nearest = minima[int(np.argmin(np.linalg.norm(minima - saddle.theta, axis=1)))]
            down = down if down @ (nearest - saddle.theta) >= 0 else -down
        for sign in (1.0, -1.0):
            # The stable offset is small enough that the way in bends the path off by far
            # less than the nudge (a drift of order offset²), so the nudge picks the way out.
            near = saddle.theta + s.saddle_nudge * span * (10 * sign * up + down)
            start, steps = ls.approach(p.fn, near, p.lr, distance)
            if steps > 0 and np.linalg.norm(start - saddle.theta) > 0.3 * distance:
                candidates.append((start, near, steps, saddle, abs(lam[0])))
    return candidates


def _pick_saddle_run(p: GaborProblem, s: Settings, candidates: Sequence[tuple], runs: Sequence[FitResult]):
    """The candidate whose forward run shows a stall best, or None.

    Going forwards can be unstable where going backwards is not (in steep places), so
    a candidate counts only if its run arrives within a tenth of the nudge and stays
    in the box on the way. Of those, one whose way in is a full ``saddle_offset`` long
    if any, then one whose way out ends well below the saddle's loss (so the stall
    shows on the loss curve), then the flattest way down (smallest |λ₋|: the longest
    stall). Returns (index, the candidate).
    """
    lows = np.array([lo for lo, _ in GABOR_BOX])
    span = np.array([hi - lo for lo, hi in GABOR_BOX])
    distance = s.saddle_offset * float(np.linalg.norm(span))
    good = []
    for k, ((start, near, steps, saddle, flat), run) in enumerate(zip(candidates, runs, strict=True)):
        way = run.history.params[: steps + 1]
        arrived = np.linalg.norm(way[-1] - near) <= 0.1 * s.saddle_nudge * float(np.linalg.norm(span))
        if arrived and np.all((way >= lows) & (way <= lows + span)):
            full = np.linalg.norm(start - saddle.theta) >= 0.95 * distance
            visible = saddle.value - run.loss > 0.1 * saddle.value
            good.append((not full, not visible, flat, k))
    if not good:
        return None
    k = min(good)[3]
    return k, candidates[k]


def gabor_paths_figure(s: Settings, p: GaborProblem, bm: ls.BasinMap, folder: Path) -> Built:
    from . import plots

    starts, labels = [], []
    global_start = _start_in_basin(bm, 0, 0.3)
    if global_start is not None:
        starts.append(global_start)
        labels.append("reaches the global minimum")
    if len(bm.minima) > 1:
        local = 1 + int(np.argmax(bm.shares[1:]))
        local_start = _start_in_basin(bm, local, 0.2)
        if local_start is not None:
            starts.append(local_start)
            labels.append("caught in a local minimum")
    candidates = _saddle_candidates(p, s)

    def lingering(flat):  # steps until the nudge has grown to the box's size
        return np.log(1.0 / s.saddle_nudge) / np.log1p(p.lr * flat)

    steps = s.path_steps
    if candidates:
        steps = max(steps, int(max(c[2] for c in candidates) + min(1.5 * lingering(min(c[4] for c in candidates)),
                                                                   5000)))
    # every start at once, the saddle candidates too: one compiled fit
    runs = fit(p.model, normal(), p.data, gd(p.lr), init=np.array(starts + [c[0] for c in candidates]),
                steps=steps, tol=0)
    fits = [runs[k] for k in range(len(starts))]
    picked = _pick_saddle_run(p, s, candidates, [runs[len(starts) + k] for k in range(len(candidates))])
    shown, references = s.path_steps, []
    if picked is not None:
        k, (start, _, arrival, saddle, flat) = picked
        fits.append(runs[len(starts) + k])
        starts.append(start)
        labels.append("stalls near a saddle point")
        shown = max(shown, int(1.3 * (arrival + lingering(flat))))
        references.append((saddle.value, f"saddle point's loss {saddle.value:.4g}"))
    runs_drawn = [plots.Trace(r, f"{lab}: start {_fmt_point(r.history.params[0])}", plots.PALETTE[k])
                  for k, (r, lab) in enumerate(zip(fits, labels, strict=True))]
    floor = float(p.minima[0].value) if p.minima else None
    fig = plots.paths_figure(p.surface, runs_drawn, points=p.points, floor=floor, references=references,
                             xmax=min(shown, steps), legend_cols=1,
                             title=f"Gabor model, s = {p.s:g}: gradient descent (α={p.lr:g}) from three starts")
    name = f"gabor_paths_s{p.s:g}"
    image = _save(fig, folder, name, f"Gradient-descent paths for s = {p.s:g}. The loss curve of the path that "
                  "runs into the saddle point stays at the saddle's loss until it slides off.")
    table = rp.fits_table(fits, labels, caption=f"Final parameters and losses after {steps} steps, s = {p.s:g}")
    how = ("gradient descent run backwards from just beside a saddle until "
           f"{s.saddle_offset:g} of the box away, then checked forwards; the saddle with the flattest way down")
    settings = {"optimizer": gd(p.lr).describe(), "steps": steps, "starts": [_fmt_point(x) for x in starts],
                "saddle start": how + (f": {_fmt_point(picked[1][3].theta)}, reached after {picked[1][2]} steps"
                                       if picked is not None else ": none found in the box")}
    section = rp.Section(f"2c. Gradient-descent paths, s = {p.s:g}", "", (image,), settings, (table,),
                         anchor=f"gabor-paths-s{p.s:g}")
    return Built((name,), section, {"fits": fits, "labels": labels})


# -- 3. basins of attraction ------------------------------------------------------------


def basin_maps(s: Settings, problems: Sequence[GaborProblem]) -> list[ls.BasinMap]:
    return [ls.basins(p.model, normal(), p.data, gd(p.lr), GABOR_BOX, resolution=s.basin_resolution,
                      steps=s.basin_steps) for p in problems]


def basins_figure(s: Settings, problems: Sequence[GaborProblem], maps: Sequence[ls.BasinMap], folder: Path) -> Built:
    from . import plots

    titles = [f"s = {p.s:g}, gradient descent α={p.lr:g}" for p in problems]
    suptitle = f"Basins of attraction: {s.basin_resolution}² starts, {s.basin_steps} steps each"
    fig = plots.basins_figure(maps, titles, [p.points for p in problems], suptitle=suptitle)
    image = _save(fig, folder, "basins", "Each start coloured by the minimum its gradient-descent run reaches; "
                  "grey where it is still moving or has left the box.")
    tables = []
    for p, bm in zip(problems, maps, strict=True):
        rows = [(("global" if k == 0 else "local") + " minimum", *bm.minima[k], bm.minima_loss[k],
                 100 * bm.shares[k]) for k in range(len(bm.minima))]
        rows += [("still moving", float("nan"), float("nan"), float("nan"), 100 * bm.unsettled),
                 ("left the box", float("nan"), float("nan"), float("nan"), 100 * bm.left_box)]
        tables.append(rp.Table(("reaches", "phi0", "phi1", "loss", "share of starts (%)"), tuple(rows),
                               f"s = {p.s:g}"))
    settings = {"grid": f"{s.basin_resolution} × {s.basin_resolution} starts over {GABOR_BOX}, one vmapped fit",
                "steps": s.basin_steps, "optimizers": [gd(p.lr).describe() for p in problems],
                "minimum reached": "ends inside the box where the Hessian is positive definite and the Newton "
                                   "step is under 0.5% of the box; ends within 1% of the box are one minimum"}
    return Built(("basins",), rp.Section("3. Basins of attraction", "", (image,), settings, tuple(tables),
                                         anchor="basins"), {"maps": list(maps)})


# -- 4-5. SGD, momentum, Nesterov -------------------------------------------------------------


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


def _epoch_trace(plots, result: FitResult, label: str, color: str, per_epoch: int):
    step = result.history.step
    marks = np.flatnonzero((step % per_epoch == 0) & (step > 0))
    return plots.Trace(result, label, color, marks=marks, x=step / per_epoch)


def _paths_surface(p: LinearProblem, fits: Sequence[FitResult], s: Settings) -> ls.Surface:
    points = np.vstack([r.history.params for r in fits] + [p.exact[None]])
    return ls.surface(p.fn, ("phi0", "phi1"), _box_around(points, 0.12), resolution=s.resolution)


def sgd_figure(s: Settings, p: LinearProblem, folder: Path) -> Built:
    from . import plots

    n = len(p.data)
    per_epoch = -(-n // s.batch_size)
    schedule = step_decay(s.sgd_lr, s.decay_factor, s.decay_epochs * per_epoch)
    common = dict(init=list(s.linear_start), tol=0, seed=s.seed)
    full = fit(p.model, normal(), p.data, gd(s.sgd_lr), steps=s.sgd_epochs, **common)
    plain = fit(p.model, normal(), p.data, sgd(s.sgd_lr), epochs=s.sgd_epochs, batch_size=s.batch_size, **common)
    decayed = fit(p.model, normal(), p.data, sgd(schedule), epochs=s.sgd_epochs, batch_size=s.batch_size, **common)
    labels = [f"full-batch gradient descent (α={s.sgd_lr:g})",
              f"SGD, batch {s.batch_size} (α={s.sgd_lr:g}, constant)",
              f"SGD, batch {s.batch_size} (α={s.sgd_lr:g} ×{s.decay_factor:g} every {s.decay_epochs} epochs)"]
    runs = [_epoch_trace(plots, full, labels[0], plots.PALETTE[4], 1),
            _epoch_trace(plots, plain, labels[1], plots.PALETTE[0], per_epoch),
            _epoch_trace(plots, decayed, labels[2], plots.PALETTE[1], per_epoch)]
    surf = _paths_surface(p, [full, plain, decayed], s)
    title = f"SGD against gradient descent: linear regression, {n} points, {per_epoch} batches an epoch"
    fig = plots.paths_figure(surf, runs, xlabel="epoch", floor=p.floor, excess=True, title=title,
                             points=[_exact_point(p)])
    image = _save(fig, folder, "sgd_vs_gd", f"Gradient descent takes one step an epoch; SGD takes {per_epoch}, "
                  f"each on {s.batch_size} points. With a constant α SGD keeps jittering at a noise floor; "
                  f"a decaying α lets it settle. The two SGD runs share their first {s.decay_epochs} epochs "
                  "(the same batches).")
    settings = {"data": f"linear_data(seed={s.seed}, n={s.linear_n})", "start": s.linear_start,
                "epochs": s.sgd_epochs, "batch size": s.batch_size, "batches per epoch": per_epoch,
                "seed (batch order)": s.seed, "schedule": schedule.describe()}
    table = rp.fits_table([full, plain, decayed], labels, caption="Final parameters and losses")
    section = rp.Section("4. SGD against full-batch gradient descent", "", (image,), settings, (table,), anchor="sgd")
    return Built(("sgd_vs_gd",), section, {"fits": [full, plain, decayed], "labels": labels})


def _exact_point(p: LinearProblem) -> ls.CriticalPoint:
    return ls.CriticalPoint(p.exact, p.floor, 0.0, np.linalg.eigvalsh(p.fn.hessian(p.exact)), "minimum")


def momentum_figure(s: Settings, p: LinearProblem, folder: Path) -> Built:
    from . import plots

    per_epoch = -(-len(p.data) // s.batch_size)
    common = dict(init=list(s.linear_start), tol=0, seed=s.seed, epochs=s.sgd_epochs, batch_size=s.batch_size)
    opts = [sgd(s.sgd_lr), momentum(s.sgd_lr, s.beta), nesterov(s.sgd_lr, s.beta)]
    fits = [fit(p.model, normal(), p.data, o, **common) for o in opts]
    labels = [f"SGD (α={s.sgd_lr:g})", f"momentum (α={s.sgd_lr:g}, β={s.beta:g})",
              f"Nesterov (α={s.sgd_lr:g}, β={s.beta:g})"]
    runs = [_epoch_trace(plots, r, lab, plots.PALETTE[k], per_epoch)
            for k, (r, lab) in enumerate(zip(fits, labels, strict=True))]
    surf = _paths_surface(p, fits, s)
    fig = plots.paths_figure(surf, runs, points=[_exact_point(p)], xlabel="epoch", floor=p.floor, excess=True,
                             title=f"Momentum and Nesterov against SGD on the same {s.batch_size}-point batches")
    image = _save(fig, folder, "momentum", "All three see the same mini-batches in the same order (one seed). "
                  "Momentum averages the gradients, which damps the zig-zag across the valley; Nesterov takes "
                  "its gradient at the look-ahead point.")
    settings = {"data": f"linear_data(seed={s.seed}, n={s.linear_n})", "start": s.linear_start,
                "epochs": s.sgd_epochs, "batch size": s.batch_size, "seed (batch order)": s.seed,
                "optimizers": [o.describe() for o in opts]}
    table = rp.fits_table(fits, labels, caption="Final parameters and losses")
    section = rp.Section("5. Momentum and Nesterov against SGD", "", (image,), settings, (table,), anchor="momentum")
    return Built(("momentum",), section, {"fits": fits, "labels": labels})


# -- 6. normalised gradients against Adam ---------------------------------------------------


def _two_axes(x, params):
    return x[:, 0] * params["phi0"] + x[:, 1] * params["phi1"]


def steep_quadratic(a: float = 1.0, b: float = 25.0) -> tuple[Model, Loss, Dataset]:
    """L[φ] = a φ0² + b φ1² as least squares: f = x₀φ0 + x₁φ1 on two rows (√a, 0), (0, √b), y = 0."""
    model = custom(_two_axes, {"phi0": 0.0, "phi1": 0.0}, name="steep_quadratic")
    data = Dataset(np.array([[np.sqrt(a), 0.0], [0.0, np.sqrt(b)]]), np.zeros(2), x_names=("x0", "x1"),
                   name="steep quadratic")
    return model, normal(), data


def normalized_figure(s: Settings, folder: Path) -> Built:
    from . import plots

    a, b = s.quad_scales
    model, loss, data = steep_quadratic(a, b)
    opts = [normalized(s.quad_lr), adam(s.quad_lr)]
    fits = [fit(model, loss, data, o, init=list(s.quad_start), steps=s.quad_steps, tol=0) for o in opts]
    labels = [f"normalised gradients (α={s.quad_lr:g})", f"Adam (α={s.quad_lr:g}, β=0.9, γ=0.999)"]
    fn = ls.LossFunction(model, loss, data)
    half = max(abs(s.quad_start[0]), abs(s.quad_start[1])) * 1.15
    surf = ls.surface(fn, ("phi0", "phi1"), ((-half, half), (-half * 0.7, half * 0.7)), resolution=s.resolution)
    runs = [plots.Trace(r, lab, plots.PALETTE[k]) for k, (r, lab) in enumerate(zip(fits, labels, strict=True))]
    zoom = 2.5 * s.quad_lr
    window = ((-zoom, zoom), (-zoom, zoom))
    fig = plots.paths_figure(surf, runs, inset=window, inset_surface=ls.surface(fn, ("phi0", "phi1"), window,
                                                                                resolution=s.resolution),
                             title=f"Normalised gradients against Adam on L = {a:g}·φ0² + {b:g}·φ1²")
    fig.axes[0].plot(0, 0, ls="none", marker="*", ms=20, color="#ffd700", mec="#202020", zorder=9)
    image = _save(fig, folder, "normalized_vs_adam", "Normalised gradients step α in every coordinate whatever the "
                  "slope, so they bounce around the minimum; Adam's averaged steps shrink as the gradients cancel.")
    table = rp.fits_table(fits, labels, caption="Final parameters and losses (the minimum is φ = (0, 0), L = 0)")
    settings = {"loss": f"L = {a:g} φ0² + {b:g} φ1²", "start": s.quad_start, "steps": s.quad_steps,
                "optimizers": [o.describe() for o in opts]}
    section = rp.Section("6. Normalised gradients against Adam", "", (image,), settings, (table,), anchor="normalized")
    return Built(("normalized_vs_adam",), section, {"fits": fits, "labels": labels})


# -- 7. hyperparameters ------------------------------------------------------------------


def _final(result: FitResult) -> float:
    return float("nan") if result.status == "diverged" else float(result.loss)


def hyper_figure(s: Settings, p: LinearProblem, folder: Path) -> Built:
    from . import plots
    from .sweeps import sweep as run_sweep

    seeds = range(s.seed, s.seed + s.hyper_seeds)
    model, data = p.model, p.data
    start = {f"init.{name}": [float(v)] for name, v in zip(model.flat_names, s.linear_start, strict=True)}

    def sweep(optimizer, name, values, **fixed):
        """The excess final loss of each value (rows) and seed (columns), from one `gradfit.sweep`: one
        compile for all the values of a number, one per value of a batch size."""
        grid = {**start, name: list(values), **{k: [v] for k, v in fixed.items()}}
        frame = run_sweep(model, normal(), data, optimizer, grid=grid, seeds=list(seeds), epochs=s.hyper_epochs,
                          tol=0, **({} if name == "batch_size" else {"batch_size": s.batch_size}))
        final = np.where(frame["status"] == "diverged", np.nan, frame["final_loss"].to_numpy())
        return final.reshape(len(values), len(seeds)) - p.floor

    by_lr = sweep("sgd", "lr", s.hyper_lrs)
    by_batch = sweep("sgd", "batch_size", s.hyper_batches, lr=s.sgd_lr)
    by_beta = sweep("momentum", "beta", s.hyper_betas, lr=s.sgd_lr)
    ceiling = 10 * (float(p.fn(np.array(s.linear_start))) - p.floor)
    panels = [
        dict(values=s.hyper_lrs, losses=by_lr, xlabel="learning rate α", log_x=True,
             title=f"SGD, batch {s.batch_size}: learning rate"),
        dict(values=s.hyper_batches, losses=by_batch, xlabel="batch size", log_x=True, log_base=2,
             title=f"SGD, α={s.sgd_lr:g}: batch size"),
        dict(values=s.hyper_betas, losses=by_beta, xlabel="momentum β",
             title=f"momentum, α={s.sgd_lr:g}, batch {s.batch_size}: β"),
    ]
    fig = plots.hyper_figure(panels, ceiling=ceiling, ylabel="final excess loss L[φ] − L[φ̂]",
                             suptitle=f"Linear regression: final loss after {s.hyper_epochs} epochs, "
                                      f"{s.hyper_seeds} seeds (batch orders) each")
    image = _save(fig, folder, "hyperparameters", "The median over seeds is the line, min to max the band, each "
                  "seed a dot; a red cross at the top marks a setting where a run diverged (ended above "
                  "ten times the starting loss).")
    tables = []
    for panel, name in zip(panels, ("learning rate α", "batch size", "momentum β"), strict=True):
        rows = []
        for v, r in zip(panel["values"], panel["losses"], strict=True):
            ok = r[np.isfinite(r) & (r <= ceiling)]
            stats = (float(np.median(ok)), float(np.min(ok)), float(np.max(ok))) if len(ok) else (float("nan"),) * 3
            rows.append((v, *stats, int(len(r) - len(ok))))
        tables.append(rp.Table((name, "median excess loss", "min", "max", "diverged"), tuple(rows), panel["title"]))
    settings = {"data": f"linear_data(seed={s.seed}, n={s.linear_n})", "start": s.linear_start,
                "epochs": s.hyper_epochs, "seeds": list(seeds), "learning rates": [f"{v:.3g}" for v in s.hyper_lrs],
                "batch sizes": list(s.hyper_batches), "momenta β": list(s.hyper_betas),
                "excess loss": f"final loss minus the least-squares minimum {p.floor:.6g}"}
    section = rp.Section("7. Hyperparameters", "", (image,), settings, tuple(tables), anchor="hyperparameters")
    return Built(("hyperparameters",), section, {"lr": by_lr, "batch": by_batch, "beta": by_beta})


# -- the whole lecture -----------------------------------------------------------------------


def build(out: str | Path, settings: Settings | None = None, *, quick: bool = False,
          log: Callable[[str], None] | None = None) -> Output:
    """Every figure of the lecture as PNG and SVG under ``out``, and ``out/lecture.html``.

    ``settings`` default to `FULL`, or `QUICK` with ``quick=True``.
    """
    t0 = time.perf_counter()
    s = settings or (QUICK if quick else FULL)
    if len(s.gabor_lr) != len(s.scales):
        raise GradfitError("give one gradient-descent rate per Gabor scale (gabor_lr and scales)")
    folder = _folder(out)
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


# -- compare: optimisers side by side -------------------------------------------------------------


def compare(
    model: Model,
    loss: Loss,
    data: Dataset,
    optimizers: Sequence[Optimizer],
    out: str | Path,
    *,
    init=None,
    steps: int | None = None,
    epochs: int | None = None,
    batch_size: int | None = None,
    tol: float = 0.0,
    seed: int = 0,
    resolution: int = 120,
    box=None,
) -> Output:
    """Fit with each optimiser from the same start; draw the paths over one loss surface.

    Writes ``compare.png``/``.svg`` (paths and loss curves) and ``compare.html`` (the
    figure, the settings and a table of final parameters, loss, steps and time).
    Time is the wall time of a second, compiled call of each fit. With two parameters
    the surface is the loss over both (``box`` default: around all paths, or the book's
    box for the Gabor model); with more, a random filter-normalised slice through the
    best end point, every path projected onto it.
    """
    from . import plots

    t0 = time.perf_counter()
    if not optimizers:
        raise GradfitError("compare needs at least one optimizer")
    folder = _folder(out)
    start = model.default_init(seed) if init is None else init
    results = []
    for opt in optimizers:
        kwargs = dict(init=start, steps=steps, epochs=epochs, batch_size=batch_size, tol=tol, seed=seed)
        fit(model, loss, data, opt, **kwargs)  # compile first, so the time is the fit's own
        results.append(fit(model, loss, data, opt, **kwargs))
    labels = [plots.optimizer_label(r.optimizer) for r in results]
    fn = ls.LossFunction(model, loss, data)
    surf, points = _surface_for(fn, results, box, resolution, seed)
    per_epoch = -(-len(data) // batch_size) if batch_size else None
    runs = [plots.Trace(r, lab, plots.PALETTE[k % len(plots.PALETTE)],
                        x=(r.history.step / per_epoch) if per_epoch else None)
            for k, (r, lab) in enumerate(zip(results, labels, strict=True))]
    fig = plots.paths_figure(surf, runs, points=points, xlabel="epoch" if per_epoch else "step",
                             title=f"{model.describe()} on {data.name}: optimisers compared")
    image = _save(fig, folder, "compare", "Paths over the loss (left) and the full-data loss per step (right).")
    table = rp.fits_table(results, labels, caption="Final parameters, loss, steps and time", time=True)
    settings = {"model": model.describe(), "loss": results[0].objective,
                "data": f"{data.name} ({len(data)} examples)", "start": _fmt_point(results[0].history.params[0]),
                "steps": results[0].settings["steps"], "batch size": batch_size, "seed": seed, "tol": tol,
                "optimizers": [o.describe() for o in optimizers], "surface": _surface_note(surf),
                "time": "wall time of a second, compiled call"}
    section = rp.Section("Optimisers compared", "", (image,), settings, (table,), anchor="compare")
    path = rp.write(rp.Report("gradfit compare", "", (section,)), folder / "compare.html")
    built = Built(("compare",), section, {"fits": results, "labels": labels, "surface": surf})
    return Output(folder, path, (folder / "compare.png", folder / "compare.svg"), (built,), time.perf_counter() - t0)


def _surface_note(surf: ls.Surface) -> str:
    if surf.kind == "parameters":
        (a0, a1), (b0, b1) = surf.box
        held = surf.settings.get("held at") or {}
        note = f"{surf.labels[0]} in [{a0:.4g}, {a1:.4g}], {surf.labels[1]} in [{b0:.4g}, {b1:.4g}]"
        return note + (f"; others held at the best fit's end ({len(held)} values)" if held else "")
    return (f"random filter-normalised slice through the best end point, seed {surf.settings['seed']}, "
            f"span ±{surf.settings['span']:.3g}")


def _surface_for(fn: ls.LossFunction, results: Sequence[FitResult], box, resolution: int, seed: int,
                 params: tuple[str, str] | None = None, at=None, span: float | None = None):
    """The surface to draw fits on, and its critical points where they are those of L."""
    model = fn.model
    finite = [r for r in results if np.isfinite(r.loss)]
    best = min(finite, key=lambda r: r.loss) if finite else results[0]
    # The view holds the paths that did not blow up: one that diverged may have reached
    # parameters of 1e150, and a view that wide overflows everywhere.
    held = [r for r in finite if r.status != "diverged" and r.loss <= r.history.loss[0]] or [best]
    if params is None and model.size == 2:
        params = tuple(model.flat_names)
    if params is not None:
        idx = [ls._index(model, name) for name in params]
        if box is None:
            if model.name == "gabor" and tuple(params) == ("phi0", "phi1"):
                box = GABOR_BOX
            else:
                box = _box_around(np.vstack([r.history.params[:, idx] for r in held]))
        surf = ls.surface(fn, tuple(params), box, at=best.x if at is None else at, resolution=resolution)
        _check_finite(surf)
        points = ls.critical_points(surf.restricted(fn), surf.box, grid=12) if model.size == 2 else ()
        return surf, points
    center = best.x
    if span is None:
        probe = ls.Surface(np.zeros(2), np.zeros(2), np.zeros((2, 2)), center,
                           ls.filter_normalized_directions(model, center, seed), ("", ""), "random")
        reach = max(_largest_finite(probe.project(r.history.params)) for r in held)
        span = max(1.0, 1.15 * reach)
    surf = ls.random_slice(fn, center, seed=seed, span=span, resolution=resolution)
    _check_finite(surf)
    return surf, ()


def _check_finite(surf: ls.Surface) -> None:
    if not np.isfinite(surf.loss).any():
        where = "slice" if surf.kind == "random" else "box"
        raise GradfitError(f"the loss is not finite anywhere on the {where} drawn: the fits diverged or ended far "
                           "from a finite loss; lower the learning rate (or give a smaller span or another box)")


def _largest_finite(values: np.ndarray) -> float:
    finite = np.abs(values[np.isfinite(values)])
    return float(finite.max()) if finite.size else 0.0


# -- explore: the landscape around a fit ---------------------------------------------------------


def explore(
    model: Model,
    loss: Loss,
    data: Dataset,
    optimizer: Optimizer,
    out: str | Path,
    *,
    params: tuple[str, str] | None = None,
    at=None,
    box=None,
    init=None,
    steps: int | None = 1000,
    batch_size: int | None = None,
    tol: float = 1e-6,
    seed: int = 0,
    span: float | None = None,
    resolution: int = 150,
) -> Output:
    """Fit once, then draw the loss landscape around the fit with its path.

    Over two named ``params`` (default: the model's two, when it has two) with the
    others held at ``at`` (default: the fit's end), critical points marked when the
    plane holds every parameter; for larger models without ``params``, a 2-D slice
    along two random filter-normalised directions through the fit's end (Li et al.
    2018) over [-span, span]², the path projected onto it. Writes
    ``landscape.png``/``.svg`` and ``landscape.html``.
    """
    from . import plots

    t0 = time.perf_counter()
    folder = _folder(out)
    result = fit(model, loss, data, optimizer, init=init, steps=steps, batch_size=batch_size, tol=tol, seed=seed)
    fn = ls.LossFunction(model, loss, data)
    surf, points = _surface_for(fn, [result], box, resolution, seed, params, at, span)
    label = plots.optimizer_label(result.optimizer)
    fig = plots.paths_figure(surf, [plots.Trace(result, label, plots.PALETTE[0])], points=points,
                             title=f"{model.describe()} on {data.name}: the loss landscape")
    image = _save(fig, folder, "landscape", "The loss around the fit, with its path"
                  + (" projected onto the slice." if surf.kind == "random" else "."))
    tables = [rp.fits_table([result], [label], caption="The fit")]
    if points:
        tables.append(rp.Table(("kind", *surf.labels, "loss"),
                               tuple((p.kind, *p.theta, p.value) for p in points if p.kind != "degenerate"),
                               "Critical points in the box"))
    settings = {"model": model.describe(), "loss": result.objective, "data": f"{data.name} ({len(data)} examples)",
                "optimizer": optimizer.describe(), "steps": result.steps, "surface": _surface_note(surf),
                "grid": f"{len(surf.a)} × {len(surf.b)}"}
    section = rp.Section("Loss landscape", "", (image,), settings, tuple(tables), anchor="landscape")
    path = rp.write(rp.Report("gradfit landscape", "", (section,)), folder / "landscape.html")
    built = Built(("landscape",), section, {"fit": result, "surface": surf, "points": points})
    return Output(folder, path, (folder / "landscape.png", folder / "landscape.svg"), (built,),
                  time.perf_counter() - t0)

"""Part 2, the Gabor model (the slides' Gabor example, s = 8; the book's Figure 6.3, s = 32).
Draws `gabor_model` (the model for a few parameter settings), `gabor_surfaces` (the loss for both s
with every critical point), `gabor_paths_s8` / `gabor_paths_s32` (gradient descent reaching the
global minimum, caught in a local minimum, stalling at a saddle point) and `basins` (the basins of
attraction of gradient descent, and the plateau L = Σy² where the model is ≈ 0) and `gabor_minima`
(the model over the data at each minimum, the book's Figure 6.3b–f)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import landscape as ls
from .. import report as rp
from ..data import Dataset, gabor_data
from ..fitting import fit
from ..losses import normal
from ..models import Model, gabor
from ..optimizers import gd
from ..result import FitResult
from .figure import Built, curve_of, fmt_point, grid_x, save_figure
from .settings import GABOR_BOX, Settings


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
    from .. import plots

    shown = ((0.0, 16.6), (1.0, 10.0), (-1.5, 8.5), (2.5, 21.0))
    panels = []
    for p in problems:
        x = grid_x(p.data, pad=0.0)
        curves = [(f"φ = {fmt_point(phi)}" + (" (the data's own)" if k == 0 else ""), x, curve_of(p.model, x, phi),
                   plots.PALETTE[k]) for k, phi in enumerate(shown)]
        panels.append((f"s = {p.s:g}" + (" (slides)" if p.s == 8 else " (book)" if p.s == 32 else ""), p.data,
                       curves))
    fig = plots.models_figure(panels, suptitle="The Gabor model f = sin(z)·exp(−z²/s), z = φ₀ + 0.06 φ₁ x")
    image = save_figure(fig, folder, "gabor_model",
                        "The Gabor model for a few parameter settings, over the built-in data.")
    settings = {"data": f"gabor_data(seed={s.seed}, n={s.gabor_n}, s) for each s", "φ shown": list(shown)}
    text = ("The Gabor model is a sine wave under a bell: φ₀ shifts it along x and φ₁ stretches it. The data were "
            "made from one setting of φ with noise added. What to see: small changes of φ slide or squeeze the "
            "wave so that it matches some of the points and misses others, which is why its loss (next figure) has "
            "many valleys, not one. A larger s widens the bell, so more of the wave counts and there are more ways "
            "to fit part of the data.")
    return Built(("gabor_model",), rp.Section("The Gabor model", text, (image,), settings, anchor="gabor-model"))


def _points_table(p: GaborProblem) -> rp.Table:
    rows = [(pt.kind, *pt.theta, pt.value, *pt.eigenvalues) for pt in p.points if pt.kind != "degenerate"]
    return rp.Table(("kind", "phi0", "phi1", "loss", "λ1", "λ2"), tuple(rows),
                    f"Critical points for s = {p.s:g} (∇L = 0; Hessian eigenvalues λ)")


def gabor_surface_figure(s: Settings, problems: Sequence[GaborProblem], folder: Path) -> Built:
    from .. import plots

    titles = [f"s = {p.s:g}" + (" (slides)" if p.s == 8 else " (book)" if p.s == 32 else "") for p in problems]
    fig = plots.surfaces_figure([p.surface for p in problems], [p.points for p in problems], titles,
                                suptitle="Gabor least-squares loss: global minimum, local minima, saddles")
    image = save_figure(fig, folder, "gabor_surfaces", "Loss surfaces with every critical point in the box, "
                        "found by Newton's method and classified by the Hessian's eigenvalues.")
    settings = {"box": GABOR_BOX, "surface": f"{s.resolution} × {s.resolution}",
                "critical points": f"Newton's method from {s.critical_grid} × {s.critical_grid} starts"}
    counts = "; ".join(f"s = {p.s:g}: {len(p.minima)} minima and {len(p.saddles)} saddle points" for p in problems)
    text = ("The least-squares loss of the Gabor model over the book's box of (φ₀, φ₁), with every point where the "
            "gradient vanishes, found by Newton's method from a grid of starts and named by the signs of the "
            f"Hessian's eigenvalues ({counts}). What to see: one deep narrow valley holds the global minimum (the "
            "star); the other minima are shallower valleys where gradient descent can stop, and saddle points sit on "
            "the ridges between valleys. The loss is not convex, so where gradient descent ends depends on where it "
            "starts.")
    return Built(("gabor_surfaces",), rp.Section("The Gabor loss surface", text, (image,), settings,
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


def _apart(run: FitResult, other: FitResult, gap: float = 0.04, points: int = 400) -> bool:
    """Whether two paths never come within ``gap`` of the box's diagonal of each other."""
    span = np.array([hi - lo for lo, hi in GABOR_BOX])
    a, b = (r.history.params[:: max(1, len(r.history.params) // points)] for r in (run, other))
    closest = np.min(np.linalg.norm(a[:, None, :] - b[None, :, :], axis=-1))
    return bool(closest > gap * float(np.linalg.norm(span)))


def gabor_paths_figure(s: Settings, p: GaborProblem, bm: ls.BasinMap, folder: Path) -> Built:
    from .. import plots

    starts, labels = [], []
    global_start = _start_in_basin(bm, 0, 0.3)
    if global_start is not None:
        starts.append(global_start)
        labels.append("reaches the global minimum")
    # a start in each of the largest local basins: the one drawn is the first whose path
    # keeps clear of the others' (two paths through one saddle read as one)
    local_starts = []
    for m in (1 + np.argsort(-bm.shares[1:], kind="stable"))[:4]:
        start = _start_in_basin(bm, int(m), 0.2)
        if start is not None:
            local_starts.append(start)
    candidates = _saddle_candidates(p, s)

    def lingering(flat):  # steps until the nudge has grown to the box's size
        return np.log(1.0 / s.saddle_nudge) / np.log1p(p.lr * flat)

    steps = s.path_steps
    if candidates:
        steps = max(steps, int(max(c[2] for c in candidates) + min(1.5 * lingering(min(c[4] for c in candidates)),
                                                                   5000)))
    # every start at once, the saddle candidates too: one compiled fit
    runs = fit(p.model, normal(), p.data, gd(p.lr), init=np.array(starts + local_starts + [c[0] for c in candidates]),
               steps=steps, tol=0)
    fits = [runs[k] for k in range(len(starts))]
    first = len(starts) + len(local_starts)
    picked = _pick_saddle_run(p, s, candidates, [runs[first + k] for k in range(len(candidates))])
    saddle_run = runs[first + picked[0]] if picked is not None else None
    if local_starts:
        locals_ = [runs[len(starts) + k] for k in range(len(local_starts))]
        clear = [r for r in locals_ if all(_apart(r, other) for other in [*fits, saddle_run] if other is not None)]
        fits.append((clear or locals_)[0])
        starts.append(fits[-1].history.params[0])
        labels.append("caught in a local minimum")
    shown, references = s.path_steps, []
    if picked is not None:
        k, (start, _, arrival, saddle, flat) = picked
        fits.append(saddle_run)
        starts.append(start)
        labels.append("stalls near a saddle point")
        shown = max(shown, int(1.3 * (arrival + lingering(flat))))
        references.append((saddle.value, f"saddle point's loss {saddle.value:.4g}"))
    # one optimiser, one colour: the outcomes differ in line style and are numbered
    runs_drawn = plots.traces(fits, [f"{k + 1}. {lab}: start {fmt_point(r.history.params[0])}"
                                     for k, (r, lab) in enumerate(zip(fits, labels, strict=True))])
    floor = float(p.minima[0].value) if p.minima else None
    fig = plots.paths_figure(p.surface, runs_drawn, points=p.points, floor=floor, references=references,
                             xmax=min(shown, steps), legend_cols=1,
                             title=f"Gabor model, s = {p.s:g}: gradient descent (α={p.lr:g}) from three starts")
    name = f"gabor_paths_s{p.s:g}"
    image = save_figure(fig, folder, name, f"Gradient-descent paths for s = {p.s:g}. The loss curve of the path that "
                        "runs into the saddle point stays at the saddle's loss until it slides off.")
    table = rp.fits_table(fits, labels, caption=f"Final parameters and losses after {steps} steps, s = {p.s:g}")
    how = ("gradient descent run backwards from just beside a saddle until "
           f"{s.saddle_offset:g} of the box away, then checked forwards; the saddle with the flattest way down")
    settings = {"optimizer": gd(p.lr).describe(), "steps": steps, "starts": [fmt_point(x) for x in starts],
                "saddle start": how + (f": {fmt_point(picked[1][3].theta)}, reached after {picked[1][2]} steps"
                                       if picked is not None else ": none found in the box")}
    ends = "; ".join(f"{k + 1}. {lab}, ending at loss {float(r.loss):.3g}"
                     for k, (r, lab) in enumerate(zip(fits, labels, strict=True)))
    text = (f"The same gradient descent (α = {p.lr:g}) from different starts on the Gabor loss with s = {p.s:g}: "
            f"{ends}. What to see: the outcome is decided by the start, not by the optimiser. A start in the global "
            "minimum's valley slides down to the best fit. A start beside a shallower valley ends in it, and however "
            "long it runs its loss stays above the global minimum's, because the gradient there is zero. A start "
            "that runs along a ridge into a saddle point stops moving for a while: its loss curve sits flat at the "
            "saddle's loss, then drops when the path slides off down one side. Gradient descent alone cannot tell "
            "these three endings apart; only the loss value does.")
    section = rp.Section(f"Gradient-descent paths, s = {p.s:g}", text, (image,), settings, (table,),
                         anchor=f"gabor-paths-s{p.s:g}")
    return Built((name,), section, {"fits": fits, "labels": labels})


def basin_maps(s: Settings, problems: Sequence[GaborProblem]) -> list[ls.BasinMap]:
    return [ls.basins(p.model, normal(), p.data, gd(p.lr), GABOR_BOX, resolution=s.basin_resolution,
                      steps=s.basin_steps) for p in problems]


def basins_figure(s: Settings, problems: Sequence[GaborProblem], maps: Sequence[ls.BasinMap], folder: Path) -> Built:
    from .. import plots

    titles = [f"s = {p.s:g}, gradient descent α={p.lr:g}" for p in problems]
    suptitle = f"Basins of attraction: {s.basin_resolution}² starts, {s.basin_steps} steps each"
    # Far from z = 0 the model is ≈ 0 everywhere, so the loss is flat at Σy²: runs that reach
    # no minimum mostly slide along that plateau, not off to a minimum outside the box.
    plateaus = [float(np.sum(np.asarray(p.data.y) ** 2)) for p in problems]
    fig = plots.basins_figure(maps, titles, [p.points for p in problems], suptitle=suptitle, plateaus=plateaus)
    image = save_figure(fig, folder, "basins", "Each start coloured by the minimum its gradient-descent run "
                        "reaches; pale where it reaches none but ends on the plateau L ≈ Σy² (the model ≈ 0), "
                        "grey where it is still moving elsewhere or has left the box.")
    shares = [float(np.mean(plots.basin_codes(bm, level) == plots.PLATEAU)) for bm, level in zip(maps, plateaus,
                                                                                                    strict=True)]
    text = ("Every start on a grid over the box, coloured by where gradient descent from it ends: the region of "
            "starts that reach one minimum is that minimum's basin of attraction. What to see: the global minimum's "
            "basin is only a part of the box, so a random start often ends in a worse fit; with s = 32 the loss "
            "has more minima and the box splits into more basins.\n\n"
            "Where |z| = |φ₀ + 0.06 φ₁ x| is large for every x, sin(z)·exp(−z²/s) ≈ 0 and the loss is flat at "
            "L = Σy², the loss of predicting 0. Gradient descent there barely moves, and starts that leave the "
            "box mostly slide down towards that plateau, not to a better minimum: the legend gives their median "
            "loss where they end, to set against Σy². " + ". ".join(
                f"For s = {p.s:g} the plateau is at Σy² = {level:.3g}, below {sum(bm.minima_loss > level)} of the "
                f"{len(bm.minima)} minima found, and {100 * share:.1f}% of the starts end on it"
                for p, bm, level, share in zip(problems, maps, plateaus, shares, strict=True)) + ".")
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
    return Built(("basins",), rp.Section("Basins of attraction", text, (image,), settings, tuple(tables),
                                         anchor="basins"), {"maps": list(maps)})


def interior_minima(p: GaborProblem) -> list[ls.CriticalPoint]:
    """The minima of ``p`` off the box's edge (one on the edge is the box's, not the loss's), lowest loss first."""
    from ..plots import on_edge

    return sorted((q for q in p.minima if not on_edge(q.theta, GABOR_BOX)), key=lambda q: q.value)


def gabor_minima_figure(s: Settings, problems: Sequence[GaborProblem], folder: Path, columns: int = 4) -> Built:
    """`gabor_minima` (the book's Figure 6.3b–f): the model over the data at every minimum, lowest loss first.

    One panel per minimum of each s off the box's edge; the global one is starred and framed.
    """
    from .. import plots

    minima = [interior_minima(p) for p in problems]
    rows = [-(-max(len(m), 1) // columns) for m in minima]
    fig, axes = plots.new_figure(ncols=columns, nrows=sum(rows), size=(15, 3.3 * sum(rows) + 0.6), sharey=True)
    axes = np.asarray(axes).reshape(sum(rows), columns)
    top = 0
    for p, found, n_rows in zip(problems, minima, rows, strict=True):
        x = grid_x(p.data, pad=0.0)
        for k in range(n_rows * columns):
            ax = axes[top + k // columns, k % columns]
            if k >= len(found):
                ax.set_axis_off()
                continue
            q = found[k]
            ax.plot(p.data.x, p.data.y, "o", ms=4.5, color="#404040", label="data")
            ax.plot(x, curve_of(p.model, x, q.theta), color=plots.OKABE_ITO["blue"], lw=2.6,
                    label=f"model at minimum {k + 1}")
            which = "★ global minimum" if k == 0 else f"local minimum {k + 1}"
            ax.set_title(f"s = {p.s:g}: {which}\nφ = {fmt_point(q.theta)}, L = {q.value:.4g}", fontsize=11.5)
            if k == 0:
                for spine in ax.spines.values():
                    spine.set_visible(True)
                    spine.set_color("#c9a100")
                    spine.set_linewidth(2.5)
            ax.grid(True, alpha=0.3)
            if k % columns == 0:
                ax.set_ylabel("$y$")
            ax.set_xlabel("$x$")
        top += n_rows
    fig.suptitle("The Gabor model at each minimum of its loss, ordered by loss")
    panels = sum(ax.axison for ax in fig.axes)
    counts = ", ".join(f"{len(m)} for s = {p.s:g}" for p, m in zip(problems, minima, strict=True))
    image = save_figure(fig, folder, "gabor_minima", f"The model's curve at every minimum found in the box ({counts}), "
                        "lowest loss first. Only the global minimum "
                        "(starred) follows the data; at a local minimum the wave is shifted or stretched so that it "
                        "matches part of the data and misses the rest, and gradient descent cannot leave it.")
    rows_table = tuple((f"s = {p.s:g}", "global" if k == 0 else f"local {k + 1}", *q.theta, q.value)
                       for p, found in zip(problems, minima, strict=True) for k, q in enumerate(found))
    table = rp.Table(("model", "minimum", "phi0", "phi1", "loss"), rows_table, "The minima, lowest loss first")
    settings = {"minima": f"Newton's method from {s.critical_grid} × {s.critical_grid} starts in {GABOR_BOX}, "
                          "minima on the box's edge left out"}
    text = ("What a local minimum means for the fit: each panel draws the model at one minimum of the loss over the "
            "data. What to see: only the global minimum's curve follows all the points. At every other minimum the "
            "wave is shifted or stretched so that it fits some points and misses the rest, and any small change of "
            "φ from there makes the fit worse, which is why gradient descent stays.")
    section = rp.Section("The model at each minimum", text, (image,), settings, (table,),
                         anchor="gabor-surface-minima")
    return Built(("gabor_minima",), section, {"minima": minima, "panels": panels})

"""Part 3, stochastic gradient descent (the slides' SGD section). Draws `sgd_vs_gd`: SGD against
full-batch gradient descent on the line data, epochs marked, with a constant and a decaying
learning rate; `sgd_gabor` (book Figure 6.4b): SGD leaving a local minimum of the Gabor loss in
which gradient descent from the same start stays; and `sgd_batches` (book Figure 6.5): the loss
of a few mini-batches beside the full-data loss, with SGD's first step drawn on each."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from .. import landscape as ls
from .. import report as rp
from ..data import Dataset, epoch_batches
from ..fitting import fit
from ..losses import normal
from ..optimizers import gd, sgd
from ..result import FitResult, MultiFit
from ..schedules import Schedule, step_decay
from .figure import Built, box_around, fmt_point, save_figure
from .gabor import GaborProblem
from .linear import LinearProblem, exact_point, paths_surface
from .settings import Settings


def epoch_trace(trace, per_epoch: int):
    """The trace with each epoch's end dotted, its loss curve over epochs."""
    step = trace.result.history.step
    marks = np.flatnonzero((step % per_epoch == 0) & (step > 0))
    return dataclasses.replace(trace, marks=marks, x=step / per_epoch)


def sgd_figure(s: Settings, p: LinearProblem, folder: Path) -> Built:
    from .. import plots

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
    runs = [epoch_trace(t, 1 if k == 0 else per_epoch)
            for k, t in enumerate(plots.traces([full, plain, decayed], labels))]
    surf = paths_surface(p, [full, plain, decayed], s)
    title = f"SGD against gradient descent: linear regression, {n} points, {per_epoch} batches an epoch"
    fig = plots.paths_figure(surf, runs, xlabel="epoch", floor=p.floor, excess=True, title=title,
                             points=[exact_point(p)])
    image = save_figure(fig, folder, "sgd_vs_gd", f"Gradient descent takes one step an epoch; SGD takes {per_epoch}, "
                        f"each on {s.batch_size} points. With a constant α SGD keeps jittering at a noise floor; "
                        f"a decaying α lets it settle. The two SGD runs share their first {s.decay_epochs} epochs "
                        "(the same batches).")
    settings = {"data": f"linear_data(seed={s.seed}, n={s.linear_n})", "start": s.linear_start,
                "epochs": s.sgd_epochs, "batch size": s.batch_size, "batches per epoch": per_epoch,
                "seed (batch order)": s.seed, "schedule": schedule.describe()}
    table = rp.fits_table([full, plain, decayed], labels, caption="Final parameters and losses")
    ends = [float(r.loss) - p.floor for r in (full, plain, decayed)]
    text = ("Stochastic gradient descent steps on the gradient of a random mini-batch instead of the whole data "
            f"set: {per_epoch} cheap, noisy steps an epoch where gradient descent takes one exact step. What to "
            "see: early on, SGD's path follows the full gradient's direction and its loss per epoch falls faster. "
            "Near the minimum the batches disagree, so with a constant α SGD keeps jumping about at a noise "
            f"floor (final excess loss {ends[1]:.2g}), while gradient descent keeps improving (final {ends[0]:.2g}). "
            f"Halving α every {s.decay_epochs} epochs shrinks the jumps, and the scheduled run ends lower "
            f"({ends[2]:.2g}) than the constant one.")
    section = rp.Section("SGD against full-batch gradient descent", text, (image,), settings, (table,), anchor="sgd")
    return Built(("sgd_vs_gd",), section, {"fits": [full, plain, decayed], "labels": labels})


@dataclasses.dataclass(frozen=True)
class GaborSGD:
    """Gradient descent and SGD from one start on the Gabor loss: SGD under several seeds, one picked."""

    full: FitResult  # gradient descent, one step an epoch
    runs: MultiFit  # SGD, one run a seed
    picked: int  # the run drawn: the first that ends within 1% of the loss range of the lowest
    escaped: int  # how many seeds end below gradient descent's loss by over 1% of the loss range
    schedule: Schedule
    per_epoch: int


def gabor_sgd_runs(s: Settings, p: GaborProblem) -> GaborSGD:
    """Gradient descent (α of the problem) and SGD (a decaying α) from `sgd_gabor_start`, the same epochs."""
    n = len(p.data)
    per_epoch = -(-n // s.sgd_gabor_batch)
    schedule = step_decay(s.sgd_gabor_lr, 0.5, max(1, s.sgd_gabor_epochs // 4) * per_epoch)
    full = fit(p.model, normal(), p.data, gd(p.lr), init=list(s.sgd_gabor_start), steps=s.sgd_gabor_epochs, tol=0)
    k = s.sgd_gabor_seeds
    runs = fit(p.model, normal(), p.data, sgd(schedule), init=np.tile(s.sgd_gabor_start, (k, 1)),
               epochs=s.sgd_gabor_epochs, batch_size=s.sgd_gabor_batch, tol=0, seed=s.seed + np.arange(k))
    ends = np.array([float(runs[j].history.loss[-1]) for j in range(k)])
    margin = 0.01 * float(np.ptp(p.surface.loss))
    escaped = int(np.sum(ends < float(full.history.loss[-1]) - margin))
    picked = int(np.flatnonzero(ends <= ends.min() + margin)[0])
    return GaborSGD(full, runs, picked, escaped, schedule, per_epoch)


def sgd_gabor_figure(s: Settings, p: GaborProblem, g: GaborSGD, folder: Path) -> Built:
    from .. import plots

    chosen = g.runs[g.picked]
    labels = [f"full-batch gradient descent (α={p.lr:g}), one step an epoch",
              f"SGD, batch {s.sgd_gabor_batch} of {len(p.data)}, seed {s.seed + g.picked} "
              f"(α={s.sgd_gabor_lr:g}, halved every {max(1, s.sgd_gabor_epochs // 4)} epochs)"]
    runs = [epoch_trace(t, per) for t, per in zip(plots.traces([g.full, chosen], labels), (1, g.per_epoch),
                                                   strict=True)]
    floor = float(p.minima[0].value) if p.minima else None
    title = (f"Gabor model, s = {p.s:g}: SGD leaves the local minimum that holds gradient descent "
             f"(start {fmt_point(s.sgd_gabor_start)})")
    # the paths span a small part of the box: a window around them and the two minima they reach
    ends = [q.theta[None] for q in p.minima
            if min(np.linalg.norm(q.theta - np.asarray(r.x)) for r in (g.full, chosen)) < 1.0]
    window = box_around(np.vstack([g.full.history.params, chosen.history.params, *ends]), 0.12, min_half=1.0)
    surf = ls.surface(p.fn, ("phi0", "phi1"), window, resolution=s.resolution)
    fig = plots.paths_figure(surf, runs, points=p.points, floor=floor, xlabel="epoch", legend_cols=1, title=title)
    at_best = floor is not None and abs(float(chosen.loss) - floor) < 0.01 * float(np.ptp(p.surface.loss))
    where = ", here in the global minimum (gold star)" if at_best else f", here at L = {float(chosen.loss):.4g}"
    caption = (f"Both start at φ = {fmt_point(s.sgd_gabor_start)}, in the basin of a local minimum (white circle). "
               "Gradient descent runs into its flat valley and stays there (orange, one dot a step). "
               "SGD (blue, one dot an epoch) "
               f"steps on {s.sgd_gabor_batch} points at a time: its gradient is noisy, its steps jump out of the "
               f"shallow basin, and once out it settles as α decays{where}. "
               f"Escaping is a matter of luck: {g.escaped} of {s.sgd_gabor_seeds} seeds (batch orders) end "
               f"lower than gradient descent; the figure shows seed {s.seed + g.picked}.")
    image = save_figure(fig, folder, "sgd_gabor", caption)
    settings = {"data": f"gabor_data(seed={s.seed}, n={s.gabor_n}, s={p.s:g})", "start": s.sgd_gabor_start,
                "epochs": s.sgd_gabor_epochs, "batch size": s.sgd_gabor_batch,
                "seeds tried": f"{s.seed}..{s.seed + s.sgd_gabor_seeds - 1}", "schedule": g.schedule.describe(),
                "gradient descent": gd(p.lr).describe()}
    table = rp.fits_table([g.full, chosen], labels, caption="Final parameters and losses")
    text = ("Noise can help on a non-convex loss. From a start in a local minimum's basin, gradient descent "
            "slides into that minimum and stays. What to see: SGD from the same start follows each batch's own "
            "loss, whose valleys are in slightly different places, so the local minimum is not a resting point for "
            "it; the noisy steps can carry it over the ridge into the global minimum's valley, where it settles.")
    section = rp.Section(f"SGD escapes a local minimum of the Gabor loss, s = {p.s:g}", text, (image,), settings,
                         (table,), anchor="sgd-gabor")
    return Built(("sgd_gabor",), section, {"fits": [g.full, chosen], "labels": labels, "escaped": g.escaped,
                                           "seeds": s.sgd_gabor_seeds})


def batch_steps(s: Settings, p: GaborProblem, g: GaborSGD) -> dict:
    """SGD's longest step in the drawn run, its mini-batch and the next ones, and each one's step from there.

    The first batch's step is the run's own step t; the others are the steps SGD would
    have taken from φ_t had it drawn them instead (at the same α_t).
    """
    n, bs = len(p.data), s.sgd_gabor_batch
    path = np.asarray(g.runs[g.picked].history.params, float)
    t = int(np.argmax(np.linalg.norm(np.diff(path, axis=0), axis=1)))
    epoch, j = divmod(t, g.per_epoch)
    rows, mask = epoch_batches(n, bs, s.seed + g.picked, epoch)
    picked = [(j + k) % g.per_epoch for k in range(min(s.sgd_batches_shown, g.per_epoch))]
    shown = [rows[k][mask[k]] for k in picked]
    lr = float(g.schedule(t))
    fns = [p.fn] + [ls.LossFunction(p.model, normal(), Dataset(p.data.x[r], p.data.y[r], p.data.x_names,
                                                                 p.data.y_name, f"batch {k + 1}"))
                    for k, r in enumerate(shown)]
    here = path[t]
    own = [here - lr * fn.grad(here) for fn in fns]
    return {"step": t, "epoch": epoch, "batch": j, "rows": shown, "fns": fns, "start": here, "taken": path[t + 1],
            "ends": own, "gd_end": here - p.lr * p.fn.grad(here), "lr": lr}


def sgd_batches_figure(s: Settings, p: GaborProblem, g: GaborSGD, folder: Path) -> Built:
    from matplotlib.lines import Line2D

    from .. import plots

    b = batch_steps(s, p, g)
    start, taken, gd_end, t = b["start"], b["taken"], b["gd_end"], b["step"]
    ends = np.vstack([start, taken, gd_end, *b["ends"]])
    half = max(float(np.max(np.abs(ends - start))) * 1.35, 1.0)  # one half-width: the arrows keep their angles
    box = tuple((float(c - half), float(c + half)) for c in start)
    surfaces = [ls.surface(fn, ("phi0", "phi1"), box, resolution=s.sgd_batches_resolution) for fn in b["fns"]]
    sgd_color, gd_color = plots.optimizer_color("sgd"), plots.optimizer_color("gd")
    titles = [f"all {len(p.data)} points"] + [f"step {t}'s mini-batch" if k == 0 else f"the epoch's batch no. "
                                              f"{(b['batch'] + k) % g.per_epoch + 1}" for k in range(len(b["rows"]))]

    def arrow(ax, a, z, color, style="-", lw=2.8):
        ax.annotate("", xy=z, xytext=a, zorder=8, arrowprops=dict(arrowstyle="-|>", color=color, lw=lw, ls=style,
                                                                    mutation_scale=20, shrinkA=0, shrinkB=0))

    lowest_drawn = False
    with plots.style():
        fig, axes = plots.new_figure(len(surfaces), size=(4.1 * len(surfaces), 5.6))
        for k, (ax, surf, title) in enumerate(zip(axes, surfaces, titles, strict=True)):
            plots.draw_surface(ax, surf, colorbar=False)
            j, i = np.unravel_index(int(np.nanargmin(surf.loss)), surf.loss.shape)
            if not plots.on_edge((surf.a[i], surf.b[j]), box):
                lowest_drawn = True
                ax.plot(surf.a[i], surf.b[j], "o", ms=10, color="#ffffff", mec="#202020", mew=1.3, zorder=9)
            if k == 0:
                arrow(ax, start, gd_end, gd_color)
            elif k > 1:
                arrow(ax, start, b["ends"][k], "#ffffff", style=(0, (2, 1.5)), lw=2.0)
            arrow(ax, start, taken, sgd_color)
            ax.plot(*start, "o", ms=8, mfc="none", mec="#202020", mew=2.0, zorder=7)
            ax.set_title(title, fontsize=11.5)
            if k:
                ax.set_ylabel("")
        handles = [Line2D([], [], color=sgd_color, lw=2.8, label=f"SGD's step {t} (on its mini-batch, α={b['lr']:g})"),
                   Line2D([], [], color=gd_color, lw=2.8, label=f"gradient descent's step from there (α={p.lr:g})"),
                   Line2D([], [], color="#ffffff", lw=2.0, ls=(0, (2, 1.5)),
                          label="the step SGD would take on this batch"),
                   Line2D([], [], ls="none", marker="o", ms=10, mfc="none", mec="#202020", mew=2.2,
                          label=f"φ after {t} steps"),
                   Line2D([], [], ls="none", marker="o", ms=10, color="#ffffff", mec="#202020",
                          label="lowest point in the window")][:None if lowest_drawn else -1]
        leg = fig.legend(handles=handles, loc="outside lower center", ncols=3, fontsize=11, frameon=True)
        leg.get_frame().set_facecolor("#c8c8c8")
        fig.suptitle(f"Gabor model, s = {p.s:g}: every mini-batch of {s.sgd_gabor_batch} points has its own loss")
    caption = (f"The loss around φ_t = {fmt_point(start)}, where the SGD run of the figure above takes its longest "
               f"step (step {t}, epoch {b['epoch']}), for all {len(p.data)} points (left) and for that step's "
               "mini-batch and the next ones of the epoch (each panel on its own colour scale). The surfaces "
               "differ: their valleys and lowest points move from batch to batch. SGD's step (blue, the same arrow on "
               "every panel) goes straight downhill on its own batch only; on the other batches it would have gone "
               "elsewhere (dashed; short here, where those batches are nearly flat), and on the full data gradient "
               "descent takes a short step another way (orange). That noise is what carries SGD out of the local "
               "minimum's basin.")
    image = save_figure(fig, folder, "sgd_batches", caption)
    settings = {"window": tuple(tuple(round(v, 3) for v in w) for w in box),
                "surface": f"{s.sgd_batches_resolution} × {s.sgd_batches_resolution}",
                "batches": f"epoch {b['epoch']} of seed {s.seed + g.picked}, batch size {s.sgd_gabor_batch}",
                "rows of each batch": [", ".join(map(str, r)) for r in b["rows"]]}
    text = ("Why SGD's steps are noisy: each mini-batch has its own loss surface, the same sum of squares over "
            "fewer points. What to see: the batches' surfaces resemble the full-data loss but their valleys and "
            "minima are moved, and each SGD step goes downhill on its batch's surface, not on the full one. A "
            "minimum of the full loss is generally not a minimum of a batch's loss.")
    section = rp.Section(f"Mini-batch loss surfaces, s = {p.s:g}", text, (image,), settings, anchor="sgd-batches")
    return Built(("sgd_batches",), section, {"surfaces": surfaces, "rows": b["rows"], "start": start, "taken": taken,
                                             "own_ends": b["ends"], "gd_end": gd_end, "lr": b["lr"], "step": t})

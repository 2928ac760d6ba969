"""Part 4, momentum (the slides' momentum and Nesterov sections). Draws `momentum`: momentum and
Nesterov against plain SGD on the same mini-batches of the line data; `momentum_gabor` (book
Figure 6.6): gradient descent, momentum and Nesterov from one start on the Gabor loss, one panel
each; and `nesterov_lookahead` (book Figure 6.7): one step of momentum against one of Nesterov,
drawn from the fits' own first steps."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import landscape as ls
from .. import report as rp
from ..fitting import fit
from ..losses import normal
from ..optimizers import gd, momentum, nesterov, sgd
from .figure import Built, box_around, first_below, fmt_point, save_figure
from .gabor import GaborProblem
from .linear import LinearProblem, exact_point, paths_surface
from .settings import Settings
from .sgd import epoch_trace


def momentum_figure(s: Settings, p: LinearProblem, folder: Path) -> Built:
    from .. import plots

    per_epoch = -(-len(p.data) // s.batch_size)
    common = dict(init=list(s.linear_start), tol=0, seed=s.seed, epochs=s.sgd_epochs, batch_size=s.batch_size)
    opts = [sgd(s.sgd_lr), momentum(s.sgd_lr, s.beta), nesterov(s.sgd_lr, s.beta)]
    fits = [fit(p.model, normal(), p.data, o, **common) for o in opts]
    labels = [f"SGD (α={s.sgd_lr:g})", f"momentum (α={s.sgd_lr:g}, β={s.beta:g})",
              f"Nesterov (α={s.sgd_lr:g}, β={s.beta:g})"]
    runs = [epoch_trace(t, per_epoch) for t in plots.traces(fits, labels)]
    surf = paths_surface(p, fits, s)
    fig = plots.paths_figure(surf, runs, points=[exact_point(p)], xlabel="epoch", floor=p.floor, excess=True,
                             title=f"Momentum and Nesterov against SGD on the same {s.batch_size}-point batches")
    image = save_figure(fig, folder, "momentum", "All three see the same mini-batches in the same order (one seed). "
                        "Momentum averages the gradients, which damps the zig-zag across the valley; Nesterov takes "
                        "its gradient at the look-ahead point.")
    settings = {"data": f"linear_data(seed={s.seed}, n={s.linear_n})", "start": s.linear_start,
                "epochs": s.sgd_epochs, "batch size": s.batch_size, "seed (batch order)": s.seed,
                "optimizers": [o.describe() for o in opts]}
    table = rp.fits_table(fits, labels, caption="Final parameters and losses")
    ends = [float(r.loss) - p.floor for r in fits]
    text = ("Momentum keeps a running average of past gradients, m ← β m + (1 − β) g, and steps along it instead "
            "of along the latest gradient. What to see: the components of the gradient that flip sign from step to "
            "step (across the valley, and from one batch to the next) cancel in the average, while the part along "
            "the valley's floor adds up, so the path is smoother and moves faster along the floor. Nesterov's "
            "variant evaluates the gradient where momentum is about to carry the point, so it corrects earlier and "
            f"overshoots less. Final excess losses after {s.sgd_epochs} epochs: SGD {ends[0]:.2g}, momentum "
            f"{ends[1]:.2g}, Nesterov {ends[2]:.2g}.")
    section = rp.Section("Momentum and Nesterov against SGD", text, (image,), settings, (table,), anchor="momentum")
    return Built(("momentum",), section, {"fits": fits, "labels": labels})


def momentum_gabor_figure(s: Settings, p: GaborProblem, folder: Path) -> Built:
    from matplotlib.lines import Line2D

    from .. import plots

    opts = [gd(p.lr), momentum(p.lr, s.beta), nesterov(p.lr, s.beta)]
    fits = [fit(p.model, normal(), p.data, o, init=list(s.momentum_gabor_start), steps=s.momentum_gabor_steps, tol=0)
            for o in opts]
    names = ["gradient descent", "momentum", "Nesterov"]
    labels = [f"gradient descent (α={p.lr:g})", f"momentum (α={p.lr:g}, β={s.beta:g})",
              f"Nesterov (α={p.lr:g}, β={s.beta:g})"]
    best = min(q.value for q in p.minima) if p.minima else float(np.min(p.surface.loss))
    level = best + 1e-3 * float(np.ptp(p.surface.loss))  # within 0.1% of the loss range of the global minimum
    reached = [first_below(r.history.loss, level) for r in fits]
    rises = [float(np.max(np.maximum(np.diff(r.history.loss), 0.0))) for r in fits]
    shown = np.vstack([r.history.params for r in fits] + [q.theta[None] for q in p.minima if q.value == best])
    surf = ls.surface(p.fn, ("phi0", "phi1"), box_around(shown, 0.1), resolution=s.resolution)
    every = max(1, s.momentum_gabor_steps // 15)
    colors = [plots.optimizer_color(r.optimizer) for r in fits]
    with plots.style():
        fig, axes = plots.new_figure(4, size=(17.0, 5.6), width_ratios=(1, 1, 1, 1.05))
        for k, (ax, r, name, color, when) in enumerate(zip(axes[:3], fits, names, colors, reached, strict=True)):
            plots.draw_surface(ax, surf, colorbar=False)
            plots.draw_critical_points(ax, p.points, surf)
            coords = surf.project(r.history.params)
            plots.draw_path(ax, coords, label=name, color=color, marks=np.arange(every, len(coords) - 1, every))
            ax.set_title(f"{name}\n" + (f"near the minimum after {when} steps" if when is not None
                                         else f"not near the minimum after {s.momentum_gabor_steps} steps"),
                         fontsize=12.5)
            if k:
                ax.set_ylabel("")
        plots.draw_loss_curves(axes[3], [(lab, r.history.step, np.asarray(r.history.loss), c)
                                         for lab, r, c in zip(names, fits, colors, strict=True)], floor=best)
        axes[3].set_title("full-data loss", fontsize=12.5)
        axes[3].legend(fontsize=10.5, loc="upper right")
        handles = [Line2D([], [], color=c, lw=2.6, label=lab) for c, lab in zip(colors, labels, strict=True)]
        handles += [Line2D([], [], ls="none", marker="o", ms=5, color="#909090", mec="#202020", mew=0.6,
                           label=f"every {every} steps"),
                    Line2D([], [], ls="none", marker="o", ms=10, mfc="none", mec="#404040", mew=2.2, label="start"),
                    Line2D([], [], ls="none", marker="*", ms=16, color="#ffd700", mec="#202020",
                           label="global minimum")]
        fig.legend(handles=handles, loc="outside lower center", ncols=3, fontsize=11, frameon=False)
        fig.suptitle(f"Gabor model, s = {p.s:g}: gradient descent, momentum and Nesterov from "
                     f"{fmt_point(s.momentum_gabor_start)}")
    def when(k):
        return f"after {reached[k]} steps" if reached[k] is not None else f"not within {s.momentum_gabor_steps} steps"

    caption = (f"The same start, rate α = {p.lr:g} and {s.momentum_gabor_steps} steps, one panel each on the same "
               "loss (dots every "f"{every} steps). Gradient descent zig-zags across the narrow valley, then creeps "
               f"along its floor as the slope fades (near the minimum {when(0)}). Momentum (β = {s.beta:g}) averages "
               "the gradients: the zig-zag cancels and it keeps its speed along the floor, but it swings wide and "
               f"overshoots, its loss rising by up to {rises[1]:.2g} on the way ({when(1)}). Nesterov takes its "
               "gradient at the look-ahead point, so it brakes before the far wall: a tighter curve, its loss "
               f"rising by at most {rises[2]:.2g} ({when(2)}).")
    image = save_figure(fig, folder, "momentum_gabor", caption)
    settings = {"data": f"gabor_data(seed={s.seed}, n={s.gabor_n}, s={p.s:g})", "start": s.momentum_gabor_start,
                "steps": s.momentum_gabor_steps, "optimizers": [o.describe() for o in opts],
                "near the minimum": f"loss within {level - best:.3g} of the global minimum's {best:.4g}"}
    table = rp.fits_table(fits, labels, caption="Final parameters and losses")
    text = ("The three rules on a curved, narrow valley of the Gabor loss, each in its own panel so that no path "
            "hides another. What to see: gradient descent zig-zags and then crawls; momentum is faster along the "
            "valley but swings wide and its loss goes up on the way; Nesterov's look-ahead brakes before the far "
            "wall, so its curve is tighter. The step counts in the panel titles say which reached the minimum "
            "first.")
    section = rp.Section(f"Momentum and Nesterov on the Gabor loss, s = {p.s:g}", text, (image,), settings,
                         (table,), anchor="momentum-gabor")
    return Built(("momentum_gabor",), section, {"fits": fits, "labels": labels, "colors": colors,
                                                "reached": reached, "rises": rises, "axes": fig.axes})


def lookahead_steps(s: Settings, p: LinearProblem) -> dict:
    """φ_t and m_t after `lookahead_steps` of momentum from `linear_start`, and one more step of each rule.

    Both steps are gradfit's own update rules (`Optimizer.update`) from the same state:
    momentum m ← β m + (1-β) ∇L[φ_t], Nesterov m ← β m + (1-β) ∇L[φ_t - α m]; then
    φ ← φ - α m. The first t + 1 points are those of `fit` with momentum for t + 1 steps (the
    tests check it; the figure does not run that fit, which would compile a loop for one picture).
    """
    import jax
    import jax.numpy as jnp

    lr, beta, t = s.lookahead_lr, s.beta, s.lookahead_steps
    opts = {"momentum": momentum(lr, beta), "nesterov": nesterov(lr, beta)}

    def grad(theta):
        return jnp.asarray(p.fn.grad(np.asarray(theta, float)))

    with jax.enable_x64(True):
        phi = jnp.asarray(s.linear_start, float)
        state = opts["momentum"].init(phi)
        for _ in range(t):
            step, state = opts["momentum"].update(grad(phi), state, phi)
            phi = phi + step
        m = np.asarray(state[0].ema, float)
        ends = {}
        for name, o in opts.items():
            step, _ = o.update(grad(phi), state, phi, grad_fn=grad)
            ends[name] = np.asarray(phi + step, float)
    phi = np.asarray(phi, float)
    look = phi - lr * m
    return {"phi": phi, "m": m, "carry": phi - lr * beta * m, "look": look, "ends": ends, "lr": lr, "beta": beta,
            "t": t, "g_here": np.asarray(grad(phi)), "g_look": np.asarray(grad(look)),
            "optimizers": opts}


def nesterov_lookahead_figure(s: Settings, p: LinearProblem, folder: Path) -> Built:
    from matplotlib.lines import Line2D

    from .. import plots

    d = lookahead_steps(s, p)
    phi, carry, look, lr, beta, t = d["phi"], d["carry"], d["look"], d["lr"], d["beta"], d["t"]
    pts = np.vstack([phi, carry, look, *d["ends"].values(), phi - lr * (1 - beta) * d["g_here"],
                     look - lr * (1 - beta) * d["g_look"]])
    surf = ls.surface(p.fn, ("phi0", "phi1"), box_around(pts, 0.3, min_half=0.05), resolution=s.resolution)
    colors = {name: plots.optimizer_color(name) for name in ("momentum", "nesterov")}
    losses = {name: float(p.fn(end)) for name, end in d["ends"].items()}
    lengths = {name: float(np.linalg.norm(end - phi)) for name, end in d["ends"].items()}

    def arrow(ax, a, z, color, lw=2.8, style="-", z_order=8):
        ax.annotate("", xy=z, xytext=a, zorder=z_order, arrowprops=dict(
            arrowstyle="-|>", color=color, lw=lw, ls=style, mutation_scale=20, shrinkA=0, shrinkB=0))

    def label(ax, xy, text, offset):
        ax.annotate(text, xy=xy, xytext=offset, textcoords="offset points", fontsize=13, zorder=12,
                    color="#ffffff", fontweight="bold", ha="center", va="center")

    titles = {"momentum": r"momentum: gradient at $\phi_t$",
              "nesterov": r"Nesterov: gradient at the look-ahead $\phi_t - \alpha m_t$"}
    with plots.style():
        fig, axes = plots.new_figure(2, size=(13.0, 6.4))
        for ax, name in zip(axes, ("momentum", "nesterov"), strict=True):
            plots.draw_surface(ax, surf, colorbar=name == "nesterov")
            color, end = colors[name], d["ends"][name]
            at, g = (phi, d["g_here"]) if name == "momentum" else (look, d["g_look"])
            push = -lr * (1 - beta) * g
            arrow(ax, phi, carry, "#ffffff", lw=2.4, style=(0, (3, 2)))
            arrow(ax, at, at + push, color, lw=1.8, style=(0, (1, 1)))
            arrow(ax, carry, end, color, lw=2.2)
            arrow(ax, phi, end, color, lw=3.4, z_order=9)
            other = d["ends"]["nesterov" if name == "momentum" else "momentum"]
            ax.plot(*other, "s", ms=8, mfc="none", mec=colors["nesterov" if name == "momentum" else "momentum"],
                    mew=2.0, zorder=10)
            ax.plot(*phi, "o", ms=11, mfc="none", mec="#ffffff", mew=2.6, zorder=11)
            ax.plot(*end, "s", ms=9, color=color, mec="#202020", zorder=11)
            label(ax, phi, r"$\phi_t$", (-18, 10))
            label(ax, end, r"$\phi_{t+1}$", (16, -14))
            if name == "nesterov":
                ax.plot(*look, "D", ms=8, color="#ffffff", mec="#202020", zorder=11)
                label(ax, look, "look-ahead", (0, -18))
            ax.set_title(titles[name], fontsize=13.5)
        axes[1].set_ylabel("")
        handles = [Line2D([], [], color="#ffffff", lw=2.4, ls=(0, (3, 2)), label=r"$-\alpha\beta m_t$: the momentum "
                          "carried over (the same for both)"),
                   Line2D([], [], color="#7f7f7f", lw=1.8, ls=(0, (1, 1)), label=r"$-\alpha(1-\beta)\,\nabla L$ "
                          "at the point where each takes its gradient"),
                   Line2D([], [], color=colors["momentum"], lw=3.4, label=rf"momentum's step $\phi_t \to "
                          rf"\phi_{{t+1}}$ (α={lr:g}, β={beta:g})"),
                   Line2D([], [], color=colors["nesterov"], lw=3.4, label=rf"Nesterov's step $\phi_t \to "
                          rf"\phi_{{t+1}}$ (α={lr:g}, β={beta:g})"),
                   Line2D([], [], ls="none", marker="s", ms=8, mfc="none", mec="#404040", mew=2.0,
                          label=r"the other rule's $\phi_{t+1}$")]
        leg = fig.legend(handles=handles, loc="outside lower center", ncols=2, fontsize=11, frameon=True)
        leg.get_frame().set_facecolor("#c8c8c8")
        fig.suptitle(f"One step of momentum against one of Nesterov, after {t} steps of momentum (line data)")
    brakes = ", so Nesterov brakes: its step is shorter" if lengths["nesterov"] < lengths["momentum"] else ""
    caption = (f"After {t} steps of momentum from {fmt_point(s.linear_start)} the point is φ_t = {fmt_point(phi)} "
               f"with momentum m_t = {fmt_point(d['m'])}. Both rules carry −αβ m_t over (white dashes) and add "
               "−α(1−β) times a gradient (dotted): momentum the gradient at φ_t, Nesterov the gradient at the "
               "look-ahead point φ_t − α m_t (white diamond), where momentum is about to take it. There the slope "
               f"already points back{brakes}. "
               f"Momentum ends at {fmt_point(d['ends']['momentum'])} (L = {losses['momentum']:.4g}), Nesterov at "
               f"{fmt_point(d['ends']['nesterov'])} (L = {losses['nesterov']:.4g}): each the rule's own update, "
               f"momentum's equal to step {t + 1} of its fit.")
    image = save_figure(fig, folder, "nesterov_lookahead", caption)
    settings = {"data": f"linear_data(seed={s.seed}, n={s.linear_n})", "start": s.linear_start,
                "momentum steps before": t, "optimizers": [o.describe() for o in d["optimizers"].values()]}
    text = ("One update of each rule from the same point and the same momentum, drawn as vectors. What to see: both "
            "rules carry the same share of the old momentum; they differ only in where the new gradient is taken. "
            "Momentum uses the gradient where the point is; Nesterov uses it at the look-ahead point, where the "
            "momentum is about to carry it, so it feels the far side of the valley one step early.")
    section = rp.Section("Nesterov's look-ahead", text, (image,), settings, anchor="nesterov-lookahead")
    return Built(("nesterov_lookahead",), section, {**{k: v for k, v in d.items() if k != "optimizers"},
                                                    "losses": losses, "lengths": lengths})

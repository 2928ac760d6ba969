"""Part 5, Adam (the slides' normalised-gradient and Adam sections), on a quadratic steep in one
direction and shallow in the other (the loss of the book's Figure 6.8). Draws `steep_rates`
(gradient descent at a small and a large rate: no rate suits both directions), `normalized_vs_adam`
(normalised gradients against Adam), `adam_bias` (Adam's moments against their bias-corrected
forms over its first steps) and `normalized_example` (the slides' g = [3, -2, 5] → [1, -1, 1])."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from .. import landscape as ls
from .. import report as rp
from ..data import Dataset
from ..fitting import fit
from ..losses import Loss, normal
from ..models import Model, custom
from ..optimizers import Optimizer, adam, gd, normalized
from .figure import Built, fmt_point, save_figure
from .settings import Settings


def _two_axes(x, params):
    return x[:, 0] * params["phi0"] + x[:, 1] * params["phi1"]


@functools.lru_cache(maxsize=8)
def steep_quadratic(a: float = 1.0, b: float = 25.0) -> tuple[Model, Loss, Dataset]:
    """L[φ] = a φ0² + b φ1² as least squares: f = x₀φ0 + x₁φ1 on two rows (√a, 0), (0, √b), y = 0.

    The same objects for the same (a, b), so the figures on it share their compiled fits.
    """
    model = custom(_two_axes, {"phi0": 0.0, "phi1": 0.0}, name="steep_quadratic")
    data = Dataset(np.array([[np.sqrt(a), 0.0], [0.0, np.sqrt(b)]]), np.zeros(2), x_names=("x0", "x1"),
                   name="steep quadratic")
    return model, normal(), data


def normalized_figure(s: Settings, folder: Path) -> Built:
    from .. import plots

    a, b = s.quad_scales
    model, loss, data = steep_quadratic(a, b)
    opts = [normalized(s.quad_lr), adam(s.quad_lr)]
    fits = [fit(model, loss, data, o, init=list(s.quad_start), steps=s.quad_steps, tol=0) for o in opts]
    labels = [f"normalised gradients (α={s.quad_lr:g})", f"Adam (α={s.quad_lr:g}, β=0.9, γ=0.999)"]
    fn = ls.LossFunction(model, loss, data)
    half = max(abs(s.quad_start[0]), abs(s.quad_start[1])) * 1.15
    surf = ls.surface(fn, ("phi0", "phi1"), ((-half, half), (-half * 0.7, half * 0.7)), resolution=s.resolution)
    runs = plots.traces(fits, labels)
    zoom = 2.5 * s.quad_lr
    window = ((-zoom, zoom), (-zoom, zoom))
    minimum = ls.CriticalPoint(np.zeros(2), 0.0, 0.0, np.array([2 * a, 2 * b]), "minimum")
    fig = plots.paths_figure(surf, runs, points=[minimum], inset=window,
                             inset_surface=ls.surface(fn, ("phi0", "phi1"), window, resolution=s.resolution),
                             title=f"Normalised gradients against Adam on L = {a:g}·φ₀² + {b:g}·φ₁²")
    image = save_figure(fig, folder, "normalized_vs_adam", "Normalised gradients step α in every coordinate "
                        "whatever the slope, so they bounce around the minimum; Adam's averaged steps shrink as the "
                        "gradients cancel.")
    table = rp.fits_table(fits, labels, caption="Final parameters and losses (the minimum is φ = (0, 0), L = 0)")
    settings = {"loss": f"L = {a:g} φ₀² + {b:g} φ₁²", "start": s.quad_start, "steps": s.quad_steps,
                "optimizers": [o.describe() for o in opts]}
    text = ("Two fixes for a loss that is steep in one direction and shallow in another. Normalised gradients "
            "divide each coordinate of the gradient by its own size, so every coordinate moves by α per step "
            "whatever its slope. Adam does the same with running averages: m of the gradients and v of their "
            "squares, step α m̃ / (√ṽ + ε). What to see: both head straight for the minimum where gradient descent "
            "would zig-zag. Near it, normalised gradients cannot take a step smaller than α, so they bounce back "
            "and forth at a fixed distance (the flat band of the loss curve). Adam's averaged gradients cancel as "
            f"the sign flips, so its steps shrink and its loss keeps falling (to {float(fits[1].loss):.2g} after "
            f"{s.quad_steps} steps, against {float(fits[0].loss):.2g}).")
    section = rp.Section("Normalised gradients against Adam", text, (image,), settings, (table,), anchor="normalized")
    return Built(("normalized_vs_adam",), section, {"fits": fits, "labels": labels})


def steep_rates_figure(s: Settings, folder: Path) -> Built:
    """`steep_rates` (the book's Figure 6.8a–b): gradient descent on the steep quadratic at two rates.

    On L = a φ0² + b φ1² each coordinate of gradient descent is multiplied by 1 - 2αa or
    1 - 2αb per step: a rate small enough for the steep φ1 (|1 - 2αb| < 1, α < 1/b) crawls
    along the shallow φ0, and a rate that moves φ0 briskly overshoots φ1 further each step.
    """
    from .. import plots
    from .figure import box_around

    a, b = s.quad_scales
    model, loss, data = steep_quadratic(a, b)
    fits = [fit(model, loss, data, gd(lr), init=list(s.quad_start), steps=s.steep_steps, tol=0)
            for lr in s.steep_lrs]
    fn = ls.LossFunction(model, loss, data)
    box = box_around(np.concatenate([f.history.params for f in fits]), margin=0.08)
    surf = ls.surface(fn, ("phi0", "phi1"), box, resolution=s.resolution)
    fig, axes = plots.new_figure(ncols=2, sharey=True)
    color = plots.optimizer_color("gd")
    for ax, f, lr, side in zip(axes, fits, s.steep_lrs, ("small", "large"), strict=True):
        plots.draw_surface(ax, surf, colorbar=ax is axes[-1])
        plots.draw_path(ax, f.history.params, label="gradient descent (a dot per step)", color=color,
                        marks=np.arange(len(f.history.params)))
        ax.plot(0, 0, ls="none", **plots.POINT_STYLE["global"])
        factors = [f"{1 - 2 * lr * k:.3g}".replace("-", "−") for k in (a, b)]
        ax.set_title(f"{side} α = {lr:g}: ×{factors[0]} along φ₀, ×{factors[1]} along φ₁ per step", fontsize=12)
        ax.set_xlabel(plots.axis_label("phi0"))
    axes[0].legend(loc="upper right")
    axes[0].set_ylabel(plots.axis_label("phi1"))
    axes[1].set_ylabel("")
    fig.suptitle(f"Gradient descent on L = {a:g}·φ₀² + {b:g}·φ₁², {s.steep_steps} steps from "
                 f"{fmt_point(s.quad_start)}")
    image = save_figure(fig, folder, "steep_rates", f"Each step multiplies φ₀ by 1 − 2α·{a:g} and φ₁ by 1 − 2α·{b:g}. "
                        f"At α = {s.steep_lrs[0]:g} the steep φ₁ settles at once but φ₀ crawls (dots are steps); at "
                        f"α = {s.steep_lrs[1]:g}, above 1/{b:g}, φ₀ moves quickly but φ₁ overshoots further every "
                        "step and diverges. No single α suits both directions: the slide's reason for normalised "
                        "gradients and Adam.")
    labels = [f"gradient descent α = {lr:g}" for lr in s.steep_lrs]
    table = rp.fits_table(fits, labels, caption="Final parameters and losses (the minimum is φ = (0, 0), L = 0)")
    settings = {"loss": f"L = {a:g} φ₀² + {b:g} φ₁²", "start": s.quad_start, "steps": s.steep_steps,
                "optimizers": [gd(lr).describe() for lr in s.steep_lrs]}
    text = (f"The slide's reason for Adam, on L = {a:g}·φ₀² + {b:g}·φ₁²: the loss is {b / a:g} times steeper along "
            "φ₁ than along φ₀. What to see: a learning rate small enough for the steep direction barely moves the "
            "shallow one, and one large enough for the shallow direction makes the steep one overshoot further at "
            "every step until it diverges. Gradient descent has one α for every direction, so no choice of it is "
            "good for both.")
    section = rp.Section("Gradient descent on a steep quadratic: no good learning rate", text, (image,), settings,
                         (table,), anchor="normalized-steep")
    return Built(("steep_rates",), section, {"fits": fits})


def adam_moments(opt: Optimizer, grads: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Adam's moments m_t, v_t after each of the gradients ``grads`` (T, P), read from ``opt``'s own state.

    Returns (m, v, updates), each (T, P): the state's first and second moments after
    update t (uncorrected), and the parameter change of that update.
    """
    import jax
    import jax.numpy as jnp
    import optax

    with jax.enable_x64(True):
        params = jnp.zeros(grads.shape[1])

        def one(state, g):
            update, state = opt.update(g, state, params)
            moments = next(part for part in state if isinstance(part, optax.ScaleByAdamState))
            return state, (moments.mu, moments.nu, update)

        _, (m, v, steps) = jax.lax.scan(one, opt.init(params), jnp.asarray(grads))
        return np.asarray(m), np.asarray(v), np.asarray(steps)


def adam_bias_figure(s: Settings, folder: Path) -> Built:
    """`adam_bias`: Adam's moments m_t, v_t against their bias-corrected m̃_t, ṽ_t over its first steps.

    The run is a real `fit` with Adam on the steep quadratic; the moments come from
    feeding its gradients, one per recorded φ_t, to the same optimiser's ``update`` and
    reading optax's state, whose updates must then rebuild the recorded path.
    """
    from .. import plots

    a, b = s.quad_scales
    model, loss, data = steep_quadratic(a, b)
    opt = adam(s.quad_lr)
    h = dict(opt.hyper)
    beta, gamma = h["beta"], h["gamma"]
    # as many steps as `normalized_vs_adam`'s Adam run, whose compiled loop this reuses; the first ones drawn
    run = fit(model, loss, data, opt, init=list(s.quad_start), steps=max(s.bias_steps, s.quad_steps), tol=0)
    path = run.history.params[: s.bias_steps + 1]
    grads = ls.LossFunction(model, loss, data).grad(path[:-1])
    m, v, updates = adam_moments(opt, grads)
    t = np.arange(1, len(grads) + 1)
    m_hat, v_hat = m / (1 - beta ** t)[:, None], v / (1 - gamma ** t)[:, None]
    color = plots.optimizer_color("adam")
    row = 1  # the steep coordinate φ1: its gradient is largest, and changes sign on the way
    fig, axes = plots.new_figure(ncols=2, size=(13, 5))
    ax = axes[0]
    ax.axhline(0, color="#909090", lw=0.8)
    ax.plot(t, grads[:, row], "o", ms=5, color="#404040", label=r"gradient $g_t$")
    ax.plot(t, m[:, row], ls="--", color=color, label=rf"$m_t$ (β = {beta:g})")
    ax.plot(t, m_hat[:, row], color=color, label=r"$\tilde{m}_t = m_t\,/\,(1 - \beta^t)$")
    ax.set_ylabel(rf"$\partial L/\partial\phi_{row}$")
    ax.set_title("first moment", fontsize=13)
    ax = axes[1]
    ax.plot(t, grads[:, row] ** 2, "o", ms=5, color="#404040", label=r"$g_t^2$")
    ax.plot(t, v[:, row], ls="--", color=color, label=rf"$v_t$ (γ = {gamma:g})")
    ax.plot(t, v_hat[:, row], color=color, label=r"$\tilde{v}_t = v_t\,/\,(1 - \gamma^t)$")
    ax.set_yscale("log")
    ax.set_ylabel(rf"$(\partial L/\partial\phi_{row})^2$")
    ax.set_title("second moment (log scale)", fontsize=13)
    for ax in axes:
        ax.grid(True, alpha=0.3)
        ax.set_xlabel("step $t$")
        ax.legend(loc="best")
    fig.suptitle(f"Adam's bias correction along φ₁, its first {len(t)} steps on L = {a:g}·φ₀² + {b:g}·φ₁² "
                 f"(α = {s.quad_lr:g})")
    image = save_figure(fig, folder, "adam_bias", f"The moments start at 0, so m_1 = (1 − β)·g_1 = {1 - beta:g}·g_1 "
                        f"and v_1 = (1 − γ)·g_1² = {1 - gamma:.3g}·g_1²: biased towards 0 (dashed) for about "
                        f"1/(1 − β) = {1 / (1 - beta):.0f} and 1/(1 − γ) = {1 / (1 - gamma):.0f} steps. Dividing by "
                        "1 − β^t and 1 − γ^t (solid) removes the bias: m̃_1 = g_1 and ṽ_1 = g_1², and m̃_t follows "
                        "the gradients from the first step.")
    settings = {"optimizer": opt.describe(), "loss": f"L = {a:g} φ₀² + {b:g} φ₁²", "start": s.quad_start,
                "steps": s.bias_steps, "moments": "read from the optimiser's optax state, fed the fit's gradients"}
    text = ("Adam's running averages start at zero, so for the first steps they are too small: after one step "
            "m = (1 − β) g. What to see: the raw moments (dashed) climb slowly from zero, while the corrected "
            "ones, m̃ = m / (1 − βᵗ) and ṽ = v / (1 − γᵗ) (solid), are right from the first step; the two "
            "agree once βᵗ and γᵗ are near zero. Without the correction Adam's first steps would be the wrong size.")
    section = rp.Section("Adam's bias correction", text, (image,), settings, anchor="normalized-bias")
    results = {"fit": run, "grads": grads, "m": m, "v": v, "m_hat": m_hat, "v_hat": v_hat, "updates": updates,
               "beta": beta, "gamma": gamma}
    return Built(("adam_bias",), section, results)


#: The slides' worked example of normalised gradients: g = [3, -2, 5] gives the direction [1, -1, 1].
EXAMPLE_GRADIENT = (3.0, -2.0, 5.0)


def normalized_example_figure(s: Settings, folder: Path) -> Built:
    """`normalized_example`: the slides' g = [3, -2, 5] through gradfit's normalised-gradient rule.

    One update of `normalized` (α = 1) from φ = 0 with the gradient g: the step it takes
    is the direction m / (√v + ε).
    """
    import jax

    from .. import plots

    grad = np.array(EXAMPLE_GRADIENT)
    opt = normalized(1.0)
    start = np.zeros(3)
    with jax.enable_x64(True):
        update, _ = opt.update(jax.numpy.asarray(grad), opt.init(jax.numpy.asarray(start)), jax.numpy.asarray(start))
    direction = -np.asarray(update) / opt.lr.lr
    m, v = grad, grad**2
    fig, axes = plots.new_figure(ncols=2, size=(12, 4.8), sharey=True)
    k = np.arange(3)
    names = [f"$\\phi_{j}$" for j in k]
    axes[0].bar(k - 0.2, m, 0.4, color="#606060", label=r"$m = g$")
    axes[0].bar(k + 0.2, np.sqrt(v), 0.4, color=plots.PALETTE[1], label=r"$\sqrt{v} = \sqrt{g^2} = |g|$")
    for j in k:
        axes[0].annotate(f"{m[j]:g}", (j - 0.2, m[j]), ha="center", va="bottom" if m[j] > 0 else "top",
                         xytext=(0, 3 if m[j] > 0 else -3), textcoords="offset points")
        axes[0].annotate(f"{np.sqrt(v[j]):g}", (j + 0.2, np.sqrt(v[j])), ha="center", va="bottom",
                         xytext=(0, 3), textcoords="offset points")
    axes[0].set_title(f"the gradient g = [{', '.join(f'{x:g}' for x in grad)}], v = g² = "
                      f"[{', '.join(f'{x:g}' for x in v)}]", fontsize=12)
    axes[0].legend(loc="lower left")
    color = plots.optimizer_color("normalized")
    axes[1].bar(k, direction, 0.5, color=color, edgecolor="#202020", label=r"$m\,/\,(\sqrt{v} + \epsilon)$")
    for j in k:
        axes[1].annotate(f"{direction[j]:.9g}", (j, direction[j]), ha="center",
                         va="bottom" if direction[j] > 0 else "top", xytext=(0, 3 if direction[j] > 0 else -3),
                         textcoords="offset points")
    axes[1].set_title("gradfit's normalised rule: the step is −α times this", fontsize=12)
    axes[1].legend(loc="lower left")
    for ax in axes:
        ax.axhline(0, color="#202020", lw=0.8)
        ax.set_xticks(k, names)
        ax.grid(True, axis="y", alpha=0.3)
    axes[0].set_ylim(min(-3.0, 1.35 * float(np.min(m))), 1.25 * float(np.max(np.abs(m))))
    fig.suptitle("Normalised gradients: every coordinate steps by about α, whatever its slope")
    eps = dict(opt.hyper)["eps"]
    image = save_figure(fig, folder, "normalized_example", "The slides' example. With m = g and v = g², the step "
                        "φ ← φ − α m / (√v + ε) moves each coordinate by α in the downhill direction: g = [3, −2, 5] "
                        f"gives the direction [1, −1, 1] (to ε = {eps:g}), here from one update of gradfit's "
                        "normalised-gradient optimiser with α = 1, given the gradient g.")
    table = rp.Table(("parameter", "g", "v = g²", "m / (√v + ε)"),
                     tuple((f"phi{j}", m[j], v[j], direction[j]) for j in k), "The worked example")
    settings = {"optimizer": opt.describe(), "gradient": list(EXAMPLE_GRADIENT), "steps": "one, from φ = 0"}
    text = ("The slides' worked example, computed by gradfit's own optimiser: a gradient g = [3, −2, 5] divided "
            "coordinate by coordinate by its own size √(g²) gives the direction [1, −1, 1]. What to see: every "
            "coordinate moves by the same amount α, whatever the size of its slope; only the sign of the slope "
            "survives.")
    section = rp.Section("Normalised gradients: the worked example", text, (image,), settings, (table,),
                         anchor="normalized-example")
    return Built(("normalized_example",), section, {"gradient": grad, "direction": direction, "eps": eps})

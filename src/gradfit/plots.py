"""Figures from fit results and landscapes, in one style, readable at slide size.

Every function takes results (`FitResult`, `Surface`, `BasinMap`, critical points)
and returns a matplotlib ``Figure``; nothing here fits or touches optimiser state.
matplotlib is imported inside the functions, so ``import gradfit`` never needs it,
and figures are built with ``matplotlib.figure.Figure`` directly (no pyplot, no
global state, no display): they render headless to PNG and SVG through `save`.

The style: loss as filled contours on a log scale (viridis, colour bar labelled with
the loss), parameter names on the axes (φ₀, φ₁ as mathtext), Okabe and Ito's
colour-blind-safe colours with one fixed colour per optimiser in every figure
(`optimizer_color`), a hollow circle at each start and a filled square at each end,
the global minimum a gold star, other minima white circles, saddles white crosses,
maxima small grey triangles; critical points on the edge of the box are not marked
(they are minima of the box, not of the loss).
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

#: Okabe and Ito's eight colours, distinct under the common kinds of colour blindness.
OKABE_ITO = {"orange": "#E69F00", "sky blue": "#56B4E9", "green": "#009E73", "yellow": "#F0E442",
             "blue": "#0072B2", "vermillion": "#D55E00", "purple": "#CC79A7", "black": "#000000"}
#: Colours for the lines of one figure that are not optimisers (model curves, say), in order.
PALETTE = tuple(OKABE_ITO[k] for k in ("orange", "sky blue", "green", "vermillion", "purple", "blue", "yellow",
                                       "black"))
#: One colour per optimiser, the same in every figure; gradient descent with a line search
#: counts as its own method. Black is kept for references (an exact solution).
OPTIMIZER_COLORS = {
    "gd": OKABE_ITO["orange"],
    "line search": OKABE_ITO["blue"],
    "sgd": OKABE_ITO["sky blue"],
    "momentum": OKABE_ITO["green"],
    "nesterov": OKABE_ITO["purple"],
    "normalized": OKABE_ITO["yellow"],
    "adam": OKABE_ITO["vermillion"],
    "adamw": OKABE_ITO["vermillion"],
    "rmsprop": OKABE_ITO["blue"],
    "adagrad": OKABE_ITO["yellow"],
}
REFERENCE_COLOR = OKABE_ITO["black"]
#: Line styles to tell apart runs of one colour (one optimiser at several settings).
LINE_STYLES = ("solid", (0, (5, 2)), (0, (1, 1.5)), (0, (6, 2, 1, 2)))
#: The loss's colour map and the line colour of its contours.
CMAP = "viridis"
CONTOUR_LINE = "#ffffff"
#: Sizes for slides: a 12-inch-wide figure shown on a 16:9 screen.
WIDE = (13.0, 5.6)
SINGLE = (7.6, 6.0)
DPI = 150

STYLE = {
    "font.size": 13,
    "axes.titlesize": 15,
    "axes.titleweight": "bold",
    "axes.labelsize": 14,
    "xtick.labelsize": 12,
    "ytick.labelsize": 12,
    "legend.fontsize": 11,
    "legend.framealpha": 0.92,
    "figure.titlesize": 17,
    "figure.titleweight": "bold",
    "axes.grid": False,
    "lines.linewidth": 2.2,
    "savefig.pad_inches": 0.15,
    "svg.fonttype": "none",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "image.cmap": CMAP,
}

_GREEK = {"beta": "β", "gamma": "γ"}


def optimizer_key(spec: dict[str, Any] | str) -> str:
    """The key of `OPTIMIZER_COLORS` for a result's ``optimizer`` record (or a name)."""
    if isinstance(spec, str):
        return spec
    return "line search" if spec.get("line_search") else str(spec.get("name", "?"))


def optimizer_color(spec: dict[str, Any] | str) -> str:
    """The fixed colour of an optimiser (a result's ``optimizer`` record or its name); grey if unknown."""
    return OPTIMIZER_COLORS.get(optimizer_key(spec), "#7f7f7f")


def axis_label(name: str) -> str:
    """A parameter name for an axis: ``phi0`` as $\\phi_0$, ``beta1`` as $\\beta_1$; others as given."""
    match = re.fullmatch(r"(phi|beta|omega|theta)(\d+)", name)
    return rf"$\{match[1]}_{{{match[2]}}}$" if match else name


def _mpl():
    import matplotlib

    return matplotlib


def new_figure(ncols: int = 1, nrows: int = 1, size: tuple[float, float] | None = None, **kwargs):
    """A styled figure and its axes (an array when there are several)."""
    from matplotlib.figure import Figure

    with _mpl().rc_context(STYLE):
        fig = Figure(figsize=size or (WIDE if ncols > 1 else SINGLE), layout="constrained")
        axes = fig.subplots(nrows, ncols, squeeze=True, **kwargs)
    return fig, axes


def style():
    """A context in which matplotlib draws in the gradfit style."""
    return _mpl().rc_context(STYLE)


def styled(fn):
    """Run a drawing function under the gradfit style."""

    def wrapper(*args, **kwargs):
        with _mpl().rc_context(STYLE):
            return fn(*args, **kwargs)

    wrapper.__name__, wrapper.__doc__, wrapper.__wrapped__ = fn.__name__, fn.__doc__, fn
    return wrapper


def save(fig, folder: str | Path, name: str) -> tuple[Path, Path]:
    """Write ``name.png`` and ``name.svg`` under ``folder``; returns both paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    png, svg = folder / f"{name}.png", folder / f"{name}.svg"
    with _mpl().rc_context(STYLE):
        fig.savefig(png, dpi=DPI, format="png")
        fig.savefig(svg, dpi=DPI, format="svg", metadata={"Date": None})  # dpi: of the rasterised contours
    return png, svg


def png_bytes(fig) -> bytes:
    """The figure as PNG bytes, for embedding."""
    buffer = io.BytesIO()
    with _mpl().rc_context(STYLE):
        fig.savefig(buffer, dpi=DPI, format="png")
    return buffer.getvalue()


# -- labels ---------------------------------------------------------------------------


def _num(value: float) -> str:
    return f"{value:g}"


def optimizer_label(spec: dict[str, Any], with_variant: bool = True) -> str:
    """A legend entry from a result's ``optimizer`` record: name and hyperparameters.

    ``{'name': 'adam', 'schedule': {'kind': 'constant', 'lr': 0.1}, 'beta': 0.9, ...}``
    gives ``adam (α=0.1, β=0.9, γ=0.999)``: the variant when it is not the default, the
    rate and its schedule, β, γ and λ, and ε only where it differs from its default.
    """
    from .optimizers import RULES, VARIANTS

    name = spec.get("name", "?")
    variant = spec.get("variant")
    if with_variant and variant and name in VARIANTS and variant != VARIANTS[name][0]:
        name = f"{name} [{variant}]"
    parts = []
    if spec.get("line_search"):
        parts.append("line search")
    else:
        sched = spec.get("schedule", {})
        rate = f"α={_num(sched.get('lr', float('nan')))}"
        kind = sched.get("kind", "constant")
        if kind == "step":
            rate += f" ×{_num(sched['factor'])} every {sched['every']}"
        elif kind == "exponential":
            rate += f" ×{_num(sched['rate'])}^t"
        elif kind == "cosine":
            rate += " cosine"
        if sched.get("warmup_steps"):
            rate += f", warm-up {sched['warmup_steps']}"
        parts.append(rate)
    for key in ("beta", "gamma"):
        if key in spec:
            parts.append(f"{_GREEK[key]}={_num(spec[key])}")
    default_eps = RULES[spec["name"]].defaults.get("eps") if spec.get("name") in RULES else None
    if "eps" in spec and spec["eps"] != default_eps:
        parts.append(f"ε={_num(spec['eps'])}")
    if "weight_decay" in spec:
        parts.append(f"λ={_num(spec['weight_decay'])}")
    return f"{name} ({', '.join(parts)})"


# -- pieces ---------------------------------------------------------------------------


def _log_levels(values: np.ndarray, n: int = 24) -> np.ndarray:
    finite = values[np.isfinite(values)]
    low, high = float(np.min(finite)), float(np.max(finite))
    if low <= 0:  # not all positive: a linear scale
        return np.linspace(low, high, n)
    if high <= low * (1 + 1e-9):
        return np.array([low * 0.999, high * 1.001])
    return np.geomspace(low, high, n)


def draw_surface(ax, surface, *, loss_label: str = "loss L[φ]", colorbar: bool = True, levels: int = 24,
                 log: bool | None = None):
    """Filled contours of a `Surface`, thin contour lines, axes named, a colour bar."""
    from matplotlib.colors import BoundaryNorm, LogNorm

    z = np.asarray(surface.loss, float)
    positive = np.all(z[np.isfinite(z)] > 0)
    use_log = positive if log is None else (log and positive)
    lv = _log_levels(z, levels) if use_log else np.linspace(np.nanmin(z), np.nanmax(z), levels)
    norm = LogNorm(lv[0], lv[-1]) if use_log else BoundaryNorm(lv, 256)
    # the filled contours as pixels inside an SVG (lines and text stay vector): a 200 × 200
    # surface as vector patches would be megabytes
    filled = ax.contourf(surface.a, surface.b, z, levels=lv, norm=norm, cmap=CMAP, rasterized=True)
    ax.contour(surface.a, surface.b, z, levels=lv, colors=CONTOUR_LINE, linewidths=0.45, alpha=0.45)
    ax.set_xlabel(axis_label(surface.labels[0]))
    ax.set_ylabel(axis_label(surface.labels[1]))
    ax.set_xlim(surface.a[0], surface.a[-1])
    ax.set_ylim(surface.b[0], surface.b[-1])
    if colorbar:
        bar = ax.figure.colorbar(filled, ax=ax, shrink=0.92, pad=0.02)
        bar.set_label(loss_label + (" (log scale)" if use_log else ""))
        if use_log:
            from matplotlib.ticker import FuncFormatter, LogLocator, NullLocator

            decades = np.log10(lv[-1] / lv[0])
            bar.ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0) if decades < 4 else (1.0,)))
            bar.ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.3g}"))
            bar.ax.yaxis.set_minor_locator(NullLocator())
    return filled


def draw_path(ax, coords: np.ndarray, *, label: str, color: str, marks: np.ndarray | None = None,
              mark_label: str | None = None, linewidth: float = 2.2, zorder: int = 5, style="solid"):
    """A trajectory (K, 2): the line, a hollow circle at its start and a square at its end.

    ``marks`` picks rows to dot along the way (the end of each epoch, say); ``style`` is
    the line style.
    """
    from matplotlib import patheffects

    halo = [patheffects.withStroke(linewidth=linewidth + 1.8, foreground="#202020", alpha=0.55)]
    coords = np.asarray(coords, float)
    ax.plot(coords[:, 0], coords[:, 1], color=color, lw=linewidth, ls=style, label=label, zorder=zorder,
            path_effects=halo)
    if marks is not None and len(marks):
        ax.plot(coords[marks, 0], coords[marks, 1], "o", ms=4.2, color=color, mec="#202020", mew=0.6,
                zorder=zorder + 1, label=mark_label)
    ax.plot(*coords[0], "o", ms=11, mfc="none", mec=color, mew=2.6, zorder=zorder + 2, path_effects=halo)
    ax.plot(*coords[-1], "s", ms=9, color=color, mec="#202020", mew=1.0, zorder=zorder + 2)


POINT_STYLE = {
    "global": dict(marker="*", ms=22, color="#ffd700", mec="#202020", mew=1.3, label="global minimum"),
    "minimum": dict(marker="o", ms=10, color="#ffffff", mec="#202020", mew=1.3, label="local minimum"),
    "saddle": dict(marker="X", ms=12, color="#ffffff", mec="#202020", mew=1.2, label="saddle point"),
    "maximum": dict(marker="^", ms=7, color="#b0b0b0", mec="#606060", mew=0.8, alpha=0.8, label="local maximum"),
}


def on_edge(xy, box, tolerance: float = 0.01) -> bool:
    """Whether a point of the plane lies within ``tolerance`` of the box's size from its edge."""
    (x0, x1), (y0, y1) = box
    tx, ty = tolerance * (x1 - x0), tolerance * (y1 - y0)
    return bool(min(xy[0] - x0, x1 - xy[0]) <= tx or min(xy[1] - y0, y1 - xy[1]) <= ty)


def draw_critical_points(ax, points: Sequence, surface=None, *, kinds=("global", "minimum", "saddle", "maximum")):
    """Mark critical points: the lowest minimum as the global one, then the others by kind.

    Points are plane coordinates, projected through ``surface`` when one is given; those
    on the edge of the surface's box are left out (a minimum there is the box's, not
    the loss's).
    """
    box = None if surface is None else ((surface.a[0], surface.a[-1]), (surface.b[0], surface.b[-1]))
    placed = []
    for p in points:
        xy = surface.project(p.theta[None])[0] if surface is not None and p.theta.size != 2 else p.theta
        if box is None or not on_edge(xy, box):
            placed.append((p, xy))
    minima = [p for p, _ in placed if p.kind == "minimum"]
    best = min(minima, key=lambda p: p.value) if minima else None
    groups: dict[str, list] = {k: [] for k in POINT_STYLE}
    for p, xy in placed:
        kind = "global" if p is best else p.kind
        if kind in groups:
            groups[kind].append(xy)
    for kind in kinds:
        if groups.get(kind):
            xy = np.array(groups[kind])
            ax.plot(xy[:, 0], xy[:, 1], ls="none", zorder=9, **POINT_STYLE[kind])


def draw_loss_curves(ax, curves: Sequence[tuple], *, xlabel: str = "step",
                     ylabel: str = "loss L[φ]", log: bool = True, floor: float | None = None,
                     excess: bool = False):
    """Loss against step (or epoch): ``curves`` of (label, x, loss, colour[, line style]).

    ``floor`` is the global minimum's loss: a dashed line, or with ``excess`` the zero
    of the axis, which then shows L[φ] - L[φ̂] on a log scale (how far from the best).
    """
    shift = floor if excess and floor is not None else 0.0
    from matplotlib import patheffects

    for label, x, loss, color, *style in curves:
        dashed = bool(style) and style[0] != "solid"
        # a dashed run of the same colour as a jittery solid one would vanish into it: outline it
        halo = [patheffects.withStroke(linewidth=4.0, foreground="#202020", alpha=0.7)] if dashed else None
        ax.plot(x, np.asarray(loss) - shift, color=color, ls=style[0] if style else "solid", label=label,
                path_effects=halo, zorder=3 if dashed else 2)
    if excess and floor is not None:
        ylabel = f"excess loss L[φ] − L[φ̂]  (L[φ̂] = {floor:.4g})"
    elif floor is not None:
        ax.axhline(floor, color="#606060", lw=1.2, ls="--", label=f"global minimum's loss {floor:.4g}")
    if log and all(np.all(np.asarray(c[2])[np.isfinite(c[2])] - shift > 0) for c in curves):
        ax.set_yscale("log")
        plain_log_labels(ax.yaxis)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, which="major", alpha=0.3)


def plain_log_labels(axis):
    """Tick labels on a log axis as plain numbers (0.5, 2, 30), not as powers like 3×10⁰.

    Over less than two decades the 2 and 5 ticks between powers of ten are labelled too.
    """
    from matplotlib.ticker import FuncFormatter, LogLocator

    low, high = sorted(axis.get_view_interval())
    short = low > 0 and np.log10(high / low) < 2
    axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0) if short else (1.0,)))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.3g}" if short else _power(v)))
    axis.set_minor_formatter(FuncFormatter(lambda v, _: ""))


def _power(v: float) -> str:
    exponent = int(np.round(np.log10(v))) if v > 0 else 0
    return f"{v:g}" if -2 <= exponent <= 3 else f"$10^{{{exponent}}}$"


# -- whole figures --------------------------------------------------------------------


@dataclass(frozen=True)
class Trace:
    """A fit to draw: its result, a legend label, a colour, rows to mark (epochs), a line style."""

    result: Any
    label: str
    color: str
    marks: np.ndarray | None = None
    mark_label: str | None = None
    x: np.ndarray | None = None  # the x of its loss curve; default its steps
    style: Any = "solid"


def traces(results: Sequence, labels: Sequence[str] | None = None) -> list[Trace]:
    """One `Trace` per result, labelled by optimiser and hyperparameters, in its optimiser's colour.

    Several runs of one optimiser share its colour and differ in line style.
    """
    labels = labels or [optimizer_label(r.optimizer) for r in results]
    seen: dict[str, int] = {}
    out = []
    for r, lab in zip(results, labels, strict=True):
        key = optimizer_key(r.optimizer)
        k = seen[key] = seen.get(key, -1) + 1
        out.append(Trace(r, lab, optimizer_color(r.optimizer), style=LINE_STYLES[k % len(LINE_STYLES)]))
    return out


@styled
def paths_figure(surface, runs: Sequence[Trace], *, title: str = "", points: Sequence = (),
                 xlabel: str = "step", floor: float | None = None, excess: bool = False,
                 references: Sequence[tuple[float, str]] = (), legend_cols: int = 2, xmax: float | None = None,
                 inset: tuple | None = None, inset_surface=None):
    """Left: trajectories over the loss contours (critical points marked); right: loss curves.

    ``floor`` draws the global minimum's loss on the curves, ``references`` more levels
    (value, label); ``xmax`` ends the curves' axis; ``inset`` ((x0, x1), (y0, y1)) adds a
    magnified view of that window of the paths, over ``inset_surface`` if given (a
    finer grid of that window). One legend below both panels names every path, marker
    and line.
    """
    from matplotlib.lines import Line2D

    fig, (left, right) = new_figure(2, size=(WIDE[0], WIDE[1] + 0.35 * (1 + len(runs) // legend_cols)),
                                    width_ratios=(1.15, 1.0))
    fig.get_layout_engine().set(wspace=0.06)
    filled = draw_surface(left, surface)
    draw_critical_points(left, points, surface)
    for run in runs:
        coords = surface.project(run.result.history.params)
        draw_path(left, coords, label=run.label, color=run.color, marks=run.marks, mark_label=run.mark_label,
                  style=run.style)
    if inset is not None:
        _draw_inset(left, inset_surface or surface, runs, inset, norm=filled.norm)
    curves = [(run.label, run.x if run.x is not None else run.result.history.step, run.result.history.loss, run.color,
               run.style) for run in runs]
    draw_loss_curves(right, curves, xlabel=xlabel, floor=floor, excess=excess)
    for k, (value, label) in enumerate(references):
        right.axhline(value, color="#808080", lw=1.2, ls=(0, (1, 2)) if k == 0 else (0, (4, 2, 1, 2)), label=label)
    if xmax is not None:
        right.set_xlim(0, xmax)
    right.set_title("full-data loss")
    left.set_title("paths over the loss")
    paths = [Line2D([], [], color=run.color, lw=2.6, ls=run.style, label=run.label) for run in runs]
    markers = [Line2D([], [], ls="none", marker="o", ms=10, mfc="none", mec="#404040", mew=2.2, label="start"),
               Line2D([], [], ls="none", marker="s", ms=8, color="#404040", label="end")]
    if any(run.marks is not None for run in runs):
        markers.append(Line2D([], [], ls="none", marker="o", ms=5, color="#909090", mec="#202020", mew=0.6,
                              label="end of an epoch"))
    shown = {lab for run in runs for lab in [run.label]}
    extra = [(h, lab) for ax in (left, right) for h, lab in zip(*ax.get_legend_handles_labels(), strict=True)
             if lab not in shown and not lab.startswith("_")]
    seen: dict[str, Any] = {}
    for h, lab in extra:
        seen.setdefault(lab, h)
    fig.legend(handles=paths, loc="outside lower left", ncols=1, fontsize=11, frameon=False)
    fig.legend(handles=markers + list(seen.values()), labels=[m.get_label() for m in markers] + list(seen),
               loc="outside lower right", ncols=2, fontsize=10.5, frameon=False)
    if title:
        fig.suptitle(title)
    return fig


@styled
def path_panels_figure(surface, runs: Sequence[Trace], *, title: str = "", points: Sequence = (),
                       xlabel: str = "step", floor: float | None = None, panel_titles: Sequence[str] | None = None,
                       per_row: int = 4):
    """Small multiples: each trajectory on its own copy of the loss contours, and every loss curve on one
    panel at the right, so paths that share a valley cannot hide each other.

    Up to ``per_row`` contour panels a row; ``panel_titles`` default to the runs' labels.
    """
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    n = len(runs)
    cols, rows = min(n, per_row), -(-n // per_row)
    fig = Figure(figsize=(4.2 * cols + 4.6, 4.3 * rows + 1.2), layout="constrained")
    grid = fig.add_gridspec(rows, cols + 1, width_ratios=(1,) * cols + (1.15,))
    titles = panel_titles or [run.label for run in runs]
    for k, run in enumerate(runs):
        ax = fig.add_subplot(grid[k // cols, k % cols])
        draw_surface(ax, surface, colorbar=False)
        draw_critical_points(ax, points, surface)
        draw_path(ax, surface.project(run.result.history.params), label=run.label, color=run.color,
                  marks=run.marks, mark_label=run.mark_label, style=run.style)
        ax.set_title(titles[k], fontsize=12, color=run.color if run.color != "#000000" else None)
        if k % cols:
            ax.set_ylabel("")
        if k // cols < rows - 1 and k + cols < n:
            ax.set_xlabel("")
    right = fig.add_subplot(grid[:, cols])
    curves = [(run.label, run.x if run.x is not None else run.result.history.step, run.result.history.loss, run.color,
               run.style) for run in runs]
    draw_loss_curves(right, curves, xlabel=xlabel, floor=floor)
    right.set_title("full-data loss")
    paths = [Line2D([], [], color=run.color, lw=2.6, ls=run.style, label=run.label) for run in runs]
    markers = [Line2D([], [], ls="none", marker="o", ms=10, mfc="none", mec="#404040", mew=2.2, label="start"),
               Line2D([], [], ls="none", marker="s", ms=8, color="#404040", label="end")]
    kinds = {getattr(p, "kind", None) for p in points}
    markers += [Line2D([], [], ls="none", **POINT_STYLE[k]) for k in ("global", "minimum", "saddle")
                if (k == "global" and "minimum" in kinds) or k in kinds]
    fig.legend(handles=paths + markers, loc="outside lower center", ncols=min(4, len(paths) + len(markers)),
               fontsize=10.5, frameon=False)
    if title:
        fig.suptitle(title)
    return fig


def _draw_inset(ax, surface, runs: Sequence[Trace], window, *, where=(0.56, 0.56, 0.42, 0.42), norm=None):
    """A magnified view of ``window`` ((x0, x1), (y0, y1)) of the paths, in a corner of ``ax``.

    ``norm`` is the main panel's colour scale, so one loss has one colour in both (a loss
    below the main panel's lowest level gets its lowest colour).
    """
    (x0, x1), (y0, y1) = window
    sub = ax.inset_axes(where)
    z = np.asarray(surface.loss, float)
    levels = _log_levels(z, 24) if np.all(z > 0) else np.linspace(z.min(), z.max(), 24)
    from matplotlib.colors import LogNorm, Normalize

    if norm is None:
        norm = LogNorm(levels[0], levels[-1]) if np.all(z > 0) else None
    else:  # a new norm on the same scale: the main one, shared, would reset its colour bar's ticks
        norm = (LogNorm if isinstance(norm, LogNorm) else Normalize)(norm.vmin, norm.vmax)
    sub.contourf(surface.a, surface.b, z, levels=levels, norm=norm, cmap=CMAP, rasterized=True)
    for run in runs:
        coords = surface.project(run.result.history.params)
        sub.plot(coords[:, 0], coords[:, 1], color=run.color, lw=1.6, ls=run.style, marker="o", ms=2.5)
    sub.set_xlim(x0, x1)
    sub.set_ylim(y0, y1)
    sub.tick_params(labelsize=9)
    for side in sub.spines.values():
        side.set_visible(True)
        side.set_color("#202020")
    ax.indicate_inset_zoom(sub, edgecolor="#202020", alpha=0.9)


@styled
def surfaces_figure(surfaces: Sequence, point_sets: Sequence[Sequence], titles: Sequence[str], *, suptitle: str = ""):
    """Loss surfaces side by side, each with its critical points marked."""
    fig, axes = new_figure(len(surfaces), size=WIDE if len(surfaces) > 1 else SINGLE)
    axes = np.atleast_1d(axes)
    for ax, surf, pts, title in zip(axes, surfaces, point_sets, titles, strict=True):
        draw_surface(ax, surf)
        draw_critical_points(ax, pts, surf)
        ax.set_title(title)
    handles, labels = _unique_legend(axes)
    fig.legend(handles, labels, loc="outside lower center", ncols=len(labels), fontsize=11)
    if suptitle:
        fig.suptitle(suptitle)
    return fig


def _unique_legend(axes):
    seen: dict[str, Any] = {}
    for ax in np.atleast_1d(axes):
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            seen.setdefault(label, handle)
    return list(seen.values()), list(seen)


@styled
def data_figure(data, curves: Sequence[tuple], *, title: str = "",
                xlabel: str = "input x", ylabel: str = "output y", ax=None, legend: bool = True):
    """The data as points with model curves (label, x, f, colour[, line keywords]) drawn through them."""
    fig, ax = new_figure(1, size=SINGLE) if ax is None else (ax.figure, ax)
    ax.plot(data.x, data.y, "o", ms=7, color="#3a3a3a", mec="white", mew=0.8, label=f"data ({len(data)} points)",
            zorder=5)
    for label, x, f, color, *extra in curves:
        ax.plot(x, f, color=color, label=label, **(extra[0] if extra else {}))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    if legend:
        ax.legend(loc="best", fontsize=10)
    if title:
        ax.set_title(title)
    return fig


@styled
def models_figure(panels: Sequence[tuple[str, Any, Sequence[tuple[str, np.ndarray, np.ndarray, str]]]],
                  *, suptitle: str = ""):
    """Several `data_figure` panels side by side: (title, data, curves) each."""
    fig, axes = new_figure(len(panels), size=(WIDE[0], WIDE[1] + 0.6) if len(panels) > 1 else SINGLE)
    for ax, (title, data, curves) in zip(np.atleast_1d(axes), panels, strict=True):
        data_figure(data, curves, title=title, ax=ax, legend=False)
    handles, labels = _unique_legend(axes)
    fig.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 3), fontsize=11, frameon=False)
    if suptitle:
        fig.suptitle(suptitle)
    return fig


#: The basin of the global minimum first: Okabe and Ito's colours, then the same paler.
BASIN_COLORS = tuple(OKABE_ITO[k] for k in ("yellow", "sky blue", "vermillion", "green", "purple", "orange", "blue"))
#: The colour and meaning of each code of a start that reaches no minimum (see `basin_codes`).
NO_MINIMUM = {-1: ("#d9d9d9", "still moving after the steps"), -2: ("#8c8c8c", "left the box"),
           -3: ("#f4e8d8", "on the plateau L ≈ Σy² (the model ≈ 0)")}
PLATEAU, LEFT_BOX = -3, -2


def basin_color(k: int) -> str:
    """The colour of minimum k's basin: `BASIN_COLORS` in turn, mixed with white on each further round."""
    base = BASIN_COLORS[k % len(BASIN_COLORS)]
    rounds = k // len(BASIN_COLORS)
    rgb = np.array([int(base[i: i + 2], 16) for i in (1, 3, 5)], float)
    rgb = 255 - (255 - rgb) * 0.5 ** rounds
    return "#" + "".join(f"{int(round(v)):02x}" for v in rgb)


def basin_codes(bm, plateau: float | None = None, tolerance: float = 0.02) -> np.ndarray:
    """The basin map's labels, with starts that reach no minimum but end within ``tolerance``
    of the ``plateau`` loss relabelled `PLATEAU`: they slid onto a level stretch of the loss."""
    codes = np.array(bm.labels)
    if plateau is not None:
        flat = (codes < 0) & np.isfinite(bm.end_loss) & (np.abs(bm.end_loss - plateau) <= tolerance * abs(plateau))
        codes[flat] = PLATEAU
    return codes


@styled
def basins_figure(maps: Sequence, titles: Sequence[str], point_sets: Sequence[Sequence] = (), *, suptitle: str = "",
                  plateaus: Sequence[float | None] = ()):
    """Each start of a grid coloured by the minimum it reaches; the share of starts per minimum.

    ``plateaus`` (one loss level per map, or None) sets apart the starts that reach no
    minimum but end on a plateau at that loss (`basin_codes`).
    """
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    fig, axes = new_figure(len(maps), size=(WIDE[0], WIDE[1] + 0.9) if len(maps) > 1 else SINGLE)
    axes = np.atleast_1d(axes)
    point_sets = list(point_sets) or [()] * len(maps)
    plateaus = list(plateaus) or [None] * len(maps)
    for ax, bm, title, pts, level in zip(axes, maps, titles, point_sets, plateaus, strict=True):
        m = len(bm.minima)
        codes = basin_codes(bm, level)
        colors = [NO_MINIMUM[c][0] for c in (-3, -2, -1)] + [basin_color(k) for k in range(m)]
        cmap = ListedColormap(colors)
        (x0, x1), (y0, y1) = (bm.a[0], bm.a[-1]), (bm.b[0], bm.b[-1])
        dx, dy = (x1 - x0) / max(len(bm.a) - 1, 1), (y1 - y0) / max(len(bm.b) - 1, 1)
        ax.imshow(codes + 3, origin="lower", cmap=cmap, vmin=-0.5, vmax=m + 2.5, interpolation="nearest",
                  extent=(x0 - dx / 2, x1 + dx / 2, y0 - dy / 2, y1 + dy / 2), aspect="auto")
        plane = bm.minima[:, [int(np.argmax(bm.directions[0])), int(np.argmax(bm.directions[1]))]]
        box = ((bm.a[0], bm.a[-1]), (bm.b[0], bm.b[-1]))
        for k, xy in enumerate(plane):
            if on_edge(xy, box):
                continue
            style = POINT_STYLE["global" if k == 0 else "minimum"]
            ax.plot(*xy, ls="none", marker=style["marker"], ms=style["ms"], color=basin_color(k),
                    mec="#202020", mew=1.4, zorder=6)
        saddles = [p for p in pts if p.kind == "saddle"]
        if saddles:
            xy = np.array([p.theta for p in saddles])
            ax.plot(xy[:, 0], xy[:, 1], ls="none", zorder=6, **POINT_STYLE["saddle"])
        shares = bm.shares
        handles = [Patch(color=basin_color(k),
                         label=f"{'global' if k == 0 else 'local'} min ({bm.minima[k][0]:.2f}, {bm.minima[k][1]:.2f}), "
                               f"L={bm.minima_loss[k]:.3g}: {100 * shares[k]:.1f}%")
                   for k in range(m)]
        for code in (PLATEAU, -1, -2):
            share = float(np.mean(codes == code))
            if share >= 0.0005:
                label = NO_MINIMUM[code][1]
                if code == PLATEAU:
                    label = label.replace("Σy²", f"Σy² = {level:.3g}")
                ends = bm.end_loss[(codes == code) & np.isfinite(bm.end_loss)]
                if code == LEFT_BOX and level is not None and ends.size:
                    label += f", median loss there {np.median(ends):.3g}"
                handles.append(Patch(color=NO_MINIMUM[code][0], label=f"{label}: {100 * share:.1f}%"))
        ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncols=1, fontsize=9.5,
                  frameon=False)
        ax.set_xlabel(axis_label(bm.names[0]))
        ax.set_ylabel(axis_label(bm.names[1]))
        ax.set_title(title)
    if suptitle:
        fig.suptitle(suptitle)
    return fig


@styled
def hyper_figure(panels: Sequence[dict[str, Any]], *, suptitle: str = "", ylabel: str = "final loss",
                 ceiling: float = np.inf):
    """Final loss against a hyperparameter, one panel each on one shared y scale, repeats as spread.

    Each panel: ``values`` (V,), ``losses`` (V, R) over R repeats, ``xlabel``, ``title``,
    ``log_x`` (and ``log_base``), and ``color`` (default: in turn from `PALETTE`). The
    median is the line, the band spans the repeats' min to max, dots are repeats. A loss
    that is not finite or above ``ceiling`` counts as diverged: a red cross at the top marks
    a value where a repeat diverged.
    """
    # one y scale for every panel, so a small effect looks small next to a large one
    fig, axes = new_figure(len(panels), size=(WIDE[0], WIDE[1] + 0.5), sharey=True)
    for k, (ax, panel) in enumerate(zip(np.atleast_1d(axes), panels, strict=True)):
        values = np.asarray(panel["values"], float)
        losses = np.asarray(panel["losses"], float)
        color = panel.get("color", PALETTE[k % len(PALETTE)])
        good = np.isfinite(losses) & (losses <= ceiling)
        kept = np.where(good, losses, np.nan)
        ok = np.any(good, axis=1)
        med = np.array([np.median(r[np.isfinite(r)]) for r in kept[ok]])
        low, high = np.nanmin(kept[ok], axis=1), np.nanmax(kept[ok], axis=1)
        ax.fill_between(values[ok], low, high, color=color, alpha=0.25, lw=0, label="min–max over seeds")
        ax.plot(values[ok], med, "-o", color=color, ms=6, mec="#202020", mew=0.6, label="median over seeds")
        xs = np.repeat(values[:, None], losses.shape[1], axis=1)
        ax.plot(xs[good], losses[good], ".", color="#303030", ms=5, alpha=0.6, label=f"each seed ({losses.shape[1]})")
        bad = ~np.all(good, axis=1)
        if np.any(bad):
            ax.plot(values[bad], np.full(bad.sum(), 0.96), "x", color="#c00000", ms=11, mew=2.6,
                    transform=ax.get_xaxis_transform(), clip_on=False, label="diverged", zorder=8)
        if panel.get("log_x"):
            ax.set_xscale("log", base=panel.get("log_base", 10))
            if panel.get("log_base", 10) != 10:
                from matplotlib.ticker import FixedLocator, FuncFormatter

                ax.xaxis.set_major_locator(FixedLocator(values))
                ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.set_yscale("log")
        plain_log_labels(ax.yaxis)
        ax.set_xlabel(panel["xlabel"])
        ax.set_title(panel["title"])
        ax.grid(True, which="major", alpha=0.3)
    np.atleast_1d(axes)[0].set_ylabel(ylabel)
    handles, labels = _unique_legend(axes)
    fig.legend(handles, labels, loc="outside lower center", ncols=len(labels), fontsize=11, frameon=False)
    if suptitle:
        fig.suptitle(suptitle)
    return fig


# -- a fit with its uncertainty -------------------------------------------------------------


FIT_COLORS = {"data": "#2b6cb0", "fit": "#e8384f", "confidence": "#e8384f", "prediction": "#fd9a44"}


def _band(result, x, interval: str, level: float, model):
    """The band of ``interval`` at x, or None where the fit has none (no covariance, weights with no σ at x)."""
    from .errors import GradfitError
    from .inference import predict

    try:
        return predict(result, x, interval=interval, level=level, model=model)
    except GradfitError:
        return None


@styled
def plot_fit(result, data=None, *, ax=None, level: float = 0.95, path: str | Path | None = None):
    """The data, the fitted model with its confidence and prediction bands, and the residuals below.

    For one input: the data as points (with error bars σ_i = 1/√w_i when weighted), the
    fitted curve over a fine grid of x, its ``level`` confidence band (the mean
    response) and prediction band (a new observation; not drawn for weighted fits,
    whose noise at new x is unknown), by the delta method (`gradfit.inference.predict`);
    below, the residuals y - f (weighted: √w_i (y - f), in units of σ_i), on the same x
    axis. For several inputs: observed against fitted values, with the identity line
    and confidence bars, and the residuals against the fitted values. ``data`` defaults
    to the data the fit ran on; ``ax`` is a pair of axes (fit, residuals), or one axes
    for the fit panel alone; ``path`` also writes the figure (PNG, SVG, PDF by its
    suffix). Returns the Figure.
    """
    from .data import Dataset
    from .errors import GradfitError
    from .inference import predict

    source = result.source
    if data is None:
        if source is None:
            raise GradfitError("this result does not carry its data (a result read from JSON): pass it, "
                               "plot_fit(result, data)")
        data = source[2]
    if not isinstance(data, Dataset):
        data = Dataset(*data)
    model = None if source is None else source[0]
    fitted = predict(result, data.x, model=model)
    if fitted.ndim != 1:
        raise GradfitError("plot_fit draws models of one output per example")
    if ax is None:
        fig, (top, bottom) = new_figure(1, 2, size=(SINGLE[0] + 1.0, SINGLE[1] + 1.0), sharex=True,
                                        gridspec_kw={"height_ratios": [3, 1]})
    elif isinstance(ax, Sequence | np.ndarray):
        top, bottom = ax
        fig = top.figure
    else:
        top, bottom, fig = ax, None, ax.figure
    weights = data.weights
    residual = data.y - fitted
    if weights is not None:
        residual = residual * np.sqrt(weights)
    error = None if weights is None else 1.0 / np.sqrt(weights)
    pct = f"{100 * level:g}%"
    colors = FIT_COLORS
    if data.n_inputs == 1:
        x = data.x
        grid = np.linspace(float(x.min()), float(x.max()), 400)
        for interval, alpha in (("prediction", 0.18), ("confidence", 0.35)):
            unknown = interval == "prediction" and weights is not None  # no σ at the grid's x
            band = None if unknown else _band(result, grid, interval, level, model)
            if band is not None:
                fill = top.fill_between(grid, band.lower, band.upper, color=colors[interval], alpha=alpha, lw=0,
                                        label=f"{pct} {interval} band")
                fill.set_gid(f"{interval} band")
        top.errorbar(x, data.y, yerr=error, fmt="o", ms=6, color=colors["data"], mec="white", mew=0.8,
                     elinewidth=1.0, label=f"data ({len(data)} points)", zorder=5)
        curve = predict(result, grid, model=model)
        (line,) = top.plot(grid, curve, color=colors["fit"], label="fit", zorder=6)
        line.set_gid("fit")
        xlabel, where = data.x_names[0], x
        top.set_ylabel(data.y_name)
    else:
        band = _band(result, data.x, "confidence", level, model)
        bars = None if band is None else np.vstack([fitted - band.lower, band.upper - fitted])
        top.errorbar(fitted, data.y, yerr=error, fmt="o", ms=6, color=colors["data"], mec="white", mew=0.8,
                     elinewidth=1.0, label=f"data ({len(data)} points)", zorder=5)
        if bars is not None:
            top.errorbar(fitted, fitted, yerr=bars, fmt="none", ecolor=colors["confidence"], elinewidth=2.0,
                         label=f"{pct} confidence of the fit", zorder=4)
        span = [float(min(fitted.min(), data.y.min())), float(max(fitted.max(), data.y.max()))]
        (line,) = top.plot(span, span, color=colors["fit"], label="observed = fitted")
        line.set_gid("fit")
        xlabel, where = f"fitted {data.y_name}", fitted
        top.set_ylabel(f"observed {data.y_name}")
    top.grid(True, alpha=0.3)
    top.legend(loc="best", fontsize=10)
    top.set_title(f"{result.model} fitted to {data.name}" if result.model else "fit")
    if bottom is not None:
        bottom.axhline(0.0, color="#1b1b1b", lw=1.0)
        bottom.plot(where, residual, "o", ms=5, color=colors["data"], mec="white", mew=0.6)
        bottom.set_ylabel("(y − f)/σ" if weights is not None else "y − f")
        bottom.grid(True, alpha=0.3)
        bottom.set_xlabel(xlabel)
    else:
        top.set_xlabel(xlabel)
    if path is not None:
        fig.savefig(path, dpi=DPI)
    return fig

"""Figures of a hyperparameter sweep: loss against one hyperparameter, and heat maps over two.

Each function takes the sweep's table, a pandas DataFrame with one row per run
(``optimizer``, ``variant``, hyperparameters such as ``lr``, ``beta``, ``gamma``,
``eps``, ``batch_size``, then ``seed``, ``final_loss``, ``best_loss``, ``steps``,
``status``, ``seconds``), and returns a matplotlib ``Figure`` in the style of
`gradfit.plots`; matplotlib is imported inside the functions and no figure is shown.

What the figures agree on:

- A run *diverged* when its status is ``"diverged"`` or the plotted value is not finite
  (NaN, ±inf). Diverged runs never enter a median; they are drawn as marks instead.
  Every other status (``converged``, ``max_steps``, ``stalled``, ``pruned``) counts with
  the loss it stopped at.
- Statistics are over the rows that share every other setting: the seeds of one point.
  A numeric column that is neither plotted nor an outcome (``seed``, the losses,
  ``steps``, ``seconds``) and takes more than one value within an optimiser is another
  swept hyperparameter, and pooling over it would hide it: `sensitivity_figure` draws a
  panel per value of one such column and refuses two; `heatmap_figure` refuses any.
  Filter the frame first (``frame[frame.gamma == 0.999]``). A hyperparameter that an
  optimiser does not have is NaN in its rows: those rows belong in every panel.
- An optimiser keeps one colour (Okabe–Ito, safe for colour-blind readers) and one
  marker in every figure: see `optimizer_style`.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import GradfitError
from ..plots import CMAP, SINGLE, WIDE, new_figure, plain_log_labels, save, styled

#: Okabe & Ito's eight colours, distinguishable under the common colour-vision deficiencies.
OKABE_ITO = ("#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7", "#000000")
#: Markers paired with the colours, so the ninth optimiser (a colour again) still differs.
MARKERS = ("o", "s", "^", "D", "v", "P", "<", ">", "h", "p")
#: Line styles for the variants of one optimiser, its default variant first.
VARIANT_LINES = ("-", "--", ":", "-.")
#: Columns that describe how a run went, never a setting: not counted as swept.
OUTCOMES = ("seed", "final_loss", "best_loss", "steps", "status", "seconds", "trial")
#: Columns of each run's start and end (``init_phi0``, ``final_phi0``): they vary with the seed, and are
#: never taken for swept settings (plot one as ``x`` to see it).
RESULT_PREFIXES = ("init_", "final_")
#: Axis labels: the slides' symbols for the hyperparameters.
LABELS = {
    "lr": "learning rate α",
    "beta": "β",
    "gamma": "γ",
    "eps": "ε",
    "weight_decay": "weight decay λ",
    "batch_size": "batch size",
    "final_loss": "final loss",
    "best_loss": "best loss",
    "steps": "steps",
    "seconds": "seconds",
}
_SYMBOLS = {"lr": "α", "beta": "β", "gamma": "γ", "eps": "ε", "weight_decay": "λ"}
DIVERGED = "diverged"
#: Heat-map cells where most seeds diverged: hatched grey, apart from any colour of the map.
DIVERGED_CELL = dict(facecolor="#ececec", edgecolor="#5a5a5a", hatch="xxx", lw=0.0)
BEST_CELL = "#ffd700"


# -- names, colours, labels -------------------------------------------------------------


def optimizer_style(name: str) -> tuple[str, str]:
    """The colour and marker of an optimiser, the same in every figure.

    Optimisers are numbered in the order of `gradfit.optimizers.RULES`, then the
    second-order ones; number k gets Okabe–Ito colour k mod 8 and marker k mod 10.
    A name gradfit does not know gets a pair from a hash of the name.
    """
    from ..optimizers import RULES, SECOND_ORDER

    known = [*RULES, *SECOND_ORDER]
    k = known.index(name) if name in known else zlib.crc32(str(name).encode())
    return OKABE_ITO[k % len(OKABE_ITO)], MARKERS[k % len(MARKERS)]


def axis_label(column: str) -> str:
    """``lr`` → "learning rate α", ``beta`` → "β", any other column with spaces for underscores."""
    return LABELS.get(column, column.replace("_", " "))


def compact(value: float, digits: int = 3) -> str:
    """A number in few characters, to ``digits`` significant ones: 0.001, 0.9, 32, 1e-4, 2.5e-5, 1e4."""
    value = float(value)
    if value == 0 or not math.isfinite(value) or 1e-3 <= abs(value) < 1e4:
        return f"{value:.{digits}g}"
    mantissa, exponent = f"{value:.{digits - 1}e}".split("e")
    if "." in mantissa:
        mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}e{int(exponent)}"


def tick_labels(values: Sequence[float]) -> list[str]:
    """`compact` labels of sorted distinct values, with the fewest digits (3 at least) that
    put each label nearer its value than a tenth of the gap to the next: γ = 0.999 and
    0.9999 stay apart, and 0.9999 is not shown as 1."""
    values = np.asarray(values, float)
    gaps = np.diff(values)
    room = 0.1 * np.minimum(np.append(gaps, np.inf), np.insert(gaps, 0, np.inf)) if values.size > 1 else [np.inf]
    for digits in range(3, 17):
        labels = [compact(v, digits) for v in values]
        if all(abs(float(label) - v) <= r for label, v, r in zip(labels, values, room, strict=True)):
            break
    return labels


def _setting(column: str, value: float) -> str:
    return f"{_SYMBOLS.get(column, axis_label(column))} = {compact(value)}"


# -- checking and summarising the frame ---------------------------------------------------


def _check(frame, columns: Sequence[str], what: str) -> None:
    if frame is None or len(frame) == 0:
        raise GradfitError(f"no runs to plot: the sweep's frame is empty (nothing for the {what})")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise GradfitError(f"no column {', '.join(map(repr, missing))} in the sweep's frame; "
                           f"its columns: {', '.join(map(str, frame.columns))}")


def _numeric(frame, column: str) -> np.ndarray:
    try:
        return np.asarray(frame[column], dtype=float)
    except (TypeError, ValueError):
        raise GradfitError(f"column {column!r} must hold numbers to be plotted; "
                           f"it holds {frame[column].dtype} values such as {frame[column].iloc[0]!r}") from None


def diverged(frame, column: str) -> np.ndarray:
    """Which runs diverged: status ``"diverged"``, or ``column`` not finite."""
    bad = ~np.isfinite(_numeric(frame, column))
    if "status" in frame.columns:
        bad |= np.asarray(frame["status"].astype(str) == DIVERGED)
    return bad


def swept_columns(frame, exclude: Sequence[str], within: Sequence[str]) -> list[str]:
    """Numeric columns besides ``exclude`` and `OUTCOMES` that take several values in some
    group of ``within`` (NaN, a hyperparameter the optimiser lacks, not counted)."""
    from pandas.api.types import is_numeric_dtype

    skip = set(exclude) | set(OUTCOMES)
    found = []
    for column in frame.columns:
        if column in skip or column.startswith(RESULT_PREFIXES) or not is_numeric_dtype(frame[column]):
            continue
        counts = frame.groupby(list(within), dropna=False)[column].nunique() if within else \
            frame[[column]].nunique()
        if int(np.max(counts.to_numpy(), initial=0)) > 1:
            found.append(column)
    return found


def _too_many(columns: Sequence[str], frame, plotted: str) -> GradfitError:
    example = columns[-1]
    value = frame[example].dropna().iloc[0]
    return GradfitError(
        f"{' and '.join(columns)} also vary in this sweep, besides {plotted}; a point would pool their "
        f"settings with the seeds. Keep one setting of each first, e.g. frame[frame[{example!r}] == {value!r}]")


def point_stats(frame, x: str, y: str, keys: Sequence[str]):
    """Per point (``keys`` and x): the median and quartiles of y over the runs that did not
    diverge, the number of runs, and how many diverged. A DataFrame with columns ``keys``,
    x, ``median``, ``q25``, ``q75``, ``runs``, ``diverged``, one row per point, sorted;
    NaN statistics where every run diverged."""
    work = frame[[*keys, x]].copy()
    work["_y"] = _numeric(frame, y)
    work["_bad"] = diverged(frame, y)
    table = work.groupby([*keys, x], dropna=False, sort=True).agg(runs=("_bad", "size"), diverged=("_bad", "sum"))
    good = work[~work["_bad"]].groupby([*keys, x], dropna=False, sort=True)["_y"]
    table["median"] = good.median()
    table["q25"] = good.quantile(0.25)
    table["q75"] = good.quantile(0.75)
    return table.reset_index()


def _labels_of(frame, columns: Sequence[str]):
    """A copy whose ``columns`` are strings, NaN as "", so that groups compare equal."""
    frame = frame.copy()
    for column in columns:
        frame[column] = frame[column].where(frame[column].notna(), "").astype(str)
    return frame


def _select(table, columns: Sequence[str], key: tuple):
    mask = np.ones(len(table), bool)
    for column, value in zip(columns, key, strict=True):
        mask &= table[column].to_numpy() == value
    return table[mask]


def _spans_decades(values: np.ndarray, decades: float = 2.0) -> bool:
    values = values[np.isfinite(values)]
    return values.size > 0 and bool(np.all(values > 0)) and np.log10(values.max() / values.min()) > decades


def _group_label(key: tuple, several: dict[Any, int]) -> str:
    """"adam", or "adam [standard]" when that optimiser shows several variants."""
    if not key:
        return "all runs"
    head, rest = str(key[0]), [str(v) for v in key[1:] if str(v) not in ("", "nan", "None")]
    return f"{head} [{', '.join(rest)}]" if rest and several.get(key[0], 1) > 1 else head


def _ordered(keys, by: Sequence[str]) -> list[tuple]:
    """Groups in the registry's order: optimisers as in `gradfit.optimizers.RULES`, each
    one's variants default first; other names alphabetically."""
    from ..optimizers import RULES, SECOND_ORDER, VARIANTS

    known = [*RULES, *SECOND_ORDER]
    by_optimizer = bool(by) and by[0] == "optimizer"
    with_variant = by_optimizer and len(by) > 1 and by[1] == "variant"

    def rank(key):
        if not key:
            return ()
        head = known.index(key[0]) if by_optimizer and key[0] in known else len(known)
        variants = list(VARIANTS.get(key[0], ())) if with_variant else []
        variant = variants.index(key[1]) if with_variant and key[1] in variants else len(variants)
        return head, str(key[0]), variant, tuple(map(str, key[1:]))

    return sorted(set(keys), key=rank)


def _group_styles(keys: list[tuple], by: Sequence[str]) -> dict[tuple, tuple[str, str, str]]:
    """Colour and marker from the first ``by`` column (the optimiser's when it is
    ``optimizer``), line style from the rest in `_ordered` order: the default variant solid."""
    styles = {}
    firsts = list(dict.fromkeys(k[0] for k in keys if k))
    for key in keys:
        if not key:
            color, marker, nth = OKABE_ITO[4], MARKERS[0], 0
        else:
            if by[0] == "optimizer":
                color, marker = optimizer_style(str(key[0]))
            else:
                i = firsts.index(key[0])
                color, marker = OKABE_ITO[i % len(OKABE_ITO)], MARKERS[i % len(MARKERS)]
            nth = [k for k in keys if k and k[0] == key[0]].index(key)
        styles[key] = (color, marker, VARIANT_LINES[nth % len(VARIANT_LINES)])
    return styles


def _count(low: int, high: int) -> str:
    return f"{low} seed{'s' if low != 1 else ''}" if low == high else f"{low}–{high} seeds"


def _grid(n: int, per_row: int = 3, height: float = 4.6):
    ncols, nrows = min(n, per_row), math.ceil(n / per_row)
    size = (WIDE[0], height * nrows + 1.4) if ncols > 1 else (SINGLE[0], SINGLE[1] + 0.8 * nrows)
    return ncols, nrows, size


def _panel_axes(n: int, **kwargs):
    ncols, nrows, size = _grid(n)
    fig, axes = new_figure(ncols, nrows, size=size, **kwargs)
    axes = list(np.atleast_1d(axes).ravel())
    for extra in axes[n:]:
        fig.delaxes(extra)
    return fig, axes[:n]


def _all_diverged_note(ax, text: str = "every run diverged") -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", fontsize=13, color="#606060",
            style="italic")


# -- loss against one hyperparameter -------------------------------------------------------


@styled
def sensitivity_figure(frame, x: str = "lr", y: str = "final_loss", by: Sequence[str] = ("optimizer", "variant"),
                       *, panel: str | None = None, title: str = ""):
    """The median of ``y`` over seeds against ``x``, one line per ``by`` group, the
    interquartile range as a band.

    Colour and marker follow the first ``by`` column (`optimizer_style` for
    optimisers), line style the rest (the default variant solid); the legend gives each
    line's seeds per point. A point where any seed diverged gets an ``x`` in the line's
    colour at the top of the axes (one row of marks per line); where all diverged the
    line has a gap there. The x axis is logarithmic when x is positive over more than
    two decades, the y axis likewise for the drawn medians and quartiles.

    When another numeric hyperparameter varies (see the module's notes), one panel is
    drawn per value of it, sharing the y axis; ``panel`` names that column, else it is
    found, and two such columns raise a `GradfitError`. Rows where the panel column is
    NaN (an optimiser without that hyperparameter) appear in every panel; rows where
    x is NaN are left out.
    """
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    from matplotlib.transforms import blended_transform_factory

    by = [by] if isinstance(by, str) else list(by)
    _check(frame, [x, y, *by, *([panel] if panel else [])], "sensitivity figure")
    _numeric(frame, x)  # a clear error for a column of words
    frame = _labels_of(frame[frame[x].notna()], by)  # NaN: an optimiser without that hyperparameter
    if frame.empty:
        raise GradfitError(f"no runs to plot: no run has a value of {x}")
    others = swept_columns(frame, [x, y, *by, *([panel] if panel else [])], by)
    if panel is None and len(others) == 1:
        panel, others = others[0], []
    if others:
        raise _too_many(others, frame, f"{x} and the panels' {panel}" if panel else x)
    if panel is not None:
        everywhere = frame[panel].isna()
        frames = [(_setting(panel, v), frame[(frame[panel] == v) | everywhere])
                  for v in np.sort(frame[panel].dropna().unique())]
    else:
        frames = [("", frame)]

    stats = [point_stats(sub, x, y, by) for _, sub in frames]
    keys = _ordered([tuple(row) for table in stats for row in table[by].itertuples(index=False)], by)
    styles = _group_styles(keys, by)
    heads: dict[Any, int] = {}
    for key in keys:
        if key:
            heads[key[0]] = heads.get(key[0], 0) + 1
    labels = {key: _group_label(key, heads) for key in keys}

    drawn = np.concatenate([t[["median", "q25", "q75"]].to_numpy(float).ravel() for t in stats])
    log_x = _spans_decades(_numeric(frame, x))
    log_y = _spans_decades(drawn)

    fig, axes = _panel_axes(len(frames), sharey=True)
    rows_of_marks = 0
    for ax, (panel_title, _), table in zip(axes, frames, stats, strict=True):
        top = blended_transform_factory(ax.transData, ax.transAxes)
        marked = 0
        for key in keys:
            part = _select(table, by, key)
            if part.empty:
                continue
            color, marker, line = styles[key]
            xs = part[x].to_numpy(float)
            fill = ax.fill_between(xs, part["q25"].to_numpy(float), part["q75"].to_numpy(float), color=color,
                                   alpha=0.18, lw=0)
            fill.set_gid(f"iqr:{labels[key]}")
            (median,) = ax.plot(xs, part["median"].to_numpy(float), ls=line, marker=marker, color=color, ms=6,
                                mec="#202020", mew=0.6, zorder=4)
            median.set_gid(f"median:{labels[key]}")
            bad = part["diverged"].to_numpy() > 0
            if np.any(bad):
                # data x, axes y: a row of marks along the top, one row per line, whatever the y range
                (marks,) = ax.plot(xs[bad], np.full(int(bad.sum()), 0.975 - 0.045 * marked), "x", color=color,
                                   ms=9, mew=2.4, transform=top, clip_on=False, zorder=8)
                marks.set_gid(f"diverged:{labels[key]}")
                marked += 1
        rows_of_marks = max(rows_of_marks, marked)
        if not np.isfinite(table["median"].to_numpy(float)).any():
            _all_diverged_note(ax)
        if log_x:
            ax.set_xscale("log")
        ax.set_xlabel(axis_label(x))
        if panel_title:
            ax.set_title(panel_title)
        ax.grid(True, which="major", alpha=0.3)

    if log_y:
        axes[0].set_yscale("log")
    if np.isfinite(drawn).any():
        _room_on_top(axes[0], rows_of_marks, log_y)
    else:  # nothing but marks: a y scale would mean nothing
        axes[0].set_yticks([])
    for ax in axes:
        if log_x:
            plain_log_labels(ax.xaxis)
    if log_y:
        plain_log_labels(axes[0].yaxis)
    axes[0].set_ylabel(axis_label(y) + (" (log scale)" if log_y else ""))

    handles: list[Any] = []
    for key in keys:
        runs = np.concatenate([_select(t, by, key)["runs"].to_numpy() for t in stats])
        color, marker, line = styles[key]
        handles.append(Line2D([], [], color=color, ls=line, marker=marker, ms=6, mec="#202020", mew=0.6,
                              label=f"{labels[key]} ({_count(int(runs.min()), int(runs.max()))} per point)"))
    handles.append(Patch(color="#808080", alpha=0.3, lw=0, label="interquartile range"))
    if rows_of_marks:
        handles.append(Line2D([], [], ls="none", marker="x", color="#404040", ms=9, mew=2.4,
                              label="diverged (any seed)"))
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 4 if len(axes) > 1 else 2),
               fontsize=11, frameon=False, title="median over seeds", title_fontsize=11)
    if title:
        fig.suptitle(title)
    return fig


def _room_on_top(ax, rows: int, log: bool) -> None:
    """Raise the top of the y axis so the rows of divergence marks sit above the data."""
    ax.autoscale_view()
    low, high = ax.get_ylim()
    share = 0.05 + 0.045 * rows
    if log:
        span = np.log10(high) - np.log10(low)
        ax.set_ylim(low, 10 ** (np.log10(high) + span * share / (1 - share)))
    else:
        ax.set_ylim(low, high + (high - low) * share / (1 - share))


# -- a value over two hyperparameters -----------------------------------------------------------


@styled
def heatmap_figure(frame, x: str = "lr", y: str = "beta", value: str = "final_loss", *, optimizer: str | None = None,
                   annotate: bool | None = None, title: str = ""):
    """The median of ``value`` over seeds in each (x, y) cell, one panel per optimiser.

    Panels are per optimiser (and variant, when one optimiser has several), or only
    ``optimizer``'s. Cells sit at evenly spaced positions labelled with the swept
    values (compactly: 1e-4, 0.9); one colour scale serves all panels, logarithmic when
    the medians are positive over more than one decade. A cell where most seeds
    diverged is hatched grey, a cell with no runs is left white, and the lowest median
    of each panel is outlined in gold and named in its title. ``annotate`` writes each
    cell's median in it (by default when a panel has at most 48 cells). Rows with NaN
    in x or y (an optimiser without that hyperparameter) are left out.
    """
    import matplotlib
    from matplotlib.colors import LogNorm, Normalize
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch, Rectangle

    _check(frame, [x, y, value, "optimizer"], "heat map")
    for column in (x, y):
        _numeric(frame, column)  # a clear error for a column of words
    keys = ["optimizer", *(["variant"] if "variant" in frame.columns else [])]
    frame = _labels_of(frame, keys)
    others = swept_columns(frame, [x, y, value, *keys], keys)
    if others:
        raise _too_many(others, frame, f"{x} and {y}")
    rows = frame[frame[x].notna() & frame[y].notna()]
    if optimizer is not None:
        known = sorted(frame["optimizer"].unique())
        if optimizer not in known:
            raise GradfitError(f"no runs of optimizer {optimizer!r} in the sweep; it ran {', '.join(known)}")
        rows = rows[rows["optimizer"] == optimizer]
    if rows.empty:
        raise GradfitError(f"no runs to plot: no run{' of ' + optimizer if optimizer else ''} has both {x} and {y}")

    stats = point_stats(rows, y, value, [*keys, x])
    stats["shown"] = stats["median"].where(stats["diverged"] <= stats["runs"] / 2)
    panels = _ordered([tuple(row) for row in stats[keys].itertuples(index=False)], keys)
    heads: dict[Any, int] = {}
    for key in panels:
        heads[key[0]] = heads.get(key[0], 0) + 1
    shown = stats["shown"].to_numpy(float)
    log = _spans_decades(shown, 1.0)  # colour tells less apart than position: log from one decade
    finite = shown[np.isfinite(shown)]
    norm = None
    if finite.size:
        low, high = float(finite.min()), float(finite.max())
        if high <= low:  # one value: a range around it
            low, high = (low / 1.1, high * 1.1) if low > 0 else (low - 0.5, high + 0.5)
        norm = LogNorm(low, high) if log else Normalize(low, high)
    cmap = matplotlib.colormaps[CMAP].with_extremes(bad=(0, 0, 0, 0))

    fig, axes = _panel_axes(len(panels))
    mesh = None
    any_diverged = any_missing = False
    for ax, key in zip(axes, panels, strict=True):
        part = _select(stats, keys, key)
        xs, ys = np.sort(part[x].unique().astype(float)), np.sort(part[y].unique().astype(float))
        cells = np.full((ys.size, xs.size), np.nan)
        bad = np.zeros(cells.shape, bool)
        empty = np.ones(cells.shape, bool)
        for xv, yv, runs, failed, median in part[[x, y, "runs", "diverged", "shown"]].itertuples(index=False):
            i, j = int(np.searchsorted(xs, xv)), int(np.searchsorted(ys, yv))
            empty[j, i] = False
            bad[j, i] = failed > runs / 2
            cells[j, i] = median
        edges_x, edges_y = np.arange(xs.size + 1) - 0.5, np.arange(ys.size + 1) - 0.5
        if norm is not None:
            mesh = ax.pcolormesh(edges_x, edges_y, np.ma.masked_invalid(cells), cmap=cmap, norm=norm)
            mesh.set_gid("cells")
        for j, i in zip(*np.nonzero(bad), strict=True):
            ax.add_patch(Rectangle((i - 0.5, j - 0.5), 1, 1, gid="diverged", **DIVERGED_CELL))
        any_diverged |= bool(bad.any())
        any_missing |= bool(empty.any())
        if annotate if annotate is not None else cells.size <= 48:
            for j, i in zip(*np.nonzero(np.isfinite(cells)), strict=True):
                dark = norm(cells[j, i]) < 0.55
                ax.text(i, j, compact(float(f"{cells[j, i]:.2g}")), ha="center", va="center", fontsize=9.5,
                        color="white" if dark else "#1b1b1b")
        name = _group_label(key, heads)
        if np.isfinite(cells).any():
            j, i = np.unravel_index(np.nanargmin(cells), cells.shape)
            ax.add_patch(Rectangle((i - 0.5, j - 0.5), 1, 1, fill=False, edgecolor=BEST_CELL, lw=3.2, zorder=6,
                                   gid="best"))
            ax.set_title(f"{name}\nbest {compact(float(f'{cells[j, i]:.3g}'))} at {_setting(x, xs[i])}, "
                         f"{_setting(y, ys[j])}", fontsize=13)
        else:
            ax.set_title(name)
            _all_diverged_note(ax, "most seeds diverged everywhere")
        ax.set_xticks(np.arange(xs.size), tick_labels(xs))
        if xs.size > 6:
            ax.tick_params(axis="x", labelrotation=40)
            for label in ax.get_xticklabels():
                label.set(ha="right", rotation_mode="anchor")
        ax.set_yticks(np.arange(ys.size), tick_labels(ys))
        ax.set_xlim(edges_x[0], edges_x[-1])
        ax.set_ylim(edges_y[0], edges_y[-1])
        ax.set_xlabel(axis_label(x))
        ax.set_ylabel(axis_label(y))
        for side in ax.spines.values():
            side.set_visible(False)

    if mesh is not None:
        bar = fig.colorbar(mesh, ax=axes, shrink=0.9, pad=0.02)
        bar.set_label(f"{axis_label(value)}, median over seeds" + (" (log scale)" if log else ""))
        if log:
            plain_log_labels(bar.ax.yaxis)
    handles: list[Any] = [Line2D([], [], ls="none", marker="s", ms=13, mfc="none", mec=BEST_CELL, mew=3,
                                 label="lowest median")]
    if any_diverged:
        handles.append(Patch(label="most seeds diverged", **DIVERGED_CELL))
    if any_missing:
        handles.append(Patch(facecolor="white", edgecolor="#b0b0b0", label="no runs"))
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize=11, frameon=False)
    if title:
        fig.suptitle(title)
    return fig


# -- files ---------------------------------------------------------------------------------


def save_sweep_figures(frame, folder: str | Path, x: str = "lr", y: str = "final_loss",
                       by: Sequence[str] = ("optimizer", "variant"), *, heat: str | None = None,
                       name: str = "sweep") -> dict[str, tuple[Path, Path]]:
    """Write the sweep's figures under ``folder`` as PNG and SVG (`gradfit.plots.save`).

    Always ``{name}_{y}_vs_{x}``, the `sensitivity_figure`; and ``{name}_{y}_{x}_{heat}``,
    the `heatmap_figure` of x against ``heat``, when ``heat`` is given or when exactly
    one other hyperparameter varies (it is then ``heat``). Returns the (png, svg) paths
    by figure: ``{"sensitivity": ..., "heatmap": ...}``.
    """
    by = [by] if isinstance(by, str) else list(by)
    _check(frame, [x, y, *by], "sweep figures")
    if heat is None:
        others = swept_columns(frame, [x, y, *by], by)
        heat = others[0] if len(others) == 1 else None
    paths = {"sensitivity": save(sensitivity_figure(frame, x, y, by), folder, f"{name}_{y}_vs_{x}")}
    if heat is not None:
        paths["heatmap"] = save(heatmap_figure(frame, x, heat, y), folder, f"{name}_{y}_{x}_{heat}")
    return paths

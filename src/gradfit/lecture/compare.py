"""The lecture's machinery on a user's own model and data: `compare` (optimisers side by side over
one loss surface, the `gradfit compare` command) and `explore` (the loss landscape around one fit,
`gradfit landscape`)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .. import landscape as ls
from .. import report as rp
from ..data import Dataset
from ..errors import GradfitError
from ..fitting import fit
from ..losses import Loss
from ..models import Model
from ..optimizers import Optimizer
from ..result import FitResult
from .figure import Built, Output, box_around, fmt_point, make_folder, save_figure
from .settings import GABOR_BOX


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
    from .. import plots

    t0 = time.perf_counter()
    if not optimizers:
        raise GradfitError("compare needs at least one optimizer")
    folder = make_folder(out)
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
    runs = [dataclasses.replace(trace, x=(trace.result.history.step / per_epoch) if per_epoch else None)
            for trace in plots.traces(results, labels)]
    title = f"{model.describe()} on {data.name}: optimisers compared"
    xlabel = "epoch" if per_epoch else "step"
    if len(runs) > 1:  # one contour each: paths that share a valley would hide each other on one
        fig = plots.path_panels_figure(surf, runs, points=points, xlabel=xlabel, title=title)
        caption = ("Each optimiser's path on its own copy of the loss contours, from the same start (ring) to its end "
                   "(square), and every full-data loss curve together at the right.")
    else:
        fig = plots.paths_figure(surf, runs, points=points, xlabel=xlabel, title=title)
        caption = "The path over the loss (left) and the full-data loss per step (right)."
    image = save_figure(fig, folder, "compare", caption)
    table = rp.fits_table(results, labels, caption="Final parameters, loss, steps and time", time=True)
    settings = {"model": model.describe(), "loss": results[0].objective,
                "data": f"{data.name} ({len(data)} examples)", "start": fmt_point(results[0].history.params[0]),
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
        idx = [ls.param_index(model, name) for name in params]
        if box is None:
            if model.name == "gabor" and tuple(params) == ("phi0", "phi1"):
                box = GABOR_BOX
            else:
                box = box_around(np.vstack([r.history.params[:, idx] for r in held]))
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
    from .. import plots

    t0 = time.perf_counter()
    folder = make_folder(out)
    result = fit(model, loss, data, optimizer, init=init, steps=steps, batch_size=batch_size, tol=tol, seed=seed)
    fn = ls.LossFunction(model, loss, data)
    surf, points = _surface_for(fn, [result], box, resolution, seed, params, at, span)
    label = plots.optimizer_label(result.optimizer)
    fig = plots.paths_figure(surf, plots.traces([result], [label]), points=points,
                             title=f"{model.describe()} on {data.name}: the loss landscape")
    image = save_figure(fig, folder, "landscape", "The loss around the fit, with its path"
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

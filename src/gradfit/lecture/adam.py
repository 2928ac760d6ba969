"""Part 5, Adam (the slides' normalised-gradient and Adam sections). Draws `normalized_vs_adam`:
normalised gradients against Adam on a quadratic steep in one direction and shallow in the other,
the loss of the book's Figure 6.8 (plain gradient descent on it is not drawn yet)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import landscape as ls
from .. import report as rp
from ..data import Dataset
from ..fitting import fit
from ..losses import Loss, normal
from ..models import Model, custom
from ..optimizers import adam, normalized
from .figure import Built, save_figure
from .settings import Settings


def _two_axes(x, params):
    return x[:, 0] * params["phi0"] + x[:, 1] * params["phi1"]


def steep_quadratic(a: float = 1.0, b: float = 25.0) -> tuple[Model, Loss, Dataset]:
    """L[φ] = a φ0² + b φ1² as least squares: f = x₀φ0 + x₁φ1 on two rows (√a, 0), (0, √b), y = 0."""
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
    section = rp.Section("6. Normalised gradients against Adam", "", (image,), settings, (table,), anchor="normalized")
    return Built(("normalized_vs_adam",), section, {"fits": fits, "labels": labels})

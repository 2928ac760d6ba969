"""Part 8, the lecture's Poisson exercise: a loss for counts, from its likelihood, fitted to the
built-in pedestrian counts (docs/poisson.md). Draws `poisson`: the counts with the fitted rate
through the day, and the loss of Adam's run against the optimum of Newton's method."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import report as rp
from ..data import Dataset, pedestrian_data
from ..fitting import fit
from ..glm import fit_glm
from ..losses import poisson
from ..models import linear
from ..optimizers import adam
from .figure import Built, save_figure
from .settings import Settings

#: The log-rate's columns: the hour's two harmonics, the place, the neighbourhood against residential.
COLUMNS = ("hour_sin", "hour_cos", "hour2_sin", "hour2_cos", "lat", "lon", "commercial", "park", "transit")


def _hour_columns(hour: np.ndarray) -> np.ndarray:
    angle = 2 * np.pi * hour / 24.0
    return np.stack([np.sin(angle), np.cos(angle), np.sin(2 * angle), np.cos(2 * angle)], axis=1)


def poisson_figure(s: Settings, folder: Path) -> Built:
    """`poisson`: L[φ] = Σ_i λ_i − y_i log λ_i (the NLL without Σ log y_i!), λ_i = exp(x_iᵀφ).

    The fit is `fit_glm`'s (damped Newton in standardised columns); beside it, unless
    ``poisson_steps`` is 0, Adam minimises the same loss in the same standardised columns.
    """
    from .. import plots

    data = pedestrian_data(s.seed, s.poisson_n)
    columns = {name: data.x[:, j] for j, name in enumerate(data.x_names)}
    columns["count"] = data.y
    result = fit_glm(columns, "count", "poisson", x=list(COLUMNS), inference=False)
    beta = np.asarray(result.x)
    # Adam in standardised columns: the same linear model, so the same loss values
    x = np.column_stack([columns[c] for c in COLUMNS])
    mean, scale = x.mean(axis=0), x.std(axis=0)
    standard = Dataset((x - mean) / scale, np.asarray(data.y, float), x_names=COLUMNS, name="pedestrians, standardised")
    opt = adam(s.poisson_lr)
    run = fit(linear(len(COLUMNS)), poisson(), standard, opt,
              init=[float(np.log(np.mean(data.y)))] + [0.0] * len(COLUMNS), steps=s.poisson_steps,
              tol=0) if s.poisson_steps else None

    hour = np.asarray(data.notes["hour"], float)
    kind = np.asarray(data.notes["neighbourhood"])
    grid = np.linspace(0.0, 24.0, 241)
    place = np.array([np.mean(columns["lat"]), np.mean(columns["lon"])])
    fig, axes = plots.new_figure(ncols=2, size=(15, 5.6), gridspec_kw={"width_ratios": [1.5, 1]})
    rng = np.random.default_rng(s.seed)
    names = ("residential", "commercial", "park", "transit")
    for k, name in enumerate(names):
        colour = plots.PALETTE[[5, 0, 2, 4][k]]
        rows = kind == name
        axes[0].plot(hour[rows], data.y[rows] + rng.uniform(-0.2, 0.2, rows.sum()), ".", ms=3.5, alpha=0.35,
                     color=colour, rasterized=True)
        dummies = np.array([name == n for n in names[1:]], float)
        design = np.column_stack([np.ones_like(grid), _hour_columns(grid), np.tile(place, (len(grid), 1)),
                                  np.tile(dummies, (len(grid), 1))])
        axes[0].plot(grid, np.exp(design @ beta), color=colour, lw=2.8, label=f"{name}: fitted rate λ")
    axes[0].set_xlabel("hour of day")
    axes[0].set_ylabel("pedestrians in one minute")
    axes[0].set_xticks(range(0, 25, 3))
    axes[0].set_xlim(0, 24)
    axes[0].set_title("counts (dots, jittered) and the fitted rate λ at the mean place", fontsize=12)
    axes[0].legend(loc="upper left", ncols=2)
    # excess loss over Newton's optimum, on log axes; Adam ends on it to float64 precision, drawn at the floor
    floor = 1e-9 * abs(result.loss)
    curves = [(f"Newton's method (fit_glm), {len(result.history) - 1} steps", result.history, "#404040", "--")]
    if run is not None:
        curves.insert(0, (f"Adam (α = {s.poisson_lr:g}), standardised columns", run.history,
                          plots.optimizer_color("adam"), "-"))
    for label, history, colour, style in curves:
        excess = np.maximum(np.asarray(history.loss) - result.loss, floor)
        axes[1].plot(np.asarray(history.step) + 1, excess, ls=style, marker="o" if style == "--" else None,
                     color=colour, label=label)
    axes[1].set_yscale("log")
    if run is not None:  # Adam's hundreds of steps and Newton's handful on one axis
        axes[1].set_xscale("log")
        plots.plain_log_labels(axes[1].xaxis)
        axes[1].set_xlabel("step + 1")
    else:
        axes[1].set_xticks(np.asarray(result.history.step) + 1, [str(k) for k in result.history.step])
        axes[1].set_xlabel("Newton step")
    axes[1].set_ylabel(r"$L[\phi] - L[\hat\phi]$")
    axes[1].grid(True, alpha=0.3)
    axes[1].set_title(f"loss above the optimum L̂ = {result.loss:.2f} (floor {floor:.0e})", fontsize=12)
    axes[1].legend(loc="upper right")
    fig.suptitle(r"Poisson regression of pedestrian counts: $L = \sum_i \lambda_i - y_i \log \lambda_i$, "
                 r"$\lambda_i = \exp(\mathbf{x}_i^\top \phi)$")
    adam_note = ", and Adam approaches the same loss" if run is not None else ""
    image = save_figure(fig, folder, "poisson", "The lecture's exercise. A count y has the Poisson distribution "
                        "Pr(y = k) = λᵏ e^(−λ) / k!; the model predicts log λ = xᵀφ, so λ > 0, and the negative "
                        "log-likelihood, dropping Σ log yᵢ! which does not depend on φ, is the loss "
                        "L = Σ λᵢ − yᵢ log λᵢ. It is convex, with one minimum: Newton's method (fit_glm) reaches "
                        f"it in {len(result.history) - 1} steps{adam_note}. Left: the counts through the day and "
                        "the fitted rate for each neighbourhood, with two rush hours a day.")
    rows = tuple((name, b) for name, b in zip(("intercept", *COLUMNS), beta, strict=True))
    table = rp.Table(("coefficient", "fitted (log-rate)"), rows, "fit_glm's Poisson regression, exp link")
    settings = {"data": f"pedestrian_data(seed={s.seed}, n={s.poisson_n})", "columns": list(COLUMNS),
                "fit": "fit_glm(..., 'poisson'): damped Newton in standardised columns",
                "loss curve": f"{opt.describe()}, {s.poisson_steps} steps, standardised columns" if run is not None
                else "Newton's steps only (poisson_steps = 0)"}
    text = ("The lecture's exercise: design a loss for counts. Counts are whole numbers ≥ 0, so a normal "
            "likelihood (which allows negative and fractional values) is the wrong choice; the Poisson distribution "
            "is the natural one, with a rate λ > 0 that the model must predict. Predicting log λ = xᵀφ keeps λ "
            "positive, and the negative log-likelihood gives the loss L = Σ λᵢ − yᵢ log λᵢ. What to see: the "
            "fitted rate follows the counts through the day, with a peak at each rush hour and a different level "
            "for each neighbourhood; the loss is convex, so Newton's method reaches its single minimum in a few "
            "steps, and gradient methods approach the same value.")
    section = rp.Section("The Poisson exercise: pedestrian counts", text, (image,), settings, (table,),
                         anchor="poisson")
    return Built(("poisson",), section, {"glm": result, "adam": run, "beta": beta, "data": data})

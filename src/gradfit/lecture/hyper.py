"""Part 6, hyperparameters (the slides' hyperparameter section). Draws `hyperparameters`: the final
loss against the learning rate, the batch size and momentum, over several seeds, from one
`gradfit.sweep` per panel."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import report as rp
from ..losses import normal
from ..result import FitResult
from .figure import Built, save_figure
from .linear import LinearProblem
from .settings import Settings


def _final(result: FitResult) -> float:
    return float("nan") if result.status == "diverged" else float(result.loss)


def hyper_figure(s: Settings, p: LinearProblem, folder: Path) -> Built:
    from .. import plots
    from ..sweeps import sweep as run_sweep

    seeds = range(s.seed, s.seed + s.hyper_seeds)
    model, data = p.model, p.data
    n = len(data)
    floor = p.floor / n  # the least-squares minimum of the mean loss
    start = {f"init.{name}": [float(v)] for name, v in zip(model.flat_names, s.linear_start, strict=True)}

    def sweep(optimizer, name, values, **fixed):
        """The excess final mean loss of each value (rows) and seed (columns), from one `gradfit.sweep`: one
        compile for all the values of a number, one per value of a batch size."""
        grid = {**start, name: list(values), **{k: [v] for k, v in fixed.items()}}
        frame = run_sweep(model, normal(), data, optimizer, grid=grid, seeds=list(seeds), epochs=s.hyper_epochs,
                          tol=0, reduction="mean", **({} if name == "batch_size" else {"batch_size": s.batch_size}))
        final = np.where(frame["status"] == "diverged", np.nan, frame["final_loss"].to_numpy())
        return final.reshape(len(values), len(seeds)) - floor

    by_lr = sweep("sgd", "lr", s.hyper_lrs)
    by_batch = sweep("sgd", "batch_size", s.hyper_batches, lr=s.hyper_lr)
    by_beta = sweep("momentum", "beta", s.hyper_betas, lr=s.hyper_lr)
    ceiling = 10 * (float(p.fn(np.array(s.linear_start))) / n - floor)
    panels = [
        dict(values=s.hyper_lrs, losses=by_lr, xlabel="learning rate α", log_x=True,
             title=f"SGD, batch {s.batch_size}: learning rate", color=plots.optimizer_color("sgd")),
        dict(values=s.hyper_batches, losses=by_batch, xlabel="batch size", log_x=True, log_base=2,
             title=f"SGD, α={s.hyper_lr:g}: batch size", color=plots.optimizer_color("sgd")),
        dict(values=s.hyper_betas, losses=by_beta, xlabel="momentum β",
             title=f"momentum, α={s.hyper_lr:g}, batch {s.batch_size}: β",
             color=plots.optimizer_color("momentum")),
    ]
    fig = plots.hyper_figure(panels, ceiling=ceiling, ylabel="final excess mean loss L[φ]/N − L[φ̂]/N",
                             suptitle=f"Linear regression: final loss after {s.hyper_epochs} epochs, "
                                      f"{s.hyper_seeds} seeds (batch orders) each")
    image = save_figure(fig, folder, "hyperparameters", "The median over seeds is the line, min to max the band, each "
                        "seed a dot; a red cross at the top marks a setting where a run diverged (ended above "
                        "ten times the starting loss). The panels share one y scale. Each step follows the batch's "
                        "mean gradient, so α means the same step at every batch size, and a batch of B takes N/B "
                        "steps an epoch.")
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
                "α (batch and β panels)": s.hyper_lr,
                "batch sizes": list(s.hyper_batches), "momenta β": list(s.hyper_betas),
                "loss": "the batch's mean squared error (reduction='mean')",
                "excess loss": f"final mean loss minus the least-squares minimum {floor:.6g}"}
    best_lr = s.hyper_lrs[int(np.nanargmin(np.nanmedian(np.where(by_lr <= ceiling, by_lr, np.nan), axis=1)))] \
        if np.isfinite(by_lr).any() else float("nan")
    text = ("How the final loss depends on each hyperparameter, the others fixed, over several seeds (batch "
            "orders). Every loss is the batch's mean, so α means the same step at every batch size. What to see: "
            "the learning rate matters most: too small and the fit has not arrived after "
            f"{s.hyper_epochs} epochs, too large and SGD's noise (and in the end divergence) takes over; here the "
            f"best median is at α ≈ {best_lr:.2g}. With the number of epochs fixed, a batch of B points takes N/B "
            "steps an epoch: large batches are less noisy but take few steps, so they end further from the "
            "minimum. Momentum helps up to β ≈ 0.9–0.95; at 0.99 it remembers so much that the path overshoots "
            "and has not settled by the end.")
    section = rp.Section("Hyperparameters", text, (image,), settings, tuple(tables), anchor="hyperparameters")
    return Built(("hyperparameters",), section, {"lr": by_lr, "batch": by_batch, "beta": by_beta})

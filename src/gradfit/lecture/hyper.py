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
    start = {f"init.{name}": [float(v)] for name, v in zip(model.flat_names, s.linear_start, strict=True)}

    def sweep(optimizer, name, values, **fixed):
        """The excess final loss of each value (rows) and seed (columns), from one `gradfit.sweep`: one
        compile for all the values of a number, one per value of a batch size."""
        grid = {**start, name: list(values), **{k: [v] for k, v in fixed.items()}}
        frame = run_sweep(model, normal(), data, optimizer, grid=grid, seeds=list(seeds), epochs=s.hyper_epochs,
                          tol=0, **({} if name == "batch_size" else {"batch_size": s.batch_size}))
        final = np.where(frame["status"] == "diverged", np.nan, frame["final_loss"].to_numpy())
        return final.reshape(len(values), len(seeds)) - p.floor

    by_lr = sweep("sgd", "lr", s.hyper_lrs)
    by_batch = sweep("sgd", "batch_size", s.hyper_batches, lr=s.sgd_lr)
    by_beta = sweep("momentum", "beta", s.hyper_betas, lr=s.sgd_lr)
    ceiling = 10 * (float(p.fn(np.array(s.linear_start))) - p.floor)
    panels = [
        dict(values=s.hyper_lrs, losses=by_lr, xlabel="learning rate α", log_x=True,
             title=f"SGD, batch {s.batch_size}: learning rate", color=plots.optimizer_color("sgd")),
        dict(values=s.hyper_batches, losses=by_batch, xlabel="batch size", log_x=True, log_base=2,
             title=f"SGD, α={s.sgd_lr:g}: batch size", color=plots.optimizer_color("sgd")),
        dict(values=s.hyper_betas, losses=by_beta, xlabel="momentum β",
             title=f"momentum, α={s.sgd_lr:g}, batch {s.batch_size}: β",
             color=plots.optimizer_color("momentum")),
    ]
    fig = plots.hyper_figure(panels, ceiling=ceiling, ylabel="final excess loss L[φ] − L[φ̂]",
                             suptitle=f"Linear regression: final loss after {s.hyper_epochs} epochs, "
                                      f"{s.hyper_seeds} seeds (batch orders) each")
    image = save_figure(fig, folder, "hyperparameters", "The median over seeds is the line, min to max the band, each "
                        "seed a dot; a red cross at the top marks a setting where a run diverged (ended above "
                        "ten times the starting loss). The panels share one y scale. The loss sums over the batch, "
                        "so each step's size grows with the batch (its gradient does): the batch-size panel mixes "
                        "the batch's noise with the step's size.")
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
                "batch sizes": list(s.hyper_batches), "momenta β": list(s.hyper_betas),
                "excess loss": f"final loss minus the least-squares minimum {p.floor:.6g}"}
    section = rp.Section("7. Hyperparameters", "", (image,), settings, tuple(tables), anchor="hyperparameters")
    return Built(("hyperparameters",), section, {"lr": by_lr, "batch": by_batch, "beta": by_beta})

"""Part 3, stochastic gradient descent (the slides' SGD section). Draws `sgd_vs_gd`: SGD against
full-batch gradient descent on the line data, epochs marked, with a constant and a decaying
learning rate. (The book's Figure 6.4 shows SGD on the Gabor loss; that figure is not drawn yet.)"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from .. import report as rp
from ..fitting import fit
from ..losses import normal
from ..optimizers import gd, sgd
from ..schedules import step_decay
from .figure import Built, save_figure
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
    section = rp.Section("4. SGD against full-batch gradient descent", "", (image,), settings, (table,), anchor="sgd")
    return Built(("sgd_vs_gd",), section, {"fits": [full, plain, decayed], "labels": labels})

"""Part 4, momentum (the slides' momentum and Nesterov sections). Draws `momentum`: momentum and
Nesterov against plain SGD on the same mini-batches of the line data. (The book's Figure 6.6 shows
them on the Gabor loss, and 6.7 the look-ahead; neither is drawn yet.)"""

from __future__ import annotations

from pathlib import Path

from .. import report as rp
from ..fitting import fit
from ..losses import normal
from ..optimizers import momentum, nesterov, sgd
from .figure import Built, save_figure
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
    section = rp.Section("5. Momentum and Nesterov against SGD", "", (image,), settings, (table,), anchor="momentum")
    return Built(("momentum",), section, {"fits": fits, "labels": labels})

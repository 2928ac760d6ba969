"""What the web app computes: a fit from the `gradfit fit` options, a loss surface, a
learning-rate sweep and a basin map.

All are written over gradfit's public API, with the defaults `gradfit fit` takes from
`gradfit.defaults`, so ``POST /api/fit`` answers with the JSON that ``gradfit fit --json``
writes for the same options (``elapsed`` aside, which is a clock). A fit or surface may
name an uploaded data set (`gradfit.web.uploads`) instead of built-in data.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, FiniteFloat, field_validator

from .. import defaults
from .uploads import ID

#: Caps that keep one request to about a second of work and a few MB of JSON.
MAX_STEPS = 100_000
MAX_EPOCHS = 10_000
MAX_RESOLUTION = 200
MAX_PARAMS = 64

UPLOAD_ID = ID.pattern


class FitRequest(BaseModel):
    """The options of ``gradfit fit`` for built-in data or an upload, as JSON fields (names as the flags,
    ``_`` for ``-``; ``data``: an upload's id, for ``--data FILE``)."""

    model_config = ConfigDict(extra="forbid")

    model: Literal["linear", "gabor"] | None = None
    loss: Literal["normal", "poisson"] = "normal"
    builtin: Literal["linear", "gabor", "pedestrians"] | None = None
    data: str | None = Field(None, pattern=UPLOAD_ID)
    scale: FiniteFloat = Field(8.0, gt=0)
    optimizer: str | None = Field(None, max_length=40)
    variant: str | None = Field(None, max_length=40)
    lr: FiniteFloat = defaults.LR
    beta: FiniteFloat | None = None
    gamma: FiniteFloat | None = None
    eps: FiniteFloat | None = None
    schedule: Literal["constant", "step", "exponential", "cosine"] = "constant"
    decay_factor: FiniteFloat = 0.5
    decay_every: int = Field(100, ge=1, le=MAX_STEPS)
    batch_size: int | None = Field(None, ge=1, le=1_000_000)
    steps: int | None = Field(None, ge=0, le=MAX_STEPS)
    epochs: int | None = Field(None, ge=1, le=MAX_EPOCHS)
    tol: FiniteFloat = Field(defaults.TOL, ge=0)
    seed: int = Field(0, ge=0, le=2**31 - 1)
    init: list[FiniteFloat] | None = Field(None, min_length=1, max_length=MAX_PARAMS)
    x: str | None = Field(None, max_length=400)


def _dataset(gf, name: str, seed: int, scale: float):
    """The built-in data set ``name``, as ``gradfit fit --builtin`` builds it."""
    from gradfit.data import BUILTIN

    return gf.gabor_data(seed, s=scale) if name == "gabor" else BUILTIN[name](seed)


def _rate(gf, req: FitRequest):
    """α as a number, or the schedule `gradfit fit --schedule` builds from it."""
    if req.schedule == "step":
        return gf.step_decay(req.lr, req.decay_factor, req.decay_every)
    if req.schedule == "exponential":
        return gf.exponential(req.lr, req.decay_factor)
    if req.schedule == "cosine":
        return gf.cosine(req.lr, req.decay_every)
    return gf.constant(req.lr)


def _fit_data(gf, req: FitRequest, model_name: str, uploaded):
    """The data set of a fit: the upload, or the built-in set `gradfit fit` picks."""
    if uploaded is not None:
        if req.builtin is not None:
            raise gf.GradfitError("give data (an upload's id) or builtin, not both")
        return uploaded
    name = req.builtin or defaults.builtin_for(req.model, req.loss)
    if model_name == "gabor" and name != "gabor":
        raise gf.GradfitError(f"model gabor is fitted to the built-in gabor data, not {name}: leave out builtin "
                              "or set it to gabor")
    return _dataset(gf, name, req.seed, req.scale)


def fit(req: FitRequest, uploaded=None):
    """The `FitResult` of ``gradfit fit`` with these options (standard errors included where they exist);
    ``uploaded`` is the `Dataset` that ``req.data`` names, as ``gradfit fit --data`` would read it."""
    import gradfit as gf

    model_name = defaults.model_for(req.model, req.loss, has_file=uploaded is not None, builtin=req.builtin)
    optimizer = req.optimizer or defaults.optimizer_for(model_name, req.loss)
    hyper = {k: v for k, v in (("beta", req.beta), ("gamma", req.gamma), ("eps", req.eps)) if v is not None}
    the_opt = gf.make_optimizer(optimizer, lr=_rate(gf, req), variant=req.variant, **hyper)
    dataset = _fit_data(gf, req, model_name, uploaded)
    run = {"steps": req.steps, "epochs": req.epochs, "batch_size": req.batch_size, "tol": req.tol, "seed": req.seed}
    if model_name == "linear" and req.loss in defaults.REGRESSION_LOSSES:  # a regression model (GLM), as the CLI
        columns = [c.strip() for c in req.x.split(",") if c.strip()] if req.x else None
        return gf.fit_glm(dataset, None, req.loss, x=columns, optimizer=the_opt, init=req.init, polish=True, **run)
    if req.x is not None:
        raise gf.GradfitError("x picks the input columns of a regression model (model linear with loss poisson) "
                              "on built-in data; leave it out here")
    from gradfit.models import linear_for

    model = linear_for(dataset) if model_name == "linear" else gf.gabor(req.scale)
    _check_size(req.init, model.size, model.flat_names)
    loss = gf.make_loss(req.loss)
    result = gf.fit(model, loss, dataset, the_opt, init=req.init, polish=False, **run)
    if result.status == "diverged":
        return result
    try:
        return gf.infer(result)
    except gf.GradfitError:  # no standard errors away from an optimum: the fit as it is
        return result


def _check_size(init, size: int, names) -> None:
    from gradfit.errors import GradfitError

    if init is not None and len(init) != size:
        raise GradfitError(f"init has {len(init)} value(s); the model has {size}: {', '.join(names[:12])}")


#: The playground's boxes: where the lecture draws each loss surface.
BOXES = {"gabor": ((-10.0, 10.0), (2.5, 22.5)), "linear": ((-1.0, 3.0), (-1.5, 2.5)),
         "poisson": ((1.0, 3.0), (-1.5, 1.0))}
#: The playground's Poisson problem: pedestrian counts against one feature of the hour,
#: log λ = intercept + hour_cos · cos(2π hour / 24), fitted as `gradfit fit --x hour_cos` fits it.
POISSON_INPUT = "hour_cos"


class SurfaceRequest(BaseModel):
    """A loss grid over (φ₀, φ₁) of a two-parameter model on its built-in data or an upload."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: Literal["linear", "gabor", "poisson"] = "gabor"
    data: str | None = Field(None, pattern=UPLOAD_ID)
    scale: FiniteFloat = Field(8.0, gt=0)
    seed: int = Field(0, ge=0, le=2**31 - 1)
    resolution: int = Field(81, ge=2, le=MAX_RESOLUTION)
    a_min: FiniteFloat | None = None
    a_max: FiniteFloat | None = None
    b_min: FiniteFloat | None = None
    b_max: FiniteFloat | None = None


def _surface_problem(gf, req: SurfaceRequest, uploaded):
    """(model, loss, data, the two parameters' names as the fit's JSON names them) of a surface."""
    from gradfit.models import linear_for

    if req.model == "poisson":
        if uploaded is None:
            counts = gf.pedestrian_data(req.seed)
            column = counts.x[:, list(counts.x_names).index(POISSON_INPUT)]
            uploaded = gf.Dataset(column, counts.y, x_names=(POISSON_INPUT,), y_name="count", name="pedestrians")
        return gf.linear(1), gf.poisson(), uploaded, ["intercept", uploaded.x_names[0]]
    data = uploaded if uploaded is not None else _dataset(gf, req.model, req.seed, req.scale)
    model = gf.gabor(req.scale) if req.model == "gabor" else linear_for(data)
    return model, gf.normal(), data, list(model.flat_names)


def _box(req: SurfaceRequest, data, uploaded: bool):
    """The requested box, its sides by default where the lecture draws the built-in problem's
    loss, or (an upload's line or counts) around the least-squares line of y, or of log(y + ½)."""
    import numpy as np

    if req.model == "gabor" or not uploaded:
        (a0, a1), (b0, b1) = BOXES[req.model]
    else:
        (a0, a1), (b0, b1) = _box_around_line(np.ravel(data.x), data.y, counts=req.model == "poisson")
    return ((_or(req.a_min, float(a0)), _or(req.a_max, float(a1))),
            (_or(req.b_min, float(b0)), _or(req.b_max, float(b1))))


def _box_around_line(x, y, counts: bool):
    """(intercept, slope) ranges around the least-squares line of y (of log(y + ½) for counts) on x."""
    import numpy as np

    from gradfit.errors import GradfitError

    if counts and (np.any(y < 0) or np.any(y != np.round(y))):
        raise GradfitError("the Poisson model needs counts 0, 1, 2, ... in the y column: choose a column of counts, "
                           "or the line or Gabor model")
    t = np.log(y + 0.5) if counts else y
    with np.errstate(all="ignore"):
        try:
            slope, intercept = np.polyfit(x, t, 1)
        except (np.linalg.LinAlgError, ValueError):
            slope = intercept = np.nan
        half_b = 2.0 * max(abs(slope), np.std(t) / np.std(x), 1e-12)
        half_a = 2.0 * max(np.std(t), abs(np.mean(x)) * half_b, 1e-12)
    box = ((intercept - half_a, intercept + half_a), (slope - half_b, slope + half_b))
    if not (np.all(np.isfinite(box)) and box[0][0] < box[0][1] and box[1][0] < box[1][1]):
        raise GradfitError("x or y is of too extreme a scale (near 1e±300) to draw the loss over: rescale the column")
    return box


def surface(req: SurfaceRequest, uploaded=None) -> dict:
    """The grid (``loss[j][i]`` at ``a[i]``, ``b[j]``), the parameters' names and the data.

    For ``poisson``: the Poisson loss (without its log y! terms) of the counts against one
    input (``hour_cos`` of the pedestrian counts, or an upload's x), over (intercept, that
    input's coefficient), the names the regression model uses.
    """
    import gradfit as gf
    from gradfit.landscape import LossFunction
    from gradfit.landscape import surface as loss_surface

    model, loss, data, names = _surface_problem(gf, req, uploaded)
    box = _box(req, data, uploaded is not None)
    grid = loss_surface(LossFunction(model, loss, data), tuple(model.flat_names[:2]), box, resolution=req.resolution)
    return {
        "model": req.model, "scale": req.scale, "labels": names,
        "a": grid.a.tolist(), "b": grid.b.tolist(), "loss": _finite_or_none(grid.loss),
        "data": {"x": data.x.ravel().tolist(), "y": data.y.tolist(),
                 "x_label": data.x_names[0] if uploaded is not None or req.model == "poisson" else "x",
                 "y_label": data.y_name if uploaded is not None else ("count" if req.model == "poisson" else "y")},
    }


def _finite_or_none(values) -> list:
    """A grid as nested lists, with null where the loss overflowed (JSON has no inf)."""
    import numpy as np

    return np.where(np.isfinite(values), values, None).tolist()


def _or(value, default):
    return default if value is None else value


MAX_SWEEP_RUNS = 512


class SweepRequest(BaseModel):
    """A learning-rate sweep: ``count`` rates, log-spaced from ``lr_min`` to ``lr_max``, × ``seeds`` starts."""

    model_config = ConfigDict(extra="forbid")

    model: Literal["linear", "gabor"] = "gabor"
    scale: FiniteFloat = Field(8.0, gt=0)
    optimizer: str = Field("gd", max_length=40)
    lr_min: FiniteFloat = Field(1e-3, gt=0)
    lr_max: FiniteFloat = Field(1.0, gt=0)
    count: int = Field(24, ge=2, le=128)
    seeds: int = Field(4, ge=1, le=16)
    steps: int = Field(500, ge=1, le=10_000)


def lr_sweep(req: SweepRequest) -> dict:
    """One row per (α, seed) from `gradfit.sweep`: the final loss and status of each run (seed s starts
    where ``gradfit fit --seed s`` starts)."""
    import math

    import gradfit as gf
    from gradfit.models import linear_for

    if not req.lr_min < req.lr_max:
        raise gf.GradfitError(f"lr_min must be below lr_max, not {req.lr_min} and {req.lr_max}")
    if req.count * req.seeds > MAX_SWEEP_RUNS:
        raise gf.GradfitError(f"count × seeds is {req.count * req.seeds}; at most {MAX_SWEEP_RUNS} runs a sweep: "
                              "fewer rates or seeds")
    data = _dataset(gf, req.model, 0, req.scale)
    model = gf.gabor(req.scale) if req.model == "gabor" else linear_for(data)
    frame = gf.sweep(model, gf.normal(), data, req.optimizer, grid={"lr": f"{req.lr_min}:{req.lr_max}:log:{req.count}"},
                     seeds=req.seeds, steps=req.steps, tol=0)

    def finite(value):
        return float(value) if math.isfinite(value) else None  # a diverged run's loss is not a number

    rows = [{"lr": float(r.lr), "seed": int(r.seed), "final_loss": finite(r.final_loss), "status": r.status,
             "init": [float(r.init_phi0), float(r.init_phi1)]} for r in frame.itertuples()]
    return {"model": req.model, "scale": req.scale, "optimizer": req.optimizer, "steps": req.steps, "rows": rows}


#: The basin maps the lecture draws (`gradfit.lecture.FULL`, written out here so that this module
#: does not import the lecture; a test holds them equal): gradient descent with a rate under
#: 2 / the largest curvature at every minimum of the Gabor loss, this many steps from each start.
BASIN_RATES = {8.0: 0.3, 32.0: 0.1}
BASIN_STEPS = 1000
MAX_BASIN_RESOLUTION = 100


class BasinsRequest(BaseModel):
    """A basin map of gradient descent on the Gabor loss (built-in data) over the lecture's box."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    scale: FiniteFloat = 8.0
    resolution: int = Field(60, ge=4, le=MAX_BASIN_RESOLUTION)

    @field_validator("scale")
    @classmethod
    def _drawn(cls, scale: float) -> float:
        if scale not in BASIN_RATES:
            raise ValueError(f"the basin map is drawn for s = {' or '.join(f'{s:g}' for s in BASIN_RATES)}")
        return scale


def basin_map(req: BasinsRequest):
    """`gradfit.landscape.basins` of gradient descent (the lecture's α for this s, `BASIN_STEPS` steps)."""
    import gradfit as gf
    from gradfit.landscape import basins

    data = gf.gabor_data(0, s=req.scale)
    return basins(gf.gabor(req.scale), gf.normal(), data, gf.gd(BASIN_RATES[req.scale]), BOXES["gabor"],
                  resolution=req.resolution, steps=BASIN_STEPS)


def basins_answer(req: BasinsRequest) -> dict:
    """The map as JSON: ``labels[j][i]`` of the start (``a[i]``, ``b[j]``): the index of the minimum it
    reaches, or the code of where it ends instead (`gradfit.plots.basin_codes`: -1 still moving, -2 out of
    the box, -3 on the plateau L ≈ Σy² where the model is ≈ 0); each minimum, its loss, share and colour
    (the lecture's); the rule (``optimizer``, ``lr``, ``steps``) that ``POST /api/fit`` repeats."""
    import numpy as np

    import gradfit as gf
    from gradfit import plots

    found = basin_map(req)
    data = gf.gabor_data(0, s=req.scale)
    plateau = float(np.sum(np.asarray(data.y) ** 2))
    codes = plots.basin_codes(found, plateau)
    minima = [{"phi0": float(m[0]), "phi1": float(m[1]), "loss": float(loss), "share": float(share),
               "color": plots.basin_color(k)}
              for k, (m, loss, share) in enumerate(zip(found.minima, found.minima_loss, found.shares, strict=True))]
    nowhere = {str(code): {"color": color, "label": label.replace("Σy²", f"Σy² = {plateau:.3g}"),
                           "share": float(np.mean(codes == code))}
               for code, (color, label) in plots.NO_MINIMUM.items()}
    return {"scale": req.scale, "resolution": req.resolution, "optimizer": "gd", "lr": BASIN_RATES[req.scale],
            "steps": BASIN_STEPS, "a": found.a.tolist(), "b": found.b.tolist(), "labels": codes.tolist(),
            "minima": minima, "nowhere": nowhere, "plateau": plateau,
            "data": {"x": data.x.ravel().tolist(), "y": data.y.tolist(), "x_label": "x", "y_label": "y"}}

"""What the web app computes: a fit from the `gradfit fit` options, and a loss surface.

Both are written over gradfit's public API, choosing defaults as `gradfit fit` does, so
``POST /api/fit`` answers with the JSON that ``gradfit fit --json`` writes for the same
options (``elapsed`` aside, which is a clock).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, FiniteFloat

#: Caps that keep one request to about a second of work and a few MB of JSON.
MAX_STEPS = 100_000
MAX_EPOCHS = 10_000
MAX_RESOLUTION = 200
MAX_PARAMS = 64

BUILTINS = ("linear", "gabor", "pedestrians")
REGRESSION_LOSSES = ("poisson", "bernoulli", "categorical")


class FitRequest(BaseModel):
    """The options of ``gradfit fit`` for built-in data, as JSON fields (names as the flags, ``_`` for ``-``)."""

    model_config = ConfigDict(extra="forbid")

    model: Literal["linear", "gabor"] | None = None
    loss: Literal["normal", "poisson"] = "normal"
    builtin: Literal["linear", "gabor", "pedestrians"] | None = None
    scale: FiniteFloat = Field(8.0, gt=0)
    optimizer: str | None = Field(None, max_length=40)
    variant: str | None = Field(None, max_length=40)
    lr: FiniteFloat = 0.1
    beta: FiniteFloat | None = None
    gamma: FiniteFloat | None = None
    eps: FiniteFloat | None = None
    schedule: Literal["constant", "step", "exponential", "cosine"] = "constant"
    decay_factor: FiniteFloat = 0.5
    decay_every: int = Field(100, ge=1, le=MAX_STEPS)
    batch_size: int | None = Field(None, ge=1, le=1_000_000)
    steps: int | None = Field(None, ge=0, le=MAX_STEPS)
    epochs: int | None = Field(None, ge=1, le=MAX_EPOCHS)
    tol: FiniteFloat = Field(1e-6, ge=0)
    seed: int = Field(0, ge=0, le=2**31 - 1)
    init: list[FiniteFloat] | None = Field(None, min_length=1, max_length=MAX_PARAMS)
    x: str | None = Field(None, max_length=400)


def _builtin_for(model: str | None, loss: str) -> str:
    if loss == "poisson":
        return "pedestrians"
    return "linear" if model == "linear" else "gabor"


def _dataset(gf, name: str, seed: int, scale: float):
    if name == "gabor":
        return gf.gabor_data(seed, s=scale)
    return gf.linear_data(seed) if name == "linear" else gf.pedestrian_data(seed)


def _rate(gf, req: FitRequest):
    """α as a number, or the schedule `gradfit fit --schedule` builds from it."""
    if req.schedule == "step":
        return gf.step_decay(req.lr, req.decay_factor, req.decay_every)
    if req.schedule == "exponential":
        return gf.exponential(req.lr, req.decay_factor)
    if req.schedule == "cosine":
        return gf.cosine(req.lr, req.decay_every)
    return gf.constant(req.lr)


def fit(req: FitRequest):
    """The `FitResult` of ``gradfit fit`` with these options (standard errors included where they exist)."""
    import gradfit as gf

    name = req.builtin or _builtin_for(req.model, req.loss)
    model_name = req.model or ("gabor" if name == "gabor" else "linear")
    if req.model == "gabor" and name != "gabor":
        raise gf.GradfitError(f"model gabor is fitted to the built-in gabor data, not {name}: leave out builtin "
                              "or set it to gabor")
    optimizer = req.optimizer or ("lm" if req.loss == "normal" and model_name == "linear" else "adam")
    hyper = {k: v for k, v in (("beta", req.beta), ("gamma", req.gamma), ("eps", req.eps)) if v is not None}
    the_opt = gf.make_optimizer(optimizer, lr=_rate(gf, req), variant=req.variant, **hyper)
    dataset = _dataset(gf, name, req.seed, req.scale)
    run = {"steps": req.steps, "epochs": req.epochs, "batch_size": req.batch_size, "tol": req.tol, "seed": req.seed}
    if model_name == "linear" and req.loss in REGRESSION_LOSSES:  # a regression model (GLM), as the CLI fits it
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
    """A loss grid over (φ₀, φ₁) of a two-parameter model on its built-in data."""

    model_config = ConfigDict(extra="forbid")

    model: Literal["linear", "gabor", "poisson"] = "gabor"
    scale: FiniteFloat = Field(8.0, gt=0)
    seed: int = Field(0, ge=0, le=2**31 - 1)
    resolution: int = Field(81, ge=2, le=MAX_RESOLUTION)
    a_min: FiniteFloat | None = None
    a_max: FiniteFloat | None = None
    b_min: FiniteFloat | None = None
    b_max: FiniteFloat | None = None


def surface(req: SurfaceRequest) -> dict:
    """The grid (``loss[j][i]`` at ``a[i]``, ``b[j]``), the parameters' names and the data.

    For ``poisson``: the Poisson loss (without its log y! terms) of the pedestrian counts
    against ``hour_cos``, over (intercept, hour_cos), the names the regression model uses.
    """
    import gradfit as gf
    from gradfit.landscape import LossFunction
    from gradfit.landscape import surface as loss_surface
    from gradfit.models import linear_for

    if req.model == "poisson":
        counts = gf.pedestrian_data(req.seed)
        column = counts.x[:, list(counts.x_names).index(POISSON_INPUT)]
        data = gf.Dataset(column, counts.y, name="pedestrians")
        model, loss, names = gf.linear(1), gf.poisson(), ["intercept", POISSON_INPUT]
    else:
        data = _dataset(gf, req.model, req.seed, req.scale)
        model = gf.gabor(req.scale) if req.model == "gabor" else linear_for(data)
        loss, names = gf.normal(), ["phi0", "phi1"]
    (a0, a1), (b0, b1) = BOXES[req.model]
    box = ((_or(req.a_min, a0), _or(req.a_max, a1)), (_or(req.b_min, b0), _or(req.b_max, b1)))
    grid = loss_surface(LossFunction(model, loss, data), ("phi0", "phi1"), box, resolution=req.resolution)
    return {
        "model": req.model, "scale": req.scale, "labels": names,
        "a": grid.a.tolist(), "b": grid.b.tolist(), "loss": grid.loss.tolist(),
        "data": {"x": data.x.ravel().tolist(), "y": data.y.tolist(),
                 "x_label": POISSON_INPUT if req.model == "poisson" else "x",
                 "y_label": "count" if req.model == "poisson" else "y"},
    }


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

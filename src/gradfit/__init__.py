"""gradfit: fit models to data by gradient descent, and see how and why it works.

The public surface, one concept a module:

- `gradfit.models`: models with named parameters (linear, gabor, shallow, custom)
- `gradfit.losses`: negative log-likelihoods (normal, poisson, bernoulli, ...)
- `gradfit.optimizers`: the lecture's update rules and their variants, optax-compatible
- `gradfit.schedules`: learning-rate schedules
- `gradfit.data`: data sets, built-in generators, CSV / Parquet loading, batching
- `gradfit.fitting`: `gradfit.fit(...)`, which runs the compiled loop of `gradfit.loop`
  chunk by chunk, with checkpoints (`gradfit.checkpoint`), a bounded history
  (`gradfit.history`), clean interrupts, and the kind of point it stopped at
  (`gradfit.points`)
- `gradfit.result`: `FitResult` and its `Inference`, immutable, with JSON in and out
- `gradfit.design`, `gradfit.glm`: design matrices, and regression models for every likelihood
- `gradfit.inference`: standard errors, intervals and likelihood statistics at an optimum
- `gradfit.textreport`: `fit_report(result)`, lmfit's text report

Names are loaded on first use, so ``import gradfit`` (and the CLI's ``--help``) does
not pay for importing JAX until a fit needs it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

_EXPORTS = {
    "data": ("Dataset", "as_dataset", "gabor_data", "linear_data", "load", "pedestrian_data"),
    "errors": ("GradfitError", "Interrupted"),
    "glm": ("GLM", "fit_glm"),
    "inference": ("infer", "predict"),
    "fitting": ("Fitter", "fit"),
    "formula": ("expression",),
    "losses": ("bernoulli", "categorical", "hetero_normal", "make_loss", "normal", "poisson", "von_mises"),
    "models": ("Model", "custom", "gabor", "linear", "make_model", "shallow"),
    "objective": ("Objective",),
    "optimizers": (
        "Optimizer", "adagrad", "adam", "adamw", "gd", "lm", "make_optimizer", "momentum", "nesterov",
        "normalized", "rmsprop", "sgd", "trust_newton",
    ),
    "result": ("FitResult", "History", "Inference", "MultiFit"),
    "schedules": ("constant", "cosine", "exponential", "step_decay", "warmup"),
    "streaming": ("Stream", "stream"),
    "sweeps": ("sweep",),
    "textreport": ("fit_report",),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'gradfit' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted([*globals(), *__all__])


if TYPE_CHECKING:  # for type checkers and IDEs: the same names, imported eagerly
    from .data import Dataset, as_dataset, gabor_data, linear_data, load, pedestrian_data  # noqa: F401
    from .errors import GradfitError, Interrupted  # noqa: F401
    from .fitting import Fitter, fit  # noqa: F401
    from .formula import expression  # noqa: F401
    from .glm import GLM, fit_glm  # noqa: F401
    from .inference import infer, predict  # noqa: F401
    from .losses import bernoulli, categorical, hetero_normal, make_loss, normal, poisson, von_mises  # noqa: F401
    from .models import Model, custom, gabor, linear, make_model, shallow  # noqa: F401
    from .objective import Objective  # noqa: F401
    from .optimizers import (  # noqa: F401
        Optimizer,
        adagrad,
        adam,
        adamw,
        gd,
        lm,
        make_optimizer,
        momentum,
        nesterov,
        normalized,
        rmsprop,
        sgd,
        trust_newton,
    )
    from .result import FitResult, History, Inference, MultiFit  # noqa: F401
    from .schedules import constant, cosine, exponential, step_decay, warmup  # noqa: F401
    from .streaming import Stream, stream  # noqa: F401
    from .sweeps import sweep  # noqa: F401
    from .textreport import fit_report  # noqa: F401

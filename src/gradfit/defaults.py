"""What `gradfit fit` chooses for the options left out: the data, the model, the optimiser.

The command and the web app's ``POST /api/fit`` both ask here, so they cannot drift apart.
"""

from __future__ import annotations

#: Learning rate α when none is given (the start of a schedule).
LR = 0.1
#: A fit stops when the gradient norm is at most this.
TOL = 1e-6
#: Losses that make a linear model a regression model (GLM), fitted as one.
REGRESSION_LOSSES = ("poisson", "bernoulli", "categorical")


def builtin_for(model: str | None, loss: str) -> str:
    """The built-in data set: the pedestrian counts for the Poisson loss, the line's data for
    the linear model, else the Gabor data."""
    if loss == "poisson":
        return "pedestrians"
    return "linear" if model == "linear" else "gabor"


def model_for(model: str | None, loss: str, *, has_file: bool = False, builtin: str | None = None,
              design: bool = False) -> str:
    """``model`` if given, else linear for a file (it takes any number of columns), for a design
    (categorical columns or an offset) and for the built-in linear and pedestrian sets; else gabor."""
    if model is not None:
        return model
    if has_file or design:
        return "linear"
    return "gabor" if (builtin or builtin_for("gabor", loss)) == "gabor" else "linear"


def optimizer_for(model: str, loss: str, *, formula: bool = False, design: bool = False,
                  stream: bool = False) -> str:
    """``lm`` (Levenberg-Marquardt, solved to the optimum) for least squares of a linear model or a
    formula held in memory; ``adam`` for everything else, streamed fits and regression designs included."""
    curve_fit = loss == "normal" and not design and (model == "linear" or formula)
    return "lm" if curve_fit and not stream else "adam"

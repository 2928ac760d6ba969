"""The lecture on fitting, figure by figure, from gradfit's own built-in data.

`build` runs every fit the lecture shows, draws each figure (PNG and SVG) and writes
one self-contained HTML report with the figures, the settings that made them and
tables of final parameters and losses. `compare` and `explore` are the same machinery
for a user's own model and data. The settings live in one frozen `Settings`; `QUICK`
is the small variant, `FULL` the default.

One module per part of the lecture, each drawing through `gradfit.plots`:

- `settings`: `Settings`, `FULL`, `QUICK`, the Gabor box;
- `figure`: what a figure is (`Built`, `Output`) and how each is saved;
- `linear`: 1. linear regression, the fitted lines and gradient descent's paths;
- `gabor`: 2. the Gabor model, its loss surfaces and critical points, paths to a
  global minimum, a local minimum and a saddle, and the basins of attraction;
- `sgd`: 3. SGD against full-batch gradient descent, constant and decaying α;
- `momentum`: 4. momentum and Nesterov against SGD;
- `adam`: 5. normalised gradients against Adam on a steep quadratic;
- `hyper`: 6. final loss against learning rate, batch size and momentum;
- `poisson`: 7. the Poisson exercise on pedestrian counts;
- `equations`: each part's update rules, drawn by matplotlib's mathtext as inline SVG;
- `viewers`: the report's interactive viewers (a step slider along a path, sliders over
  precomputed learning rates and momenta), plotly figures of precomputed fits;
- `build`: the whole lecture, its outline of seven parts, and its HTML report;
- `compare`: `compare` and `explore`, for a user's own model and data.
"""

from .adam import (
    adam_bias_figure,
    adam_moments,
    normalized_example_figure,
    normalized_figure,
    steep_quadratic,
    steep_rates_figure,
)
from .build import build
from .compare import compare, explore
from .figure import Built, Output
from .gabor import (
    GaborProblem,
    basin_maps,
    basins_figure,
    gabor_minima_figure,
    gabor_model_figure,
    gabor_paths_figure,
    gabor_problem,
    gabor_surface_figure,
)
from .hyper import hyper_figure
from .linear import LinearProblem, linear_figures, linear_problem
from .momentum import momentum_figure
from .poisson import poisson_figure
from .settings import FULL, GABOR_BOX, QUICK, Settings
from .sgd import sgd_figure
from .viewers import lecture_viewers, step_viewer, sweep_viewer

__all__ = [
    "FULL", "GABOR_BOX", "QUICK", "Built", "GaborProblem", "LinearProblem", "Output", "Settings", "basin_maps",
    "basins_figure", "build", "compare", "explore", "gabor_model_figure", "gabor_paths_figure", "gabor_problem",
    "gabor_surface_figure", "hyper_figure", "linear_figures", "linear_problem", "momentum_figure",
    "normalized_figure", "sgd_figure", "steep_quadratic",
    "adam_bias_figure", "adam_moments", "gabor_minima_figure", "normalized_example_figure", "poisson_figure",
    "steep_rates_figure",
    "lecture_viewers", "step_viewer", "sweep_viewer",
]

"""What the lecture's figures depend on: one frozen `Settings`, its `FULL` and `QUICK` values, and
the box of the Gabor figures (the book's notebooks' box). Draws nothing."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

#: The box of the Gabor figures in the book's notebooks: φ0 in [-10, 10], φ1 in [2.5, 22.5].
GABOR_BOX = ((-10.0, 10.0), (2.5, 22.5))


@dataclass(frozen=True)
class Settings:
    """Everything the lecture's figures depend on. `quick` gives the small variant."""

    seed: int = 0
    resolution: int = 200  # grid points per axis of each loss surface
    critical_grid: int = 30  # Newton starts per axis when finding critical points
    # 1. linear regression
    linear_n: int = 20
    linear_start: tuple[float, float] = (-0.4, 2.2)
    linear_lr: float = 0.018
    linear_steps: int = 60
    line_search_steps: int = 20
    # 2-3. the Gabor model: a gradient-descent rate per s, paths, basins
    gabor_n: int = 40
    scales: tuple[float, ...] = (8.0, 32.0)
    gabor_lr: tuple[float, ...] = (0.3, 0.1)  # under 2 / the largest curvature at every minimum
    path_steps: int = 1500
    saddle_offset: float = 0.12  # start this far from the saddle (a fraction of the box), on its way in
    saddle_nudge: float = 1e-7  # arrive this far off it along its unstable direction, so it leaves in the end
    basin_resolution: int = 200
    basin_steps: int = 1000
    # 4-5, 7. SGD, momentum, Nesterov and their hyperparameters, on the linear data
    sgd_lr: float = 0.02
    batch_size: int = 4
    sgd_epochs: int = 60
    decay_factor: float = 0.5
    decay_epochs: int = 20
    beta: float = 0.9
    # 4b-c. SGD on the Gabor loss (s = the first of `scales`): one start in a local minimum's basin,
    # SGD from it under several seeds (the first that escapes is drawn), and its first batches
    sgd_gabor_start: tuple[float, float] = (4.5, 16.0)
    sgd_gabor_lr: float = 1.0  # summed over 5 of 40 points: about α = 0.125 in full-batch terms
    sgd_gabor_batch: int = 5
    sgd_gabor_epochs: int = 40
    sgd_gabor_seeds: int = 8
    sgd_batches_shown: int = 3  # mini-batches drawn beside the full-data surface
    sgd_batches_resolution: int = 120
    # 5b. gradient descent, momentum and Nesterov on the Gabor loss (s = the first of `scales`)
    momentum_gabor_start: tuple[float, float] = (3.0, 12.0)
    momentum_gabor_steps: int = 150
    # 5c. one step of momentum against one of Nesterov, on the line data, after a few momentum steps
    lookahead_lr: float = 0.04
    lookahead_steps: int = 3
    # 6. normalised gradients against Adam
    quad_scales: tuple[float, float] = (1.0, 25.0)
    quad_start: tuple[float, float] = (-2.95, 1.73)
    quad_lr: float = 0.1
    quad_steps: int = 150
    steep_lrs: tuple[float, float] = (0.01, 0.0405)  # gradient descent on it: under 1/b crawls, just over 1/b diverges
    steep_steps: int = 40
    bias_steps: int = 30  # Adam steps whose moments `adam_bias` draws
    # 8. the Poisson exercise
    poisson_n: int = 2000
    poisson_lr: float = 0.05
    poisson_steps: int = 300  # Adam's steps drawn beside Newton's on the loss curve; 0: none
    # 7. hyperparameters: the loss is the batch's mean, so α means the same step at every batch size
    hyper_lr: float = 0.05  # α of the batch-size and β panels
    hyper_lrs: tuple[float, ...] = tuple(float(v) for v in np.geomspace(4e-3, 1.2, 11))
    hyper_batches: tuple[int, ...] = (1, 2, 4, 5, 10, 20)
    hyper_betas: tuple[float, ...] = (0.0, 0.5, 0.7, 0.8, 0.9, 0.95, 0.99)
    hyper_seeds: int = 5
    hyper_epochs: int = 40

    @classmethod
    def quick(cls) -> Settings:
        """Small settings: coarser surfaces, fewer steps and repeats."""
        return QUICK

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


FULL = Settings()
QUICK = Settings(
    resolution=90, critical_grid=20, path_steps=800, basin_resolution=100, basin_steps=400, sgd_epochs=60,
    hyper_lrs=tuple(float(v) for v in np.geomspace(4e-3, 1.2, 6)), hyper_batches=(1, 4, 10, 20),
    hyper_betas=(0.0, 0.5, 0.9, 0.99), hyper_seeds=3, hyper_epochs=30,
    steep_lrs=(0.01, 0.0405), steep_steps=40, bias_steps=30, poisson_n=2000, poisson_lr=0.05,
    poisson_steps=0,
)

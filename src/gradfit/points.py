"""What kind of point a fit stopped at: a minimum, a saddle, a maximum, or flat ground.

A small gradient says only that the point is stationary, or nearly: the lecture's
local minima, saddle points and plateaus all have one. The Hessian H = ∇²L tells
them apart. Its eigenvalues are read in the parameters' own scale, as those of D H D
with D = diag(max(|φ_i|, 1)) (a congruence, so their signs are H's; a parameter of
size 10⁵ no longer looks flat only because L changes little per unit of it):

- ``flat``: every eigenvalue of D H D is at most 10⁻⁸ |L| in size (all of them 0 when
  L = 0): L does not curve nearby, a plateau such as the Gabor model's L = Σy², where
  the model is 0 at every data point;
- ``saddle``: some eigenvalue below -rtol · max|λ| and some above it (rtol 10⁻⁶ in
  float64, 10⁻³ in float32, above the rounding in a computed Hessian);
- ``maximum``: all eigenvalues below -rtol · max|λ|;
- ``minimum``: otherwise (all eigenvalues above -rtol · max|λ|; one near 0 is a
  minimum along a valley floor, as in a model with redundant parameters).

Only models of at most `MAX_SIZE` parameters are classified: beyond, the Hessian's
P² entries and its eigenvalues cost more than the fit may have.
"""

from __future__ import annotations

import numpy as np

MAX_SIZE = 200
FLAT = 1e-8
RTOL = {"float64": 1e-6, "float32": 1e-3}

KINDS = ("minimum", "saddle", "maximum", "flat")

#: How a stop at each kind of point is described.
DESCRIPTION = {
    "minimum": "a minimum (the Hessian is positive semi-definite)",
    "saddle": "a saddle point (the Hessian has a negative eigenvalue): not a minimum",
    "maximum": "a maximum (every eigenvalue of the Hessian is negative): not a minimum",
    "flat": "flat ground, a plateau (the Hessian is about 0): not a minimum",
}


def kind(hessian: np.ndarray, theta: np.ndarray, loss: float, dtype: str = "float64") -> str | None:
    """The kind of stationary point with this Hessian, at parameters θ and loss L (None if H is not finite)."""
    h = np.asarray(hessian, float)
    if not np.all(np.isfinite(h)) or not np.isfinite(loss):
        return None
    d = np.maximum(np.abs(np.asarray(theta, float)), 1.0)
    scaled = d[:, None] * (0.5 * (h + h.T)) * d[None, :]
    lam = np.linalg.eigvalsh(scaled)
    top = float(np.max(np.abs(lam))) if lam.size else 0.0
    if top <= FLAT * abs(float(loss)):
        return "flat"
    cut = RTOL.get(dtype, RTOL["float32"]) * top
    negative = lam < -cut
    if np.all(negative):
        return "maximum"
    if np.any(negative):
        return "saddle"
    return "minimum"


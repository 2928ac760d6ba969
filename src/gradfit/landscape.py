"""Loss landscapes: surfaces, random 2-D slices, critical points, basins of attraction.

Computation only; `gradfit.plots` draws what this module returns.

- `LossFunction`: L[θ] of a model and a loss on one data set, as compiled functions of
  the flat parameter vector θ (parameter order), many points at once, in float64.
- `surface`: L over a plane θ = origin + a·d₁ + b·d₂ on a grid: over two named
  parameters with the others held at a point, or (`random_slice`) along two random
  filter-normalised directions around a point (Li et al., "Visualizing the Loss
  Landscape of Neural Nets", NeurIPS 2018). `Surface.project` puts a trajectory on it.
- `critical_points`: the points in a box where ∇L = 0, found by Newton's method from a
  grid of starts, classified by the eigenvalues of the Hessian.
- `basins`: a grid of starts fitted at once (one vmapped `gradfit.fit`), each labelled
  by the minimum its end point settles in.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from .data import Dataset
from .errors import GradfitError
from .losses import Loss
from .models import Model
from .objective import Objective
from .optimizers import Optimizer

# Points evaluated together in one compiled call, over data of one element: the
# batch shrinks with the data so memory stays near 2^22 numbers whatever the grid.
_POINTS_TIMES_DATA = 1 << 22


# -- L[θ] as a function of the flat vector ------------------------------------------


@dataclass(frozen=True, eq=False)
class LossFunction:
    """L[θ] = Σ_i ℓ(f[x_i, θ], y_i) (or the mean) on one data set, θ flat in parameter order.

    Call it with an array of points (..., P) to get the losses (...); `grad` and
    `hessian` likewise. Everything runs compiled and in float64, under JAX's x64
    setting for the call only.
    """

    model: Model
    loss: Loss
    data: Dataset
    reduction: str = "sum"

    @cached_property
    def objective(self) -> Objective:
        return Objective(self.model, self.loss, self.reduction)

    def scalar(self, theta: jax.Array, x=None, y=None) -> jax.Array:
        """L at one flat vector, as a traceable JAX function (call under x64).

        Without ``x`` and ``y`` the data enter the trace as constants, which suits the
        small data of a two-parameter landscape.
        """
        if x is None:
            x, y = self.data.x, self.data.y
        return self.objective.value(theta, x, y)

    @property
    def _batched(self) -> dict[str, Callable]:
        batch = max(1, _POINTS_TIMES_DATA // max(1, self.data.x.size))
        return _compiled(self.objective, batch)

    def _call(self, kind: str, thetas) -> np.ndarray:
        thetas = np.asarray(thetas, dtype=float)
        if thetas.shape[-1] != self.model.size:
            raise GradfitError(
                f"points for model {self.model.name!r} need {self.model.size} values each "
                f"({', '.join(self.model.flat_names[:6])}{' ...' if self.model.size > 6 else ''}), "
                f"not {thetas.shape[-1]}"
            )
        lead = thetas.shape[:-1]
        flat = thetas.reshape(-1, self.model.size)
        # Pad the number of points to a power of two: each new count would compile anew.
        count = len(flat)
        if count == 0:
            size = self.model.size
            return np.zeros(lead + {"value": (), "grad": (size,), "hessian": (size, size)}[kind])
        padded = np.concatenate([flat, np.repeat(flat[-1:], (1 << max(count - 1, 0).bit_length()) - count, axis=0)])
        with jax.enable_x64(True):
            x, y = jnp.asarray(self.data.x), jnp.asarray(self.data.y)
            out = np.asarray(jax.device_get(self._batched[kind](jnp.asarray(padded), x, y)))[:count]
        return out.reshape(lead + out.shape[1:])

    def __call__(self, thetas) -> np.ndarray:
        return self._call("value", thetas)

    def grad(self, thetas) -> np.ndarray:
        return self._call("grad", thetas)

    def hessian(self, thetas) -> np.ndarray:
        return self._call("hessian", thetas)


@lru_cache(maxsize=64)
def _compiled(objective: Objective, batch: int) -> dict[str, Callable]:
    """L, ∇L and the Hessian over many points, compiled once per objective (data as arguments)."""

    def over_points(fn):
        return jax.jit(lambda thetas, x, y: lax.map(lambda t: fn(t, x, y), thetas, batch_size=batch))

    return {
        "value": over_points(objective.value),
        "grad": over_points(jax.grad(objective.value)),
        "hessian": over_points(jax.hessian(objective.value)),
    }


# -- surfaces and slices ------------------------------------------------------------


@dataclass(frozen=True)
class Surface:
    """L on a grid over the plane θ(a, b) = origin + a·d₁ + b·d₂.

    ``loss[j, i]`` is L at (a[i], b[j]), the order matplotlib's contour takes. Over two
    named parameters, d₁ and d₂ are their unit vectors and origin is the held point
    with those two entries set to 0, so a and b are the parameters' own values.
    """

    a: np.ndarray
    b: np.ndarray
    loss: np.ndarray
    origin: np.ndarray
    directions: np.ndarray  # (2, P)
    labels: tuple[str, str]
    kind: str  # "parameters" or "random"
    settings: dict[str, Any] = field(default_factory=dict)

    def theta(self, a, b) -> np.ndarray:
        """The flat parameter vectors at plane coordinates (a, b), shape (..., P)."""
        a, b = np.asarray(a, float), np.asarray(b, float)
        return self.origin + a[..., None] * self.directions[0] + b[..., None] * self.directions[1]

    def project(self, thetas) -> np.ndarray:
        """Plane coordinates (K, 2) of points (K, P): least squares onto d₁, d₂.

        Exact for points on the plane; for a trajectory that leaves it (a random slice
        of a larger model), the closest point of the plane in the Euclidean norm.
        """
        thetas = np.atleast_2d(np.asarray(thetas, float))
        coords, *_ = np.linalg.lstsq(self.directions.T, (thetas - self.origin).T, rcond=None)
        return coords.T

    @property
    def box(self) -> tuple[tuple[float, float], tuple[float, float]]:
        return (float(self.a[0]), float(self.a[-1])), (float(self.b[0]), float(self.b[-1]))

    def restricted(self, fn: LossFunction) -> Callable[[jax.Array], jax.Array]:
        """L on this plane as a traceable function of (a, b), for `critical_points`."""
        origin, directions = jnp.asarray(self.origin), jnp.asarray(self.directions)
        return lambda c: fn.scalar(origin + c @ directions)


def _resolution(resolution: int | Sequence[int]) -> tuple[int, int]:
    n1, n2 = (resolution, resolution) if np.ndim(resolution) == 0 else tuple(resolution)
    if int(n1) != n1 or int(n2) != n2 or n1 < 2 or n2 < 2:
        raise GradfitError(f"a surface needs at least 2 × 2 grid points, not {resolution}")
    return int(n1), int(n2)


def _grid(box, resolution) -> tuple[np.ndarray, np.ndarray]:
    (lo1, hi1), (lo2, hi2) = box
    if not (hi1 > lo1 and hi2 > lo2):
        raise GradfitError(f"each range of a box needs low < high, not {box}")
    n1, n2 = _resolution(resolution)
    return np.linspace(lo1, hi1, n1), np.linspace(lo2, hi2, n2)


def _plane_surface(fn, a, b, origin, directions, labels, kind, settings) -> Surface:
    plane = Surface(a, b, np.empty(0), origin, directions, labels, kind, settings)
    aa, bb = np.meshgrid(a, b)
    loss = fn(plane.theta(aa, bb))
    return Surface(a, b, loss, origin, directions, labels, kind, settings)


def param_index(model: Model, name: str) -> int:
    """Where parameter ``name`` sits in the model's flat vector; an unknown name is an error listing the names."""
    try:
        return model.flat_names.index(name)
    except ValueError:
        raise GradfitError(
            f"model {model.name!r} has no parameter {name!r}; its parameters are "
            f"{', '.join(model.flat_names[:12])}{' ...' if model.size > 12 else ''}"
        ) from None


def surface(
    fn: LossFunction,
    params: tuple[str, str] = ("phi0", "phi1"),
    box: tuple[tuple[float, float], tuple[float, float]] = ((-1.0, 1.0), (-1.0, 1.0)),
    *,
    at=None,
    resolution: int | Sequence[int] = 101,
) -> Surface:
    """L over two named parameters on a grid, the other parameters held at ``at``.

    ``params`` are two flat names (``phi0``, or ``omega0[1,0]`` for an array entry);
    ``box`` their ranges ((low, high), (low, high)); ``at`` a flat vector or dict for
    the others (default: the model's own start).
    """
    model = fn.model
    i, j = (param_index(model, name) for name in params)
    if i == j:
        raise GradfitError(f"a surface needs two different parameters, not {params[0]!r} twice")
    held = model.default_init() if at is None else _flat(model, at)
    origin = held.copy()
    origin[[i, j]] = 0.0
    directions = np.zeros((2, model.size))
    directions[0, i] = directions[1, j] = 1.0
    a, b = _grid(box, resolution)
    settings = {"held at": {n: float(v) for k, (n, v) in enumerate(zip(model.flat_names, held, strict=True))
                            if k not in (i, j)}}
    return _plane_surface(fn, a, b, origin, directions, tuple(params), "parameters", settings)


def _flat(model: Model, point) -> np.ndarray:
    if isinstance(point, dict):
        return model.vector(point)
    point = np.asarray(point, dtype=float).ravel()
    if point.shape != (model.size,):
        raise GradfitError(f"a point of model {model.name!r} needs {model.size} values, not {point.size}")
    return point


def filter_normalized_directions(model: Model, center, seed: int = 0, count: int = 2) -> np.ndarray:
    """Random directions (count, P) scaled filter by filter to the point's own size.

    Li et al. (2018): draw d ~ N(0, I), then scale each filter of d to the norm of the
    same filter of θ, d_f ← d_f ‖θ_f‖ / ‖d_f‖, so that a step of 1 along d changes
    every unit in proportion to its own weights. A filter here is a row of a matrix
    parameter (one unit's incoming weights); a vector parameter (a layer's biases) is
    one filter, and so are all scalar parameters together (Li et al.'s code instead
    zeroes or copies biases, which would leave a model of scalars with no slice). A
    filter whose weights are all 0 gets no component; if that leaves the whole
    direction 0 (θ = 0), the direction is the raw draw scaled to unit norm.
    """
    named = model.named(_flat(model, center))
    rng = np.random.default_rng(seed)
    scalars = [k for k, (_, shape) in enumerate(model.shapes) if shape == ()]
    out = np.zeros((count, model.size))
    for c in range(count):
        parts = []
        for name, shape in model.shapes:
            w, d = np.asarray(named[name], float), rng.standard_normal(shape)
            if d.ndim >= 2:
                axes = tuple(range(1, d.ndim))
                wn = np.sqrt(np.sum(w * w, axis=axes, keepdims=True))
                dn = np.sqrt(np.sum(d * d, axis=axes, keepdims=True))
                d = d * wn / dn
            elif d.ndim == 1:
                d = d * np.linalg.norm(w) / np.linalg.norm(d)
            parts.append(np.ravel(d))
        vec = np.concatenate(parts)
        if scalars:
            idx = [sum(int(np.prod(s)) for _, s in model.shapes[:k]) for k in scalars]
            w = np.array([float(named[model.shapes[k][0]]) for k in scalars])
            vec[idx] = vec[idx] * np.linalg.norm(w) / np.linalg.norm(vec[idx])
        if not np.any(vec):
            vec = rng.standard_normal(model.size)
            vec /= np.linalg.norm(vec)
        out[c] = vec
    return out


def random_slice(
    fn: LossFunction,
    center,
    *,
    seed: int = 0,
    span: float = 1.0,
    resolution: int | Sequence[int] = 101,
) -> Surface:
    """L on the plane through ``center`` along two random filter-normalised directions.

    a and b run over [-span, span]; (0, 0) is the centre (Li et al. plot [-1, 1]).
    """
    center = _flat(fn.model, center)
    if not span > 0:
        raise GradfitError(f"the span of a slice must be positive, not {span}")
    directions = filter_normalized_directions(fn.model, center, seed)
    a, b = _grid(((-span, span), (-span, span)), resolution)
    settings = {"seed": seed, "span": span, "directions": "random, filter-normalised (Li et al. 2018)"}
    return _plane_surface(fn, a, b, center, directions, ("direction 1", "direction 2"), "random", settings)


# -- critical points ----------------------------------------------------------------

KINDS = ("minimum", "saddle", "maximum", "degenerate")


@dataclass(frozen=True)
class CriticalPoint:
    """A point where the gradient vanishes, and what the Hessian's eigenvalues make it.

    ``kind`` is ``minimum`` (all eigenvalues > 0), ``maximum`` (all < 0), ``saddle``
    (both signs) or ``degenerate`` (an eigenvalue too close to 0 to tell).
    """

    theta: np.ndarray
    value: float
    grad_norm: float
    eigenvalues: np.ndarray
    kind: str


def classify(eigenvalues, rtol: float = 1e-6, scale: float = 0.0) -> str:
    """The kind of critical point a Hessian with these eigenvalues makes.

    An eigenvalue within ``rtol`` of the largest in size, or of ``scale`` (the
    function's typical curvature) if that is larger, counts as 0: the second-order
    test cannot then tell, and the point is ``degenerate``.
    """
    lam = np.asarray(eigenvalues, float)
    size = max(float(np.max(np.abs(lam))) if lam.size else 0.0, float(scale))
    if size == 0.0 or np.any(np.abs(lam) <= rtol * size):
        return "degenerate"
    if np.all(lam > 0):
        return "minimum"
    if np.all(lam < 0):
        return "maximum"
    return "saddle"


def critical_points(
    f: Callable[[jax.Array], jax.Array],
    box: Sequence[tuple[float, float]],
    *,
    grid: int = 30,
    iterations: int = 60,
    gtol: float = 1e-7,
    merge: float = 1e-4,
    rtol: float = 1e-6,
) -> tuple[CriticalPoint, ...]:
    """Every point of ``box`` where ∇f = 0 that Newton's method finds from a grid of starts.

    ``f`` is a traceable JAX function of a vector (P,); ``box`` one (low, high) per
    coordinate. From ``grid``^P starts, Newton's step θ ← θ - H⁻¹∇f (cut to a tenth of
    the box per step) runs ``iterations`` times; it converges to minima, saddles and
    maxima alike. A point is kept where ‖∇f‖, measured in units of the box, is at most
    ``gtol`` (1 + |f|); points closer than ``merge`` of the box are one. Eigenvalues
    below ``rtol`` of the typical curvature (the median Hessian norm over the starts)
    make a point ``degenerate``. Sorted by kind (minima first) and then by value.
    """
    box = np.asarray(box, dtype=float)
    if box.ndim != 2 or box.shape[1] != 2 or np.any(box[:, 1] <= box[:, 0]):
        raise GradfitError(f"the box needs one (low, high) pair per coordinate, low < high; got {box.tolist()}")
    size = box.shape[0]
    if grid ** size > 200_000:
        raise GradfitError(f"{grid}^{size} starts are too many; use a smaller grid")
    span = box[:, 1] - box[:, 0]
    axes = [np.linspace(lo, hi, grid) for lo, hi in box]
    starts = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, size)

    with jax.enable_x64(True):
        grad, hess = jax.grad(f), jax.hessian(f)
        limit = jnp.asarray(0.1 * span)

        def newton(theta):
            def step(theta, _):
                delta = jnp.linalg.solve(hess(theta), grad(theta))
                # A step longer than a tenth of the box (a near-singular Hessian) is cut
                # back along its own direction, so a start cannot leap across the box.
                cut = jnp.minimum(1.0, 1.0 / jnp.max(jnp.abs(delta) / limit))
                return theta - jnp.where(jnp.isfinite(cut), cut, 0.0) * delta, None

            start_norm = jnp.linalg.norm(hess(theta), ord=2)
            theta, _ = lax.scan(step, theta, None, length=iterations)
            return theta, f(theta), grad(theta), hess(theta), start_norm

        ends, values, grads, hessians, norms = jax.device_get(jax.jit(jax.vmap(newton))(jnp.asarray(starts)))
    typical = float(np.median(norms[np.isfinite(norms)])) if np.isfinite(norms).any() else 0.0

    scaled_grad = np.linalg.norm(np.asarray(grads) * span, axis=-1)
    inside = np.all((ends >= box[:, 0] - 1e-9 * span) & (ends <= box[:, 1] + 1e-9 * span), axis=-1)
    keep = inside & np.isfinite(values) & (scaled_grad <= gtol * (1.0 + np.abs(values)))
    points: list[CriticalPoint] = []
    for k in np.argsort(np.where(keep, scaled_grad, np.inf))[: int(keep.sum())]:
        theta = np.asarray(ends[k], float)
        if any(np.max(np.abs(theta - p.theta) / span) <= merge for p in points):
            continue
        lam = np.linalg.eigvalsh(0.5 * (hessians[k] + hessians[k].T))
        kind = classify(lam, rtol, typical)
        points.append(CriticalPoint(theta, float(values[k]), float(np.linalg.norm(grads[k])), lam, kind))
    return tuple(sorted(points, key=lambda p: (KINDS.index(p.kind), p.value)))


def approach(fn: LossFunction, end, lr: float, distance: float, *, max_steps: int = 5000,
             min_move: float | None = None, iterations: int = 8) -> tuple[np.ndarray, int]:
    """A start from which gradient descent at rate ``lr`` arrives at ``end``, and how many steps it takes.

    Runs gradient descent backwards from ``end``: each earlier point x solves
    x - α∇L[x] = x_next (by Newton's method on that equation, with Jacobian I - αH),
    until x is ``distance`` (Euclidean) from ``end``, a backward step beyond a tenth of
    that distance moves less than ``min_move`` (default distance / 1000: the path has
    climbed to where descent crawls, near a maximum), or ``max_steps`` have run. Backwards is stable where
    forwards is not: from a point just off a saddle along its stable direction this
    traces the path that gradient descent takes into the saddle, which a straight
    line along the eigenvector only approximates.
    """
    end = _flat(fn.model, end)
    min_move = distance / 1000 if min_move is None else min_move
    run = _backward(fn.objective, float(lr), int(iterations))
    with jax.enable_x64(True):
        x, previous, steps, _ = jax.device_get(run(jnp.asarray(end), jnp.asarray(fn.data.x), jnp.asarray(fn.data.y),
                                                   float(distance), float(min_move), int(max_steps)))
    if not np.all(np.isfinite(x)):  # the last backward step failed: keep the one before
        return np.asarray(previous, float), int(steps) - 1
    return np.asarray(x, float), int(steps)


@lru_cache(maxsize=16)
def _backward(objective: Objective, lr: float, iterations: int) -> Callable:
    """Gradient descent backwards, compiled once per objective and rate (see `approach`)."""
    grad, hess = jax.grad(objective.value), jax.hessian(objective.value)

    @jax.jit
    def run(end, x_data, y_data, distance, min_move, max_steps):
        eye = jnp.eye(end.shape[0], dtype=end.dtype)

        def back(x_next):
            def newton(x, _):
                residual = x - lr * grad(x, x_data, y_data) - x_next
                return x - jnp.linalg.solve(eye - lr * hess(x, x_data, y_data), residual), None

            return lax.scan(newton, x_next + lr * grad(x_next, x_data, y_data), None, length=iterations)[0]

        def more(state):
            x, _, k, moved = state
            gone = jnp.linalg.norm(x - end)
            # near the end the steps are small because the path starts slowly: the crawl
            # test applies only once a tenth of the way out
            crawling = (moved < min_move) & (gone > 0.1 * distance)
            return (k < max_steps) & (gone < distance) & ~crawling & jnp.all(jnp.isfinite(x))

        def body(state):
            x, _, k, _ = state
            earlier = back(x)
            return earlier, x, k + 1, jnp.linalg.norm(earlier - x)

        return lax.while_loop(more, body, (end, end, jnp.asarray(0), jnp.asarray(jnp.inf, end.dtype)))

    return run


# -- basins of attraction -------------------------------------------------------------


def _polish(fn: LossFunction, points: np.ndarray, span: np.ndarray, plane: list[int], merge: float,
            iterations: int = 30, gtol: float = 1e-7) -> tuple[np.ndarray, np.ndarray]:
    """Newton's method from each point; whether it lands on a minimum within ``merge`` of the box.

    A minimum: finite, a positive-definite Hessian, a gradient norm (in units of the box)
    at most ``gtol`` (1 + |L|). Returns the polished points and which are minima.
    """
    if not len(points):
        return points, np.zeros(0, bool)
    x = points.copy()
    scale = np.ones(points.shape[1])
    scale[plane] = span
    for _ in range(iterations):
        g, h = fn.grad(x), fn.hessian(x)
        ok = np.all(np.isfinite(g), axis=1) & np.all(np.isfinite(h), axis=(1, 2))
        # the pseudo-inverse keeps a singular Hessian from stopping the others; such a
        # point fails the test below
        x[ok] = x[ok] - (np.linalg.pinv(h[ok]) @ g[ok][..., None])[..., 0]
    g, h, value = fn.grad(x), fn.hessian(x), fn(x)
    finite = np.all(np.isfinite(x), axis=1) & np.isfinite(value)
    curv = np.linalg.eigvalsh(0.5 * (h + np.swapaxes(h, -1, -2)))
    small = np.linalg.norm(g * scale, axis=1) <= gtol * (1.0 + np.abs(value))
    near = np.max(np.abs(x[:, plane] - points[:, plane]) / span, axis=1) <= merge
    return x, finite & np.all(curv > 0, axis=1) & small & near


#: Labels of starts that reach no minimum: still moving at the end, or gone out of the box.
UNSETTLED, LEFT_BOX = -1, -2


@dataclass(frozen=True)
class BasinMap:
    """Where each start of a grid ends: the minimum its fit settles in.

    ``labels[j, i]`` is the index into ``minima`` of the minimum that the start
    (a[i], b[j]) reaches; `UNSETTLED` (-1) where its fit is still moving at the end
    (or diverged), `LEFT_BOX` (-2) where it ends outside the box, heading for a
    minimum elsewhere or none. Minima are sorted by loss: 0 is the lowest in the box.
    """

    a: np.ndarray
    b: np.ndarray
    labels: np.ndarray
    minima: np.ndarray  # (M, P)
    minima_loss: np.ndarray  # (M,)
    ends: np.ndarray  # (n2, n1, P)
    end_loss: np.ndarray  # (n2, n1)
    end_grad_norm: np.ndarray  # (n2, n1), NaN where the end is outside the box
    names: tuple[str, str]
    origin: np.ndarray
    directions: np.ndarray
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def shares(self) -> np.ndarray:
        """The fraction of all starts that reach each minimum (M,)."""
        return np.array([np.mean(self.labels == m) for m in range(len(self.minima))])

    @property
    def unsettled(self) -> float:
        """The fraction of starts still moving at the end, inside the box."""
        return float(np.mean(self.labels == UNSETTLED))

    @property
    def left_box(self) -> float:
        """The fraction of starts that end outside the box."""
        return float(np.mean(self.labels == LEFT_BOX))

    def start(self, i: int, j: int) -> np.ndarray:
        """The flat start vector of grid cell (a[i], b[j])."""
        return self.origin + self.a[i] * self.directions[0] + self.b[j] * self.directions[1]


def basins(
    model: Model,
    loss: Loss,
    data: Dataset,
    optimizer: Optimizer,
    box: tuple[tuple[float, float], tuple[float, float]],
    *,
    params: tuple[str, str] = ("phi0", "phi1"),
    at=None,
    resolution: int | Sequence[int] = 200,
    steps: int = 200,
    settle: float = 0.005,
    merge: float = 0.01,
    minima=None,
    reduction: str = "sum",
    dtype: str | None = None,
) -> BasinMap:
    """Fit every start of a grid over two parameters at once; label each by its minimum.

    The starts are the grid of ``box`` over ``params`` (the others at ``at``), all run
    in one vmapped `gradfit.fit` for ``steps`` steps, keeping only each fit's first and
    last rows of history. A start has settled in a minimum when it ends inside the box
    where the Hessian is positive definite and the Newton step -H⁻¹∇L to the minimum
    is at most ``settle`` of the box in each coordinate: a small gradient alone does not
    tell a minimum from a long flat valley. Settled ends within ``merge`` (a fraction
    of the box) of each other reach the same minimum, which is found from the ends
    themselves (Newton's method from the lowest-loss end of each group, which must
    land on a minimum within ``merge``, or the group reached none) unless ``minima``
    (M, P) are given, in which case each settled end goes to the nearest one within
    ``merge``.
    """
    from .fitting import fit

    i, j = (param_index(model, name) for name in params)
    held = model.default_init() if at is None else _flat(model, at)
    origin = held.copy()
    origin[[i, j]] = 0.0
    directions = np.zeros((2, model.size))
    directions[0, i] = directions[1, j] = 1.0
    a, b = _grid(box, resolution)
    aa, bb = np.meshgrid(a, b)
    starts = origin + aa.reshape(-1, 1) * directions[0] + bb.reshape(-1, 1) * directions[1]
    if int(steps) != steps or steps < 1:
        raise GradfitError(f"a basin map needs at least one step per start, not {steps}")

    fits = fit(model, loss, data, optimizer, init=starts, steps=int(steps), tol=0.0,
               history_every=int(steps), reduction=reduction, dtype=dtype)
    # The multi-start result's arrays only: building 40,000 FitResults would cost more
    # than the fits. A diverged start ends at its last finite point, which the Newton
    # test below does not mistake for a minimum.
    ends, end_loss = np.asarray(fits.params, float), np.asarray(fits.losses, float)
    finite = np.all(np.isfinite(ends), axis=1) & np.isfinite(end_loss)
    gnorm = np.full(len(starts), np.nan)

    lows, span = np.array([box[0][0], box[1][0]]), np.array([box[0][1] - box[0][0], box[1][1] - box[1][0]])
    plane = ends[:, [i, j]]
    inside = np.all((plane >= lows) & (plane <= lows + span), axis=1)
    fn = LossFunction(model, loss, data, reduction)
    at_minimum = np.zeros(len(starts), bool)
    newton = np.zeros_like(ends)
    check = np.flatnonzero(inside & finite)
    if len(check):
        hess, grad = fn.hessian(ends[check]), fn.grad(ends[check])
        gnorm[check] = np.linalg.norm(grad, axis=1)
        curv = np.linalg.eigvalsh(0.5 * (hess + np.swapaxes(hess, -1, -2)))
        posdef = np.all(curv > 0, axis=1)
        step = np.zeros_like(grad)
        step[posdef] = np.linalg.solve(hess[posdef], grad[posdef][..., None])[..., 0]
        newton[check] = ends[check] - step
        at_minimum[check] = posdef & (np.max(np.abs(step[:, [i, j]]) / span, axis=1) <= settle)
    labels = np.where(inside | ~finite, UNSETTLED, LEFT_BOX)
    if minima is None:
        centres = []
        free = at_minimum.copy()
        while free.any():
            # the lowest free end starts a group of all free ends near it
            k = np.flatnonzero(free)[np.argmin(end_loss[free])]
            near = free & (np.max(np.abs(plane - plane[k]) / span, axis=1) <= merge)
            labels[near] = len(centres)
            centres.append(newton[k])
            free &= ~near
        # Each group's minimum, polished by Newton's method; a group whose end points only
        # looked settled (a flat stretch where the quadratic model misleads) reached none.
        polished, real = _polish(fn, np.array(centres).reshape(-1, model.size), span, [i, j], merge)
        renumber = np.cumsum(real) - 1
        labels = np.where(labels >= 0, np.where(real[np.maximum(labels, 0)], renumber[np.maximum(labels, 0)],
                                                UNSETTLED), labels)
        minima_arr = polished[real]
    else:
        minima_arr = np.atleast_2d(np.asarray(minima, float))
    minima_loss = fn(minima_arr) if len(minima_arr) else np.zeros(0)
    order = np.argsort(minima_loss, kind="stable")
    minima_arr, minima_loss = minima_arr[order], minima_loss[order]
    if minima is None:
        rank = np.argsort(order)
        labels = np.where(labels >= 0, rank[np.maximum(labels, 0)], labels)
    elif len(minima_arr):
        distance = np.max(np.abs(plane[:, None, :] - minima_arr[None, :, [i, j]]) / span, axis=-1)
        nearest = np.argmin(distance, axis=1)
        reached = at_minimum & (distance[np.arange(len(starts)), nearest] <= merge)
        labels[reached] = nearest[reached]

    shape = (len(b), len(a))
    settings = {"optimizer": optimizer.describe(), "steps": int(steps), "grid": f"{len(a)} × {len(b)}",
                "starts": len(starts), "settle": settle, "merge": merge, "box": box}
    return BasinMap(a, b, labels.reshape(shape), minima_arr, minima_loss, ends.reshape(*shape, model.size),
                    end_loss.reshape(shape), gnorm.reshape(shape), tuple(params), origin, directions, settings)

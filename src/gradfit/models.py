"""Models with named parameters: f[x, φ] as a pure function of the inputs and a dict.

A `Model` pairs a function ``f(x, params, **settings)`` with the names and shapes of
its parameters, in a fixed order. That order is the parameter order everywhere in
gradfit: in ``--init``, in the JSON, in the history, and in the flat vector the fit
loop updates (JAX sorts dict keys when it flattens a pytree, so the order lives here).
"""

from __future__ import annotations

import os
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from math import prod
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .errors import GradfitError, unknown_name

Params = dict[str, jax.Array]


@dataclass(frozen=True)
class Model:
    """A model f[x, φ] with named parameters of fixed shapes.

    ``fn(x, params, **settings)`` returns one output per example, shape (N,), or
    ``n_outputs`` per example, shape (N, n_outputs). Two models are equal when their
    function, parameters and settings are, so compiled fits are reused across calls.
    """

    name: str
    fn: Callable[..., jax.Array]
    shapes: tuple[tuple[str, tuple[int, ...]], ...]
    settings: tuple[tuple[str, Any], ...] = ()
    n_outputs: int = 1
    init_fn: Callable[[int, "Model"], np.ndarray] | None = None

    def __call__(self, x: jax.Array, params: Mapping[str, jax.Array]) -> jax.Array:
        return self.fn(x, params, **dict(self.settings))

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.shapes)

    @property
    def size(self) -> int:
        """How many scalars the parameters hold together."""
        return sum(prod(shape) for _, shape in self.shapes)

    @property
    def flat_names(self) -> tuple[str, ...]:
        """One name per scalar, in parameter order: ``w`` or ``w[i,j]`` for arrays."""
        names = []
        for name, shape in self.shapes:
            if shape == ():
                names.append(name)
            else:
                names.extend(f"{name}[{','.join(map(str, i))}]" for i in np.ndindex(*shape))
        return tuple(names)

    def _check_names(self, params: Mapping[str, Any]) -> None:
        missing = [n for n in self.param_names if n not in params]
        extra = [n for n in params if n not in self.param_names]
        if missing or extra:
            raise GradfitError(
                f"model {self.name!r} has parameters {', '.join(self.param_names)}; "
                + (f"missing: {', '.join(missing)}" if missing else "")
                + ("; " if missing and extra else "")
                + (f"unknown: {', '.join(extra)}" if extra else "")
            )

    def _checked(self, params: Mapping[str, Any], asarray) -> list:
        self._check_names(params)
        parts = []
        for name, shape in self.shapes:
            try:
                value = asarray(params[name])
            except _NotNumbers as err:
                raise GradfitError(
                    f"parameter {name!r} of model {self.name!r} is {err}; its value must be numbers"
                ) from None
            if value.shape != shape:
                raise GradfitError(
                    f"parameter {name!r} of model {self.name!r} has shape {value.shape}; "
                    f"it needs shape {shape}"
                )
            parts.append(value.reshape(-1))
        return parts

    def ravel(self, params: Mapping[str, Any]) -> jax.Array:
        """The parameters as one flat vector, in parameter order (JAX, traceable)."""
        return jnp.concatenate(self._checked(params, jnp.asarray))

    def vector(self, params: Mapping[str, Any]) -> np.ndarray:
        """`ravel` in numpy for concrete values: a float64 vector in parameter order."""
        return np.concatenate(self._checked(params, _numbers))

    def named(self, flat: np.ndarray) -> dict[str, np.ndarray]:
        """`unravel` in numpy: name -> array of the parameter's shape."""
        flat = np.asarray(flat)
        params, start = {}, 0
        for name, shape in self.shapes:
            stop = start + prod(shape)
            params[name] = flat[start:stop].reshape(shape)
            start = stop
        return params

    def unravel(self, flat: jax.Array) -> Params:
        """The dict of named arrays held in a flat vector (the inverse of `ravel`)."""
        params, start = {}, 0
        for name, shape in self.shapes:
            stop = start + prod(shape)
            params[name] = jnp.reshape(flat[start:stop], shape)
            start = stop
        return params

    def default_init(self, seed: int = 0) -> np.ndarray:
        """A flat starting vector: the model's own choice, or zeros."""
        if self.init_fn is not None:
            return np.asarray(self.init_fn(seed, self), dtype=float)
        return np.zeros(self.size)

    def describe(self) -> str:
        # a linear model's coefficient names are its parameters' names already
        settings = ", ".join(f"{k}={v}" for k, v in self.settings if v is not None and k != "names")
        return f"{self.name}({settings})" if settings else self.name


class _NotNumbers(Exception):
    """A parameter value that is text or otherwise not numbers; the message says what it is."""


def _numbers(value: Any) -> np.ndarray:
    """A parameter value as floats; text (even "1") is refused rather than parsed."""
    try:
        array = np.asarray(value)
    except ValueError:  # ragged nested lists
        array = np.asarray(value, dtype=object)
    if array.dtype.kind not in "biuf":
        shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
        text = array.dtype.kind in "US" or any(isinstance(v, (str, bytes)) for v in array.ravel())
        raise _NotNumbers(f"the text {shown}" if text else shown)
    return array.astype(float)


# -- probing a model ---------------------------------------------------------------------


@lru_cache(maxsize=256)
def output_shape(model: Model, x_shape: tuple[int, ...]) -> jax.ShapeDtypeStruct:
    """The shape of the model's output for inputs of shape ``x_shape``, traced once per model and shape.

    The model runs abstractly (``jax.eval_shape``) at zero parameters on float32 inputs,
    so nothing is computed. A model that cannot be traced raises a `GradfitError` with
    the cause: numpy or Python numbers on traced values, a parameter it was not given,
    or another exception (its type and first line, and the input shape).
    """
    x_shape = tuple(x_shape)
    probe = jax.ShapeDtypeStruct(x_shape, jnp.float32)

    def run(x):
        return model(x, model.unravel(jnp.zeros(model.size)))

    try:
        return jax.eval_shape(run, probe)
    except GradfitError:
        raise
    except jax.errors.TracerArrayConversionError as err:
        raise GradfitError(
            f"model {model.name!r} calls numpy (e.g. np.exp) on traced values{_user_line(err)}; "
            "write it with jax.numpy (jnp.exp)"
        ) from None
    except (jax.errors.ConcretizationTypeError, jax.errors.TracerBoolConversionError,
            jax.errors.TracerIntegerConversionError) as err:
        raise GradfitError(
            f"model {model.name!r} needs a concrete number where it has a traced value{_user_line(err)}: "
            "Python's math, float(), int() or an `if` on its inputs or parameters; write it with jax.numpy "
            "(jnp.exp, jnp.where)"
        ) from None
    except KeyError as err:  # most likely params["k"] for a name the model was not given
        key = err.args[0] if err.args else None
        if isinstance(key, str) and key not in model.param_names:
            raise GradfitError(_unknown_parameter(model, key) + _user_line(err)) from None
        raise _other_error(model, x_shape, err) from None
    except Exception as err:  # the model cannot take these inputs: say why, not JAX's trace
        raise _other_error(model, x_shape, err) from None


def _unknown_parameter(model: Model, key: str) -> str:
    return (f"model {model.name!r} reads parameter {key!r}, which is not among its parameters "
            f"({', '.join(model.param_names)}): add it to the starting values")


def _other_error(model: Model, x_shape: tuple[int, ...], err: Exception) -> GradfitError:
    cols = 1 if len(x_shape) < 2 else x_shape[1]
    first = str(err).splitlines()[0] if str(err) else ""
    return GradfitError(
        f"model {model.describe()} cannot take inputs with {cols} column(s) (x of shape {x_shape}){_user_line(err)}: "
        f"{type(err).__name__}: {first}"
    )


def _user_line(err: Exception) -> str:
    """' (in decay.py, line 12: return a * np.exp(-k * x))': the last frame outside JAX, numpy and gradfit."""
    skip = (os.path.dirname(jax.__file__), os.path.dirname(np.__file__), os.path.dirname(__file__))
    frames = [f for f in traceback.extract_tb(err.__traceback__) if not f.filename.startswith(skip)]
    if not frames:
        return ""
    frame = frames[-1]
    code = f": {frame.line}" if frame.line else ""
    return f" (in {os.path.basename(frame.filename)}, line {frame.lineno}{code})"


# -- linear regression ------------------------------------------------------------


def _linear_fn(x: jax.Array, params: Mapping[str, jax.Array], n_inputs: int, names: tuple[str, ...] = ()) -> jax.Array:
    x = jnp.reshape(x, (x.shape[0], n_inputs))
    keys = names or tuple(f"phi{i}" for i in range(n_inputs + 1))
    coef = jnp.stack([params[k] for k in keys[1:]])
    return params[keys[0]] + x @ coef


def linear(n_inputs: int = 1, names: Sequence[str] | None = None) -> Model:
    """Linear regression, f = φ0 + Σ_d φd x_d.

    With one input this is the slides' line f = φ0 + φ1 x. With D inputs the intercept
    comes first, then one coefficient per input column, in column order, named
    ``phi0, phi1, ..., phiD``; given the columns' ``names``, they are named as
    statsmodels names them instead: ``Intercept``, then each column's name.
    """
    if n_inputs < 1:
        raise GradfitError(f"a linear model needs at least one input column, not {n_inputs}")
    if names is None:
        shapes = tuple((f"phi{i}", ()) for i in range(n_inputs + 1))
        return Model("linear", _linear_fn, shapes, (("n_inputs", n_inputs),))
    names = tuple(str(n) for n in names)
    if len(names) != n_inputs:
        raise GradfitError(f"a linear model of {n_inputs} input(s) needs {n_inputs} column name(s), not {len(names)}")
    keys = ("Intercept", *names)
    if len(set(keys)) != len(keys):
        raise GradfitError(f"the columns {', '.join(names)} repeat a name or include 'Intercept'; a linear model "
                           "names its coefficients after its columns, so rename them")
    return Model("linear", _linear_fn, tuple((k, ()) for k in keys), (("n_inputs", n_inputs), ("names", keys)))


def linear_for(data) -> Model:
    """The linear model of a data set: coefficients named after its columns when they have
    names of their own (a table or file), else ``phi0, phi1, ...``."""
    names = tuple(data.x_names)
    default = ("x",) if len(names) == 1 else tuple(f"x{j}" for j in range(len(names)))
    return linear(data.n_inputs, None if names == default else names)


# -- the Gabor model ----------------------------------------------------------------


def _gabor_fn(x: jax.Array, params: Mapping[str, jax.Array], s: float) -> jax.Array:
    x = jnp.reshape(x, (x.shape[0],))
    z = params["phi0"] + 0.06 * params["phi1"] * x
    return jnp.sin(z) * jnp.exp(-(z * z) / s)


def _gabor_init(seed: int, model: Model) -> np.ndarray:
    # A start in the valley of the built-in data's global minimum, so the default fit
    # shows gradient descent succeeding; other starts show the local minima.
    return np.array([1.0, 10.0]) if seed == 0 else np.random.default_rng(seed).uniform([-10, 2.5], [10, 22.5])


def gabor(s: float = 8.0) -> Model:
    """The Gabor model, z = φ0 + 0.06 φ1 x, f = sin(z) · exp(-z² / s).

    ``s`` sets the width of the envelope: the slides print s = 8 (the default); the
    book, its equations file and its notebooks use s = 32. The least-squares loss of
    this model is non-convex in (φ0, φ1).
    """
    if not s > 0:
        raise GradfitError(f"the Gabor scale s must be positive, not {s}")
    return Model("gabor", _gabor_fn, (("phi0", ()), ("phi1", ())), (("s", float(s)),), 1, _gabor_init)


# -- a shallow ReLU network ---------------------------------------------------------


def _shallow_fn(x: jax.Array, params: Mapping[str, jax.Array], n_inputs: int, n_outputs: int) -> jax.Array:
    x = jnp.reshape(x, (x.shape[0], n_inputs))
    hidden = jax.nn.relu(params["beta0"] + x @ params["omega0"].T)
    out = params["beta1"] + hidden @ params["omega1"].T
    return out[:, 0] if n_outputs == 1 else out


def _shallow_init(seed: int, model: Model) -> np.ndarray:
    # He initialisation for the ReLU layer, zero biases (book ch. 7).
    rng = np.random.default_rng(seed)
    parts = []
    for name, shape in model.shapes:
        if name.startswith("omega"):
            fan_in = shape[1]
            parts.append(rng.normal(0.0, np.sqrt(2.0 / fan_in), size=shape).ravel())
        else:
            parts.append(np.zeros(prod(shape)))
    return np.concatenate(parts)


#: The most parameters a model may have: JAX indexes arrays with 32-bit integers.
MAX_PARAMETERS = 2**31 - 1


def shallow(width: int = 3, n_inputs: int = 1, n_outputs: int = 1) -> Model:
    """A shallow network with one hidden ReLU layer, f = β1 + Ω1 · relu(β0 + Ω0 x).

    Parameters (book ch. 3): ``beta0`` (width,), ``omega0`` (width, n_inputs),
    ``beta1`` (n_outputs,), ``omega1`` (n_outputs, width). Default starts use He
    initialisation from the seed.
    """
    for label, value in (("width", width), ("n_inputs", n_inputs), ("n_outputs", n_outputs)):
        if int(value) != value or value < 1:
            raise GradfitError(f"a shallow network needs a positive whole {label}, not {value}")
    width, n_inputs, n_outputs = int(width), int(n_inputs), int(n_outputs)  # 3.0 passes the check above
    size = width * (n_inputs + n_outputs + 1) + n_outputs
    if size > MAX_PARAMETERS:
        raise GradfitError(f"a shallow network of width {width:,} has {size:,} parameters; gradfit fits at most "
                           f"{MAX_PARAMETERS:,}: choose a smaller width")
    shapes = (
        ("beta0", (width,)),
        ("omega0", (width, n_inputs)),
        ("beta1", (n_outputs,)),
        ("omega1", (n_outputs, width)),
    )
    settings = (("n_inputs", n_inputs), ("n_outputs", n_outputs))
    return Model("shallow", _shallow_fn, shapes, settings, n_outputs, _shallow_init)


# -- user functions -----------------------------------------------------------------


def custom(
    fn: Callable[[jax.Array, Mapping[str, jax.Array]], jax.Array],
    params: Mapping[str, Any] | Sequence[str],
    *,
    name: str | None = None,
    n_outputs: int = 1,
) -> Model:
    """Wrap any ``f(x, params)`` written with ``jax.numpy``, ``params`` a dict of arrays.

    ``params`` gives the parameter names in order: a list of names (all scalars) or
    a dict name -> example value, whose shapes fix the parameters' shapes. When a
    dict is given, its values are also the default start.
    """
    label = name or getattr(fn, "__name__", "custom")
    if isinstance(params, Mapping):
        values = {}
        for key, value in params.items():
            try:
                values[key] = _numbers(value)
            except _NotNumbers as err:
                raise GradfitError(
                    f"the start value of parameter {key!r} of model {label!r} is {err}; give a number or an "
                    "array of numbers (its shape is the parameter's)"
                ) from None
            if not np.all(np.isfinite(values[key])):
                raise GradfitError(f"the start value of parameter {key!r} of model {label!r} is not finite")
        shapes = tuple((str(k), v.shape) for k, v in values.items())
        start = np.concatenate([np.ravel(v) for v in values.values()]) if values else np.zeros(0)
        init_fn = (lambda seed, model: start) if len(start) else None
    else:
        shapes = tuple((str(k), ()) for k in params)
        init_fn = None
    if not shapes:
        raise GradfitError("a custom model needs at least one parameter name")

    return Model(label, _CustomFn(fn), shapes, (), n_outputs, init_fn)


@dataclass(frozen=True)
class _CustomFn:
    """A user's function as a model function: equal when the user's function is."""

    fn: Callable[[jax.Array, Mapping[str, jax.Array]], jax.Array]

    def __call__(self, x, params):
        return self.fn(x, params)


MODELS: dict[str, Callable[..., Model]] = {"linear": linear, "gabor": gabor, "shallow": shallow}


def make_model(name: str, **settings: Any) -> Model:
    """A built-in model by name: ``linear``, ``gabor`` or ``shallow``."""
    try:
        factory = MODELS[name]
    except KeyError:
        raise unknown_name("model", name, MODELS) from None
    return factory(**settings)

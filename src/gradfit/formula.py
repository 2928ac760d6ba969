"""Models from a formula: ``gf.expression("a*exp(-k*x) + c")``.

A formula is one expression of arithmetic in Python's spelling. Python's own parser
reads it (`ast`, ``mode="eval"``); it is never run as code. Each node of the tree is
checked against this grammar and turned into a small jax.numpy function, once:

- numbers: ``2``, ``0.5``, ``1e-3``; the constant ``pi`` (Euler's number is ``exp(1)``:
  ``e`` is an ordinary name, since formulas as NIST and others print them end in ``+ e``
  for the error, which must not silently become 2.718...);
- names: letters, digits and ``_``, not starting with ``_``;
- ``+``, ``-``, ``*``, ``/``, ``**`` for powers, unary ``-`` and ``+``, parentheses;
- a target's name before ``=`` is ignored: ``y = a*x + b`` is ``a*x + b``;
- calls of the functions in `FUNCTIONS`, arguments by position (``exp[-b2*x]``, NIST's
  spelling, is read as ``exp(-b2*x)``): exp, log, log10,
  log1p, expm1, sqrt, sin, cos, tan, arcsin (asin), arccos (acos), arctan (atan),
  arctan2 (atan2, two arguments), sinh, cosh, tanh, abs, erf, erfc, sigmoid,
  softplus, min and max (two arguments, elementwise), pow (two arguments).

Everything else is refused with a `GradfitError` that quotes the part and says the fix:
attribute access (write ``exp(x)``, not ``np.exp(x)``), indexing, keyword arguments,
comparisons, ``and``/``or``, ``... if ... else ...``, lambdas, comprehensions, lists,
text, ``^`` (Python's exclusive or: powers are ``**``), ``%``, ``//``, an unknown
function (with the closest known name), a wrong number of arguments. A formula has at
most `MAX_LENGTH` characters and nests at most `MAX_DEPTH` levels, counting a chain
such as ``a + b - c`` or ``a * b / c`` as one level.

Names split into inputs and parameters. The inputs are the names in ``inputs``;
without it, the formula's names that are among ``columns`` (the data's input columns,
in the data's order), else ``x`` alone. ``pi`` is a constant unless it is
inputs, and a function's name must be called. Every other name is a parameter, a
scalar, in the order it first appears, reading left to right: ``a*exp(-k*x) + c`` has
inputs (x,) and parameters (a, k, c). The model takes x of shape (N,) for one input or
(N, D) for D inputs, column j holding ``inputs[j]``, and returns shape (N,), also for a
formula that does not read its inputs.

A formula's parameters start at 1 unless ``init`` gives a value; the CLI's
``--init a=1,k=0.1`` sets them by name. Unlike `gradfit.models.custom`, whose functions
are compared by identity, two models of the same formula, inputs and start are equal,
however the formula was spaced, so they share compiled fits.
"""

from __future__ import annotations

import ast
import difflib
import math
import unicodedata
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from keyword import iskeyword
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import jax.scipy.special
import numpy as np

from .errors import GradfitError
from .models import Model, _NotNumbers, _numbers

#: The functions a formula may call: name -> (the jax.numpy function, its number of arguments).
FUNCTIONS: dict[str, tuple[Callable[..., jax.Array], int]] = {
    "exp": (jnp.exp, 1),
    "log": (jnp.log, 1),
    "log10": (jnp.log10, 1),
    "log1p": (jnp.log1p, 1),
    "expm1": (jnp.expm1, 1),
    "sqrt": (jnp.sqrt, 1),
    "sin": (jnp.sin, 1),
    "cos": (jnp.cos, 1),
    "tan": (jnp.tan, 1),
    "arcsin": (jnp.arcsin, 1),
    "asin": (jnp.arcsin, 1),
    "arccos": (jnp.arccos, 1),
    "acos": (jnp.arccos, 1),
    "arctan": (jnp.arctan, 1),
    "atan": (jnp.arctan, 1),
    "arctan2": (jnp.arctan2, 2),
    "atan2": (jnp.arctan2, 2),
    "sinh": (jnp.sinh, 1),
    "cosh": (jnp.cosh, 1),
    "tanh": (jnp.tanh, 1),
    "abs": (jnp.abs, 1),
    "erf": (jax.scipy.special.erf, 1),
    "erfc": (jax.scipy.special.erfc, 1),
    "sigmoid": (jax.nn.sigmoid, 1),
    "softplus": (jax.nn.softplus, 1),
    "min": (jnp.minimum, 2),
    "max": (jnp.maximum, 2),
    "pow": (jnp.power, 2),
}

#: Names that stand for numbers unless they are inputs.
CONSTANTS: dict[str, float] = {"pi": math.pi}

#: The longest formula read, in characters.
MAX_LENGTH = 2000

#: The deepest nesting read: parentheses, calls and powers inside one another.
MAX_DEPTH = 100

_EXAMPLE = "a*exp(-k*x) + c"

# Python's operator precedence, lowest first: where a part needs parentheses in the text.
_SUM, _PRODUCT, _UNARY, _POWER, _ATOM = range(5)

_CHAINS = {
    ast.Add: (_SUM, "+", jnp.add),
    ast.Sub: (_SUM, "-", jnp.subtract),
    ast.Mult: (_PRODUCT, "*", jnp.multiply),
    ast.Div: (_PRODUCT, "/", jnp.divide),
}

#: Python's other binary operators: their symbol, and what to write instead.
_OTHER_OPERATORS = {
    ast.Mod: ("%", "formulas use + - * / and ** (powers)"),
    ast.FloorDiv: ("//", "use / for division"),
    ast.MatMult: ("@", "write the products out with *"),
    ast.LShift: ("<<", "formulas use + - * / and ** (powers)"),
    ast.RShift: (">>", "formulas use + - * / and ** (powers)"),
    ast.BitOr: ("|", "formulas use + - * / and ** (powers)"),
    ast.BitAnd: ("&", "formulas use + - * / and ** (powers)"),
}

#: Kinds of Python expression a formula cannot hold: what to call them, and what to write instead.
_REFUSED: dict[type, tuple[str, str]] = {
    ast.Subscript: ("indexing", "name each input column instead: gf.expression(text, inputs=[...])"),
    ast.Compare: ("a comparison", "formulas are arithmetic: for a smooth step use sigmoid(...)"),
    ast.BoolOp: ("and/or", "formulas are arithmetic: for a smooth switch use sigmoid(...)"),
    ast.IfExp: ("a conditional", "use min(...), max(...) or sigmoid(...)"),
    ast.Lambda: ("a lambda", "write the formula itself"),
    ast.ListComp: ("a comprehension", "write the formula itself"),
    ast.SetComp: ("a comprehension", "write the formula itself"),
    ast.DictComp: ("a comprehension", "write the formula itself"),
    ast.GeneratorExp: ("a comprehension", "write the formula itself"),
    ast.List: ("a list", "a formula gives one number per example"),
    ast.Tuple: ("a tuple", "a formula gives one number per example"),
    ast.Set: ("a set", "a formula gives one number per example"),
    ast.Dict: ("a dict", "a formula gives one number per example"),
    ast.JoinedStr: ("text", "a formula holds numbers, names and functions"),
    ast.Starred: ("unpacking (*)", "give each argument"),
    ast.NamedExpr: ("assignment (:=)", "write the formula itself"),
    ast.Await: ("await", "write the formula itself"),
    ast.Yield: ("yield", "write the formula itself"),
    ast.YieldFrom: ("yield", "write the formula itself"),
    ast.Slice: ("a slice", "name each input column instead: gf.expression(text, inputs=[...])"),
}


class _Part(NamedTuple):
    """A checked piece of a formula: its value as a function of the names, and its text."""

    evaluate: Callable[[Mapping[str, Any]], Any]
    text: str
    precedence: int
    integer: int | None = None  # the value of a whole-number literal such as 2 or -1, for powers


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


class _Reader:
    """One walk over a parsed formula: checks each node, builds its function and its normal text."""

    def __init__(self, text: str):
        self.text = text
        self.names: dict[str, None] = {}  # the names read as values, in order of first appearance

    def error(self, message: str) -> GradfitError:
        return GradfitError(f"formula {_short(self.text)!r}: {message}")

    def quote(self, node: ast.AST) -> str:
        return repr(_short(ast.get_source_segment(self.text, node) or type(node).__name__, 40))

    def read(self, node: ast.AST, depth: int = 0) -> _Part:
        if depth > MAX_DEPTH:
            raise self.error(f"nests deeper than {MAX_DEPTH} levels; write it with fewer parentheses and calls "
                             "inside one another")
        if isinstance(node, ast.Constant):
            return self.constant(node)
        if isinstance(node, ast.Name):
            return self.name(node)
        if isinstance(node, ast.UnaryOp):
            return self.unary(node, depth)
        if isinstance(node, ast.BinOp):
            if type(node.op) in _CHAINS:
                return self.chain(node, depth)
            if isinstance(node.op, ast.Pow):
                return self.power(node, depth)
            raise self.operator(node)
        if isinstance(node, ast.Call):
            return self.call(node, depth)
        if (isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id in FUNCTIONS
                and not isinstance(node.slice, ast.Slice | ast.Tuple)):
            # NIST's spelling of a call, exp[-b2*x]: read as exp(-b2*x)
            call = ast.copy_location(ast.Call(func=node.value, args=[node.slice], keywords=[]), node)
            return self.call(call, depth)
        if isinstance(node, ast.Attribute):
            raise self.error(f"attribute access ({self.quote(node)}) is not allowed; formulas use plain names and "
                             "functions: write exp(...), not np.exp(...)")
        what, fix = _REFUSED.get(type(node), (type(node).__name__, "write arithmetic such as " + _EXAMPLE))
        raise self.error(f"{what} ({self.quote(node)}) is not allowed; {fix}")

    def constant(self, node: ast.Constant) -> _Part:
        value = node.value
        if isinstance(value, bool) or value is None or value is Ellipsis:
            raise self.error(f"{self.quote(node)} is not a number; a formula holds numbers, names and functions")
        if isinstance(value, (str, bytes)):
            raise self.error(f"text ({self.quote(node)}) is not allowed; a formula holds numbers, names and "
                             "functions")
        if isinstance(value, complex):
            raise self.error(f"complex numbers ({self.quote(node)}) are not allowed; give real numbers")
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
        if not math.isfinite(number):
            raise self.error(f"the number {self.quote(node)} is too large for floating point")
        integer = value if isinstance(value, int) and abs(value) <= 2**31 else None
        return _Part(lambda env: number, repr(value), _ATOM, integer)

    def name(self, node: ast.Name) -> _Part:
        name = node.id
        self.check_name(node)
        if name in FUNCTIONS:
            raise self.error(f"{name} is a function: call it, as {name}(...), or name the parameter otherwise")
        self.names.setdefault(name)
        return _Part(lambda env: env[name], name, _ATOM)

    def check_name(self, node: ast.Name) -> None:
        if node.id.startswith("_"):
            raise self.error(f"names starting with _ ({node.id!r}) are not allowed; rename it")

    def unary(self, node: ast.UnaryOp, depth: int) -> _Part:
        if isinstance(node.op, ast.Not):
            raise self.error(f"not ({self.quote(node)}) is not allowed; formulas are arithmetic")
        if isinstance(node.op, ast.Invert):
            raise self.error(f"~ ({self.quote(node)}) is not allowed; for a minus sign write -")
        operand = self.read(node.operand, depth + 1)
        text = operand.text if operand.precedence >= _UNARY else f"({operand.text})"
        if isinstance(node.op, ast.UAdd):
            return _Part(operand.evaluate, "+" + text, _UNARY, operand.integer)
        inner = operand.evaluate
        integer = None if operand.integer is None else -operand.integer
        return _Part(lambda env: jnp.negative(inner(env)), "-" + text, _UNARY, integer)

    def chain(self, node: ast.BinOp, depth: int) -> _Part:
        """a + b - c (or a * b / c) as one level: a long sum nests no deeper than a short one."""
        level = _CHAINS[type(node.op)][0]
        links = []
        while isinstance(node, ast.BinOp) and type(node.op) in _CHAINS and _CHAINS[type(node.op)][0] == level:
            links.append((node.op, node.right))
            node = node.left
        first = self.read(node, depth + 1)
        text = first.text if first.precedence >= level else f"({first.text})"
        steps = []
        for op, right in reversed(links):  # left to right, as written
            _, symbol, fn = _CHAINS[type(op)]
            part = self.read(right, depth + 1)
            text += f" {symbol} " + (part.text if part.precedence > level else f"({part.text})")
            steps.append((fn, part.evaluate))
        start, steps = first.evaluate, tuple(steps)

        def evaluate(env):
            value = start(env)
            for fn, operand in steps:
                value = fn(value, operand(env))
            return value

        return _Part(evaluate, text, level)

    def operator(self, node: ast.BinOp) -> GradfitError:
        if isinstance(node.op, ast.BitXor):
            left = ast.get_source_segment(self.text, node.left)
            right = ast.get_source_segment(self.text, node.right)
            return self.error(f"^ in {self.quote(node)} is not a power (it is Python's exclusive or); use ** for "
                              f"powers: {_short(f'{left}**{right}', 40)}")
        symbol, fix = _OTHER_OPERATORS.get(type(node.op), (type(node.op).__name__, "formulas use + - * / and **"))
        return self.error(f"{symbol} is not allowed ({self.quote(node)}); {fix}")

    def power(self, node: ast.BinOp, depth: int) -> _Part:
        base = self.read(node.left, depth + 1)
        exponent = self.read(node.right, depth + 1)
        base_text = base.text if base.precedence > _POWER else f"({base.text})"
        exponent_text = exponent.text if exponent.precedence >= _UNARY else f"({exponent.text})"
        return _Part(_power(base, exponent), f"{base_text} ** {exponent_text}", _POWER)

    def call(self, node: ast.Call, depth: int) -> _Part:
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr in FUNCTIONS:
            raise self.error(f"attribute access ({self.quote(func)}) is not allowed; write {func.attr}(...), "
                             f"not {_short(ast.get_source_segment(self.text, func) or func.attr, 40)}(...)")
        if not isinstance(func, ast.Name):
            self.read(func, depth + 1)  # an attribute, a lambda, a subscript...: refused for what it is
            raise self.error(f"calling {self.quote(func)} is not allowed; only functions are called: to multiply, "
                             "write * between the factors")
        name = func.id
        self.check_name(func)
        if name not in FUNCTIONS:
            close = difflib.get_close_matches(name.lower(), FUNCTIONS, n=1)
            hint = f"did you mean {close[0]}?" if close else f"to multiply, write {name}*(...)."
            raise self.error(f"unknown function {name!r} in {self.quote(node)}; {hint} "
                             f"The functions are {', '.join(sorted(FUNCTIONS))}")
        if node.keywords:
            keyword = node.keywords[0]
            raise self.error(f"keyword arguments ({self.quote(keyword)}) are not allowed; give {name}'s arguments "
                             "by position")
        for arg in node.args:
            if isinstance(arg, ast.Starred):
                self.read(arg, depth + 1)
        fn, n_args = FUNCTIONS[name]
        if len(node.args) != n_args:
            wanted = "1 argument" if n_args == 1 else f"{n_args} arguments"
            raise self.error(f"{name} takes {wanted}, not {len(node.args)} ({self.quote(node)})")
        args = [self.read(arg, depth + 1) for arg in node.args]
        text = f"{name}({', '.join(arg.text for arg in args)})"
        if name == "pow":
            return _Part(_power(*args), text, _ATOM)
        if n_args == 1:
            inner = args[0].evaluate
            return _Part(lambda env: fn(inner(env)), text, _ATOM)
        first, second = args[0].evaluate, args[1].evaluate
        return _Part(lambda env: fn(first(env), second(env)), text, _ATOM)


def _power(base: _Part, exponent: _Part) -> Callable[[Mapping[str, Any]], Any]:
    """base ** exponent; a whole-number literal exponent as repeated products, so x**2 has a slope at x < 0."""
    base_of = base.evaluate
    if exponent.integer is not None:
        k = exponent.integer
        return lambda env: jnp.power(base_of(env), k)
    exponent_of = exponent.evaluate
    return lambda env: jnp.power(base_of(env), exponent_of(env))


class _Formula(NamedTuple):
    text: str  # the normal spelling: one space around binary operators, the parentheses needed
    evaluate: Callable[[Mapping[str, Any]], Any]
    names: tuple[str, ...]  # the names read as values, in order of first appearance


def _read(formula: Any) -> _Formula:
    """The checked formula: its function of the names, its normal text and its names."""
    if not isinstance(formula, str):
        raise GradfitError(f"a formula is text such as {_EXAMPLE!r}, not {type(formula).__name__}")
    text = _without_target(formula.strip())
    if not text:
        raise GradfitError(f"the formula is empty; write one such as {_EXAMPLE!r}")
    if len(text) > MAX_LENGTH:
        raise GradfitError(f"the formula is {len(text):,} characters long; gradfit reads formulas of at most "
                           f"{MAX_LENGTH:,}: write a shorter one, or a model in Python with gf.custom")
    try:
        with warnings.catch_warnings():  # Python's warnings about its own source ("1if"), not the user's formula
            warnings.simplefilter("ignore", SyntaxWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            tree = ast.parse(text, mode="eval")
    except SyntaxError as err:
        where = f" at column {err.offset}" if err.offset else ""  # Python gives no column for some errors
        if err.lineno and err.lineno > 1:
            where = f" at line {err.lineno}" + (f", column {err.offset}" if err.offset else "")
        raise GradfitError(f"cannot read the formula {_short(text)!r}: {err.msg}{where}; write Python "
                           f"arithmetic such as {_EXAMPLE!r}") from None
    except ValueError as err:  # text Python cannot hold as source
        raise GradfitError(f"cannot read the formula {_short(text)!r}: {err}") from None
    except (RecursionError, MemoryError):
        raise GradfitError(f"cannot read the formula {_short(text)!r}: it nests too deeply; write it with fewer "
                           "parentheses, signs and calls inside one another") from None
    reader = _Reader(text)
    part = reader.read(tree.body)
    return _Formula(part.text, part.evaluate, tuple(reader.names))


def _without_target(text: str) -> str:
    """``y = a*x + b`` read as ``a*x + b``: the target's name before one ``=`` says nothing about the model."""
    head, eq, rest = text.partition("=")
    if eq and head.strip().isidentifier() and not rest.startswith("=") and "=" not in rest:
        return rest.strip()
    return text


def _name_list(label: str, names: Any) -> tuple[str, ...] | None:
    if names is None:
        return None
    if isinstance(names, str):
        names = [names]
    try:
        names = list(names)
    except TypeError:
        raise GradfitError(f"{label} is a list of names, not {type(names).__name__}") from None
    return tuple(unicodedata.normalize("NFKC", str(name)) for name in names)  # as Python reads names


def _check_inputs(inputs: tuple[str, ...], formula: _Formula, columns: tuple[str, ...] | None) -> None:
    for name in inputs:
        if not name.isidentifier() or iskeyword(name):
            raise GradfitError(f"input {name!r} is not a name a formula can use: give names of letters, digits and _")
        if name.startswith("_"):
            raise GradfitError(f"input {name!r} starts with _, which formulas do not allow; rename it")
        if name in FUNCTIONS:
            raise GradfitError(f"input {name!r} is the name of a function; rename it")
        if columns is not None and name not in columns:
            raise GradfitError(f"input {name!r} is not among the data's columns ({', '.join(columns)})")
        if name not in formula.names:
            raise GradfitError(f"input {name!r} does not appear in the formula {_short(formula.text)!r}; "
                               "name only the inputs it reads")
    twice = sorted({name for name in inputs if inputs.count(name) > 1})
    if twice:
        raise GradfitError(f"inputs name {', '.join(twice)} more than once")


def _split(formula: _Formula, inputs: tuple[str, ...] | None,
           columns: tuple[str, ...] | None) -> tuple[tuple[str, ...], tuple[str, ...]]:
    if inputs is None:
        if columns is not None:
            inputs = tuple(name for name in dict.fromkeys(columns) if name in formula.names)
            if not inputs:
                raise GradfitError(
                    f"none of the data's columns ({_short(', '.join(columns))}) appears in the formula "
                    f"{_short(formula.text)!r}; say which names are inputs: gf.expression(text, inputs=[...]) "
                    "(inputs=[] for a formula without inputs)"
                )
        elif "x" in formula.names:
            inputs = ("x",)
        else:
            raise GradfitError(f"the formula {_short(formula.text)!r} has no x; say which names are inputs: "
                               "gf.expression(text, inputs=[...])")
    _check_inputs(inputs, formula, columns)
    params = tuple(name for name in formula.names if name not in inputs and name not in CONSTANTS)
    if not params:
        raise GradfitError(f"the formula {_short(formula.text)!r} has no parameters to fit: every name in it is an "
                           f"input ({', '.join(inputs) or 'none'}) or the constant pi")
    return params, inputs


def parameter_names(
    formula: str, inputs: Sequence[str] | None = None, columns: Sequence[str] | None = None
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The formula's (parameters, inputs), split as `expression` splits them; refuses what it refuses."""
    read = _read(formula)
    return _split(read, _name_list("inputs", inputs), _name_list("columns", columns))


@dataclass(frozen=True)
class _FormulaFn:
    """A formula as a model function: equal when the formula and inputs are, so compiled fits are reused."""

    formula: str
    inputs: tuple[str, ...]
    evaluate: Callable[[Mapping[str, Any]], Any] = field(compare=False, repr=False)

    def __call__(self, x: jax.Array, params: Mapping[str, jax.Array], **settings: Any) -> jax.Array:
        # The settings repeat the formula and inputs for Model.describe(); this function holds them already.
        x = jnp.asarray(x)
        width = math.prod(x.shape[1:])
        if x.ndim == 0 or (self.inputs and width != len(self.inputs)):
            raise GradfitError(
                f"the formula {_short(self.formula)!r} reads {len(self.inputs)} input column(s) "
                f"({', '.join(self.inputs)}); x has shape {x.shape}"
            )
        n = x.shape[0]
        env = {**CONSTANTS, **params}
        if self.inputs:
            columns = jnp.reshape(x, (n, len(self.inputs)))
            env.update({name: columns[:, j] for j, name in enumerate(self.inputs)})
        return jnp.broadcast_to(self.evaluate(env), (n,))


@dataclass(frozen=True)
class _Start:
    """A fixed start, in parameter order; equal when the values are."""

    values: tuple[float, ...]

    def __call__(self, seed: int, model: Model) -> np.ndarray:
        return np.array(self.values, dtype=float)


def expression(
    formula: str,
    inputs: Sequence[str] | None = None,
    *,
    columns: Sequence[str] | None = None,
    init: Mapping[str, float] | None = None,
    name: str | None = None,
) -> Model:
    """A model from a formula such as ``"a*exp(-k*x) + c"``, f[x, φ] as written.

    Parameters
    ----------
    formula
        Python arithmetic over names, numbers and the functions in `FUNCTIONS` (the
        module docstring gives the grammar).
    inputs
        The names that are input columns, in the order of x's columns. Default: the
        formula's names among ``columns``, else ``x``. ``[]`` for a formula without inputs.
    columns
        The data's input columns (a file's columns other than the target), to find the
        inputs among when ``inputs`` is not given.
    init
        Starting values by parameter name; the others start at 1.
    name
        The model's name in reports. Default ``"expression"``.

    Every other name is a scalar parameter, in the order it first appears.
    """
    read = _read(formula)
    params, inputs = _split(read, _name_list("inputs", inputs), _name_list("columns", columns))
    label = "expression" if name is None else name
    if not isinstance(label, str) or not label.strip():
        raise GradfitError(f"a model's name is non-empty text, not {label!r}")
    start = dict.fromkeys(params, 1.0)
    if init is not None:
        if not isinstance(init, Mapping):
            raise GradfitError(f"init gives starting values by name (a dict such as {{'a': 1.0}}), not "
                               f"{type(init).__name__}")
        for key, value in init.items():
            if key not in start:
                raise GradfitError(f"init names {key!r}, which is not a parameter of the formula "
                                   f"{_short(read.text)!r}; its parameters are {', '.join(params)}")
            try:
                number = _numbers(value)
            except _NotNumbers as err:
                raise GradfitError(f"the start value of parameter {key!r} is {err}; give a number") from None
            if number.shape != ():
                raise GradfitError(f"the start value of parameter {key!r} has shape {number.shape}; "
                                   "a formula's parameters are single numbers")
            if not np.isfinite(number):
                raise GradfitError(f"the start value of parameter {key!r} is not finite ({float(number)})")
            start[key] = float(number)
    settings = (("formula", read.text), ("inputs", ",".join(inputs) or None))
    return Model(label, _FormulaFn(read.text, inputs, read.evaluate), tuple((p, ()) for p in params), settings,
                 1, _Start(tuple(start.values())))

"""Models from a formula: values and gradients against the same formula written in
jax.numpy, a fit that recovers known parameters, how names split into inputs and
parameters, equality, and every refusal, generated text included."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import gradfit as gf
from gradfit.errors import GradfitError
from gradfit.formula import FUNCTIONS, MAX_DEPTH, MAX_LENGTH, parameter_names
from gradfit.models import output_shape

# -- values and gradients ------------------------------------------------------------------

#: formula, inputs, parameters, the same function by hand, x's columns.
FORMULAS = {
    "decay": ("a*exp(-k*x) + c", None, dict(a=2.5, k=1.3, c=0.7),
              lambda x, p: p["a"] * jnp.exp(-p["k"] * x) + p["c"], 1),
    "rise": ("b1*(1-exp(-b2*x))", None, dict(b1=3.0, b2=0.4),
             lambda x, p: p["b1"] * (1 - jnp.exp(-p["b2"] * x)), 1),
    "logistic": ("b1 / (1 + exp(b2 - b3*x))", None, dict(b1=10.0, b2=2.0, b3=0.8),
                 lambda x, p: p["b1"] / (1 + jnp.exp(p["b2"] - p["b3"] * x)), 1),
    "gaussian peak": ("a*exp(-((x-m)**2 + (t-n)**2))", ["x", "t"], dict(a=1.5, m=0.2, n=-0.3),
                      lambda x, p: p["a"] * jnp.exp(-((x[:, 0] - p["m"]) ** 2 + (x[:, 1] - p["n"]) ** 2)), 2),
    "MGH09": ("b1*(x**2+x*b2) / (x**2+x*b3+b4)", None, dict(b1=0.19, b2=0.19, b3=0.12, b4=0.14),
              lambda x, p: p["b1"] * (x**2 + x * p["b2"]) / (x**2 + x * p["b3"] + p["b4"]), 1),
    "constants and powers": ("a*sin(2*pi*x/w) + exp(1)**(-x) * pow(b, 2) - x**-2 / c", None,
                             dict(a=0.5, w=1.7, b=0.3, c=4.0),
                             lambda x, p: p["a"] * jnp.sin(2 * math.pi * x / p["w"]) + math.e ** (-x) * p["b"] ** 2
                             - x**-2 / p["c"], 1),
    "no inputs read": ("a + b", [], dict(a=0.25, b=2.0), lambda x, p: jnp.full(x.shape[0], p["a"] + p["b"]), 1),
}


@pytest.mark.parametrize("case", FORMULAS)
def test_values_and_gradients_match_the_formula_by_hand(case, x64, rng):
    formula, inputs, params, by_hand, width = FORMULAS[case]
    model = gf.expression(formula, inputs)
    x = jnp.asarray(rng.uniform(0.1, 2.0, size=(25, width) if width > 1 else 25))
    params = {k: jnp.asarray(v) for k, v in params.items()}
    assert model.param_names == tuple(params)
    np.testing.assert_allclose(model(x, params), by_hand(x, params), rtol=1e-12, atol=0)
    assert model(x, params).shape == (25,)

    weights = jnp.asarray(rng.normal(size=25))
    ours = jax.grad(lambda p: jnp.sum(weights * model(x, p)))(params)
    theirs = jax.grad(lambda p: jnp.sum(weights * by_hand(x, p)))(params)
    for name in params:
        np.testing.assert_allclose(ours[name], theirs[name], rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_each_function_is_its_jax_numpy_counterpart(name, x64):
    fn, n_args = FUNCTIONS[name]
    formula = f"a*{name}(x)" if n_args == 1 else f"a*{name}(x, b)"
    x = jnp.linspace(0.05, 0.95, 7)
    params = {"a": 1.5, "b": 0.4} if n_args == 2 else {"a": 1.5}
    expected = 1.5 * (fn(x) if n_args == 1 else fn(x, 0.4))
    np.testing.assert_allclose(gf.expression(formula)(x, params), expected, rtol=1e-14)


def test_a_whole_number_exponent_has_a_slope_at_negative_inputs(x64):
    model = gf.expression("a * x**2 + b * pow(x, 3)")
    x = jnp.array([-2.0, -0.5, 0.0, 1.5])
    slope = jax.vmap(jax.grad(lambda xi: model(xi[None], {"a": 1.0, "b": 1.0})[0]))(x)
    np.testing.assert_allclose(slope, 2 * x + 3 * x**2, rtol=1e-14)


def test_the_model_traces_compiles_and_runs_in_float32():
    model = gf.expression("a*exp(-k*x) + c")
    assert output_shape(model, (5,)).shape == (5,)
    out = jax.jit(model)(jnp.ones(5, jnp.float32), {n: jnp.float32(1.0) for n in "akc"})
    assert out.dtype == jnp.float32 and out.shape == (5,)


def test_a_formula_without_inputs_broadcasts_to_one_value_per_example(x64):
    model = gf.expression("a*b", inputs=[])
    for x in (jnp.zeros(4), jnp.zeros((4, 3))):
        np.testing.assert_array_equal(model(x, {"a": 2.0, "b": 3.0}), np.full(4, 6.0))


def test_x_must_have_one_column_per_input():
    model = gf.expression("a*x + b*t", ["x", "t"])
    with pytest.raises(GradfitError, match=r"reads 2 input column\(s\) \(x, t\); x has shape \(4, 3\)"):
        model(jnp.zeros((4, 3)), {"a": 1.0, "b": 1.0})
    with pytest.raises(GradfitError, match="x has shape"):
        model(jnp.zeros(4), {"a": 1.0, "b": 1.0})


def test_a_long_flat_sum_is_one_level_deep(x64):
    formula = "+".join(["a*x"] * 400)  # 1,599 characters, far more terms than MAX_DEPTH
    model = gf.expression(formula)
    assert model.param_names == ("a",)
    np.testing.assert_allclose(jax.jit(model)(jnp.ones(2), {"a": 0.5}), [200.0, 200.0])
    assert jax.grad(lambda p: model(jnp.ones(1), p)[0])({"a": 0.5})["a"] == 400.0


# -- the normal spelling ------------------------------------------------------------------


@pytest.mark.parametrize(("formula", "normal"), [
    ("a*exp(-k*x)+c", "a * exp(-k * x) + c"),
    ("  a  *  x\t+ b ", "a * x + b"),
    ("(-x)**2*a", "(-x) ** 2 * a"),
    ("-x**2*a", "-x ** 2 * a"),
    ("a-(b-x)", "a - (b - x)"),
    ("(a-b)-x", "a - b - x"),
    ("a/(b*x)", "a / (b * x)"),
    ("a*x**-2", "a * x ** -2"),
    ("2**3**x*a", "2 ** 3 ** x * a"),
    ("(2**3)**x*a", "(2 ** 3) ** x * a"),
    ("a*x**(1/2)", "a * x ** (1 / 2)"),
    ("1e-3*a*x", "0.001 * a * x"),
    ("max(a,x)+min(x , b)", "max(a, x) + min(x, b)"),
    ("--a*+x", "--a * +x"),
])
def test_the_formula_is_kept_in_one_normal_spelling_that_reads_back_the_same(formula, normal, x64, rng):
    model = gf.expression(formula)
    assert dict(model.settings)["formula"] == normal
    again = gf.expression(normal)
    assert again == model
    x = jnp.asarray(rng.uniform(0.5, 2.0, 6))
    params = {name: 0.7 + 0.1 * i for i, name in enumerate(model.param_names)}
    np.testing.assert_array_equal(again(x, params), model(x, params))


# -- names: inputs, parameters, constants ------------------------------------------------


@pytest.mark.parametrize(("formula", "kwargs", "params", "inputs"), [
    ("a*exp(-k*x) + c", {}, ("a", "k", "c"), ("x",)),
    ("c + a*exp(-k*x)", {}, ("c", "a", "k"), ("x",)),
    ("k*x + k**2 + b*x", {}, ("k", "b"), ("x",)),
    ("a*exp(-x/2) + pi*b", {}, ("a", "b"), ("x",)),
    ("b1*(1-exp[-b2*x]) + e", {}, ("b1", "b2", "e"), ("x",)),  # NIST's error term is a name, never 2.718...
    ("a*e + t", {"inputs": ["e", "t"]}, ("a",), ("e", "t")),
    ("a*exp(-k*t)", {"columns": ["t", "y2"]}, ("a", "k"), ("t",)),
    ("b*x + a*t", {"columns": ["t", "x"]}, ("b", "a"), ("t", "x")),
    ("a*exp(x)", {"columns": ["exp", "x"]}, ("a",), ("x",)),
    ("a*t", {"inputs": "t"}, ("a",), ("t",)),
    ("a + b", {"inputs": []}, ("a", "b"), ()),
])
def test_names_split_into_parameters_in_order_of_appearance_and_inputs(formula, kwargs, params, inputs):
    model = gf.expression(formula, **kwargs)
    assert model.param_names == params
    assert model.shapes == tuple((p, ()) for p in params)
    assert parameter_names(formula, **kwargs) == (params, inputs)


def test_inputs_found_among_columns_follow_the_columns_order(x64):
    model = gf.expression("b*x + a*t", columns=["t", "x"])
    x = jnp.array([[1.0, 10.0], [2.0, 20.0]])  # t, then x
    np.testing.assert_allclose(model(x, {"b": 1.0, "a": 100.0}), [110.0, 220.0])


# -- equality, description, start -------------------------------------------------------


def test_equal_formulas_make_equal_models_that_share_compiled_fits():
    one, two = gf.expression("a*x+b"), gf.expression(" a * x + b ")
    assert one == two and hash(one) == hash(two)
    assert output_shape(one, (3,)) is output_shape(two, (3,))
    assert one != gf.expression("a*x+c")
    assert one != gf.expression("a*x+b", init={"a": 2.0})
    assert gf.expression("a*x+b", init={"a": 2.0}) == gf.expression("a*x+b", init={"a": 2})
    assert gf.expression("a*x+t", ["x"]) != gf.expression("a*x+t", ["x", "t"])


def test_describe_shows_the_formula_and_inputs():
    assert gf.expression("a*exp(-k*x)+c").describe() == "expression(formula=a * exp(-k * x) + c, inputs=x)"
    assert gf.expression("a*x+b*t", ["x", "t"], name="plane").describe() == "plane(formula=a * x + b * t, inputs=x,t)"
    assert gf.expression("a + b", []).describe() == "expression(formula=a + b)"


def test_parameters_start_at_one_unless_init_says_otherwise():
    model = gf.expression("a*exp(-k*x) + c")
    np.testing.assert_array_equal(model.default_init(), [1.0, 1.0, 1.0])
    np.testing.assert_array_equal(gf.expression("a*exp(-k*x) + c", init={"k": 0.1}).default_init(7), [1.0, 0.1, 1.0])


def test_a_fit_recovers_the_parameters_of_noiseless_data(x64):
    x = np.linspace(0.0, 4.0, 40)
    y = 2.5 * np.exp(-1.3 * x) + 0.7
    result = gf.fit(gf.expression("a*exp(-k*x) + c"), "normal", (x, y), "adam", steps=100, polish=True)
    assert list(result.params) == ["a", "k", "c"]
    np.testing.assert_allclose([result.params[n] for n in "akc"], [2.5, 1.3, 0.7], rtol=1e-8)
    assert result.model == "expression(formula=a * exp(-k * x) + c, inputs=x)"


# -- refusals ---------------------------------------------------------------------------

DEEP = "exp(" * (MAX_DEPTH + 5) + "x" + ")" * (MAX_DEPTH + 5)

#: formula, keyword arguments, words the one-line message holds.
REFUSED = {
    "empty": ("", {}, ["empty"]),
    "blank": ("  \t ", {}, ["empty"]),
    "not text": (3.0, {}, ["text", "float"]),
    "syntax": ("a*exp(-k*x", {}, ["cannot read", "column 6", "'a*exp(-k*x'", "never closed"]),
    "syntax on a second line": ("a*x\n+b", {}, ["line 2", "column 1"]),
    "implicit product": ("2x*a", {}, ["cannot read", "column"]),
    "assignment": ("a = b = x", {}, ["cannot read"]),
    "a target and no parameter": ("y = 2*x", {}, ["no parameters"]),
    "null byte": ("a*x\x00", {}, ["cannot read"]),
    "unknown function": ("a*ecp(-k*x)", {}, ["unknown function 'ecp'", "did you mean exp", "sigmoid"]),
    "unknown function, capitalised": ("a*Exp(x)", {}, ["unknown function 'Exp'", "did you mean exp"]),
    "parameter called": ("a(x)", {}, ["unknown function 'a'", "to multiply, write a*("]),
    "parameter in parentheses called": ("(a)(x)", {}, ["unknown function 'a'", "a*("]),
    "expression called": ("(a+b)(x)", {}, ["calling 'a+b'", "to multiply"]),
    "numpy attribute": ("a*np.exp(-k*x)", {}, ["attribute", "write exp(...), not np.exp(...)"]),
    "dunder attribute": ("x.__class__", {}, ["attribute", "'x.__class__'"]),
    "attribute call": ("a*math.foo(x)", {}, ["attribute", "'math.foo'"]),
    "import": ("__import__('os').system('x')", {}, ["attribute", "not allowed"]),
    "bare import": ("__import__('os')", {}, ["names starting with _", "'__import__'"]),
    "underscore name": ("_a*x", {}, ["names starting with _", "'_a'"]),
    "subscript": ("a*x[0]", {}, ["indexing", "'x[0]'", "inputs=[...]"]),
    "keyword argument": ("a*exp(x=1)", {}, ["keyword arguments", "'x=1'", "by position"]),
    "starred argument": ("a*atan2(*x)", {}, ["unpacking", "'*x'"]),
    "lambda": ("(lambda: 1)()", {}, ["lambda", "not allowed"]),
    "lambda alone": ("lambda x: a*x", {}, ["lambda"]),
    "comparison": ("a*(x > 0)", {}, ["comparison", "'x > 0'", "sigmoid"]),
    "boolean": ("a*x or b", {}, ["and/or"]),
    "not": ("not a*x", {}, ["not (", "arithmetic"]),
    "invert": ("~a*x", {}, ["~", "-"]),
    "conditional": ("a if x else b", {}, ["conditional", "'a if x else b'"]),
    "comprehension": ("[a for a in x]", {}, ["comprehension"]),
    "generator": ("sum(a for a in x)", {}, ["unknown function 'sum'"]),
    "list": ("[a, x]", {}, ["a list"]),
    "tuple": ("a, x", {}, ["a tuple"]),
    "dict": ("{a: x}", {}, ["a dict"]),
    "text": ('"text"', {}, ["text", "'\"text\"'"]),
    "f-string": ('f"{a}"', {}, ["text"]),
    "walrus": ("(a := x)", {}, ["assignment"]),
    "caret": ("a*x^2", {}, ["^", "use ** for powers", "a*x**2"]),
    "percent": ("a*x % 2", {}, ["%", "not allowed"]),
    "floor division": ("a*x // 2", {}, ["//", "use / for division"]),
    "matrix product": ("a @ x", {}, ["@"]),
    "shift": ("a << x", {}, ["<<"]),
    "too many arguments": ("exp(x, 2)*a", {}, ["exp takes 1 argument, not 2", "'exp(x, 2)'"]),
    "too few arguments": ("a*exp()", {}, ["exp takes 1 argument, not 0"]),
    "too few for atan2": ("a*atan2(x)", {}, ["atan2 takes 2 arguments, not 1"]),
    "function used bare": ("a*exp + x", {}, ["exp is a function", "exp(...)"]),
    "true": ("True*x + a", {}, ["'True' is not a number"]),
    "none": ("None", {}, ["'None' is not a number"]),
    "complex": ("a*x + 2j", {}, ["complex"]),
    "overflow": ("a*x + 1e999", {}, ["'1e999'", "too large"]),
    "huge integer": ("a*x + 1" + "0" * 400, {}, ["too large"]),
    "too long": ("a*x+" * 500 + "b", {}, [f"{len('a*x+' * 500) + 1:,} characters", f"{MAX_LENGTH:,}"]),
    "too deep": (DEEP, {}, [f"deeper than {MAX_DEPTH}"]),
    "deep signs": ("-" * 1990 + "a*x", {}, ["nest"]),
    "deep parentheses": ("(" * 300 + "a*x" + ")" * 300, {}, ["cannot read", "parentheses"]),
    "deep powers": ("a**" * 400 + "x", {}, [f"deeper than {MAX_DEPTH}"]),
    "no x": ("a + b*t", {}, ["has no x", "inputs=[...]"]),
    "no parameter": ("x + 1", {}, ["no parameters", "input (x)"]),
    "only constants": ("pi*exp(1)*x", {}, ["no parameters"]),
    "input absent": ("a*x", {"inputs": ["x", "t"]}, ["input 't' does not appear"]),
    "input not a name": ("a*x", {"inputs": ["x y"]}, ["'x y'", "not a name"]),
    "input keyword": ("a*x", {"inputs": ["lambda"]}, ["'lambda'", "not a name"]),
    "input with underscore": ("a*x", {"inputs": ["_x"]}, ["'_x'", "starts with _"]),
    "input that is a function": ("a*x", {"inputs": ["exp"]}, ["'exp'", "function"]),
    "input twice": ("a*x", {"inputs": ["x", "x"]}, ["more than once"]),
    "input not a column": ("a*x", {"inputs": ["x"], "columns": ["t"]}, ["'x'", "not among the data's columns"]),
    "no column appears": ("a*X + b", {"columns": ["x", "y"]}, ["none of the data's columns (x, y)", "inputs=[]"]),
    "inputs not a list": ("a*x", {"inputs": 3}, ["list of names", "int"]),
    "init unknown": ("a*exp(-k*x)", {"init": {"b": 1.0}}, ["'b'", "parameters are a, k"]),
    "init not finite": ("a*exp(-k*x)", {"init": {"k": math.inf}}, ["'k'", "not finite"]),
    "init nan": ("a*exp(-k*x)", {"init": {"k": math.nan}}, ["'k'", "not finite"]),
    "init text": ("a*exp(-k*x)", {"init": {"k": "0.1"}}, ["'k'", "the text '0.1'"]),
    "init array": ("a*exp(-k*x)", {"init": {"k": [1.0, 2.0]}}, ["'k'", "shape (2,)"]),
    "init not a dict": ("a*exp(-k*x)", {"init": [1.0, 2.0]}, ["by name", "list"]),
    "empty name": ("a*x", {"name": " "}, ["name"]),
}


@pytest.mark.parametrize("case", REFUSED)
def test_refusals_name_the_problem_in_one_line(case):
    formula, kwargs, words = REFUSED[case]
    with pytest.raises(GradfitError) as caught:
        gf.expression(formula, **kwargs)
    message = str(caught.value)
    assert "\n" not in message
    for word in words:
        assert word in message, (word, message)


def test_parameter_names_refuses_what_expression_refuses():
    with pytest.raises(GradfitError, match="use \\*\\* for powers"):
        parameter_names("a*x^2")


# -- generated text ---------------------------------------------------------------------

TOKENS = ["a", "k", "x", "t", "e", "pi", "exp", "log", "sqrt", "atan2", "max", "pow", "ecp", "np", "_", "__class__",
          "(", ")", "(", ")", "+", "-", "*", "/", "**", "^", "%", ",", ".", "[", "]", "=", "<", "1", "2.5", "1e3",
          "1e999", "0", "'s'", "lambda", ":", "if", "else", "and", "not", "for", "in", "j", " ", "\n", "#", "@", "~"]

#: Formulas built by the grammar, mostly well formed, with now and then a part it refuses.
VALID_LEAVES = ["a", "k", "x", "t", "pi", "e", "2", "0.5", "1e-3", "0", "3"]
LEAVES = st.sampled_from(VALID_LEAVES * 3 + ["exp", "_z", "'s'", "True", "1e999", "np.pi", "x[0]", "2j"])


def _calls(inner):
    right = st.sampled_from(sorted(FUNCTIONS)).flatmap(
        lambda name: st.lists(inner, min_size=FUNCTIONS[name][1], max_size=FUNCTIONS[name][1])
        .map(lambda args: f"{name}({', '.join(args)})"))
    wrong = st.tuples(st.sampled_from(["exp", "atan2", "ecp", "a", "np.exp"]), st.lists(inner, max_size=3)).map(
        lambda t: f"{t[0]}({', '.join(t[1])})")
    return st.one_of(right, right, wrong)


FORMULA = st.tuples(
    st.recursive(
        LEAVES,
        lambda inner: st.one_of(
            st.tuples(inner, st.sampled_from(["+", "-", "*", "/", "**", " + ", " * "] * 2 + ["^", "%", "<"]), inner)
            .map("".join),
            st.tuples(st.sampled_from(["-", "+", "(", "-(", "(", "not "]), inner)
            .map(lambda t: t[0] + t[1] + ")" * t[0].count("(")),
            _calls(inner),
        ),
        max_leaves=12,
    ),
    st.sampled_from(["a*x + {}", "a*x + {}", "a*x + {}", "{}"]),
).map(lambda t: t[1].format(t[0]))


@pytest.mark.fuzz
@given(st.one_of(st.text(max_size=40), st.lists(st.sampled_from(TOKENS), max_size=25).map("".join), FORMULA))
def test_any_text_makes_a_model_or_a_gradfit_error(text):
    try:
        model = gf.expression(text)
    except GradfitError as err:
        assert "\n" not in str(err)
        return
    x = jnp.linspace(0.1, 1.0, 3)
    params = {name: 0.5 + 0.1 * i for i, name in enumerate(model.param_names)}
    out = model(x, params)
    assert out.shape == (3,)
    again = gf.expression(dict(model.settings)["formula"])  # the normal spelling reads back as the same tree
    assert again == model
    np.testing.assert_array_equal(again(x, params), out)


def test_a_formula_fitted_to_a_table_takes_its_inputs_by_name():
    pd = pytest.importorskip("pandas")
    t = np.linspace(0.0, 5.0, 30)
    # the table holds a column the formula does not read, between its input and the target
    table = pd.DataFrame({"t": t, "err": 0.05, "signal": 2.5 * np.exp(-0.8 * t) + 0.5})
    model = gf.expression("a*exp(-k*t) + c", columns=table.columns[:-1])
    result = gf.fit(model, "normal", table, "lm")
    np.testing.assert_allclose([result.params[n] for n in "akc"], [2.5, 0.8, 0.5], rtol=1e-9)


@pytest.mark.parametrize(("spelled", "meant"), [
    ("y = b1*(1-exp[-b2*x])", "b1*(1-exp(-b2*x))"),  # NIST's headers: a target, and exp[...] for a call
    ("signal = b1 / ((1+exp[b2-b3*x])**(1/b4))", "b1 / ((1+exp(b2-b3*x))**(1/b4))"),
    ("(b1/b2) * exp[-0.5*((x-b3)/b2)**2]", "(b1/b2) * exp(-0.5*((x-b3)/b2)**2)"),
])
def test_nists_spelling_reads_as_the_same_model(spelled, meant):
    assert gf.expression(spelled) == gf.expression(meant)


@pytest.mark.parametrize("formula", ["y == a*x", "a[0]*x", "exp[1:2]*a", "y = a = x", "2 = a*x"])
def test_what_looks_like_nists_spelling_but_is_not_is_still_refused(formula):
    with pytest.raises(gf.GradfitError):
        gf.expression(formula)

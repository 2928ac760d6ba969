"""Property tests: whatever it is given, gradfit fits or says why in one line.

The contract of errors.py and cli.py, checked on generated input: the library returns
a result or raises `GradfitError`; ``gradfit fit`` exits 0, or 2 with one line on
stderr starting ``error:``, or 3 for a fit that diverged (README); never a traceback,
and nothing the file or the fit held is silently dropped.

JAX compiles once per shape and plan, so the generated values come from small pools
(row counts, step counts, learning rates) and most examples reuse a compiled fit. The
budgets are the Hypothesis profiles of conftest.py: a quick one by default, the
thorough one with HYPOTHESIS_PROFILE=ci.
"""

from __future__ import annotations

import csv
import io
import json
import math
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import gradfit as gf
from gradfit.cli import app
from gradfit.errors import GradfitError
from gradfit.optimizers import VARIANTS
from gradfit.result import FitResult, MultiFit

pytestmark = pytest.mark.fuzz

runner = CliRunner()


def budget(share: float):
    """Settings giving a test ``share`` of the loaded profile's examples (its cost decides)."""
    return settings(max_examples=max(1, round(share * settings.default.max_examples)))


def check_cli(result) -> None:
    """The CLI's contract for one run (not --quiet): 0, 2 with one ``error:`` line, or 3 when diverged."""
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception  # the traceback the user would see; each crash site its own failure
    assert "Traceback" not in result.output
    assert result.exit_code in (0, 2, 3), (result.exit_code, result.output)
    if result.exit_code == 2:
        lines = result.stderr.splitlines()
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith("error: "), result.stderr
    if result.exit_code == 3:
        assert "diverged" in result.stdout, result.stdout


# -- generated CSV files -----------------------------------------------------------------

COLUMN_NAMES = st.one_of(
    st.sampled_from(["x", "y", "a", "b", " x", "x ", "a b", "é", "日本", "a[b]", "[bold]y", "", "1", "a,b",
                     'a"b', "nan", "a;b", "x\ty", ":thumbs_up:"]),
    st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=5),
)
CELLS = st.sampled_from([
    "0", "1", "-2.5", "3", "0.1", "1e308", "-1e308", "1e-308", "-0.0", "12345678901234567890",
    "1e309", "nan", "", "abc", " 1", "1,5", "NA", '"2"',
])
#: A cell spelled in the file as a field over pyarrow's 1 MiB block: 0.000...1, which
#: is 0.0 as a float. Tables hold this short stand-in, so a failing case prints short.
HUGE_CELL = "<0.000...1, 1 MiB long>"
HUGE_SPELLING = "0." + "0" * (1 << 20) + "1"


@dataclass(frozen=True)
class CsvCase:
    """A table, and how it is spelled in a file."""

    names: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    delimiter: str
    quoting: str  # "none", "minimal" or "all"
    encoding: str
    newline: str
    trailing_newline: bool
    suffix: str

    def field(self, text: str) -> str:
        text = HUGE_SPELLING if text == HUGE_CELL else text
        special = any(c in text for c in (self.delimiter, '"', "\n", "\r"))
        if self.quoting == "all" or (self.quoting == "minimal" and special):
            return '"' + text.replace('"', '""') + '"'
        return text

    @property
    def spelled_as_meant(self) -> bool:
        """Whether a reader that knows the delimiter sees exactly ``names`` and ``rows``."""
        fields = [*self.names, *(c for r in self.rows for c in r)]
        # unquoted, a delimiter or line break splits a field, and a leading quote opens one
        raw = self.quoting == "none" and any(
            f.startswith('"') or any(c in f for c in (self.delimiter, "\n", "\r")) for f in fields)
        # a row spelled as a blank line is no row to a CSV reader
        blank = any(self.delimiter.join(map(self.field, r)) == "" for r in self.rows)
        return not raw and not blank and all(len(r) == len(self.names) for r in self.rows)

    def write(self, folder: Path) -> Path:
        lines = [self.delimiter.join(map(self.field, row)) for row in (self.names, *self.rows)]
        text = self.newline.join(lines) + (self.newline if self.trailing_newline else "")
        try:
            data = text.encode(self.encoding)
        except UnicodeEncodeError:  # a name latin-1 cannot spell: the file is UTF-8 after all
            data = text.encode("utf-8")
        path = folder / f"data{self.suffix}"
        path.write_bytes(data)
        return path


@st.composite
def csv_cases(draw) -> CsvCase:
    n_cols = draw(st.integers(1, 4))
    names = tuple(draw(st.lists(COLUMN_NAMES, min_size=n_cols, max_size=n_cols)))
    n_rows = draw(st.sampled_from([0, 1, 5, 12]))
    rows = []
    for _ in range(n_rows):
        width = draw(st.sampled_from([n_cols] * 8 + [n_cols - 1, n_cols + 1]))  # now and then ragged
        rows.append(tuple(draw(st.lists(CELLS, min_size=max(width, 0), max_size=max(width, 0)))))
    if rows and draw(st.integers(0, 30)) == 30:  # shrinks away from the huge cell
        rows[0] = (HUGE_CELL, *rows[0][1:])
    return CsvCase(
        names=names,
        rows=tuple(rows),
        delimiter=draw(st.sampled_from([",", ";", "\t", "|"])),
        quoting=draw(st.sampled_from(["none", "minimal", "all"])),
        encoding=draw(st.sampled_from(["utf-8", "utf-8-sig", "latin-1"])),
        newline=draw(st.sampled_from(["\n", "\r\n"])),
        trailing_newline=draw(st.booleans()),
        suffix=draw(st.sampled_from([".csv", ".csv", ".txt", ".tsv"])),
    )


@st.composite
def columns_chosen(draw, names: tuple[str, ...]) -> tuple[list[str] | None, str | None]:
    """``x`` and ``y`` as a user might give them: left out, from the header, or not in it."""
    pick = st.sampled_from(names) if names else st.just("x")
    y = draw(st.one_of(st.none(), pick, COLUMN_NAMES))
    x = draw(st.one_of(st.none(), st.lists(st.one_of(pick, COLUMN_NAMES), min_size=1, max_size=3)))
    return x, y


def number(cell: str) -> float | None:
    """The finite number a cell spells, or None."""
    if cell == HUGE_CELL:
        return 0.0
    try:
        value = float(cell)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def read_back(case: CsvCase, path: Path) -> tuple[tuple[str, ...], tuple[tuple[str, ...], ...]]:
    """What a standard CSV reader (Python's csv module) sees in the file written for ``case``.

    Written unquoted, a cell such as '"2"' is valid CSV for the number 2, whatever was
    meant: the file, not the writer's intent, is what a loader can be held to.
    """
    raw = path.read_bytes().removeprefix(b"\xef\xbb\xbf")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode(case.encoding)
    table = [tuple(r) for r in csv.reader(io.StringIO(text, newline=""), delimiter=case.delimiter) if r]
    return (table[0], tuple(table[1:])) if table else ((), ())


def check_nothing_lost(case: CsvCase, seen, x: list[str] | None, y: str | None, data: gf.Dataset) -> None:
    """A file that loaded holds what was written: every row, each chosen column, each number.

    ``seen`` is what a standard reader makes of the file (`read_back`): for a case spelled
    as meant, its own names and rows.
    """
    names, rows = seen
    assert all(len(r) == len(names) for r in rows), "a file with ragged lines loaded"
    case = CsvCase(names=names, rows=rows, delimiter=case.delimiter, quoting=case.quoting, encoding=case.encoding,
                   newline=case.newline, trailing_newline=case.trailing_newline, suffix=case.suffix)
    names = list(case.names)
    y = y if y is not None else names[-1]
    x = list(x) if x else [n for n in names if n != y]
    for name in [*x, y]:
        assert names.count(name) == 1, f"column {name!r} is ambiguous in {names} but the file loaded"
    column = {n: [number(r[j]) for r in case.rows] for j, n in enumerate(names)}
    for name in [*x, y]:
        assert None not in column[name], f"column {name!r} holds a cell that is not a finite number"
    assert len(data) == len(case.rows)
    np.testing.assert_array_equal(data.y, column[y])
    np.testing.assert_array_equal(np.reshape(data.x, (len(data), -1)), np.column_stack([column[n] for n in x]))


@budget(1.0)
@given(case=csv_cases(), data=st.data())
def test_any_csv_loads_whole_or_raises_gradfit_error(case, data):
    x, y = data.draw(columns_chosen(case.names))
    with tempfile.TemporaryDirectory() as folder:
        path = case.write(Path(folder))
        try:
            loaded = gf.load(path, x=x, y=y)
        except GradfitError as exc:
            assert str(exc)
            return
        seen = read_back(case, path)
    check_nothing_lost(case, seen, x, y, loaded)


@budget(1.0)
@given(case=csv_cases(), data=st.data())
def test_any_csv_fits_on_the_command_line_or_says_why_in_one_line(case, data):
    x, y = data.draw(columns_chosen(case.names))
    args = ["fit", "--data", None, "--model", "linear", "--steps", "20"]
    if x is not None:
        args += ["--x", ",".join(x)]
    if y is not None:
        args += ["--y", y]
    with tempfile.TemporaryDirectory() as folder:
        path = case.write(Path(folder))
        args[2] = str(path)
        result = runner.invoke(app, args)
        check_cli(result)
        if result.exit_code == 2:
            # the library's own words reach the user whole (no markup eaten, nothing cut)
            given_x = ",".join(x) if x is not None else ""
            cols = [c.strip() for c in given_x.split(",") if c.strip()] if given_x else None
            try:
                gf.load(path, cols, y)
            except GradfitError as exc:
                assert str(exc) in result.stderr


# -- generated options of `gradfit fit` --------------------------------------------------

#: Values each option may take: mostly sensible ones from a few (so compiled fits are
#: reused), then the edges and the nonsense a user may type.
OPTIONS = {
    "--model": ["linear", "linear", "gabor", "shallow", "bogus", "[red]x"],
    "--loss": ["normal", "normal", "poisson", "bernoulli", "hetero_normal", "bogus"],
    "--optimizer": [*VARIANTS, "bogus", "Adam", ""],
    "--variant": sorted({v for vs in VARIANTS.values() for v in vs}) + ["bogus", ""],
    "--lr": ["0.1", "0.01", "0", "-0.1", "nan", "inf", "1e308", "1e-308", "abc"],
    "--beta": ["0.9", "0", "1", "-0.5", "nan", "2"],
    "--gamma": ["0.999", "0", "1", "nan"],
    "--eps": ["1e-8", "0", "-1"],
    "--weight-decay": ["0.01", "0", "-1"],
    "--schedule": ["constant", "step", "exponential", "cosine", "bogus"],
    "--decay-factor": ["0.5", "0", "-1", "2", "nan"],
    "--decay-every": ["10", "1", "0", "-5"],
    "--warmup": ["0", "3", "-1"],
    "--batch-size": ["4", "1", "20", "21", "0", "-3", "x"],
    "--steps": ["0", "1", "5", "20", "-1", "1.5", "abc", "100000000000000000000"],
    "--epochs": ["1", "3", "0", "-2"],
    "--tol": ["0", "1e-6", "1", "-1", "nan", "inf"],
    "--seed": ["0", "1", "-1", "4294967296", "99999999999999999999"],
    "--init": ["0,0", "1,-1", " 1 , 2 ", "nan,0", "inf,0", "1e308,1e308", "1e400,0", "1,2,3", "", ",", "a,b",
               "1;2", "[b]1,2"],
    "--scale": ["8", "32", "0", "-1", "nan"],
    "--width": ["2", "0", "-1"],
    "--reduction": ["sum", "mean", "max"],
    "--dtype": ["float64", "float32", "float16", "bogus"],
    "--builtin": ["linear", "gabor", "pedestrians", "bogus"],
}
FLAGS = ["--line-search", "--polish"]


@st.composite
def fit_options(draw) -> list[str]:
    chosen = draw(st.lists(st.sampled_from(sorted(OPTIONS)), unique=True, max_size=5))
    args = ["fit"]
    if "--model" not in chosen:
        args += ["--model", "linear"]
    if "--steps" not in chosen and "--epochs" not in chosen:
        args += ["--steps", "20"]
    for option in chosen:
        args += [option, draw(st.sampled_from(OPTIONS[option]))]
    args += draw(st.lists(st.sampled_from(FLAGS), unique=True, max_size=1))
    return args


@budget(0.5)
@given(args=fit_options())
def test_any_options_fit_or_say_why_in_one_line(args):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fit.json"
        result = runner.invoke(app, [*args, "--json", str(path)])
        check_cli(result)
        if result.exit_code in (0, 3):
            back = FitResult.from_json(path)  # what was written reads back
            assert (back.status == "diverged") == (result.exit_code == 3), back.status
        if result.exit_code == 3:
            # history entry 0 is the start (README); a fit diverges from a start it could
            # evaluate, and a start that is not finite is bad input, exit 2
            assert len(back.history) > 0, "the diverged fit's history lost its start"
            assert np.isfinite(back.history.params[0]).all(), back.history.params[0]


# -- JSON round trips --------------------------------------------------------------------

SMALL = gf.Dataset(np.linspace(0.0, 2.0, 5), np.array([0.9, 1.1, 1.4, 1.8, 2.0]), name="small")
START_VALUES = st.one_of(
    st.sampled_from([0.0, -0.0, 1.0, -1.0, 1e300, -1e300, 1e-300, 1e154, 5e-324]),
    st.floats(-1e6, 1e6),
    st.floats(allow_nan=False, allow_infinity=False),
)


@st.composite
def fit_settings(draw) -> dict:
    name = draw(st.sampled_from(sorted(VARIANTS)))
    kwargs = {"variant": draw(st.sampled_from(VARIANTS[name])), "lr": 0.01}
    if name == "gd" and draw(st.booleans()):
        kwargs["line_search"] = True
    optimizer = gf.make_optimizer(name, **kwargs)
    starts = draw(st.sampled_from([1, 1, 1, 2]))
    init = [draw(st.lists(START_VALUES, min_size=2, max_size=2)) for _ in range(starts)]
    return {
        "optimizer": optimizer,
        "init": init[0] if starts == 1 else init,
        "steps": draw(st.sampled_from([0, 1, 2, 5, 20, 50])),
        "batch_size": None if kwargs.get("line_search") else draw(st.sampled_from([None, None, 2])),
        "history_every": draw(st.sampled_from([None, 1, 3, 60])),
        "tol": draw(st.sampled_from([0.0, 1e-6])),
        "dtype": draw(st.sampled_from(["float64", "float64", "float64", "float32"])),
    }


@budget(0.5)
@given(setting=fit_settings(), with_inference=st.booleans())
def test_a_fit_survives_its_json_round_trip(setting, with_inference):
    try:
        result = gf.fit(gf.linear(), gf.normal(), SMALL, **setting)
        if with_inference and isinstance(result, FitResult) and result.status != "diverged":
            result = gf.infer(result, gf.linear(), gf.normal(), SMALL)
    except GradfitError:
        return
    if isinstance(result, MultiFit):
        back = MultiFit.from_json(result.to_json())
        assert len(back) == len(result)
        for theirs, ours in zip(back, result):
            assert theirs == ours
    else:
        assert FitResult.from_json(result.to_json()) == result


@cache
def _result_dict() -> dict:
    """A real result, with its inference, as the dict its JSON holds."""
    result = gf.fit(gf.linear(), gf.normal(), SMALL, gf.gd(0.01), steps=3, tol=0.0)
    return json.loads(gf.infer(result, gf.linear(), gf.normal(), SMALL).to_json())


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@st.composite
def damaged_results(draw) -> object:
    """A result's dict with one entry somewhere in it replaced by other JSON, or dropped."""
    d = json.loads(json.dumps(_result_dict()))
    node = d
    while True:
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        if not keys:
            return d
        key = draw(st.sampled_from(keys))
        child = node[key]
        if isinstance(child, dict | list) and child and draw(st.booleans()):
            node = child
            continue
        if isinstance(node, dict) and draw(st.booleans()):
            del node[key]
        else:
            node[key] = draw(JSON)
        return d


@budget(3.0)
@given(value=st.one_of(JSON, damaged_results()), as_file=st.booleans())
def test_from_json_reads_a_result_or_raises_gradfit_error(value, as_file):
    text = json.dumps(value)
    with tempfile.TemporaryDirectory() as folder:
        source = text
        if as_file:
            source = Path(folder) / "result.json"
            source.write_text(text)
        try:
            back = FitResult.from_json(source)
        except GradfitError as exc:
            assert str(exc)
            return
    assert isinstance(back, FitResult)

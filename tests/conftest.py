"""Shared fixtures: data beside the repository, float64, pinned randomness, fuzzing budgets."""

from __future__ import annotations

import os
from pathlib import Path

import jax
import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, settings

import gradfit as gf

# Licensed data sets (the book's are CC BY-NC-ND) are read from the shared folder beside
# the repository, never from a copy inside it (REFERENCE.md §4). A clone on its own has
# no such folder: the tests that need it skip, saying what they need.
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

#: What each folder of ../shared/data holds, for the skip reason.
SHARED_SETS = {
    "udlbook": "the book's data",
    "nist": "NIST StRD certified data sets",
}

#: Public-domain sets the repository keeps a copy of, read when ../shared is not there.
COPIES = {"nist": Path(__file__).resolve().parents[1] / "benchmarks" / "data" / "nist"}


def shared_path(name: str, *files: str) -> Path:
    """The folder ../shared/data/<name> (or the repository's copy of a public-domain set), holding
    ``files``; skips the test when neither is there."""
    folder = SHARED_DATA / name
    if name in COPIES and not (folder.is_dir() and all((folder / f).is_file() for f in files)):
        folder = COPIES[name]
    if not folder.is_dir() or not all((folder / f).is_file() for f in files):
        what = SHARED_SETS.get(name, "shared data")
        pytest.skip(f"needs ../shared/data/{name} ({what}; not shipped)")
    return folder


@pytest.fixture(scope="session")
def shared_data():
    """``shared_data(name, *files)``: the folder ../shared/data/<name>, or a skip without it."""
    return shared_path


@pytest.fixture(scope="session")
def udlbook() -> Path:
    """The folder holding linear_12.csv and gabor_30.csv."""
    return shared_path("udlbook", "linear_12.csv", "gabor_30.csv")


@pytest.fixture(scope="session")
def linear_12(udlbook) -> gf.Dataset:
    return gf.load(udlbook / "linear_12.csv", x=["x"], y="y")


@pytest.fixture(scope="session")
def gabor_30(udlbook) -> gf.Dataset:
    return gf.load(udlbook / "gabor_30.csv", x=["x"], y="y")


@pytest.fixture
def x64():
    """Run the test with JAX in float64, restoring the caller's setting afterwards."""
    with jax.enable_x64(True):
        yield


@pytest.fixture
def rng() -> np.random.Generator:
    """A generator pinned per test, so every test draws the same numbers on every run."""
    return np.random.default_rng(20240517)


# Hypothesis budgets. "default" keeps the plain `python -m pytest` quick; "ci" is the
# thorough pass (.ci/run sets HYPOTHESIS_PROFILE=ci). Each fuzz test takes a share of
# max_examples by its cost. No example database: it would be written into the working
# tree; a failure prints its example and a @reproduce_failure blob instead.
# Derandomised: every run draws the same examples, so a red run is a real, repeatable
# failure and never the luck of the draw. HYPOTHESIS_RANDOM=1 draws new ones, to explore.
_FUZZ = dict(
    deadline=None,
    database=None,
    derandomize=not os.environ.get("HYPOTHESIS_RANDOM"),
    print_blob=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
# The default run skips the explain phase: it reruns a failing case many times over.
settings.register_profile("default", max_examples=40, phases=[p for p in Phase if p is not Phase.explain], **_FUZZ)
settings.register_profile("ci", max_examples=1000, **_FUZZ)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture(scope="session")
def longley():
    """NIST's Longley data as statsmodels ships them, the target TOTEMP last (as gradfit reads a table)."""
    module = pytest.importorskip("statsmodels.datasets.longley")
    try:
        data = module.load_pandas().data
    except Exception as exc:  # the data ship with statsmodels; a stripped install may lack them
        pytest.skip(f"statsmodels' Longley data cannot be read offline: {exc}")
    inputs = [c for c in data.columns if c != "TOTEMP"]
    return data[[*inputs, "TOTEMP"]]


@pytest.fixture(scope="session")
def tiny_lecture(tmp_path_factory):
    """`gradfit lecture --quick` run once at toy sizes (test_lecture.TINY) through the CLI, keeping what it drew.

    Returns (folder, CLI result, figures by name, [(figure, traces)] of each paths figure): the lecture's
    tests share this one build instead of each making its own.
    """
    from typer.testing import CliRunner

    from gradfit import lecture, plots
    from gradfit.cli import app
    from test_lecture import TINY

    out = tmp_path_factory.mktemp("lecture")
    figures, traced = {}, []
    save, paths_figure = plots.save, plots.paths_figure

    def keep(fig, folder, name):
        figures[name] = fig
        return save(fig, folder, name)

    def keep_traces(surface, runs, **kwargs):
        fig = paths_figure(surface, runs, **kwargs)
        traced.append((fig, list(runs)))
        return fig

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(lecture, "QUICK", TINY)
        mp.setattr(plots, "save", keep)
        mp.setattr(plots, "paths_figure", keep_traces)
        result = CliRunner().invoke(app, ["lecture", "--quick", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out, result, figures, traced


@pytest.fixture(scope="session")
def browser():
    """One headless chromium for every browser test (see tests/chromium.py)."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="browser tests need: pip install playwright")
    from chromium import ARGS, executable

    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=executable(), args=ARGS)
        yield chromium
        chromium.close()

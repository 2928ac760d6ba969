"""Shared fixtures: the book's data beside the repository, float64, pinned randomness."""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np
import pytest

import gradfit as gf

# The book's data sets are CC BY-NC-ND: read them from the shared folder beside the
# repository, never from a copy inside the package (REFERENCE.md §4).
UDLBOOK = Path(__file__).resolve().parents[2] / "shared" / "data" / "udlbook"


@pytest.fixture(scope="session")
def udlbook() -> Path:
    """The folder holding linear_12.csv and gabor_30.csv."""
    if not (UDLBOOK / "linear_12.csv").is_file():
        pytest.fail(f"the book's data is not beside the repository (looked in {UDLBOOK.name}/ under ../shared/data)")
    return UDLBOOK


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

"""The benchmark cases, one module each.

A case module defines ``CASE``, a `benchmarks.harness.Case`, and keeps its heavy
imports (torch, scipy, ...) inside its tools' ``prepare`` functions, so that listing
the cases, or running one, does not import every other case's peers. Adding a case
is adding a module here; the runner finds it by name.
"""

from __future__ import annotations

import importlib
import pkgutil

from ..harness import Case


def names() -> list[str]:
    """The case modules in this package, sorted."""
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))


def load(name: str) -> Case:
    if name not in names():
        raise KeyError(f"no benchmark case {name!r}; known cases: {', '.join(names())}")
    case = importlib.import_module(f"{__name__}.{name}").CASE
    if not isinstance(case, Case):
        raise TypeError(f"{__name__}.{name}.CASE is not a Case")
    return case

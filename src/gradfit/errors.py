"""The one exception gradfit raises for bad input, and the message helpers it uses."""

from __future__ import annotations

from collections.abc import Iterable


class GradfitError(ValueError):
    """A problem with the user's input; the message names the problem and the fix."""


def unknown_name(kind: str, name: str, known: Iterable[str]) -> GradfitError:
    """The error for a name that is not in a registry, listing the names that are."""
    plural = kind + ("es" if kind.endswith("s") else "s")
    return GradfitError(f"unknown {kind} {name!r}; known {plural}: {', '.join(sorted(known))}")

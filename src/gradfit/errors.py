"""The exceptions gradfit raises: bad input (with the message helpers it uses), and an interrupted fit."""

from __future__ import annotations

from collections.abc import Iterable


class GradfitError(ValueError):
    """A problem with the user's input; the message names the problem and the fix."""


def unknown_name(kind: str, name: str, known: Iterable[str]) -> GradfitError:
    """The error for a name that is not in a registry, listing the names that are."""
    plural = kind[:-1] + "ies" if kind.endswith("y") else kind + ("es" if kind.endswith("s") else "s")
    return GradfitError(f"unknown {kind} {name!r}; known {plural}: {', '.join(sorted(known))}")


class Interrupted(KeyboardInterrupt):
    """A fit stopped by SIGINT (Ctrl-C) or SIGTERM, after finishing its current compiled chunk.

    ``result`` is where the fit got to: a `FitResult` (or `MultiFit`) with status
    ``interrupted``, its parameters and history up to the last finished step (or, when
    the signal came during the chunk that finished the fit, the whole result, with its
    own status: the fit is done, but the caller still learns of the signal).
    ``checkpoint`` is the checkpoint written as it stopped, if the fit was asked to keep
    one (resume from it with ``resume=``). A subclass of KeyboardInterrupt, so code that
    does not catch it stops as it would on Ctrl-C.
    """

    def __init__(self, result, checkpoint=None, signal_name: str = "SIGINT", steps: int | None = None):
        steps = getattr(result, "steps", None) if steps is None else steps
        super().__init__(f"fit interrupted by {signal_name}" + ("" if steps is None else f" after {steps} steps"))
        self.result = result
        self.checkpoint = checkpoint
        self.signal_name = signal_name

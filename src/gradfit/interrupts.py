"""Ctrl-C and SIGTERM during a fit: finish the current compiled chunk, then stop with what was done.

A signal that arrives while JAX runs a chunk would otherwise either wait for the chunk
and then raise KeyboardInterrupt somewhere in the host code, losing the whole fit, or
kill the process outright (SIGTERM). `deferred` notes the signal instead; the fit loop
looks at `pending` between chunks and stops cleanly, keeping every finished step. A
second Ctrl-C while one is pending stops at once, as Ctrl-C normally does.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

try:  # the C function under signal.signal, without its enum conversions (a fit installs and restores 4 handlers)
    from _signal import signal as _install
except ImportError:  # pragma: no cover - not CPython
    _install = signal.signal

SIGNALS = tuple(int(s) for s in (getattr(signal, "SIGINT", None), getattr(signal, "SIGTERM", None)) if s is not None)


class Pending:
    """The first signal received while deferred, if any."""

    def __init__(self):
        self.signal: int | None = None

    def __bool__(self) -> bool:
        return self.signal is not None

    @property
    def name(self) -> str:
        return signal.Signals(self.signal).name if self.signal is not None else ""


@contextmanager
def deferred() -> Iterator[Pending]:
    """Defer SIGINT and SIGTERM for the duration (main thread only; elsewhere they are left alone)."""
    pending = Pending()
    if threading.current_thread() is not threading.main_thread():
        yield pending
        return

    def note(signum, frame):
        if pending.signal is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: stop now
        pending.signal = signum

    previous = {}
    try:
        for s in SIGNALS:
            previous[s] = _install(s, note)
    except ValueError:  # not allowed here (e.g. an embedded interpreter): run without deferring
        for s, handler in previous.items():
            _install(s, handler)
        yield pending
        return
    try:
        yield pending
    finally:
        for s, handler in previous.items():
            _install(s, handler)

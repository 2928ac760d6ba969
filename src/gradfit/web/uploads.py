"""Uploaded CSV data: read by `gradfit.load` (as ``gradfit fit --data`` reads a file), kept by id.

An upload is the CSV's text; the answer names its columns and an id that later fits and
surfaces quote. The store is small and in memory: the least recently used upload is
dropped first, and a dropped id asks the page to upload again.
"""

from __future__ import annotations

import hashlib
import re
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np

from ..data import Dataset, column_names, load
from ..errors import GradfitError

#: An upload of at most 2 MiB and 50,000 rows: the page draws every point.
MAX_BYTES = 2 * 1024 * 1024
MAX_ROWS = 50_000
#: Uploads kept at once; each is at most a few MB of floats.
KEPT = 16
ID = re.compile(r"^[0-9a-f]{16}$")


def _safe_name(name: str | None) -> str:
    """The file's name as the errors quote it: letters, digits, ``.-_`` only, ending .csv."""
    stem = re.sub(r"[^A-Za-z0-9._-]", "_", Path(name or "upload").stem)[:60] or "upload"
    return f"{stem}.csv"


def read_csv(text: bytes, x: str | None, y: str | None, name: str | None = None) -> tuple[Dataset, tuple[str, ...]]:
    """The data set of one input column ``x`` and target ``y`` (by default the first column
    and the last), and all the file's column names; a `GradfitError` names what is wrong."""
    if not text.strip():
        raise GradfitError("the file is empty: upload a CSV with a header line and at least two rows")
    with tempfile.TemporaryDirectory(prefix="gradfit-upload-") as folder:
        path = Path(folder) / _safe_name(name)
        path.write_bytes(text)
        try:
            data, names = _load(path, x, y)
        except GradfitError as exc:  # name the file as uploaded, not where it was kept
            raise GradfitError(str(exc).replace(str(path), path.name)) from None
    if len(data) < 2:
        raise GradfitError(f"{path.name} has one row: a fit needs at least two examples")
    if len(data) > MAX_ROWS:
        raise GradfitError(f"{path.name} has {len(data):,} rows; the playground takes at most {MAX_ROWS:,}: "
                           "upload a sample of them")
    if np.ptp(data.x) == 0:
        raise GradfitError(f"column {data.x_names[0]!r} of {path.name} holds one value, {data.x[0]:g}, in every row: "
                           "choose an x column whose values vary")
    return data, names


def _load(path: Path, x: str | None, y: str | None) -> tuple[Dataset, tuple[str, ...]]:
    names = column_names(path)
    if len(names) < 2:
        raise GradfitError(f"{path.name} has {len(names)} column(s): it needs an input column and a target, "
                           "e.g. a header line x,y")
    y = y or names[-1]
    x = x or next(n for n in names if n != y)
    return load(path, [x], y), names


class Uploads:
    """Uploaded data sets by id, at most `KEPT`, the least recently used dropped first; thread-safe."""

    def __init__(self, kept: int = KEPT):
        self._kept = kept
        self._sets: OrderedDict[str, Dataset] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, text: bytes, data: Dataset) -> str:
        """Keep ``data`` (read from ``text``) and return its id, the same for the same text and columns."""
        key = hashlib.sha256(text + b"\0" + "\0".join((*data.x_names, data.y_name)).encode()).hexdigest()[:16]
        with self._lock:
            self._sets[key] = data
            self._sets.move_to_end(key)
            while len(self._sets) > self._kept:
                self._sets.popitem(last=False)
        return key

    def get(self, key: str) -> Dataset:
        """The data set of ``key``, or a `GradfitError` saying to upload it again."""
        with self._lock:
            data = self._sets.get(key)
            if data is not None:
                self._sets.move_to_end(key)
        if data is None:
            raise GradfitError(f"no uploaded data has id {key!r} (the server keeps the last {self._kept} uploads "
                               "and forgets them on restart): upload the file again")
        return data

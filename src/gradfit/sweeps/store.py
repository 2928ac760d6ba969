"""A sweep's output file: one row per run, written as groups of runs finish, and resumable.

A sweep appends a group of finished runs at a time (`Store.append`); each append
rewrites the whole file atomically (`gradfit.files.atomic_write`: a temporary file,
fsynced, renamed over the old one), so a kill at any moment, of a worker or of the
whole process, leaves the file as it was before that append or after it, never
half-written, and no row is lost or written twice. Rewriting the whole table costs
O(rows) per append, which is fine up to about 10⁵ rows; beyond that, write one file
per shard of the sweep.

Every row carries a string column ``run``: `run_key` of the run's configuration. A
sweep rerun with the same output file skips the runs whose keys are there
(`Store.done`), and an append drops rows whose key is already written, so a retried
group never duplicates a row.

The file says which sweep wrote it: a ``meta`` dict (the model, the data, the step cap,
... whatever the sweep holds fixed), stored as JSON ``{"format": "gradfit-sweep",
"version": 1, "meta": {...}}``

- in a Parquet file (``.parquet``, ``.pq``): in the schema's metadata under the key
  ``b"gradfit.sweeps"``; column types are kept;
- in a CSV file (``.csv``): in a sidecar ``<name>.meta.json`` beside it (``runs.csv``
  has ``runs.csv.meta.json``), so that any CSV reader reads the CSV plainly. The
  sidecar is written before the first rows. CSV keeps numbers exactly (floats are
  written and read back in their shortest round-trip form) but not column types: a
  column with no values at all reads back as floats, and an empty string as missing.

`Store.open` refuses a file written with another ``meta``, saying what differs.
There is one writer, the process that drives the sweep; two processes appending to
the same file would each overwrite the other's rows.
"""

from __future__ import annotations

import glob
import hashlib
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import GradfitError
from ..files import atomic_write

FORMAT = "gradfit-sweep"
VERSION = 1

#: The Parquet schema-metadata key of the header.
PARQUET_KEY = b"gradfit.sweeps"

#: How many differing ``meta`` entries a refusal lists before "and N more".
_MAX_LISTED = 4


def run_key(config: Mapping[str, Any]) -> str:
    """A run's key: 16 hex digits of the SHA-256 of its configuration as canonical JSON.

    Canonical: keys sorted, no spaces, NumPy scalars and arrays as Python numbers and
    lists, tuples as lists, floats in their shortest round-trip form (``repr``), so
    0.1 and the next float after it get different keys, and NaN, ±inf as ``NaN``,
    ``±Infinity``. The same configuration gets the same key in any process, on any
    platform. Types count: ``lr=1`` and ``lr=1.0`` are different keys, as are
    ``np.float32(0.1)`` (which is 0.100000001490116...) and ``0.1``; a sweep builds its
    configurations the same way each time, so this does not split a run in two.
    """
    if not isinstance(config, Mapping):
        raise GradfitError(f"run_key takes a run's configuration as a dict, not a {type(config).__name__}")
    text = json.dumps(_plain(config, "config"), sort_keys=True, separators=(",", ":"), allow_nan=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class Store:
    """A sweep's output file, opened for appending rows: `Store.open(path, meta)`."""

    def __init__(self, path: Path, meta: dict[str, Any], frame: pd.DataFrame, written: bool):
        self.path = path
        self.meta = meta
        self._format = _format_of(path)
        self._frame = frame
        self._done = frozenset(frame["run"]) if "run" in frame.columns else frozenset()
        self._written = written

    @classmethod
    def open(cls, path: str | Path, meta: Mapping[str, Any]) -> Store:
        """Open the sweep output ``path`` (``.parquet``, ``.pq`` or ``.csv``) for the sweep ``meta``.

        A file that does not exist yet is written at the first `append`. An existing one
        is read, and must have been written with the same ``meta`` (JSON-equal: tuples
        equal lists, ``1`` equals ``1.0``), else a `GradfitError` says what differs.
        Temporary files left beside it by a writer killed mid-write are removed.
        """
        path = Path(path)
        fmt = _format_of(path)
        if not isinstance(meta, Mapping):
            raise GradfitError(f"a sweep's meta is a dict of its fixed settings, not a {type(meta).__name__}")
        meta = _plain(meta, "meta")
        if path.is_dir():
            raise GradfitError(f"the sweep output {path} is a folder; give a file name")
        if not path.exists():
            folder = path.parent
            if not folder.is_dir():
                raise GradfitError(f"cannot write {path}: the folder {folder} does not exist; create it first")
            return cls(path, meta, pd.DataFrame(), written=False)
        frame, header = fmt.read(path)
        _check_meta(path, header["meta"], meta)
        _remove_leftovers(path)
        return cls(path, meta, frame, written=True)

    @property
    def done(self) -> frozenset[str]:
        """The ``run`` keys written so far."""
        return self._done

    def frame(self) -> pd.DataFrame:
        """All rows written so far (a copy)."""
        return self._frame.copy()

    def append(self, rows: pd.DataFrame) -> int:
        """Add ``rows`` (with a string column ``run``), skipping runs already written; returns how many were added.

        The whole table is then rewritten atomically. Columns keep their order: the
        file's first, then new ones in the order ``rows`` has them; a row lacking a
        column gets a missing value (NaN; null in Parquet). The index of ``rows`` is
        not written. A run key twice in ``rows`` is an error: two runs whose
        configurations differ only in settings left out of their key.
        """
        if not isinstance(rows, pd.DataFrame):
            raise GradfitError(f"append takes a pandas DataFrame of runs, not a {type(rows).__name__}")
        if "run" not in rows.columns:
            raise GradfitError("the rows to append have no 'run' column: give each row its run_key(config)")
        if not rows.columns.is_unique:
            twice = sorted({str(c) for c in rows.columns[rows.columns.duplicated()]})
            raise GradfitError(f"the rows to append have the column(s) {', '.join(twice)} twice; name each once")
        keys = rows["run"]
        bad = [k for k in keys if not isinstance(k, str)]
        if bad:
            raise GradfitError(f"run keys are strings from run_key(config), not {bad[0]!r} "
                               f"({type(bad[0]).__name__}); fix the 'run' column")
        repeated = keys[keys.duplicated()]
        if len(repeated):
            raise GradfitError(f"the rows to append hold run {repeated.iloc[0]!r} twice: two runs with the same "
                               "configuration; put every setting that varies between runs into run_key(config)")
        new = rows[~keys.isin(self._done)].reset_index(drop=True)
        if new.empty and self._written:
            return 0
        combined = _combine(self._frame, new)
        header = {"format": FORMAT, "version": VERSION, "meta": self.meta}
        payload = self._format.encode(combined, header, self.path)  # a failure here writes nothing
        if not self._written:
            self._format.start(self.path, header)
        atomic_write(self.path, lambda file: self._format.dump(payload, file))
        self._frame = combined
        self._done = self._done | frozenset(new["run"])
        self._written = True
        return len(new)

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r}, {len(self._frame)} runs)"


def read(path: str | Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    """A sweep output's rows and its ``meta``, for analysis and plots."""
    path = Path(path)
    fmt = _format_of(path)
    if not path.is_file():
        what = "is a folder" if path.is_dir() else "does not exist"
        raise GradfitError(f"cannot read the sweep output {path}: it {what}; give the file a sweep wrote")
    frame, header = fmt.read(path)
    return frame, header["meta"]


# -- formats ---------------------------------------------------------------------------------


class _Parquet:
    """Parquet through pyarrow; the header in the schema metadata."""

    suffixes = (".parquet", ".pq")

    def read(self, path: Path) -> tuple[pd.DataFrame, dict[str, Any]]:
        try:
            table = pq.read_table(path)
        except (OSError, pa.ArrowException, ValueError) as exc:
            raise GradfitError(f"{path} is not a readable Parquet file ({_reason(exc)}); give the file a sweep "
                               "wrote, or another --out") from None
        raw = (table.schema.metadata or {}).get(PARQUET_KEY)
        if raw is None:
            raise GradfitError(f"{path} is a Parquet file but not a gradfit sweep's output (it has no "
                               f"{PARQUET_KEY.decode()} metadata); give another --out")
        header = _parse_header(raw, path)
        frame = table.to_pandas()
        _check_rows(frame, path)
        return frame, header

    def start(self, path: Path, header: dict[str, Any]) -> None:
        """Nothing to do: the header travels inside the file."""

    def encode(self, frame: pd.DataFrame, header: dict[str, Any], path: Path) -> pa.Table:
        try:
            table = pa.Table.from_pandas(frame, preserve_index=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
            column = _column_named_in(exc, frame)
            raise GradfitError(f"cannot write {path}: {column}mixes values Parquet cannot hold in one column "
                               f"({_reason(exc)}); give each column one type, or write a .csv") from None
        schema_meta = dict(table.schema.metadata or {})
        schema_meta[PARQUET_KEY] = json.dumps(header, sort_keys=True).encode()
        return table.replace_schema_metadata(schema_meta)

    def dump(self, table: pa.Table, file: IO[bytes]) -> None:
        pq.write_table(table, file)


class _Csv:
    """CSV through pandas; the header in a sidecar ``<name>.meta.json``."""

    suffixes = (".csv",)

    @staticmethod
    def sidecar(path: Path) -> Path:
        return path.with_name(path.name + ".meta.json")

    def read(self, path: Path) -> tuple[pd.DataFrame, dict[str, Any]]:
        sidecar = self.sidecar(path)
        if not sidecar.is_file():
            raise GradfitError(f"{path} has no {sidecar.name} beside it, so it is not a gradfit sweep's output "
                               "(or its sidecar was lost); give another --out")
        try:
            raw = sidecar.read_bytes()
        except OSError as exc:
            raise GradfitError(f"cannot read {sidecar}: {exc.strerror or exc}") from None
        header = _parse_header(raw, sidecar)
        try:
            # A key of 16 hex digits can look like a number ("12345e0012345678"): read it as text.
            frame = pd.read_csv(path, dtype={"run": str}, **_EXACT_FLOATS)
        except (OSError, ValueError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
            raise GradfitError(f"{path} is not a readable CSV file ({_reason(exc)}); give the file a sweep "
                               "wrote, or another --out") from None
        _check_rows(frame, path)
        return frame, header

    def start(self, path: Path, header: dict[str, Any]) -> None:
        """Write the sidecar before the first rows, so that no CSV of rows is ever without it."""
        text = json.dumps(header, sort_keys=True, indent=2) + "\n"
        atomic_write(self.sidecar(path), lambda file: file.write(text.encode()))

    def encode(self, frame: pd.DataFrame, header: dict[str, Any], path: Path) -> bytes:
        return frame.to_csv(index=False, lineterminator="\n").encode()

    def dump(self, data: bytes, file: IO[bytes]) -> None:
        file.write(data)


_FORMATS = (_Parquet(), _Csv())

#: pandas 3 reads floats back exactly by default (and deprecates asking); pandas 2 must be asked.
_EXACT_FLOATS = {"float_precision": "round_trip"} if int(pd.__version__.split(".")[0]) < 3 else {}


def _format_of(path: Path) -> _Parquet | _Csv:
    suffix = path.suffix.lower()
    for fmt in _FORMATS:
        if suffix in fmt.suffixes:
            return fmt
    known = ", ".join(s for fmt in _FORMATS for s in fmt.suffixes)
    raise GradfitError(f"cannot tell the format of the sweep output {path}: give a file name ending in {known}")


# -- helpers ---------------------------------------------------------------------------------


def _plain(value: Any, where: str) -> Any:
    """``value`` as plain JSON data (dict, list, str, int, float, bool, None); ``where`` names it in errors."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return str(value)  # np.str_ as a plain str
    if isinstance(value, int):
        return int(value)  # an IntEnum as its number
    if isinstance(value, float):
        return float(value)  # np.float64 is a float; json writes float.__repr__ of it
    if isinstance(value, np.ndarray):
        return _plain(value.tolist(), where)
    if isinstance(value, np.generic):
        item = value.item()
        if isinstance(item, np.generic) or not isinstance(item, (bool, int, float, str)):
            raise GradfitError(f"{where} holds a NumPy {value.dtype} value, which has no JSON form; "
                               "give a number, string or bool")
        return item
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise GradfitError(f"{where} has the key {k!r} ({type(k).__name__}); keys must be strings")
            out[k] = _plain(v, f"{where}.{k}")
        return out
    if isinstance(value, (list, tuple)):
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    raise GradfitError(f"{where} is a {type(value).__name__}, which has no JSON form; give a number, string, "
                       "bool, None, list or dict (a function or model by its name)")


def _parse_header(raw: bytes, source: Path) -> dict[str, Any]:
    try:
        header = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise GradfitError(f"the sweep metadata in {source} is not valid JSON; the file is damaged: "
                           "give another --out, or delete it to start again") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT or not isinstance(header.get("meta"), dict):
        raise GradfitError(f"{source} does not hold a gradfit sweep's metadata; give another --out")
    if header.get("version") != VERSION:
        raise GradfitError(f"{source} was written by a version {header.get('version')} sweep store; this gradfit "
                           f"reads version {VERSION}: give another --out")
    return header


def _check_rows(frame: pd.DataFrame, path: Path) -> None:
    if "run" not in frame.columns:
        raise GradfitError(f"{path} has no 'run' column, so it is not a gradfit sweep's output; give another --out")


def _check_meta(path: Path, there: dict[str, Any], now: dict[str, Any]) -> None:
    """Refuse a file written by another sweep, naming (up to `_MAX_LISTED` of) the settings that differ."""
    have, want = _flat(there), _flat(now)
    keys = sorted(set(have) | set(want))
    differ = [key for key in keys if not _same(have.get(key, _MISSING), want.get(key, _MISSING))]
    if not differ:
        return
    listed = [f"{key}: {_show(have.get(key, _MISSING))} there, {_show(want.get(key, _MISSING))} now"
              for key in differ[:_MAX_LISTED]]
    more = f"; and {len(differ) - _MAX_LISTED} more" if len(differ) > _MAX_LISTED else ""
    raise GradfitError(f"{path} holds another sweep ({'; '.join(listed)}{more}): give a new --out, "
                       "or delete the file to start again")


_MISSING = object()


def _flat(d: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts as {"optimizer.lr": 0.05, ...}; an empty dict is a value of its own."""
    if isinstance(d, dict) and d:
        out: dict[str, Any] = {}
        for k, v in d.items():
            out.update(_flat(v, f"{prefix}.{k}" if prefix else k))
        return out
    return {prefix: d}


def _same(a: Any, b: Any) -> bool:
    """JSON-equal: same JSON text, or numbers of equal value (1 and 1.0); a bool is no number here."""
    if a is _MISSING or b is _MISSING:
        return a is b
    if _canonical(a) == _canonical(b):
        return True
    numbers = (int, float)
    if isinstance(a, numbers) and isinstance(b, numbers) and not isinstance(a, bool) and not isinstance(b, bool):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return False


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _show(value: Any) -> str:
    text = "nothing" if value is _MISSING else _canonical(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _remove_leftovers(path: Path) -> None:
    """Delete the temporary files of writes to ``path`` (and its sidecar) that a kill cut short.

    `atomic_write` names them ``.<name>.<random>.tmp``; with one writer, the one opening
    the store, any such file is a leftover, never a write in progress.
    """
    for leftover in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        try:
            leftover.unlink()
        except OSError:
            pass  # clutter, not harm: the store never reads it


def _combine(old: pd.DataFrame, new: pd.DataFrame) -> pd.DataFrame:
    """``old`` then ``new``, the columns in the order old's, then new's new ones."""
    columns = list(old.columns) + [c for c in new.columns if c not in set(old.columns)]
    if old.empty:
        return new.reindex(columns=columns)
    if new.empty:
        return old.reindex(columns=columns)
    return pd.concat([old.reindex(columns=columns), new.reindex(columns=columns)], ignore_index=True)


def _column_named_in(exc: Exception, frame: pd.DataFrame) -> str:
    """'column lr ' when pyarrow's message names a column of ``frame``, else ''."""
    text = str(exc)
    for column in frame.columns:
        if f"column {column}" in text or f"'{column}'" in text:
            return f"column {column} "
    return ""


def _reason(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text if len(text) <= 100 else text[:97] + "..."

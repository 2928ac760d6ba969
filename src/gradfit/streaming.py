"""Data larger than memory: mini-batches streamed from Parquet or CSV files.

`stream` opens the files from their metadata (a Parquet footer, a CSV header and one
counting pass) and returns a `Stream`. The stream makes, in a background thread, either
an endless run of blocks of optimisation steps (`Stream.blocks`, for a fit) or one pass
over the data in file order (`Stream.scan`, for a full-data loss); `Prefetch` is that
thread's running side, read by the consumer one block at a time.

How an epoch is shuffled (docs/streaming.md says it for users):

- EXACT, when the shuffle buffer holds every row (``buffer_rows >= n_rows``): the data are
  read once and kept, and epoch e visits the rows (in file order) in the order
  ``epoch_permutation(n_rows, seed, e)``, so the batches are those of the in-memory fit.
- BUFFERED, otherwise: epoch e reads the read units (Parquet row groups, whole CSV files)
  in an order permuted from (seed, e), and passes the rows through a buffer of
  ``buffer_rows`` slots. Once the buffer is full, each arriving row replaces the row in a
  uniformly random slot, which goes out: the classic shuffle buffer, done for a whole
  chunk of rows at once (`_exchange`). At the end of the epoch the buffer is emptied in a
  random order. Every row goes out exactly once an epoch, and the order depends only on
  the files' row groups, ``buffer_rows``, the seed and the epoch (not on the batch size,
  the dtype or how pyarrow cuts the reads).
"""

from __future__ import annotations

import math
import os
import queue
import re
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from glob import glob
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from . import data as _data
from .data import Dataset, epoch_permutation
from .errors import GradfitError

#: The default shuffle buffer: as many rows as fit in this many bytes of float64 (x and y).
DEFAULT_BUFFER_BYTES = 256 << 20
#: Rows are read, converted and shuffled in chunks of about this many bytes of float64
#: (and at most a quarter of the buffer), so one read never dwarfs the buffer.
READ_BYTES = 4 << 20
MIN_READ_ROWS = 1024
#: A Parquet row group of up to this many bytes (its chosen columns as float64) is read
#: whole, in one call, which decodes its columns in parallel and is about twice as fast
#: as reading it in batches; a larger one is read in batches of PIECE_BYTES.
UNIT_BYTES = 64 << 20
PIECE_BYTES = 16 << 20
#: Parquet column chunks are read through a buffer of this size, not whole: a file written
#: as one huge row group is then read in bounded memory.
PARQUET_BUFFER_BYTES = 1 << 18
#: The CSV reader's block size (it doubles for a file whose header is longer).
CSV_BLOCK_BYTES = 1 << 20
#: Blocks made ahead of the consumer.
DEPTH = 2
#: Which shuffle made an order; it goes into the fingerprint, so a checkpoint made by an
#: older shuffle is not resumed with a newer one.
SHUFFLE_VERSION = 1
#: Slots are drawn this many at a time (as many as the buffer has slots, if fewer, but
#: at least _MIN_SLOT_DRAWS), so the draws do not depend on how rows arrive.
_SLOT_DRAWS = 1 << 16
_MIN_SLOT_DRAWS = 1 << 10
#: Keeps the buffered shuffle's random stream apart from epoch_permutation's.
_SALT = 0x5EED_5B0F

FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".tsv": "csv", ".txt": "csv"}
#: What a folder is searched for (a .txt file is read only when named).
_FOLDER_SUFFIXES = (".parquet", ".pq", ".csv", ".tsv")


# -- the files -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _File:
    """One data file: where it is, what it was when opened, and its read units."""

    path: Path
    size: int
    mtime_ns: int
    group_rows: tuple[int, ...]  # rows of each Parquet row group; a CSV file is one group
    metadata: Any = None  # the Parquet footer, so reading need not parse it again
    delimiter: str | None = None
    header_bytes: int = 0

    @property
    def rows(self) -> int:
        return sum(self.group_rows)

    @property
    def group_starts(self) -> tuple[int, ...]:
        """The file row (from 0) at which each group starts."""
        return tuple(int(s) for s in np.cumsum((0, *self.group_rows[:-1])))


def _find(paths: Any) -> list[Path]:
    """The files named by a path, a folder, a glob or a list of them, sorted by path."""
    items = [paths] if isinstance(paths, (str, os.PathLike)) else paths
    try:
        items = list(items)
    except TypeError:
        items = None
    if not items:
        raise GradfitError("no data files given: pass a file, a folder, a glob such as 'data/*.parquet', or a list")
    found: set[Path] = set()
    for item in items:
        if not isinstance(item, (str, os.PathLike)):
            raise GradfitError(f"data files are named by paths or glob patterns, not {type(item).__name__}")
        text = os.fspath(item)
        path = Path(text).expanduser()
        if path.is_file():
            found.add(path)
        elif path.is_dir():
            inside = _data_files_in(path)
            if not inside:
                raise GradfitError(f"the folder {text} holds no {', '.join(_FOLDER_SUFFIXES)} files")
            found.update(inside)
        elif re.search(r"[*?[]", text):
            matched = [Path(m) for m in glob(os.path.expanduser(text), recursive=True)]
            files = [m for m in matched if m.is_file()] + [f for m in matched if m.is_dir() for f in _data_files_in(m)]
            if not files:
                raise GradfitError(f"no file matches {text!r}; check the pattern and the folder it starts from")
            found.update(files)
        else:
            raise GradfitError(f"no such file or folder: {text}; check the path")
    return sorted(found, key=str)


def _data_files_in(folder: Path) -> list[Path]:
    """A folder's data files, its subfolders' too, leaving out hidden and _-prefixed names
    (the _SUCCESS and _metadata files that Spark and Dask write beside Parquet parts)."""
    return [
        p for p in folder.rglob("*")
        if p.is_file() and p.suffix.lower() in _FOLDER_SUFFIXES
        and not any(part.startswith((".", "_")) for part in p.relative_to(folder).parts)
    ]


def _format(files: Sequence[Path]) -> str:
    kinds: dict[str, Path] = {}
    for path in files:
        kind = FORMATS.get(path.suffix.lower())
        if kind is None:
            raise GradfitError(f"cannot stream {path}: gradfit reads .parquet, .pq, .csv and .tsv files")
        kinds.setdefault(kind, path)
    if len(kinds) > 1:
        raise GradfitError(
            f"the data mix Parquet files ({kinds['parquet']}) and CSV files ({kinds['csv']}); stream one format"
        )
    return next(iter(kinds))


def _first_line(err: BaseException) -> str:
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__


def _stat(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_size, st.st_mtime_ns


def _open_parquet(path: Path) -> tuple[_File, tuple[str, ...], dict[str, pa.DataType]]:
    """A Parquet file from its footer alone: its row groups, column names and types."""
    try:
        with pq.ParquetFile(path, pre_buffer=False) as pf:
            metadata, schema = pf.metadata, pf.schema_arrow
    except (pa.ArrowException, OSError) as err:
        raise GradfitError(
            f"cannot read {path} as Parquet ({_first_line(err)}); replace the file or leave it out of the data"
        ) from None
    groups = tuple(metadata.row_group(g).num_rows for g in range(metadata.num_row_groups))
    return (_File(path, *_stat(path), groups, metadata=metadata), tuple(schema.names),
            {f.name: f.type for f in schema})


def _open_csv(path: Path) -> tuple[_File, tuple[str, ...]]:
    """A CSV file's header and delimiter (as `gradfit.load` reads them); its rows are counted later."""
    source = _data._open(path, None)
    return _File(path, *_stat(path), (0,), delimiter=source.delimiter, header_bytes=source.header_bytes), source.names


def _csv_reader(file: _File, columns: Sequence[str] | None = None, types: dict | None = None, **convert):
    options = pacsv.ConvertOptions(include_columns=list(columns or ()), column_types=types or {}, **convert)
    return pacsv.open_csv(
        file.path,
        read_options=pacsv.ReadOptions(block_size=max(CSV_BLOCK_BYTES, 2 * file.header_bytes)),
        parse_options=pacsv.ParseOptions(delimiter=file.delimiter),
        convert_options=options,
    )


def _csv_types(file: _File) -> dict[str, pa.DataType]:
    """Column types as pyarrow infers them from the file's first block."""
    try:
        return {f.name: f.type for f in _csv_reader(file).schema}
    except (pa.ArrowException, OSError) as err:
        raise _csv_error(file, err, ()) from None


def _csv_error(file: _File, err: BaseException, names: Sequence[str]) -> GradfitError:
    """A one-line error for a failed CSV read, naming the value that is not a number if that is why."""
    text = _first_line(err)
    bad = re.search(r"column #(\d+): CSV conversion error to \w+: invalid value '(.*)'", text)
    if bad and int(bad.group(1)) < len(names):
        column = names[int(bad.group(1))]
        row = _first_text_row(file, column)
        at = "" if row is None else f" at row {row} (counted from 0 after the header)"
        return GradfitError(
            f"column {column!r} of {file.path} holds {bad.group(2)!r}{at}, which is not a number; "
            "fix or drop those rows, or leave the column out (x=[...])"
        )
    if "straddl" in text:
        return GradfitError(f"cannot read {file.path}: a line is longer than {CSV_BLOCK_BYTES >> 20} MB; "
                            "split long lines or convert the file to Parquet")
    return GradfitError(f"cannot read {file.path}: {text}")


def _first_text_row(file: _File, column: str) -> int | None:
    """The first data row (from 0) whose ``column`` is neither empty nor a number; None if none is found."""
    row = 0
    try:
        for batch in _csv_reader(file, [column], {column: pa.string()}, strings_can_be_null=True):
            values = batch.column(0)
            try:
                values.cast(pa.float64())
            except pa.ArrowInvalid:
                for k, v in enumerate(values.to_pylist()):
                    if v is not None and v.strip() and not _data._is_number(v):
                        return row + k
            row += batch.num_rows
    except (pa.ArrowException, OSError):
        return None
    return None


def _is_numeric(kind: pa.DataType) -> bool:
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    return any(test(kind) for test in (pa.types.is_integer, pa.types.is_floating, pa.types.is_boolean,
                                         pa.types.is_decimal, pa.types.is_null))


def _columns(names: Sequence[str], x: Any, y: Any, first: Path) -> tuple[list[str], str]:
    """The input and target columns chosen by x and y (as `gradfit.as_dataset` chooses them on a table)."""
    if not names:
        raise GradfitError(f"{first} has no columns")
    y = names[-1] if y is None else y
    if isinstance(x, str):  # one column name, not a sequence of one-letter names
        x = [x]
    x = None if x is None else list(x)
    for col in [*(x or ()), y]:
        if col not in names:
            listed = ", ".join(map(_data._column_label, names[:30])) + (", ..." if len(names) > 30 else "")
            raise GradfitError(f"{first} has no column {col!r}; its columns are: {listed}")
    if x is not None:
        if y in x:
            raise GradfitError(f"column {y!r} is the target; it cannot be an input too: leave it out of x")
        twice = next((c for i, c in enumerate(x) if c in x[:i]), None)
        if twice is not None:
            raise GradfitError(f"column {twice!r} is named twice in x; name each input column once")
    return x, y


# -- stream(): open the files, choose the columns ---------------------------------------------


def stream(paths: Any, x: Sequence[str] | str | None = None, y: str | None = None, *,
           buffer_rows: int | None = None, name: str | None = None) -> Stream:
    """Stream data too large for memory from Parquet or CSV files: returns a `Stream`.

    ``paths``: a file, a folder (its .parquet/.pq/.csv/.tsv files, subfolders too, leaving
    out names that start with "." or "_"), a glob such as ``"data/*.parquet"``, or a list
    of these. The files are taken sorted by path (the file order) and must be of one
    format (from the suffix) and have the same columns.

    ``x`` names the input columns (default: every numeric column but y), ``y`` the target
    (default: the last column), as `gradfit.as_dataset` does on a table: one input column
    gives x of shape (B,), several give (B, D) in the order named.

    ``buffer_rows``: the shuffle buffer, in rows. Default: the rows that fit in 256 MiB of
    float64 x and y (256 MiB / (8 (D + 1)) rows), and at most the number of rows, so data
    of up to 256 MiB are shuffled exactly. With ``buffer_rows >= n_rows`` the shuffle is
    exact and the data are read once and kept in memory; below, it is buffered (see
    `Stream`).

    Checked here, from the Parquet footers (no data are read; a CSV file is read once to
    count its rows and check the chosen columns hold numbers): that files exist, are
    readable, share their columns, and that the chosen columns are numeric. NaN, inf and
    empty values are found while streaming, and raised in the consumer naming the file,
    column and row.
    """
    if buffer_rows is not None and (
        isinstance(buffer_rows, bool) or not isinstance(buffer_rows, (int, np.integer)) or buffer_rows < 1
    ):
        raise GradfitError(f"buffer_rows must be a whole number of rows >= 1, not {buffer_rows!r}")
    files = _find(paths)
    kind = _format(files)
    if kind == "parquet":
        opened = [_open_parquet(p) for p in files]
        first_names, first_types = opened[0][1], opened[0][2]
    else:
        opened = [(*_open_csv(p), None) for p in files]
        first_names = opened[0][1]
        first_types = _csv_types(opened[0][0])
    first = files[0]
    _check_unique(first_names, first)
    x_names, y_name = _columns(first_names, x, y, first)
    if x_names is None:
        x_names = [c for c in first_names if c != y_name and _is_numeric(first_types[c])]
        if not x_names:
            raise GradfitError(f"{first} has no numeric column besides the target {y_name!r}; "
                               "name the input columns with x=[...]")
    if not x_names:
        raise GradfitError("x names no column: a fit needs at least one input column, e.g. x=['a', 'b']")
    chosen = [*x_names, y_name]
    for file, names, file_types in opened:
        _check_unique(names, file.path)
        _check_same(file.path, names, first, first_names, chosen, y_name)
        for col in chosen:
            kind_of = (file_types or first_types)[col]
            if not _is_numeric(kind_of):
                raise GradfitError(
                    f"column {col!r} of {file.path if file_types else first} holds {kind_of} values, not numbers; "
                    "leave it out (x=[...], y=...) or convert it to numbers first"
                )
    csv_types = None
    if kind == "csv":
        # Booleans stay booleans (float64 would refuse "true"); every other chosen column is
        # read as float64, so a number written as text anywhere is refused here, naming it.
        csv_types = {c: pa.bool_() if pa.types.is_boolean(first_types[c]) else pa.float64() for c in chosen}
        sources = [_count_csv(file, names, chosen, csv_types) for file, names, _ in opened]
    else:
        sources = [file for file, _, _ in opened]
    n_rows = sum(f.rows for f in sources)
    if n_rows == 0:
        raise GradfitError(f"the data files ({_listed_files(files)}) hold no rows: there is nothing to fit")
    default = max(1, DEFAULT_BUFFER_BYTES // (8 * (len(x_names) + 1)))
    if buffer_rows is None:
        buffer_rows = min(default, n_rows)
    if name is None:
        name = _default_name(paths, files)
    return Stream(sources, kind, tuple(x_names), y_name, str(name), int(buffer_rows), csv_types)


def _default_name(paths: Any, files: Sequence[Path]) -> str:
    """A file's stem, a folder's name, a glob's folder, or the folder the files share."""
    if len(files) == 1:
        return files[0].stem
    if isinstance(paths, (str, os.PathLike)):
        given = Path(os.fspath(paths))
        name = given.name if given.is_dir() else given.parent.name
    else:
        name = Path(os.path.commonpath([str(f.absolute()) for f in files])).name
    return name or "stream"


def _listed_files(files: Sequence[Path]) -> str:
    return ", ".join(map(str, files[:3])) + (f", ... ({len(files)} files)" if len(files) > 3 else "")


def _check_unique(names: Sequence[str], path: Path) -> None:
    seen: set[str] = set()
    for n in names:
        if n in seen:
            raise GradfitError(f"{path} has two columns named {n!r}; rename one")
        seen.add(n)


def _check_same(path: Path, names: Sequence[str], first: Path, first_names: Sequence[str],
                chosen: Sequence[str], y_name: str) -> None:
    """Every file has the first file's columns: a chosen one missing is named as such."""
    present = set(names)
    for col in chosen:
        if col not in present:
            role = "the target" if col == y_name else "an input"
            raise GradfitError(f"{path} has no column {col!r} ({role}, which {first} has); "
                               "give every file the same columns, or leave this file out")
    known = set(first_names)
    extra = next((c for c in names if c not in known), None)
    missing = next((c for c in first_names if c not in present), None)
    if extra is not None or missing is not None:
        differs = (f"lacks column {missing!r}, which {first} has" if missing is not None
                   else f"has a column {extra!r} that {first} lacks")
        raise GradfitError(f"{path} {differs}: the files' columns differ; "
                           "give every file the same columns, or leave this file out")


def _count_csv(file: _File, names: Sequence[str], chosen: Sequence[str], types: dict) -> _File:
    """The CSV file with its rows counted, reading the chosen columns as they will be streamed."""
    rows = 0
    try:
        for batch in _csv_reader(file, dict.fromkeys(chosen), types):
            rows += batch.num_rows
    except (pa.ArrowException, OSError) as err:
        raise _csv_error(file, err, names) from None
    return _File(file.path, file.size, file.mtime_ns, (rows,), delimiter=file.delimiter,
                 header_bytes=file.header_bytes)


# -- the stream -------------------------------------------------------------------------------


class _Stopped(Exception):
    """Raised inside the background thread when its consumer has closed it."""


def _check_stop(stop: threading.Event | None) -> None:
    if stop is not None and stop.is_set():
        raise _Stopped


class Stream:
    """Data read from files in the background, a block of optimisation steps at a time.

    Made by `stream`. Attributes (read-only): ``files`` (paths, in file order),
    ``x_names``, ``y_name``, ``name``, ``buffer_rows``, ``n_rows`` (from the Parquet
    metadata; counted once for CSV), ``n_inputs`` and ``exact`` (``buffer_rows >= n_rows``).

    Epochs are those of the in-memory fit: an epoch is ⌈n_rows / B⌉ batches of B rows,
    the last one short and padded with masked rows; global step t is batch t mod ⌈n/B⌉
    of epoch ⌊t / ⌈n/B⌉⌋. Each epoch's order is made afresh from (seed, epoch):

    - exact (``buffer_rows >= n_rows``): the rows, in file order, in the order
      ``gradfit.data.epoch_permutation(n_rows, seed, epoch)``: exactly the batches
      ``epoch_batches`` draws from `read_all`. The data are read once, on the first
      `blocks`, and kept (one copy per dtype) as long as the stream.
    - buffered: the read units (Parquet row groups; whole CSV files) in a permuted order,
      through a buffer of ``buffer_rows`` slots; once it is full, each arriving row takes
      a uniformly random slot, whose row goes out; at the end of the epoch the buffer
      goes out in a random order. Every row is visited exactly once an epoch. A row goes
      out after a geometric number of later arrivals with mean ``buffer_rows``, so rows
      mix within about ``buffer_rows`` of their place in the reading order, and units
      mix only by their order. Rows far apart in the files are thus less likely to
      share a batch than under an exact shuffle; a row group much larger than the buffer
      is read in order (Parquet cannot start a read inside a row group without decoding
      its start), so its neighbours stay near each other.

    Memory: the buffer (``buffer_rows`` × (D + 1) numbers of the dtype; in exact mode the
    whole data), up to four blocks (two queued, one being filled, one with the consumer),
    the read unit (a row group of up to UNIT_BYTES = 64 MiB as float64, read whole; a
    larger one in pieces of PIECE_BYTES = 16 MiB), one converted chunk (at most 4 MiB, and
    a quarter of the buffer), and pyarrow's read buffer and dictionary page for each
    chosen column (about 1 MiB a column).
    """

    def __init__(self, sources: Sequence[_File], kind: str, x_names: tuple[str, ...], y_name: str,
                 name: str, buffer_rows: int, csv_types: dict | None):
        self._sources = tuple(sources)
        self._kind = kind
        self._csv_types = csv_types
        self.files: tuple[str, ...] = tuple(str(f.path) for f in self._sources)
        self.x_names = x_names
        self.y_name = y_name
        self.name = name
        self.buffer_rows = buffer_rows
        self.n_rows = sum(f.rows for f in self._sources)
        self._columns = (*x_names, y_name)
        self._units = tuple(
            (index, group, start, rows)
            for index, file in enumerate(self._sources)
            for group, (start, rows) in enumerate(zip(file.group_starts, file.group_rows))
            if rows
        )
        row_bytes = 8 * len(self._columns)
        self._read_rows = max(MIN_READ_ROWS, min(READ_BYTES // row_bytes, buffer_rows // 4))
        self._cache: dict[np.dtype, np.ndarray] = {}
        self._lock = threading.Lock()

    @property
    def n_inputs(self) -> int:
        return len(self.x_names)

    @property
    def exact(self) -> bool:
        return self.buffer_rows >= self.n_rows

    def __repr__(self) -> str:
        mode = "exact" if self.exact else f"buffer {self.buffer_rows:,} rows"
        return (f"Stream({self.name!r}: {len(self.files)} {self._kind} file(s), {self.n_rows:,} rows, "
                f"x={list(self.x_names)}, y={self.y_name!r}, {mode})")

    def fingerprint(self) -> dict[str, Any]:
        """What the batches depend on, as JSON-able data: a checkpoint keeps it, and a resumed
        fit compares it with the stream it is given (the files by path, size and mtime)."""
        return {
            "format": self._kind,
            "files": [{"path": str(f.path.resolve()), "size": f.size, "mtime_ns": f.mtime_ns, "rows": f.rows}
                      for f in self._sources],
            "x": list(self.x_names),
            "y": self.y_name,
            "buffer_rows": self.buffer_rows,
            "n_rows": self.n_rows,
            "shuffle_version": SHUFFLE_VERSION,
        }

    # -- the public passes ----------------------------------------------------------------

    def blocks(self, batch_size: int, steps: int, seed: int, first_step: int, dtype) -> Prefetch:
        """Endless blocks of ``steps`` consecutive global steps from step ``first_step``.

        Each block is ``(x, y, mask)`` in ``dtype``: x of shape (steps, B) or (steps, B, D),
        y and mask (steps, B); padding rows are zeros with mask False. Blocks from
        ``first_step`` are exactly those the stream from step 0 makes at those steps: a
        resumed epoch is made again from (seed, epoch) and its start skipped (in buffered
        mode by reading it).
        """
        batch_size = _whole("batch_size", batch_size, 1)
        steps = _whole("steps", steps, 1)
        seed = _whole("seed", seed, 0)
        first_step = _whole("first_step", first_step, 0)
        dtype = _float_dtype(dtype)
        return Prefetch(lambda stop: self._blocks(stop, batch_size, steps, seed, first_step, dtype))

    def scan(self, rows: int, dtype) -> Prefetch:
        """One pass over the data in file order, in blocks ``(x, y, mask)`` of ``rows`` rows:
        x of shape (rows,) or (rows, D), y and mask (rows,); the last block padded with zeros
        and mask False. Ends after the data."""
        rows = _whole("rows", rows, 1)
        dtype = _float_dtype(dtype)
        return Prefetch(lambda stop: self._scan(stop, rows, dtype))

    def read_all(self, dtype=np.float64) -> Dataset:
        """The whole data in file order, as a `Dataset` (whose arrays are float64; ``dtype``
        rounds the values first). For tests and small data: it holds every row in memory."""
        dtype = _float_dtype(dtype)
        table = self._cache.get(dtype)
        if table is None:
            table = self._read_everything(dtype, None)
        d = self.n_inputs
        x = table[:, :d] if d > 1 else table[:, 0]
        return Dataset(np.array(x), np.array(table[:, d]), x_names=self.x_names, y_name=self.y_name, name=self.name)

    # -- in the background thread -----------------------------------------------------------

    def _blocks(self, stop, batch_size, steps, seed, first_step, dtype) -> Iterator[tuple]:
        n = self.n_rows
        per_epoch = -(-n // batch_size)
        pad = per_epoch * batch_size - n
        if self.exact:
            table = self._resident(dtype, stop)

            def rows_of(epoch: int, skip: int) -> Iterator[np.ndarray]:
                order = epoch_permutation(n, seed, epoch)
                for i in range(skip, n, self._read_rows):
                    _check_stop(stop)
                    yield table[order[i:i + self._read_rows]]
        else:
            buffer = np.empty((self.buffer_rows, len(self._columns)), dtype)

            def rows_of(epoch: int, skip: int) -> Iterator[np.ndarray]:
                return _skipped(self._buffered(epoch, seed, dtype, stop, buffer), skip)

        def pieces() -> Iterator[np.ndarray | int]:
            epoch, batch = divmod(first_step, per_epoch)
            skip = batch * batch_size
            while True:
                yield from rows_of(epoch, skip)
                if pad:
                    yield pad
                epoch, skip = epoch + 1, 0

        return _assemble(pieces(), (steps, batch_size), self.n_inputs, dtype)

    def _scan(self, stop, rows, dtype) -> Iterator[tuple]:
        table = self._cache.get(dtype)
        if table is None:
            pieces: Iterable[np.ndarray] = self._chunks(self._units, dtype, stop)
        else:
            pieces = (table[i:i + self._read_rows] for i in range(0, self.n_rows, self._read_rows))
        return _assemble(pieces, (rows,), self.n_inputs, dtype)

    def _resident(self, dtype: np.dtype, stop) -> np.ndarray:
        """The whole data in ``dtype``, read on first use and kept (exact mode)."""
        with self._lock:
            table = self._cache.get(dtype)
            if table is None:
                table = self._read_everything(dtype, stop)
                table.setflags(write=False)
                self._cache[dtype] = table
        return table

    def _read_everything(self, dtype: np.dtype, stop) -> np.ndarray:
        table = np.empty((self.n_rows, len(self._columns)), dtype)
        pos = 0
        for rows in self._chunks(self._units, dtype, stop):
            table[pos:pos + len(rows)] = rows
            pos += len(rows)
        return table

    def _buffered(self, epoch: int, seed: int, dtype, stop, buffer: np.ndarray) -> Iterator[np.ndarray]:
        """Epoch ``epoch``'s rows in its buffered-shuffle order, a chunk at a time."""
        unit_rng, slot_rng, flush_rng = (
            np.random.default_rng(s) for s in np.random.SeedSequence([seed, epoch, _SALT]).spawn(3)
        )
        order = unit_rng.permutation(len(self._units))
        slots = _Slots(slot_rng, len(buffer))
        units = [self._units[i] for i in order]
        # Reading and decoding run in a thread of their own, ahead of the shuffle: the two
        # take about as long as each other, and pyarrow releases the GIL while it reads.
        with Prefetch(lambda inner: self._chunks(units, dtype, inner), name="gradfit-stream-read") as chunks:
            yield from self._mixed(chunks, buffer, slots, flush_rng, stop)

    def _mixed(self, chunks, buffer: np.ndarray, slots, flush_rng, stop) -> Iterator[np.ndarray]:
        """The rows of ``chunks`` through the shuffle buffer, then the buffer emptied in a random order."""
        filled = 0
        for rows in chunks:
            _check_stop(stop)
            if filled < len(buffer):
                take = min(len(buffer) - filled, len(rows))
                buffer[filled:filled + take] = rows[:take]
                filled += take
                rows = rows[take:]
                if not len(rows):
                    continue
            yield _exchange(buffer, rows, slots.take(len(rows)))
        rest = flush_rng.permutation(filled)
        for i in range(0, filled, self._read_rows):
            _check_stop(stop)
            yield buffer[rest[i:i + self._read_rows]]

    def _chunks(self, units: Iterable[tuple], dtype, stop) -> Iterator[np.ndarray]:
        """The rows of ``units`` in order, as float arrays (k, D + 1) of at most read_rows rows,
        y last; a NaN, inf or empty value raises, naming its file, column and row."""
        for index, group, start, _ in units:
            file = self._sources[index]
            try:
                unchanged = _stat(file.path) == (file.size, file.mtime_ns)
            except OSError as err:
                raise GradfitError(f"cannot read {file.path} ({_first_line(err)}); it was there when the stream "
                                   "was opened") from None
            if not unchanged:
                raise GradfitError(f"{file.path} changed after the stream was opened (its size or time differ); "
                                   "open the stream again")
            row = start
            try:
                for batch in self._batches(file, group):
                    for at in range(0, batch.num_rows, self._read_rows):
                        _check_stop(stop)
                        piece = batch.slice(at, self._read_rows)
                        yield self._numbers(piece, dtype, file, row)
                        row += piece.num_rows
            except (pa.ArrowException, OSError) as err:
                if self._kind == "csv":
                    raise _csv_error(file, err, _data._open(file.path, file.delimiter).names) from None
                raise GradfitError(f"cannot read {file.path} (row group {group}): {_first_line(err)}; "
                                   "the file is damaged: replace it or leave it out") from None

    def _batches(self, file: _File, group: int) -> Iterator[pa.RecordBatch]:
        if self._kind == "csv":
            yield from _csv_reader(file, dict.fromkeys(self._columns), self._csv_types)
            return
        columns = list(self._columns)
        row_bytes = 8 * len(columns)
        with pq.ParquetFile(file.path, metadata=file.metadata, pre_buffer=False,
                            buffer_size=PARQUET_BUFFER_BYTES) as pf:
            if file.group_rows[group] * row_bytes <= UNIT_BYTES:
                yield from pf.read_row_group(group, columns=columns).to_batches()
            else:
                piece = max(self._read_rows, PIECE_BYTES // row_bytes)
                yield from pf.iter_batches(batch_size=piece, row_groups=[group], columns=columns)

    def _numbers(self, batch: pa.RecordBatch, dtype, file: _File, first_row: int) -> np.ndarray:
        """The chosen columns of ``batch`` as a row-major (k, D + 1) array in ``dtype``, checked finite."""
        out = np.empty((batch.num_rows, len(self._columns)), dtype)
        # Column by column into the rows: as fast as Arrow's own to_tensor here, or faster.
        with np.errstate(over="ignore"):  # a value too large for float32 becomes inf, named below
            for j, name in enumerate(self._columns):
                out[:, j] = _as_numbers(batch.column(name))
        # The sum of the chunk is NaN or inf if any value is; the exact search runs only
        # then (and finds nothing when large values merely overflowed the sum).
        if not np.isfinite(np.add.reduce(out, axis=None)):
            self._check_finite(out, batch, file, first_row, dtype)
        return out

    def _check_finite(self, out: np.ndarray, batch: pa.RecordBatch, file: _File, first_row: int, dtype) -> None:
        bad = np.flatnonzero(~np.isfinite(out))
        if not len(bad):
            return
        r, j = divmod(int(bad[0]), out.shape[1])
        col = self._columns[j]
        value = batch.column(col)[r].as_py()
        where = f"column {col!r} of {file.path}"
        at = f"at row {first_row + r} (counted from 0 {'after the header' if self._kind == 'csv' else 'in that file'})"
        if value is None:
            raise GradfitError(f"{where} has an empty value {at}; drop or fill those rows first")
        if math.isfinite(value):
            raise GradfitError(f"{where} holds {value} {at}, too large for {dtype.name}; "
                               "stream in float64 or rescale the column")
        raise GradfitError(f"{where} holds {value} {at}; drop or fill those rows first")


#: Arrow types whose values buffer numpy reads as it is.
_NUMPY_TYPES = {
    pa.float64(): np.float64, pa.float32(): np.float32, pa.int64(): np.int64, pa.int32(): np.int32,
    pa.int16(): np.int16, pa.int8(): np.int8, pa.uint64(): np.uint64, pa.uint32(): np.uint32,
    pa.uint16(): np.uint16, pa.uint8(): np.uint8,
}


def _as_numbers(values: pa.Array) -> np.ndarray:
    """An Arrow column as numpy numbers (a view of its buffer where it can be), a null as NaN.

    A column of numbers without nulls is read from its buffer: ``Array.to_numpy`` imports
    pandas on first use (30 MB and a few tenths of a second, in the middle of a fit), so
    only the rarer columns (booleans, decimals, dictionaries, half floats, nulls) use it.
    """
    kind = _NUMPY_TYPES.get(values.type)
    if kind is None or values.null_count:
        if pa.types.is_dictionary(values.type):
            values = values.dictionary_decode()
        return values.cast(pa.float64()).to_numpy(zero_copy_only=False)
    return np.frombuffer(values.buffers()[1], kind, count=len(values), offset=values.offset * np.dtype(kind).itemsize)


def _whole(label: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise GradfitError(f"{label} must be a whole number >= {low}, not {value!r}")
    return int(value)


def _float_dtype(dtype) -> np.dtype:
    try:
        kind = np.dtype(dtype)
    except TypeError:
        kind = None
    if kind not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise GradfitError(f"a stream makes float32 or float64 arrays, not {dtype!r}")
    return kind


# -- the shuffle buffer -------------------------------------------------------------------------


class _Slots:
    """Uniform random slots 0..size-1, drawn from ``rng`` a fixed number at a time, so the
    sequence is the same however the rows that take them arrive in chunks."""

    def __init__(self, rng: np.random.Generator, size: int):
        self._rng, self._size = rng, size
        self._draws = min(_SLOT_DRAWS, max(_MIN_SLOT_DRAWS, size))
        self._kind = np.int32 if size <= np.iinfo(np.int32).max else np.int64
        self._pending = np.empty(0, self._kind)

    def take(self, k: int) -> np.ndarray:
        parts = []
        while k:
            if not len(self._pending):
                self._pending = self._rng.integers(0, self._size, self._draws, dtype=self._kind)
            part, self._pending = self._pending[:k], self._pending[k:]
            parts.append(part)
            k -= len(part)
        return parts[0] if len(parts) == 1 else np.concatenate(parts)


def _exchange(buffer: np.ndarray, rows: np.ndarray, slots: np.ndarray) -> np.ndarray:
    """Rows arriving one after another, row i taking ``slots[i]``: what goes out, in order.

    The same as the loop ``out[i] = buffer[s_i]; buffer[s_i] = rows[i]`` (so a slot hit
    twice in the chunk sends out, the second time, the row that arrived the first time),
    in O(k log k) for k rows whatever the buffer's size.
    """
    k = len(slots)
    keys = np.sort(slots.astype(np.int64) * k + np.arange(k))  # by slot, then by arrival: unique, so any sort will do
    ranked, order = np.divmod(keys, k)
    again = ranked[1:] == ranked[:-1]
    out = np.take(buffer, slots, axis=0)
    if again.any():
        out[order[1:][again]] = rows[order[:-1][again]]
        last = np.ones(k, bool)
        last[:-1] = ~again
        _as_records(buffer)[ranked[last]] = _as_records(rows)[order[last]]
    else:
        _as_records(buffer)[slots] = _as_records(rows)
    return out


def _as_records(rows: np.ndarray) -> np.ndarray:
    """A C-contiguous (k, m) array as k opaque records: numpy moves whole rows at once, which
    is about twice as fast as a (k, m) fancy assignment."""
    return rows.view(np.dtype((np.void, rows.shape[1] * rows.itemsize))).reshape(len(rows))


def _skipped(chunks: Iterator[np.ndarray], skip: int) -> Iterator[np.ndarray]:
    """``chunks`` without their first ``skip`` rows."""
    for rows in chunks:
        if skip >= len(rows):
            skip -= len(rows)
            continue
        yield rows[skip:]
        skip = 0


def _assemble(pieces: Iterable[np.ndarray | int], lead: tuple[int, ...], n_inputs: int,
              dtype) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Rows (arrays (k, D + 1), y last) and padding (an int: that many masked zero rows)
    cut into blocks (x, y, mask) of shape ``lead``; a last partial block is padded."""
    size = math.prod(lead)
    x_shape = (*lead, n_inputs) if n_inputs > 1 else lead

    def fresh():
        return np.empty((size, n_inputs) if n_inputs > 1 else size, dtype), np.empty(size, dtype), np.empty(size, bool)

    x, y, mask = fresh()
    pos = 0
    for piece in pieces:
        padding = isinstance(piece, int)
        count = piece if padding else len(piece)
        done = 0
        while done < count:
            take = min(size - pos, count - done)
            end = pos + take
            if padding:
                x[pos:end], y[pos:end], mask[pos:end] = 0, 0, False
            else:
                part = piece[done:done + take]
                x[pos:end] = part[:, :n_inputs] if n_inputs > 1 else part[:, 0]
                y[pos:end] = part[:, n_inputs]
                mask[pos:end] = True
            pos, done = end, done + take
            if pos == size:
                yield x.reshape(x_shape), y.reshape(lead), mask.reshape(lead)
                x, y, mask = fresh()
                pos = 0
    if pos:
        x[pos:], y[pos:], mask[pos:] = 0, 0, False
        yield x.reshape(x_shape), y.reshape(lead), mask.reshape(lead)


# -- the background thread ----------------------------------------------------------------------

_BLOCK, _END, _ERROR = "block", "end", "error"


class Prefetch:
    """Blocks made in one background thread, up to ``depth`` ahead of the consumer.

    An iterator (``next()`` returns the next block) and a context manager. The thread
    reads (pyarrow releases the GIL), converts, shuffles and assembles; the queue between
    it and the consumer holds at most ``depth`` blocks. An error in the thread is raised by
    the consumer's ``next()`` once the blocks made before it are taken, and again on every
    later call. `close` (also on leaving a ``with`` block, and when the object is
    collected) stops the thread within about one read chunk and waits for it; it can be
    called any number of times.
    """

    def __init__(self, produce: Callable[[threading.Event], Iterable[Any]], depth: int = DEPTH,
                 name: str = "gradfit-stream"):
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._failed: BaseException | None = None
        self._ended = False
        # The thread holds the queue and the event, not this object, so an abandoned
        # Prefetch is collected, and collecting it stops the thread.
        self._thread = threading.Thread(target=_produce, args=(produce, self._queue, self._stop),
                                        name=name, daemon=True)
        weakref.finalize(self, self._stop.set)
        self._thread.start()

    @property
    def ready(self) -> int:
        """How many finished blocks wait in the queue (an error or the end counts as one)."""
        return self._queue.qsize()

    @property
    def closed(self) -> bool:
        return self._stop.is_set()

    def __iter__(self) -> Prefetch:
        return self

    def __next__(self):
        if self._failed is not None:
            raise self._failed
        if self._ended or self._stop.is_set():
            raise StopIteration
        while True:
            try:
                kind, value = self._queue.get(timeout=0.1)
                break
            except queue.Empty:
                if not self._thread.is_alive() and self._queue.empty():  # stopped from outside
                    self._ended = True
                    raise StopIteration from None
        if kind == _BLOCK:
            return value
        if kind == _ERROR:
            self._failed = value
            raise value
        self._ended = True
        raise StopIteration

    def close(self) -> None:
        """Stop the thread and wait for it; drop the blocks it made ahead."""
        self._stop.set()
        self._drop()  # unblocks nothing (puts time out), but frees the blocks now
        if self._thread is not threading.current_thread():
            self._thread.join()
        self._drop()  # one the thread may have put as it stopped

    def _drop(self) -> None:
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                return

    def __enter__(self) -> Prefetch:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _produce(produce: Callable[[threading.Event], Iterable[Any]], out: queue.Queue, stop: threading.Event) -> None:
    def put(item) -> bool:
        while not stop.is_set():
            try:
                out.put(item, timeout=0.05)
                return True
            except queue.Full:
                pass
        return False

    try:
        for block in produce(stop):
            if not put((_BLOCK, block)):
                return
        put((_END, None))
    except _Stopped:
        return
    except BaseException as exc:  # raised again in the consumer
        put((_ERROR, exc))

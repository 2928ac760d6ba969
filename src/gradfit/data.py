"""Data sets: checked (x, y) pairs, gradfit's own generated sets, file loading, batching."""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .batches import epoch_batches, epoch_permutation  # noqa: F401 - batches' order, named here too
from .errors import GradfitError


@dataclass(frozen=True)
class Dataset:
    """I examples: inputs x, shape (I,) or (I, D), and targets y, shape (I,), and optional weights.

    Checked on construction: numbers (not text), non-empty, matching lengths, finite.
    Bad rows are named by their row index, counted from 0 as numpy counts them.
    ``weights`` (shape (I,), finite and > 0) multiply each example's loss,
    L = Σ_i w_i ℓ_i; a fit with ``sigma=`` sets w_i = 1/σ_i².
    """

    x: np.ndarray
    y: np.ndarray
    x_names: tuple[str, ...] = ("x",)
    y_name: str = "y"
    name: str = "data"
    notes: dict = field(default_factory=dict, compare=False)
    weights: np.ndarray | None = None

    def __post_init__(self):
        x = _float_array("x", self.x, target=False)
        y = _float_array("y", self.y, target=True)
        if x.ndim == 2 and x.shape[1] == 1:
            x = x[:, 0]
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if x.ndim not in (1, 2):
            raise GradfitError(f"inputs x must have shape (I,) or (I, D), not {x.shape}")
        if y.ndim != 1:
            raise GradfitError(f"targets y must have shape (I,), not {y.shape}")
        if len(x) == 0 or len(y) == 0:
            raise GradfitError(f"data set {self.name!r} is empty: it needs at least one example")
        if len(x) != len(y):
            raise GradfitError(f"x has {len(x)} rows but y has {len(y)}; they must match")
        # Name the columns first: the NaN message below names them, so they must fit x.
        n_cols = 1 if x.ndim == 1 else x.shape[1]
        x_names = tuple(self.x_names)
        if len(x_names) != n_cols:
            x_names = ("x",) if n_cols == 1 else tuple(f"x{j}" for j in range(n_cols))
        for label, values, names in (("x", x, x_names), ("y", y, (self.y_name,))):
            bad = ~np.isfinite(values)
            if bad.any():
                rows = np.nonzero(bad.reshape(len(values), -1).any(axis=1))[0]
                cols = names if values.ndim == 1 else [names[j] for j in np.nonzero(bad.any(axis=0))[0]]
                raise GradfitError(
                    f"{label} holds NaN or inf in column(s) {', '.join(cols)} at "
                    f"{_listed('row index', 'row indices', rows)}; drop or fill those rows first"
                )
        x.setflags(write=False)
        y.setflags(write=False)
        if self.weights is not None:
            object.__setattr__(self, "weights", _weights(self.weights, len(y)))
        object.__setattr__(self, "x", x)
        object.__setattr__(self, "y", y)
        object.__setattr__(self, "x_names", x_names)

    def __len__(self) -> int:
        return len(self.y)

    @property
    def n_inputs(self) -> int:
        return 1 if self.x.ndim == 1 else self.x.shape[1]


def _weights(values, n: int) -> np.ndarray:
    """Per-example weights checked: numbers, one per example, finite and positive."""
    try:
        w = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        raise GradfitError("weights must be numbers, one per example") from None
    if w.ndim != 1 or len(w) != n:
        raise GradfitError(f"weights have shape {w.shape}; the data have {n} examples, so give {n} weights")
    bad = ~(np.isfinite(w) & (w > 0))
    if bad.any():
        rows = np.nonzero(bad)[0]
        where = _listed("row index", "row indices", rows)
        raise GradfitError(f"weights must be finite and > 0; {w[rows[0]]} at {where}")
    w.setflags(write=False)
    return w


# -- gradfit's own data sets ------------------------------------------------------


def linear_data(seed: int = 0, n: int = 20) -> Dataset:
    """A 1-D linear set: x uniform on [0, 2], y = 0.8 + 0.5 x + N(0, 0.1²) noise."""
    rng = np.random.default_rng(seed)
    x = np.sort(rng.uniform(0.0, 2.0, n))
    y = 0.8 + 0.5 * x + rng.normal(0.0, 0.1, n)
    return Dataset(x, y, name="linear", notes={"true": {"phi0": 0.8, "phi1": 0.5}, "noise_sd": 0.1})


def gabor_data(seed: int = 0, n: int = 40, s: float = 8.0) -> Dataset:
    """A Gabor set: x uniform on [-15, 15], y = Gabor(x; φ = (0, 16.6), s) + N(0, 0.1²) noise."""
    if not (isinstance(s, int | float) and math.isfinite(s) and s > 0):
        raise GradfitError(f"the Gabor scale s must be a positive number, not {s}")
    rng = np.random.default_rng(seed)
    x = np.sort(rng.uniform(-15.0, 15.0, n))
    phi = {"phi0": 0.0, "phi1": 16.6}
    z = phi["phi0"] + 0.06 * phi["phi1"] * x
    clean = np.sin(z) * np.exp(-z * z / s)
    y = clean + rng.normal(0.0, 0.1, n)
    return Dataset(x, y, name="gabor", notes={"true": phi, "noise_sd": 0.1, "s": s})


_NEIGHBOURHOODS = ("residential", "commercial", "park", "transit")
_NEIGHBOURHOOD_EFFECT = np.array([0.0, 0.9, -0.4, 1.3])


def pedestrian_data(seed: int = 0, n: int = 2000) -> Dataset:
    """Pedestrians passing a point in one minute: counts from a Poisson model.

    Columns: ``hour`` (0-24), its cyclic features ``hour_sin`` and ``hour_cos``,
    ``lat`` and ``lon`` (degrees, around a city centre), and one-hot neighbourhood
    columns (residential is the baseline). The log-rate is linear in the cyclic hour
    features (a rush at about 8 and 17 h), in latitude and longitude (busier to the
    south-west) and in the neighbourhood, so a Poisson regression on these columns
    with the exp link is the true model.
    """
    rng = np.random.default_rng(seed)
    hour = rng.uniform(0.0, 24.0, n)
    lat = 51.50 + rng.normal(0.0, 0.02, n)
    lon = -0.12 + rng.normal(0.0, 0.03, n)
    kind = rng.integers(0, len(_NEIGHBOURHOODS), n)
    angle = 2 * np.pi * hour / 24.0
    features = {
        "hour_sin": np.sin(angle),
        "hour_cos": np.cos(angle),
        "hour2_sin": np.sin(2 * angle),
        "hour2_cos": np.cos(2 * angle),
        "lat": lat,
        "lon": lon,
    }
    for j, label in enumerate(_NEIGHBOURHOODS[1:], start=1):
        features[label] = (kind == j).astype(float)
    log_rate = (
        1.2
        - 0.5 * features["hour_cos"]
        - 0.3 * features["hour_sin"]
        - 0.6 * features["hour2_cos"]
        - 0.2 * (lat - 51.50) / 0.02
        - 0.1 * (lon + 0.12) / 0.03
        + _NEIGHBOURHOOD_EFFECT[kind]
    )
    counts = rng.poisson(np.exp(log_rate)).astype(float)
    names = tuple(features)
    x = np.column_stack([features[k] for k in names])
    return Dataset(
        x, counts, x_names=names, y_name="count", name="pedestrians",
        notes={"hour": hour, "neighbourhood": np.array(_NEIGHBOURHOODS)[kind]},
    )


BUILTIN = {"linear": linear_data, "gabor": gabor_data, "pedestrians": pedestrian_data}


# -- values that are not numbers ------------------------------------------------------------


def _listed(one: str, many: str, positions: Sequence[int], limit: int = 5) -> str:
    """'line 3' or 'lines 3, 7, 9 ...': the first few positions, with their noun."""
    shown = ", ".join(str(int(p)) for p in positions[:limit])
    return f"{one if len(positions) == 1 else many} {shown}{' ...' if len(positions) > limit else ''}"


def _shown(value: Any, width: int = 40) -> str:
    text = str(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def _is_number(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(value != value)  # NaN; pandas' NA answers NA, which has no truth value
    except TypeError:
        return True


def text_summary(labels: Sequence[Any], limit: int = 5) -> tuple[str, str]:
    """The distinct text labels of a column as ('cat, dog', 'cat=0, dog=1') for an error message.

    The first part lists the labels, the second is a recoding to 0, 1, 2, ... to suggest.
    """
    distinct = sorted({str(v) for v in labels})
    more = f", ... ({len(distinct)} in all)" if len(distinct) > limit else ""
    listed = ", ".join(_shown(v, 20) for v in distinct[:limit]) + more
    recode = ", ".join(f"{_shown(v, 20)}={i}" for i, v in enumerate(distinct[:3]))
    return listed, recode + (", ..." if len(distinct) > 3 else "")


_DECIMAL_COMMA = re.compile(r"\s*[-+]?\d*,\d+\s*")


def _text_message(column: str, where: str, labels: Sequence[Any], target: bool) -> str:
    """The error for a column of text labels: recode a target, encode an input."""
    listed, recode = text_summary(labels)
    if all(isinstance(v, str) and _DECIMAL_COMMA.fullmatch(v) for v in labels):
        return f"{column}{where} is not numeric: its values ({listed}) have decimal commas; write decimal points"
    head = f"{column}{where} is not numeric: it holds text ({listed})"
    if target:
        return (f"{head}; recode it as numbers, e.g. {recode} (the bernoulli loss needs 0/1, "
                "the categorical loss 0..K-1)")
    name = column.removeprefix("column ").strip("'")
    return (f"{head}; encode it as numbers, or fit a regression with it as a categorical column: "
            f"gf.fit_glm(..., categorical=[{name!r}]) or --categorical {name}")


def _not_a_number(column: str, where: str, value: Any, at: str) -> str:
    hint = ""
    if isinstance(value, str) and _DECIMAL_COMMA.fullmatch(value):
        hint = " (a decimal comma? write decimal points)"
    return f"{column}{where} is not numeric: {at} holds {_shown(value)!r}, which is not a number{hint}; fix or drop it"


def _float_array(label: str, values: Any, target: bool) -> np.ndarray:
    """``values`` as a float array, or a `GradfitError` saying which value is not a number."""
    try:
        return np.asarray(values, dtype=float)
    except (TypeError, ValueError) as err:
        reason = str(err).splitlines()[0]
    try:
        flat = np.asarray(values, dtype=object)
    except (TypeError, ValueError):
        flat = None
    if flat is None or any(isinstance(v, (list, tuple, np.ndarray)) for v in flat.ravel()):
        raise GradfitError(f"{label} is not a table of numbers (its rows differ in length?): {reason}") from None
    items = flat.ravel()
    present = [v for v in items if not _is_missing(v)]
    if present and not any(_is_number(v) for v in present):
        raise GradfitError(_text_message(label, "", present, target)) from None
    for k, v in enumerate(items):
        if not _is_missing(v) and not _is_number(v):
            row = np.unravel_index(k, flat.shape)[0] if flat.ndim else 0
            raise GradfitError(_not_a_number(label, "", v, f"row index {row}")) from None
    raise GradfitError(f"{label} cannot be read as numbers: {reason}") from None


# -- tables: pandas DataFrames, dicts of columns, and the other inputs of a fit ------------------


def as_dataset(data: Any, x: Sequence[Any] | Any | None = None, y: Any | None = None) -> Dataset:
    """A `Dataset` from what a fit accepts as data.

    - a `Dataset`: returned as it is;
    - an ``(x, y)`` pair of arrays: ``Dataset(x, y)``;
    - a table: a pandas (or polars) DataFrame, a pyarrow Table, or a dict of columns
      name -> values. ``y`` names the target column (default: the last), ``x`` the input
      columns (default: all the others); the column names are kept;
    - a path of a CSV or Parquet file: `load` (``x`` and ``y`` as there).

    Text and categorical columns raise a `GradfitError`: encode them as numbers, or fit
    a regression with them as categorical columns (``gf.fit_glm(..., categorical=[...])``).
    """
    if isinstance(data, Dataset):
        if x is not None or y is not None:
            raise GradfitError("x and y pick columns of a table; a Dataset has its columns already: pass it alone")
        return data
    if isinstance(data, (str, Path)):
        return load(data, x, y)
    if _is_table(data):
        return _from_table(data, x, y)
    if x is not None or y is not None:
        raise GradfitError(
            "x and y name columns of a table (a pandas DataFrame, a dict of columns); for arrays pass data=(x, y)"
        )
    if isinstance(data, np.ndarray):  # two rows would unpack as (x, y) and fit the wrong thing silently
        raise GradfitError(f"data is one array of shape {data.shape}; pass the inputs and targets apart, "
                           "data=(x, y), or a table with named columns")
    try:
        inputs, targets = data
    except (TypeError, ValueError):
        raise GradfitError(
            f"data must be a Dataset, an (x, y) pair, a table such as a pandas DataFrame, or a file path; "
            f"not {type(data).__name__}"
        ) from None
    return Dataset(inputs, targets)


def _is_table(data: Any) -> bool:
    return isinstance(data, Mapping) or (hasattr(data, "columns") and hasattr(data, "__getitem__"))


def _from_table(table: Any, x: Sequence[Any] | Any | None, y: Any | None) -> Dataset:
    if isinstance(table, Mapping):
        names = list(table.keys())
    elif hasattr(table, "column_names"):  # a pyarrow Table, whose .columns are the arrays
        names = list(table.column_names)
    else:
        names = list(table.columns)
    if not names:
        raise GradfitError("the table has no columns")
    if len({str(n) for n in names}) != len(names):
        raise GradfitError("the table has two columns with the same name; rename one")
    y = names[-1] if y is None else y
    if isinstance(x, (str, int)) and x in names:  # one column name, not a list of names
        x = [x]
    x = [n for n in names if n != y] if x is None else list(x)
    for col in [*x, y]:
        if col not in names:  # a list: column labels need not be hashable
            listed = ", ".join(map(_column_label, names))
            raise GradfitError(f"the table has no column {col!r}; its columns are: {listed}")
    if not x:
        raise GradfitError(f"the table has only the target column {y!r}: it needs input columns too")
    inputs = [_table_column(col, table[col], target=False) for col in x]
    targets = _table_column(y, table[y], target=True)
    data_x = np.column_stack(inputs) if len(inputs) > 1 else inputs[0]
    return Dataset(data_x, targets, x_names=tuple(str(c) for c in x), y_name=str(y))


def _table_column(name: Any, values: Any, target: bool) -> np.ndarray:
    """One column of a table as floats; text, categories and dates are refused, saying what to do."""
    column = f"column {str(name)!r}"
    kind = getattr(getattr(values, "dtype", None), "kind", None)
    if kind in ("b", "i", "u", "f"):  # pandas' nullable Int64 / boolean too: NA becomes NaN
        to_numpy = getattr(values, "to_numpy", None)
        try:
            array = to_numpy(dtype=float, na_value=np.nan)
        except TypeError:  # not pandas' to_numpy
            array = np.asarray(values, dtype=float)
    else:
        array = np.asarray(values)
    if array.ndim != 1:
        raise GradfitError(f"{column} must hold one value per row, not shape {array.shape}")
    if array.dtype.kind in "biuf":
        return array.astype(float)
    if array.dtype.kind in "mM":
        raise GradfitError(
            f"{column} holds dates or times ({array.dtype}), not numbers; convert them to numbers first, "
            "e.g. hours since the first"
        )
    items = list(array.astype(object))
    present = [v for v in items if not _is_missing(v)]
    if all(_is_number(v) for v in present):  # numbers stored as objects
        return np.array([np.nan if _is_missing(v) else float(v) for v in items])
    if not any(_is_number(v) for v in present):
        raise GradfitError(_text_message(column, "", present, target))
    row = next(k for k, v in enumerate(items) if not _is_missing(v) and not _is_number(v))
    raise GradfitError(_not_a_number(column, "", items[row], f"row index {row}"))


# -- files -----------------------------------------------------------------------------

#: The most columns read from one file when the caller does not name the ones it needs:
#: pyarrow's CSV reader slows with the width (about 0.7 s at 10⁴ columns, 45 s at 10⁶),
#: but reads a few named columns of a 10⁶-column file in about a second.
MAX_COLUMNS = 10_000
#: The longest CSV field read; a number or a label is far shorter, so a longer one is a
#: wrong delimiter, a missing quote, or not a table.
MAX_FIELD_BYTES = 1 << 20
#: pyarrow's CSV block size to start with; a row must fit in one block, so a file with
#: longer lines is read again with larger blocks.
CSV_BLOCK_BYTES = 1 << 20
#: The delimiters a CSV's header is tried with, and how messages name them.
DELIMITERS = {",": "comma ','", ";": "semicolon ';'", "\t": "tab", "|": "bar '|'"}
_SNIFF_BYTES = 1 << 16
_SCAN_BYTES = 1 << 24


@dataclass(frozen=True)
class _Source:
    """A table file: its format, its column names and, for a CSV, its delimiter."""

    path: Path
    kind: str  # "csv" or "parquet"
    names: tuple[str, ...]
    delimiter: str | None = None
    header_bytes: int = 0

    @property
    def read_with(self) -> str:
        """For a message: the delimiter the file is read with, and how to choose another."""
        if self.kind != "csv":
            return ""
        used = DELIMITERS.get(self.delimiter, repr(self.delimiter))
        return f" (read with the {used} as delimiter: if that is wrong, name it: delimiter=... or --delimiter)"


def _size(n: int) -> str:
    if n >= 1 << 20:
        return f"{n / (1 << 20):.0f} MB"
    return f"{n / 1024:.0f} KB" if n >= 1024 else f"{n} bytes"


def _open(path: str | Path, delimiter: str | None) -> _Source:
    """The file's format and column names, read from its header (CSV) or schema (Parquet)."""
    path = Path(path)
    if not path.exists():
        raise GradfitError(f"no such file: {path}. Check the path, or leave out --data to use built-in data")
    if path.is_dir():
        raise GradfitError(f"{path} is a folder; --data needs a .csv or .parquet file")
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        if delimiter is not None:
            raise GradfitError(f"{path.name} is a Parquet file: a delimiter is for CSV files, leave it out")
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            names = tuple(pq.read_schema(path).names)
        except (pa.ArrowInvalid, OSError) as err:
            raise GradfitError(f"cannot read {path}: {str(err).splitlines()[0]}") from None
        return _Source(path, "parquet", names)
    if suffix not in (".csv", ".txt", ".tsv"):
        raise GradfitError(f"cannot read {path.name}: gradfit reads .csv, .tsv and .parquet files")
    if delimiter is not None and (not isinstance(delimiter, str) or len(delimiter) != 1 or delimiter in "\r\n\""):
        raise GradfitError(
            f"the delimiter must be one character such as ',', ';', '\\t' or '|', not {delimiter!r}"
        )
    with open(path, "rb") as f:
        sample = f.read(_SNIFF_BYTES)
        complete = len(sample) < _SNIFF_BYTES
        text = sample.decode("utf-8", errors="replace").removeprefix("\ufeff")
        if not text.strip():
            raise GradfitError(f"{path.name} is empty: a CSV file needs a header line naming its columns")
        if delimiter is None:
            delimiter = _sniff(path, text, complete)
        header = _header_line(f, sample, path, delimiter)
    return _Source(path, "csv", _split_header(header, delimiter, path), delimiter, len(header.encode()))


def _records(text: str, complete: bool) -> list[str]:
    """The non-empty lines of a CSV sample, dropping a last line the sample may have cut."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not complete and len(lines) > 1:
        lines = lines[:-1]
    return lines[:100]


def _count_fields(line: str, delimiter: str) -> int:
    if '"' not in line:
        return line.count(delimiter) + 1
    try:
        return len(next(csv.reader([line], delimiter=delimiter)))
    except (csv.Error, StopIteration):
        return line.count(delimiter) + 1


def _sniff(path: Path, text: str, complete: bool) -> str:
    """The delimiter that splits the header into columns and every other line into as many.

    Tried: comma, semicolon, tab and bar. A file whose header none of them splits has one
    column (comma, or tab for .tsv). Two that both fit every line are ambiguous: the user
    must name one.
    """
    lines = _records(text, complete)
    counts = {d: [_count_fields(line, d) for line in lines] for d in DELIMITERS}
    splitting = {d: c for d, c in counts.items() if c[0] > 1}
    if not splitting:
        return "\t" if path.suffix.lower() == ".tsv" else ","
    fitting = [d for d, c in splitting.items() if all(k == c[0] for k in c)]
    if len(fitting) == 1:
        return fitting[0]
    if not fitting and len(splitting) == 1:  # ragged lines: reading will say which
        return next(iter(splitting))
    candidates = fitting or list(splitting)
    named = " and ".join(f"{DELIMITERS[d]} ({splitting[d][0]} columns)" for d in candidates)
    choices = " or ".join(f"delimiter={d!r}" for d in candidates)
    raise GradfitError(
        f"cannot tell how the columns of {path.name} are separated: the header splits by {named}"
        f"{' on every line' if fitting else ''}; name the delimiter: {choices} (or --delimiter)"
    )


def _header_line(f, sample: bytes, path: Path, delimiter: str) -> str:
    """The first line of the file, read on past the sample when the header is wider."""
    sep = delimiter.encode()
    parts, run = [], 0
    chunk = sample.removeprefix(b"\xef\xbb\xbf").lstrip(b"\r\n")  # blank lines before the header are skipped
    while not chunk and (more := f.read(_SNIFF_BYTES)):
        chunk = more.lstrip(b"\r\n")
    while True:
        end = re.search(rb"[\r\n]", chunk)
        piece = chunk if end is None else chunk[: end.start()]
        fields = piece.split(sep)
        run += len(fields[0])
        if max([run, *(len(p) for p in fields[1:])]) > MAX_FIELD_BYTES:
            _raise_long_field(path, delimiter)
        if len(fields) > 1:
            run = len(fields[-1])
        parts.append(piece)
        if end is not None or not chunk:
            header = b"".join(parts)
            try:
                return header.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise GradfitError(
                    f"{path.name} is not UTF-8 text: its header holds the byte {header[exc.start]:#04x} "
                    f"({header[max(0, exc.start - 10): exc.start + 10]!r}); save the file as UTF-8 and read it again"
                ) from None
        chunk = f.read(_SNIFF_BYTES)


def _split_header(header: str, delimiter: str, path: Path) -> tuple[str, ...]:
    names = header.split(delimiter)
    if '"' in header:
        try:
            names = next(csv.reader([header], delimiter=delimiter))
        except (csv.Error, StopIteration):
            pass
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise GradfitError(f"{path.name} has two columns named {name!r}; rename one")
        seen.add(name)
    return tuple(names)


def _scan(path: Path, delimiter: str) -> tuple[int, tuple[int, int] | None]:
    """The longest line of a CSV in bytes, and the (line, size) of its first field over the limit.

    A vectorised pass over the bytes, 16 MB at a time: fields end at the delimiter or a
    newline (quotes are not followed, so a quoted field counts in pieces).
    """
    sep, newline = ord(delimiter), ord("\n")
    longest = offset = field_start = line_start = 0
    line = 1  # the line number at the start of the chunk
    with open(path, "rb") as f:
        while chunk := f.read(_SCAN_BYTES):
            a = np.frombuffer(chunk, dtype=np.uint8)
            newlines = np.flatnonzero(a == newline) + offset
            ends = np.flatnonzero((a == newline) | (a == sep)) + offset
            if len(ends):
                sizes = ends - np.concatenate([[field_start], ends[:-1] + 1])
                over = np.flatnonzero(sizes > MAX_FIELD_BYTES)
                if len(over):
                    at = ends[over[0]]
                    return longest, (line + int(np.searchsorted(newlines, at)), int(sizes[over[0]]))
                field_start = int(ends[-1]) + 1
            if len(newlines):
                lengths = newlines - np.concatenate([[line_start], newlines[:-1] + 1])
                longest = max(longest, int(lengths.max()))
                line_start = int(newlines[-1]) + 1
                line += len(newlines)
            offset += len(chunk)
    if offset - field_start > MAX_FIELD_BYTES:
        return longest, (line, offset - field_start)
    return max(longest, offset - line_start), None


def _raise_long_field(path: Path, delimiter: str) -> None:
    _, found = _scan(path, delimiter)
    line, size = found if found is not None else (1, MAX_FIELD_BYTES + 1)
    raise GradfitError(
        f"{path.name} has a field of {_size(size)} at line {line}; CSV fields above {_size(MAX_FIELD_BYTES)} "
        f"are not supported (a number or a label is far shorter). Check that line for a missing quote or "
        f"delimiter (the file is read with the {DELIMITERS.get(delimiter, repr(delimiter))} as delimiter)"
    )


def _check_width(source: _Source, columns: Sequence[str] | None) -> None:
    if columns is None and len(source.names) > MAX_COLUMNS:
        raise GradfitError(
            f"{source.path.name} has {len(source.names):,} columns; gradfit reads at most {MAX_COLUMNS:,} "
            "columns of a file unless it is told which it needs: name the input and target columns "
            "(x=[...] and y=..., or --x and --y)"
        )
    if columns is not None:
        known = set(source.names)
        for col in columns:
            if col not in known:
                raise _no_column(source, col)


def _column_label(name) -> str:
    """A column name as listed in a message: as it is, or quoted when it is empty, has a tab or
    other unprintable character, or leading or trailing spaces (which would be invisible)."""
    name = str(name)
    return name if name and name.isprintable() and name.strip() == name else repr(name)


def _no_column(source: _Source, col: str) -> GradfitError:
    names = source.names
    listed = ", ".join(map(_column_label, names[:30])) + (f", ... ({len(names):,} in all)" if len(names) > 30 else "")
    return GradfitError(f"{source.path} has no column {col!r}; its columns are: {listed}{source.read_with}")


def _read(source: _Source, columns: Sequence[str] | None = None):
    """The file as a pyarrow Table, only ``columns`` if given; every failure a `GradfitError`."""
    import pyarrow as pa

    _check_width(source, columns)
    path = source.path
    try:
        if source.kind == "parquet":
            import pyarrow.parquet as pq

            return pq.read_table(path, columns=None if columns is None else list(dict.fromkeys(columns)))
        import pyarrow.csv as pacsv

        parse = pacsv.ParseOptions(delimiter=source.delimiter)
        convert = pacsv.ConvertOptions(include_columns=list(dict.fromkeys(columns or ())))
        block = max(CSV_BLOCK_BYTES, 2 * source.header_bytes)
        try:
            return pacsv.read_csv(path, pacsv.ReadOptions(block_size=block), parse, convert)
        except pa.ArrowInvalid as err:
            if "straddl" not in str(err):
                raise
        # A row longer than a block: read again with blocks that hold the longest line,
        # unless a field is too long to be data.
        longest, overlong = _scan(path, source.delimiter)
        if overlong is not None:
            _raise_long_field(path, source.delimiter)
        return pacsv.read_csv(path, pacsv.ReadOptions(block_size=max(block, 2 * longest + 2)), parse, convert)
    except pa.ArrowInvalid as err:
        first = str(err).splitlines()[0]
        ragged = re.search(r"Expected (\d+) columns, got (\d+)", first)
        if ragged:
            raise GradfitError(_ragged_message(source, int(ragged.group(1)))) from None
        raise GradfitError(f"cannot read {path}: {first}") from None


def _ragged_message(source: _Source, expected: int) -> str:
    """Which line has a different number of fields than the header."""
    for number, text in _data_lines(source.path):
        got = _count_fields(text.rstrip("\r\n"), source.delimiter)
        if got != expected:
            return (f"cannot read {source.path}: line {number} has {got} field(s) where the header has "
                    f"{expected}{source.read_with}")
    return f"cannot read {source.path}: a line has a different number of fields than the header{source.read_with}"


def _data_lines(path: Path):
    """(line number, text) of each CSV record after the header, as pyarrow reads them.

    Lines count from 1 as an editor shows them, the header included; blank lines are
    skipped and a quoted field may run over several lines (the record starts on the first).
    """
    with open(path, encoding="utf-8", errors="replace", newline="") as f:
        header_seen = quoted = False
        for number, text in enumerate(f, start=1):
            if not quoted and text.strip("\r\n"):
                if header_seen:
                    yield number, text
                header_seen = True
            if text.count('"') % 2:
                quoted = not quoted


def _lines_of(source: _Source, rows: Sequence[int]) -> list[int]:
    """The file lines on which data rows ``rows`` (0-based) start."""
    wanted, found = set(int(r) for r in rows), {}
    for row, (number, _) in enumerate(_data_lines(source.path)):
        if row in wanted:
            found[row] = number
            if len(found) == len(wanted):
                break
    return [found.get(int(r), int(r) + 2) for r in rows]


def _where(source: _Source, rows: Sequence[int]) -> str:
    """'line 3' for a CSV (the file's own numbering), 'row index 1' for Parquet (from 0)."""
    if source.kind == "csv":  # only the lines shown are looked up; a sixth row just makes the "..."
        return _listed("line", "lines", _lines_of(source, rows[:5]) + list(rows[5:6]))
    return _listed("row index", "row indices", rows)


def column_names(path: str | Path, delimiter: str | None = None) -> tuple[str, ...]:
    """The column names of a CSV (its header) or Parquet file (its schema), without reading the data."""
    return tuple(_open(path, delimiter).names)


def read_table(
    path: str | Path, delimiter: str | None = None, columns: Sequence[str] | None = None,
) -> dict[str, np.ndarray]:
    """The columns of a CSV or Parquet file as name -> numpy array.

    Numeric and boolean columns are floats (an empty cell, NA or NaN is NaN); other
    columns are object arrays (a missing value is None). A CSV's ``delimiter`` is
    detected from its first lines unless named. ``columns`` reads only those columns,
    which is how files of more than `MAX_COLUMNS` columns are read.
    """
    import pyarrow as pa

    source = _open(path, delimiter)
    table = _read(source, columns)
    result = {}
    for name in table.column_names:
        col = table.column(name)
        if pa.types.is_integer(col.type) or pa.types.is_floating(col.type) or pa.types.is_boolean(col.type):
            result[name] = col.to_numpy(zero_copy_only=False).astype(float)
        else:
            result[name] = np.asarray(col.to_pylist(), dtype=object)
    return result


def load(
    path: str | Path, x: Sequence[str] | str | None = None, y: str | None = None, *, delimiter: str | None = None,
    exclude: Sequence[str] = (),
) -> Dataset:
    """A data set from a CSV or Parquet file: the ``x`` columns as inputs, ``y`` as target.

    Without ``y`` the last column is the target; without ``x``, all other columns. A
    CSV's delimiter (comma, semicolon, tab or bar) is detected from its first lines
    unless ``delimiter`` names it. Only the named columns are read. Bad cells are named
    by their line in the file, counted from 1 with the header as line 1. ``exclude``
    names columns that are not inputs by default (standard deviations, weights).
    """
    source = _open(path, delimiter)
    names = list(source.names)
    if not names:
        raise GradfitError(f"{path} has no columns")
    y = y if y is not None else names[-1]
    if isinstance(x, str):  # one column name, not a sequence of one-letter names
        x = [x]
    named = bool(x)
    if not named:  # every column is needed: refuse a file too wide to read whole before building x
        _check_width(source, None)
    x = list(x) if x else [n for n in names if n != y and n not in exclude]
    if y in x:
        raise GradfitError(f"column {y!r} is the target; it cannot be an input too: leave it out of x (--x)")
    known = set(names)
    for col in [*x, y]:
        if col not in known:
            raise _no_column(source, col)
    if not x:
        raise GradfitError(
            f"{path} has only the target column {y!r}; name input columns with --x" + source.read_with
        )
    table = _read(source, [*x, y] if named else None)  # without x every column is needed
    # Rows first: a header-only CSV has untyped columns, which are empty, not text.
    if table.num_rows == 0:
        raise GradfitError(f"{path} has no rows: it needs at least one example")
    values = {col: _file_column(source, col, table.column(col), target=col == y) for col in dict.fromkeys([*x, y])}
    data_x = np.column_stack([values[c] for c in x]) if len(x) > 1 else values[x[0]]
    return Dataset(data_x, values[y], x_names=tuple(x), y_name=y, name=Path(path).stem)


def check_numbers(path: str | Path, columns: Sequence[str], delimiter: str | None = None) -> None:
    """Raise `load`'s error for the first of ``columns`` of a file that holds an empty cell,
    NaN, inf or text, naming the file line (CSV) or row index (Parquet); else return.

    For callers that read the file with `read_table` (which keeps NaN and text, as a
    design's categorical columns need) and then find a column that must be numbers is not.
    """
    source = _open(path, delimiter)
    wanted = [c for c in dict.fromkeys(columns) if c is not None]
    table = _read(source, wanted)
    for name in wanted:
        _file_column(source, name, table.column(name), target=False)


def _file_column(source: _Source, name: str, col, target: bool) -> np.ndarray:
    """A column of a file as finite floats, or a `GradfitError` naming the column and the line."""
    import pyarrow as pa

    column, where = f"column {name!r}", f" of {source.path.name}"
    kind = col.type
    if pa.types.is_dictionary(kind):
        col, kind = col.cast(kind.value_type), kind.value_type
    if pa.types.is_decimal(kind):
        col, kind = col.cast(pa.float64()), pa.float64()
    if pa.types.is_null(kind) or pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind):
        if pa.types.is_null(kind):  # every cell empty
            values = np.full(len(col), np.nan)
        else:
            values = col.to_numpy(zero_copy_only=False).astype(float)
        bad = np.flatnonzero(~np.isfinite(values))
        if len(bad):
            raise GradfitError(
                f"{column}{where} has empty cells, NaN or inf at {_where(source, bad)}; "
                f"drop or fill those {'lines' if source.kind == 'csv' else 'rows'} first"
            )
        return values
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        items = col.to_pylist()
        present = [v for v in items if v is not None]
        if not any(_is_number(v) for v in present):
            raise GradfitError(_text_message(column, where, present, target))
        row = next((k for k, v in enumerate(items) if v is not None and not _is_number(v)), None)
        if row is not None:
            raise GradfitError(_not_a_number(column, where, items[row], _where(source, [row])))
        # numbers stored as text (a Parquet string column): read them as the numbers they are
        return _file_column(source, name, pa.array([None if v is None else float(v) for v in items]), target)
    raise GradfitError(
        f"{column}{where} holds {kind} values, not numbers; convert them to numbers first"
        + (", e.g. hours since the first" if pa.types.is_temporal(kind) else "")
    )

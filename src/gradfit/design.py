"""Design matrices from named columns: numeric, one-hot categorical, intercept, offset, exposure.

A `Design` is the X of a regression, η = Xβ (+ offset): an intercept column of ones
(first, when asked for), the numeric columns as they are, and each categorical column
one-hot encoded against a baseline level (the first level in sorted order, as in R
and statsmodels; the baseline has no column and is absorbed by the intercept).

Columns are stored one to a row, shape (columns, rows), in memory aligned so that
JAX can use it without a copy on the CPU: products Xβ and Xᵀr both read it in
order. `Scaling` is the internal standardisation z = (x - m)/s that fits run in, with
the exact linear map back to coefficients on the original scale.

A categorical column with more levels than half its rows, or a numeric one with more
than 50, is more likely a measurement than a category: `build` warns
(`ManyLevelsWarning`) and encodes it as asked.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import GradfitError

INTERCEPT = "intercept"
#: A categorical column with more levels than this share of its rows, or a numeric column
#: with more than `MANY_LEVELS` levels, is more likely a measurement than a category.
MANY_LEVELS_SHARE = 0.5
MANY_LEVELS = 50
_ALIGN = 64  # bytes: XLA's CPU buffers use numpy memory in place when it is aligned like this


class ManyLevelsWarning(UserWarning):
    """A categorical column has so many levels that it is probably a measurement, not a category."""


def aligned_empty(shape: tuple[int, ...], dtype=np.float64) -> np.ndarray:
    """An uninitialised C-ordered array whose data starts on a 64-byte boundary."""
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape)) * dtype.itemsize
    buffer = np.empty(nbytes + _ALIGN, dtype=np.uint8)
    start = (-buffer.ctypes.data) % _ALIGN
    return buffer[start:start + nbytes].view(dtype).reshape(shape)


@dataclass(frozen=True, eq=False)
class Design:
    """The design of a regression: columns, their names, and what was encoded how.

    ``columns`` holds the non-intercept columns one to a row, shape (D, I); the
    intercept is not stored. ``names`` names every coefficient in order: ``intercept``
    first when there is one, then the columns (``col[level]`` for one-hot columns).
    ``offset`` is added to the linear predictor; ``exposure`` multiplies a count's rate
    (log exposure is its offset under the log link). ``levels`` records each
    categorical column as (name, baseline, levels with a column).
    """

    columns: np.ndarray
    names: tuple[str, ...]
    intercept: bool = True
    offset: np.ndarray | None = None
    exposure: np.ndarray | None = None
    levels: tuple[tuple[str, Any, tuple[Any, ...]], ...] = ()
    sources: dict[str, str] = field(default_factory=dict, compare=False)

    def __post_init__(self):
        for name in ("columns", "offset", "exposure"):
            value = getattr(self, name)
            if value is not None and value.flags.writeable:
                value.setflags(write=False)

    @property
    def n_rows(self) -> int:
        return self.columns.shape[1]

    @property
    def n_coef(self) -> int:
        return len(self.names)

    @property
    def column_names(self) -> tuple[str, ...]:
        """The names of the stored columns (the coefficients but the intercept)."""
        return self.names[1:] if self.intercept else self.names

    @property
    def matrix(self) -> np.ndarray:
        """X as an (I, P) array, intercept column first: a new array, for other libraries."""
        parts = ([np.ones(self.n_rows)] if self.intercept else []) + list(self.columns)
        return np.column_stack(parts) if parts else np.zeros((self.n_rows, 0))

    def log_offset(self) -> np.ndarray | None:
        """The offset of a log-link rate: offset + log(exposure), or None if neither."""
        if self.offset is None and self.exposure is None:
            return None
        total = np.zeros(self.n_rows)
        if self.offset is not None:
            total = total + self.offset
        if self.exposure is not None:
            total = total + np.log(self.exposure)
        return total

    def scaling(self, sub_cols: np.ndarray | None = None) -> Scaling:
        """The standardisation of the stored columns, from all rows or a subsample's columns.

        With an intercept each column is centred on its mean and divided by its
        standard deviation; without one only divided by its root mean square (centring
        would change the model). Any affine map fits the same model, so statistics
        from a subsample of the rows are as good for conditioning as the exact ones.
        """
        cols = self.columns if sub_cols is None else sub_cols
        d = cols.shape[0]
        if d == 0:
            return Scaling(np.zeros(0), np.ones(0), self.intercept)
        if self.intercept:
            center = cols.mean(axis=1)
            scale = cols.std(axis=1)
        else:
            center = np.zeros(d)
            scale = np.sqrt(np.mean(cols * cols, axis=1))
        zero = scale == 0
        if sub_cols is not None and zero.any():  # a rare column, constant on the subsample
            full = self.scaling()
            scale = np.where(zero, full.scale, scale)
            center = np.where(zero, full.center, center)
        return Scaling(center, np.where(scale > 0, scale, 1.0), self.intercept)


@dataclass(frozen=True)
class Scaling:
    """Standardised coordinates: z_j = (x_j - m_j)/s_j, and the map back to the original scale.

    With an intercept, η = θ'_0 + Σ_j θ'_j z_j = β_0 + Σ_j β_j x_j for
    β_j = θ'_j / s_j and β_0 = θ'_0 - Σ_j θ'_j m_j / s_j: a linear map β = A θ'.
    Without an intercept m = 0 and β_j = θ'_j / s_j.
    """

    center: np.ndarray
    scale: np.ndarray
    intercept: bool

    @property
    def matrix(self) -> np.ndarray:
        """A with β = A θ', for one block of coefficients (intercept first)."""
        d = len(self.scale)
        if not self.intercept:
            return np.diag(1.0 / self.scale)
        a = np.zeros((d + 1, d + 1))
        a[0, 0] = 1.0
        a[0, 1:] = -self.center / self.scale
        a[1:, 1:] = np.diag(1.0 / self.scale)
        return a

    def to_original(self, theta_std: np.ndarray) -> np.ndarray:
        return self.matrix @ np.asarray(theta_std, dtype=float)

    def to_standard(self, beta: np.ndarray) -> np.ndarray:
        return np.linalg.solve(self.matrix, np.asarray(beta, dtype=float))


# -- building a design ------------------------------------------------------------------


def _numeric(name: str, values: Any) -> np.ndarray:
    a = np.asarray(values)
    if a.ndim != 1:
        raise GradfitError(f"column {name!r} must be one value per row, not shape {a.shape}")
    if a.dtype == object or a.dtype.kind in "USO":
        raise GradfitError(
            f"column {name!r} is not numeric; encode it as a categorical column (--categorical {name})"
        )
    a = a.astype(float)
    bad = ~np.isfinite(a)
    if bad.any():
        rows = np.nonzero(bad)[0]
        raise GradfitError(
            f"column {name!r} holds NaN or inf at row index(es) {', '.join(map(str, rows[:5]))}"
            f"{' ...' if len(rows) > 5 else ''}; drop or fill those rows first"
        )
    return a


def _levels(name: str, values: Any, baseline: Any = None) -> tuple[np.ndarray, list[Any], Any]:
    """Integer codes of a categorical column, its levels in sorted order, and the baseline."""
    a = np.asarray(values)
    if a.ndim != 1:
        raise GradfitError(f"column {name!r} must be one value per row, not shape {a.shape}")
    if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
        raise GradfitError(f"categorical column {name!r} holds NaN or inf; drop or fill those rows first")
    if a.dtype == object:
        if any(v is None for v in a):
            raise GradfitError(f"categorical column {name!r} has missing values; drop or fill those rows first")
        a = a.astype(str)
    levels, codes = np.unique(a, return_inverse=True)
    levels = [v.item() if hasattr(v, "item") else v for v in levels]
    _warn_many_levels(name, len(levels), len(a), a.dtype.kind in "biuf")
    if len(levels) < 2:
        raise GradfitError(
            f"categorical column {name!r} is constant (every row is {levels[0]!r}); "
            "it cannot be told apart from the intercept: drop it"
        )
    if baseline is None:
        base = 0
    else:
        matches = [i for i, v in enumerate(levels) if v == baseline or str(v) == str(baseline)]
        if not matches:
            raise GradfitError(
                f"baseline {baseline!r} is not a level of column {name!r}; its levels are: "
                f"{', '.join(map(str, levels[:10]))}{' ...' if len(levels) > 10 else ''}"
            )
        base = matches[0]
    return codes, levels, levels[base]


def _warn_many_levels(name: str, n_levels: int, n_rows: int, numeric: bool) -> None:
    """Warn when a categorical column looks continuous: it would cost one coefficient per level."""
    if n_levels <= MANY_LEVELS_SHARE * n_rows and not (numeric and n_levels > MANY_LEVELS):
        return
    warnings.warn(
        f"categorical column {name!r} has {n_levels} levels in {n_rows} rows, so it adds {n_levels - 1} "
        "coefficients, each fitted from a few rows; if it is a measurement, give it as a numeric column "
        "instead of a categorical one",
        ManyLevelsWarning,
        stacklevel=4,
    )


def build(
    columns: Mapping[str, Any],
    numeric: Sequence[str] = (),
    categorical: Sequence[str] = (),
    *,
    intercept: bool = True,
    offset: str | np.ndarray | None = None,
    exposure: str | np.ndarray | None = None,
    baselines: Mapping[str, Any] | None = None,
    check: bool = True,
) -> Design:
    """A design from named columns (a dict name -> values, as `gradfit.data.read_table` gives).

    ``numeric`` columns enter as they are; each ``categorical`` column becomes one 0/1
    column per level but its baseline (the first level in sorted order, or
    ``baselines[col]``), named ``col[level]``; without an intercept the first
    categorical column keeps all its levels (its baseline is None), as in R. ``offset`` (a column name or values) is
    added to the linear predictor; ``exposure`` (name or values) must be positive and
    multiplies a count's rate. With ``check`` (the default) a constant column or
    columns that are perfectly collinear raise a `GradfitError` naming them.
    """
    numeric, categorical = list(numeric), list(categorical)
    for name in [*numeric, *categorical]:
        if name not in columns:
            raise GradfitError(f"there is no column {name!r}; the columns are: {', '.join(columns)}")
    both = set(numeric) & set(categorical)
    if both:
        raise GradfitError(f"column(s) {', '.join(sorted(both))} are listed as both numeric and categorical")
    lengths = {len(np.asarray(columns[n])) for n in [*numeric, *categorical]}
    n_rows = lengths.pop() if len(lengths) == 1 else None
    if lengths:
        raise GradfitError("the columns have different lengths; every column needs one value per row")

    # Each block is a function filling one row of the matrix, so a column is copied once.
    blocks: list[Any] = []
    names: list[str] = [INTERCEPT] if intercept else []
    sources: dict[str, str] = {}
    for name in numeric:
        values = np.asarray(columns[name])
        if values.ndim != 1 or values.dtype == object or values.dtype.kind in "USO":
            _numeric(name, values)  # raises the error that says what is wrong
        blocks.append(values)
        names.append(name)
        sources[name] = name
    levels = []
    for k, name in enumerate(categorical):
        codes, kinds, base = _levels(name, columns[name], (baselines or {}).get(name))
        if k == 0 and not intercept:
            base = None  # no intercept to absorb a baseline: the first categorical column keeps every level
        kept = tuple(v for v in kinds if v != base)
        for j, level in enumerate(kinds):
            if level == base:
                continue
            blocks.append(codes == j)
            names.append(f"{name}[{level}]")
            sources[names[-1]] = name
        levels.append((name, base, kept))
    if n_rows is None:
        n_rows = _length_of(offset, exposure, columns)
    if not names:
        raise GradfitError("the design has no columns: give numeric or categorical columns, or an intercept")
    if len(set(names)) != len(names):
        dupes = sorted({n for n in names if names.count(n) > 1})
        raise GradfitError(f"the design has two columns named {', '.join(dupes)}; rename one")

    matrix = aligned_empty((len(blocks), n_rows))
    for j, block in enumerate(blocks):
        matrix[j] = block
    if not np.isfinite(matrix).all():
        stored = names[1:] if intercept else names
        bad = [j for j in range(len(blocks)) if not np.isfinite(matrix[j]).all()]
        _numeric(stored[bad[0]], matrix[bad[0]])  # raises, naming the column and rows
    off = _side_column("offset", offset, columns, n_rows)
    expo = _side_column("exposure", exposure, columns, n_rows)
    if expo is not None and not np.all(expo > 0):
        rows = np.nonzero(~(expo > 0))[0]
        label = exposure if isinstance(exposure, str) else "exposure"
        raise GradfitError(
            f"the offset/exposure column {label!r} must be positive (it multiplies the rate, and its log is "
            f"the offset); it is {expo[rows[0]]:g} at row index(es) {', '.join(map(str, rows[:5]))}"
            f"{' ...' if len(rows) > 5 else ''}"
        )
    design = Design(matrix, tuple(names), intercept, off, expo, tuple(levels), sources)
    if check:
        check_columns(design)
    return design


def _length_of(offset, exposure, columns) -> int:
    for value in (offset, exposure):
        if value is not None:
            return len(np.asarray(columns[value] if isinstance(value, str) else value))
    raise GradfitError("the design has no columns: give numeric or categorical columns")


def _side_column(label: str, value, columns: Mapping[str, Any], n_rows: int) -> np.ndarray | None:
    if value is None:
        return None
    if isinstance(value, str):
        if value not in columns:
            raise GradfitError(f"there is no {label} column {value!r}; the columns are: {', '.join(columns)}")
        a = _numeric(value, columns[value])
    else:
        a = _numeric(label, value)
    if len(a) != n_rows:
        raise GradfitError(f"the {label} has {len(a)} values but the design has {n_rows} rows")
    return a


def from_dataset(data, *, intercept: bool = True, categorical: Sequence[str] = (), check: bool = True) -> Design:
    """A design from a `gradfit.Dataset`: its input columns, by their names, all numeric."""
    x = data.x if data.x.ndim == 2 else data.x[:, None]
    columns = {name: x[:, j] for j, name in enumerate(data.x_names)}
    numeric = [n for n in data.x_names if n not in categorical]
    return build(columns, numeric, categorical, intercept=intercept, check=check)


# -- checks -------------------------------------------------------------------------------


def check_columns(design: Design, sample: int = 1 << 16) -> None:
    """Raise a `GradfitError` naming a constant column, or columns that are collinear.

    A column is constant when its smallest and largest values are equal (with an
    intercept, that is the intercept again; without one, only an all-zero column is
    redundant). Collinearity is read from the eigenvectors of the correlation matrix
    of the standardised columns (with the intercept): an eigenvalue below 1e-10 of
    the largest means some combination of the named columns is constant. Large
    designs are checked on a subsample of rows first, and a finding is confirmed on
    all of them (a combination constant on all rows is constant on any subsample).
    """
    cols = design.columns
    names = design.column_names
    lo, hi = cols.min(axis=1) if cols.size else [], cols.max(axis=1) if cols.size else []
    check_ranges(names, lo, hi, design.intercept, design.n_rows)
    n = design.n_rows
    rows = None if n <= 2 * sample else slice(0, None, n // sample)
    found = _collinear(design, rows)
    if found and rows is not None:
        found = _collinear(design, None)
    if found:
        raise collinear_error(found, design.intercept)


def check_ranges(names: Sequence[str], lo: Any, hi: Any, intercept: bool, n_rows: int) -> None:
    """Raise a `GradfitError` for a constant column (from each column's smallest and largest value),
    or for fewer rows than coefficients."""
    for j, name in enumerate(names):
        if lo[j] == hi[j] and (intercept or lo[j] == 0):
            what = f"constant ({lo[j]:g} in every row)" if lo[j] != 0 else "zero in every row"
            hint = "it cannot be told apart from the intercept: drop it" if intercept else "drop it"
            raise GradfitError(f"column {name!r} is {what}; {hint}")
    if len(names) + intercept > n_rows:
        raise GradfitError(
            f"the design has {len(names) + intercept} coefficients but only {n_rows} rows; "
            "it needs at least as many rows as coefficients"
        )


def collinear_error(found: Sequence[str], intercept: bool) -> GradfitError:
    """The error for columns ``found`` collinear (with the intercept, if there is one)."""
    listed = ", ".join(repr(c) for c in found)
    return GradfitError(
        f"columns {listed} are perfectly collinear: a combination of them"
        f"{' and the intercept' if intercept else ''} is constant, so their coefficients are not "
        "identified (standard errors would be infinite); drop one of them"
    )


def _collinear(design: Design, rows) -> list[str]:
    cols = design.columns if rows is None else design.columns[:, rows]
    scaling = design.scaling(None if rows is None else cols)
    z = (cols - scaling.center[:, None]) / scaling.scale[:, None]
    if design.intercept:
        z = np.vstack([np.ones((1, z.shape[1])), z])
    return collinear_in(z @ z.T / z.shape[1], design.names)


def collinear_in(gram: np.ndarray, names: Sequence[str]) -> list[str]:
    """The columns involved in a combination that is constant, from the Gram matrix of the
    standardised columns (with a row of ones first for the intercept) divided by the rows."""
    d = np.sqrt(np.diag(gram))
    corr = gram / np.outer(d, d)
    values, vectors = np.linalg.eigh(corr)
    small = values <= 1e-10 * values[-1]
    if not small.any():
        return []
    weight = np.abs(vectors[:, small]).max(axis=1)
    return [names[j] for j in np.nonzero(weight > 1e-6)[0] if names[j] != INTERCEPT]

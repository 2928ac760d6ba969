"""Regression on a Dask cluster: `gradfit.glm`'s Newton fit by map-reduce over partitions in worker memory.

The rows stay on the workers; the driver holds only the coefficients, sums of size P or P²,
and (above 2^18 rows) the same subsample of 2^16 rows that the in-memory fit uses. Each
partition (a Parquet file, or a run of its row groups, or a Dask DataFrame partition) is
read once, checked, and kept on its worker as a `_Block`: the GLM of its rows, cut into
chunks of one shape (the last padded with a copy of a real row at weight 0), so every
worker compiles each function once. Then, with the workers doing the sums:

1. one pass: per column the mean, the co-moment matrix Σ (x - x̄)(x - x̄)ᵀ and the range,
   combined across partitions by Chan's pairwise update (exact to rounding, no
   cancellation), the `gradfit.glm.Totals` of y and the offset for the starting
   intercept, the mean and spread of y, and the subsample's rows; from these, the
   checks of the in-memory design (constant or collinear columns) and the standardisation
   z_j = (x_j - m_j)/s_j, m and s as `gradfit.design.Scaling` takes them;
2. damped Newton in standardised coordinates, exactly as `GLM.fit` runs it: every
   evaluation of L(θ') and ∇L is one pass, Σ over partitions of each one's sums; the
   Hessian XᵀWX (in z) is the subsample's, scaled up, on large data, and otherwise
   summed over partitions in the same pass as the gradient; it stops when the Newton
   decrement is at most ``tol`` standard errors (`gradfit.newton`);
3. one pass at the optimum for `gradfit.inference.RowSums` (log-likelihood, deviance,
   Pearson χ², the Hessian, for least squares the residual and total sums of squares and
   JᵀJ), from which `gradfit.inference.statistics` computes what it does in memory; and,
   for the bernoulli family, one pass counting rows predicted with certainty (separation).

So the iterates are the in-memory fit's up to the order of the sums, and the result (a
`FitResult` on the original scale, with its `Inference`) is the same to rounding.
Worker functions are defined here, at module level, so they reach the workers by
reference and compile once per worker. Dask is imported only inside functions.
"""

from __future__ import annotations

import dataclasses
import glob as globbing
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import numpy as np

from . import cluster, newton
from . import design as design_mod
from . import glm as glm_mod
from . import inference as inference_mod
from .design import Design, Scaling
from .errors import GradfitError
from .glm import (
    DEFAULT_TOL,
    FAMILIES,
    GLM,
    Totals,
    _breakdown_is_a_scale_problem,
    _compiled_outputs,
    _Working,
    certain_rows,
)
from .objective import Objective
from .result import FitResult

#: Rows of one compiled chunk of a partition (a partition of fewer rows: the next power of two).
CHUNK_ROWS = 1 << 18
#: A Parquet file of more rows is read as several partitions, each a run of its row groups.
PARTITION_ROWS = 1 << 22

#: `fit_glm` settings that the cluster fit takes, beyond the model's.
_SUPPORTED = {"x", "offset", "exposure", "link", "sigma", "intercept", "tol", "max_iter", "init", "inference",
              "level", "scheduler", "workers", "timeout"}
#: Settings of the in-memory fit that the cluster fit does not take: accepted only at these defaults.
_IN_MEMORY_ONLY = {"categorical": (), "baselines": None, "polish": True, "profile": (), "optimizer": None,
                   "steps": None, "epochs": None, "batch_size": None, "progress": None, "history_every": None,
                   "checkpoint": None, "checkpoint_every": None, "resume": None, "seed": 0}


# -- what the workers hold ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Spec:
    """What turns a partition's columns into a block: the model's columns and settings."""

    x: tuple[str, ...]
    y: str
    offset: str | None
    exposure: str | None
    family: str
    link: str | None
    sigma: float | None
    intercept: bool

    @property
    def columns(self) -> list[str]:
        """Every column a partition must have, each once."""
        return list(dict.fromkeys([*self.x, self.y, *(c for c in (self.offset, self.exposure) if c)]))


@dataclass(frozen=True)
class _Chunk:
    """Rows of a block in one compiled shape: columns (D, C), offset, log exposure, targets, weights.

    ``w`` is 1 for real rows and 0 for the rows that pad the last chunk (copies of a real
    row, so every value stays finite wherever the real ones are); ``real`` counts the first.
    """

    cols: np.ndarray
    offset: np.ndarray | None
    log_exposure: np.ndarray | None
    y: np.ndarray
    w: np.ndarray
    real: int


@dataclass(frozen=True)
class _Block:
    """One partition on its worker: ``n`` rows in chunks, and where they came from (for messages)."""

    label: str
    n: int
    chunks: tuple[_Chunk, ...]


@dataclass(frozen=True)
class _Task:
    """What every pass sends along: the working objective and the standardisation."""

    objective: Objective
    center: np.ndarray
    scale: np.ndarray

    def x(self, chunk: _Chunk) -> tuple:
        return chunk.cols, self.center, self.scale, chunk.offset, chunk.log_exposure


@dataclass(frozen=True)
class _Moments:
    """Count, mean and co-moment matrix Σ (x - x̄)(x - x̄)ᵀ of rows (none: ``n`` 0), merged by
    Chan, Golub and LeVeque's pairwise update, exact to rounding where Σx² - n x̄² would cancel."""

    n: int = 0
    mean: np.ndarray | None = None
    comoment: np.ndarray | None = None

    @classmethod
    def of(cls, cols: np.ndarray) -> _Moments:
        """Of the columns (D, I) of some rows."""
        mean = cols.mean(axis=1)
        centred = cols - mean[:, None]
        return cls(cols.shape[1], mean, centred @ centred.T)

    def __add__(self, other: _Moments) -> _Moments:
        if other.n == 0:
            return self
        if self.n == 0:
            return other
        n = self.n + other.n
        delta = other.mean - self.mean
        mean = self.mean + delta * (other.n / n)
        return _Moments(n, mean, self.comoment + other.comoment + np.outer(delta, delta) * (self.n * other.n / n))


@dataclass(frozen=True)
class _FirstPass:
    """One partition's first-pass statistics (see the module docstring), and its subsample rows."""

    columns: _Moments
    lo: np.ndarray
    hi: np.ndarray
    totals: Totals
    y: _Moments
    sub: tuple[np.ndarray, np.ndarray | None, np.ndarray | None, np.ndarray]

    def __add__(self, other: _FirstPass) -> _FirstPass:
        sub = tuple(None if a is None else np.concatenate([a, b], axis=-1) for a, b in zip(self.sub, other.sub))
        return _FirstPass(self.columns + other.columns, np.minimum(self.lo, other.lo), np.maximum(self.hi, other.hi),
                          self.totals + other.totals, self.y + other.y, sub)


# -- worker functions (module level: they reach the workers by reference) ------------------------------


def _block(columns: dict[str, np.ndarray], spec: _Spec, label: str, first_row: int | None) -> _Block:
    """A partition's columns as a block, after the checks the in-memory fit makes of every row.

    Each chunk is the GLM of its rows (`gradfit.glm.glm`'s design and checks, none of the
    whole-design ones), so its columns, offsets and targets are the in-memory fit's, row by row.
    """
    cluster.pin_to_share()

    def where(row: int) -> str:
        return f"row {row if first_row is None else first_row + row} of {label}"

    for name in spec.columns:
        bad = ~np.isfinite(columns[name])
        if bad.any():
            raise GradfitError(f"column {name!r} holds NaN or inf (first at {where(int(np.argmax(bad)))}); "
                               "drop or fill those rows first")
    if spec.exposure is not None and not np.all(columns[spec.exposure] > 0):
        row = int(np.argmax(~(columns[spec.exposure] > 0)))
        raise GradfitError(f"the exposure column {spec.exposure!r} must be positive (it multiplies the rate, and its "
                           f"log is the offset); it is {columns[spec.exposure][row]:g} at {where(row)}")
    n = len(columns[spec.y])
    if n == 0:  # an empty partition (a filtered DataFrame's, say): nothing to hold
        return _Block(label, 0, ())
    size = min(CHUNK_ROWS, 1 << max(n - 1, 1).bit_length())
    chunks = []
    for start in range(0, n, size):
        stop = min(start + size, n)
        take = np.minimum(np.arange(start, start + size), stop - 1)  # pad with copies of the last real row
        rows = {name: values[take] for name, values in columns.items()}
        try:
            design = design_mod.build(rows, list(spec.x), intercept=spec.intercept, offset=spec.offset,
                                      exposure=spec.exposure, check=False)
            model = GLM(design, rows[spec.y], spec.family, spec.link, spec.sigma, y_name=spec.y)
        except GradfitError as exc:
            raise GradfitError(f"{label}: {exc}") from None
        offset, log_exposure = model._offsets()
        w = (np.arange(start, start + size) < stop).astype(float)
        chunks.append(_Chunk(design.columns, offset, log_exposure, model.y, w, stop - start))
    return _Block(label, n, tuple(chunks))


@dataclass(frozen=True)
class _Refused:
    """A partition that failed the checks: the message, returned rather than raised, so that the
    worker does not log a traceback for what is the user's input, not a failure of the task."""

    message: str


def _read_parquet(path: str, row_groups: list[int], first_row: int, spec: _Spec, label: str) -> _Block | _Refused:
    """Row groups of a Parquet file as a block (run on a worker)."""
    import pyarrow.parquet as pq

    try:
        table = pq.ParquetFile(path).read_row_groups(row_groups, columns=spec.columns)
    except Exception as exc:  # noqa: BLE001 - a damaged data page: pyarrow raises several kinds
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return _Refused(f"cannot read {label} ({first}): the file is damaged; write it again")
    columns = {name: np.asarray(table.column(name).to_numpy(), dtype=float) for name in spec.columns}
    try:
        return _block(columns, spec, label, first_row)
    except GradfitError as exc:
        return _Refused(str(exc))


def _from_frame(frame: Any, spec: _Spec, label: str) -> _Block | _Refused:
    """A Dask DataFrame partition (a pandas DataFrame) as a block (run on a worker)."""
    columns = {name: frame[name].to_numpy(dtype="float64", na_value=np.nan) for name in spec.columns}
    try:
        return _block(columns, spec, label, None)
    except GradfitError as exc:
        return _Refused(str(exc))


def _rows(block: _Block | _Refused) -> int | _Refused:
    return block if isinstance(block, _Refused) else block.n


def _first_pass(block: _Block, first_row: int, every: int, limit: int) -> _FirstPass:
    """The block's first-pass statistics, with its rows of the subsample: of the global rows 0, every,
    2·every, ... below limit, those the block holds (its first row is global row ``first_row``)."""
    moments, y_moments = _Moments(), _Moments()
    d = block.chunks[0].cols.shape[0]
    lo, hi = np.full(d, np.inf), np.full(d, -np.inf)
    totals = None
    picked: list[list[np.ndarray]] = [[], [], [], []]
    row = first_row
    for chunk in block.chunks:
        cols = chunk.cols[:, :chunk.real]
        y = chunk.y[:chunk.real]
        moments = moments + _Moments.of(cols)
        y_moments = y_moments + _Moments.of(y[None, :])
        if d:
            lo, hi = np.minimum(lo, cols.min(axis=1)), np.maximum(hi, cols.max(axis=1))
        part = Totals.of(y, None if chunk.offset is None else chunk.offset[:chunk.real])
        totals = part if totals is None else totals + part
        if every:
            index = np.arange(row, row + chunk.real)
            keep = np.nonzero((index % every == 0) & (index < limit))[0]
            for kept, values in zip(picked, (chunk.cols, chunk.offset, chunk.log_exposure, chunk.y)):
                if values is not None:
                    kept.append(values[..., keep])
        row += chunk.real
    empty = (np.zeros((d, 0)), None if block.chunks[0].offset is None else np.zeros(0),
             None if block.chunks[0].log_exposure is None else np.zeros(0), np.zeros(0))
    sub = tuple(e if e is None else (np.concatenate(p, axis=-1) if p else e) for p, e in zip(picked, empty))
    return _FirstPass(moments, lo, hi, totals, y_moments, sub)


def _value_grad(block: _Block, task: _Task, theta: np.ndarray, with_hessian: bool):
    """Σ over the block of the loss and its gradient (and Hessian) in standardised coordinates."""
    cluster.pin_to_share()
    summed = inference_mod.Likelihood(task.objective, None, None, ()).summed
    with jax.enable_x64(True):
        vg = newton.value_and_grad(summed)
        hess = newton.hessian(summed) if with_hessian else None
        value, grad, h = 0.0, 0.0, 0.0
        for chunk in block.chunks:
            v, g = jax.device_get(vg(theta, task.x(chunk), chunk.y, chunk.w))
            value, grad = value + float(v), grad + np.asarray(g, dtype=float)
            if hess is not None:
                h = h + np.asarray(jax.device_get(hess(theta, task.x(chunk), chunk.y, chunk.w)), dtype=float)
    return value, grad, (h if with_hessian else None)


def _row_sums(block: _Block, task: _Task, theta: np.ndarray, canonical: bool, centre: float,
              family: str) -> tuple[inference_mod.RowSums, int]:
    """The block's `RowSums` at the optimum, and how many of its rows are predicted with certainty."""
    cluster.pin_to_share()
    total, certain = None, 0
    with jax.enable_x64(True):
        outputs = _compiled_outputs(task.objective.model)
        for chunk in block.chunks:
            part = inference_mod.row_sums(task.objective, canonical, theta, task.x(chunk), chunk.y, chunk.w, centre)
            total = part if total is None else total + part
            if family in ("bernoulli", "categorical"):
                f = np.asarray(outputs(theta, task.x(chunk)))[:chunk.real]
                certain += certain_rows(family, f, chunk.y[:chunk.real])
    return total, certain


# -- the driver's side ----------------------------------------------------------------------------


class _ClusterWork(_Working):
    """`gradfit.glm`'s working data, with the rows on a cluster's workers: each pass is a map-reduce.

    Everything `GLM._finish` asks of its working data (Newton stages, the result, the
    separation check, inference) goes through the methods overridden here.
    """

    def __init__(self, model: GLM, client: Any, blocks: list[Any], first: _FirstPass, every: int):
        self.glm = model
        self.client, self.blocks = client, blocks
        self.n = first.columns.n
        self.totals = first.totals
        self.y_mean = float(first.y.mean[0])
        self.model = model.working_model()
        self.objective = Objective(self.model, model.loss, "sum")
        self.rows = None
        self.x = self.y = None
        self.offset = self.log_exposure = None
        full = _scaling(first.columns, model.design.intercept)
        if every:
            sub_cols, sub_offset, sub_log_exposure, sub_y = first.sub
            sub_cols = np.ascontiguousarray(sub_cols)
            # as `Design.scaling(sub_cols=...)`: the subsample's statistics, the full data's where it is constant
            sub = Design(sub_cols, model.design.names, model.design.intercept).scaling()
            zero = sub_cols.std(axis=1) == 0 if model.design.intercept else np.mean(sub_cols**2, axis=1) == 0
            self.scaling = Scaling(np.where(zero, full.center, sub.center), np.where(zero, full.scale, sub.scale),
                                   model.design.intercept)
            self.rows = slice(0, (self.n // glm_mod.SUBSAMPLE_ROWS) * glm_mod.SUBSAMPLE_ROWS, every)
            put = jax.device_put
            self.sub_x = (put(sub_cols), put(self.scaling.center), put(self.scaling.scale),
                          None if sub_offset is None else put(sub_offset),
                          None if sub_log_exposure is None else put(sub_log_exposure))
            self.sub_y = put(sub_y)
        else:
            self.scaling = full
        self.a = model.transform(self.scaling)
        self.task = _Task(self.objective, self.scaling.center, self.scaling.scale)
        self.value_scale = 1.0
        if model.family == "normal" and model.sigma is None:
            self.value_scale = 0.5 / max(float(first.y.comoment[0, 0]) / self.n, 1e-300)
        self.passes = 0
        self.seconds: dict[str, float] = {}  # wall time of the passes, by stage

    def _each(self, fn, *args) -> list[Any]:
        """``fn(block, *args)`` on every block, where it lives; the results in block order."""
        t0 = time.perf_counter()
        self.passes += 1
        futures = [self.client.submit(fn, block, *args, pure=False) for block in self.blocks]
        out = self.client.gather(futures)
        what = {"_value_grad": "newton", "_row_sums": "inference"}.get(fn.__name__, fn.__name__)
        self.seconds[what] = self.seconds.get(what, 0.0) + time.perf_counter() - t0
        return out

    def start(self, init) -> np.ndarray:
        if init is None:
            return self.glm._start_from(self.totals)
        return super().start(init)

    def minimize(self, theta, *, rows: str, hessian: str | None = None, tol: float, max_iter: int,
                 value_scale: float) -> newton.NewtonResult:
        if rows == "subsample":  # the subsample is on the driver, as in memory
            return super().minimize(theta, rows=rows, hessian=hessian, tol=tol, max_iter=max_iter,
                                    value_scale=value_scale)
        exact = hessian is None or hessian == "all"
        kept: dict[bytes, np.ndarray] = {}

        def value_and_grad(t):
            t = np.asarray(t, dtype=float)
            parts = self._each(_value_grad, self.task, t, exact)
            if exact:  # the Hessian at this point comes with it: Newton asks for it next if the step is taken
                kept.clear()
                kept[t.tobytes()] = sum(h for _, _, h in parts)
            return sum(v for v, _, _ in parts), sum(g for _, g, _ in parts)

        def hess(t):
            t = np.asarray(t, dtype=float)
            if exact:
                if t.tobytes() not in kept:
                    value_and_grad(t)
                return kept[t.tobytes()]
            return jax.device_get(newton.hessian(self.objective)(t, *(self.sub_x, self.sub_y)))

        scale = 1.0 if exact else self.n / len(self.sub_y)
        return newton.iterate(value_and_grad, hess, theta, hess_scale=scale, value_scale=value_scale, tol=tol,
                              max_iter=max_iter)

    def _sums(self, theta) -> tuple[inference_mod.RowSums, int]:
        cached = getattr(self, "_sums_at", None)
        key = np.asarray(theta, dtype=float).tobytes()
        if cached is None or cached[0] != key:
            canonical = self.glm.link in FAMILIES[self.glm.family].canonical
            centre = self.y_mean if self.glm.design.intercept else 0.0
            parts = self._each(_row_sums, self.task, np.asarray(theta, dtype=float), canonical, centre,
                               self.glm.family)
            total = parts[0][0]
            for sums, _ in parts[1:]:
                total = total + sums
            self._sums_at = (key, (total, sum(c for _, c in parts)))
        return self._sums_at[1]

    def certain_rows(self, theta) -> int:
        return self._sums(theta)[1]

    def row_sums(self, theta) -> inference_mod.RowSums:
        return self._sums(theta)[0]

    def outputs(self, theta):
        raise GradfitError("the rows of a cluster fit stay on the workers: there are no outputs to return here")


def _scaling(moments: _Moments, intercept: bool) -> Scaling:
    """`Design.scaling` from all rows' moments: mean and standard deviation (root mean square without
    an intercept), 1 where a column is constant."""
    n = moments.n
    variance = np.diag(moments.comoment) / n
    if intercept:
        center, scale = moments.mean, np.sqrt(variance)
    else:
        center, scale = np.zeros_like(moments.mean), np.sqrt(variance + moments.mean**2)
    return Scaling(center, np.where(scale > 0, scale, 1.0), intercept)


def _check(first: _FirstPass, model: GLM) -> None:
    """The in-memory design's checks (`gradfit.design.check_columns`), from the first pass's sums."""
    d = model.design
    names = d.column_names
    design_mod.check_ranges(names, first.lo, first.hi, d.intercept, first.columns.n)
    if not names:
        return
    m = first.columns
    if d.intercept:  # [1, z] for z = (x - x̄)/s: the Gram matrix / n is 1 ⊕ the correlation matrix
        gram = np.zeros((len(names) + 1, len(names) + 1))
        gram[0, 0] = 1.0
        gram[1:, 1:] = m.comoment / m.n
    else:
        gram = m.comoment / m.n + np.outer(m.mean, m.mean)
    found = design_mod.collinear_in(gram, d.names)
    if found:
        raise design_mod.collinear_error(found, d.intercept)


# -- the data's sources ---------------------------------------------------------------------------


def _numeric_type(kind: Any) -> bool:
    import pyarrow as pa

    return pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)


def _parquet_files(data: str | Path) -> list[str]:
    """The files a path or glob names, sorted; none is an error."""
    pattern = str(data)
    paths = sorted(globbing.glob(pattern)) if globbing.has_magic(pattern) else [pattern]
    paths = [p for p in paths if Path(p).is_file()]
    if not paths:
        raise GradfitError(f"no file matches {pattern!r}: give the path of Parquet files, e.g. 'data/*.parquet' "
                           "(quoted, so the shell leaves the * to gradfit)")
    return paths


def _metadata(path: str) -> Any:
    """A Parquet file's footer (its schema and row groups), or the error naming the file."""
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(path).metadata
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several kinds on a file that is not Parquet
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise GradfitError(f"cannot read {path} as Parquet ({first}); a cluster fit reads Parquet files only") from None


def _parquet_plan(paths: list[str], spec: _Spec) -> list[tuple[str, list[int], int, str, int]]:
    """(path, row groups, first row in the file, label, rows) of every partition of the files."""
    plan = []
    for path in paths:
        meta = _metadata(path)
        schema = meta.schema.to_arrow_schema()
        for name in spec.columns:
            if name not in schema.names:
                raise GradfitError(f"there is no column {name!r} in {path}; its columns are: "
                                   f"{', '.join(schema.names)}")
            if not _numeric_type(schema.field(name).type):
                raise _not_numeric(name, str(schema.field(name).type), spec)
        start, groups, rows = 0, [], 0
        for g in range(meta.num_row_groups):
            size = meta.row_group(g).num_rows
            if groups and rows + size > PARTITION_ROWS:
                plan.append((path, groups, start, _label(path, start, rows), rows))
                start, groups, rows = start + rows, [], 0
            groups.append(g)
            rows += size
        if rows:
            plan.append((path, groups, start, _label(path, start, rows), rows))
    return plan


def _label(path: str, start: int, rows: int) -> str:
    return f"file {path}" if start == 0 else f"file {path} (rows {start}-{start + rows - 1})"


def _not_numeric(name: str, kind: str, spec: _Spec) -> GradfitError:
    if name == spec.y:
        return GradfitError(f"target column {name!r} is not numeric ({kind}); on a cluster it must hold numbers: "
                            "recode it (e.g. 0/1 for two labels) before the fit")
    return GradfitError(f"column {name!r} is not numeric ({kind}); a cluster fit takes numeric columns only: "
                        "one-hot encode a categorical column into 0/1 columns first")


def _frame_blocks(client: Any, frame: Any, spec: _Spec) -> list[Any]:
    import dask

    names = [str(c) for c in frame.columns]
    for name in spec.columns:
        if name not in names:
            raise GradfitError(f"the Dask DataFrame has no column {name!r}; its columns are: {', '.join(names)}")
        kind = frame.dtypes[name]
        if not (kind.kind in "biuf" if hasattr(kind, "kind") else False):
            raise _not_numeric(name, str(kind), spec)
    parts = frame[spec.columns].to_delayed()
    loads = [dask.delayed(_from_frame)(part, spec, f"partition {i} of the Dask DataFrame")
             for i, part in enumerate(parts)]
    return client.compute(loads)


# -- the fit --------------------------------------------------------------------------------------


def _refuse_unsupported(kwargs: dict[str, Any]) -> None:
    unknown = [k for k in kwargs if k not in _SUPPORTED and k not in _IN_MEMORY_ONLY]
    if unknown:
        raise GradfitError(f"fit_glm has no option {', '.join(map(repr, unknown))}")
    given = [k for k, default in _IN_MEMORY_ONLY.items() if k in kwargs and kwargs[k] != default
             and not (default == () and not kwargs[k])]
    if given:
        raise GradfitError(f"{', '.join(given)} {'is' if len(given) == 1 else 'are'} not supported on a cluster "
                           "(Newton by map-reduce over numeric columns only): drop "
                           f"{'it' if len(given) == 1 else 'them'}, or fit in memory (no scheduler or workers)")


def _model_of(spec: _Spec) -> GLM:
    """The model without its rows: names, family, link and offsets (a design of zero rows)."""
    names = ((design_mod.INTERCEPT,) if spec.intercept else ()) + spec.x
    if not names:
        raise GradfitError("the design has no columns: give numeric columns, or an intercept")
    if len(set(names)) != len(names):
        dupes = sorted({n for n in names if names.count(n) > 1})
        raise GradfitError(f"the design has two columns named {', '.join(dupes)}; rename one")
    empty = np.zeros(0)
    design = Design(design_mod.aligned_empty((len(spec.x), 0)), names, spec.intercept,
                    empty if spec.offset else None, empty if spec.exposure else None)
    return GLM(design, empty, spec.family, spec.link, spec.sigma, y_name=spec.y)


def _spec(frame_columns: Sequence[str], y: Any, family: str, kwargs: dict[str, Any]) -> _Spec:
    if not isinstance(y, str):
        raise GradfitError("on a cluster, name the target column with y (the rows stay on the workers)")
    offset, exposure = kwargs.get("offset"), kwargs.get("exposure")
    for label, value in (("offset", offset), ("exposure", exposure)):
        if value is not None and not isinstance(value, str):
            raise GradfitError(f"on a cluster, give the {label} as a column name, not values")
    x = kwargs.get("x")
    if x is None:
        x = [c for c in frame_columns if c not in (y, offset, exposure)]
    x = tuple(str(c) for c in x)
    if y in x or y in (offset, exposure):
        raise GradfitError(f"column {y!r} is the target; it cannot be an input, categorical or offset column too")
    if family == "categorical":
        raise GradfitError("the categorical family is not supported on a cluster yet: fit it in memory "
                           "(no scheduler or workers), or fit one bernoulli model per class against the baseline")
    return _Spec(x, y, offset, exposure, family, kwargs.get("link"), kwargs.get("sigma"),
                 bool(kwargs.get("intercept", True)))


@_breakdown_is_a_scale_problem
def fit_glm(data: Any, y: str | None = None, family: str = "poisson", *, scheduler: Any = None,
            workers: int | None = None, **kwargs: Any) -> FitResult:
    """`gradfit.glm.fit_glm` on a Dask cluster: the same result, the rows never leaving the workers.

    ``data`` is a Dask DataFrame, or the path or glob of Parquet files (readable from the
    driver and from every worker). ``scheduler`` is a scheduler's address
    (``tcp://HOST:PORT``) or a `distributed.Client`; ``workers=N`` starts a local cluster
    of N single-threaded processes on 127.0.0.1 for the fit; with neither, a Dask
    DataFrame is fitted on the default client. Takes the model's settings of `gradfit.glm`
    (``x``, ``offset``, ``exposure`` as column names, ``link``, ``sigma``, ``intercept``)
    and of `GLM.fit` (``tol``, ``max_iter``, ``init``, ``inference``, ``level``); no
    categorical columns or family, first-order optimisers or profile intervals.
    """
    t0 = time.perf_counter()
    _refuse_unsupported(kwargs)
    is_frame = type(data).__module__.split(".")[0] == "dask" and hasattr(data, "npartitions")
    if not is_frame and not isinstance(data, (str, Path)):
        raise GradfitError(f"on a cluster the data are a Dask DataFrame or a Parquet path or glob, not "
                           f"{type(data).__name__}; for data in memory, drop scheduler and workers")
    if is_frame:
        columns = [str(c) for c in data.columns]
    else:
        paths = _parquet_files(data)
        columns = list(_metadata(paths[0]).schema.to_arrow_schema().names)
    spec = _spec(columns, y, family, kwargs)
    model = _model_of(spec)
    plan = None if is_frame else _parquet_plan(paths, spec)  # every file checked before a cluster starts
    timeout = kwargs.get("timeout", cluster.CONNECT_TIMEOUT)
    with cluster.connect(scheduler, workers, timeout=timeout) as client:
        if client is None:
            client = _default_client()
        if is_frame:
            blocks = _frame_blocks(client, data, spec)
        else:
            blocks = [client.submit(_read_parquet, path, groups, start, spec, label, pure=False)
                      for path, groups, start, label, _ in plan]
        try:
            return _fit(model, client, blocks, kwargs, t0)
        finally:  # the workers drop the partitions once no future holds them
            for block in blocks:
                block.release()


def _default_client() -> Any:
    distributed = cluster._distributed()
    try:
        return distributed.default_client()
    except ValueError:
        raise GradfitError("a Dask DataFrame is fitted on a Dask cluster: give scheduler='tcp://HOST:PORT' (or a "
                           "distributed.Client) or workers=N, or create a distributed.Client first") from None


def _fit(model: GLM, client: Any, blocks: list[Any], kwargs: dict[str, Any], t0: float) -> FitResult:
    lengths = client.gather([client.submit(_rows, b, pure=False) for b in blocks])
    refused = [r.message for r in lengths if isinstance(r, _Refused)]
    if refused:  # the first partition, in order, whose rows fail a check
        raise GradfitError(refused[0])
    blocks = [b for b, rows in zip(blocks, lengths) if rows]
    lengths = [rows for rows in lengths if rows]
    if not blocks:
        raise GradfitError("the data have no rows: check the files, or the filter that made the DataFrame")
    t_read = time.perf_counter()
    n = int(sum(lengths))
    # the in-memory fit's subsample (read at call time, as `gradfit.glm` reads them): every k-th row
    every = n // glm_mod.SUBSAMPLE_ROWS if n > glm_mod.SUBSAMPLE_ABOVE else 0
    limit = (n // glm_mod.SUBSAMPLE_ROWS) * glm_mod.SUBSAMPLE_ROWS
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(int)
    parts = client.gather([client.submit(_first_pass, b, int(s), every, limit, pure=False)
                           for b, s in zip(blocks, starts)])
    first = parts[0]
    for part in parts[1:]:
        first = first + part
    _check(first, model)
    t_first = time.perf_counter()
    tol = kwargs.get("tol", DEFAULT_TOL)
    with jax.enable_x64(True):
        work = _ClusterWork(model, client, blocks, first, every)
        theta = work.start(kwargs.get("init"))
        result = model._finish(work, theta, None, t0=t0, polish=True, tol=tol, max_iter=kwargs.get("max_iter", 100),
                               inference=kwargs.get("inference", True), profile=(),
                               level=kwargs.get("level", 0.95))
    workers = len(client.scheduler_info().get("workers", {}))
    seconds = {"read": t_read - t0, "first_pass": t_first - t_read, **work.seconds}
    settings = {**result.settings, "cluster": {"partitions": len(blocks), "workers": workers,
                                               "passes": work.passes + 1,
                                               "seconds": {k: round(v, 4) for k, v in seconds.items()}}}
    return dataclasses.replace(result, settings=settings, elapsed=time.perf_counter() - t0)


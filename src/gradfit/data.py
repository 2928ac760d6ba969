"""Data sets: checked (x, y) pairs, gradfit's own generated sets, file loading, batching."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import GradfitError


@dataclass(frozen=True)
class Dataset:
    """I examples: inputs x, shape (I,) or (I, D), and targets y, shape (I,).

    Checked on construction: non-empty, matching lengths, finite numbers.
    """

    x: np.ndarray
    y: np.ndarray
    x_names: tuple[str, ...] = ("x",)
    y_name: str = "y"
    name: str = "data"
    notes: dict = field(default_factory=dict, compare=False)

    def __post_init__(self):
        x = np.asarray(self.x, dtype=float)
        y = np.asarray(self.y, dtype=float)
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
                    f"{label} holds NaN or inf in column(s) {', '.join(cols)} at row(s) "
                    f"{', '.join(map(str, rows[:5]))}{' ...' if len(rows) > 5 else ''}; "
                    "drop or fill those rows first"
                )
        x.setflags(write=False)
        y.setflags(write=False)
        object.__setattr__(self, "x", x)
        object.__setattr__(self, "y", y)
        object.__setattr__(self, "x_names", x_names)

    def __len__(self) -> int:
        return len(self.y)

    @property
    def n_inputs(self) -> int:
        return 1 if self.x.ndim == 1 else self.x.shape[1]


# -- gradfit's own data sets ------------------------------------------------------


def linear_data(seed: int = 0, n: int = 20) -> Dataset:
    """A 1-D linear set: x uniform on [0, 2], y = 0.8 + 0.5 x + N(0, 0.1²) noise."""
    rng = np.random.default_rng(seed)
    x = np.sort(rng.uniform(0.0, 2.0, n))
    y = 0.8 + 0.5 * x + rng.normal(0.0, 0.1, n)
    return Dataset(x, y, name="linear", notes={"true": {"phi0": 0.8, "phi1": 0.5}, "noise_sd": 0.1})


def gabor_data(seed: int = 0, n: int = 40, s: float = 8.0) -> Dataset:
    """A Gabor set: x uniform on [-15, 15], y = Gabor(x; φ = (0, 16.6), s) + N(0, 0.1²) noise."""
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


# -- files -----------------------------------------------------------------------------


def read_table(path: str | Path) -> dict[str, np.ndarray]:
    """The columns of a CSV or Parquet file as name -> numpy array."""
    path = Path(path)
    if not path.exists():
        raise GradfitError(f"no such file: {path}. Check the path, or leave out --data to use built-in data")
    if path.is_dir():
        raise GradfitError(f"{path} is a folder; --data needs a .csv or .parquet file")
    import pyarrow as pa

    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            import pyarrow.parquet as pq

            table = pq.read_table(path)
        elif suffix in (".csv", ".txt", ".tsv"):
            import pyarrow.csv as pacsv

            parse = pacsv.ParseOptions(delimiter="\t" if suffix == ".tsv" else ",")
            table = pacsv.read_csv(path, parse_options=parse)
        else:
            raise GradfitError(f"cannot read {path.name}: gradfit reads .csv, .tsv and .parquet files")
    except pa.ArrowInvalid as err:
        first = str(err).splitlines()[0]
        raise GradfitError(f"cannot read {path}: {first}") from None
    columns = {}
    for name in table.column_names:
        col = table.column(name)
        if pa.types.is_integer(col.type) or pa.types.is_floating(col.type) or pa.types.is_boolean(col.type):
            columns[name] = col.to_numpy(zero_copy_only=False).astype(float)
        else:
            columns[name] = np.asarray(col.to_pylist(), dtype=object)
    return columns


def load(path: str | Path, x: Sequence[str] | None = None, y: str | None = None) -> Dataset:
    """A data set from a CSV or Parquet file: the ``x`` columns as inputs, ``y`` as target.

    Without ``y`` the last column is the target; without ``x``, all other columns.
    """
    columns = read_table(path)
    names = list(columns)
    if not names:
        raise GradfitError(f"{path} has no columns")
    y = y if y is not None else names[-1]
    if isinstance(x, str):  # one column name, not a sequence of one-letter names
        x = [x]
    x = list(x) if x else [n for n in names if n != y]
    for col in [*x, y]:
        if col not in columns:
            raise GradfitError(f"{path} has no column {col!r}; its columns are: {', '.join(names)}")
    if not x:
        raise GradfitError(f"{path} has only the target column {y!r}; name input columns with --x")
    # Rows first: a header-only CSV has untyped (object) columns, which are empty, not text.
    if len(columns[y]) == 0:
        raise GradfitError(f"{path} has no rows: it needs at least one example")
    for col in [*x, y]:
        if columns[col].dtype == object:
            raise GradfitError(f"column {col!r} of {path} is not numeric; gradfit fits numeric columns")
    data_x = np.column_stack([columns[c] for c in x]) if len(x) > 1 else columns[x[0]]
    return Dataset(data_x, columns[y], x_names=tuple(x), y_name=y, name=Path(path).stem)


# -- batching ----------------------------------------------------------------------------


def epoch_permutation(n: int, seed: int, epoch: int) -> np.ndarray:
    """The order in which epoch ``epoch`` visits n examples: a permutation of 0..n-1.

    Drawn from numpy's generator seeded by (seed, epoch), so any epoch can be made
    on its own, reproducibly, in about 10 ms for a million examples.
    """
    return np.random.default_rng([seed, epoch]).permutation(n)


def epoch_batches(n: int, batch_size: int, seed: int, epoch: int) -> tuple[np.ndarray, np.ndarray]:
    """The mini-batches of one epoch as (indices, mask), both of shape (⌈n/B⌉, B).

    Batches are drawn without replacement from the epoch's permutation. The last
    batch may be short; it is padded with index 0 and mask False, so every batch has
    the same shape and the compiled loop never recompiles for a ragged batch.
    """
    n_batches = -(-n // batch_size)
    padded = np.zeros(n_batches * batch_size, dtype=np.int32)
    padded[:n] = epoch_permutation(n, seed, epoch)
    mask = np.zeros(n_batches * batch_size, dtype=bool)
    mask[:n] = True
    return padded.reshape(n_batches, batch_size), mask.reshape(n_batches, batch_size)

"""The history a fit keeps on the host: bounded, thinned evenly, start and end always kept.

The compiled loop records a row [φ, |g|², α, ...] every ``history_every`` steps, and
each row's full-data loss. A long run would keep all of them: 10⁷ steps of a
two-parameter model are 400 MB of rows, and gigabytes once written as JSON. The
`Recorder` keeps at most ``max_rows`` of them: every row while they fit, and when they
no longer do, every second row, then every fourth, and so on (the stride doubles and
the rows off it are dropped). Row 0, the start, is on every stride. Each start's last
row (where it stopped, or the latest row run) is kept apart, so the history of a
thinned fit still ends exactly where the fit ended.

The kept rows depend only on the rows recorded, never on timing, so a fit resumed from
a checkpoint keeps the same rows as the uninterrupted fit.
"""

from __future__ import annotations

import numpy as np

#: The default budget: rows × (parameters + 4) values per start, and rows × starts ×
#: (parameters + 4) values in all (about 128 MB of float64), at least MIN_ROWS rows.
VALUES_PER_START = 1 << 19
VALUES_IN_ALL = 1 << 24
MIN_ROWS = 16


def default_max_rows(size: int, starts: int) -> int:
    """The default row budget for a model of ``size`` parameters fitted from ``starts`` starts.

    Half a million values a start (10⁵ rows of a two-parameter model, a JSON of about
    10 MB), and 16 million in all, so many starts share one memory budget.
    """
    width = size + 4
    return max(MIN_ROWS, min(VALUES_PER_START // width, VALUES_IN_ALL // (width * max(starts, 1))))


class Recorder:
    """History rows of S starts, at most ``max_rows`` of them, thinned by doubling the stride.

    Rows are added a chunk at a time: ``rows`` of shape (G, S, W) and their ``losses``
    (G, S) are the records number ``row0`` .. ``row0 + G - 1`` (record r is after
    r · history_every steps).
    """

    def __init__(self, max_rows: int, starts: int, width: int):
        self.max_rows = max(2, int(max_rows))
        self.stride = 1
        self._chunks: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._count = 0
        self.end_index = np.full(starts, -1, np.int64)
        self.end_rows = np.full((starts, width), np.nan)
        self.end_losses = np.full(starts, np.nan)

    def add(self, row0: int, rows: np.ndarray, losses: np.ndarray, limit: int) -> None:
        """Keep the rows of this chunk that are on the stride; records at or past ``limit`` did not run."""
        count = rows.shape[0]
        if self.stride == 1:  # the common case: a slice, no copy
            take = max(0, min(count, limit - row0))
            if take:
                self._chunks.append((np.arange(row0, row0 + take), rows[:take], losses[:take]))
                self._count += take
        else:
            index = row0 + np.arange(count)
            keep = (index < limit) & (index % self.stride == 0)
            if keep.any():
                self._chunks.append((index[keep], rows[keep], losses[keep]))
                self._count += int(keep.sum())
        if self._count > self.max_rows:
            self._thin()

    def track_ends(self, row0: int, rows: np.ndarray, losses: np.ndarray, last: np.ndarray) -> None:
        """Remember each start's row number ``last[s]`` if it is in this chunk."""
        inside = (last >= row0) & (last < row0 + rows.shape[0])
        starts = np.nonzero(inside)[0]
        at = last[starts] - row0
        self.end_index[starts] = last[starts]
        self.end_rows[starts] = rows[at, starts]
        self.end_losses[starts] = losses[at, starts]

    def _thin(self) -> None:
        index, rows, losses = self.arrays()
        while len(index) > self.max_rows:
            self.stride *= 2
            on = index % self.stride == 0
            index, rows, losses = index[on], rows[on], losses[on]
        self._chunks = [(index, rows, losses)]
        self._count = len(index)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The kept record numbers (K,), rows (K, S, W) and losses (K, S)."""
        if not self._chunks:
            s, w = self.end_rows.shape
            return np.zeros(0, np.int64), np.zeros((0, s, w)), np.zeros((0, s))
        if len(self._chunks) > 1:
            self._chunks = [tuple(np.concatenate(parts) for parts in zip(*self._chunks))]
        return self._chunks[0]

    # checkpoints -----------------------------------------------------------------------------------

    def state(self) -> dict[str, np.ndarray]:
        index, rows, losses = self.arrays()
        return {"stride": np.asarray(self.stride), "max_rows": np.asarray(self.max_rows), "index": index,
                "rows": rows, "losses": losses, "end_index": self.end_index, "end_rows": self.end_rows,
                "end_losses": self.end_losses}

    @classmethod
    def from_state(cls, state: dict[str, np.ndarray]) -> Recorder:
        self = cls(int(state["max_rows"]), *state["end_rows"].shape)
        self.stride = int(state["stride"])
        self._chunks = [(state["index"], state["rows"], state["losses"])]
        self._count = len(state["index"])
        self.end_index, self.end_rows, self.end_losses = state["end_index"], state["end_rows"], state["end_losses"]
        return self

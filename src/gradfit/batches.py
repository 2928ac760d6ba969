"""Where mini-batches come from: row indices for any run of global steps, from the seed.

Batches are drawn without replacement from each epoch's permutation
(`gradfit.data.epoch_batches`), so the batch of global step t depends only on the seed,
the data size, the batch size and t: a fit resumed at step t draws exactly the batches
the uninterrupted fit would have drawn.
"""

from __future__ import annotations

import numpy as np

from .data import epoch_batches


class BatchSource:
    """Mini-batch indices and masks for any run of global steps, epoch by epoch from the seed."""

    def __init__(self, n: int, batch_size: int, seed: int):
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.per_epoch = -(-n // batch_size)
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def _epoch(self, e: int):
        if e not in self._cache:
            self._cache = {k: v for k, v in self._cache.items() if k >= e - 1}
            self._cache[e] = epoch_batches(self.n, self.batch_size, self.seed, e)
        return self._cache[e]

    def steps(self, start: int, length: int) -> tuple[np.ndarray, np.ndarray]:
        """(indices, mask), each of shape (length, batch size), for steps start .. start + length - 1."""
        idx = np.zeros((length, self.batch_size), np.int32)
        mask = np.zeros((length, self.batch_size), bool)
        s = start
        while s < start + length:
            e, j = divmod(s, self.per_epoch)
            take = min(self.per_epoch - j, start + length - s)
            bi, bm = self._epoch(e)
            idx[s - start: s - start + take] = bi[j: j + take]
            mask[s - start: s - start + take] = bm[j: j + take]
            s += take
        return idx, mask

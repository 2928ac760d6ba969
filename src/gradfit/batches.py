"""Where mini-batches come from: each epoch's order of the rows, drawn from the seed.

Epoch e visits the n rows in the order of a keyed pseudo-random permutation P of
0..n-1 whose keys come from (seed, e); batch j of the epoch is rows P(jB), ..., P(jB + B - 1)
(the last batch is short, and padded with masked rows). P(i) is computed for any i on
its own, in a few dozen integer operations, so the compiled loop draws each step's
batch itself (`batch_rows`), with no permutation to make on the host or to copy to the
device: a step's batch depends only on the seed, the data size, the batch size and the
step, and a fit resumed at step t draws exactly the batches the uninterrupted fit would
have drawn. `epoch_permutation` computes the same order with numpy.

The permutation. The rows are laid out on an a × b grid (a = ⌊√n⌋, b = ⌊n/a⌋, so
m = ab ≤ n and m > n - a - 1), and a Feistel network shuffles the grid: alternately the
row coordinate moves by a keyed hash of the column coordinate (mod a), and the column
coordinate by a keyed hash of the row coordinate (mod b); each round is a bijection of
the grid, whatever the hash. Six rounds shuffle 0..m-1; the same network with other
keys then shuffles the last m rows, n-m..n-1, so the n - m rows past the grid are mixed
in too; a keyed rotation of 0..n-1 ends it. Each part is a bijection, so the whole is a
permutation of 0..n-1: every row is visited exactly once an epoch. It is a statistical shuffle, not numpy's (nor a
cryptographic one); for very small n (at most 3 rows on a side of the grid) it reaches
only some of the n! orders.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .errors import GradfitError

#: The name of this way of ordering batches, kept in checkpoints: one written under another
#: order is not resumed with this one.
ORDER = "grid-feistel-6"
#: Feistel rounds per part of the permutation.
ROUNDS = 6
#: The largest data set a permutation covers: row indices are 32-bit.
MAX_ROWS = (1 << 31) - 1


def _mix(v, xp):
    """A 32-bit integer hash (MurmurHash3's finaliser), elementwise on numpy or JAX uint32 arrays."""
    u = xp.uint32
    v = v ^ (v >> u(16))
    v = v * u(0x7FEB352D)
    v = v ^ (v >> u(15))
    v = v * u(0x846CA68B)
    return v ^ (v >> u(16))


def seed_words(seed: int) -> np.ndarray:
    """A whole-number seed (0 <= seed < 2⁶⁴) as the two 32-bit words the keys are made from."""
    seed = int(seed)
    return np.array([seed & 0xFFFFFFFF, (seed >> 32) & 0xFFFFFFFF], np.uint32)


def round_keys(words, epoch, xp=np):
    """The 2·ROUNDS + 1 keys of epoch ``epoch`` (an int or a traced integer) under seed ``words``."""
    u = xp.uint32
    words = xp.asarray(words).astype(u)
    epoch = xp.reshape(xp.asarray(epoch), (1,)).astype(u)
    base = _mix(words[:1] ^ _mix(words[1:] + u(0x9E3779B9), xp), xp)
    era = _mix(epoch * u(0x85EBCA6B) + u(0x27D4EB2F), xp)
    ks = xp.arange(2 * ROUNDS + 1, dtype=u)
    return _mix(base ^ _mix(era + ks * u(0x9E3779B9), xp), xp)


def _grid(n: int) -> tuple[int, int]:
    a = max(1, math.isqrt(n))
    return a, n // a


def _feistel(v, keys, a: int, b: int, xp):
    """A bijection of 0..ab-1 (uint32 ``v``), keyed by ``keys`` (ROUNDS of them)."""
    u = xp.uint32
    row = v // u(b)
    col = v - row * u(b)
    for k in range(ROUNDS):
        # A keyed hash's top 16 bits scaled to [0, size): a, b < 2¹⁶ for n < 2³¹.
        if k % 2 == 0:
            shift = ((_mix(col ^ keys[k], xp) >> u(16)) * u(a)) >> u(16)
            row = row + shift
            row = xp.where(row >= u(a), row - u(a), row)
        else:
            shift = ((_mix(row ^ keys[k], xp) >> u(16)) * u(b)) >> u(16)
            col = col + shift
            col = xp.where(col >= u(b), col - u(b), col)
    return row * u(b) + col


def permute(i, n: int, keys, xp=np):
    """P(i) for positions 0 <= i < n (uint32 array), under an epoch's ``keys`` (`round_keys`)."""
    u = xp.uint32
    a, b = _grid(n)
    m = a * b
    first = xp.asarray(i).astype(u)
    first = xp.where(first < u(m), _feistel(xp.minimum(first, u(m - 1)), keys[:ROUNDS], a, b, xp), first)
    if m < n:
        lo = u(n - m)
        moved = _feistel(xp.maximum(first, lo) - lo, keys[ROUNDS:2 * ROUNDS], a, b, xp) + lo
        first = xp.where(first >= lo, moved, first)
    # A keyed rotation last: each row is then equally likely at every position, also where
    # the two parts alone could not take it (small n).
    turned = first + keys[2 * ROUNDS] % u(n)
    return xp.where(turned >= u(n), turned - u(n), turned)


def epoch_permutation(n: int, seed: int, epoch: int) -> np.ndarray:
    """The order in which epoch ``epoch`` visits n examples: a permutation of 0..n-1 (int64).

    The order the compiled loop draws its batches in (`batch_rows`), computed with numpy.
    """
    check_size(n)
    order = permute(np.arange(n, dtype=np.uint32), n, round_keys(seed_words(seed), epoch))
    return order.astype(np.int64)


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


def batch_rows(step, words, n: int, batch_size: int) -> tuple[Any, Any]:
    """The rows of global step ``step``'s mini-batch, inside a compiled function: (indices, mask).

    ``words`` are the seed's (`seed_words`, as a JAX array); indices are int32 of shape
    (batch_size,), with masked positions (past the end of the epoch) at row 0.
    """
    import jax.numpy as jnp

    u = jnp.uint32
    step = jnp.asarray(step).astype(u)  # steps and positions are below 2³¹: 32-bit arithmetic throughout
    per_epoch = u(-(-n // batch_size))
    epoch, j = step // per_epoch, step % per_epoch
    position = j * u(batch_size) + jnp.arange(batch_size, dtype=u)
    mask = position < u(n)
    rows = permute(jnp.where(mask, position, u(0)), n, round_keys(words, epoch, jnp), jnp)
    return jnp.where(mask, rows, u(0)).astype(jnp.int32), mask


def check_size(n: int) -> None:
    """Refuse data too large for 32-bit row indices."""
    if n > MAX_ROWS:
        raise GradfitError(f"mini-batches index at most {MAX_ROWS:,} rows; these data have {n:,}: "
                           "stream them (gf.stream) instead")

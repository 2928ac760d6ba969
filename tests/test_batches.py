"""The batch order: a permutation of the rows each epoch, the same drawn in numpy and in the loop."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

import gradfit as gf
from gradfit import batches
from gradfit.errors import GradfitError


@settings(deadline=None, max_examples=60)
@given(n=st.integers(1, 5000), seed=st.integers(0, 2**64 - 1), epoch=st.integers(0, 10**6))
def test_every_epoch_visits_every_row_once(n, seed, epoch):
    order = batches.epoch_permutation(n, seed, epoch)
    assert order.dtype == np.int64
    np.testing.assert_array_equal(np.sort(order), np.arange(n))


@pytest.mark.parametrize("n, batch", [(1, 1), (7, 3), (100, 10), (101, 16), (4099, 64), (1_000_000, 1024)])
def test_the_loop_draws_the_batches_numpy_draws(n, batch):
    idx, mask = batches.epoch_batches(n, batch, 5, 2)
    per_epoch = len(idx)
    words = jnp.asarray(batches.seed_words(5))
    steps = jnp.arange(2 * per_epoch, 3 * per_epoch)
    got_idx, got_mask = jax.jit(jax.vmap(lambda s: batches.batch_rows(s, words, n, batch)))(steps)
    np.testing.assert_array_equal(np.asarray(got_idx), idx)
    np.testing.assert_array_equal(np.asarray(got_mask), mask)
    assert mask.sum() == n  # the last batch is padded with masked rows


def test_orders_differ_by_seed_and_epoch_and_repeat_exactly():
    a = batches.epoch_permutation(1000, 3, 0)
    np.testing.assert_array_equal(a, batches.epoch_permutation(1000, 3, 0))
    for other in (batches.epoch_permutation(1000, 4, 0), batches.epoch_permutation(1000, 3, 1),
                  batches.epoch_permutation(1000, 3 + 2**32, 0)):  # the seed's high word counts too
        assert np.mean(a == other) < 0.02


@functools.cache
def _orders(n: int, draws: int = 6000) -> np.ndarray:
    """Epoch 0's order under seeds 0 .. draws - 1, drawn by the compiled loop's function."""
    steps = jnp.arange(n)
    words = jnp.asarray(np.stack([batches.seed_words(seed) for seed in range(draws)]))
    order = jax.vmap(lambda s, w: batches.batch_rows(s, w, n, 1)[0][0], in_axes=(0, None))
    return np.asarray(jax.jit(jax.vmap(lambda w: order(steps, w)))(words))


@pytest.mark.parametrize("n", [10, 37, 1000])
def test_each_row_is_equally_likely_at_each_position(n):
    """Over many seeds, where a position's row comes from is uniform (chi-square)."""
    orders = _orders(n)
    np.testing.assert_array_equal(orders[7], batches.epoch_permutation(n, 7, 0))
    for position in (0, n // 2, n - 1):
        values = orders[:, position] if n <= 40 else orders[:, position] * 20 // n
        assert stats.chisquare(np.bincount(values)).pvalue > 1e-3


def test_pairs_of_positions_are_uniform_on_small_data():
    n = 10
    orders = _orders(n)
    pairs = np.bincount(orders[:, 0] * n + orders[:, 1], minlength=n * n)
    off_diagonal = pairs[np.arange(n * n) % (n + 1) != 0]
    assert pairs[np.arange(n) * (n + 1)].sum() == 0  # a row is never in two places
    assert stats.chisquare(off_diagonal).pvalue > 1e-3


def test_neighbours_in_the_data_are_not_neighbours_in_an_epoch():
    order = batches.epoch_permutation(100_000, 0, 0)
    where = np.empty_like(order)
    where[order] = np.arange(len(order))
    gaps = np.abs(np.diff(where))  # how far apart rows i and i+1 land
    assert np.median(gaps) > 10_000  # a uniform shuffle puts them ~n/3.4 apart on average


def test_data_too_large_for_row_indices_is_refused_naming_the_way_out():
    with pytest.raises(GradfitError, match="stream them"):
        batches.check_size(batches.MAX_ROWS + 1)


def test_large_minibatch_fits_record_every_ten_epochs_by_default():
    rng = np.random.default_rng(0)
    x = rng.normal(size=3000)
    data = gf.Dataset(x, 2 * x + rng.normal(size=3000))
    result = gf.fit("linear", "normal", data, gf.sgd(1e-4), batch_size=100, epochs=25, tol=0)
    assert result.history.step.tolist() == [0, 300, 600, 750]  # every 10 epochs of 30 steps, and the end

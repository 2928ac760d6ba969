"""Fits over a stream: the in-memory fit's steps when the shuffle is exact, resumable mid-epoch, and
stopping with the last good state on divergence, a signal or bad data."""

import json
import os
import signal

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import gradfit as gf
from gradfit.errors import GradfitError, Interrupted

COEF = np.array([1.0, -2.0, 0.5])


def _write(folder, files=3, rows=900, group=250, seed=0, bad_at=None):
    rng = np.random.default_rng(seed)
    for k in range(files):
        x = rng.normal(size=(rows, 3))
        y = 0.3 + x @ COEF + rng.normal(0, 0.1, rows)
        if bad_at is not None and k == bad_at[0]:
            y[bad_at[1]] = np.nan
        table = pa.table({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2], "y": y})
        pq.write_table(table, folder / f"part{k}.parquet", row_group_size=group)
    return str(folder / "*.parquet")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return _write(tmp_path_factory.mktemp("stream"))


def _fit(data, **kw):
    settings = dict(batch_size=64, epochs=3, tol=0, seed=3, history_every=50)
    settings.update(kw)
    return gf.fit("linear", "normal", data, settings.pop("optimizer", gf.adam(0.05)), **settings)


@pytest.mark.parametrize("optimizer", [gf.sgd(1e-3), gf.adam(0.05), gf.nesterov(1e-3, beta=0.9)])
def test_an_exact_shuffle_takes_the_in_memory_fits_steps(files, optimizer):
    stream = gf.stream(files, x=["a", "b", "c"], y="y", buffer_rows=10**6)
    assert stream.exact
    streamed = _fit(stream, optimizer=optimizer)
    in_memory = _fit(stream.read_all(), optimizer=optimizer)
    assert streamed.steps == in_memory.steps == 3 * -(-2700 // 64)
    np.testing.assert_array_equal(streamed.x, in_memory.x)
    np.testing.assert_array_equal(streamed.history.step, in_memory.history.step)
    np.testing.assert_array_equal(streamed.history.params, in_memory.history.params)
    # full-data losses: summed block by block rather than at once, so equal to rounding
    np.testing.assert_allclose(streamed.history.loss, in_memory.history.loss, rtol=1e-12)
    np.testing.assert_allclose(streamed.history.grad_norm, in_memory.history.grad_norm, rtol=1e-9)
    np.testing.assert_allclose(streamed.history.lr[:-1], in_memory.history.lr[:-1], rtol=0)
    assert streamed.loss == pytest.approx(in_memory.loss, rel=1e-12)


def test_a_buffered_stream_fits_as_well_and_is_reproducible(files):
    stream = gf.stream(files, x=["a", "b", "c"], y="y", buffer_rows=300)
    assert not stream.exact
    first, again = _fit(stream, epochs=6), _fit(stream, epochs=6)
    np.testing.assert_array_equal(first.x, again.x)
    other = _fit(stream, epochs=6, seed=4)
    assert not np.array_equal(first.x, other.x)
    np.testing.assert_allclose(first.x, [0.3, *COEF], atol=0.05)
    assert first.history.step[0] == 0 and first.history.step[-1] == first.steps


def test_float32_streams(files):
    stream = gf.stream(files, x=["a", "b", "c"], y="y")
    result = _fit(stream, dtype="float32", epochs=4)
    assert result.settings["dtype"] == "float32"
    np.testing.assert_allclose(result.x, [0.3, *COEF], atol=0.05)


@pytest.mark.parametrize("buffer_rows", [10**6, 300])
def test_resuming_mid_epoch_is_bit_identical(files, tmp_path, buffer_rows):
    stream = gf.stream(files, x=["a", "b", "c"], y="y", buffer_rows=buffer_rows)
    whole = _fit(stream)
    path = tmp_path / "fit.ckpt"

    def stop_midway(done, total, loss):
        if done >= 70:  # 70 steps: inside the second of 43 steps an epoch
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(Interrupted) as caught:
        _fit(stream, checkpoint=path, checkpoint_every=10, progress=stop_midway)
    part = caught.value.result
    assert part.status == "interrupted" and 0 < part.steps < whole.steps
    assert part.steps % 43 != 0  # mid-epoch
    resumed = _fit(stream, resume=path)
    np.testing.assert_array_equal(resumed.x, whole.x)
    np.testing.assert_array_equal(resumed.history.params, whole.history.params)
    np.testing.assert_array_equal(resumed.history.step, whole.history.step)
    again = _fit(stream, resume=path)  # a finished checkpoint gives the same result again
    np.testing.assert_array_equal(again.x, whole.x)
    assert again.status == whole.status


def test_a_checkpoint_of_other_settings_is_refused(files, tmp_path):
    stream = gf.stream(files, x=["a", "b", "c"], y="y")
    path = tmp_path / "fit.ckpt"
    _fit(stream, checkpoint=path)
    with pytest.raises(GradfitError, match="the batch size: 64 in the checkpoint, 32 now"):
        _fit(stream, resume=path, batch_size=32)


def test_divergence_keeps_the_last_finite_parameters(files):
    stream = gf.stream(files, x=["a", "b", "c"], y="y")
    result = _fit(stream, optimizer=gf.sgd(5.0))
    assert result.status == "diverged"
    assert np.all(np.isfinite(result.x))
    assert 0 < result.steps < 3 * 43
    assert result.history.step[-1] == result.steps and np.isfinite(result.history.params[-1]).all()


def test_tol_stops_at_a_record_whose_full_gradient_is_small(files):
    stream = gf.stream(files, x=["a", "b", "c"], y="y", buffer_rows=10**6)
    loose = _fit(stream, optimizer=gf.adam(0.05), tol=1e3, reduction="mean", epochs=20, history_every=43)
    assert loose.status == "converged"
    assert loose.grad_norm <= 1e3 and loose.steps % 43 == 0 and loose.steps < 20 * 43


def test_nan_in_a_late_row_group_stops_the_fit_with_its_last_good_state(tmp_path):
    files = _write(tmp_path, bad_at=(2, 800))  # the last file's last row group
    stream = gf.stream(files, x=["a", "b", "c"], y="y", buffer_rows=200)
    path = tmp_path / "fit.ckpt"
    with pytest.raises(GradfitError, match=r"'y' of .*part2\.parquet.* row 800") as caught:
        _fit(stream, checkpoint=path)
    message = str(caught.value)
    assert "\n" not in message
    result = caught.value.result
    assert result.status == "stopped" and np.all(np.isfinite(result.x))
    assert gf.checkpoint.load(path).steps_done == result.steps


def test_what_a_stream_cannot_take_is_named(files):
    stream = gf.stream(files, x=["a", "b", "c"], y="y")
    with pytest.raises(GradfitError, match="batch size"):
        gf.fit("linear", "normal", stream, gf.adam(0.05), epochs=1)
    with pytest.raises(GradfitError, match="bounds"):
        gf.fit("linear", "normal", stream, gf.adam(0.05), batch_size=8, epochs=1, bounds={"w": (0, 1)})
    with pytest.raises(GradfitError, match="second-order"):
        gf.fit("linear", "normal", stream, "lm", batch_size=8, epochs=1)
    with pytest.raises(GradfitError, match="one start"):
        gf.fit("linear", "normal", stream, gf.adam(0.05), batch_size=8, epochs=1, init=np.zeros((2, 4)))
    with pytest.raises(GradfitError, match="larger than the data"):
        gf.fit("linear", "normal", stream, gf.adam(0.05), batch_size=10**6, epochs=1)


# -- the command line ------------------------------------------------------------------------------


def _cli(*args):
    from typer.testing import CliRunner

    from gradfit.cli import app

    return CliRunner().invoke(app, list(args))


def test_the_cli_streams_a_glob_and_writes_the_result(files, tmp_path):
    out = tmp_path / "fit.json"
    done = _cli("fit", "--data", files, "--stream", "--x", "a,b,c", "--y", "y", "--model", "linear",
                "--optimizer", "adam", "--lr", "0.05", "--batch-size", "64", "--epochs", "3", "--seed", "3",
                "--history-every", "50", "--tol", "0", "--buffer-rows", "1000000", "--json", str(out))
    assert done.exit_code == 0, done.output
    written = json.loads(out.read_text())
    in_memory = _fit(gf.stream(files, x=["a", "b", "c"], y="y", buffer_rows=10**6).read_all())
    np.testing.assert_array_equal([written["params"][k] for k in in_memory.params], in_memory.x)


@pytest.mark.parametrize("extra, message", [
    ((), "needs a batch size"),
    (("--batch-size", "8", "--loss", "poisson"), "--workers N"),
    (("--batch-size", "8", "--plot", "x.png"), "--plot cannot be used with --stream"),
])
def test_the_cli_says_what_a_stream_cannot_take(files, extra, message):
    done = _cli("fit", "--data", files, "--stream", "--model", "linear", "--epochs", "1", *extra)
    assert done.exit_code == 2
    assert message in done.output and len(done.output.strip().splitlines()) == 1


def test_the_cli_writes_what_was_done_before_bad_data_stopped_it(tmp_path):
    files = _write(tmp_path, bad_at=(2, 800))
    out = tmp_path / "fit.json"
    done = _cli("fit", "--data", files, "--stream", "--x", "a,b,c", "--y", "y", "--model", "linear",
                "--batch-size", "64", "--epochs", "3", "--buffer-rows", "200", "--json", str(out))
    assert done.exit_code == 2 and "part2.parquet" in done.output
    written = json.loads(out.read_text())
    assert written["status"] == "stopped" and np.all(np.isfinite(list(written["params"].values())))

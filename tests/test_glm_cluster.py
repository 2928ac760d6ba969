"""Regression on a Dask cluster: the same fit as in memory, by map-reduce over partitions.

Every number compared comes from the in-memory `gf.fit_glm` on the same rows (itself
matched to statsmodels in test_glm.py): coefficients, standard errors, covariance and
every likelihood statistic must agree to 1e-8 relative. One 2-worker `LocalCluster`
(127.0.0.1, dashboard off, one thread per worker) serves the module.
"""

from __future__ import annotations

import dataclasses
import json
import math
import socket
import subprocess
import sys

import numpy as np
import pytest

import gradfit as gf
from gradfit import cluster
from gradfit import glm as G
from gradfit.errors import GradfitError

distributed = pytest.importorskip("distributed")
pd = pytest.importorskip("pandas")
dd = pytest.importorskip("dask.dataframe")

RTOL = 1e-8
ROWS = 900  # three partitions of 300 rows: one compiled chunk shape for every fit here


@pytest.fixture(scope="module")
def client():
    with cluster.connect(workers=2) as client:
        yield client


@pytest.fixture(scope="module")
def frame():
    """Counts with exposure and offset, labels and a real target, on badly scaled columns."""
    rng = np.random.default_rng(12)
    a, big = rng.normal(size=ROWS), rng.normal(3e4, 1e4, ROWS)
    minutes, shift = rng.uniform(1.0, 5.0, ROWS), rng.normal(0.0, 0.2, ROWS)
    eta = -0.3 + 0.5 * a + 2e-5 * big
    return pd.DataFrame({
        "a": a, "big": big, "minutes": minutes, "shift": shift,
        "count": rng.poisson(minutes * np.exp(eta + shift)).astype(float),
        "label": (rng.uniform(size=ROWS) < 1.0 / (1.0 + np.exp(-eta))).astype(float),
        "level": 1.0 + 0.4 * a - 3e-5 * big + rng.normal(0.0, 0.5, ROWS),
    })


def in_memory(frame, y, family, **kwargs):
    return gf.fit_glm({c: frame[c].to_numpy() for c in frame.columns}, y, family, **kwargs)


def assert_same_fit(ours, ref):
    """Coefficients, and every field of the inference, as in memory to 1e-8 relative."""
    assert ours.converged and ref.converged
    assert ours.param_names == ref.param_names
    np.testing.assert_allclose(ours.x, ref.x, rtol=RTOL, atol=0)
    assert ours.loss == pytest.approx(ref.loss, rel=RTOL)
    assert ours.settings["newton_iterations"] == ref.settings["newton_iterations"]
    for field in dataclasses.fields(ref.inference):
        mine, theirs = getattr(ours.inference, field.name), getattr(ref.inference, field.name)
        if field.name == "decrement":  # zero at the optimum, up to rounding: both tiny
            assert mine < 1e-6 and theirs < 1e-6
        elif field.name == "grad_norm":  # the gradient's rounding noise, in the units of the columns
            assert np.isfinite(mine)
        elif isinstance(theirs, np.ndarray):
            np.testing.assert_allclose(mine, theirs, rtol=RTOL, atol=RTOL * np.max(np.abs(theirs)),
                                       err_msg=field.name)
        elif isinstance(theirs, float) and not isinstance(theirs, bool) and not math.isnan(theirs):
            assert mine == pytest.approx(theirs, rel=RTOL), field.name
        else:
            assert mine == theirs, field.name
    assert ours.inference.stderr is not None and ours.inference.loglik < 0


CASES = {
    "poisson, exposure and offset": ("count", "poisson", {"x": ["a", "big"], "exposure": "minutes",
                                                          "offset": "shift"}),
    "poisson softplus, exposure": ("count", "poisson", {"x": ["a", "big"], "exposure": "minutes",
                                                        "link": "softplus"}),
    "bernoulli": ("label", "bernoulli", {"x": ["a", "big"]}),
    "normal (least squares)": ("level", "normal", {"x": ["a", "big"]}),
    "normal, sigma given, no intercept": ("level", "normal", {"x": ["a", "big", "minutes"], "sigma": 0.5,
                                                              "intercept": False}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_dask_dataframe_fit_equals_the_in_memory_fit(client, frame, case):
    y, family, kwargs = CASES[case]
    ours = gf.fit_glm(dd.from_pandas(frame, npartitions=3), y, family, scheduler=client, **kwargs)
    assert_same_fit(ours, in_memory(frame, y, family, **kwargs))
    assert ours.settings["cluster"]["partitions"] == 3
    assert ours.settings["cluster"]["workers"] == 2


def test_softplus_link_reports_its_fisher_covariance(client, frame):
    y, family, kwargs = CASES["poisson softplus, exposure"]
    ours = gf.fit_glm(dd.from_pandas(frame, npartitions=3), y, family, scheduler=client, **kwargs)
    assert ours.inference.covariance_fisher is not None  # non-canonical: summed over partitions too


def test_default_columns_are_every_other_column(client, frame):
    small = frame[["a", "big", "level"]]
    ours = gf.fit_glm(dd.from_pandas(small, npartitions=3), "level", "normal", scheduler=client)
    assert ours.param_names == ("intercept", "a", "big")
    assert_same_fit(ours, in_memory(small, "level", "normal"))


def test_large_data_path_uses_the_same_subsample(client, frame, monkeypatch):
    # above SUBSAMPLE_ABOVE rows Newton starts on every k-th row and uses its Hessian: shrink
    # both limits so 900 rows take that path, in memory and on the cluster alike
    monkeypatch.setattr(G, "SUBSAMPLE_ABOVE", 400)
    monkeypatch.setattr(G, "SUBSAMPLE_ROWS", 128)
    y, family, kwargs = CASES["poisson, exposure and offset"]
    ours = gf.fit_glm(dd.from_pandas(frame, npartitions=3), y, family, scheduler=client, **kwargs)
    ref = in_memory(frame, y, family, **kwargs)
    assert ref.settings["subsample_rows"] == ours.settings["subsample_rows"] == 128
    assert_same_fit(ours, ref)


def write_parquet(frame, folder, parts=3):
    folder.mkdir(exist_ok=True)
    paths = []
    for i, rows in enumerate(np.array_split(np.arange(len(frame)), parts)):
        paths.append(folder / f"part-{i}.parquet")
        frame.iloc[rows].to_parquet(paths[-1], row_group_size=100)
    return paths


@pytest.fixture(scope="module")
def parquet(frame, tmp_path_factory):
    folder = tmp_path_factory.mktemp("parts")
    write_parquet(frame, folder)
    return folder


def test_parquet_glob_at_a_scheduler_address(client, frame, parquet):
    y, family, kwargs = CASES["bernoulli"]
    ours = gf.fit_glm(str(parquet / "*.parquet"), y, family, scheduler=client.scheduler.address, **kwargs)
    assert_same_fit(ours, in_memory(frame, y, family, **kwargs))
    assert ours.settings["cluster"]["partitions"] == 3


@pytest.mark.slow
def test_parquet_glob_on_a_local_cluster_of_two_workers(frame, parquet):
    # starts (and closes) a cluster of its own: a few seconds
    y, family, kwargs = CASES["poisson, exposure and offset"]
    ours = gf.fit_glm(str(parquet / "part-*.parquet"), y, family, workers=2, **kwargs)
    assert_same_fit(ours, in_memory(frame, y, family, **kwargs))
    assert ours.settings["cluster"]["workers"] == 2


def test_import_gradfit_needs_no_dask():
    code = ("import sys, gradfit, gradfit.glm, gradfit.glm_cluster, gradfit.cluster; "
            "print(sorted(m for m in ('dask', 'distributed') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# -- bad input: one line each, naming the problem and the fix ---------------------------------------


def one_line(caught) -> str:
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_glob_matching_no_file(tmp_path):
    with pytest.raises(GradfitError, match="^no file matches .*nothing-here") as caught:
        gf.fit_glm(str(tmp_path / "nothing-here-*.parquet"), "count", "poisson", workers=2)
    one_line(caught)


def test_missing_column_is_named_with_the_columns(client, frame, parquet):
    with pytest.raises(GradfitError, match=r"^there is no column 'speed' in .*part-0\.parquet; its columns are: a, ") \
            as caught:
        gf.fit_glm(str(parquet / "*.parquet"), "count", "poisson", x=["a", "speed"], scheduler=client)
    one_line(caught)
    with pytest.raises(GradfitError, match="^the Dask DataFrame has no column 'speed'; its columns are: a, big"):
        gf.fit_glm(dd.from_pandas(frame, npartitions=3), "count", "poisson", x=["speed"], scheduler=client)


def test_a_file_missing_a_column_the_others_have(client, frame, tmp_path):
    paths = write_parquet(frame, tmp_path / "mixed")
    frame.iloc[:50].drop(columns=["big"]).to_parquet(paths[2])
    with pytest.raises(GradfitError, match=r"^there is no column 'big' in .*part-2\.parquet"):
        gf.fit_glm(str(tmp_path / "mixed" / "*.parquet"), "count", "poisson", x=["a", "big"], scheduler=client)


def test_non_numeric_column(client, frame):
    text = frame.assign(kind=np.where(frame["a"] > 0, "park", "road"))
    with pytest.raises(GradfitError, match="^column 'kind' is not numeric .*one-hot encode") as caught:
        gf.fit_glm(dd.from_pandas(text, npartitions=3), "count", "poisson", x=["a", "kind"], scheduler=client)
    one_line(caught)


def test_nan_names_the_column_file_and_row(client, frame, tmp_path):
    paths = write_parquet(frame, tmp_path / "holes")
    late = frame.iloc[600:].copy()
    late.iloc[250, late.columns.get_loc("big")] = np.nan  # row 250 of the last file, in its third row group
    late.to_parquet(paths[2], row_group_size=100)
    with pytest.raises(GradfitError, match=r"^column 'big' holds NaN or inf \(first at row 250 of file "
                                           r".*part-2\.parquet\); drop or fill") as caught:
        gf.fit_glm(str(tmp_path / "holes" / "*.parquet"), "count", "poisson", x=["a", "big"], scheduler=client)
    one_line(caught)


def test_nan_in_a_dask_partition(client, frame):
    holes = frame.copy()
    holes.loc[700, "minutes"] = np.nan
    with pytest.raises(GradfitError, match=r"^column 'minutes' holds NaN or inf \(first at row 100 of partition 2 "):
        gf.fit_glm(dd.from_pandas(holes, npartitions=3), "count", "poisson", x=["a"], exposure="minutes",
                   scheduler=client)


def test_targets_outside_the_family_name_the_partition(client, frame):
    with pytest.raises(GradfitError, match=r"^partition \d of the Dask DataFrame: the poisson loss needs counts"):
        gf.fit_glm(dd.from_pandas(frame, npartitions=3), "level", "poisson", x=["a"], scheduler=client)


def test_collinear_and_constant_columns_are_refused(client, frame):
    twice = frame.assign(a2=2.0 * frame["a"] + 1.0, one=1.0)
    with pytest.raises(GradfitError, match=r"^columns 'a', 'a2' are perfectly collinear"):
        gf.fit_glm(dd.from_pandas(twice, npartitions=3), "count", "poisson", x=["a", "a2"], scheduler=client)
    with pytest.raises(GradfitError, match=r"^column 'one' is constant"):
        gf.fit_glm(dd.from_pandas(twice, npartitions=3), "count", "poisson", x=["a", "one"], scheduler=client)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_scheduler(parquet):
    address = f"tcp://127.0.0.1:{free_port()}"
    with pytest.raises(GradfitError, match="^cannot reach the Dask scheduler at .*nothing listens there") as caught:
        gf.fit_glm(str(parquet / "*.parquet"), "count", "poisson", x=["a"], scheduler=address)
    one_line(caught)


@pytest.mark.parametrize("kwargs, fragment", [
    ({"categorical": ["a"]}, "^categorical is not supported on a cluster"),
    ({"profile": ["a"]}, "^profile is not supported on a cluster"),
    ({"optimizer": "adam", "steps": 10}, "^optimizer, steps are not supported on a cluster"),
    ({"offset": np.zeros(ROWS)}, "^on a cluster, give the offset as a column name"),
    ({"wiggle": 1}, "^fit_glm has no option 'wiggle'"),
])
def test_unsupported_options(client, frame, kwargs, fragment):
    with pytest.raises(GradfitError, match=fragment) as caught:
        gf.fit_glm(dd.from_pandas(frame, npartitions=3), "count", "poisson", scheduler=client, **kwargs)
    one_line(caught)


def test_categorical_family_and_data_in_memory_are_refused(client, frame):
    with pytest.raises(GradfitError, match="^the categorical family is not supported on a cluster"):
        gf.fit_glm(dd.from_pandas(frame, npartitions=3), "label", "categorical", scheduler=client)
    with pytest.raises(GradfitError, match="^on a cluster the data are a Dask DataFrame or a Parquet path"):
        gf.fit_glm({"a": frame["a"].to_numpy(), "count": frame["count"].to_numpy()}, "count", workers=2)


def test_dask_dataframe_without_a_cluster(frame):
    with pytest.raises(GradfitError, match="^a Dask DataFrame is fitted on a Dask cluster: give scheduler="):
        gf.fit_glm(dd.from_pandas(frame, npartitions=3), "count", "poisson", x=["a"])


def test_a_file_that_is_not_parquet(client, frame, tmp_path):
    paths = write_parquet(frame, tmp_path / "broken")
    paths[1].write_bytes(paths[1].read_bytes()[:200])  # cut short: no footer
    with pytest.raises(GradfitError, match=r"^cannot read .*part-1\.parquet as Parquet \(") as caught:
        gf.fit_glm(str(tmp_path / "broken" / "*.parquet"), "count", "poisson", x=["a"], scheduler=client)
    one_line(caught)


def test_exposure_must_be_positive_and_the_row_is_named(client, frame, tmp_path):
    paths = write_parquet(frame, tmp_path / "stopped")
    late = frame.iloc[300:600].copy()
    late.iloc[42, late.columns.get_loc("minutes")] = 0.0
    late.to_parquet(paths[1])
    with pytest.raises(GradfitError, match=r"^the exposure column 'minutes' must be positive .* it is 0 at row 42 "
                                           r"of file .*part-1\.parquet$"):
        gf.fit_glm(str(tmp_path / "stopped" / "*.parquet"), "count", "poisson", x=["a"], exposure="minutes",
                   scheduler=client)


def test_an_empty_partition_is_skipped(client, frame):
    ddf = dd.from_pandas(frame, npartitions=3)
    late = ddf.map_partitions(lambda part: part[part.index >= 300])  # the first partition is now empty
    y, family, kwargs = CASES["poisson, exposure and offset"]
    ours = gf.fit_glm(late, y, family, scheduler=client, **kwargs)
    assert ours.settings["cluster"]["partitions"] == 2
    assert_same_fit(ours, in_memory(frame.iloc[300:], y, family, **kwargs))


# -- the command line ------------------------------------------------------------------------------


def cli(*args):
    from typer.testing import CliRunner

    from gradfit.cli import app

    return CliRunner().invoke(app, ["fit", *args])


def test_the_cli_fits_parquet_at_a_scheduler_as_the_library_does(client, frame, parquet, tmp_path):
    out = tmp_path / "fit.json"
    done = cli("--data", str(parquet / "*.parquet"), "--y", "count", "--x", "a,big", "--model", "linear",
               "--loss", "poisson", "--offset", "minutes", "--scheduler", client.scheduler.address,
               "--json", str(out))
    assert done.exit_code == 0, done.output
    assert "std err" in done.output and "900 examples" in done.output
    written = json.loads(out.read_text())
    ref = in_memory(frame, "count", "poisson", x=["a", "big"], exposure="minutes")
    np.testing.assert_allclose([written["params"][k] for k in ref.params], ref.x, rtol=RTOL)


@pytest.mark.parametrize("args, fragment", [
    (("--epochs", "3"), "--epochs cannot be used with --workers"),
    (("--loss", "categorical"), "takes --loss poisson, bernoulli or normal"),
    (("--scheduler", "tcp://127.0.0.1:1"), "cannot reach the Dask scheduler"),
])
def test_the_cli_refuses_what_a_cluster_fit_cannot_take_in_one_line(parquet, args, fragment):
    base = ["--data", str(parquet / "*.parquet"), "--y", "count", "--model", "linear", "--loss", "poisson"]
    given = dict(zip(args[::2], args[1::2]))
    if "--loss" in given:
        base[-1] = given.pop("--loss")
    extra = [v for kv in given.items() for v in kv]
    done = cli(*base, *(extra if "--scheduler" in given else [*extra, "--workers", "2"]))
    assert done.exit_code == 2
    assert fragment in done.output and len(done.output.strip().splitlines()) == 1

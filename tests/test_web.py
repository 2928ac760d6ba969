"""The web app's JSON API on a real uvicorn server, through a real HTTP client (urllib).

The checks that ``POST /api/fit`` equals ``gradfit fit --json`` each start a CLI process
(seconds apiece): one runs by default, the rest are marked slow.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import gradfit as gf
from gradfit import landscape as ls
from gradfit import plots
from gradfit.models import linear_for

pytest.importorskip("fastapi", reason="the web app needs: pip install 'gradfit[web]'")
from gradfit.web import api, uploads  # noqa: E402
from gradfit.web import app as web_app  # noqa: E402
from gradfit.web.app import plotly_url, running  # noqa: E402


@pytest.fixture(scope="module")
def server():
    with running() as url:
        yield url


def call(url, path, body=None, *, raw=None, timeout=60, kind="application/json"):
    """(status, parsed JSON body) of a GET, or of a POST of ``body`` as JSON (``raw`` bytes as given)."""
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    request = urllib.request.Request(url + path, data=data, headers={"Content-Type": kind})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def cli_json(tmp_path, *args):
    out = tmp_path / "fit.json"
    done = subprocess.run([sys.executable, "-m", "gradfit.cli", "fit", "-q", "--json", str(out), *args],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return json.loads(out.read_text())


def slow(*values):
    return pytest.param(*values, marks=pytest.mark.slow)


@pytest.mark.parametrize("body, args", [
    ({}, []),  # every default, as gradfit.defaults chooses it for both
    slow({"optimizer": "momentum", "lr": 0.01, "beta": 0.9, "init": [-1.5, 6], "tol": 0, "steps": 300},
         ["--optimizer", "momentum", "--lr", "0.01", "--beta", "0.9", "--init=-1.5,6", "--tol", "0", "--steps", "300"]),
    slow({"model": "linear", "optimizer": "nesterov", "variant": "torch", "lr": 0.01, "steps": 200},
         ["--model", "linear", "--optimizer", "nesterov", "--variant", "torch", "--lr", "0.01", "--steps", "200"]),
    slow({"model": "linear"}, ["--model", "linear"]),  # the default optimizer of a line: lm
    slow({"scale": 32, "optimizer": "sgd", "batch_size": 8, "epochs": 5, "lr": 0.01, "schedule": "step", "seed": 3},
         ["--scale", "32", "--optimizer", "sgd", "--batch-size", "8", "--epochs", "5", "--lr", "0.01",
          "--schedule", "step", "--seed", "3"]),
    slow({"model": "linear", "loss": "poisson", "builtin": "pedestrians", "lr": 0.01, "steps": 100},
         ["--model", "linear", "--loss", "poisson", "--builtin", "pedestrians", "--lr", "0.01", "--steps", "100"]),
    slow({"model": "linear", "loss": "poisson", "x": "hour_cos", "init": [1, 1], "steps": 300},
         ["--model", "linear", "--loss", "poisson", "--x", "hour_cos", "--init", "1,1", "--steps", "300"]),
])
def test_fit_answers_what_the_cli_writes(server, tmp_path, body, args):
    status, answer = call(server, "/api/fit", body)
    assert status == 200, answer
    expected = cli_json(tmp_path, *args)
    answer.pop("elapsed"), expected.pop("elapsed")  # a clock, not a result
    assert answer == expected


@pytest.mark.parametrize("body, words", [
    ({"steps": -1}, "steps"),
    ({"steps": 100_001}, "less than or equal to 100000"),
    ({"stepz": 10}, "unknown field 'stepz'"),
    ({"optimizer": "bogus"}, "unknown optimizer 'bogus'"),
    ({"variant": "zzz"}, "unknown variant 'zzz'"),
    ({"init": [1, 2, 3]}, "init has 3 value(s)"),
    ({"model": "linear", "loss": "poisson", "init": [1, 2]}, "init has 2 value(s)"),
    ({"init": [1, "x"]}, "init.1"),
    ({"lr": "nan"}, "finite"),
    ({"model": "shallow"}, "model"),
    ({"model": "gabor", "builtin": "linear"}, "leave out builtin"),
    ({"x": "hour_cos"}, "x picks the input columns"),
    ([1, 2], "JSON object"),
])
def test_bad_fields_are_a_one_line_422(server, body, words):
    status, answer = call(server, "/api/fit", body)
    assert status == 422
    assert words in answer["detail"] and "\n" not in answer["detail"] and "Traceback" not in answer["detail"]


def test_bad_json_and_oversized_bodies_are_refused(server):
    status, answer = call(server, "/api/fit", raw=b"{not json")
    assert (status, "not valid JSON" in answer["detail"]) == (422, True)
    status, answer = call(server, "/api/fit", raw=b'{"steps": 1' + b" " * 20_000 + b"}")
    assert (status, "KiB" in answer["detail"]) == (413, True)


def test_surface_is_the_loss_on_its_grid(server):
    status, grid = call(server, "/api/surface?model=gabor&scale=32&resolution=7")
    assert status == 200
    assert len(grid["a"]) == len(grid["b"]) == 7 and np.shape(grid["loss"]) == (7, 7)
    data = gf.gabor_data(0, s=32)
    j, i = 3, 5
    expected = gf.fit(gf.gabor(32), gf.normal(), data, gf.gd(1e-3), init=[grid["a"][i], grid["b"][j]], steps=0).loss
    assert grid["loss"][j][i] == pytest.approx(expected, rel=1e-12)
    assert grid["data"]["y"] == pytest.approx(data.y.tolist())


@pytest.mark.parametrize("query, words", [
    ("resolution=201", "less than or equal to 200"),
    ("resolution=1", "greater than or equal to 2"),
    ("model=shallow", "model"),
    ("a_min=5&a_max=1", "low < high"),
    ("scale=-1", "scale"),
    ("colour=red", "unknown field 'colour'"),
])
def test_bad_surface_queries_are_a_one_line_422(server, query, words):
    status, answer = call(server, f"/api/surface?{query}")
    assert status == 422 and words in answer["detail"], answer


def test_sixteen_fits_at_once_are_each_answered_correctly(server):
    starts = [[-8 + i, 4 + i] for i in range(16)]

    def one(start):
        return call(server, "/api/fit", {"init": start, "steps": 400, "tol": 0, "lr": 0.05})

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(one, starts))
    data = gf.gabor_data(0)
    for start, (status, answer) in zip(starts, answers, strict=True):
        assert status == 200
        alone = gf.fit(gf.gabor(8), gf.normal(), data, gf.adam(lr=0.05), init=start, steps=400, tol=0)
        assert answer["history"]["params"][0] == {"phi0": start[0], "phi1": start[1]}
        assert [answer["params"]["phi0"], answer["params"]["phi1"]] == pytest.approx(alone.x, rel=1e-9, abs=1e-12)


def test_a_slow_fit_does_not_block_the_page(server):
    with ThreadPoolExecutor(1) as pool:
        slow = pool.submit(call, server, "/api/fit", {"steps": 100_000, "tol": 0, "init": [-3, 5]})
        time.sleep(0.05)
        with urllib.request.urlopen(server + "/", timeout=10) as page:
            assert b"gradfit playground" in page.read()
        still_fitting = not slow.done()
        assert slow.result()[0] == 200
    assert still_fitting  # the page was answered while the fit ran, not after it


def test_page_and_its_assets_are_served(server):
    with urllib.request.urlopen(server + "/", timeout=10) as page:
        html = page.read().decode()
    for asset in (plotly_url(), "/static/playground.js", "/static/style.css"):
        assert asset in html
        with urllib.request.urlopen(server + asset, timeout=10) as response:
            assert response.status == 200 and len(response.read()) > 500
    pages = (("/compare", "/static/playground.js"), ("/lr", "/static/lr.js"), ("/basins", "/static/basins.js"))
    for page, script in pages:
        with urllib.request.urlopen(server + page, timeout=10) as response:
            assert script in response.read().decode()


def test_every_page_shares_one_template_and_its_navigation(server):
    links = ['<a href="/"', '<a href="/compare"', '<a href="/basins"', '<a href="/lr"']
    for path in ("/", "/compare", "/basins", "/lr"):
        with urllib.request.urlopen(server + path, timeout=10) as page:
            html = page.read().decode()
        assert all(link in html for link in links)
        assert html.count('aria-current="page"') == 1 and f'<a href="{path}" aria-current="page"' in html
        assert "$" not in html.split("<main>")[0]  # every placeholder filled in
        assert f'<script src="{plotly_url()}" defer>' in html


def test_plotly_is_gzipped_and_cached_for_good(server):
    import gzip

    request = urllib.request.Request(server + plotly_url(), headers={"Accept-Encoding": "gzip"})
    with urllib.request.urlopen(request, timeout=10) as response:
        packed = response.read()
        assert response.headers["Content-Encoding"] == "gzip"
        assert "immutable" in response.headers["Cache-Control"]
    with urllib.request.urlopen(server + plotly_url(), timeout=10) as response:  # no gzip asked for: none sent
        plain = response.read()
        assert response.headers.get("Content-Encoding") is None
    assert gzip.decompress(packed) == plain and len(packed) < len(plain) / 2
    assert call(server, "/vendor/plotly-0.0.0.min.js")[0] == 404
    assert call(server, "/static/page.html")[0] == 404  # templates are not assets


def test_import_gradfit_loads_no_web_package():
    names = "('fastapi', 'uvicorn', 'plotly', 'starlette')"
    code = f"import sys, gradfit; print(sorted(m for m in {names} if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_gradfit_serve_listens_on_loopback_and_answers():
    with socket.socket() as probe:  # a port free now, for the command to take
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "gradfit.cli", "serve", "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip().startswith(f"gradfit playground on http://127.0.0.1:{port}/")
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as page:
                    assert page.status == 200
                    break
            except urllib.error.URLError:
                assert time.monotonic() < deadline and proc.poll() is None, proc.stderr.read()
                time.sleep(0.1)
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_sweep_rows_are_the_fits_they_name(server):
    status, answer = call(server, "/api/sweep", {"optimizer": "gd", "lr_min": 0.001, "lr_max": 0.5, "count": 4,
                                                 "seeds": 2, "steps": 200})
    assert status == 200
    assert len(answer["rows"]) == 8 and {r["seed"] for r in answer["rows"]} == {0, 1}
    assert sorted({r["lr"] for r in answer["rows"]}) == pytest.approx(np.geomspace(0.001, 0.5, 4))
    data = gf.gabor_data(0)
    for row in answer["rows"][:3]:
        alone = gf.fit(gf.gabor(8), gf.normal(), data, gf.gd(row["lr"]), steps=200, tol=0, seed=row["seed"])
        assert row["init"] == pytest.approx(alone.history.params[0])
        if alone.status == "diverged":
            assert row["final_loss"] is None
        else:
            assert row["final_loss"] == pytest.approx(alone.loss, rel=1e-9)


@pytest.mark.parametrize("body, words", [
    ({"lr_min": 1, "lr_max": 0.1}, "lr_min must be below lr_max"),
    ({"count": 128, "seeds": 16}, "at most 512 runs"),
    ({"steps": 20_000}, "steps"),
    ({"optimizer": "nope"}, "nope"),
    ({"grid": "lr"}, "unknown field 'grid'"),
])
def test_bad_sweeps_are_a_one_line_422(server, body, words):
    status, answer = call(server, "/api/sweep", body)
    assert status == 422 and words in answer["detail"], answer


# -- uploaded data ----------------------------------------------------------------------------


def csv_of(data, x="dose", y="response") -> bytes:
    """A data set as CSV text, each float written exactly (repr round-trips)."""
    rows = (f"{float(a)!r},{float(b)!r}" for a, b in zip(np.ravel(data.x), data.y, strict=True))
    return (f"{x},{y}\n" + "\n".join(rows) + "\n").encode()


def upload(server, text, **query):
    path = "/api/data" + ("?" + urllib.parse.urlencode(query) if query else "")
    return call(server, path, raw=text, kind="text/csv")


def as_uploaded(data, x="dose", y="response"):
    """``data`` as the upload of `csv_of` reads it: the same arrays, the columns' names."""
    return gf.Dataset(np.ravel(data.x), data.y, x_names=(x,), y_name=y, name="upload")


def test_upload_names_its_columns_and_the_same_text_has_the_same_id(server):
    text = b"hour,temp,count\n1,20.5,3\n2,21,5\n3,19.5,4\n"
    status, first = upload(server, text, name="counts.csv")
    assert status == 200, first
    assert (first["columns"], first["x"], first["y"], first["rows"], first["name"]) == (
        ["hour", "temp", "count"], "hour", "count", 3, "counts.csv")
    status, chosen = upload(server, text, x="temp", y="count")
    assert (chosen["x"], chosen["y"]) == ("temp", "count") and chosen["id"] != first["id"]
    assert upload(server, text, name="counts.csv")[1]["id"] == first["id"]


@pytest.mark.parametrize("model, library", [
    ({"model": "linear"}, lambda d, init: gf.infer(gf.fit(linear_for(d), gf.normal(), d, gf.make_optimizer("lm"),
                                                           init=init))),
    ({"model": "linear", "optimizer": "adam", "steps": 300},
     lambda d, init: gf.infer(gf.fit(linear_for(d), gf.normal(), d, gf.adam(lr=0.1), init=init, steps=300))),
    ({"model": "gabor", "scale": 32, "steps": 300},
     lambda d, init: gf.fit(gf.gabor(32), gf.normal(), d, gf.adam(lr=0.1), init=init, steps=300)),
    ({"model": "linear", "loss": "poisson", "steps": 200},
     lambda d, init: gf.fit_glm(d, None, "poisson", optimizer=gf.adam(lr=0.1), init=init, steps=200, polish=True)),
])
def test_a_fit_on_uploaded_data_is_gradfits_fit_of_the_same_arrays(server, model, library):
    data = gf.pedestrian_data(0) if model.get("loss") == "poisson" else gf.gabor_data(3, s=32)
    if data.x.ndim == 2:  # the counts against one input
        data = gf.Dataset(data.x[:, list(data.x_names).index("hour_cos")], data.y)
    status, sent = upload(server, csv_of(data))
    assert status == 200, sent
    init = [0.5, 0.2] if model["model"] == "linear" else [1.0, 15.0]
    status, answer = call(server, "/api/fit", {**model, "data": sent["id"], "init": init})
    assert status == 200, answer
    expected = library(as_uploaded(data), init)
    assert list(answer["params"]) == list(expected.param_names)
    assert list(answer["params"].values()) == pytest.approx(expected.x, rel=1e-9, abs=1e-12)
    assert answer["loss"] == pytest.approx(expected.loss, rel=1e-9)
    rows = [list(row.values()) for row in answer["history"]["params"]]
    assert np.asarray(rows) == pytest.approx(np.asarray(expected.history.params), rel=1e-9, abs=1e-12)


@pytest.mark.slow
def test_a_fit_on_uploaded_data_answers_what_the_cli_writes_for_the_file(server, tmp_path):
    text = csv_of(gf.gabor_data(3, s=32))
    (tmp_path / "upload.csv").write_bytes(text)
    status, sent = upload(server, text)
    status, answer = call(server, "/api/fit", {"model": "gabor", "scale": 32, "steps": 200, "data": sent["id"]})
    assert status == 200, answer
    expected = cli_json(tmp_path, "--data", str(tmp_path / "upload.csv"), "--x", "dose", "--y", "response",
                        "--model", "gabor", "--scale", "32", "--steps", "200")
    answer.pop("elapsed"), expected.pop("elapsed")
    assert answer == expected


def test_surface_of_uploaded_data_is_its_loss(server):
    data = gf.linear_data(2)
    status, sent = upload(server, csv_of(data))
    status, grid = call(server, f"/api/surface?model=linear&data={sent['id']}&resolution=9")
    assert status == 200, grid
    assert grid["labels"] == ["Intercept", "dose"] and grid["data"]["x_label"] == "dose"
    model = linear_for(as_uploaded(data))
    fn = ls.LossFunction(model, gf.normal(), as_uploaded(data))
    j, i = 2, 6
    assert grid["loss"][j][i] == pytest.approx(float(fn(np.array([[grid["a"][i], grid["b"][j]]]))[0]), rel=1e-12)
    # the box holds the least-squares line
    slope, intercept = np.polyfit(np.ravel(data.x), data.y, 1)
    assert grid["a"][0] < intercept < grid["a"][-1] and grid["b"][0] < slope < grid["b"][-1]


@pytest.mark.parametrize("text, query, status, words", [
    (b"", {}, 422, "the file is empty"),
    (b"   \n", {}, 422, "the file is empty"),
    (b"x,y\n1,2\n", {}, 422, "one row"),
    (b"x,y\n", {}, 422, "no rows"),
    (b"x\n1\n2\n", {}, 422, "1 column(s)"),
    (b"x,y\n1,2\nzz,3\n", {}, 422, "column 'x' of upload.csv is not numeric: line 3"),
    (b"x,y\n1,2\n2,nan\n", {}, 422, "NaN"),
    (b"x,y\n1,2\n2,\n", {}, 422, "empty cells"),
    (b"x,y\n1,2\n1,3\n", {}, 422, "holds one value"),
    (b"x,y\n1,2\n2,3\n", {"x": "z"}, 422, "no column 'z'"),
    (b"x,y\n1,2\n2,3\n", {"x": "y", "y": "y"}, 422, "target"),
    (b"x,y\n1,2\n2,3\n", {"colour": "red"}, 422, "unknown field 'colour'"),
    (b"\xff\xfe\x00x", {}, 422, "UTF-8"),
    (b"x,y\n" + b"1,2\n" * (uploads.MAX_ROWS + 1), {}, 422, "at most 50,000"),
])
def test_bad_uploads_are_one_line_with_the_fix(server, text, query, status, words):
    got, answer = upload(server, text, **query)
    assert got == status and words in answer["detail"], answer
    assert "\n" not in answer["detail"] and "/tmp" not in answer["detail"]


@pytest.mark.parametrize("text, model, words", [
    (b"x,y\n1,-2\n2,3\n3,4\n", "poisson", "needs counts"),
    (b"x,y\n1,0.5\n2,1.5\n3,2\n", "poisson", "needs counts"),
    (b"x,y\n1e-300,1\n2e-300,2\n3e-300,1\n", "linear", "extreme a scale"),
    (b"x,y\n1,1e300\n2,-1e300\n3,1e299\n", "linear", "extreme a scale"),
])
def test_a_surface_an_upload_cannot_have_is_a_one_line_422(server, text, model, words):
    status, sent = upload(server, text)
    status, answer = call(server, f"/api/surface?model={model}&data={sent['id']}&resolution=5")
    assert status == 422 and words in answer["detail"], answer


def test_a_loss_too_large_for_a_number_is_null_on_the_surface(server):
    status, sent = upload(server, b"x,y\n1,1e300\n2,-1e300\n3,1e299\n")
    status, grid = call(server, f"/api/surface?model=gabor&data={sent['id']}&resolution=5")
    assert status == 200, grid
    assert any(v is None for row in grid["loss"] for v in row)  # (1e300)² overflows: a gap, not an error


def test_an_upload_over_the_cap_is_refused_before_it_is_read(server):
    import http.client

    parts = urllib.parse.urlsplit(server)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    connection.putrequest("POST", "/api/data")
    connection.putheader("Content-Type", "text/csv")
    connection.putheader("Content-Length", str(uploads.MAX_BYTES + 1))
    connection.endheaders()  # and no body: the answer comes from the length alone
    response = connection.getresponse()
    assert response.status == 413 and "2,048 KiB" in json.loads(response.read())["detail"]
    connection.close()


@pytest.mark.parametrize("body, words", [
    ({"data": "0123456789abcdef"}, "upload the file again"),
    ({"data": "../etc/passwd"}, "not an upload's id"),
])
def test_a_fit_or_surface_of_an_unknown_upload_is_a_422(server, body, words):
    status, answer = call(server, "/api/fit", body)
    assert status == 422 and words in answer["detail"], answer
    status, answer = call(server, "/api/surface?" + urllib.parse.urlencode(body))
    assert status == 422 and words in answer["detail"], answer


def test_upload_and_builtin_together_are_refused(server):
    status, sent = upload(server, b"x,y\n1,2\n2,3\n3,5\n")
    status, answer = call(server, "/api/fit", {"data": sent["id"], "builtin": "linear", "model": "linear"})
    assert status == 422 and "not both" in answer["detail"]


def test_the_store_keeps_the_latest_uploads():
    store = uploads.Uploads(kept=2)
    sets = [gf.Dataset(np.arange(3.0), np.arange(3.0) + k) for k in range(3)]
    ids = [store.add(str(k).encode(), d) for k, d in enumerate(sets)]
    assert store.get(ids[2]) is sets[2] and store.get(ids[1]) is sets[1]
    with pytest.raises(gf.GradfitError, match="upload the file again"):
        store.get(ids[0])


# -- basins -----------------------------------------------------------------------------------


def test_basins_are_the_librarys_map(server):
    status, answer = call(server, "/api/basins?scale=8&resolution=60")
    assert status == 200, answer
    expected = ls.basins(gf.gabor(8), gf.normal(), gf.gabor_data(0, s=8), gf.gd(api.BASIN_RATES[8.0]),
                         api.BOXES["gabor"], resolution=60, steps=api.BASIN_STEPS)
    assert answer["a"] == pytest.approx(expected.a.tolist()) and answer["b"] == pytest.approx(expected.b.tolist())
    plateau = float(np.sum(gf.gabor_data(0, s=8).y ** 2))
    codes = plots.basin_codes(expected, plateau)
    assert answer["plateau"] == pytest.approx(plateau)
    assert np.array_equal(np.asarray(answer["labels"]), codes)
    assert (codes == plots.PLATEAU).any()  # s = 8: starts slide onto the plateau L = Σy²
    for code, where in answer["nowhere"].items():
        assert where["share"] == pytest.approx(np.mean(codes == int(code)))
        assert where["color"] == plots.NO_MINIMUM[int(code)][0]
    assert [m["color"] for m in answer["minima"]] == [plots.basin_color(k) for k in range(len(expected.minima))]
    found = np.array([[m["phi0"], m["phi1"]] for m in answer["minima"]])
    assert found == pytest.approx(expected.minima, rel=1e-9, abs=1e-12)
    assert [m["loss"] for m in answer["minima"]] == pytest.approx(expected.minima_loss.tolist(), rel=1e-12)
    assert [m["share"] for m in answer["minima"]] == pytest.approx(expected.shares.tolist())
    hits = web_app._basins.cache_info().hits
    assert call(server, "/api/basins?scale=8&resolution=60")[1] == answer
    assert web_app._basins.cache_info().hits == hits + 1  # kept, not computed again


@pytest.mark.parametrize("query, words", [
    ("scale=9", "s = 8 or 32"),
    ("resolution=101", "less than or equal to 100"),
    ("resolution=x", "resolution"),
    ("steps=5", "unknown field 'steps'"),
])
def test_bad_basin_queries_are_a_one_line_422(server, query, words):
    status, answer = call(server, f"/api/basins?{query}")
    assert status == 422 and words in answer["detail"], answer


def test_the_basin_maps_are_the_lectures():
    from gradfit import lecture

    assert api.BASIN_RATES == dict(zip(lecture.FULL.scales, lecture.FULL.gabor_lr, strict=True))
    assert api.BASIN_STEPS == lecture.FULL.basin_steps

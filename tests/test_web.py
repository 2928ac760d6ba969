"""The web app's JSON API on a real uvicorn server, through a real HTTP client (urllib)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import gradfit as gf

pytest.importorskip("fastapi", reason="the web app needs: pip install 'gradfit[web]'")
from gradfit.web.app import running  # noqa: E402


@pytest.fixture(scope="module")
def server():
    with running() as url:
        yield url


def call(url, path, body=None, *, raw=None, timeout=60):
    """(status, parsed JSON body) of a GET, or of a POST of ``body`` as JSON (``raw`` bytes as given)."""
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    request = urllib.request.Request(url + path, data=data, headers={"Content-Type": "application/json"})
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


@pytest.mark.parametrize("body, args", [
    ({}, []),
    ({"optimizer": "momentum", "lr": 0.01, "beta": 0.9, "init": [-1.5, 6], "tol": 0, "steps": 300},
     ["--optimizer", "momentum", "--lr", "0.01", "--beta", "0.9", "--init=-1.5,6", "--tol", "0", "--steps", "300"]),
    ({"model": "linear", "optimizer": "nesterov", "variant": "torch", "lr": 0.01, "steps": 200},
     ["--model", "linear", "--optimizer", "nesterov", "--variant", "torch", "--lr", "0.01", "--steps", "200"]),
    ({"scale": 32, "optimizer": "sgd", "batch_size": 8, "epochs": 5, "lr": 0.01, "schedule": "step", "seed": 3},
     ["--scale", "32", "--optimizer", "sgd", "--batch-size", "8", "--epochs", "5", "--lr", "0.01",
      "--schedule", "step", "--seed", "3"]),
    ({"model": "linear", "loss": "poisson", "builtin": "pedestrians", "lr": 0.01, "steps": 100},
     ["--model", "linear", "--loss", "poisson", "--builtin", "pedestrians", "--lr", "0.01", "--steps", "100"]),
    ({"model": "linear", "loss": "poisson", "x": "hour_cos", "init": [1, 1], "steps": 300},
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
        began = time.perf_counter()
        with urllib.request.urlopen(server + "/", timeout=10) as page:
            assert b"gradfit playground" in page.read()
        waited = time.perf_counter() - began
        still_fitting = not slow.done()
        assert slow.result()[0] == 200
    assert still_fitting  # the page was answered while the fit ran, not after it
    assert waited < 0.5


def test_page_and_its_assets_are_served(server):
    with urllib.request.urlopen(server + "/", timeout=10) as page:
        html = page.read().decode()
    for asset in ("/vendor/plotly.min.js", "/static/playground.js", "/static/style.css"):
        assert asset in html
        with urllib.request.urlopen(server + asset, timeout=10) as response:
            assert response.status == 200 and len(response.read()) > 500
    for page, script in (("/compare", "/static/playground.js"), ("/lr", "/static/lr.js")):
        with urllib.request.urlopen(server + page, timeout=10) as response:
            assert script in response.read().decode()


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

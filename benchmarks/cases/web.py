"""The playground's latency: a click's fit through the JSON API, and the page load.

A real uvicorn server runs the web app on 127.0.0.1 (started once, before timing, and
warmed by its own start-up task and the harness's untimed calls); a real HTTP client
(``http.client``, a new connection per request, as a browser's first request) times:

- ``click_to_path``: ``POST /api/fit`` of ``steps`` Adam steps on the Gabor loss (s = 8)
  from a start, the JSON answer read and parsed: what the page waits for between a click
  and drawing the path;
- ``page_load``: ``GET /`` and everything the page then fetches (style sheet, script,
  plotly.js gzipped, as a browser asks for it, and the loss surface): the server's side of a
  first visit; the browser's parsing of plotly.js (most of a first visit, see docs/web.md)
  is not in it;
- ``basins``: ``GET /api/basins`` of the Basins page's default map, kept by the server
  after its first computation (which the untimed warm-up pays);
- ``in_process``: the same fit by ``gradfit.fit`` in this process (with its standard
  errors, as the API returns them), for what the server adds.

The issue's budgets are absolute (200 ms, 1 s); the harness compares medians, so they are
stated against ``budget``, a 200 ms wait.
"""

from __future__ import annotations

import atexit
import http.client
import json
import time
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from ..harness import Agreement, Case, Problem, Run, Target, Tool

START = [-3.0, 5.0]
BASINS = "/api/basins?scale=8&resolution=60"


def _assets() -> tuple[str, ...]:
    from gradfit.web.app import plotly_url

    return ("/", "/static/style.css", "/static/playground.js", plotly_url(), "/api/surface?model=gabor&scale=8")


def _server() -> str:
    from gradfit.web.app import running

    context = running()
    url = context.__enter__()
    atexit.register(context.__exit__, None, None, None)
    return url


def _get(address, path: str, body: bytes | None = None) -> bytes:
    connection = http.client.HTTPConnection(*address, timeout=60)
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {"Accept-Encoding": "gzip"}
        connection.request("POST" if body is not None else "GET", path, body=body, headers=headers)
        response = connection.getresponse()
        payload = response.read()
        if response.status != 200:
            raise RuntimeError(f"{path} answered {response.status}: {payload[:300]!r}")
        return payload
    finally:
        connection.close()


def build(p: dict[str, Any]) -> Problem:
    state: dict[str, Any] = {}
    request = {"init": START, "steps": p["steps"], "tol": 0}

    def address():
        if "address" not in state:
            parts = urlsplit(_server())
            state["address"] = (parts.hostname, parts.port)
        return state["address"]

    def click() -> Run:
        where, body = address(), json.dumps(request).encode()

        def run() -> np.ndarray:
            answer = json.loads(_get(where, "/api/fit", body))
            return np.array([answer["params"]["phi0"], answer["params"]["phi1"]])

        return run

    def page() -> Run:
        where, assets = address(), _assets()

        def run() -> np.ndarray:
            for path in assets:
                _get(where, path)
            return np.zeros(0)

        return run

    def basins() -> Run:
        where = address()
        _get(where, BASINS)  # the first map is computed here, untimed

        def run() -> np.ndarray:
            json.loads(_get(where, BASINS))
            return np.zeros(0)  # not the baseline's parameters: nothing to compare

        return run

    def direct() -> Run:
        import gradfit as gf

        data, model = gf.gabor_data(0), gf.gabor(8)

        def run() -> np.ndarray:
            result = gf.infer(gf.fit(model, gf.normal(), data, gf.adam(lr=0.1), init=START, steps=p["steps"], tol=0))
            return result.x

        return run

    def budget() -> Run:
        return lambda: (time.sleep(0.2), np.zeros(0))[1]

    return Problem(
        tools=[
            Tool("click_to_path", f"POST /api/fit, {p['steps']} Gabor Adam steps, JSON parsed", click),
            Tool("page_load", "GET / and its assets (plotly.js 4.8 MB, 1.5 MB gzipped; the loss surface)", page),
            Tool("basins", "GET /api/basins, the Basins page's 60² map (kept after the first)", basins),
            Tool("in_process", f"gradfit.fit + infer of the same {p['steps']} steps in this process", direct,
                 jax=True),
            Tool("budget", "a 200 ms wait: the issue's budget for click → path", budget),
        ],
        steps=p["steps"],
        baseline="in_process",
        targets=[
            Target("click → path at most 200 ms", "click_to_path", "budget", "<=", 1.0),
            Target("page load at most 1 s", "page_load", "budget", "<=", 5.0),
        ],
        agreements=[Agreement("click_to_path", "in_process", 1e-9)],
        notes=["server and client share this machine's cores; the server was warmed before timing"],
    )


CASE = Case(
    name="web",
    title="the web playground: click → path through the JSON API, and page load",
    params={"steps": 1000},
    build=build,
    quick={"steps": 200},
)

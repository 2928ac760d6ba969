"""The ASGI app: the pages, their scripts, and the JSON API.

Fits run in a thread pool, so the event loop keeps serving pages and surfaces while a
long fit computes; the playground's default fit is compiled in the background at
start-up, so the first click does not pay for XLA. Every bad request is a 422 (413 for
one too large) whose ``detail`` is one line naming the problem and the fix.

Each page is one template (``static/page.html``: head, navigation, header) around the
page's own body (``static/<page>.html``), filled in once at start-up.
"""

from __future__ import annotations

import asyncio
import functools
import gzip
import json
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from string import Template

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from pydantic import ValidationError

from ..errors import GradfitError
from . import api, uploads

#: A fit request is a few hundred bytes; anything much larger is not one. An upload may be larger.
MAX_BODY = 16 * 1024
FIT_THREADS = max(2, min(8, os.cpu_count() or 2))
STATIC = Path(str(resources.files(__package__) / "static"))
#: The playground's first fit, compiled at start-up: a click on the Gabor (s = 8) surface with Adam.
DEFAULT_FIT = api.FitRequest(init=[1.0, 10.0], steps=1000, tol=0)

log = logging.getLogger(__name__)
#: What a fit or a surface raises for options it cannot use: the request's fault, so a 422.
_BAD_INPUT = (GradfitError, ValueError, TypeError)


@dataclass(frozen=True)
class Page:
    """One page: its path, its body (``static/<name>.html``) and script, what its header says,
    and the request it starts before plotly.js is evaluated (its first plot's data)."""

    path: str
    name: str
    label: str
    title: str
    intro: str
    script: str
    early: str | None = None


PAGES = (
    Page("/", "playground", "Playground", "gradfit playground",
         "Click the loss surface to start a fit there; move the step slider to follow it. "
         "Fit the built-in data, or upload a CSV of your own.", "playground.js",
         "/api/surface?model=gabor&scale=8"),
    Page("/compare", "compare", "Compare", "gradfit: compare optimisers",
         "Click the loss surface: every ticked rule starts from that point with the same α, each in its own colour.",
         "playground.js", "/api/surface?model=gabor&scale=8"),
    Page("/basins", "basins", "Basins", "gradfit: basins of attraction",
         "Each start coloured by the minimum gradient descent reaches from it; click a basin to follow a start "
         "and see its minimum's fit.", "basins.js", "/api/basins?scale=8&resolution=60"),
    Page("/lr", "lr", "Learning rate", "gradfit: final loss against the learning rate",
         "One fit per α and start, all compiled together by gradfit.sweep: too small an α has not arrived, "
         "too large diverges.", "lr.js"),
)
#: The scripts and style sheet the pages load from /static/.
ASSETS = {"playground.js": "text/javascript", "basins.js": "text/javascript", "lr.js": "text/javascript",
          "style.css": "text/css"}


def _plotly_js() -> Path:
    """plotly.js as the installed plotly package ships it, so the page works offline."""
    import plotly

    return Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


def plotly_url() -> str:
    """Where the pages load plotly.js: named by plotly's version, so it can be cached for good."""
    import plotly

    return f"/vendor/plotly-{plotly.__version__}.min.js"


@functools.cache
def _plotly_gzip() -> bytes:
    """plotly.js gzipped once (4.8 MB to about 1.4 MB)."""
    return gzip.compress(_plotly_js().read_bytes(), compresslevel=6, mtime=0)


def _early_fetch(url: str | None) -> str:
    """An inline script that sends the page's first data request while plotly.js loads."""
    if url is None:
        return ""
    return (f'window.gradfitEarly = {{url: {json.dumps(url)}, answer: fetch({json.dumps(url)})'
            '.then(async (r) => ({ok: r.ok, body: await r.json()}))};')


def render(page: Page) -> str:
    """The page's HTML: the shared template around its body."""
    text = (STATIC / f"{page.name}.html").read_text(encoding="utf-8")
    problem = Template((STATIC / "_problem.html").read_text(encoding="utf-8"))
    parts = {"problem": problem.substitute(max_upload=uploads.MAX_BYTES),
             "views": (STATIC / "_views.html").read_text(encoding="utf-8")}
    nav = " · ".join(f'<a href="{p.path}"' + (' aria-current="page"' if p is page else "") + f">{p.label}</a>"
                     for p in PAGES)
    return Template((STATIC / "page.html").read_text(encoding="utf-8")).substitute(
        title=page.title, heading=page.title, intro=page.intro, nav=nav, page=page.name, script=page.script,
        plotly=plotly_url(), early=_early_fetch(page.early), body=Template(text).substitute(parts))


def _one_line(exc: ValidationError | RequestValidationError) -> str:
    """Pydantic's first complaint as one sentence: which field, and what it needs."""
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "query"))
    if first.get("type") == "extra_forbidden":
        return f"unknown field {where!r}: docs/web.md lists each endpoint's fields"
    if first.get("type") == "string_pattern_mismatch" and where == "data":
        return "data: not an upload's id: POST the CSV to /api/data and quote the id it answers"
    if first.get("type") == "json_invalid":
        return "the body is not valid JSON: send a JSON object of gradfit fit's options"
    message = first.get("msg", "invalid value").removeprefix("Value error, ")
    return f"{where or 'request'}: {message}" + (f" (got {first['input']!r})" if "input" in first
                                               and not isinstance(first["input"], dict | list) else "")


def _bad(message: str, status: int = 422) -> JSONResponse:
    return JSONResponse({"detail": " ".join(str(message).split())}, status_code=status)


def _json_fields(body: bytes, example: str) -> dict:
    """A request body as a dict of fields, or a `ValueError` saying what to send."""
    try:
        fields = json.loads(body or b"{}")
    except json.JSONDecodeError:
        raise ValueError(f"the body is not valid JSON: send a JSON object such as {example}") from None
    if not isinstance(fields, dict):
        raise ValueError(f"send a JSON object of the request's fields, e.g. {example}")
    return fields


def create_app(*, warm: bool = True) -> FastAPI:
    """The app: its pages, the JSON API, a pool of fit threads, a store of uploads and caches of surfaces."""
    pool = ThreadPoolExecutor(FIT_THREADS, thread_name_prefix="gradfit-fit")
    kept = uploads.Uploads()
    pages = {page.path: render(page) for page in PAGES}

    def the_upload(data_id: str | None):
        return None if data_id is None else kept.get(data_id)

    @functools.lru_cache(maxsize=32)
    def surface_of(req: api.SurfaceRequest) -> dict:
        """`api.surface`, kept for repeat requests (an upload's id names its content: a fair key)."""
        return api.surface(req, the_upload(req.data))

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if warm:  # compile the first click's fit while the page loads; failure here only costs time later
            app.state.warmed = asyncio.get_running_loop().run_in_executor(pool, _warm, surface_of)
        yield
        pool.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(title="gradfit", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)

    def cap(request: Request) -> int:
        return uploads.MAX_BYTES if request.url.path == "/api/data" else MAX_BODY

    def too_large(limit: int) -> JSONResponse:
        if limit == uploads.MAX_BYTES:
            return _bad(f"the upload is over {limit // 1024:,} KiB: upload a sample of the rows", 413)
        return _bad(f"the request body is over {limit // 1024} KiB; a fit request needs a few hundred bytes", 413)

    @app.middleware("http")
    async def limit_size(request: Request, call_next):
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > cap(request)):
            return too_large(cap(request))
        return await call_next(request)

    async def body_of(request: Request) -> bytes | None:
        """The body, or None when it is over the cap (a chunked upload has no content-length to check)."""
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > cap(request):
                return None
            chunks.append(chunk)
        return b"".join(chunks)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        return _bad(_one_line(exc))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception):
        log.exception("unexpected error in %s", request.url.path)
        return _bad(f"internal error ({type(exc).__name__}): please report it with the request that caused it", 500)

    async def in_pool(fn, *args):
        return await asyncio.get_running_loop().run_in_executor(pool, fn, *args)

    async def answer(fn, *args):
        """``fn(*args)`` run in the pool, as JSON; bad input is a one-line 422."""
        try:
            return JSONResponse(await in_pool(fn, *args))
        except _BAD_INPUT as exc:
            return _bad(str(exc))

    @app.post("/api/data")
    async def data(request: Request):
        body = await body_of(request)
        if body is None:
            return too_large(uploads.MAX_BYTES)
        query = request.query_params
        unknown = set(query) - {"x", "y", "name"}
        if unknown:
            return _bad(f"unknown field {sorted(unknown)[0]!r}: an upload takes x, y and name")
        try:
            dataset, columns = await in_pool(uploads.read_csv, body, query.get("x"), query.get("y"), query.get("name"))
        except _BAD_INPUT as exc:
            return _bad(str(exc))
        return JSONResponse({"id": kept.add(body, dataset), "name": f"{dataset.name}.csv", "columns": list(columns),
                             "x": dataset.x_names[0], "y": dataset.y_name, "rows": len(dataset)})

    @app.post("/api/fit")
    async def fit(request: Request):
        body = await body_of(request)
        if body is None:
            return too_large(MAX_BODY)
        try:
            req = api.FitRequest(**_json_fields(body, '{"optimizer": "adam"}'))
            uploaded = the_upload(req.data)
        except ValidationError as exc:
            return _bad(_one_line(exc))
        except (ValueError, GradfitError) as exc:
            return _bad(str(exc))
        try:
            text = await in_pool(_fit_json, req, uploaded)
        except _BAD_INPUT as exc:
            return _bad(str(exc))
        return Response(text, media_type="application/json")

    async def from_query(request: Request, model, work):
        """``work`` on the query read as ``model``; a bad query is a one-line 422."""
        try:
            req = model(**dict(request.query_params))
        except ValidationError as exc:
            return _bad(_one_line(exc))
        return await answer(work, req)

    @app.get("/api/surface")
    async def surface(request: Request):
        return await from_query(request, api.SurfaceRequest, surface_of)

    @app.get("/api/basins")
    async def basins(request: Request):
        return await from_query(request, api.BasinsRequest, _basins)

    @app.post("/api/sweep")
    async def sweep(request: Request):
        try:
            body = await body_of(request)
            if body is None:
                return too_large(MAX_BODY)
            req = api.SweepRequest(**_json_fields(body, '{"optimizer": "gd"}'))
        except ValidationError as exc:
            return _bad(_one_line(exc))
        except ValueError as exc:
            return _bad(str(exc))
        try:
            return await answer(api.lr_sweep, req)
        except ImportError as exc:
            return _bad(f"the learning-rate sweep needs {exc.name}: pip install \"gradfit[web]\"", 501)

    def page_route(html: str):
        async def page():
            return HTMLResponse(html)
        return page

    for path, html in pages.items():
        app.add_api_route(path, page_route(html), methods=["GET"])

    @app.get("/vendor/plotly-{version}.min.js")
    async def plotly_js(request: Request, version: str):
        if plotly_url() != f"/vendor/plotly-{version}.min.js":
            return _bad(f"this server has plotly.js at {plotly_url()}", 404)
        headers = {"Cache-Control": "public, max-age=31536000, immutable", "Vary": "Accept-Encoding"}
        if "gzip" not in request.headers.get("accept-encoding", ""):
            return FileResponse(_plotly_js(), media_type="text/javascript", headers=headers)
        return Response(await in_pool(_plotly_gzip), media_type="text/javascript",
                        headers={**headers, "Content-Encoding": "gzip"})

    @app.get("/static/{name}")
    async def asset(name: str):
        if name not in ASSETS:
            return _bad(f"no asset {name!r} here", 404)
        return FileResponse(STATIC / name, media_type=ASSETS[name], headers={"Cache-Control": "no-cache"})

    return app


def _fit_json(req: api.FitRequest, uploaded=None) -> str:
    return api.fit(req, uploaded).to_json(indent=None)


@functools.lru_cache(maxsize=8)
def _basins(req: api.BasinsRequest) -> dict:
    """`api.basins_answer`, kept: a map takes seconds, and is the same every time."""
    return api.basins_answer(req)


def _warm(surface) -> None:
    """What a first visit needs, in the order it asks: plotly.js gzipped, the surface, the first fit compiled."""
    try:
        _plotly_gzip()
        surface(api.SurfaceRequest())
        _fit_json(DEFAULT_FIT)
    except Exception:  # noqa: BLE001 - warming is an optimisation; a real request reports the error
        log.exception("warming the default fit failed")


@contextmanager
def running(host: str = "127.0.0.1", port: int = 0, *, warm: bool = True):
    """A uvicorn server with the app on a background thread, for tests and benchmarks.

    Yields the base URL (``http://127.0.0.1:PORT``; port 0 takes a free one) once the
    server accepts connections, and stops the server on leaving.
    """
    import threading
    import time

    import uvicorn

    server = uvicorn.Server(uvicorn.Config(create_app(warm=warm), host=host, port=port, log_level="warning",
                                           lifespan="on"))
    thread = threading.Thread(target=server.run, name="gradfit-web", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the web app did not start on {host}:{port}")
        time.sleep(0.02)
    bound = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://{host}:{bound}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)

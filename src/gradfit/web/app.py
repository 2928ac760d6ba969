"""The ASGI app: the playground page, its scripts, and the JSON API.

Fits run in a thread pool, so the event loop keeps serving pages and surfaces while a
long fit computes; the playground's default fit is compiled in the background at
start-up, so the first click does not pay for XLA. Every bad request is a 422 (413 for
one too large) whose ``detail`` is one line naming the problem and the fix.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager
from importlib import resources
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import ValidationError

from ..errors import GradfitError
from . import api

#: A fit request is a few hundred bytes; anything much larger is not one.
MAX_BODY = 16 * 1024
FIT_THREADS = max(2, min(8, os.cpu_count() or 2))
STATIC = Path(str(resources.files(__package__) / "static"))
#: The playground's first fit, compiled at start-up: a click on the Gabor (s = 8) surface with Adam.
DEFAULT_FIT = api.FitRequest(init=[1.0, 10.0], steps=1000, tol=0)

log = logging.getLogger(__name__)
#: What a fit or a surface raises for options it cannot use: the request's fault, so a 422.
_BAD_INPUT = (GradfitError, ValueError, TypeError)


def _plotly_js() -> Path:
    """plotly.js as the installed plotly package ships it, so the page works offline."""
    import plotly

    return Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


def _one_line(exc: ValidationError | RequestValidationError) -> str:
    """Pydantic's first complaint as one sentence: which field, and what it needs."""
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "query"))
    if first.get("type") == "extra_forbidden":
        return f"unknown field {where!r}: docs/web.md lists each endpoint's fields"
    if first.get("type") == "json_invalid":
        return "the body is not valid JSON: send a JSON object of gradfit fit's options"
    message = first.get("msg", "invalid value").removeprefix("Value error, ")
    return f"{where or 'request'}: {message}" + (f" (got {first['input']!r})" if "input" in first
                                               and not isinstance(first["input"], dict | list) else "")


def _bad(message: str, status: int = 422) -> JSONResponse:
    return JSONResponse({"detail": " ".join(str(message).split())}, status_code=status)


def create_app(*, warm: bool = True) -> FastAPI:
    pool = ThreadPoolExecutor(FIT_THREADS, thread_name_prefix="gradfit-fit")

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if warm:  # compile the first click's fit while the page loads; failure here only costs time later
            app.state.warmed = asyncio.get_running_loop().run_in_executor(pool, _warm)
        yield
        pool.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(title="gradfit", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)

    @app.middleware("http")
    async def limit_size(request: Request, call_next):
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY):
            return _bad(f"the request body is over {MAX_BODY // 1024} KiB; a fit request needs a few hundred bytes",
                        413)
        return await call_next(request)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        return _bad(_one_line(exc))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception):
        log.exception("unexpected error in %s", request.url.path)
        return _bad(f"internal error ({type(exc).__name__}): please report it with the request that caused it", 500)

    async def in_pool(fn, *args):
        return await asyncio.get_running_loop().run_in_executor(pool, fn, *args)

    @app.post("/api/fit")
    async def fit(request: Request):
        body = await request.body()
        if len(body) > MAX_BODY:  # a chunked upload has no content-length to check beforehand
            return _bad(f"the request body is over {MAX_BODY // 1024} KiB", 413)
        try:
            fields = json.loads(body or b"{}")
            if not isinstance(fields, dict):
                return _bad("send a JSON object of gradfit fit's options, e.g. {\"optimizer\": \"adam\"}")
            req = api.FitRequest(**fields)
        except json.JSONDecodeError:
            return _bad("the body is not valid JSON: send a JSON object of gradfit fit's options")
        except ValidationError as exc:
            return _bad(_one_line(exc))
        try:
            text = await in_pool(_fit_json, req)
        except _BAD_INPUT as exc:
            return _bad(str(exc))
        return Response(text, media_type="application/json")

    @app.get("/api/surface")
    async def surface(request: Request):
        try:
            req = api.SurfaceRequest(**dict(request.query_params))
        except ValidationError as exc:
            return _bad(_one_line(exc))
        try:
            grid = await in_pool(api.surface, req)
        except _BAD_INPUT as exc:
            return _bad(str(exc))
        return JSONResponse(grid)

    @app.post("/api/sweep")
    async def sweep(request: Request):
        try:
            req = api.SweepRequest(**json.loads(await request.body() or b"{}"))
        except json.JSONDecodeError:
            return _bad("the body is not valid JSON: send a JSON object such as {\"optimizer\": \"gd\"}")
        except ValidationError as exc:
            return _bad(_one_line(exc))
        except TypeError:
            return _bad("send a JSON object of the sweep's fields, e.g. {\"optimizer\": \"gd\"}")
        try:
            rows = await in_pool(api.lr_sweep, req)
        except ImportError as exc:
            return _bad(f"the learning-rate sweep needs {exc.name}: pip install \"gradfit[web]\"", 501)
        except _BAD_INPUT as exc:
            return _bad(str(exc))
        return JSONResponse(rows)

    @app.get("/lr")
    async def learning_rate():
        return FileResponse(STATIC / "lr.html")

    @app.get("/")
    async def playground():
        return FileResponse(STATIC / "index.html")

    @app.get("/compare")
    async def compare():
        return FileResponse(STATIC / "compare.html")

    @app.get("/vendor/plotly.min.js")
    async def plotly_js():
        return FileResponse(_plotly_js(), media_type="text/javascript",
                            headers={"Cache-Control": "public, max-age=86400"})

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def _fit_json(req: api.FitRequest) -> str:
    return api.fit(req).to_json(indent=None)


def _warm() -> None:
    try:
        _fit_json(DEFAULT_FIT)
        api.surface(api.SurfaceRequest())
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

"""gradfit's web app: a playground for the lecture and a JSON API that is the CLI's contract.

`gradfit serve` runs `create_app()` on uvicorn, bound to 127.0.0.1 unless told otherwise.

- `gradfit.web.api`: the request models and the work behind each endpoint (a fit, a loss
  surface), written over gradfit's public API only.
- `gradfit.web.app`: the ASGI app (FastAPI): routes, limits, the thread pool that runs fits,
  the compile warmed at start-up, and the static page with its scripts.

FastAPI and uvicorn come with ``pip install "gradfit[web]"`` (plotly, whose plotly.js the
pages load, is a dependency of gradfit itself); ``import gradfit`` imports none of them.
"""

from __future__ import annotations

from typing import Any


def create_app(*, warm: bool = True) -> Any:
    """The ASGI app; ``warm`` compiles the playground's default fit in the background at start-up."""
    from .app import create_app as build

    return build(warm=warm)


def serve(host: str = "127.0.0.1", port: int = 8000, *, warm: bool = True) -> None:
    """Run the app on uvicorn until Ctrl-C."""
    import uvicorn

    uvicorn.run(create_app(warm=warm), host=host, port=port, log_level="warning")

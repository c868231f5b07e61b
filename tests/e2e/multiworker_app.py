"""The app the multi-worker tests run under gunicorn and ``uvicorn --workers``.

Every answer names the worker (its pid), so a test knows where each request went.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from asgi_mcp_metrics import BackendMonitor
from asgi_mcp_metrics.starlette import instrument

#: This worker's tool cache; its size is reported through ``track_tool_cache``.
CACHE: dict[str, str] = {}


async def work(request: Request) -> Response:
    return JSONResponse({"pid": os.getpid()})


async def hold(request: Request) -> Response:
    """Sends the pid, then stays open until the client leaves: a request in flight, or with
    ``?kind=sse`` a stream."""
    async def body() -> AsyncIterator[bytes]:
        yield f"data: {os.getpid()}\n\n".encode()
        await asyncio.Event().wait()

    kind = request.query_params.get("kind", "plain")
    return StreamingResponse(body(), media_type="text/event-stream" if kind == "sse"
                             else "text/plain")


async def cache(request: Request) -> Response:
    for _ in range(int(request.query_params.get("add", "1"))):
        CACHE[f"tool{len(CACHE)}"] = "schema"
    monitor.cache_miss()
    return JSONResponse({"pid": os.getpid(), "size": len(CACHE)})


app = instrument(Starlette(routes=[Route("/work", work), Route("/hold", hold),
                                   Route("/cache", cache)]))
monitor = BackendMonitor("upstream", transport="stdio")
monitor.track_tool_cache(lambda: len(CACHE))

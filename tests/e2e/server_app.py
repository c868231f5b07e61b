"""The app every ASGI server serves in ``test_servers.py``: plain routes, SSE streams, a websocket
and an ``MCPServer`` streamable HTTP endpoint, instrumented, importable as
``tests.e2e.server_app:make_app`` by a server running in a process of its own.

Its metrics are read over HTTP at ``/metrics`` while it runs; after the lifespan shutdown has
finished (and with it the MCP tracker's shutdown), the final exposition is written to the file
named by ``$E2E_METRICS_DUMP``, so a test can read what a child process recorded last.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from mcp.server import MCPServer
from prometheus_client import CollectorRegistry, Counter, generate_latest
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from asgi_mcp_metrics.starlette import instrument

from .tools import register_common_tools

DUMP_ENV = "E2E_METRICS_DUMP"
LIFESPAN = "e2e_lifespan_events_total"
TICKS = 100


async def item(request: Request) -> JSONResponse:
    return JSONResponse({"id": request.path_params["item_id"]})


async def upload(request: Request) -> JSONResponse:
    return JSONResponse({"size": len(await request.body())})


async def events(request: Request) -> StreamingResponse:
    count = int(request.query_params.get("n", "3"))

    async def frames() -> AsyncIterator[str]:
        for i in range(count):
            yield f"data: {i}\n\n"
            await asyncio.sleep(0.02)

    return StreamingResponse(frames(), media_type="text/event-stream")


async def echo(websocket: WebSocket) -> None:
    """Echoes text until the client leaves, or closes the socket itself on ``bye``."""
    await websocket.accept()
    async for text in websocket.iter_text():
        if text == "bye":
            await websocket.close()
            return
        await websocket.send_text(text)


class Ticks:
    """A raw ASGI stream that never listens for ``http.disconnect``: it learns that the client
    left only if the server's ``send`` raises."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/event-stream")]})
        for i in range(TICKS):
            await send({"type": "http.response.body", "body": b"data: %d\n\n" % i,
                        "more_body": True})
            await asyncio.sleep(0.01)
        await send({"type": "http.response.body", "body": b""})


def build_app(dump_path: str) -> Any:
    registry = CollectorRegistry()
    seen = Counter(LIFESPAN, "Lifespan events the app saw.", ["event"], registry=registry)
    server = MCPServer("servers")
    register_common_tools(server)
    server.custom_route("/items/{item_id}", methods=["GET"])(item)
    server.custom_route("/upload", methods=["POST"])(upload)
    server.custom_route("/events", methods=["GET"])(events)
    app = server.streamable_http_app()
    app.router.routes.extend([Route("/ticks", Ticks()), WebSocketRoute("/ws", echo)])
    sdk_lifespan = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(inner: Any) -> AsyncIterator[Any]:
        seen.labels("startup").inc()
        context: AbstractAsyncContextManager[Any] = sdk_lifespan(inner)
        async with context as state:
            yield state
        seen.labels("shutdown").inc()

    app.router.lifespan_context = lifespan
    instrument(app, registry=registry)
    return dump_on_shutdown(app, registry, dump_path)


def dump_on_shutdown(app: Any, registry: CollectorRegistry, path: str) -> Any:
    """Outside the middleware: its shutdown (ending open sessions) has run when this sees
    ``lifespan.shutdown.complete``."""

    async def wrapped(scope: Any, receive: Any, send: Any) -> None:
        async def watch(message: Any) -> None:
            if message["type"] == "lifespan.shutdown.complete":
                with open(path, "wb") as out:
                    out.write(generate_latest(registry))
            await send(message)

        await app(scope, receive, watch if scope["type"] == "lifespan" else send)

    return wrapped


def make_app() -> Any:
    return build_app(os.environ[DUMP_ENV])

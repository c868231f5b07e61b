"""An instrumented MCP server with live metrics, and a small client that keeps calling it.

    python examples/demo.py            # then open http://127.0.0.1:8000/metrics/ui

The server is the official ``mcp`` SDK's ``MCPServer`` served over Streamable HTTP at ``/mcp``,
plus a plain JSON route and a Server-Sent Events route.  ``instrument(app)`` adds the metrics
middleware, the ``/metrics`` endpoint and the operator surfaces (the live dashboard at
``/metrics/ui``, in-flight requests, totals, and here the deep ``/health``).  The ``search``
tool consults a pretend upstream index through a ``BackendMonitor``, so the dashboard has a
backend to show.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import random
import sys
import threading
import time
from collections.abc import AsyncIterator

import uvicorn
from mcp import Client
from mcp.server import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from asgi_mcp_metrics import BackendMonitor
from asgi_mcp_metrics.starlette import instrument

mcp = MCPServer("demo")
index = BackendMonitor("search-index", transport="memory")


@mcp.tool()
def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


@mcp.tool()
async def search(query: str) -> list[str]:
    """A slow tool: 20-300 ms, so the latency histogram has something to show."""
    with index.call("tools/call", tool="search"):
        await asyncio.sleep(random.uniform(0.02, 0.3))
    return [f"{query}-{i}" for i in range(3)]


@mcp.tool()
def flaky(n: int) -> str:
    """Fails for every multiple of four: a tool error inside an HTTP 200."""
    if n % 4 == 0:
        raise ToolError(f"{n} is a multiple of four")
    return "fine"


@mcp.prompt()
def summarize(text: str) -> str:
    """Ask for a summary."""
    return f"Summarize: {text}"


async def ready(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


async def ticks(request: Request) -> StreamingResponse:
    """A Server-Sent Events stream: counted as a stream, not as a slow request."""

    async def events() -> AsyncIterator[str]:
        for i in range(5):
            yield f"data: tick {i}\n\n"
            await asyncio.sleep(0.2)

    return StreamingResponse(events(), media_type="text/event-stream")


def build_app() -> object:
    app = mcp.streamable_http_app()
    app.router.routes += [Route("/ready", ready), Route("/ticks", ticks)]
    instrument(app, surfaces_health=True)
    index.connected("startup")
    return app


async def drive(url: str, stop: threading.Event) -> None:
    """A client session that calls every tool, over and over."""
    n = 0
    while not stop.is_set():
        with contextlib.suppress(Exception):
            async with Client(f"{url}/mcp", mode="legacy") as client:
                await client.list_tools()
                for _ in range(20):
                    if stop.is_set():
                        return
                    n += 1
                    await client.call_tool("add", {"a": n, "b": 1})
                    await client.call_tool("search", {"query": "mcp"})
                    await client.call_tool("flaky", {"n": n})
                    await client.get_prompt("summarize", {"text": "metrics"})
                    await asyncio.sleep(0.2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--no-client", action="store_true", help="serve only; call it yourself")
    parser.add_argument("--duration", type=float, default=0,
                        help="stop after this many seconds (0: run until Ctrl-C)")
    args = parser.parse_args(argv)
    # Keep the terminal for what matters here: the SDK and the HTTP client log every call.
    for noisy in ("mcp", "httpx", "httpx2", "uvicorn.error"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    server = uvicorn.Server(uvicorn.Config(build_app(), host=args.host, port=args.port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            return 1
        time.sleep(0.05)
    url = f"http://{args.host}:{args.port}"
    print(f"Dashboard:    {url}/metrics/ui", flush=True)
    print(f"MCP endpoint: {url}/mcp", flush=True)
    print(f"Metrics:      {url}/metrics", flush=True)

    stop = threading.Event()
    client = None
    if not args.no_client:
        client = threading.Thread(target=lambda: asyncio.run(drive(url, stop)), daemon=True)
        client.start()
        print("A demo client is calling the tools; watch mcp_tool_calls_total grow.", flush=True)
    try:
        deadline = time.monotonic() + args.duration if args.duration else None
        while thread.is_alive() and (deadline is None or time.monotonic() < deadline):
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    stop.set()
    if client is not None:
        client.join(10)
    server.should_exit = True
    thread.join(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A small MCP proxy: one Streamable HTTP endpoint in front of two backends, with metrics.

The proxy lists and forwards tools of an HTTP backend and of a stdio backend it starts as a
child process, checks every call against an ACL keyed by the ``X-Client-Id`` header, caches
the backends' tool lists, connects to backends lazily and disconnects idle ones.

Metrics, all on one registry, served at ``/metrics``:

* ``instrument(app)`` — HTTP requests, MCP sessions and streams, MCP operations on the wire;
* ``@instrument_tool`` on the forwarding function — calls by tool, backend, outcome, identity;
* ``@instrument_acl`` on the decision function — allow / deny by identity, tool and rule;
* one ``BackendMonitor`` per backend — connects, idle reaps, lifetimes, client-call latency,
  tool-cache size and lookups, the child process.
"""

from __future__ import annotations

import sys
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.shared.exceptions import MCPError
from mcp_types import (
    INVALID_PARAMS,
    CallToolRequestParams,
    CallToolResult,
    ListToolsResult,
    PaginatedRequestParams,
    TextContent,
)
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from asgi_mcp_metrics import LLMMetrics, current_identity, instrument_tool, use_identity
from asgi_mcp_metrics.starlette import instrument

from .acl import AccessDenied, AccessPolicy
from .pool import Backend, BackendConfig, BackendPool, Clock

VERSION = "0.4.3"
IDENTITY_HEADER = "X-Client-Id"
NOTES_SERVER = Path(__file__).with_name("notes_server.py")

DEFAULT_ACL: Mapping[str, Sequence[str]] = {
    "ops": ["*"],
    "analyst": ["get_*", "list_*", "read_*"],
}


def default_backends(weather_url: str) -> list[BackendConfig]:
    return [
        BackendConfig("weather", url=weather_url),
        BackendConfig("notes", command=(sys.executable, str(NOTES_SERVER))),
    ]


@dataclass
class ProxyConfig:
    backends: Sequence[BackendConfig]
    acl: Mapping[str, Sequence[str]] = field(default_factory=lambda: dict(DEFAULT_ACL))
    idle_timeout: float = 30.0
    """Seconds without calls after which the reaper disconnects a backend."""
    reap_interval: float = 5.0
    """Seconds between two runs of the idle reaper."""
    clock: Clock = time.monotonic


class ToolProxy:
    """The MCP handlers of the proxy."""

    def __init__(self, pool: BackendPool, policy: AccessPolicy,
                 registry: CollectorRegistry | None) -> None:
        self.pool = pool
        self.policy = policy
        # Decorated at run time, for this proxy's registry.  The call handler routes first,
        # so only real tools reach ``forward`` and become label values; a call of an unknown
        # tool is answered by the handler and counted by the wire layer.
        self.forward = instrument_tool(
            tool=lambda self, backend, name, arguments: name,
            backend=lambda self, backend, name, arguments: backend.name,
            registry=registry,
        )(self._forward)

    async def list_tools(self, ctx: ServerRequestContext[Any, Any],
                         params: PaginatedRequestParams | None) -> ListToolsResult:
        return ListToolsResult(tools=await self.pool.list_tools())

    async def call_tool(self, ctx: ServerRequestContext[Any, Any],
                        params: CallToolRequestParams) -> CallToolResult:
        identity = client_identity(ctx)
        # The proxy authenticates callers itself, so it publishes who is calling for the
        # metrics (tool calls by identity) of everything below.
        with use_identity(identity):
            backend = await self.pool.route(params.name)
            if backend is None:
                raise MCPError(code=INVALID_PARAMS, message=f"Unknown tool: {params.name}")
            try:
                return await self.forward(backend, params.name, params.arguments or {})
            except AccessDenied as denied:
                return CallToolResult(content=[TextContent(type="text", text=str(denied))],
                                      is_error=True)

    async def _forward(self, backend: Backend, name: str,
                       arguments: dict[str, Any]) -> CallToolResult:
        """Check the ACL, then call the tool on its backend (connecting lazily)."""
        self.policy.check(current_identity(), name, backend.name)
        async with backend.use(self.pool.tasks) as client:
            return await client.call_tool(name, arguments)


def client_identity(ctx: ServerRequestContext[Any, Any]) -> str | None:
    request = ctx.request
    if isinstance(request, Request):
        return request.headers.get(IDENTITY_HEADER) or None
    return None


def build_proxy(config: ProxyConfig, *, registry: CollectorRegistry | None = None) -> Starlette:
    """The proxy as a Starlette app (MCP at ``/mcp``, ``/health``, ``/metrics``)."""
    # The handlers, the health check and the lifespan use ``pool`` and ``proxy``, which are
    # created once the app is instrumented (see below).
    async def list_tools(ctx: ServerRequestContext[Any, Any],
                         params: PaginatedRequestParams | None) -> ListToolsResult:
        return await proxy.list_tools(ctx, params)

    async def call_tool(ctx: ServerRequestContext[Any, Any],
                        params: CallToolRequestParams) -> CallToolResult:
        return await proxy.call_tool(ctx, params)

    server = Server("mcp-proxy", version=VERSION, on_list_tools=list_tools,
                    on_call_tool=call_tool)
    mcp_app = server.streamable_http_app(streamable_http_path="/mcp")

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({
            "status": "ok",
            "backends_configured": len(pool.backends),
            "backends_connected": sum(b.client is not None for b in pool.backends),
            "tools": sum(len(b.tools or ()) for b in pool.backends),
            "version": VERSION,
        })

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with pool.running(), server.session_manager.run():
            yield

    app = Starlette(routes=[Route("/health", health), Mount("/", app=mcp_app)],
                    lifespan=lifespan)
    # Instrument first: the pool's monitors and the ACL then bind to the app's metrics at
    # once, so every backend shows as down and the ACL's allow/deny series exist at 0.
    instrument(app, registry=registry, identity=f"header:{IDENTITY_HEADER}")
    pool = BackendPool(config.backends, idle_timeout=config.idle_timeout,
                       reap_interval=config.reap_interval, registry=registry,
                       clock=config.clock)
    proxy = ToolProxy(pool, AccessPolicy(config.acl, registry=registry), registry)
    LLMMetrics(registry=registry).set_build_info(VERSION, commit="example")
    return app

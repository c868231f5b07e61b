"""The official ``mcp`` SDK's Streamable HTTP app, bare and wrapped, and the tools/call requests.

The server is an ``MCPServer`` with one trivial tool, served stateless with JSON responses (the
cheapest configuration the SDK has, so our share of the per-call time is as large as it gets).
Two protocol eras are exercised: the handshake era (``2025-11-25``; stateless mode needs no
``initialize``) and the modern one (``2026-07-28``: ``Mcp-Method``/``Mcp-Name`` headers and the
protocol version in ``params._meta``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry
from starlette.applications import Starlette

from apps import (
    OPENTELEMETRY,
    PFI,
    STARLETTE_EXPORTER,
    Variant,
    build_app,
    build_variant,
    internal_errors,
    sample_total,
)
from asgi_driver import ASGIApp, Reply, Request

TOOL = "add"
MCP_PATH = "/mcp"

MCP_BARE = "mcp SDK, bare"
MCP_HTTP_ONLY = "asgi_mcp_metrics, mcp_parsing=off"
MCP_PARSED = "asgi_mcp_metrics, mcp_parsing={mode}"
HANDSHAKE_ERA = "2025-11-25"
MODERN_ERA = "2026-07-28"
ERAS = (HANDSHAKE_ERA, MODERN_ERA)
#: The peers, each added to the MCP app the way its documentation says; they know nothing of
#: MCP and count every HTTP request.
MCP_PEERS = (PFI, STARLETTE_EXPORTER, OPENTELEMETRY)


def parsed_variant_name(mode: str) -> str:
    return MCP_PARSED.format(mode=mode)


def mcp_variant_names(mode: str, *, peers: bool = False) -> tuple[str, ...]:
    """Bare, HTTP metrics only, HTTP plus MCP parsing in ``mode`` (when it is not off), and
    with ``peers`` the peers."""
    names = (MCP_BARE, MCP_HTTP_ONLY) if mode == "off" else (
        MCP_BARE, MCP_HTTP_ONLY, parsed_variant_name(mode))
    return names + MCP_PEERS if peers else names


def counts_every_request(name: str) -> bool:
    """Whether variant ``name`` counts HTTP requests (tools/list too), not tool calls."""
    return name == MCP_HTTP_ONLY or name in MCP_PEERS


def _sdk_server() -> Any:
    from mcp.server import MCPServer

    # WARNING, not the SDK's INFO default: a log line per call would measure the log handler.
    server = MCPServer("bench", log_level="WARNING")

    @server.tool()
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    return server


def build_sdk_app() -> Starlette:
    """A fresh SDK app (each needs its own: a session manager runs only once)."""
    app: Starlette = _sdk_server().streamable_http_app(json_response=True, stateless_http=True)
    return app


def build_session_app() -> Starlette:
    """The SDK app with sessions (its default, stateful mode), JSON answers to POSTs."""
    app: Starlette = _sdk_server().streamable_http_app(json_response=True)
    return app


def build_mixed_app() -> Starlette:
    """The 51-route app of :mod:`apps` with the SDK's ``/mcp`` route (and its lifespan) added:
    one app serving items, SSE streams and MCP calls, for the mixed workload."""
    sdk = build_sdk_app()
    return build_app(extra_routes=sdk.routes, lifespan=sdk.router.lifespan_context)


def build_mcp_variant(name: str, *, mcp_parsing: str,
                      base: Callable[[], ASGIApp] = build_sdk_app,
                      recorded: Callable[[CollectorRegistry], int] | None = None) -> Variant:
    """``name`` is one of :func:`mcp_variant_names`; the tracked variant uses ``mcp_parsing``.

    ``base`` makes the app that is wrapped (or left bare): the real SDK app by default.  The
    peers need a Starlette app (as the SDK's is) to be added the way their documentation says.
    ``recorded`` reads what the parsed variant recorded (default: its tools/call operations).
    """
    from asgi_mcp_metrics import MetricsMiddleware

    app = base()
    if name == MCP_BARE:
        return Variant(name, app, lambda: None)
    if name in MCP_PEERS:
        if not isinstance(app, Starlette):
            raise TypeError(f"{name} is added to a Starlette app, not to {app!r}")
        return build_variant(name, app=app)
    registry = CollectorRegistry()
    if name == MCP_HTTP_ONLY:
        wrapped = MetricsMiddleware(app, registry=registry, mcp_parsing="off")
        return Variant(name, wrapped,
                       lambda: sample_total(registry, "http_server_request_duration_seconds_count"),
                       internal_errors(registry))
    if name != parsed_variant_name(mcp_parsing):
        raise ValueError(f"unknown MCP variant {name!r}")
    wrapped = MetricsMiddleware(app, registry=registry, mcp_parsing=mcp_parsing)
    read = tool_calls_recorded if recorded is None else recorded
    return Variant(name, wrapped, lambda: read(registry), internal_errors(registry))


def tool_calls_recorded(registry: CollectorRegistry) -> int:
    """tools/call operations of :data:`TOOL` in the MCP operation histogram."""
    total = 0.0
    for family in registry.collect():
        for sample in family.samples:
            if (sample.name == "mcp_server_operation_duration_seconds_count"
                    and sample.labels.get("mcp_method_name") == "tools/call"
                    and sample.labels.get("gen_ai_tool_name") == TOOL):
                total += sample.value
    return round(total)


def jsonrpc_request(era: str, method: str, params: dict[str, Any], *,
                    session_id: str | None = None, notification: bool = False) -> Request:
    """A POST to the MCP endpoint as the SDK's client would send it in ``era``."""
    headers = [
        (b"host", b"127.0.0.1:8000"),
        (b"content-type", b"application/json"),
        (b"accept", b"application/json, text/event-stream"),
        (b"mcp-protocol-version", era.encode("ascii")),
    ]
    if era == MODERN_ERA:
        params = {**params, "_meta": {
            "io.modelcontextprotocol/protocolVersion": era,
            "io.modelcontextprotocol/clientInfo": {"name": "bench", "version": "1.0"},
            "io.modelcontextprotocol/clientCapabilities": {},
        }}
        headers.append((b"mcp-method", method.encode("ascii")))
        if "name" in params:
            headers.append((b"mcp-name", str(params["name"]).encode("ascii")))
    if session_id is not None:
        headers.append((b"mcp-session-id", session_id.encode("ascii")))
    message: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "params": params}
    if not notification:
        message["id"] = 1
    body = json.dumps(message, separators=(",", ":")).encode("utf-8")
    headers.append((b"content-length", str(len(body)).encode("ascii")))
    return Request("POST", MCP_PATH, headers=tuple(headers), body=body)


def tool_call(era: str) -> Request:
    return jsonrpc_request(era, "tools/call", {"name": TOOL, "arguments": {"a": 1, "b": 2}})


def tools_list(era: str) -> Request:
    return jsonrpc_request(era, "tools/list", {})


def initialize() -> Request:
    """A handshake-era ``initialize``, which opens a session on a stateful server."""
    return jsonrpc_request(HANDSHAKE_ERA, "initialize", {
        "protocolVersion": HANDSHAKE_ERA, "capabilities": {},
        "clientInfo": {"name": "bench", "version": "1.0"}})


def initialized(session_id: str) -> Request:
    return jsonrpc_request(HANDSHAKE_ERA, "notifications/initialized", {},
                           session_id=session_id, notification=True)


def session_stream(session_id: str) -> Request:
    """The GET that opens a session's stream of server-to-client messages."""
    return Request("GET", MCP_PATH, headers=(
        (b"host", b"127.0.0.1:8000"), (b"accept", b"text/event-stream"),
        (b"mcp-protocol-version", HANDSHAKE_ERA.encode("ascii")),
        (b"mcp-session-id", session_id.encode("ascii"))))


def check_tool_result(reply: Reply) -> str | None:
    if reply.status != 200:
        return f"status {reply.status}"
    return None


def check_tool_body(reply: Reply) -> str | None:
    """The full check, for a reply read with its body: a successful result of 1 + 2."""
    problem = check_tool_result(reply)
    if problem is not None:
        return problem
    answer = json.loads(reply.body)
    result = answer.get("result", {})
    if result.get("isError") is not False or result.get("structuredContent") != {"result": 3}:
        return f"unexpected answer {answer!r}"
    return None


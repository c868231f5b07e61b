"""The MCP wire tracker on the legacy HTTP+SSE transport: answers matched across connections.

Driven in-process with hand-made ASGI messages through ``MetricsMiddleware``; every test
asserts exact metric values.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from tests.asgi import total, value
from tests.helpers import FakeClock, tool_calls
from tests.mcp.wire_server import (
    PARSE_LIMITS,
    PROTOCOL_ERRORS,
    REQUESTS,
    SSE_GET,
    STREAMABLE,
    FakeServer,
    LegacyServer,
    StreamClient,
    assert_idle,
    dumps,
    handshake,
    instrument,
    legacy_post,
    mcp_handler,
    notification,
    operations,
    post,
    request,
    requests_of,
    settle,
    tracker_of,
)

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("answer_first", [False, True])
async def test_legacy_sse_answers_matched_across_connections(
        registry: CollectorRegistry, clock: FakeClock, answer_first: bool) -> None:
    server = LegacyServer(answer_first=answer_first, clock=clock, seconds=0.3)
    mw = instrument(registry, server)
    client = StreamClient()
    stream = asyncio.ensure_future(client.run(mw, dict(SSE_GET)))
    await server.stream_open.wait()
    assert value(registry, "mcp_server_sessions_active", transport="sse") == 1
    assert value(registry, "http_server_streams_active", http_route="",
                 stream_kind="sse_legacy") == 1

    await legacy_post(mw, request("initialize", 0, protocolVersion="2024-11-05"))
    await legacy_post(mw, notification("notifications/initialized"))
    await legacy_post(mw, request("tools/list", 1))
    await legacy_post(mw, request("tools/call", 2, name="add"))
    await legacy_post(mw, request("tools/call", 3, name="boom"))
    await settle()
    assert requests_of(registry, "tools/call", "ok", "sse") == 1
    assert tool_calls(registry, "boom", "tool_error") == 1
    # Latency runs from the POST's arrival to the answer's frame on the other connection.
    labels = {"tool": "add", "version": "2025-11-25"}
    assert operations(registry, "tools/call", suffix="_bucket", le="0.2", **labels) == 0
    assert operations(registry, "tools/call", suffix="_bucket", le="0.5", **labels) == 1
    # The POSTs themselves are quick 202s on the HTTP side.
    assert value(registry, "http_server_request_duration_seconds_count",
                 http_request_method="POST", http_route="",
                 http_response_status_code="202", error_type="") == 5

    # A request still waiting when the stream goes away is cancelled with it.
    server.answer_first = False
    pending = asyncio.Event()
    original = server.frames.put

    async def swallow(chunk: bytes | None) -> None:
        pending.set()

    server.frames.put = swallow  # type: ignore[method-assign]
    await legacy_post(mw, request("tools/call", 4, name="add"))
    server.frames.put = original  # type: ignore[method-assign]
    assert tracker_of(mw).sessions.open_count() == 1
    client.leave.set()
    await stream
    assert value(registry, "mcp_server_sessions_ended_total", transport="sse",
                 end_reason="client_disconnect") == 1
    assert operations(registry, "tools/call", error_type="client_disconnect", **labels) == 1
    assert value(registry, "http_server_streams_total", http_route="",
                 stream_kind="sse_legacy", end_reason="client_disconnect") == 1
    assert total(registry, PARSE_LIMITS) == 0
    assert_idle(registry, mw)
    assert tracker_of(mw).sessions.live == {}


async def test_legacy_notifications_cancelled(registry: CollectorRegistry) -> None:
    server = LegacyServer()
    mw = instrument(registry, server)
    client = StreamClient()
    stream = asyncio.ensure_future(client.run(mw, dict(SSE_GET)))
    await server.stream_open.wait()
    original = server.frames.put

    async def swallow(chunk: bytes | None) -> None:
        pass  # the server is still working on it

    server.frames.put = swallow  # type: ignore[method-assign]
    await legacy_post(mw, request("tools/call", 8, name="add"))
    server.frames.put = original  # type: ignore[method-assign]
    # The session's own table holds the request; the one shared by sessions with nothing in
    # flight stays empty.
    from asgi_mcp_metrics.mcp import sessions as sessions_module

    assert tracker_of(mw).sessions.open_count() == 1
    assert sessions_module._NOTHING_OPEN == {}
    await legacy_post(mw, notification("notifications/cancelled", requestId=8, reason="user"))
    assert requests_of(registry, "tools/call", "cancelled", "sse") == 1
    assert tracker_of(mw).sessions.open_count() == 0
    client.leave.set()
    await stream
    # Cancelled once, not again when the stream closes.
    assert total(registry, REQUESTS) == 1
    assert_idle(registry, mw)


async def test_legacy_redirect_is_not_an_operation(registry: CollectorRegistry) -> None:
    server = LegacyServer()
    mw = instrument(registry, server)
    ex = await legacy_post(mw, request("tools/call", 2, name="add"), path="/messages")
    assert ex.status == 307
    ex = await post(mw, dumps(request("tools/call", 2, name="add")), path="/messages",
                    query=b"session_id=a1b2c3", version="2026-07-28",
                    extra=[(b"mcp-method", b"tools/call"), (b"mcp-name", b"add")])
    assert ex.status == 307
    assert total(registry, REQUESTS) == 0
    assert total(registry, PROTOCOL_ERRORS) == 0
    assert total(registry, PARSE_LIMITS) == 0


async def test_legacy_unknown_session_and_untracked_stream(registry: CollectorRegistry) -> None:
    server = LegacyServer()
    mw = instrument(registry, server)
    ex = await legacy_post(mw, request("tools/call", 2, name="add"), session="zzz")
    assert ex.status == 404
    assert value(registry, "mcp_server_session_not_found_total", transport="sse") == 1
    assert requests_of(registry, "tools/call", "rejected", "sse") == 1
    # A 202 for a session whose stream we never saw open: its answer cannot be seen.
    await legacy_post(mw, request("ping", 3))
    assert value(registry, PARSE_LIMITS, where="response", reason="no_stream") == 1
    assert total(registry, REQUESTS) == 1
    assert_idle(registry, mw)


async def test_lifespan_shutdown_ends_open_sessions(registry: CollectorRegistry) -> None:
    inner = FakeServer(mcp_handler())

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                kind = message["type"].rsplit(".", 1)[-1]
                await send({"type": f"{message['type']}.complete"})
                if kind == "shutdown":
                    return
        await inner(scope, receive, send)

    mw = instrument(registry, app)
    server = LegacyServer()
    legacy = instrument(registry, server)
    await handshake(mw)
    client = StreamClient()
    stream = asyncio.ensure_future(client.run(legacy, dict(SSE_GET)))
    await server.stream_open.wait()
    messages = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return next(messages)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await mw({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send)
    assert sent == [{"type": "lifespan.startup.complete"}, {"type": "lifespan.shutdown.complete"}]
    assert value(registry, "mcp_server_sessions_ended_total", transport=STREAMABLE,
                 end_reason="shutdown") == 1
    assert value(registry, "mcp_server_sessions_active", transport=STREAMABLE) == 0
    # The legacy stream ends when the server closes it.
    await server.frames.put(None)
    await stream
    assert value(registry, "mcp_server_sessions_ended_total", transport="sse",
                 end_reason="shutdown") == 1
    assert total(registry, "mcp_server_sessions_active") == 0

"""The MCP wire tracker on the handshake era's Streamable HTTP: sessions, outcomes, cancellation.

Driven in-process with hand-made ASGI messages through ``MetricsMiddleware``; every test
asserts exact metric values.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from asgi_mcp_metrics.mcp.exchange import McpExchange
from asgi_mcp_metrics.mcp.named import NamedCall
from tests.asgi import call, http_scope, total, value
from tests.helpers import FakeClock, tool_calls
from tests.mcp.wire_server import (
    ACCEPT_BOTH,
    MODERN,
    NOTIFICATIONS,
    OPERATION,
    OVERFLOW,
    PARSE_LIMITS,
    PROTOCOL_ERRORS,
    REQUESTS,
    SESSION,
    SSE_TYPE,
    STREAMABLE,
    TOOL_CALLS,
    FakeServer,
    Reply,
    assert_idle,
    assert_released,
    dumps,
    failure,
    frame,
    handshake,
    instrument,
    json_reply,
    mcp_handler,
    modern_headers,
    notification,
    operations,
    post,
    request,
    requests_of,
    result,
    sse_reply,
    tracker_of,
)

pytestmark = pytest.mark.anyio


async def test_session_lifecycle_from_initialize_to_delete(
        registry: CollectorRegistry, clock: FakeClock) -> None:
    server = FakeServer(mcp_handler(tick=clock, seconds=0.03))
    mw = instrument(registry, server)
    await handshake(mw)
    assert value(registry, "mcp_server_sessions_started_total", transport=STREAMABLE) == 1
    assert value(registry, "mcp_server_sessions_active", transport=STREAMABLE) == 1
    # The client asked for 2025-06-18; the server's answer decides the label.
    assert operations(registry, "initialize") == 1
    assert operations(registry, "initialize", version="2025-06-18") == 0
    assert operations(registry, "initialize", suffix="_bucket", le="0.02") == 0
    assert operations(registry, "initialize", suffix="_bucket", le="0.05") == 1
    assert value(registry, NOTIFICATIONS, mcp_method_name="notifications/initialized",
                 direction="in") == 1
    assert requests_of(registry, "tools/list", "ok") == 1

    clock.now += 100
    delete = http_scope("/mcp", "DELETE", headers=[(b"mcp-session-id", SESSION.encode())])
    await call(mw, delete)
    assert value(registry, "mcp_server_sessions_ended_total", transport=STREAMABLE,
                 end_reason="client_delete") == 1
    assert value(registry, "mcp_server_session_duration_seconds_bucket", transport=STREAMABLE,
                 end_reason="client_delete", le="60.0") == 0
    assert value(registry, "mcp_server_session_duration_seconds_bucket", transport=STREAMABLE,
                 end_reason="client_delete", le="300.0") == 1
    assert_idle(registry, mw)
    assert tracker_of(mw).sessions.live == {}


async def test_tool_outcomes_labels_and_exact_counts(registry: CollectorRegistry) -> None:
    mw = instrument(registry, FakeServer(mcp_handler(sse=True)))
    await handshake(mw)
    for i, name in enumerate(["add", "add", "add", "boom", "nope"], start=10):
        await post(mw, dumps(request("tools/call", i, name=name, arguments={})), session=SESSION)
    assert tool_calls(registry, "add", "ok") == 3
    assert tool_calls(registry, "boom", "tool_error") == 1
    # Not in any tools/list result: an attacker-chosen name never becomes a label.
    assert tool_calls(registry, "_OTHER", "tool_error") == 1
    assert total(registry, TOOL_CALLS) == 5
    assert value(registry, OVERFLOW, metric=OPERATION, label="gen_ai_tool_name") == 1
    assert operations(registry, "tools/call", tool="add") == 3
    assert operations(registry, "tools/call", tool="boom", error_type="tool_error") == 1
    assert total(registry, OPERATION + "_count", mcp_method_name="tools/call") == 5
    assert requests_of(registry, "tools/call", "tool_error") == 2
    # SSE answers on POST are streams, not requests.
    assert value(registry, "http_server_streams_total", http_route="",
                 stream_kind="post_response", end_reason="completed") == 7
    assert_idle(registry, mw)


async def test_jsonrpc_error_codes_become_error_type(registry: CollectorRegistry) -> None:
    replies = iter([failure(1, -32602, "Invalid params"), failure(2, 0, "SDK 1.x"),
                    failure(3, 12345, "custom"), failure(4, -32603)])
    mw = instrument(registry, FakeServer(lambda body, scope: json_reply(next(replies))))
    for i, method in enumerate(["tools/call", "resources/read", "prompts/get", "ping"], 1):
        await post(mw, dumps(request(method, i, name="add", uri="file:///secret/1")))
    assert operations(registry, "tools/call", tool="_OTHER", error_type="-32602") == 1
    assert operations(registry, "resources/read", error_type="0") == 1
    # An unknown code is one fixed value; a prompt never listed (nor answered) is _OTHER.
    assert operations(registry, "prompts/get", prompt="_OTHER", error_type="_OTHER") == 1
    assert operations(registry, "ping", error_type="-32603") == 1
    assert tool_calls(registry, "_OTHER", "error") == 1
    assert requests_of(registry, "resources/read", "error") == 1
    # No URI anywhere in the exposition.
    assert b"secret" not in generate_latest(registry)


async def test_unknown_method_is_other(registry: CollectorRegistry) -> None:
    mw = instrument(registry, FakeServer(mcp_handler()))
    await post(mw, dumps(request("x/" + "a" * 50, 1)))
    assert operations(registry, "_OTHER", error_type="-32601") == 1


async def test_session_not_found_404(registry: CollectorRegistry) -> None:
    def handler(body: bytes, scope: dict[str, Any]) -> Reply:
        return json_reply(failure(None, -32600, "Session not found"), 404)

    mw = instrument(registry, FakeServer(handler))
    tracker_of(mw).sessions.start(SESSION, STREAMABLE, 0.0)
    await post(mw, dumps(request("tools/call", 7, name="add")), session=SESSION)
    get = http_scope("/mcp", "GET", headers=[ACCEPT_BOTH, (b"mcp-session-id", b"gone")])
    await call(mw, get)
    assert value(registry, "mcp_server_session_not_found_total", transport=STREAMABLE) == 2
    assert value(registry, "mcp_server_sessions_ended_total", transport=STREAMABLE,
                 end_reason="not_found") == 1
    # The request never ran: counted as rejected, with no latency and no tool call.
    assert requests_of(registry, "tools/call", "rejected") == 1
    assert total(registry, OPERATION + "_count") == 0
    assert total(registry, TOOL_CALLS) == 0
    assert total(registry, PROTOCOL_ERRORS) == 0
    assert total(registry, PARSE_LIMITS) == 0
    assert_idle(registry, mw)


async def test_initialize_refused_starts_no_session(registry: CollectorRegistry) -> None:
    # python-sdk #3228: a session id on a refused request is not a session.
    def handler(body: bytes, scope: dict[str, Any]) -> Reply:
        return json_reply(failure(None, -32600, "Not Acceptable"), 406, session=SESSION)

    mw = instrument(registry, FakeServer(handler))
    await post(mw, dumps(request("initialize", 0, protocolVersion="2025-11-25")))
    assert total(registry, "mcp_server_sessions_started_total") == 0
    assert value(registry, PROTOCOL_ERRORS, reason="not_acceptable") == 1
    # Nor is a session id on the answer to anything but initialize.
    other = instrument(CollectorRegistry(), FakeServer(mcp_handler()))
    await post(other, dumps(request("tools/list", 1)))
    assert tracker_of(other).sessions.live == {}
    await post(other, dumps(request("initialize", 2)))
    assert list(tracker_of(other).sessions.live) == [SESSION]


async def test_answer_before_the_body_is_read(registry: CollectorRegistry) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        first = await receive()
        await send({"type": "http.response.start", "status": 413, "headers": []})
        await send({"type": "http.response.body", "body": b"too large"})
        while first.get("more_body"):  # drained after the answer, as some servers do
            first = await receive()

    mw = instrument(registry, app)
    body = dumps(request("tools/call", 1, name="add"))
    await post(mw, [body[:5], body[5:]], version=MODERN,
               extra=modern_headers("tools/call", b"add"))
    # Known from its headers, counted once; the body read later adds nothing.
    assert requests_of(registry, "tools/call", "rejected") == 1
    assert total(registry, REQUESTS) == 1


async def test_get_notification_stream(registry: CollectorRegistry) -> None:
    async def handler(body: bytes, scope: dict[str, Any]) -> Reply:
        return sse_reply(b": ping - 2026-01-01 00:00:00\r\n\r\n",
                         frame(notification("notifications/tools/list_changed")),
                         frame(notification("notifications/message", level="info", data="x")))

    mw = instrument(registry, FakeServer(handler, read_body=False))
    get = http_scope("/mcp", "GET", headers=[(b"accept", b"text/event-stream"),
                                             (b"mcp-session-id", SESSION.encode())])
    await call(mw, get)
    assert value(registry, "http_server_streams_total", http_route="",
                 stream_kind="get_notifications", end_reason="completed") == 1
    assert value(registry, NOTIFICATIONS, mcp_method_name="notifications/tools/list_changed",
                 direction="out") == 1
    assert value(registry, NOTIFICATIONS, mcp_method_name="notifications/message",
                 direction="out") == 1
    assert total(registry, REQUESTS) == 0
    assert_idle(registry, mw)


async def test_notifications_cancelled_marks_the_request_cancelled(
        registry: CollectorRegistry) -> None:
    release = asyncio.Event()

    async def handler(body: bytes, scope: dict[str, Any]) -> Reply:
        message = json.loads(body)
        if message.get("method") == "tools/call":
            await release.wait()
            # The server answers anyway; the request was already counted as cancelled.
            return json_reply(result(message["id"], isError=False), session=SESSION)
        return mcp_handler()(body, scope)  # type: ignore[return-value]

    mw = instrument(registry, FakeServer(handler))
    await handshake(mw)
    slow = asyncio.ensure_future(post(mw, dumps(request("tools/call", "c-1", name="add")),
                                      session=SESSION))
    for _ in range(100):
        if tracker_of(mw).sessions.open_count():
            break
        await asyncio.sleep(0)
    assert tracker_of(mw).sessions.open_count() == 1
    # A different id (the integer 1 is not the string "c-1") cancels nothing.
    await post(mw, dumps(notification("notifications/cancelled", requestId=1)), session=SESSION)
    assert requests_of(registry, "tools/call", "cancelled") == 0
    await post(mw, dumps(notification("notifications/cancelled", requestId="c-1")),
               session=SESSION)
    assert requests_of(registry, "tools/call", "cancelled") == 1
    assert tool_calls(registry, "add", "cancelled") == 1
    assert operations(registry, "tools/call", tool="add", error_type="cancelled") == 1
    release.set()
    exchange = await slow
    assert exchange.status == 200
    assert total(registry, REQUESTS, mcp_method_name="tools/call") == 1
    assert value(registry, NOTIFICATIONS, mcp_method_name="notifications/cancelled",
                 direction="in") == 2
    assert_idle(registry, mw)


async def test_client_disconnect_before_any_response_is_cancelled(
        registry: CollectorRegistry, exchanges: list[McpExchange | NamedCall]) -> None:
    async def handler(body: bytes, scope: dict[str, Any]) -> None:
        return None  # like SDK 2.x modern: the client left, the handler was cancelled

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await FakeServer(handler)(scope, receive, send)
        while (await receive())["type"] != "http.disconnect":
            pass

    mw = instrument(registry, app)
    ex = await post(mw, dumps(request("tools/call", 1, name="add")), version="2026-07-28",
                    extra=[(b"mcp-method", b"tools/call"), (b"mcp-name", b"add")],
                    disconnect_after=0)
    assert ex.sent == []
    assert requests_of(registry, "tools/call", "cancelled") == 1
    assert operations(registry, "tools/call", tool="_OTHER", error_type="client_disconnect",
                      version="2026-07-28") == 1
    assert value(registry, "http_server_request_duration_seconds_count",
                 http_request_method="POST", http_route="",
                 http_response_status_code="499", error_type="client_disconnect") == 1
    assert_idle(registry, mw)
    assert_released(exchanges)


async def test_client_leaves_mid_sse_answer(registry: CollectorRegistry) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 200, "headers": [SSE_TYPE]})
        await send({"type": "http.response.body", "more_body": True,
                    "body": frame(notification("notifications/progress", progress=1))})
        while (await receive())["type"] != "http.disconnect":
            pass

    mw = instrument(registry, app)
    await post(mw, dumps(request("tools/call", 1, name="add")), disconnect_after=0)
    assert requests_of(registry, "tools/call", "cancelled") == 1
    assert value(registry, NOTIFICATIONS, mcp_method_name="notifications/progress",
                 direction="out") == 1
    assert value(registry, "http_server_streams_total", http_route="",
                 stream_kind="post_response", end_reason="client_disconnect") == 1
    assert_idle(registry, mw)


async def test_app_exception_is_an_error_not_a_cancellation(registry: CollectorRegistry) -> None:
    def handler(body: bytes, scope: dict[str, Any]) -> Reply:
        raise LookupError("bug")

    mw = instrument(registry, FakeServer(handler))
    ex = await post(mw, dumps(request("tools/call", 1, name="add")), raise_errors=False)
    assert isinstance(ex.error, LookupError)
    assert requests_of(registry, "tools/call", "error") == 1
    assert operations(registry, "tools/call", tool="_OTHER", error_type="LookupError") == 1
    assert_idle(registry, mw)


async def test_server_errors_5xx_are_errors(registry: CollectorRegistry) -> None:
    mw = instrument(registry, FakeServer(lambda body, scope: Reply(503, [], [b"busy"])))
    await post(mw, dumps(request("tools/call", 1, name="add")))
    assert operations(registry, "tools/call", tool="_OTHER", error_type="http_503") == 1
    assert total(registry, PROTOCOL_ERRORS) == 0


async def test_an_app_keeping_receive_keeps_no_mcp_state(registry: CollectorRegistry) -> None:
    """The mcp SDK keeps a session POST's ``receive`` after the exchange is over; what the
    tracker held for that exchange must go anyway (a session can be open for hours)."""
    import gc

    from asgi_mcp_metrics.mcp import request as request_module

    def live_exchanges() -> int:
        gc.collect()
        return sum(type(o) is McpExchange for o in gc.get_objects())

    kept: list[Any] = []
    during: list[int] = []

    class Keeper(FakeServer):
        async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
            kept.append(receive)
            during.append(live_exchanges())
            await super().__call__(scope, receive, send)

    mw = instrument(registry, Keeper(lambda body, scope: json_reply(result(1, tools=[]))),
                    mcp_paths=["/mcp"])
    before = live_exchanges()
    await post(mw, dumps(request("tools/list", 1)))
    await post(mw, dumps(notification("notifications/initialized")))
    assert len(kept) == 2 and during == [before + 1, before + 1]
    assert live_exchanges() == before
    # The requests without operations (the notification) shared one empty table, untouched.
    assert request_module._NO_OPERATIONS == {}
    assert requests_of(registry, "tools/list", "ok") == 1

"""The MCP wire tracker on the modern era (2026-07-28): operations from bodies and headers.

Driven in-process with hand-made ASGI messages through ``MetricsMiddleware``; every test
asserts exact metric values.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from tests.asgi import call, http_scope, total, value
from tests.helpers import tool_calls
from tests.mcp.wire_server import (
    JSON_TYPE,
    MODERN,
    NOTIFICATIONS,
    OPERATION,
    PARSE_LIMITS,
    PROTOCOL_ERRORS,
    SESSION,
    SSE_TYPE,
    TOOL_CALLS,
    FakeServer,
    Reply,
    assert_idle,
    b64,
    dumps,
    failure,
    frame,
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
)

pytestmark = pytest.mark.anyio


async def test_modern_requests_from_body_and_headers(registry: CollectorRegistry) -> None:
    mw = instrument(registry, FakeServer(mcp_handler(session=None)))
    meta = {"_meta": {"io.modelcontextprotocol/protocolVersion": MODERN}}
    await post(mw, dumps(request("tools/list", 1, **meta)), version=MODERN,
               extra=modern_headers("tools/list"))
    await post(mw, dumps(request("tools/call", 2, name="add", **meta)), version=MODERN,
               extra=modern_headers("tools/call", b"add"))
    assert tool_calls(registry, "add", "ok") == 1
    assert operations(registry, "tools/call", tool="add", version=MODERN) == 1
    # Never a session in this era.
    assert total(registry, "mcp_server_sessions_started_total") == 0


async def test_modern_headers_label_a_request_rejected_before_its_body(
        registry: CollectorRegistry) -> None:
    mw = instrument(registry, FakeServer(lambda body, scope: Reply(413, [], [b"too big"]),
                                         read_body=False))
    mw.recorder.learn_tools(["héllo wörld"])
    await post(mw, b"{}", version=MODERN,
               extra=modern_headers("tools/call", b64("héllo wörld")))
    await post(mw, b"{}", version=MODERN, extra=modern_headers("tools/call", b"=?base64?!!?="))
    assert requests_of(registry, "tools/call", "rejected") == 2
    assert value(registry, PROTOCOL_ERRORS, reason="body_too_large") == 2
    assert total(registry, TOOL_CALLS) == 0


async def test_modern_header_name_decoded_when_the_body_is_unreadable(
        registry: CollectorRegistry) -> None:
    mw = instrument(registry, FakeServer(
        lambda body, scope: json_reply(result(7, isError=True))))
    mw.recorder.learn_tools(["héllo wörld"])
    await post(mw, b"\xff\xfe not utf-8", version=MODERN,
               extra=modern_headers("tools/call", b64("héllo wörld")))
    # A malformed sentinel is one fixed value, which is not a known tool.
    await post(mw, b"\xff", version=MODERN, extra=modern_headers("tools/call", b"=?base64?@?="))
    assert tool_calls(registry, "héllo wörld", "tool_error") == 1
    assert tool_calls(registry, "_OTHER", "tool_error") == 1
    # Answered: the headers said all there was to know, and the body was not read.
    assert value(registry, PARSE_LIMITS, where="request_body", reason="invalid_utf8") == 0


async def test_a_modern_body_is_read_when_the_exchange_gets_no_answer(
        registry: CollectorRegistry) -> None:
    """A refused (or unanswered) 2026-07-28 request has its body read after all: what was
    wrong with it is counted, and the operation is the one its headers named."""
    mw = instrument(registry, FakeServer(
        lambda body, scope: json_reply(failure(None, -32700, "parse error"), 400)))
    await post(mw, b"\xff\xfe not utf-8", version=MODERN,
               extra=modern_headers("tools/call", b"add"))
    await post(mw, b'[{"jsonrpc": "2.0", "id": 1, "method": "tools/call"}]', version=MODERN,
               extra=modern_headers("tools/call", b"add"))
    await post(mw, b'{"jsonrpc": "2.0", "id": true, "method": "tools/call"}', version=MODERN,
               extra=modern_headers("tools/call", b"add"))
    assert value(registry, PARSE_LIMITS, where="request_body", reason="invalid_utf8") == 1
    assert value(registry, PARSE_LIMITS, where="request_body", reason="invalid_id") == 1
    assert requests_of(registry, "tools/call", "rejected") == 3
    assert value(registry, PROTOCOL_ERRORS, reason="batch_rejected") == 1


async def test_modern_404_is_method_not_found_not_session_not_found(
        registry: CollectorRegistry) -> None:
    mw = instrument(registry, FakeServer(
        lambda body, scope: json_reply(failure(json.loads(body)["id"], -32601), 404)))
    # A stray session header from a confused client does not make this a session error.
    await post(mw, dumps(request("nope/nope", 1)), version=MODERN, session=SESSION,
               extra=modern_headers("nope/nope"))
    assert operations(registry, "_OTHER", error_type="-32601", version=MODERN) == 1
    assert total(registry, "mcp_server_session_not_found_total") == 0
    assert total(registry, PROTOCOL_ERRORS) == 0


async def test_modern_404_without_reading_the_answer(registry: CollectorRegistry) -> None:
    mw = instrument(registry, FakeServer(lambda body, scope: Reply(404, [JSON_TYPE], [b"{}"])),
                    mcp_parsing="request_body")
    await post(mw, dumps(request("nope/nope", 1)), version=MODERN,
               extra=modern_headers("nope/nope"))
    assert operations(registry, "_OTHER", error_type="-32601", version=MODERN) == 1
    assert total(registry, PROTOCOL_ERRORS) == 0


async def test_modern_rejections_with_codes(registry: CollectorRegistry) -> None:
    replies = iter([json_reply(failure(1, -32020, "mcp-name header mismatch"), 400),
                    json_reply(failure(1, -32022, "unsupported"), 400),
                    json_reply(failure(1, -32602, "resource not found"), 400),
                    Reply(405, [(b"allow", b"POST")], [b""])])
    mw = instrument(registry, FakeServer(lambda body, scope: next(replies)))
    for _ in range(3):
        await post(mw, dumps(request("resources/read", 1, uri="file:///x")), version=MODERN,
                   extra=modern_headers("resources/read", b"file:///y"))
    await call(mw, http_scope("/mcp", "GET", headers=[(b"accept", b"text/event-stream"),
                                                      (b"mcp-protocol-version", b"2026-07-28")]))
    for reason in ("header_mismatch", "unsupported_protocol_version", "invalid_params",
                   "method_not_allowed"):
        assert value(registry, PROTOCOL_ERRORS, reason=reason) == 1, reason
    # The server answered each request by its id: these are operations with a code.
    assert operations(registry, "resources/read", error_type="-32020", version=MODERN) == 1
    assert operations(registry, "resources/read", error_type="-32602", version=MODERN) == 1


async def test_input_required_outcome(registry: CollectorRegistry) -> None:
    mw = instrument(registry, FakeServer(mcp_handler(session=None)))
    mw.recorder.learn_tools(["ask"])
    await post(mw, dumps(request("tools/call", 1, name="ask")), version=MODERN,
               extra=modern_headers("tools/call", b"ask"))
    assert tool_calls(registry, "ask", "input_required") == 1
    assert requests_of(registry, "tools/call", "input_required") == 1
    # Neither success nor error: error_type stays empty.
    assert operations(registry, "tools/call", tool="ask", version=MODERN) == 1


async def test_subscriptions_listen_is_a_stream(registry: CollectorRegistry) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 200, "headers": [SSE_TYPE]})
        for event in (notification("notifications/subscriptions/acknowledged"),
                      notification("notifications/tools/list_changed")):
            await send({"type": "http.response.body", "body": frame(event), "more_body": True})
        await send({"type": "http.response.body", "body": b":\r\n\r\n", "more_body": True})
        while (await receive())["type"] != "http.disconnect":
            pass

    mw = instrument(registry, app)
    await post(mw, dumps(request("subscriptions/listen", "listen-1",
                                 notifications={"toolsListChanged": True})),
               version=MODERN, extra=modern_headers("subscriptions/listen"), disconnect_after=0)
    assert value(registry, "http_server_streams_total", http_route="",
                 stream_kind="subscriptions_listen", end_reason="client_disconnect") == 1
    assert value(registry, NOTIFICATIONS, mcp_method_name="notifications/tools/list_changed",
                 direction="out") == 1
    assert requests_of(registry, "subscriptions/listen", "ok") == 1
    # A subscription's lifetime is the stream's, not an operation latency.
    assert total(registry, OPERATION + "_count") == 0
    assert_idle(registry, mw)

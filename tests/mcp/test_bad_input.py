"""The MCP wire tracker on bad input: unreadable bodies, tiny chunks, size caps, transparency.

Driven in-process with hand-made ASGI messages through ``MetricsMiddleware``; every test
asserts exact metric values.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from asgi_mcp_metrics.mcp.exchange import McpExchange
from asgi_mcp_metrics.mcp.named import NamedCall
from tests.asgi import Exchange, total, value
from tests.helpers import tool_calls
from tests.mcp.wire_server import (
    JSON_TYPE,
    MODERN,
    NOTIFICATIONS,
    PARSE_LIMITS,
    PROTOCOL_ERRORS,
    REQUESTS,
    SESSION,
    SSE_TYPE,
    FakeServer,
    Reply,
    assert_idle,
    assert_released,
    dumps,
    failure,
    frame,
    handshake_tools,
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
)

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(("body", "reason"), [
    (b'{"jsonrpc":"2.0","id":1,"method":"tools/ca', "invalid_json"),
    (b'[1, 2, "three"]', "invalid_batch"),
    (b'"just a string"', "not_an_object"),
    (b'{"jsonrpc":"2.0","id":1,"method":"t\xff\xfe"}', "invalid_utf8"),
    (b"", "empty"),
])
async def test_unreadable_request_bodies(registry: CollectorRegistry, body: bytes,
                                         reason: str) -> None:
    def handler(received: bytes, scope: dict[str, Any]) -> Reply:
        return json_reply(failure(None, -32700, "Parse error"), 400)

    server = FakeServer(handler)
    mw = instrument(registry, server, mcp_paths=("/mcp",))
    ex = await post(mw, body)
    assert server.received == [body]
    assert json.loads(ex.body)["error"]["code"] == -32700
    assert value(registry, PARSE_LIMITS, where="request_body", reason=reason) == 1
    assert value(registry, PROTOCOL_ERRORS, reason="parse_error") == 1
    # Nothing is guessed: no method, no tool, no operation.
    assert total(registry, REQUESTS) == 0
    assert_idle(registry, mw)


async def test_body_in_one_byte_chunks(registry: CollectorRegistry) -> None:
    server = FakeServer(mcp_handler(sse=True))
    mw = instrument(registry, server)
    await handshake_tools(mw)
    body = dumps(request("tools/call", 1, name="add", arguments={"a": "ü" * 10}))
    chunks = [body[i:i + 1] for i in range(len(body))]
    ex = await post(mw, chunks)
    assert server.received == [body]
    assert len(ex.received) == len(chunks)
    assert tool_calls(registry, "add", "ok") == 1


async def test_sse_answer_in_one_byte_chunks(registry: CollectorRegistry) -> None:
    stream = (b": ping\r\n\r\n" + frame(notification("notifications/progress", progress=1))
              + b"id: 7\ndata: " + dumps(result(1, isError=True)) + b"\n\n")

    def handler(body: bytes, scope: dict[str, Any]) -> Reply:
        return Reply(200, [SSE_TYPE], [stream[i:i + 1] for i in range(len(stream))] + [b""])

    mw = instrument(registry, FakeServer(handler))
    await handshake_tools(mw)
    ex = await post(mw, dumps(request("tools/call", 1, name="add")))
    assert ex.body == stream
    assert tool_calls(registry, "add", "tool_error") == 1
    assert value(registry, NOTIFICATIONS, mcp_method_name="notifications/progress",
                 direction="out") == 1


async def test_fifty_megabyte_body(registry: CollectorRegistry,
                                   exchanges: list[McpExchange | NamedCall]) -> None:
    megabyte = b"x" * (1 << 20)
    sizes: list[int] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            sizes.append(len(message["body"]))
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 413, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    mw = instrument(registry, app, mcp_paths=("/mcp",))
    await post(mw, [megabyte] * 50, version=MODERN,
               extra=modern_headers("tools/call", b"add"))
    assert sizes == [1 << 20] * 50
    assert value(registry, PARSE_LIMITS, where="request_body", reason="too_large") == 1
    # The headers still say what it was.
    assert requests_of(registry, "tools/call", "rejected") == 1
    assert value(registry, PROTOCOL_ERRORS, reason="body_too_large") == 1
    assert_released(exchanges)


async def test_huge_sse_line_is_capped(registry: CollectorRegistry,
                                        exchanges: list[McpExchange | NamedCall]) -> None:
    line = b"data: " + b"y" * 65536

    def handler(body: bytes, scope: dict[str, Any]) -> Reply:
        return Reply(200, [SSE_TYPE], [line] * 40 + [b"\n\n", b""])

    mw = instrument(registry, FakeServer(handler), max_frame_bytes=100_000)
    ex = await post(mw, dumps(request("tools/call", 1, name="add")))
    assert ex.body == line * 40 + b"\n\n"
    assert value(registry, PARSE_LIMITS, where="sse_frame", reason="too_large") == 1
    # Past the cap the answer is unread; the 200 is all there is.
    assert requests_of(registry, "tools/call", "ok") == 1
    assert_released(exchanges)


async def test_huge_json_answer_is_capped(registry: CollectorRegistry) -> None:
    big = dumps(result(1, isError=False, content=[{"type": "text", "text": "z" * 5000}]))
    mw = instrument(registry, FakeServer(lambda body, scope: Reply(200, [JSON_TYPE], [big])),
                    max_frame_bytes=1000)
    ex = await post(mw, dumps(request("tools/call", 1, name="add")))
    assert ex.body == big
    assert value(registry, PARSE_LIMITS, where="json_response", reason="too_large") == 1
    assert requests_of(registry, "tools/call", "ok") == 1


@pytest.mark.parametrize("over", [None, "request", "answer"])
async def test_one_message_bodies_at_and_over_the_caps(registry: CollectorRegistry,
                                                       exchanges: list[McpExchange | NamedCall],
                                                       over: str | None) -> None:
    """A body in one ASGI message (the common case, read without a buffer) is read up to its
    cap exactly; one byte more and it is counted as too large, request and answer alike."""
    body = dumps(request("tools/call", 1, name="add", pad="p" * 200))
    answer = dumps(result(1, isError=True, content=[{"type": "text", "text": "q" * 200}]))
    server = FakeServer(lambda body, scope: Reply(200, [JSON_TYPE], [answer]))
    mw = instrument(registry, server, mcp_paths=("/mcp",),
                    max_body_bytes=len(body) - (over == "request"),
                    max_frame_bytes=len(answer) - (over == "answer"))
    ex = await post(mw, body)
    assert server.received == [body]
    assert ex.body == answer
    if over == "request":
        assert total(registry, PARSE_LIMITS) == 1
        assert value(registry, PARSE_LIMITS, where="request_body", reason="too_large") == 1
        # Not read: a handshake-era request has no headers that name it.
        assert total(registry, REQUESTS) == 0
    elif over == "answer":
        assert total(registry, PARSE_LIMITS) == 1
        assert value(registry, PARSE_LIMITS, where="json_response", reason="too_large") == 1
        # The answer not read, its 200 is all there is to go by.
        assert requests_of(registry, "tools/call", "ok") == 1
    else:
        assert total(registry, PARSE_LIMITS) == 0
        # Both read: the request named the tool call, the answer said it failed.
        assert requests_of(registry, "tools/call", "tool_error") == 1
    assert_released(exchanges)


async def test_sse_stream_cut_mid_frame(registry: CollectorRegistry,
                                        exchanges: list[McpExchange | NamedCall]) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 200, "headers": [SSE_TYPE]})
        await send({"type": "http.response.body", "body": b'event: message\r\ndata: {"jsonrpc"',
                    "more_body": True})
        raise ConnectionResetError("upstream went away")

    mw = instrument(registry, app)
    ex = await post(mw, dumps(request("tools/call", 1, name="add")), raise_errors=False)
    assert isinstance(ex.error, ConnectionResetError)
    assert value(registry, PARSE_LIMITS, where="sse_frame", reason="truncated") == 1
    assert operations(registry, "tools/call", tool="_OTHER",
                      error_type="ConnectionResetError") == 1
    assert_idle(registry, mw)
    assert_released(exchanges)


async def test_unreadable_answers(registry: CollectorRegistry) -> None:
    replies = iter([Reply(200, [JSON_TYPE], [b'{"jsonrpc": "2.0", "id": 1, "resu']),
                    sse_reply(b"data: [1, 2]\n\n")])
    mw = instrument(registry, FakeServer(lambda body, scope: next(replies)))
    await post(mw, dumps(request("ping", 1)))
    await post(mw, dumps(request("ping", 1)))
    assert value(registry, PARSE_LIMITS, where="json_response", reason="invalid_json") == 1
    assert value(registry, PARSE_LIMITS, where="sse_frame", reason="invalid_batch") == 1
    assert operations(registry, "ping", error_type="_OTHER") == 2


async def test_transparent_for_app_and_client(registry: CollectorRegistry) -> None:
    body = dumps(request("tools/call", 1, name="add", arguments={"x": "é" * 100}))
    reply = sse_reply(frame(notification("notifications/progress", progress=1)),
                      frame(result(1, isError=False)), session=SESSION)

    async def record(app: Any) -> tuple[list[dict[str, Any]], Exchange]:
        server = FakeServer(lambda b, scope: reply)
        chunks = [body[:10], body[10:11], body[11:]]
        ex = await post(app(server) if app else server, chunks, session=SESSION)
        assert server.received == [body]
        return ex.sent, ex

    bare, _ = await record(None)
    watched, _ = await record(lambda server: instrument(registry, server))
    assert watched == bare

"""The MCP wire tracker, driven in-process with hand-made ASGI messages.

Each test speaks MCP the way the SDKs do on the wire (request bodies, JSON and SSE answers,
session headers, the legacy /sse stream) to a small fake server, through ``MetricsMiddleware``,
and asserts exact metric values.  The fake server records what it received, so every test
can also check that the app and the client saw exactly the bytes they would have without us.
"""

from __future__ import annotations

import asyncio
import base64
import inspect
import json
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from asgi_mcp_metrics import MetricsMiddleware, known
from asgi_mcp_metrics.mcp.exchange import McpExchange
from asgi_mcp_metrics.mcp.tracker import McpTracker
from asgi_mcp_metrics.mcp.vocabulary import is_modern, rejection_reason

from .asgi import Exchange, call, http_scope, read_body, total, value
from .helpers import FakeClock, tool_calls
from .promtool import check_metrics

pytestmark = pytest.mark.anyio

OPERATION = "mcp_server_operation_duration_seconds"
REQUESTS = "mcp_server_requests_total"
TOOL_CALLS = "mcp_tool_calls_total"
NOTIFICATIONS = "mcp_server_notifications_total"
PROTOCOL_ERRORS = "mcp_server_protocol_errors_total"
PARSE_LIMITS = "asgi_mcp_metrics_parse_limit_total"
OVERFLOW = "asgi_mcp_metrics_label_overflow_total"
STREAMABLE = "streamable_http"

SESSION = "4f2a9c1e8b7d4e3f9a0b1c2d3e4f5a6b"
ACCEPT_BOTH = (b"accept", b"application/json, text/event-stream")
JSON_TYPE = (b"content-type", b"application/json")
SSE_TYPE = (b"content-type", b"text/event-stream")


@pytest.fixture(autouse=True)
def _no_declared_tools(monkeypatch: pytest.MonkeyPatch) -> None:
    """Declared tool names are process-wide; every test starts without any."""
    monkeypatch.setattr(known, "_known_tools", set())


# -- JSON-RPC and SSE on the wire ------------------------------------------------------------------
def request(method: str, id: Any = 1, **params: Any) -> dict[str, Any]:
    message: dict[str, Any] = {"jsonrpc": "2.0", "id": id, "method": method}
    if params:
        message["params"] = params
    return message


def notification(method: str, **params: Any) -> dict[str, Any]:
    message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
    if params:
        message["params"] = params
    return message


def result(id: Any, **fields: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": id, "result": fields}


def failure(id: Any, code: int, message: str = "failed") -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}}


def dumps(value: Any) -> bytes:
    return json.dumps(value).encode()


def frame(value: Any, event: str = "message") -> bytes:
    return f"event: {event}\r\ndata: {json.dumps(value)}\r\n\r\n".encode()


def b64(text: str) -> bytes:
    return b"=?base64?" + base64.b64encode(text.encode()) + b"?="


MODERN = "2026-07-28"


def modern_headers(method: str, name: bytes | None = None) -> list[tuple[bytes, bytes]]:
    """The routing headers a 2026-07-28 client sends with every POST."""
    headers = [(b"mcp-method", method.encode())]
    if name is not None:
        headers.append((b"mcp-name", name))
    return headers


# -- a fake MCP server --------------------------------------------------------------------------
@dataclass
class Reply:
    status: int = 200
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    chunks: list[bytes] = field(default_factory=lambda: [b""])


def json_reply(value: Any, status: int = 200, *, session: str | None = None) -> Reply:
    headers = [JSON_TYPE]
    if session is not None:
        headers.append((b"mcp-session-id", session.encode()))
    return Reply(status, headers, [dumps(value)])


def sse_reply(*frames: bytes, session: str | None = None, status: int = 200) -> Reply:
    headers = [SSE_TYPE]
    if session is not None:
        headers.append((b"mcp-session-id", session.encode()))
    return Reply(status, headers, [*frames, b""])


Handler = Callable[[bytes, dict[str, Any]], "Reply | Awaitable[Reply | None] | None"]


class FakeServer:
    """Reads the whole request body (as the SDKs do), then answers with ``handler``'s reply."""

    def __init__(self, handler: Handler, *, read_body: bool = True) -> None:
        self.handler = handler
        self.read_body = read_body
        self.received: list[bytes] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        body = b""
        if self.read_body and scope["type"] == "http":
            body = await read_body(receive)
        self.received.append(body)
        reply = self.handler(body, scope)
        if inspect.isawaitable(reply):
            reply = await reply
        if reply is None:
            return
        await send({"type": "http.response.start", "status": reply.status,
                    "headers": reply.headers})
        for i, chunk in enumerate(reply.chunks):
            await send({"type": "http.response.body", "body": chunk,
                        "more_body": i < len(reply.chunks) - 1})


TOOLS = [{"name": "add", "inputSchema": {}}, {"name": "boom", "inputSchema": {}},
         {"name": "ask", "inputSchema": {}}]


def answer(message: dict[str, Any]) -> dict[str, Any] | None:
    """What an MCP server answers to one message (None for notifications)."""
    if "id" not in message:
        return None
    id_, method = message["id"], message.get("method")
    params = message.get("params") or {}
    if method == "initialize":
        return result(id_, protocolVersion="2025-11-25", capabilities={},
                      serverInfo={"name": "fake", "version": "1"})
    if method == "tools/list":
        return result(id_, tools=TOOLS)
    if method == "tools/call":
        name = params.get("name")
        if name == "add":
            return result(id_, content=[], isError=False)
        if name == "ask":
            return result(id_, resultType="input_required", requestState="s")
        return result(id_, content=[{"type": "text", "text": f"failed: {name}"}], isError=True)
    if method in ("ping", "prompts/get", "subscriptions/listen"):
        return result(id_)
    return failure(id_, -32601, "Method not found")


def mcp_handler(*, sse: bool = False, session: str | None = SESSION,
                tick: FakeClock | None = None, seconds: float = 0.0) -> Handler:
    """A stateful handshake-era server: JSON or SSE answers, the session id on every reply."""

    def handle(body: bytes, scope: dict[str, Any]) -> Reply:
        if tick is not None:
            tick.now += seconds
        if scope["method"] == "DELETE":
            return Reply(200, [(b"mcp-session-id", (session or "").encode())])
        try:
            decoded = json.loads(body)
        except ValueError:
            return json_reply(failure(None, -32700, "Parse error"), 400, session=session)
        messages = decoded if isinstance(decoded, list) else [decoded]
        if not all(isinstance(m, dict) and m.get("jsonrpc") == "2.0" for m in messages):
            return json_reply(failure(None, -32600, "Invalid request"), 400, session=session)
        answers = [a for a in (answer(m) for m in messages) if a is not None]
        if not answers:
            return Reply(202, [JSON_TYPE])
        value = answers if isinstance(decoded, list) else answers[0]
        if sse:
            return sse_reply(*(frame(a) for a in answers), session=session)
        return json_reply(value, session=session)

    return handle


def instrument(registry: CollectorRegistry, app: Any, **options: Any) -> MetricsMiddleware:
    return MetricsMiddleware(app, registry=registry, **options)


def tracker_of(mw: MetricsMiddleware) -> McpTracker:
    observer = mw._observers[0]
    assert isinstance(observer, McpTracker)
    return observer


async def post(mw: MetricsMiddleware, body: bytes | Iterable[bytes], *, path: str = "/mcp",
               session: str | None = None, version: str | None = "2025-11-25",
               query: bytes = b"", extra: Iterable[tuple[bytes, bytes]] = (),
               **kwargs: Any) -> Exchange:
    headers = [JSON_TYPE, ACCEPT_BOTH, *extra]
    if session is not None:
        headers.append((b"mcp-session-id", session.encode()))
    if version is not None:
        headers.append((b"mcp-protocol-version", version.encode()))
    chunks = [body] if isinstance(body, bytes) else list(body)
    return await call(mw, http_scope(path, "POST", headers=headers, query_string=query), chunks,
                      **kwargs)


async def handshake(mw: MetricsMiddleware, session: str = SESSION) -> None:
    """initialize + notifications/initialized + tools/list, as every handshake client starts."""
    await post(mw, dumps(request("initialize", 0, protocolVersion="2025-06-18",
                                 capabilities={}, clientInfo={"name": "c", "version": "1"})),
               version=None)
    await post(mw, dumps(notification("notifications/initialized")), session=session)
    await post(mw, dumps(request("tools/list", 1)), session=session)


def requests_of(registry: CollectorRegistry, method: str, outcome: str,
                transport: str = STREAMABLE) -> float:
    return value(registry, REQUESTS, mcp_method_name=method, outcome=outcome, transport=transport)


def operations(registry: CollectorRegistry, method: str, *, tool: str = "", prompt: str = "",
               error_type: str = "", version: str = "2025-11-25", suffix: str = "_count",
               **extra: str) -> float:
    return value(registry, OPERATION + suffix, mcp_method_name=method, gen_ai_tool_name=tool,
                 gen_ai_prompt_name=prompt, error_type=error_type, mcp_protocol_version=version,
                 **extra)


def assert_idle(registry: CollectorRegistry, mw: MetricsMiddleware) -> None:
    """Every active gauge is back to 0 and the tracker holds nothing for finished traffic."""
    assert total(registry, "http_server_active_requests") == 0
    assert total(registry, "http_server_streams_active") == 0
    assert total(registry, "mcp_server_sessions_active") == len(tracker_of(mw).sessions.live)
    assert tracker_of(mw).sessions.open_count() == 0


@pytest.fixture
def exchanges(monkeypatch: pytest.MonkeyPatch) -> list[McpExchange]:
    """Every McpExchange the trackers create, to look at what they still hold afterwards."""
    seen: list[McpExchange] = []
    original = McpTracker.observe

    def observe(self: McpTracker, scope: Any, started: float) -> McpExchange | None:
        exchange = original(self, scope, started)
        if exchange is not None:
            seen.append(exchange)
        return exchange

    monkeypatch.setattr(McpTracker, "observe", observe)
    return seen


def assert_released(exchanges: list[McpExchange]) -> None:
    """Finished exchanges keep no buffers, parsers or pending requests."""
    assert exchanges
    for exchange in exchanges:
        assert exchange.request.body is None
        assert exchange.response.json is None
        assert exchange.response.sse is None
        assert exchange.request.operations == {}


# == handshake era, Streamable HTTP ==============================================================
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
        registry: CollectorRegistry, exchanges: list[McpExchange]) -> None:
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


# == JSON-RPC shapes =============================================================================
async def test_batch_answered_by_a_json_array(registry: CollectorRegistry) -> None:
    mw = instrument(registry, FakeServer(mcp_handler()))
    await handshake(mw)
    batch = [request("tools/call", 1, name="add"), request("tools/call", "1", name="boom"),
             notification("notifications/progress", progressToken=1, progress=1),
             request("ping", 3)]
    await post(mw, dumps(batch), session=SESSION, version="2025-03-26")
    # 1 and "1" are different ids and each got its own answer.
    assert tool_calls(registry, "add", "ok") == 1
    assert tool_calls(registry, "boom", "tool_error") == 1
    assert operations(registry, "ping", version="2025-03-26") == 1
    assert value(registry, NOTIFICATIONS, mcp_method_name="notifications/progress",
                 direction="in") == 1
    assert_idle(registry, mw)


async def test_batch_answered_as_sse_frames_in_any_order(registry: CollectorRegistry) -> None:
    def handler(body: bytes, scope: dict[str, Any]) -> Reply:
        return sse_reply(frame(result("1", isError=True)), frame([result(1, isError=False)]))

    mw = instrument(registry, FakeServer(handler))
    await handshake_tools(mw)
    await post(mw, dumps([request("tools/call", 1, name="add"),
                          request("tools/call", "1", name="add")]))
    assert tool_calls(registry, "add", "ok") == 1
    assert tool_calls(registry, "add", "tool_error") == 1


async def handshake_tools(mw: MetricsMiddleware) -> None:
    tracker_of(mw).recorder.learn_tools(["add", "boom"])


async def test_batch_of_1000_rejected(registry: CollectorRegistry,
                                      exchanges: list[McpExchange]) -> None:
    def handler(body: bytes, scope: dict[str, Any]) -> Reply:
        return json_reply(failure(None, -32602, "Validation error"), 400)

    server = FakeServer(handler)
    mw = instrument(registry, server)
    body = dumps([request("tools/call", i, name=f"t{i}") for i in range(1000)])
    ex = await post(mw, body)
    assert server.received == [body]
    assert ex.status == 400
    assert requests_of(registry, "tools/call", "rejected") == 1000
    assert value(registry, PROTOCOL_ERRORS, reason="batch_rejected") == 1
    assert total(registry, OPERATION + "_count") == 0
    assert total(registry, TOOL_CALLS) == 0
    # No tool name of the batch became a label (and none was even admitted to the guard).
    assert tracker_of(mw).recorder.tool_names.admitted == set()
    assert_idle(registry, mw)
    assert_released(exchanges)


async def test_batch_of_1000_answered(registry: CollectorRegistry) -> None:
    mw = instrument(registry, FakeServer(mcp_handler()))
    await handshake(mw)
    ex = await post(mw, dumps([request("tools/call", i, name="add") for i in range(1000)]),
                    session=SESSION)
    assert len(json.loads(ex.body)) == 1000
    assert tool_calls(registry, "add", "ok") == 1000
    assert operations(registry, "tools/call", tool="add") == 1000
    assert_idle(registry, mw)


async def test_ids_reused(registry: CollectorRegistry) -> None:
    mw = instrument(registry, FakeServer(mcp_handler()))
    await handshake(mw)
    # One after the other, the same id is fine: each request is answered before the next.
    for _ in range(3):
        await post(mw, dumps(request("tools/call", 5, name="add")), session=SESSION)
    assert tool_calls(registry, "add", "ok") == 3
    # Twice in one batch: the answers cannot be told apart; one request is given up.
    await post(mw, dumps([request("tools/call", 9, name="add"),
                          request("tools/call", 9, name="boom")]), session=SESSION)
    assert value(registry, PARSE_LIMITS, where="request_body", reason="duplicate_id") == 1
    assert total(registry, TOOL_CALLS) == 4
    assert_idle(registry, mw)


async def test_answers_with_ids_never_requested(registry: CollectorRegistry) -> None:
    def handler(body: bytes, scope: dict[str, Any]) -> Reply:
        return sse_reply(frame(result(999, isError=False)), frame(result("2", isError=False)))

    mw = instrument(registry, FakeServer(handler))
    await post(mw, dumps(request("tools/call", 2, name="add")))
    assert value(registry, PARSE_LIMITS, where="response", reason="unmatched_id") == 2
    # A resumed stream (2025-11-25) replays earlier answers: expected, not counted.
    resume = http_scope("/mcp", "GET", headers=[(b"accept", b"text/event-stream"),
                                                (b"mcp-session-id", SESSION.encode()),
                                                (b"last-event-id", b"41")])
    await call(mw, resume)
    assert value(registry, PARSE_LIMITS, where="response", reason="unmatched_id") == 2
    # Its own answer never came: not "ok", and no guessing from the other answers.
    assert operations(registry, "tools/call", tool="_OTHER", error_type="no_response") == 1
    assert_idle(registry, mw)


async def test_client_responses_and_invalid_ids_are_not_operations(
        registry: CollectorRegistry) -> None:
    mw = instrument(registry, FakeServer(lambda body, scope: Reply(202, [JSON_TYPE])))
    body = dumps([result("srv-1", roots=[]), request("tools/call", True, name="add"),
                  {"jsonrpc": "2.0", "id": 1.5, "method": "ping"}, {"id": 3}, 7])
    await post(mw, body)
    assert total(registry, REQUESTS) == 0
    assert value(registry, PARSE_LIMITS, where="request_body", reason="invalid_id") == 2
    assert value(registry, PARSE_LIMITS, where="request_body",
                 reason="invalid_batch_element") == 2


# == legacy HTTP+SSE =============================================================================
class LegacyServer:
    """The 2024-11-05 transport: GET /sse streams the answers of POST /messages/?session_id=."""

    def __init__(self, session: str = "a1b2c3", *, answer_first: bool = False,
                 clock: FakeClock | None = None, seconds: float = 0.0) -> None:
        self.session = session
        self.frames: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.answer_first = answer_first
        self.clock = clock
        self.seconds = seconds
        self.posts: list[bytes] = []
        self.stream_open = asyncio.Event()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["path"] == "/sse":
            await self.stream(receive, send)
        elif scope["path"] == "/messages":
            await send({"type": "http.response.start", "status": 307,
                        "headers": [(b"location", b"/messages/?" + scope["query_string"])]})
            await send({"type": "http.response.body", "body": b""})
        else:
            await self.message(scope, receive, send)

    async def stream(self, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/event-stream; charset=utf-8")]})
        endpoint = f"event: endpoint\r\ndata: /messages/?session_id={self.session}\r\n\r\n"
        await send({"type": "http.response.body", "body": endpoint.encode(), "more_body": True})
        self.stream_open.set()
        gone = asyncio.ensure_future(self._wait_disconnect(receive))
        while True:
            next_frame = asyncio.ensure_future(self.frames.get())
            done, _ = await asyncio.wait({gone, next_frame},
                                         return_when=asyncio.FIRST_COMPLETED)
            if gone in done:
                next_frame.cancel()
                return
            chunk = next_frame.result()
            if chunk is None:
                gone.cancel()
                await send({"type": "http.response.body", "body": b""})
                return
            await send({"type": "http.response.body", "body": chunk, "more_body": True})

    @staticmethod
    async def _wait_disconnect(receive: Any) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    async def message(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        body = await read_body(receive)
        self.posts.append(body)
        if f"session_id={self.session}".encode() not in scope["query_string"]:
            await send({"type": "http.response.start", "status": 404, "headers": []})
            await send({"type": "http.response.body", "body": b"Could not find session"})
            return
        decoded = json.loads(body)
        reply = answer(decoded)
        if self.clock is not None:
            self.clock.now += self.seconds
        if reply is not None and self.answer_first:
            await self.frames.put(frame(reply))
            await asyncio.sleep(0)
            await asyncio.sleep(0)
        await send({"type": "http.response.start", "status": 202, "headers": []})
        await send({"type": "http.response.body", "body": b"Accepted"})
        if reply is not None and not self.answer_first:
            await self.frames.put(frame(reply))


class StreamClient:
    """Holds a GET stream open until told to leave."""

    def __init__(self) -> None:
        self.leave = asyncio.Event()
        self.sent: list[dict[str, Any]] = []

    async def run(self, app: Any, scope: dict[str, Any]) -> None:
        async def receive() -> dict[str, Any]:
            await self.leave.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            self.sent.append(message)

        await app(scope, receive, send)

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.sent if m["type"] == "http.response.body")


SSE_GET = http_scope("/sse", "GET", headers=[(b"accept", b"text/event-stream")])


async def legacy_post(mw: MetricsMiddleware, message: dict[str, Any], session: str = "a1b2c3",
                      path: str = "/messages/") -> Exchange:
    exchange = await post(mw, dumps(message), path=path, version=None,
                          query=f"session_id={session}".encode())
    await settle()  # a client waits for the answer on the stream before it goes on
    return exchange


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


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


# == modern era (2026-07-28) =====================================================================
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
    assert value(registry, PARSE_LIMITS, where="request_body", reason="invalid_utf8") == 2


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


# == protocol errors =============================================================================
@pytest.mark.parametrize(("status", "body", "headers", "reason"), [
    (400, failure(None, -32600, "Bad Request: Missing session ID"), [], "missing_session_id"),
    (400, failure(None, -32600, "Unsupported protocol version"),
     [(b"mcp-protocol-version", b"1999-01-01")], "unsupported_protocol_version"),
    (406, None, [], "not_acceptable"),
    (415, None, [], "unsupported_media_type"),
    (421, None, [], "misdirected_request"),
    (403, None, [], "forbidden"),
    (401, {"detail": "Unauthorized"}, [], "unauthorized"),
    (429, None, [], "rate_limited"),
    (409, None, [], "conflict"),
    (418, None, [], "http_418"),
])
async def test_protocol_error_reasons(registry: CollectorRegistry, status: int,
                                      body: dict[str, Any] | None,
                                      headers: list[tuple[bytes, bytes]], reason: str) -> None:
    reply = json_reply(body, status) if body is not None else Reply(status, [], [b""])
    mw = instrument(registry, FakeServer(lambda b, scope: reply))
    await post(mw, dumps(request("tools/list", 1)), version=None, extra=headers)
    assert value(registry, PROTOCOL_ERRORS, reason=reason) == 1
    assert total(registry, PROTOCOL_ERRORS) == 1
    assert requests_of(registry, "tools/list", "rejected") == 1
    assert total(registry, PARSE_LIMITS) == 0


def test_rejection_reason_vocabulary() -> None:
    assert rejection_reason(400, -32700) == "parse_error"
    assert rejection_reason(400, None, unparsable=True) == "parse_error"
    assert rejection_reason(400, -32602) == "invalid_params"
    assert rejection_reason(400, -32600) == "invalid_request"
    assert rejection_reason(400, None) == "bad_request"
    assert rejection_reason(400, -32602, batch=True) == "batch_rejected"
    assert rejection_reason(422, -32021) == "missing_client_capability"
    assert rejection_reason(422, None) == "http_422"
    assert rejection_reason(999, None) == "_OTHER"
    assert is_modern("2026-07-28") and is_modern("2099-01-01")
    assert not is_modern("2025-11-25") and not is_modern(None) and not is_modern("")


# == bad input ===================================================================================
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
                                   exchanges: list[McpExchange]) -> None:
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
                                        exchanges: list[McpExchange]) -> None:
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


async def test_sse_stream_cut_mid_frame(registry: CollectorRegistry,
                                        exchanges: list[McpExchange]) -> None:
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


# == modes =======================================================================================
async def traffic(mw: MetricsMiddleware) -> None:
    await post(mw, dumps(request("initialize", 0, protocolVersion="2025-11-25")), version=None)
    await post(mw, dumps(request("tools/list", 1)), session=SESSION)
    await post(mw, dumps(request("tools/call", 2, name="boom")), session=SESSION)
    await post(mw, dumps(request("tools/call", 3, name="add")), version=MODERN,
               extra=modern_headers("tools/call", b"add"))


@pytest.mark.parametrize(("mode", "boom_outcome"), [
    ("full", "tool_error"),
    # tools/list answers are still read (tool names), other answers are not: a 200 is "ok".
    ("request_body", "ok"),
])
async def test_modes_that_read_request_bodies(registry: CollectorRegistry, mode: str,
                                              boom_outcome: str) -> None:
    mw = instrument(registry, FakeServer(mcp_handler(sse=True)), mcp_parsing=mode)
    await traffic(mw)
    assert value(registry, "mcp_server_sessions_started_total", transport=STREAMABLE) == 1
    assert tool_calls(registry, "boom", boom_outcome) == 1
    assert tool_calls(registry, "add", "ok") == 1
    assert total(registry, TOOL_CALLS) == 2


async def test_mode_headers_only(registry: CollectorRegistry) -> None:
    server = FakeServer(mcp_handler(sse=True))
    mw = instrument(registry, server, mcp_parsing="headers_only")
    await traffic(mw)
    # The session is seen from headers; handshake-era methods are not.
    assert value(registry, "mcp_server_sessions_started_total", transport=STREAMABLE) == 1
    assert total(registry, REQUESTS, transport=STREAMABLE) == 1
    # Modern-era requests name themselves; no tools/list was read, so the name is _OTHER.
    assert tool_calls(registry, "_OTHER", "ok") == 1
    known.declare_tool("add")
    await post(mw, dumps(request("tools/call", 4, name="add")), version=MODERN,
               extra=modern_headers("tools/call", b"add"))
    assert operations(registry, "tools/call", tool="add", version=MODERN) == 1
    assert len(server.received) == 5


async def test_mode_off(registry: CollectorRegistry) -> None:
    mw = instrument(registry, FakeServer(mcp_handler(sse=True)), mcp_parsing="off")
    await traffic(mw)
    assert mw._observers == ()
    assert total(registry, REQUESTS) == 0
    assert total(registry, "mcp_server_sessions_started_total") == 0
    assert total(registry, "http_server_streams_total", stream_kind="sse") == 4


# == endpoint detection and label guards =========================================================
async def test_json_api_is_not_mcp_and_garbage_does_not_unlearn_an_endpoint(
        registry: CollectorRegistry) -> None:
    def handler(body: bytes, scope: dict[str, Any]) -> Reply:
        if scope["path"] == "/api":
            return json_reply({"ok": True})
        return mcp_handler()(body, scope)  # type: ignore[return-value]

    mw = instrument(registry, FakeServer(handler))
    tracker = tracker_of(mw)
    await post(mw, b'{"item": 1}', path="/api")
    assert tracker.endpoints.other_paths == {"/api"}
    assert tracker_of(mw).observe(http_scope("/api", "POST", headers=[JSON_TYPE]), 0) is None
    # The first thing an attacker sends to /mcp is garbage: /mcp stays detectable.
    await post(mw, b'{"not": "json-rpc"', path="/mcp")
    await post(mw, b'{"not": "json-rpc"}', path="/mcp")
    assert tracker.endpoints.other_paths == {"/api"}
    await post(mw, dumps(request("ping", 1)))
    assert tracker.endpoints.mcp_paths == {"/mcp"}
    assert requests_of(registry, "ping", "ok") == 1
    # A plain SSE stream elsewhere is just a stream.
    events = FakeServer(lambda b, s: sse_reply(b"data: hello\n\n"), read_body=False)
    plain = instrument(registry, events)
    await call(plain, http_scope("/feed", "GET", headers=[(b"accept", b"text/event-stream")]))
    assert value(registry, "http_server_streams_total", http_route="",
                 stream_kind="sse", end_reason="completed") == 1


async def test_pinned_paths(registry: CollectorRegistry) -> None:
    mw = instrument(registry, FakeServer(mcp_handler()), mcp_paths=("/mcp", "/tenant/mcp"))
    await post(mw, dumps(request("ping", 1)), path="/other")
    await post(mw, dumps(request("ping", 1)), path="/tenant/mcp")
    await post(mw, dumps(request("ping", 1)), path="/mcp")
    assert requests_of(registry, "ping", "ok") == 2
    # Pinned: nothing is learned, and a GET stream there is an MCP stream from the start.
    assert tracker_of(mw).endpoints.mcp_paths == set()


@pytest.mark.parametrize("method", ["HEAD", "OPTIONS", "PUT"])
async def test_head_options_and_others_are_never_mcp(registry: CollectorRegistry,
                                                     method: str) -> None:
    mw = instrument(registry, FakeServer(lambda b, s: Reply(405, [], [b""]), read_body=False),
                    mcp_paths=("/mcp",))
    headers = [JSON_TYPE, ACCEPT_BOTH, (b"mcp-session-id", SESSION.encode()),
               (b"mcp-method", b"tools/call")]
    assert tracker_of(mw).observe(http_scope("/mcp", method, headers=headers), 0) is None
    await call(mw, http_scope("/mcp", method, headers=headers))
    assert total(registry, PROTOCOL_ERRORS) == 0
    assert total(registry, REQUESTS) == 0


async def test_non_mcp_traffic_is_not_observed(registry: CollectorRegistry) -> None:
    tracker = tracker_of(instrument(registry, FakeServer(mcp_handler())))
    assert tracker.observe(http_scope("/page", "GET", headers=[(b"accept", b"text/html")]),
                           0) is None
    assert tracker.observe(http_scope("/form", "POST", headers=[
        (b"content-type", b"application/x-www-form-urlencoded")]), 0) is None
    assert tracker.observe(http_scope("/x", "DELETE"), 0) is None
    # What may be MCP is looked at, whatever the case of the header names.
    for method, headers in [("GET", [(b"Accept", b"text/event-stream")]),
                            ("DELETE", [(b"Mcp-Session-Id", b"s")]),
                            ("POST", [(b"content-type", b"Application/JSON")]),
                            ("POST", [(b"mcp-method", b"tools/list")])]:
        assert tracker.observe(http_scope("/y", method, headers=headers), 0) is not None


async def test_tool_name_cap_and_declared_tools(registry: CollectorRegistry) -> None:
    def handler(body: bytes, scope: dict[str, Any]) -> Reply:
        message = json.loads(body)
        if message["method"] in ("tools/list", "ping"):
            return json_reply(result(message["id"], tools=[{"name": n} for n in "abcx"]))
        return json_reply(result(message["id"], isError=False))

    mw = instrument(registry, FakeServer(handler), max_tool_names=2)
    # A tools list in the answer to anything but tools/list teaches nothing.
    await post(mw, dumps(request("ping", 0)))
    assert tracker_of(mw).recorder.learned_tools == set()
    await post(mw, dumps(request("tools/list", 1)))
    assert tracker_of(mw).recorder.learned_tools == {"a", "b", "c", "x"}
    for i, name in enumerate("abc", 2):
        await post(mw, dumps(request("tools/call", i, name=name)))
    assert tool_calls(registry, "a", "ok") == 1
    assert tool_calls(registry, "b", "ok") == 1
    assert tool_calls(registry, "c", "ok") == 0
    assert tool_calls(registry, "_OTHER", "ok") == 1
    # A declared tool is a label, and its decorator (not the wire) counts its calls.
    known.declare_tool("declared")
    await post(mw, dumps(request("tools/call", 9, name="declared")))
    assert operations(registry, "tools/call", tool="_OTHER") == 2
    assert total(registry, TOOL_CALLS) == 3


async def test_tools_call_without_a_name(registry: CollectorRegistry) -> None:
    mw = instrument(registry, FakeServer(lambda b, s: json_reply(failure(1, -32602), 200)))
    await post(mw, dumps(request("tools/call", 1)))
    assert tool_calls(registry, "_OTHER", "error") == 1


async def test_identity_label_on_tool_calls(registry: CollectorRegistry) -> None:
    mw = instrument(registry, FakeServer(mcp_handler()), identity="header:x-client")
    await handshake_tools(mw)
    await post(mw, dumps(request("tools/call", 1, name="add")), extra=[(b"x-client", b"team-a")])
    assert tool_calls(registry, "add", "ok", identity="team-a") == 1


async def test_exposition_passes_promtool(registry: CollectorRegistry) -> None:
    mw = instrument(registry, FakeServer(mcp_handler(sse=True)))
    await handshake(mw)
    await post(mw, dumps(request("tools/call", 2, name="add")), session=SESSION)
    await post(mw, b"{", session=SESSION)
    check_metrics(generate_latest(registry))


async def test_tool_that_succeeds_is_known_without_tools_list(registry: CollectorRegistry) -> None:
    """A client may call a tool it never listed: a successful answer proves the tool exists."""

    async def server(scope: Any, receive: Any, send: Any) -> None:
        message = await receive()
        request = json.loads(message["body"])
        name = request["params"]["name"]
        result = {"content": [], "isError": name != "real"}
        body = json.dumps({"jsonrpc": "2.0", "id": request["id"], "result": result}).encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})

    app = MetricsMiddleware(server, registry=registry)
    for i, name in enumerate(["made-up", "real", "real", "made-up"]):
        body = json.dumps({"jsonrpc": "2.0", "id": i, "method": "tools/call",
                           "params": {"name": name, "arguments": {}}}).encode()
        await call(app, http_scope("/mcp", "POST",
                                   headers=[(b"content-type", b"application/json")]), [body])
    assert value(registry, "mcp_tool_calls_total", gen_ai_tool_name="real", backend="",
                 outcome="ok", identity="") == 2
    assert value(registry, "mcp_tool_calls_total", gen_ai_tool_name="_OTHER", backend="",
                 outcome="tool_error", identity="") == 2
    assert value(registry, "mcp_tool_calls_total", gen_ai_tool_name="made-up", backend="",
                 outcome="tool_error", identity="") == 0


async def test_prompt_names_are_labels_only_when_known(registry: CollectorRegistry) -> None:
    """Like tool names: listed by prompts/list, or answered successfully; else _OTHER."""
    listed = {"jsonrpc": "2.0", "id": 1, "result": {"prompts": [{"name": "summarize"}]}}
    replies = iter([listed, {"jsonrpc": "2.0", "id": 2, "result": {"messages": []}},
                    failure(3, -32602, "Unknown prompt"),
                    {"jsonrpc": "2.0", "id": 4, "result": {"messages": []}}])
    mw = instrument(registry, FakeServer(lambda body, scope: json_reply(next(replies))))
    await post(mw, dumps(request("prompts/list", 1)))
    await post(mw, dumps(request("prompts/get", 2, name="summarize")))
    await post(mw, dumps(request("prompts/get", 3, name="made-up")))
    await post(mw, dumps(request("prompts/get", 4, name="unlisted-but-real")))
    assert operations(registry, "prompts/get", prompt="summarize") == 1
    assert operations(registry, "prompts/get", prompt="_OTHER", error_type="-32602") == 1
    assert operations(registry, "prompts/get", prompt="unlisted-but-real") == 1
    assert value(registry, OVERFLOW, metric=OPERATION, label="gen_ai_prompt_name") == 1


async def test_undecorated_tool_calls_are_timed_on_the_wire_once(
        registry: CollectorRegistry, clock: FakeClock) -> None:
    mw = instrument(registry, FakeServer(mcp_handler(tick=clock, seconds=0.03)))
    await handshake_tools(mw)
    await post(mw, dumps(request("tools/call", 1, name="add")))
    await post(mw, dumps(request("tools/call", 2, name="add")))
    duration = {"gen_ai_tool_name": "add", "backend": "", "outcome": "ok"}
    assert tool_calls(registry, "add", "ok") == 2
    assert value(registry, "mcp_tool_call_duration_seconds_count", **duration) == 2
    assert value(registry, "mcp_tool_call_duration_seconds_bucket", le="0.02", **duration) == 0
    assert value(registry, "mcp_tool_call_duration_seconds_bucket", le="0.05", **duration) == 2
    assert value(registry, "mcp_tool_call_duration_seconds_sum", **duration) == \
        pytest.approx(0.06)
    # A declared tool is timed by its decorator only: the wire adds nothing.
    known.declare_tool("add")
    await post(mw, dumps(request("tools/call", 3, name="add")))
    assert operations(registry, "tools/call", tool="add") == 3
    assert value(registry, "mcp_tool_call_duration_seconds_count", **duration) == 2
    assert tool_calls(registry, "add", "ok") == 2

"""MCP on the wire for the tracker's tests: message builders, a fake MCP server speaking the
Streamable HTTP and legacy HTTP+SSE transports, and readers of the metrics they produce.

The fake server records what it received, so every test can also check that the app and the
client saw exactly the bytes they would have without us.
"""

from __future__ import annotations

import asyncio
import base64
import inspect
import json
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry

from asgi_mcp_metrics import MetricsMiddleware
from asgi_mcp_metrics.mcp.exchange import McpExchange
from asgi_mcp_metrics.mcp.named import NamedCall
from asgi_mcp_metrics.mcp.tracker import McpTracker
from tests.asgi import Exchange, call, http_scope, read_body, total, value
from tests.helpers import FakeClock

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
    observer = mw._observer
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


def assert_released(exchanges: list[McpExchange | NamedCall]) -> None:
    """Finished exchanges keep no buffers, parsers or pending requests."""
    assert exchanges
    for observed in exchanges:
        if isinstance(observed, NamedCall):
            if observed.full is None:
                # Read by the named call itself: answered, and holding neither body.
                assert observed.answered
                assert observed.body is None
                assert observed.response == ()
                continue
            observed = observed.full
        exchange = observed
        assert exchange.request.body is None
        assert exchange.body is None
        assert exchange.sse is None
        assert exchange.request.operations == {}


async def handshake_tools(mw: MetricsMiddleware) -> None:
    mw.recorder.learn_tools(["add", "boom"])


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

"""Property test: under generated ASGI apps and clients, the middleware changes nothing.

Each case is an app written as a program (read the body, start the response, send body
chunks, raise, for HTTP; accept, send, receive, close, raise, for websockets) and a client
(body chunks, a point at which it vanishes, whether ``send`` then raises as in ASGI spec 2.4).
A deterministic in-process server runs the case twice, bare and behind ``MetricsMiddleware``:
the server must get the very same messages (the same objects) and the same exception (the same
object), and the app must get the same messages from ``receive``. After every case the active
gauges are back to 0 (sessions after the lifespan shutdown, which ends them by design). Some
cases are MCP-shaped (JSON-RPC posts to ``/mcp``, SSE answers, the legacy ``/sse`` stream), so
the MCP tracker runs on them too.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from asgi_mcp_metrics import MetricsMiddleware

from .asgi import http_scope, total

EXAMPLES = 10_000
GAUGES = ("http_server_active_requests", "http_server_streams_active")
SESSIONS = "mcp_server_sessions_active"
ALL_GAUGES = (*GAUGES, SESSIONS)


class AppFailure(BaseException):
    """Not an Exception: the middleware must let even these through untouched."""


ERRORS = {"value": ValueError, "cancelled": asyncio.CancelledError, "base": AppFailure}

# --- what the cases are made of ------------------------------------------------------------

MCP_REQUESTS = [
    {"jsonrpc": "2.0", "id": 1, "method": "initialize",
     "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                "clientInfo": {"name": "fuzz", "version": "1"}}},
    {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "add", "arguments": {}}},
    {"jsonrpc": "2.0", "id": "x", "method": "tools/list"},
    {"jsonrpc": "2.0", "method": "notifications/initialized"},
    [{"jsonrpc": "2.0", "id": 3, "method": "ping"}, {"jsonrpc": "2.0", "method": "x"}],
]
MCP_ANSWERS = [
    {"jsonrpc": "2.0", "id": 1, "result": {"protocolVersion": "2025-11-25", "capabilities": {},
                                           "serverInfo": {"name": "s", "version": "1"}}},
    {"jsonrpc": "2.0", "id": 2, "result": {"content": [], "isError": True}},
    {"jsonrpc": "2.0", "id": "x", "result": {"tools": [{"name": "add"}]}},
    {"jsonrpc": "2.0", "id": 3, "error": {"code": -32601, "message": "no"}},
    {"jsonrpc": "2.0", "method": "notifications/message", "params": {}},
]


def sse(message: Any) -> bytes:
    return b"event: message\ndata: " + json.dumps(message).encode() + b"\n\n"


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(cut, len(data)) for cut in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


request_payloads = st.one_of(
    st.sampled_from([json.dumps(m).encode() for m in MCP_REQUESTS]),
    st.binary(max_size=40),
)
answer_payloads = st.one_of(
    st.sampled_from([json.dumps(m).encode() for m in MCP_ANSWERS]),
    st.sampled_from([sse(m) for m in MCP_ANSWERS]),
    st.just(b"event: endpoint\ndata: /messages/?session_id=abc\n\n"),
    st.binary(max_size=30),
)
chunked = st.builds(split, request_payloads, st.lists(st.integers(0, 200), max_size=3))
content_types = st.sampled_from([None, b"application/json", b"text/event-stream",
                                 b"text/event-stream; charset=utf-8", b"text/plain"])
response_headers = st.builds(
    lambda content_type, session, extra: (
        ([(b"content-type", content_type)] if content_type else [])
        + ([(b"mcp-session-id", session)] if session else []) + extra),
    content_types, st.sampled_from([None, b"s1", b"s2"]),
    st.lists(st.tuples(st.sampled_from([b"x-a", b"set-cookie", b"Content-Type"]),
                       st.binary(max_size=8)), max_size=2))
statuses = st.sampled_from([200, 200, 202, 204, 301, 400, 404, 500, 503, 99, 600])

receive_step = st.just(("receive",))
start_step = st.builds(lambda status, headers: ("start", status, headers),
                       statuses, response_headers)
body_step = st.builds(lambda chunk, more: ("body", chunk, more), answer_payloads, st.booleans())
# Extension messages: the final body sent another way, trailers, something unknown.
extension_step = st.sampled_from([
    ("raw", {"type": "http.response.pathsend", "path": "/srv/file"}),
    ("raw", {"type": "http.response.zerocopysend", "file": 3, "count": 10}),
    ("raw", {"type": "http.response.trailers", "headers": [], "more_trailers": False}),
    ("raw", {"type": "http.response.unknown"}),
])
raise_step = st.builds(lambda kind: ("raise", kind), st.sampled_from(sorted(ERRORS)))


@st.composite
def http_programs(draw: st.DrawFn) -> list[tuple[Any, ...]]:
    """Mostly well-formed (reads, start, chunks, final chunk), sometimes anything at all; an
    exception anywhere, reads after the response."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.lists(st.one_of(receive_step, start_step, body_step, raise_step,
                                       extension_step), max_size=8))
    steps: list[tuple[Any, ...]] = [("receive",)] * draw(st.integers(0, 3))
    steps.append(draw(start_step))
    for _ in range(draw(st.integers(0, 4))):
        steps.append(("body", draw(answer_payloads), True))
        if draw(st.booleans()):
            steps.append(("receive",))
    ending = draw(st.integers(0, 5))
    if ending == 5:
        steps.append(draw(extension_step))
    elif ending:
        steps.append(("body", draw(answer_payloads), False))
    steps.extend([("receive",)] * draw(st.integers(0, 2)))
    if draw(st.integers(0, 3)) == 0:
        steps.insert(draw(st.integers(0, len(steps))), draw(raise_step))
    return steps


@dataclass
class Case:
    scope_type: str
    method: str
    path: str
    headers: list[tuple[bytes, bytes]]
    body: list[bytes]
    program: list[tuple[Any, ...]]
    vanish_at: int | None  # the client is gone from this server event (receive or send) on
    send_raises: bool  # once gone, send() raises OSError (ASGI spec 2.4) instead of dropping
    swallow: bool  # the app catches OSError from send() and returns, as frameworks do


request_headers = st.lists(st.sampled_from([
    (b"content-type", b"application/json"), (b"accept", b"application/json, text/event-stream"),
    (b"accept", b"text/event-stream"), (b"mcp-session-id", b"s1"), (b"mcp-session-id", b"s2"),
    (b"mcp-protocol-version", b"2025-11-25"), (b"mcp-method", b"tools/call"),
    (b"mcp-name", b"add"), (b"x-other", b"1")]), max_size=4, unique=True)
clients = {"vanish_at": st.one_of(st.none(), st.integers(0, 12)), "send_raises": st.booleans(),
           "swallow": st.booleans()}
http_cases = st.builds(
    Case, scope_type=st.just("http"),
    method=st.sampled_from(["GET", "POST", "POST", "DELETE", "PUT", "BREW"]),
    path=st.sampled_from(["/mcp", "/mcp", "/sse", "/messages/", "/api", "/metrics"]),
    headers=request_headers, body=chunked, program=http_programs(), **clients)

@st.composite
def mcp_cases(draw: st.DrawFn) -> Case:
    """A coherent MCP exchange: a JSON-RPC post read to its end, its answer as JSON or as SSE
    frames (with a session id), then the same hazards: an exception, a vanishing client."""
    index = draw(st.integers(0, len(MCP_REQUESTS) - 1))
    body = split(json.dumps(MCP_REQUESTS[index]).encode(), draw(st.lists(st.integers(0, 200),
                                                                         max_size=3)))
    streamed = draw(st.booleans())
    answer = MCP_ANSWERS[min(index, len(MCP_ANSWERS) - 1)]
    payload = sse(answer) if streamed else json.dumps(answer).encode()
    headers = [(b"content-type", b"text/event-stream" if streamed else b"application/json"),
               (b"mcp-session-id", b"s1")]
    program: list[tuple[Any, ...]] = [("receive",)] * len(body)
    program.append(("start", 200, headers))
    pieces = split(payload, draw(st.lists(st.integers(0, 200), max_size=2)))
    program.extend(("body", piece, i < len(pieces) - 1) for i, piece in enumerate(pieces))
    if draw(st.integers(0, 3)) == 0:
        program.insert(draw(st.integers(0, len(program))), draw(raise_step))
    return Case("http", "POST", "/mcp", [(b"content-type", b"application/json"),
                                         (b"accept", b"application/json, text/event-stream")],
                body, program, **{name: draw(strategy) for name, strategy in clients.items()})


ws_step = st.one_of(
    st.just(("receive",)),
    st.builds(lambda sub: ("accept", sub), st.sampled_from([None, "mcp"])),
    st.builds(lambda text: ("send", {"text": text}), st.text(max_size=5)),
    st.builds(lambda data: ("send", {"bytes": data}), st.binary(max_size=5)),
    st.builds(lambda code: ("close", code), st.sampled_from([1000, 1011, 4000])),
    raise_step,
)
ws_cases = st.builds(
    Case, scope_type=st.just("websocket"), method=st.just("GET"),
    path=st.sampled_from(["/ws", "/mcp"]), headers=st.just([]),
    body=st.lists(st.binary(max_size=5), max_size=3),
    program=st.lists(ws_step, max_size=8).map(lambda steps: [("receive",), *steps]), **clients)

# --- the server and the app ----------------------------------------------------------------


@dataclass
class Transcript:
    """What each side saw. ``sent``/``received`` hold the very objects that were passed."""

    sent: list[dict[str, Any]] = field(default_factory=list)  # by the app
    delivered: list[dict[str, Any]] = field(default_factory=list)  # to the server
    handed: list[dict[str, Any]] = field(default_factory=list)  # by the server's receive
    received: list[dict[str, Any]] = field(default_factory=list)  # by the app
    raised: BaseException | None = None  # by the app or by the server's send
    refused: int = 0  # sends the server raised from
    swallowed: bool = False  # the app caught the server's OSError and returned
    outcome: BaseException | None = None  # what reached the server
    scope: Any = None  # the scope the app was called with

    def comparable(self) -> tuple[Any, ...]:
        error = self.outcome
        return (self.delivered, self.received,
                None if error is None else (type(error), error.args))


def scope_of(case: Case) -> dict[str, Any]:
    scope = http_scope(case.path, case.method, headers=case.headers)
    if case.scope_type == "websocket":
        del scope["method"]
        scope["type"] = "websocket"
        scope["scheme"] = "ws"
    return scope


def make_server(case: Case, transcript: Transcript) -> tuple[Any, Any]:
    events = 0
    if case.scope_type == "http":
        queue = [{"type": "http.request", "body": chunk, "more_body": i < len(case.body) - 1}
                 for i, chunk in enumerate(case.body)]
        gone = {"type": "http.disconnect"}
    else:
        queue = [{"type": "websocket.connect"}] + [
            {"type": "websocket.receive", "bytes": chunk} for chunk in case.body]
        gone = {"type": "websocket.disconnect", "code": 1006}

    def vanished() -> bool:
        return case.vanish_at is not None and events >= case.vanish_at

    async def receive() -> dict[str, Any]:
        nonlocal events
        # A drained body reads as a disconnect, as servers do once the response is complete.
        message = dict(gone) if vanished() or not queue else queue.pop(0)
        events += 1
        transcript.handed.append(message)
        return message

    async def send(message: dict[str, Any]) -> None:
        nonlocal events
        events += 1
        if vanished() and case.send_raises:
            transcript.refused += 1
            transcript.raised = OSError("client gone")
            raise transcript.raised
        transcript.delivered.append(message)

    return receive, send


async def run_program(case: Case, transcript: Transcript, scope: Any, receive: Any,
                      send: Any) -> None:
    transcript.scope = scope

    async def emit(message: dict[str, Any]) -> bool:
        transcript.sent.append(message)
        try:
            await send(message)
        except OSError:
            if case.swallow:
                transcript.swallowed = True
                return False
            raise
        return True

    for step in case.program:
        kind = step[0]
        if kind == "receive":
            transcript.received.append(await receive())
        elif kind == "raise":
            transcript.raised = ERRORS[step[1]]("app failed")
            raise transcript.raised
        elif kind == "start":
            message = {"type": "http.response.start", "status": step[1], "headers": step[2]}
        elif kind == "body":
            message = {"type": "http.response.body", "body": step[1], "more_body": step[2]}
        elif kind == "raw":
            message = dict(step[1])
        elif kind == "accept":
            message = {"type": "websocket.accept", "subprotocol": step[1]}
        elif kind == "send":
            message = {"type": "websocket.send", **step[1]}
        else:
            message = {"type": "websocket.close", "code": step[1]}
        if kind not in ("receive", "raise") and not await emit(message):
            return


class Harness:
    """One middleware (one registry) for every case, as in a long-running process."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.case: Case | None = None
        self.transcript = Transcript()
        self.middleware = MetricsMiddleware(self.app, registry=self.registry)
        self.loop = asyncio.new_event_loop()

    async def app(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        assert self.case is not None
        await run_program(self.case, self.transcript, scope, receive, send)

    def run(self, case: Case, wrapped: bool) -> Transcript:
        self.case = case
        self.transcript = transcript = Transcript()
        receive, send = make_server(case, transcript)
        scope = scope_of(case)
        app = self.middleware if wrapped else self.app

        async def serve() -> None:
            try:
                await app(scope, receive, send)
            except BaseException as exc:  # the server's view: whatever came out of the app
                transcript.outcome = exc

        self.loop.run_until_complete(serve())
        assert transcript.scope is scope
        return transcript

    def gauge(self, name: str) -> float:
        """One family's total; collecting the whole registry per case would dominate the run."""
        return sum(sample.value for family in self.middleware.recorder[name].metric.collect()
                   for sample in family.samples)

    def shutdown(self) -> None:
        messages = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])

        async def receive() -> dict[str, Any]:
            return next(messages)

        async def send(message: dict[str, Any]) -> None:
            pass

        self.loop.run_until_complete(
            self.middleware({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send))


def test_the_middleware_changes_nothing_for_generated_apps() -> None:
    harness = Harness()
    cases_run = 0

    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(st.one_of(http_cases, http_cases, mcp_cases(), ws_cases))
    def check(case: Case) -> None:
        nonlocal cases_run
        cases_run += 1
        # Compared with the gauges before the case, so that a failing case (and the shrinking
        # that follows it) is not blamed on another one; with no failure they stay at 0.
        before = {name: harness.gauge(name) for name in ALL_GAUGES}
        bare = harness.run(case, wrapped=False)
        seen = harness.run(case, wrapped=True)
        assert seen.comparable() == bare.comparable()
        # The same objects, not copies: every message, both ways, and the exception itself.
        assert len(seen.delivered) + seen.refused == len(seen.sent)
        assert all(a is b for a, b in zip(seen.delivered, seen.sent[:len(seen.delivered)],
                                               strict=True))
        assert len(seen.received) == len(seen.handed)
        assert all(a is b for a, b in zip(seen.received, seen.handed, strict=True))
        assert seen.outcome is (None if seen.swallowed else seen.raised)
        for name in GAUGES:
            assert harness.gauge(name) == before[name], name
        harness.shutdown()
        assert harness.gauge(SESSIONS) == before[SESSIONS]

    check()
    assert cases_run >= EXAMPLES
    for name in ALL_GAUGES:
        assert harness.gauge(name) == 0, name
    # Not even the malformed message sequences tripped our own code.
    assert total(harness.registry, "asgi_mcp_metrics_internal_errors_total") == 0
    # The cases reached the MCP tracker and every end of a stream.
    assert total(harness.registry, "mcp_server_requests_total") > 0
    assert total(harness.registry, "mcp_server_sessions_started_total") > 0
    assert total(harness.registry, "mcp_server_operation_duration_seconds_count") > 0
    for reason in ("completed", "client_disconnect", "server_error"):
        assert total(harness.registry, "http_server_streams_total", end_reason=reason) > 0

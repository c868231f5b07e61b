"""The MCP wire tracker against the real ``mcp`` 2.x SDK: its ``MCPServer`` under uvicorn,
driven by its own ``Client`` over real HTTP, for every transport, mode and protocol era.

Counts are exact: each scenario makes a known list of calls and the metrics must say exactly
that, with every active gauge back to 0 once the client has gone, and every exposition clean
for ``promtool check metrics``.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry, generate_latest

mcp_sdk = pytest.importorskip("mcp", reason="the mcp SDK is not installed")
if not hasattr(mcp_sdk, "Client"):  # pragma: no cover - the 1.x line has its own test module
    pytest.skip("needs the mcp 2.x SDK (mcp.Client); 1.x runs in test_mcp_v1.py",
                allow_module_level=True)

from mcp import Client  # noqa: E402
from mcp.client.sse import sse_client  # noqa: E402
from mcp.server import MCPServer  # noqa: E402
from mcp.server.mcpserver import Context  # noqa: E402
from mcp_types import InputRequiredResult  # noqa: E402

from asgi_mcp_metrics import MetricsMiddleware  # noqa: E402
from asgi_mcp_metrics.mcp.named import NamedCall  # noqa: E402
from asgi_mcp_metrics.mcp.tracker import McpTracker  # noqa: E402

from ..asgi import total, value  # noqa: E402
from ..helpers import tool_calls  # noqa: E402
from ..promtool import check_metrics  # noqa: E402
from .servers import gauges_idle, serve, wait_until  # noqa: E402
from .tools import register_common_tools  # noqa: E402

pytestmark = pytest.mark.e2e

OPERATION_COUNT = "mcp_server_operation_duration_seconds_count"
TOOL_CALLS = "mcp_tool_calls_total"
REQUESTS = "mcp_server_requests_total"
DURATION_COUNT = "http_server_request_duration_seconds_count"


def make_server() -> MCPServer:
    server = MCPServer("wire")
    register_common_tools(server)

    @server.tool()
    async def ask(ctx: Context) -> Any:
        # 2026-07-28 multi-round trip: the first call asks to be called again.
        if ctx.request_state == "again":
            return "done"
        return InputRequiredResult(request_state="again")

    @server.tool()
    async def change(ctx: Context) -> str:
        await ctx.notify_tools_changed()
        return "changed"

    @server.prompt()
    def greet(name: str) -> str:
        return f"Hello {name}"

    return server


@contextmanager
def running(app: Any, registry: CollectorRegistry) -> Iterator[str]:
    with serve(MetricsMiddleware(app, registry=registry)) as url:
        yield url


async def common_calls(client: Client) -> None:
    """The calls every scenario makes: 5 tool calls, one tools/list, one prompts/get."""
    await client.list_tools()
    for i in range(3):
        result = await client.call_tool("add", {"a": i, "b": 1})
        assert not result.is_error
    assert (await client.call_tool("boom", {})).is_error
    assert (await client.call_tool("nope", {})).is_error
    await client.get_prompt("greet", {"name": "x"})


def assert_common(registry: CollectorRegistry, transport: str, version: str) -> None:
    assert tool_calls(registry, "add", "ok") == 3
    assert tool_calls(registry, "boom", "tool_error") == 1
    # An unknown tool is a tool error inside a 200, and its name is no label.
    assert tool_calls(registry, "_OTHER", "tool_error") == 1
    assert value(registry, OPERATION_COUNT, mcp_method_name="tools/call", gen_ai_tool_name="add",
                 gen_ai_prompt_name="", error_type="", mcp_protocol_version=version) == 3
    assert value(registry, OPERATION_COUNT, mcp_method_name="tools/call",
                 gen_ai_tool_name="boom", gen_ai_prompt_name="", error_type="tool_error",
                 mcp_protocol_version=version) == 1
    assert value(registry, OPERATION_COUNT, mcp_method_name="prompts/get", gen_ai_tool_name="",
                 gen_ai_prompt_name="greet", error_type="", mcp_protocol_version=version) == 1
    assert value(registry, REQUESTS, mcp_method_name="tools/list", outcome="ok",
                 transport=transport) == 1
    assert total(registry, "asgi_mcp_metrics_internal_errors_total") == 0
    assert total(registry, "asgi_mcp_metrics_parse_limit_total") == 0


HANDSHAKE = "2025-11-25"
MODES = {
    "stateful_sse": {},
    "stateful_json": {"json_response": True},
    "stateless": {"stateless_http": True},
    "stateless_json": {"stateless_http": True, "json_response": True},
}


@pytest.mark.parametrize("mode", list(MODES))
def test_streamable_http_handshake_era(registry: CollectorRegistry, mode: str) -> None:
    options = MODES[mode]
    stateful = not options.get("stateless_http")
    with running(make_server().streamable_http_app(**options), registry) as url:
        async def session() -> None:
            async with Client(url + "/mcp", mode="legacy") as client:
                await common_calls(client)

        asyncio.run(session())
        wait_until(lambda: gauges_idle(registry))
        assert_common(registry, "streamable_http", HANDSHAKE)
        tools_calls = total(registry, OPERATION_COUNT, mcp_method_name="tools/call")
        assert tools_calls == 5
        assert value(registry, OPERATION_COUNT, mcp_method_name="initialize",
                     gen_ai_tool_name="", gen_ai_prompt_name="", error_type="",
                     mcp_protocol_version=HANDSHAKE) == 1
        assert value(registry, "mcp_server_notifications_total",
                     mcp_method_name="notifications/initialized", direction="in") == 1
        started = total(registry, "mcp_server_sessions_started_total")
        ended = value(registry, "mcp_server_sessions_ended_total", transport="streamable_http",
                      end_reason="client_delete")
        assert (started, ended) == ((1, 1) if stateful else (0, 0))
        post_streams = total(registry, "http_server_streams_total", stream_kind="post_response")
        # SSE answers are streams (initialize, tools/list, 5 calls, prompts/get); JSON are not.
        assert post_streams == (0 if options.get("json_response") else 8)
        if stateful:
            assert total(registry, "http_server_streams_total",
                         stream_kind="get_notifications") == 1
            # The session is gone: its id now gets 404 "Session not found".
            reply = httpx.post(url + "/mcp", json={"jsonrpc": "2.0", "id": 1,
                                                   "method": "ping"},
                               headers={"mcp-session-id": "f" * 32,
                                        "accept": "application/json, text/event-stream",
                                        "mcp-protocol-version": HANDSHAKE})
            assert reply.status_code == 404
            # Recorded when the app returns, a moment after the client has its answer.
            wait_until(lambda: value(registry, "mcp_server_session_not_found_total",
                                     transport="streamable_http") == 1)
            assert value(registry, REQUESTS, mcp_method_name="ping", outcome="rejected",
                         transport="streamable_http") == 1
        assert total(registry, "mcp_server_protocol_errors_total") == 0
        check_metrics(generate_latest(registry))
    assert gauges_idle(registry)


def test_legacy_http_sse_transport(registry: CollectorRegistry) -> None:
    with running(make_server().sse_app(), registry) as url:
        async def session() -> None:
            async with Client(sse_client(url + "/sse"), mode="legacy") as client:
                await common_calls(client)

        asyncio.run(session())
        wait_until(lambda: gauges_idle(registry))
        assert_common(registry, "sse", HANDSHAKE)
        # Answers arrived on the GET stream, matched to the POSTs by id.
        assert total(registry, OPERATION_COUNT, mcp_method_name="tools/call") == 5
        assert value(registry, "mcp_server_sessions_started_total", transport="sse") == 1
        assert value(registry, "mcp_server_sessions_ended_total", transport="sse",
                     end_reason="client_disconnect") == 1
        assert value(registry, "mcp_server_session_duration_seconds_count", transport="sse",
                     end_reason="client_disconnect") == 1
        assert total(registry, "http_server_streams_total", stream_kind="sse_legacy") == 1
        # POSTs were 202s: requests, not operations, on the HTTP side.
        assert total(registry, "http_server_request_duration_seconds_count",
                     http_request_method="POST", http_response_status_code="202") == 9
        check_metrics(generate_latest(registry))


def test_legacy_sse_resynchronises_after_an_oversized_answer(registry: CollectorRegistry) -> None:
    """One answer past ``max_frame_bytes`` is counted by its id; the calls after it still are."""
    server = make_server()

    @server.tool()
    def big() -> str:
        return "x" * 100_000

    later = 10
    app = MetricsMiddleware(server.sse_app(), registry=registry, max_frame_bytes=16_384)
    with serve(app) as url:
        async def session() -> None:
            async with Client(sse_client(url + "/sse"), mode="legacy") as client:
                await client.list_tools()
                assert len((await client.call_tool("big", {})).content[0].text) == 100_000
                for i in range(later):
                    assert not (await client.call_tool("add", {"a": i, "b": 1})).is_error

        asyncio.run(session())
        wait_until(lambda: gauges_idle(registry))
    assert tool_calls(registry, "big", "ok") == 1
    assert tool_calls(registry, "add", "ok") == later
    assert total(registry, TOOL_CALLS) == later + 1
    assert value(registry, OPERATION_COUNT, mcp_method_name="tools/call", gen_ai_tool_name="add",
                 gen_ai_prompt_name="", error_type="", mcp_protocol_version=HANDSHAKE) == later
    assert value(registry, "asgi_mcp_metrics_parse_limit_total", where="sse_frame",
                 reason="too_large") == 1
    assert total(registry, "asgi_mcp_metrics_parse_limit_total") == 1
    assert total(registry, REQUESTS, outcome="cancelled") == 0
    assert value(registry, "mcp_server_sessions_ended_total", transport="sse",
                 end_reason="client_disconnect") == 1


@pytest.mark.parametrize(("client_mode", "app_options"), [
    ("2026-07-28", {}), ("auto", {}),
    # JSON answers: every tools/call and prompts/get is read by a NamedCall (see below).
    ("2026-07-28", {"json_response": True}),
])
def test_modern_era(registry: CollectorRegistry, client_mode: str, app_options: dict[str, Any],
                    monkeypatch: pytest.MonkeyPatch) -> None:
    modern = "2026-07-28"
    observed: list[Any] = []
    observe = McpTracker.observe

    def spy(self: McpTracker, scope: Any, started: float) -> Any:
        observer = observe(self, scope, started)
        observed.append(observer)
        return observer

    monkeypatch.setattr(McpTracker, "observe", spy)
    with running(make_server().streamable_http_app(**app_options), registry) as url:
        async def session() -> None:
            async with Client(url + "/mcp", mode=client_mode) as client:
                await common_calls(client)
                answer = await client.call_tool("ask", {})
                assert [block.text for block in answer.content] == ["done"]
                async with client.listen(tools_list_changed=True) as subscription:
                    await client.call_tool("change", {})
                    async for _event in subscription:
                        break

        asyncio.run(session())
        wait_until(lambda: gauges_idle(registry)
                   and total(registry, REQUESTS, mcp_method_name="subscriptions/listen") == 1)
        assert_common(registry, "streamable_http", modern)

        # The multi-round trip: one input_required answer, then the retry with a new id.
        assert tool_calls(registry, "ask", "input_required") == 1
        assert tool_calls(registry, "ask", "ok") == 1
        assert tool_calls(registry, "change", "ok") == 1
        assert total(registry, OPERATION_COUNT, mcp_method_name="tools/call") == 8
        assert total(registry, TOOL_CALLS) == 8
        # No sessions in this era; subscriptions/listen is the long-lived stream.
        assert total(registry, "mcp_server_sessions_started_total") == 0
        assert total(registry, "http_server_streams_total",
                     stream_kind="subscriptions_listen") == 1
        assert value(registry, REQUESTS, mcp_method_name="subscriptions/listen", outcome="ok",
                     transport="streamable_http") == 1
        for method in ("notifications/subscriptions/acknowledged",
                       "notifications/tools/list_changed"):
            assert value(registry, "mcp_server_notifications_total", mcp_method_name=method,
                         direction="out") == 1
        discover = value(registry, OPERATION_COUNT, mcp_method_name="server/discover",
                         gen_ai_tool_name="", gen_ai_prompt_name="", error_type="",
                         mcp_protocol_version=modern)
        assert discover == (1 if client_mode == "auto" else 0)
        assert total(registry, "mcp_server_protocol_errors_total") == 0
        check_metrics(generate_latest(registry))
        # Named by their headers: eight tool calls, one prompts/get (and server/discover)
        # are read by a NamedCall; with JSON answers, each to the end by it (the "ask" round
        # trip included), not handed to a full exchange.
        named = [o for o in observed if type(o) is NamedCall]
        assert len(named) == 9 + (client_mode == "auto")
        if app_options:
            assert all(o.full is None and o.answered for o in named)


def test_open_sessions_end_with_shutdown(registry: CollectorRegistry) -> None:
    headers = {"accept": "application/json, text/event-stream"}
    initialize = {"jsonrpc": "2.0", "id": 0, "method": "initialize",
                  "params": {"protocolVersion": HANDSHAKE, "capabilities": {},
                             "clientInfo": {"name": "raw", "version": "1"}}}
    with running(make_server().streamable_http_app(json_response=True), registry) as url:
        for _ in range(2):
            reply = httpx.post(url + "/mcp", json=initialize, headers=headers)
            assert reply.status_code == 200 and reply.headers["mcp-session-id"]
        # A request without its session id is refused and starts nothing.
        refused = httpx.post(url + "/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
                             headers={**headers, "mcp-protocol-version": HANDSHAKE})
        assert refused.status_code == 400
        wait_until(lambda: value(registry, "mcp_server_protocol_errors_total",
                                 reason="missing_session_id") == 1)
        wait_until(lambda: value(registry, "mcp_server_sessions_active",
                                 transport="streamable_http") == 2)
    # Clients that never said goodbye: the server's shutdown ends their sessions.
    assert value(registry, "mcp_server_sessions_ended_total", transport="streamable_http",
                 end_reason="shutdown") == 2
    assert value(registry, "mcp_server_sessions_started_total", transport="streamable_http") == 2
    assert gauges_idle(registry)
    check_metrics(generate_latest(registry))


@pytest.mark.parametrize("mode", ["stateful_sse", "stateless_json"])
def test_client_abort_mid_body_is_no_server_error(registry: CollectorRegistry, mode: str) -> None:
    """The SDK answers a body cut short with a 500 nobody receives: the client left first."""
    aborts = 3
    with running(make_server().streamable_http_app(**MODES[mode]), registry) as url:
        port = int(url.rsplit(":", 1)[1])
        for done in range(1, aborts + 1):
            with socket.create_connection(("127.0.0.1", port)) as sock:
                sock.sendall(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n" % port
                             + b"Content-Type: application/json\r\n"
                             b"Accept: application/json, text/event-stream\r\n"
                             b"Content-Length: 100000\r\n\r\n" + b'{"jsonrpc": "2.0", ' * 50)
                wait_until(lambda: total(registry, "http_server_active_requests") == 1)
            wait_until(lambda n=done: total(registry, DURATION_COUNT) == n)
        wait_until(lambda: gauges_idle(registry))
    assert value(registry, DURATION_COUNT, http_request_method="POST", http_route="/mcp",
                 http_response_status_code="499", error_type="client_disconnect") == aborts
    assert total(registry, DURATION_COUNT) == aborts
    assert total(registry, "asgi_mcp_metrics_internal_errors_total") == 0


IDLE_TIMEOUT = 0.5
SESSIONS_ENDED = "mcp_server_sessions_ended_total"


def idle_ended(registry: CollectorRegistry) -> float:
    return value(registry, SESSIONS_ENDED, transport="streamable_http", end_reason="idle_timeout")


def test_session_of_a_vanished_client_ends_as_idle(registry: CollectorRegistry) -> None:
    headers = {"accept": "application/json, text/event-stream"}
    initialize = {"jsonrpc": "2.0", "id": 0, "method": "initialize",
                  "params": {"protocolVersion": HANDSHAKE, "capabilities": {},
                             "clientInfo": {"name": "raw", "version": "1"}}}
    app = MetricsMiddleware(make_server().streamable_http_app(json_response=True),
                            registry=registry, session_idle_timeout_seconds=IDLE_TIMEOUT)
    with serve(app) as url:
        reply = httpx.post(url + "/mcp", json=initialize, headers=headers)
        assert reply.status_code == 200 and reply.headers["mcp-session-id"]
        # The client is gone without a DELETE: no request comes to tell.
        wait_until(lambda: idle_ended(registry) == 1, timeout=30)
        assert value(registry, "mcp_server_sessions_active", transport="streamable_http") == 0
        assert value(registry, "mcp_server_session_duration_seconds_sum",
                     transport="streamable_http", end_reason="idle_timeout") >= IDLE_TIMEOUT
        assert gauges_idle(registry)
    assert total(registry, SESSIONS_ENDED) == 1
    assert total(registry, "asgi_mcp_metrics_internal_errors_total") == 0


def test_session_with_an_open_stream_is_not_idle(registry: CollectorRegistry) -> None:
    app = MetricsMiddleware(make_server().streamable_http_app(), registry=registry,
                            session_idle_timeout_seconds=IDLE_TIMEOUT)
    with serve(app) as url:
        async def session() -> None:
            async with Client(url + "/mcp", mode="legacy") as client:
                await client.call_tool("add", {"a": 1, "b": 2})
                # The SDK client holds the session's GET stream open, like a live client.
                for _ in range(3000):
                    if total(registry, "http_server_streams_active",
                             stream_kind="get_notifications") == 1:
                        break
                    await asyncio.sleep(0.01)
                else:
                    raise AssertionError("the client's GET stream never opened")
                await asyncio.sleep(4 * IDLE_TIMEOUT)  # drives the idle time
                assert value(registry, "mcp_server_sessions_active",
                             transport="streamable_http") == 1
                assert not (await client.call_tool("add", {"a": 1, "b": 2})).is_error

        asyncio.run(session())
        wait_until(lambda: gauges_idle(registry))
    assert idle_ended(registry) == 0
    assert value(registry, SESSIONS_ENDED, transport="streamable_http",
                 end_reason="client_delete") == 1
    assert tool_calls(registry, "add", "ok") == 2

"""The MCP wire tracker against the 1.x SDK line (``FastMCP``) and its own client.

Runs in the ``mcp1`` tox environment, where ``mcp<2`` is installed; with the 2.x SDK
installed (the default development environment) the module is skipped.  The 1.x line differs
on the wire where it matters to the tracker: the transport's error id is ``"server-error"``
instead of ``null``, an uncaught handler exception is answered with the non-standard code 0,
and an unknown method is ``-32602`` (not ``-32601``) inside an HTTP 200.
"""

from __future__ import annotations

import asyncio
import json
from importlib.metadata import version
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry, generate_latest

if int(version("mcp").split(".")[0]) >= 2:
    pytest.skip("needs mcp<2 (FastMCP 1.x line); run it with `tox -e mcp1`",
                allow_module_level=True)

from mcp import ClientSession
from mcp.client.sse import sse_client

try:  # the current name; older 1.x releases only have the deprecated one
    from mcp.client.streamable_http import streamable_http_client
except ImportError:  # pragma: no cover - depends on the installed 1.x release
    from mcp.client.streamable_http import streamablehttp_client as streamable_http_client
from mcp.server.fastmcp import FastMCP

from asgi_mcp_metrics import MetricsMiddleware

from ..asgi import total, value
from ..helpers import tool_calls
from ..promtool import check_metrics
from .servers import gauges_idle, serve, wait_until
from .tools import register_common_tools

pytestmark = pytest.mark.e2e

OPERATION_COUNT = "mcp_server_operation_duration_seconds_count"
ACCEPT = "application/json, text/event-stream"


def make_server(**settings: Any) -> FastMCP:
    server = FastMCP("v1", **settings)
    register_common_tools(server)

    @server.prompt()
    def broken() -> str:
        raise RuntimeError("cannot render")

    return server


async def calls(session: ClientSession) -> None:
    await session.initialize()
    await session.list_tools()
    await session.list_prompts()  # prompt names become labels once listed
    for i in range(3):
        assert not (await session.call_tool("add", {"a": i, "b": 1})).isError
    assert (await session.call_tool("boom", {})).isError
    assert (await session.call_tool("nope", {})).isError
    with pytest.raises(Exception, match="cannot render"):
        await session.get_prompt("broken")


def assert_calls(registry: CollectorRegistry, transport: str) -> None:
    assert tool_calls(registry, "add", "ok") == 3
    assert tool_calls(registry, "boom", "tool_error") == 1
    assert tool_calls(registry, "_OTHER", "tool_error") == 1
    assert total(registry, OPERATION_COUNT, mcp_method_name="tools/call") == 5
    # FastMCP 1.x answers a handler exception with the non-standard code 0.
    assert value(registry, OPERATION_COUNT, mcp_method_name="prompts/get", gen_ai_tool_name="",
                 gen_ai_prompt_name="broken", error_type="0",
                 mcp_protocol_version="2025-11-25") == 1
    assert value(registry, "mcp_server_requests_total", mcp_method_name="prompts/get",
                 outcome="error", transport=transport) == 1
    assert total(registry, "asgi_mcp_metrics_internal_errors_total") == 0
    assert total(registry, "asgi_mcp_metrics_parse_limit_total") == 0


@pytest.mark.parametrize("settings", [{}, {"json_response": True},
                                      {"stateless_http": True, "json_response": True}],
                         ids=["stateful_sse", "stateful_json", "stateless"])
def test_streamable_http(registry: CollectorRegistry, settings: dict[str, Any]) -> None:
    stateful = not settings.get("stateless_http")
    app = MetricsMiddleware(make_server(**settings).streamable_http_app(), registry=registry)
    with serve(app) as url:
        async def session() -> None:
            async with streamable_http_client(url + "/mcp") as (read, write, _), \
                    ClientSession(read, write) as client:
                await calls(client)

        asyncio.run(session())
        wait_until(lambda: gauges_idle(registry))
        assert_calls(registry, "streamable_http")
        sessions = (total(registry, "mcp_server_sessions_started_total"),
                    value(registry, "mcp_server_sessions_ended_total",
                          transport="streamable_http", end_reason="client_delete"))
        assert sessions == ((1, 1) if stateful else (0, 0))
        if stateful:
            # 1.x puts "server-error" where 2.x puts null as the id of a transport error.
            reply = httpx.post(url + "/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
                               headers={"accept": ACCEPT, "mcp-session-id": "0" * 32})
            assert reply.status_code == 404
            assert json.loads(reply.text)["id"] == "server-error"
            # Recorded when the app returns, a moment after the client has its answer.
            wait_until(lambda: value(registry, "mcp_server_session_not_found_total",
                                     transport="streamable_http") == 1)
            assert total(registry, "asgi_mcp_metrics_parse_limit_total") == 0
        check_metrics(generate_latest(registry))


def test_unknown_method_is_invalid_params_in_1x(registry: CollectorRegistry) -> None:
    app = MetricsMiddleware(make_server(json_response=True).streamable_http_app(),
                            registry=registry)
    headers = {"accept": ACCEPT}
    initialize = {"jsonrpc": "2.0", "id": 0, "method": "initialize",
                  "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                             "clientInfo": {"name": "raw", "version": "1"}}}
    with serve(app) as url:
        reply = httpx.post(url + "/mcp", json=initialize, headers=headers)
        session = {**headers, "mcp-session-id": reply.headers["mcp-session-id"],
                   "mcp-protocol-version": "2025-06-18"}
        reply = httpx.post(url + "/mcp", json={"jsonrpc": "2.0", "id": 1,
                                               "method": "no/such/method"}, headers=session)
        assert reply.status_code == 200
        wait_until(lambda: value(registry, OPERATION_COUNT, mcp_method_name="_OTHER",
                                 gen_ai_tool_name="", gen_ai_prompt_name="",
                                 error_type="-32602", mcp_protocol_version="2025-06-18") == 1)
        # The negotiated version labels the initialize itself.
        assert total(registry, OPERATION_COUNT, mcp_method_name="initialize",
                     mcp_protocol_version="2025-06-18") == 1
    assert value(registry, "mcp_server_sessions_ended_total", transport="streamable_http",
                 end_reason="shutdown") == 1
    check_metrics(generate_latest(registry))


def test_legacy_http_sse_transport(registry: CollectorRegistry) -> None:
    app = MetricsMiddleware(make_server().sse_app(), registry=registry)
    with serve(app) as url:
        async def session() -> None:
            async with sse_client(url + "/sse") as (read, write), \
                    ClientSession(read, write) as client:
                await calls(client)

        asyncio.run(session())
        wait_until(lambda: gauges_idle(registry))
        assert_calls(registry, "sse")
        assert value(registry, "mcp_server_sessions_started_total", transport="sse") == 1
        assert value(registry, "mcp_server_sessions_ended_total", transport="sse",
                     end_reason="client_disconnect") == 1
        assert total(registry, "http_server_streams_total", stream_kind="sse_legacy") == 1
        check_metrics(generate_latest(registry))

"""FastMCP 4.x: its HTTP app instrumented the one-line way, and the native middleware adapter,
driven by FastMCP's own client.  Runs in tox's ``fastmcp`` environment (FastMCP needs
Python >= 3.11); ``tests/conftest.py`` leaves this file out where FastMCP is not installed."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest
from fastmcp import Client, FastMCP
from prometheus_client import CollectorRegistry

from asgi_mcp_metrics.fastmcp_adapter import FastMCPMetricsMiddleware
from asgi_mcp_metrics.starlette import instrument
from asgi_mcp_metrics.testing import sample, total

from ..docs import doc_block
from .servers import ROOT, gauges_idle, serve, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

DOC = ROOT / "docs" / "fastmcp.md"


def build_server() -> FastMCP:
    namespace: dict[str, Any] = {}
    exec(doc_block(DOC, "server"), namespace)
    server: FastMCP = namespace["mcp"]
    return server


async def workload(client: Client) -> None:
    """Two calls of add, one failing tool, one unknown tool, and one tools/list."""
    assert {tool.name for tool in await client.list_tools()} == {"add", "fail"}
    assert (await client.call_tool("add", {"a": 1, "b": 2})).data == 3
    assert (await client.call_tool("add", {"a": 2, "b": 2})).data == 4
    assert (await client.call_tool("fail", {}, raise_on_error=False)).is_error
    assert (await client.call_tool("nope", {}, raise_on_error=False)).is_error


def assert_tool_calls(registry: CollectorRegistry, transport: str) -> None:
    calls = {(tool, outcome): sample(registry, "mcp_tool_calls_total", gen_ai_tool_name=tool,
                                     outcome=outcome, backend="", identity="")
             for tool, outcome in [("add", "ok"), ("fail", "tool_error"),
                                   ("_OTHER", "tool_error")]}
    assert calls == {("add", "ok"): 2, ("fail", "tool_error"): 1, ("_OTHER", "tool_error"): 1}
    assert total(registry, "mcp_tool_calls_total") == 4
    assert total(registry, "mcp_server_requests_total", mcp_method_name="tools/call",
                 transport=transport) == 4
    assert total(registry, "mcp_server_requests_total", mcp_method_name="tools/call",
                 outcome="tool_error") == 2
    assert total(registry, "mcp_server_operation_duration_seconds_count",
                 mcp_method_name="tools/call", gen_ai_tool_name="fail",
                 error_type="tool_error") == 1
    assert total(registry, "mcp_server_operation_duration_seconds_count",
                 mcp_method_name="tools/call", gen_ai_tool_name="add", error_type="") == 2
    assert total(registry, "mcp_server_operation_duration_seconds_count",
                 mcp_method_name="tools/list") == 1


@pytest.mark.parametrize("with_adapter", [False, True], ids=["wire", "wire+adapter"])
async def test_http_app_gets_every_metric_with_sessions(with_adapter: bool) -> None:
    # The handshake era (mode="legacy"): a session from initialize to the client's DELETE.
    registry = CollectorRegistry()
    mcp = build_server()
    if with_adapter:  # both present: every call is still recorded once
        mcp.add_middleware(FastMCPMetricsMiddleware(registry=registry))
    app = instrument(mcp.http_app(), registry=registry)
    with serve(app) as url:
        async with Client(f"{url}/mcp", mode="legacy") as client:
            await workload(client)
        wait_until(lambda: gauges_idle(registry)
                   and total(registry, "mcp_server_sessions_ended_total") == 1)
    assert_tool_calls(registry, "streamable_http")
    assert total(registry, "mcp_server_operation_duration_seconds_count",
                 mcp_method_name="initialize") == 1
    assert total(registry, "mcp_server_notifications_total",
                 mcp_method_name="notifications/initialized", direction="in") == 1
    assert sample(registry, "mcp_server_sessions_started_total", transport="streamable_http") == 1
    assert sample(registry, "mcp_server_sessions_ended_total", transport="streamable_http",
                  end_reason="client_delete") == 1
    assert total(registry, "mcp_server_session_duration_seconds_count") == 1
    assert total(registry, "mcp_server_sessions_active") == 0
    # The client's GET stream is a stream, not a request.
    assert total(registry, "http_server_streams_total", http_route="/mcp") >= 1
    assert total(registry, "http_server_request_duration_seconds_count",
                 http_request_method="GET") == 0


async def test_http_app_in_the_2026_era() -> None:
    # FastMCP's default mode negotiates 2026-07-28: no sessions, a server/discover probe.
    registry = CollectorRegistry()
    app = instrument(build_server().http_app(), registry=registry)
    with serve(app) as url:
        async with Client(f"{url}/mcp") as client:
            await workload(client)
        wait_until(lambda: gauges_idle(registry))
    assert_tool_calls(registry, "streamable_http")
    assert total(registry, "mcp_server_operation_duration_seconds_count",
                 mcp_method_name="tools/call", mcp_protocol_version="2026-07-28") == 4
    assert total(registry, "mcp_server_sessions_started_total") == 0


async def test_the_adapter_alone_covers_a_server_without_http() -> None:
    # FastMCP's in-process transport: no HTTP request, so only the adapter sees the calls.
    registry = CollectorRegistry()
    mcp = build_server()
    mcp.add_middleware(FastMCPMetricsMiddleware(registry=registry))
    async with Client(mcp) as client:
        await workload(client)
    assert_tool_calls(registry, "stdio")
    assert total(registry, "http_server_request_duration_seconds_count") == 0


async def test_the_docs_adapter_snippet() -> None:
    namespace: dict[str, Any] = {"mcp": build_server()}
    exec(doc_block(DOC, "stdio"), namespace)
    from prometheus_client import REGISTRY

    before = total(REGISTRY, "mcp_tool_calls_total", gen_ai_tool_name="add")
    async with Client(namespace["mcp"]) as client:
        await client.call_tool("add", {"a": 1, "b": 1})
    assert total(REGISTRY, "mcp_tool_calls_total", gen_ai_tool_name="add") - before == 1


async def test_the_adapter_over_stdio(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A FastMCP server in a child process on stdio, FastMCP's client on the other end.
    from fastmcp.client.transports import StdioTransport
    from prometheus_client.parser import text_string_to_metric_families

    dump = tmp_path / "metrics.txt"
    transport = StdioTransport(sys.executable, [str(Path(__file__).parent /
                                                    "fastmcp_stdio_server.py")],
                               env={**os.environ, "E2E_METRICS_DUMP": str(dump)},
                               keep_alive=False)
    async with Client(transport) as client:
        await workload(client)
    wait_until(dump.exists, timeout=60)
    registry = CollectorRegistry()

    class Parsed:
        def collect(self) -> Any:
            return text_string_to_metric_families(dump.read_text())

    registry.register(Parsed())  # type: ignore[arg-type]
    assert_tool_calls(registry, "stdio")

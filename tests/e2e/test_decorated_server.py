"""An ``MCPServer`` whose tools are decorated, behind ``MetricsMiddleware``, called by the real
``mcp`` client over real HTTP (uvicorn on 127.0.0.1).

The wire layer and the decorator see the same tool calls; each must be counted exactly once in
``mcp_tool_calls_total``, with the backend the decorator knows.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.server.mcpserver import MCPServer
from mcp_types import CallToolResult, TextContent
from prometheus_client import CollectorRegistry

from asgi_mcp_metrics.decorators import instrument_tool
from asgi_mcp_metrics.sdk_adapter import MetricsServerMiddleware
from asgi_mcp_metrics.starlette import instrument
from tests.asgi import total, value
from tests.e2e.servers import serve

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

CALLS = "mcp_tool_calls_total"


def build_server(registry: CollectorRegistry) -> MCPServer:
    mcp = MCPServer("decorated")

    # The decorator below @mcp.tool(): the SDK registers the instrumented function.
    @mcp.tool()
    @instrument_tool(backend="math", registry=registry)
    async def add(a: int, b: int) -> int:
        return a + b

    # The decorator above @mcp.tool(): the SDK's stored function is swapped for the wrapper.
    @instrument_tool(backend="math", registry=registry)
    @mcp.tool(name="times")
    def multiply(a: int, b: int) -> int:
        return a * b

    @mcp.tool()
    @instrument_tool(backend=lambda path: "files" if path.startswith("/") else "web",
                     registry=registry)
    async def read(path: str) -> str:
        if path == "/missing":
            raise FileNotFoundError(path)
        return f"contents of {path}"

    @instrument_tool(backend="files", registry=registry)
    @mcp.tool()
    def check(path: str) -> CallToolResult:
        return CallToolResult(content=[TextContent(type="text", text="no such file")],
                              is_error=True)

    @mcp.tool()
    def plain_echo(text: str) -> str:  # not decorated: the wire layer counts it
        return text

    return mcp


@contextmanager
def running(registry: CollectorRegistry, *, sdk_middleware: bool = False,
            stateless: bool = False) -> Iterator[str]:
    mcp = build_server(registry)
    if sdk_middleware:
        mcp.middleware.append(MetricsServerMiddleware(registry=registry))
    app = mcp.streamable_http_app(stateless_http=stateless)
    instrument(app, registry=registry, identity="header:X-Client-Id")
    with serve(app) as url:
        yield f"{url}/mcp"


@asynccontextmanager
async def connect(url: str, client_id: str, mode: str) -> AsyncIterator[Client]:
    async with httpx2.AsyncClient(headers={"X-Client-Id": client_id}) as http, \
            Client(streamable_http_client(url, http_client=http), mode=mode) as client:
        yield client


async def make_calls(client: Client) -> None:
    assert (await client.call_tool("add", {"a": 2, "b": 3})).structured_content == {"result": 5}
    assert (await client.call_tool("add", {"a": 1, "b": 1})).structured_content == {"result": 2}
    assert (await client.call_tool("times", {"a": 4, "b": 5})).structured_content == {
        "result": 20}
    assert (await client.call_tool("read", {"path": "/etc/motd"})).is_error is False
    assert (await client.call_tool("read", {"path": "/missing"})).is_error is True
    assert (await client.call_tool("read", {"path": "example.com"})).is_error is False
    assert (await client.call_tool("check", {"path": "/x"})).is_error is True
    assert (await client.call_tool("plain_echo", {"text": "hi"})).is_error is False


def calls(registry: CollectorRegistry, tool: str, backend: str, outcome: str,
          identity: str = "agent-7") -> float:
    return value(registry, CALLS, gen_ai_tool_name=tool, backend=backend, outcome=outcome,
                 identity=identity)


def assert_counted_once(registry: CollectorRegistry) -> None:
    assert calls(registry, "add", "math", "ok") == 2
    assert calls(registry, "times", "math", "ok") == 1
    assert calls(registry, "read", "files", "ok") == 1
    assert calls(registry, "read", "files", "error") == 1
    assert calls(registry, "read", "web", "ok") == 1
    assert calls(registry, "check", "files", "tool_error") == 1
    assert calls(registry, "plain_echo", "", "ok") == 1
    # Eight calls were made: nothing was counted twice.
    assert total(registry, CALLS) == 8
    # The wire layer still times every call (a different metric).
    assert total(registry, "mcp_server_operation_duration_seconds_count",
                 mcp_method_name="tools/call") == 8
    assert total(registry, "mcp_server_operation_duration_seconds_count",
                 mcp_method_name="tools/call", gen_ai_tool_name="add") == 2
    assert total(registry, "mcp_server_requests_total", mcp_method_name="tools/call") == 8


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_each_call_counted_once_with_its_backend(registry: CollectorRegistry,
                                                       mode: str) -> None:
    with running(registry) as url:
        async with connect(url, "agent-7", mode) as client:
            await make_calls(client)
    assert_counted_once(registry)
    # The duration histogram of decorated tools carries the backend too.
    assert value(registry, "mcp_tool_call_duration_seconds_count", gen_ai_tool_name="add",
                 backend="math", outcome="ok") == 2


async def test_sdk_middleware_next_to_the_http_middleware_adds_nothing(
        registry: CollectorRegistry) -> None:
    with running(registry, sdk_middleware=True, stateless=True) as url:
        async with connect(url, "agent-7", "legacy") as client:
            await make_calls(client)
    assert_counted_once(registry)


async def test_decorated_tools_are_known_label_values_before_any_listing(
        registry: CollectorRegistry) -> None:
    with running(registry) as url:
        async with connect(url, "agent-7", "legacy") as client:
            # No tools/list first: declared names are label values anyway.
            await client.call_tool("times", {"a": 1, "b": 2})
    assert calls(registry, "times", "math", "ok") == 1
    assert value(registry, "asgi_mcp_metrics_label_overflow_total", metric=CALLS,
                 label="gen_ai_tool_name") == 0




async def test_without_http_the_sdk_middleware_records_operations(
        registry: CollectorRegistry) -> None:
    mcp = build_server(registry)
    mcp.middleware.append(MetricsServerMiddleware(registry=registry))
    # In-process: the real client and server, no HTTP request in the SDK's context.
    async with Client(mcp, mode="legacy") as client:
        await make_calls(client)
    assert total(registry, "mcp_server_requests_total", mcp_method_name="tools/call",
                 transport="stdio") == 8
    assert total(registry, "mcp_server_requests_total", mcp_method_name="tools/call",
                 outcome="tool_error") == 2
    assert total(registry, "mcp_server_operation_duration_seconds_count",
                 mcp_method_name="tools/call", gen_ai_tool_name="add") == 2
    # Decorated tools count themselves, the SDK middleware counts the rest: once each.
    assert total(registry, CALLS) == 8
    assert calls(registry, "add", "math", "ok", identity="") == 2
    assert calls(registry, "plain_echo", "", "ok", identity="") == 1

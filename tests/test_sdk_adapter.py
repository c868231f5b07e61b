"""The ``mcp`` SDK adapters, driven with the SDK's own context objects (no transport).

End-to-end runs with the real client over HTTP and stdio-less in-process transports live in
``tests/e2e/test_decorated_server.py`` and ``tests/e2e/test_proxy_example.py``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import mcp_types as types
import pytest
from mcp.server.context import ServerRequestContext
from mcp.shared.exceptions import MCPError
from prometheus_client import CollectorRegistry
from pydantic import BaseModel, ValidationError
from starlette.requests import Request

from asgi_mcp_metrics.config import Settings
from asgi_mcp_metrics.decorators import instrument_tool
from asgi_mcp_metrics.identity import current_identity, use_identity
from asgi_mcp_metrics.sdk_adapter import (
    OBSERVED_KEY,
    MetricsServerMiddleware,
    instrument_client_session,
)
from asgi_mcp_metrics.trace_context import current_trace_id
from tests.asgi import http_scope, total, value
from tests.helpers import client_operations

pytestmark = pytest.mark.anyio

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def context(method: str, params: dict[str, Any] | None = None, *, request_id: int | None = 1,
            request: Any = None, meta: Any = None,
            version: str = "2025-11-25") -> ServerRequestContext[Any, Any]:
    return ServerRequestContext(session=None, lifespan_context={},  # type: ignore[arg-type]
                                protocol_version=version, method=method, params=params,
                                request_id=request_id, request=request, meta=meta)


def http_request(headers: list[tuple[bytes, bytes]] = (), *,  # type: ignore[assignment]
                 observed: bool = False, query: bytes = b"") -> Request:
    scope = http_scope("/mcp", "POST", headers=headers, query_string=query)
    if observed:
        scope[OBSERVED_KEY] = True
    return Request(scope)


def returning(result: Any) -> Callable[[Any], Awaitable[Any]]:
    async def call_next(ctx: Any) -> Any:
        return result

    return call_next


def raising(error: BaseException) -> Callable[[Any], Awaitable[Any]]:
    async def call_next(ctx: Any) -> Any:
        raise error

    return call_next


@pytest.fixture
def middleware(registry: CollectorRegistry) -> MetricsServerMiddleware:
    return MetricsServerMiddleware(registry=registry, settings=Settings())


def requests(registry: CollectorRegistry, method: str, outcome: str,
             transport: str = "stdio") -> float:
    return value(registry, "mcp_server_requests_total", mcp_method_name=method, outcome=outcome,
                 transport=transport)


async def test_stdio_operations_are_recorded(registry: CollectorRegistry,
                                             middleware: MetricsServerMiddleware) -> None:
    listing = {"tools": [{"name": "sdk_weather", "inputSchema": {"type": "object"}}]}
    assert await middleware(context("tools/list"), returning(listing)) is listing
    result = {"content": [], "isError": False}
    await middleware(context("tools/call", {"name": "sdk_weather", "arguments": {}}),
                     returning(result))
    await middleware(context("tools/call", {"name": "sdk_weather"}),
                     returning({"content": [], "isError": True}))
    assert requests(registry, "tools/list", "ok") == 1
    assert requests(registry, "tools/call", "ok") == 1
    assert requests(registry, "tools/call", "tool_error") == 1
    # Learned from tools/list: a known label value.
    op = {"mcp_method_name": "tools/call", "gen_ai_tool_name": "sdk_weather",
          "gen_ai_prompt_name": "", "mcp_protocol_version": "2025-11-25"}
    assert value(registry, "mcp_server_operation_duration_seconds_count", error_type="",
                 **op) == 1
    assert value(registry, "mcp_server_operation_duration_seconds_count",
                 error_type="tool_error", **op) == 1
    assert value(registry, "mcp_tool_calls_total", gen_ai_tool_name="sdk_weather", backend="",
                 outcome="tool_error", identity="") == 1
    # Undecorated: timed here too, once per call.
    for outcome in ("ok", "tool_error"):
        assert value(registry, "mcp_tool_call_duration_seconds_count",
                     gen_ai_tool_name="sdk_weather", backend="", outcome=outcome) == 1
    assert total(registry, "mcp_tool_call_duration_seconds_count") == 2


async def test_declared_tools_are_left_to_their_decorator(
        registry: CollectorRegistry, middleware: MetricsServerMiddleware) -> None:
    @instrument_tool(registry=registry, settings=Settings())
    def sdk_declared() -> str:
        return "x"

    await middleware(context("tools/call", {"name": "sdk_declared"}), returning({"content": []}))
    assert total(registry, "mcp_tool_calls_total") == 0
    assert requests(registry, "tools/call", "ok") == 1
    assert total(registry, "mcp_tool_call_duration_seconds_count") == 0


@pytest.mark.parametrize(("error", "outcome", "error_type"), [
    (MCPError(code=-32602, message="Unknown tool"), "error", "-32602"),
    (MCPError(code=-32001, message="timeout"), "error", "-32001"),
    (RuntimeError("handler crashed"), "error", "-32603"),
    (asyncio.CancelledError(), "cancelled", "cancelled"),
])
async def test_failures_by_error_type(registry: CollectorRegistry,
                                      middleware: MetricsServerMiddleware, error: BaseException,
                                      outcome: str, error_type: str) -> None:
    with pytest.raises(type(error)) as caught:
        await middleware(context("resources/read", {"uri": "file:///x"}), raising(error))
    assert caught.value is error
    assert requests(registry, "resources/read", outcome) == 1
    assert total(registry, "mcp_server_operation_duration_seconds_count",
                 error_type=error_type) == 1


async def test_params_validation_error_is_invalid_params(
        registry: CollectorRegistry, middleware: MetricsServerMiddleware) -> None:
    class Params(BaseModel):
        uri: str

    try:
        Params.model_validate({})
    except ValidationError as exc:
        error = exc
    with pytest.raises(ValidationError):
        await middleware(context("resources/read", {}), raising(error))
    assert total(registry, "mcp_server_operation_duration_seconds_count",
                 error_type="-32602") == 1


async def test_notifications_and_unknown_methods(registry: CollectorRegistry,
                                                 middleware: MetricsServerMiddleware) -> None:
    await middleware(context("notifications/initialized", request_id=None), returning(None))
    await middleware(context("vendor/secret-method"), returning({}))
    assert value(registry, "mcp_server_notifications_total",
                 mcp_method_name="notifications/initialized", direction="in") == 1
    assert requests(registry, "_OTHER", "ok") == 1


async def test_input_required_and_prompt_names(registry: CollectorRegistry,
                                               middleware: MetricsServerMiddleware) -> None:
    await middleware(context("prompts/get", {"name": "summarise"}, version="2026-07-28"),
                     returning({"resultType": "input_required", "inputRequests": {}}))
    assert requests(registry, "prompts/get", "input_required") == 1
    assert value(registry, "mcp_server_operation_duration_seconds_count",
                 mcp_method_name="prompts/get", gen_ai_tool_name="",
                 gen_ai_prompt_name="summarise", error_type="",
                 mcp_protocol_version="2026-07-28") == 1


async def test_http_transports(registry: CollectorRegistry,
                               middleware: MetricsServerMiddleware) -> None:
    await middleware(context("ping", request=http_request()), returning({}))
    await middleware(context("ping", request=http_request(query=b"session_id=abc")),
                     returning({}))
    assert requests(registry, "ping", "ok", "streamable_http") == 1
    assert requests(registry, "ping", "ok", "sse") == 1


async def test_observed_by_the_http_middleware_records_nothing(
        registry: CollectorRegistry, middleware: MetricsServerMiddleware) -> None:
    await middleware(context("tools/call", {"name": "x"}, request=http_request(observed=True)),
                     returning({"content": []}))
    assert total(registry, "mcp_server_requests_total") == 0
    assert total(registry, "mcp_tool_calls_total") == 0
    # The positive control: the same call on a request nobody measured is recorded.
    await middleware(context("tools/call", {"name": "x"}, request=http_request()),
                     returning({"content": []}))
    assert total(registry, "mcp_server_requests_total") == 1
    assert total(registry, "mcp_tool_calls_total") == 1


async def test_publishes_identity_and_trace_context(registry: CollectorRegistry) -> None:
    middleware = MetricsServerMiddleware(registry=registry,
                                         settings=Settings(identity="header:X-Client-Id"))
    seen: list[tuple[str | None, str | None]] = []

    async def call_next(ctx: Any) -> Any:
        seen.append((current_identity(), current_trace_id()))
        return {}

    request = http_request([(b"x-client-id", b"agent-1")], observed=True)
    await middleware(context("ping", request=request, meta={"traceparent": TRACEPARENT}),
                     call_next)
    request = http_request([(b"x-client-id", b"agent-2"), (b"traceparent", TRACEPARENT.encode())])
    await middleware(context("ping", request=request), call_next)
    with use_identity("set-by-http-middleware"):
        await middleware(context("ping", request=http_request([(b"x-client-id", b"other")])),
                         call_next)
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    assert seen == [("agent-1", trace_id), ("agent-2", trace_id),
                    ("set-by-http-middleware", None)]
    assert current_identity() is None
    assert current_trace_id() is None


async def test_options_as_keywords(registry: CollectorRegistry) -> None:
    middleware = MetricsServerMiddleware(registry=registry, namespace="sdk", transport="memory")
    await middleware(context("ping"), returning({}))
    assert value(registry, "sdk_mcp_server_requests_total", mcp_method_name="ping",
                 outcome="ok", transport="memory") == 1


async def test_a_context_we_cannot_read_passes_through(registry: CollectorRegistry,
                                                       middleware: MetricsServerMiddleware) -> None:
    class Odd:
        pass

    assert await middleware(Odd(), returning("untouched")) == "untouched"
    assert value(registry, "asgi_mcp_metrics_internal_errors_total",
                 where="sdk_middleware.start") == 1


# -- client sessions ------------------------------------------------------------------------------


class Session:
    """Stands in for ``ClientSession``: the same ``send_request`` entry point."""

    def __init__(self, replies: list[Any]) -> None:
        self.replies = replies

    async def send_request(self, request: Any, result_type: Any, *args: Any) -> Any:
        reply = self.replies.pop(0)
        if isinstance(reply, BaseException):
            raise reply
        return reply

    async def call_tool(self, name: str, arguments: dict[str, Any]) -> Any:
        request = types.CallToolRequest(params=types.CallToolRequestParams(
            name=name, arguments=arguments))
        return await self.send_request(request, types.CallToolResult)


async def test_client_session_calls_are_timed_per_backend(registry: CollectorRegistry) -> None:
    session = Session([
        types.ListToolsResult(tools=[]),
        types.CallToolResult(content=[], is_error=True),
        MCPError(code=-32602, message="Unknown tool"),
    ])
    assert instrument_client_session(session, "files", registry=registry,
                                     settings=Settings()) is session
    instrument_client_session(session, "files", registry=registry, settings=Settings())
    await session.send_request(types.ListToolsRequest(), types.ListToolsResult)
    result = await session.call_tool("read_file", {"path": "/"})
    assert result.is_error
    with pytest.raises(MCPError):
        await session.call_tool("read_file", {})
    assert client_operations(registry, "files", "tools/list") == 1
    assert client_operations(registry, "files", "tools/call", tool="_OTHER",
                             error_type="tool_error") == 1
    assert client_operations(registry, "files", "tools/call", tool="_OTHER",
                             error_type="-32602") == 1
    # Instrumenting twice did not time anything twice.
    assert total(registry, "mcp_client_operation_duration_seconds_count") == 3

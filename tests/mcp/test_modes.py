"""What each ``mcp_parsing`` mode reads and records.

Driven in-process with hand-made ASGI messages through ``MetricsMiddleware``; every test
asserts exact metric values.
"""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from asgi_mcp_metrics import MetricsMiddleware, declared_tools
from tests.asgi import total, value
from tests.helpers import tool_calls
from tests.mcp.wire_server import (
    MODERN,
    REQUESTS,
    SESSION,
    STREAMABLE,
    TOOL_CALLS,
    FakeServer,
    dumps,
    instrument,
    mcp_handler,
    modern_headers,
    operations,
    post,
    request,
)

pytestmark = pytest.mark.anyio


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
    declared_tools.declare_tool("add")
    await post(mw, dumps(request("tools/call", 4, name="add")), version=MODERN,
               extra=modern_headers("tools/call", b"add"))
    assert operations(registry, "tools/call", tool="add", version=MODERN) == 1
    assert len(server.received) == 5


async def test_mode_off(registry: CollectorRegistry) -> None:
    mw = instrument(registry, FakeServer(mcp_handler(sse=True)), mcp_parsing="off")
    await traffic(mw)
    assert mw._observer is None
    assert total(registry, REQUESTS) == 0
    assert total(registry, "mcp_server_sessions_started_total") == 0
    # The positive control: the same traffic with parsing on is recorded.
    parsed = CollectorRegistry()
    await traffic(instrument(parsed, FakeServer(mcp_handler(sse=True))))
    assert total(parsed, REQUESTS) == 4
    assert total(parsed, "mcp_server_sessions_started_total") == 1
    assert total(registry, "http_server_streams_total", stream_kind="sse") == 4

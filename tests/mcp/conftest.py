"""Fixtures of the MCP tracker's tests.
"""

from __future__ import annotations

from typing import Any

import pytest

from asgi_mcp_metrics import declared_tools
from asgi_mcp_metrics.mcp.exchange import McpExchange
from asgi_mcp_metrics.mcp.named import NamedCall
from asgi_mcp_metrics.mcp.tracker import McpTracker


@pytest.fixture(autouse=True)
def _no_declared_tools(monkeypatch: pytest.MonkeyPatch) -> None:
    """Declared tool names are process-wide; every test starts without any."""
    monkeypatch.setattr(declared_tools, "_declared_tools", set())


@pytest.fixture
def exchanges(monkeypatch: pytest.MonkeyPatch) -> list[McpExchange | NamedCall]:
    """Every exchange the trackers create (an McpExchange, or a NamedCall), to look at what
    they still hold afterwards."""
    seen: list[McpExchange | NamedCall] = []
    original = McpTracker.observe

    def observe(self: McpTracker, scope: Any, started: float) -> McpExchange | NamedCall | None:
        exchange = original(self, scope, started)
        if exchange is not None:
            seen.append(exchange)
        return exchange

    monkeypatch.setattr(McpTracker, "observe", observe)
    return seen

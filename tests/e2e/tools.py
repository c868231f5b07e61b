"""The tools every MCP wire scenario calls, for servers of either SDK line to register."""

from __future__ import annotations

from typing import Any


def add(a: int, b: int) -> int:
    return a + b


def boom() -> str:
    raise RuntimeError("kaboom")


def register_common_tools(server: Any) -> None:
    """``add`` answers, ``boom`` fails: a tool error inside an HTTP 200."""
    for tool in (add, boom):
        server.tool()(tool)

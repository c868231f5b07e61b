"""Former name of :mod:`asgi_mcp_metrics.declared_tools`, kept because the docs named it."""

from __future__ import annotations

from .declared_tools import declare_tool, is_declared_tool

__all__ = ["declare_tool", "is_declared_tool"]

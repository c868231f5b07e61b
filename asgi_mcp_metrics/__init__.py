"""Prometheus metrics for MCP servers and MCP/LLM proxies on ASGI."""

from __future__ import annotations

from ._version import __version__
from .config import ConfigError, Settings
from .exposition import MetricsEndpoint
from .middleware import MetricsMiddleware, mark_stream

__all__ = [
    "ConfigError",
    "MetricsEndpoint",
    "MetricsMiddleware",
    "Settings",
    "__version__",
    "mark_stream",
]

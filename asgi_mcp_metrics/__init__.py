"""Prometheus metrics for MCP servers and MCP/LLM proxies on ASGI."""

from __future__ import annotations

from ._version import __version__
from .backends import BackendMonitor
from .config import ConfigError, Settings
from .decorators import instrument_acl, instrument_tool
from .exposition import MetricsEndpoint
from .middleware import MetricsMiddleware, mark_stream

__all__ = [
    "BackendMonitor",
    "ConfigError",
    "MetricsEndpoint",
    "MetricsMiddleware",
    "Settings",
    "__version__",
    "instrument_acl",
    "instrument_tool",
    "mark_stream",
]

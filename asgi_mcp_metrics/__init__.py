"""Prometheus metrics for MCP servers and MCP/LLM proxies on ASGI.

Everything an application writes is importable from here; the framework adapters stay in
``asgi_mcp_metrics.starlette`` and ``asgi_mcp_metrics.django``.
"""

from __future__ import annotations

from ._version import __version__
from .backends import BackendMonitor
from .config import ConfigError, Settings
from .declared_tools import declare_tool
from .decorators import instrument_acl, instrument_tool
from .exposition import MetricsEndpoint
from .identity import current_identity, resolve_identity, use_identity
from .llm import LLMMetrics
from .middleware import MetricsMiddleware, mark_stream
from .sdk_adapter import MetricsServerMiddleware, instrument_client_session
from .trace_context import use_traceparent

__all__ = [
    "BackendMonitor",
    "ConfigError",
    "LLMMetrics",
    "MetricsEndpoint",
    "MetricsMiddleware",
    "MetricsServerMiddleware",
    "Settings",
    "__version__",
    "current_identity",
    "declare_tool",
    "instrument_acl",
    "instrument_client_session",
    "instrument_tool",
    "mark_stream",
    "resolve_identity",
    "use_identity",
    "use_traceparent",
]

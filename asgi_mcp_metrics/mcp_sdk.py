"""Former name of :mod:`asgi_mcp_metrics.sdk_adapter`, kept because the docs named it."""

from __future__ import annotations

from .sdk_adapter import OBSERVED_KEY, MetricsServerMiddleware, instrument_client_session

__all__ = ["OBSERVED_KEY", "MetricsServerMiddleware", "instrument_client_session"]

"""``path("", include("asgi_mcp_metrics.django.urls"))``: the endpoint at ``metrics_path``.

The path is read from ``settings.ASGI_MCP_METRICS["metrics_path"]`` when the URLconf is first
imported.  The exact path is served, without a redirect to a trailing slash.
"""

from __future__ import annotations

from django.urls import path

from . import views
from .conf import get_config

app_name = "asgi_mcp_metrics"

urlpatterns = [
    path(get_config().settings.metrics_path.removeprefix("/"), views.metrics, name="metrics"),
]

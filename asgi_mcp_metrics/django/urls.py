"""``path("", include("asgi_mcp_metrics.django.urls"))``: the endpoint at ``metrics_path`` and
the operator surfaces that are on, at their paths (``docs/surfaces.md``).

The paths are read from ``settings.ASGI_MCP_METRICS`` when the URLconf is first imported.  The
exact paths are served, without a redirect to a trailing slash.
"""

from __future__ import annotations

from django.urls import path

from ..surfaces.paths import SurfacePaths
from . import views
from .conf import get_config

app_name = "asgi_mcp_metrics"

_settings = get_config().settings

urlpatterns = [
    path(_settings.metrics_path.removeprefix("/"), views.metrics, name="metrics"),
    *(path(route.removeprefix("/"), views.surface, {"surface": name}, name=f"metrics_{name}")
      for name, route in SurfacePaths.of(_settings).items()),
]

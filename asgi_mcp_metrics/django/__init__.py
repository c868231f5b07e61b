"""Django adapter.

- ``INSTALLED_APPS``: ``"asgi_mcp_metrics.django"`` (validates ``settings.ASGI_MCP_METRICS``);
- ``MIDDLEWARE``: ``"asgi_mcp_metrics.django.middleware.RouteMiddleware"``, first;
- ``urls.py``: ``path("", include("asgi_mcp_metrics.django.urls"))``;
- ``asgi.py``: ``application = get_asgi_application()`` from this package.

See ``docs/django.md``.
"""

from __future__ import annotations

from .asgi import get_asgi_application, instrument

__all__ = ["get_asgi_application", "instrument"]

"""The ASGI entry point: Django (or any ASGI app) inside ``MetricsMiddleware``.

.. code-block:: python

    # asgi.py
    import os
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "myproject.settings")

    from asgi_mcp_metrics.django import get_asgi_application

    application = get_asgi_application()

The outer layer sees every byte the server sends, so streaming responses (SSE included) are
measured to their last byte and counted as streams, and MCP traffic is parsed on the wire.
"""

from __future__ import annotations

from django.core.asgi import get_asgi_application as django_asgi_application

from .._binding import caller
from ..middleware import MetricsMiddleware
from ..types import ASGIApp
from .checks import report_problems_once
from .conf import bind_config


def get_asgi_application() -> MetricsMiddleware:
    """Django's ASGI application wrapped in ``MetricsMiddleware``, configured from settings."""
    return instrument(django_asgi_application())


def instrument(app: ASGIApp) -> MetricsMiddleware:
    """Wrap any ASGI ``app`` in ``MetricsMiddleware`` configured from Django's settings.

    For an ``asgi.py`` that routes some paths (an MCP server, say) beside Django: wrap the
    router, so both are measured by one middleware.  Call it after Django is set up (after
    ``django.core.asgi.get_asgi_application()``).
    """
    config = bind_config(f"asgi_mcp_metrics.django.instrument() at {caller()}")
    middleware = MetricsMiddleware(app, registry=config.registry, settings=config.settings)
    report_problems_once()
    return middleware

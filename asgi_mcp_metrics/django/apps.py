"""``INSTALLED_APPS += ["asgi_mcp_metrics.django"]``: settings are validated at start-up."""

from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.core.signals import request_started


class AsgiMcpMetricsConfig(AppConfig):  # type: ignore[misc]  # Django ships no types
    name = "asgi_mcp_metrics.django"
    label = "asgi_mcp_metrics"
    verbose_name = "ASGI MCP metrics"

    def ready(self) -> None:
        from . import checks  # registers the system checks
        from .conf import bind_config

        # A bad ASGI_MCP_METRICS fails here, with ImproperlyConfigured naming the key, rather
        # than at the first request; the registry is bound here too.
        bind_config("the asgi_mcp_metrics.django app config (ready())")
        request_started.connect(_report_at_first_request, dispatch_uid=checks.TAG)


def _report_at_first_request(**kwargs: Any) -> None:
    from .checks import TAG, report_problems_once

    request_started.disconnect(dispatch_uid=TAG)
    report_problems_once()

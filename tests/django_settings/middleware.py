"""Middleware that only the tests install (through override_settings)."""

from __future__ import annotations

from typing import Any

from asgi_mcp_metrics.django.middleware import RouteMiddleware


class SyncOnlyMiddleware:
    """Makes Django run every middleware above it in sync mode, even under ASGI."""

    sync_capable = True
    async_capable = False

    def __init__(self, get_response: Any) -> None:
        self.get_response = get_response

    def __call__(self, request: Any) -> Any:
        return self.get_response(request)


class ProjectRouteMiddleware(RouteMiddleware):
    """A project's own subclass still satisfies the start-up check."""

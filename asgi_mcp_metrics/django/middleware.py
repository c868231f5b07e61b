"""``RouteMiddleware``: gives the outer ASGI layer Django's route, or records by itself.

Put it first in ``MIDDLEWARE``.  Once the response exists it knows which URL pattern served the
request (``request.resolver_match``) and:

- under ASGI behind ``MetricsMiddleware`` (``asgi_mcp_metrics.django.get_asgi_application``),
  writes the route template into the request's ASGI scope - the very dict the outer layer
  holds - and records nothing itself, so nothing is counted twice;
- without that outer layer (WSGI, or plain ``django.core.asgi``), records the request itself
  through the same exchange logic, so such a deployment is not silently empty.

It runs in Django's sync and async chains alike, without ``MiddlewareMixin``'s thread hops.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponseBase

from ..middleware import OBSERVED_KEY
from ..routing import ROUTE_KEY
from .conf import get_config
from .recording import DirectRecorder
from .routes import request_route

GetResponse = Callable[[HttpRequest], Any]


class RouteMiddleware:
    """Django middleware: stash the route template for ``MetricsMiddleware``, or record."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: GetResponse) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)
        config = get_config()
        self._recorder = DirectRecorder(config.settings, config.registry)

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self._acall(request)
        scope = _observed_scope(request)
        if scope is not None:
            response = self.get_response(request)
            self._stash_route(request, scope)
            return response
        exchange = self._recorder.begin(request)
        if exchange is None:
            return self.get_response(request)
        try:
            response = self.get_response(request)
        except BaseException as error:
            exchange.failed(error)
            raise
        return exchange.respond(request, response)

    async def _acall(self, request: HttpRequest) -> HttpResponseBase:
        get_response: Callable[[HttpRequest], Awaitable[HttpResponseBase]] = self.get_response
        scope = _observed_scope(request)
        if scope is not None:
            response = await get_response(request)
            self._stash_route(request, scope)
            return response
        exchange = self._recorder.begin(request)
        if exchange is None:
            return await get_response(request)
        try:
            response = await get_response(request)
        except BaseException as error:
            exchange.failed(error)
            raise
        return exchange.respond(request, response)

    def _stash_route(self, request: HttpRequest, scope: dict[str, Any]) -> None:
        # Unmatched requests get nothing: the outer layer then applies the same fixed values
        # (unmatched, redirect) as for any other framework.
        try:
            route = request_route(request)
            if route is not None:
                scope[ROUTE_KEY] = route
        except Exception:
            self._recorder.internal_error("django_route")


def _observed_scope(request: HttpRequest) -> dict[str, Any] | None:
    """The ASGI scope of ``request`` when ``MetricsMiddleware`` already measures it."""
    scope: dict[str, Any] | None = getattr(request, "scope", None)
    if scope is not None and scope.get(OBSERVED_KEY):
        return scope
    return None

"""Starlette / FastAPI adapter: one call adds the middleware and serves the endpoint.

.. code-block:: python

    from asgi_mcp_metrics.starlette import instrument

    app = Starlette(routes=[...])
    instrument(app)          # MetricsMiddleware + GET /metrics (+ the operator surfaces)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.datastructures import URLPath
from starlette.routing import BaseRoute, Match, NoMatchFound
from starlette.types import Receive, Scope, Send

from ._binding import bind, caller
from .config import Settings, configure
from .exposition import MetricsEndpoint
from .middleware import MetricsMiddleware
from .surfaces.app import Surfaces
from .types import ASGIApp

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from .config import InstrumentOptions

AppT = TypeVar("AppT", bound=Starlette)


def instrument(app: AppT, *, registry: CollectorRegistry | None = None,
               settings: Settings | None = None, expose: bool = True,
               **options: Unpack[InstrumentOptions]) -> AppT:
    """Add :class:`MetricsMiddleware` to ``app`` and serve the metrics at ``metrics_path``,
    and the operator surfaces that are on (``docs/surfaces.md``) at their paths; their
    :class:`~asgi_mcp_metrics.surfaces.app.Surfaces` is ``app.state.asgi_mcp_metrics_surfaces``.

    The endpoint route goes first in the routing table, so a ``Mount("/", ...)`` (which matches
    every path) cannot shadow it.  ``expose=False`` only adds the middleware, for apps that
    serve the metrics elsewhere (another port, another app).  Changes ``app`` in place and
    returns it.
    """
    configured = configure(settings, options, "instrument()")
    settings = configured.settings
    # Bound here, not when Starlette builds its middleware stack at the first event: anything
    # recording before (or after) this line joins this binding, and a conflict raises here.
    bind(registry, configured, f"instrument() at {caller()}")
    app.add_middleware(MetricsMiddleware, registry=registry, settings=settings)
    if expose:
        endpoint = MetricsEndpoint(registry=registry, settings=settings)
        apps: dict[str, tuple[str, ASGIApp]] = {settings.metrics_path: ("metrics", endpoint)}
        if settings.surfaces:
            surfaces = Surfaces(registry=registry, settings=settings)
            for name, path, handler in surfaces.routes():
                apps.setdefault(path, (f"metrics_{name}", handler))
            app.state.asgi_mcp_metrics_surfaces = surfaces
        app.router.routes.insert(0, ExactRoutes(apps))
    return app


class ExactRoutes(BaseRoute):
    """The metrics endpoint and every operator surface as one route: an exact-path dict
    look-up, where a route per path would cost every request of the app a regular-expression
    match each.  The apps answer every method themselves (405 with ``Allow`` where due)."""

    def __init__(self, apps: dict[str, tuple[str, ASGIApp]]) -> None:
        self._apps = apps
        self._paths = {name: path for path, (name, _) in apps.items()}

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] == "http":
            found = self._apps.get(_route_path(scope))
            if found is not None:
                return Match.FULL, {"endpoint": found[1]}
        return Match.NONE, {}

    def url_path_for(self, name: str, /, **path_params: Any) -> URLPath:
        path = self._paths.get(name)
        if path is None or path_params:
            raise NoMatchFound(name, path_params)
        return URLPath(path=path, protocol="http")

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._apps[_route_path(scope)][1](scope, receive, send)


def _route_path(scope: Scope) -> str:
    # As Starlette routes: the path below the root_path a proxy or a mount put in front.
    path: str = scope["path"]
    root_path = scope.get("root_path", "")
    return path[len(root_path):] if root_path and path.startswith(root_path) else path

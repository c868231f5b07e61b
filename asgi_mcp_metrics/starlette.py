"""Starlette / FastAPI adapter: one call adds the middleware and serves the endpoint.

.. code-block:: python

    from asgi_mcp_metrics.starlette import instrument

    app = Starlette(routes=[...])
    instrument(app)          # MetricsMiddleware + GET /metrics (+ the operator surfaces)
"""

from __future__ import annotations

from typing import Any, TypeVar

from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.datastructures import URLPath
from starlette.routing import BaseRoute, Match, NoMatchFound, Route
from starlette.types import Receive, Scope, Send

from .config import Settings
from .exposition import MetricsEndpoint
from .middleware import MetricsMiddleware
from .surfaces.app import Surfaces

AppT = TypeVar("AppT", bound=Starlette)


def instrument(app: AppT, *, registry: CollectorRegistry | None = None,
               settings: Settings | None = None, expose: bool = True, **options: Any) -> AppT:
    """Add :class:`MetricsMiddleware` to ``app`` and serve the metrics at ``metrics_path``,
    and the operator surfaces that are on (``docs/surfaces.md``) at their paths; their
    :class:`~asgi_mcp_metrics.surfaces.app.Surfaces` is ``app.state.asgi_mcp_metrics_surfaces``.

    The endpoint route goes first in the routing table, so a ``Mount("/", ...)`` (which matches
    every path) cannot shadow it.  ``expose=False`` only adds the middleware, for apps that
    serve the metrics elsewhere (another port, another app).  Changes ``app`` in place and
    returns it.
    """
    if settings is None:
        settings = Settings.load(overrides=options)
    elif options:
        settings = settings.replace(**options)
    # Starlette's middleware factory protocol spells the ASGI types with Any.
    app.add_middleware(MetricsMiddleware, registry=registry,  # type: ignore[arg-type]
                       settings=settings)
    if expose:
        endpoint = MetricsEndpoint(registry=registry, settings=settings)
        # An ASGI app as endpoint (not a function): Starlette hands it every method, and the
        # endpoint answers 405 with an Allow header itself.
        app.router.routes.insert(0, Route(settings.metrics_path, endpoint, name="metrics"))
        if settings.surfaces:
            surfaces = Surfaces(registry=registry, settings=settings)
            app.router.routes.insert(0, SurfacesRoute(surfaces))
            app.state.asgi_mcp_metrics_surfaces = surfaces
    return app


class SurfacesRoute(BaseRoute):
    """Every operator surface as one route, matched by one dict look-up on the exact path.

    One regular-expression route per surface would be tried, in turn, by every request of the
    app; this route costs a request one look-up.  Route names are ``metrics_<surface>``.
    """

    def __init__(self, surfaces: Surfaces) -> None:
        self.surfaces = surfaces
        self._names = {path: name for name, path in surfaces.paths.items()}
        self._paths = {f"metrics_{name}": path for name, path in surfaces.paths.items()}

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] in ("http", "websocket"):
            name = self._names.get(scope["path"])
            if name is not None:
                return Match.FULL, {"endpoint": self.surfaces.handler(name)}
        return Match.NONE, {}

    def url_path_for(self, name: str, /, **path_params: Any) -> URLPath:
        path = self._paths.get(name)
        if path is None or path_params:
            raise NoMatchFound(name, path_params)
        return URLPath(path=path, protocol="http")

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.surfaces.serve(self._names[scope["path"]], scope, receive, send)

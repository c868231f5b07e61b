"""Starlette / FastAPI adapter: one call adds the middleware and serves the endpoint.

.. code-block:: python

    from asgi_mcp_metrics.starlette import instrument

    app = Starlette(routes=[...])
    instrument(app)          # MetricsMiddleware + GET /metrics
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.routing import Route

from ._binding import bind, caller
from .config import Settings, configure
from .exposition import MetricsEndpoint
from .middleware import MetricsMiddleware

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from .config import InstrumentOptions

AppT = TypeVar("AppT", bound=Starlette)


def instrument(app: AppT, *, registry: CollectorRegistry | None = None,
               settings: Settings | None = None, expose: bool = True,
               **options: Unpack[InstrumentOptions]) -> AppT:
    """Add :class:`MetricsMiddleware` to ``app`` and serve the metrics at ``metrics_path``.

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
        # An ASGI app as endpoint (not a function): Starlette hands it every method, and the
        # endpoint answers 405 with an Allow header itself.
        app.router.routes.insert(0, Route(settings.metrics_path, endpoint, name="metrics"))
    return app

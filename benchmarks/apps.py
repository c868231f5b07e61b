"""The benchmarked Starlette app and the instrumentation variants wrapped around it.

Every variant is the same 51-route app with one instrumentation added the way its
documentation says (``add_middleware`` or the library's own helper), with default settings and,
where the library allows it, its own ``CollectorRegistry``.  No variant mounts a ``/metrics``
route: the routing table stays identical, and exposition is measured on its own.

Each variant can say how many requests it has recorded, read back from its registry, so a
benchmark can prove that the instrumentation really ran.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request as StarletteRequest
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from asgi_driver import ASGIApp, Request

BARE = "bare"
OURS = "asgi_mcp_metrics"
PFI = "prometheus-fastapi-instrumentator"
STARLETTE_EXPORTER = "starlette-exporter"
OPENTELEMETRY = "opentelemetry-instrumentation-asgi"
VARIANTS = (BARE, OURS, PFI, STARLETTE_EXPORTER, OPENTELEMETRY)

#: Routes around the two measured ones; the JSON route sits in the middle of the table, so a
#: router (or an instrumentation that matches routes again) walks half of it to find it.
FILLER_ROUTES = 49
SSE_EVENTS = 10
#: The query parameter that asks ``/events`` for a stream of another length.
SSE_LENGTH_PARAMETER = "events"

JSON_REQUEST = Request("GET", "/items/42", headers=((b"host", b"127.0.0.1:8000"),
                                                     (b"accept", b"application/json")))
SSE_REQUEST = Request("GET", "/events", headers=((b"host", b"127.0.0.1:8000"),
                                                  (b"accept", b"text/event-stream")))


async def _item(request: StarletteRequest) -> Response:
    item_id = request.path_params["item_id"]
    return JSONResponse({"id": item_id, "name": "widget", "tags": ["a", "b"], "price": 9.5})


def sse_request(events: int = SSE_EVENTS) -> Request:
    """``GET /events`` for a stream of ``events`` events (the default needs no query string)."""
    if events == SSE_EVENTS:
        return SSE_REQUEST
    return Request("GET", "/events", headers=SSE_REQUEST.headers,
                   query_string=f"{SSE_LENGTH_PARAMETER}={events}".encode("ascii"))


async def _events(request: StarletteRequest) -> Response:
    events = int(request.query_params.get(SSE_LENGTH_PARAMETER, SSE_EVENTS))

    async def stream() -> AsyncIterator[str]:
        for number in range(events):
            yield f'event: tick\ndata: {{"n": {number}}}\n\n'

    return StreamingResponse(stream(), media_type="text/event-stream")


async def _listing(request: StarletteRequest) -> Response:
    return JSONResponse([])


async def _detail(request: StarletteRequest) -> Response:
    return JSONResponse({"key": request.path_params["key"]})


def _filler(index: int) -> Route:
    # Half static, half parametrised, like a typical REST service.
    if index % 2:
        return Route(f"/api/v1/resource{index}/{{key}}", _detail, methods=["GET", "PUT"])
    return Route(f"/api/v1/resource{index}", _listing)


def build_app(extra_routes: Sequence[BaseRoute] = (), lifespan: Any = None) -> Starlette:
    """A fresh 51-route app: 49 filler routes, ``/items/{item_id:int}`` and ``/events``.

    ``extra_routes`` go at the end of the table (the mixed workload's ``/mcp``), with the
    ``lifespan`` they need.
    """
    half = FILLER_ROUTES // 2
    routes: list[BaseRoute] = [_filler(i) for i in range(half)]
    routes.append(Route("/items/{item_id:int}", _item))
    routes += [_filler(i) for i in range(half, FILLER_ROUTES)]
    routes.append(Route("/events", _events))
    routes += extra_routes
    return Starlette(routes=routes, lifespan=lifespan)


def _no_errors() -> int:
    return 0


@dataclass
class Variant:
    """An instrumented app plus a way to read how many requests it has recorded."""

    name: str
    app: ASGIApp
    #: Requests (and streams) the instrumentation recorded so far; None for the bare app.
    recorded: Callable[[], int | None]
    #: Errors asgi_mcp_metrics caught inside itself (its own self-metric); 0 for the others.
    internal_errors: Callable[[], int] = _no_errors


def internal_errors(registry: CollectorRegistry) -> Callable[[], int]:
    """Reads asgi_mcp_metrics' count of errors it caught in its own code."""
    return lambda: sample_total(registry, "asgi_mcp_metrics_internal_errors_total")


def sample_total(registry: CollectorRegistry, *sample_names: str) -> int:
    """The sum of every sample in ``registry`` whose name is one of ``sample_names``."""
    wanted = frozenset(sample_names)
    total = 0.0
    for family in registry.collect():
        for sample in family.samples:
            if sample.name in wanted:
                total += sample.value
    return round(total)


def build_variant(name: str, *, mcp_parsing: str = "full",
                  app: Starlette | None = None) -> Variant:
    """``app`` (default: a fresh :func:`build_app`) with instrumentation ``name`` added.

    ``name`` is one of :data:`VARIANTS`.  The peers count every HTTP request they see.
    """
    app = build_app() if app is None else app
    if name == OURS:
        return _add_ours(app, mcp_parsing)
    builders: dict[str, Callable[[Starlette], Callable[[], int | None]]] = {
        BARE: lambda app: lambda: None,
        PFI: _add_pfi,
        STARLETTE_EXPORTER: _add_starlette_exporter,
        OPENTELEMETRY: _add_opentelemetry,
    }
    return Variant(name, app, builders[name](app))


def _add_ours(app: Starlette, mcp_parsing: str) -> Variant:
    from asgi_mcp_metrics.starlette import instrument

    registry = CollectorRegistry()
    instrument(app, registry=registry, expose=False, mcp_parsing=mcp_parsing)
    # Plain requests land in the request histogram, SSE responses in the stream counter.
    return Variant(OURS, app,
                   lambda: sample_total(registry, "http_server_request_duration_seconds_count",
                                        "http_server_streams_total"),
                   internal_errors(registry))


def _add_pfi(app: Starlette) -> Callable[[], int | None]:
    from prometheus_fastapi_instrumentator import Instrumentator

    registry = CollectorRegistry()
    Instrumentator(registry=registry).instrument(app)
    return lambda: sample_total(registry, "http_requests_total")


_starlette_exporter_builds = 0


def _add_starlette_exporter(app: Starlette) -> Callable[[], int | None]:
    # starlette-exporter always writes to the global REGISTRY and keeps its metric objects on
    # the middleware class, so every instrumented app in one process shares its counters.  Its
    # documented ``app_name`` option (a label) tells the apps apart: the first keeps the
    # default, later ones in the same process get their own name, and each counts only its own.
    global _starlette_exporter_builds
    _starlette_exporter_builds += 1
    from starlette_exporter import PrometheusMiddleware

    app_name = "starlette"
    if _starlette_exporter_builds > 1:
        app_name = f"starlette-{_starlette_exporter_builds}"
        app.add_middleware(PrometheusMiddleware, app_name=app_name)
    else:
        app.add_middleware(PrometheusMiddleware)
    return lambda: _labelled_total(REGISTRY, "starlette_requests_total", "app_name", app_name)


def _labelled_total(registry: CollectorRegistry, sample_name: str, label: str,
                    value: str) -> int:
    total = 0.0
    for family in registry.collect():
        for sample in family.samples:
            if sample.name == sample_name and sample.labels.get(label) == value:
                total += sample.value
    return round(total)


def _add_opentelemetry(app: Starlette) -> Callable[[], int | None]:
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
    from opentelemetry.sdk.metrics import MeterProvider

    registry = CollectorRegistry()
    reader = PrometheusMetricReader(registry=registry)
    provider = MeterProvider(metric_readers=[reader])
    # No tracer provider is configured: spans are the API's no-op ones, as in a metrics-only
    # deployment.  The meter provider is real, so every request is aggregated.
    app.add_middleware(OpenTelemetryMiddleware, meter_provider=provider)
    return lambda: _opentelemetry_requests(registry)


def _opentelemetry_requests(registry: CollectorRegistry) -> int:
    # The duration histogram's name depends on the semantic-convention mode
    # (OTEL_SEMCONV_STABILITY_OPT_IN): milliseconds in the old one, seconds in the stable one.
    # Count one of them, never both, so "dup" mode is not counted twice.
    for name in ("http_server_request_duration_seconds_count",
                 "http_server_duration_milliseconds_count"):
        total = sample_total(registry, name)
        if total:
            return total
    return 0

"""How long ``/metrics`` takes to render a registry of about ten thousand series.

The series are made the way a real service makes them: requests to many routes, with a few
statuses each, go through :class:`MetricsMiddleware` into the library's own registry.  The
registry is then scraped in-process through :class:`MetricsEndpoint`, once per format, many
times.  "Series" counts exposed sample lines (each histogram bucket is one), which is what
Prometheus stores; the number of label sets is given as well.
"""

from __future__ import annotations

import asyncio
import statistics
from dataclasses import dataclass

from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request as StarletteRequest
from starlette.responses import Response
from starlette.routing import Route

from asgi_driver import Request, UnexpectedReply, call
from timing import CLOCKS

STATUSES = (200, 404, 500)
FORMATS = (
    ("Prometheus text 0.0.4", "text/plain", ""),
    ("OpenMetrics 1.0", "application/openmetrics-text; version=1.0.0", ""),
    # What a Prometheus server asks for by default: OpenMetrics, gzip-compressed.
    ("OpenMetrics 1.0 + gzip", "application/openmetrics-text; version=1.0.0", "gzip"),
)


async def _answer(request: StarletteRequest) -> Response:
    return Response(b"ok", status_code=request.path_params["status"])


def _app(routes: int) -> Starlette:
    return Starlette(routes=[Route(f"/service{i}/resource/{{status:int}}", _answer)
                             for i in range(routes)])


@dataclass(frozen=True)
class RenderRow:
    format: str
    median_ms: float
    body_bytes: int


@dataclass(frozen=True)
class RenderResults:
    routes: int
    label_sets: int
    series: int
    rows: list[RenderRow]


async def fill_registry(routes: int, mcp_parsing: str) -> CollectorRegistry:
    """A registry holding ``routes`` x :data:`STATUSES` requests' worth of series."""
    from asgi_mcp_metrics import MetricsMiddleware

    registry = CollectorRegistry()
    app = MetricsMiddleware(_app(routes), registry=registry, mcp_parsing=mcp_parsing)
    for index in range(routes):
        for status in STATUSES:
            reply = await call(app, Request("GET", f"/service{index}/resource/{status}"))
            if reply.status != status:
                raise UnexpectedReply(f"route {index} answered {reply.status}, not {status}")
    return registry


def _count(registry: CollectorRegistry) -> tuple[int, int]:
    """(label sets, sample lines) in ``registry``."""
    label_sets: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
    samples = 0
    for family in registry.collect():
        for sample in family.samples:
            samples += 1
            labels = tuple(sorted((k, v) for k, v in sample.labels.items() if k != "le"))
            label_sets.add((family.name, labels))
    return len(label_sets), samples


async def run_render(*, routes: int, repeats: int, mcp_parsing: str,
                     clock: str = "cpu") -> RenderResults:
    from asgi_mcp_metrics import MetricsEndpoint

    registry = await fill_registry(routes, mcp_parsing)
    label_sets, series = _count(registry)
    endpoint = MetricsEndpoint(registry=registry)
    now = CLOCKS[clock]
    rows = []
    for title, accept, encoding in FORMATS:
        headers = [(b"accept", accept.encode("ascii"))]
        if encoding:
            headers.append((b"accept-encoding", encoding.encode("ascii")))
        scrape = Request("GET", "/metrics", headers=tuple(headers))
        times = []
        size = 0
        for _ in range(repeats):
            started = now()
            reply = await call(endpoint, scrape, keep_body=True)
            times.append(now() - started)
            if reply.status != 200:
                raise UnexpectedReply(f"/metrics answered {reply.status}")
            size = len(reply.body)
            # Let the loop breathe between scrapes, as it would between real ones.
            await asyncio.sleep(0)
        rows.append(RenderRow(title, statistics.median(times) * 1000, size))
    return RenderResults(routes, label_sets, series, rows)

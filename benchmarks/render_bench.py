"""How long ``/metrics`` takes to render a registry of about ten thousand series.

The series are made the way a real service makes them: requests to many routes, with a few
statuses each, go through :class:`MetricsMiddleware` into the library's own registry, until it
holds the target number of series.  The
registry is then scraped in-process through :class:`MetricsEndpoint`, once per format, many
times.  "Series" counts exposed sample lines (each histogram bucket is one), which is what
Prometheus stores; the number of label sets is given as well.
"""

from __future__ import annotations

import asyncio
import statistics
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import choose_encoder
from starlette.applications import Starlette
from starlette.requests import Request as StarletteRequest
from starlette.responses import Response
from starlette.routing import Route

from asgi_driver import Request, UnexpectedReply, call
from timing import CLOCKS

STATUSES = (200, 404, 500)
#: More routes than any sensible target needs; the registry stops growing at its target.
MAX_ROUTES = 2000
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
class EncoderRow:
    """The library's encoder against prometheus_client's on the same registry, interleaved."""

    format: str
    ours_ms: float
    reference_ms: float
    speedup: float
    spread: tuple[float, float]
    """Middle half of the per-repeat speed-ups."""


@dataclass(frozen=True)
class RenderResults:
    routes: int
    label_sets: int
    series: int
    rows: list[RenderRow]
    encoders: list[EncoderRow]


async def fill_registry(target_series: int, mcp_parsing: str,
                        ) -> tuple[CollectorRegistry, int]:
    """A registry with at least ``target_series`` series; returns it and the routes used.

    Routes are added ten at a time, each requested once per status in :data:`STATUSES`, so the
    registry grows the way a service's does, until it exposes ``target_series`` sample lines.
    """
    from asgi_mcp_metrics import MetricsMiddleware

    registry = CollectorRegistry()
    app = MetricsMiddleware(_app(MAX_ROUTES), registry=registry, mcp_parsing=mcp_parsing)
    routes = 0
    while routes < MAX_ROUTES:
        for index in range(routes, routes + 10):
            for status in STATUSES:
                reply = await call(app, Request("GET", f"/service{index}/resource/{status}"))
                if reply.status != status:
                    raise UnexpectedReply(f"route {index} answered {reply.status}, not {status}")
        routes += 10
        if _count(registry)[1] >= target_series:
            break
    return registry, routes


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


async def run_render(*, target_series: int, repeats: int, mcp_parsing: str,
                     clock: str = "cpu") -> RenderResults:
    from asgi_mcp_metrics import MetricsEndpoint

    registry, routes = await fill_registry(target_series, mcp_parsing)
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
    # The floor: prometheus_client's own text encoder on the same registry, no endpoint around.
    times = []
    for _ in range(repeats):
        started = now()
        body = generate_latest(registry)
        times.append(now() - started)
    rows.append(RenderRow("reference: prometheus_client `generate_latest()` alone",
                          statistics.median(times) * 1000, len(body)))
    return RenderResults(routes, label_sets, series, rows,
                         compare_encoders(registry, repeats=repeats, now=now))


#: The two cases a render that keeps the text of unchanged children is compared in.
ENCODER_CASES = ("every series changed since the last scrape", "nothing changed since the last")


def change_every_series(registry: CollectorRegistry) -> None:
    """Observe into every histogram child and increment every counter child of the library's
    families: no child's text from the last render can be used again."""
    from asgi_mcp_metrics._binding import library_metrics

    for metric in library_metrics(registry):
        children = list(metric._metrics.values()) if metric._labelnames else [metric]
        for child in children:
            if metric._type == "histogram":
                child.observe(0.01)
            elif metric._type == "counter":
                child.inc()


def compare_encoders(registry: CollectorRegistry, *, repeats: int,
                     now: Callable[[], float]) -> list[EncoderRow]:
    """The exposition core's render against prometheus_client's encoder, alternating, for
    each format, with every series changed before each pair and with nothing changed; fails
    unless both give the same bytes, every time."""
    from asgi_mcp_metrics.exposition import render

    rows = []
    for title, accept in (("Prometheus text 0.0.4", ""),
                          ("OpenMetrics 1.0", "application/openmetrics-text; version=1.0.0")):
        reference, _ = choose_encoder(accept)

        def ours(accept: str = accept) -> bytes:
            return render(registry, accept=accept, accept_encoding="", names=[],
                          gzip=False).body

        def theirs(reference: Callable[[CollectorRegistry], bytes] = reference) -> bytes:
            return reference(registry)

        for case in ENCODER_CASES:
            ours_times, reference_times = [], []
            for _ in range(repeats):
                if case == ENCODER_CASES[0]:
                    change_every_series(registry)
                bodies = []
                for encode, times in ((ours, ours_times), (theirs, reference_times)):
                    started = now()
                    bodies.append(encode())
                    times.append(now() - started)
                if bodies[0] != bodies[1]:
                    raise UnexpectedReply(f"{title}, {case}: the encoder's output differs "
                                          "from prometheus_client's")
            ratios = sorted(r / o for o, r in zip(ours_times, reference_times, strict=True))
            quarter = len(ratios) // 4
            rows.append(EncoderRow(f"{title}, {case}", statistics.median(ours_times) * 1000,
                                   statistics.median(reference_times) * 1000,
                                   statistics.median(ratios),
                                   (ratios[quarter], ratios[-1 - quarter])))
    return rows

"""The app factory uvicorn imports in each benchmark server process.

``uvicorn serve:app_from_environment --factory --app-dir benchmarks`` builds the variant named
by ``BENCH_VARIANT`` of the app named by ``BENCH_APP``: ``plain``, ``mcp``, ``mixed`` (the plain
app with the SDK's ``/mcp`` route), ``sessions`` (the SDK app with sessions, answering its open
sessions and streams), or ``scrape`` (the plain app with ``/metrics`` over a
registry of ten thousand lines).  One outer path,
:data:`RECORDED_PATH`, answers how many requests the variant has recorded so far; it sits in
front of every variant, the bare one included, so it costs them all the same string compare.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import json
import os
import time
from typing import Any

from apps import Variant, build_variant
from asgi_driver import ASGIApp, Receive, Scope, Send
from mcp_app import build_mcp_variant, build_mixed_app

RECORDED_PATH = "/__bench__/recorded"
APP_ENV = "BENCH_APP"
VARIANT_ENV = "BENCH_VARIANT"
MCP_PARSING_ENV = "BENCH_MCP_PARSING"
#: ``on``: the cycle collector's time and collections are counted and answered at
#: :data:`RECORDED_PATH`; ``off``: the collector is disabled (see ``gc_load.py``).
GC_ENV = "BENCH_GC"
#: How many small objects the collector tracks each request holds until it ends (default 0):
#: what one more object held through a request costs (see ``gc_load.py``).
HOLD_ENV = "BENCH_HOLD"


class _Held:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = None


class CollectorStats:
    """The cycle collector's collections and CPU time (of the thread it ran in), by
    generation, counted from its callbacks."""

    def __init__(self) -> None:
        self.collections = [0, 0, 0]
        self.seconds = [0.0, 0.0, 0.0]
        self._started = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.thread_time()
        else:
            generation = info["generation"]
            self.collections[generation] += 1
            self.seconds[generation] += time.thread_time() - self._started

    def answer(self) -> dict[str, list[float]]:
        return {"collections": list(self.collections), "seconds": list(self.seconds)}


class RecordedProbe:
    """Answers :data:`RECORDED_PATH` itself and passes everything else to the variant."""

    def __init__(self, variant: Variant, metrics: ASGIApp | None = None) -> None:
        self.variant = variant
        self.app: ASGIApp = variant.app
        self.metrics = metrics
        self.hold = int(os.environ.get(HOLD_ENV, "0"))
        collector = os.environ.get(GC_ENV, "")
        self.gc_stats = CollectorStats() if collector == "on" else None
        if collector == "off":
            gc.disable()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.metrics is not None and scope["type"] == "http" and scope["path"] in (
                METRICS_PATHS):
            await self.metrics(scope, receive, send)
            return
        if scope["type"] != "http" or scope["path"] != RECORDED_PATH:
            if self.hold:
                held = [_Held() for _ in range(self.hold)]
                await self.app(scope, receive, send)
                del held
            else:
                await self.app(scope, receive, send)
            return
        answer: dict[str, Any] = {"variant": self.variant.name,
                                  "recorded": self.variant.recorded(),
                                  "internal_errors": self.variant.internal_errors()}
        if self.gc_stats is not None:
            answer["gc"] = self.gc_stats.answer()
        body = json.dumps(answer).encode("utf-8")
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode("ascii"))]})
        await send({"type": "http.response.body", "body": body})


SCRAPE_PATH = "/metrics"
#: How many sample lines the registry behind ``/metrics`` holds in the ``scrape`` app.
SCRAPE_SERIES = 10_000


#: ``render_offload_seconds`` of the endpoint behind each path suffix (none: the default's):
#: the same registry encoded always on the event loop, or always in the render thread.
ENCODE_MODES = {"": None, "/in-loop": 3600.0, "/in-thread": 0.0}


def scraped_registry() -> ASGIApp:
    """``MetricsEndpoint``s over a registry of :data:`SCRAPE_SERIES` lines, one per
    :data:`ENCODE_MODES` suffix."""
    from asgi_mcp_metrics import MetricsEndpoint
    from render_bench import fill_registry

    # The factory runs inside uvicorn's event loop: fill the registry on a loop of its own.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        registry, _ = pool.submit(asyncio.run, fill_registry(SCRAPE_SERIES, "full")).result()
    endpoints = {suffix: MetricsEndpoint(registry=registry) if threshold is None
                 else MetricsEndpoint(registry=registry, render_offload_seconds=threshold)
                 for suffix, threshold in ENCODE_MODES.items()}
    return ChurnedScrapes(endpoints, registry)


#: A scrape of this path finds every series of the registry changed since the last scrape.
CHURNED_SCRAPE_PATH = "/metrics/churned"
#: The same changes without a scrape: what the churned scrapes are compared with.
CHURN_ONLY_PATH = "/metrics/churn-only"
#: Every path the ``scrape`` app's endpoints answer.
METRICS_PATHS = frozenset({CHURN_ONLY_PATH} | {path + suffix for suffix in ENCODE_MODES
                                               for path in (SCRAPE_PATH, CHURNED_SCRAPE_PATH)})


class ChurnedScrapes:
    """``/metrics`` as is; a scrape of ``/metrics/churned`` then changes every series of the
    registry before the next scrape (the worst case for a render that keeps the text of what
    has not changed), and ``/metrics/churn-only`` does the same without rendering: it observes
    into every histogram child and increments every counter child, a few children every 10 ms
    over the next 0.9 s, in the event loop, as the traffic that changes them would.  Either
    scrape path with an :data:`ENCODE_MODES` suffix goes to an endpoint that always encodes on
    the event loop, or always in its render thread."""

    SPREAD_SECONDS = 0.9
    STEP_SECONDS = 0.01

    def __init__(self, endpoints: dict[str, ASGIApp], registry: Any) -> None:
        self.endpoints = endpoints
        self.registry = registry
        self.tasks: set[asyncio.Task[None]] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"]
        if path == CHURN_ONLY_PATH:
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-length", b"0")]})
            await send({"type": "http.response.body", "body": b""})
        else:
            suffix = next((suffix for suffix in ENCODE_MODES if suffix and path.endswith(suffix)),
                          "")
            path = path.removesuffix(suffix)
            await self.endpoints[suffix](scope, receive, send)
        if scope["type"] == "http" and path != SCRAPE_PATH:
            task = asyncio.get_running_loop().create_task(self._change_everything())
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _change_everything(self) -> None:
        from asgi_mcp_metrics._binding import library_metrics

        children = [(metric._type, child) for metric in library_metrics(self.registry)
                    for child in (list(metric._metrics.values()) if metric._labelnames
                                  else [metric])
                    if metric._type in ("histogram", "counter")]
        steps = round(self.SPREAD_SECONDS / self.STEP_SECONDS)
        per_step = -(-len(children) // steps)
        for start in range(0, len(children), per_step):
            for kind, child in children[start:start + per_step]:
                if kind == "histogram":
                    child.observe(0.01)
                else:
                    child.inc()
            await asyncio.sleep(self.STEP_SECONDS)


def app_from_environment() -> ASGIApp:
    kind = os.environ[APP_ENV]
    name = os.environ[VARIANT_ENV]
    mcp_parsing = os.environ.get(MCP_PARSING_ENV, "full")
    if kind == "plain":
        variant = build_variant(name, mcp_parsing=mcp_parsing)
    elif kind == "scrape":
        return RecordedProbe(build_variant(name, mcp_parsing=mcp_parsing), scraped_registry())
    elif kind == "mcp":
        variant = build_mcp_variant(name, mcp_parsing=mcp_parsing)
    elif kind == "mixed":
        variant = build_variant(name, mcp_parsing=mcp_parsing, app=build_mixed_app())
    elif kind == "sessions":
        from session_memory import session_variant

        variant = session_variant(name, mcp_parsing)
    else:
        raise ValueError(f"{APP_ENV} must be 'plain', 'scrape', 'mcp', 'mixed' or 'sessions', "
                         f"got {kind!r}")
    return RecordedProbe(variant)

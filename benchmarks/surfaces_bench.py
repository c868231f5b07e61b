"""What the operator surfaces cost a request: off, on with nobody looking, on with 10 viewers.

    python benchmarks/surfaces_bench.py            # about a minute
    python benchmarks/surfaces_bench.py --quick

Five contenders on the JSON route of the benchmark app, timed in interleaved rounds (see
``timing.py``): the bare app, the library with ``surfaces=False``, the library with every
surface on and no viewer, the same with 10 viewers on ``/metrics/active/stream`` and with 10
dashboards open (``/metrics/ui/stream``, which also starts the history sampler thread); default
``sse_interval``.  The viewers run on the same event loop: they are started at the beginning of
their contender's batch and stopped at its end, and every contender yields to the loop after
each request, so the viewers' work (snapshots, JSON, sends) is charged to their contender.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from prometheus_client import CollectorRegistry

from apps import JSON_REQUEST, build_app, sample_total
from asgi_driver import Request, call
from asgi_mcp_metrics.starlette import instrument
from timing import CLOCKS, Contender, interleave, summarize

VIEWERS = 10
ACTIVE_STREAM = Request("GET", "/metrics/active/stream")
DASHBOARD_STREAM = Request("GET", "/metrics/ui/stream")


def variant(**options: Any) -> tuple[Any, CollectorRegistry]:
    registry = CollectorRegistry()
    return instrument(build_app(), registry=registry, **options), registry


class Viewers:
    """``count`` SSE viewers of ``app``'s in-flight stream, started and stopped on demand."""

    def __init__(self, app: Any, count: int, stream: Request) -> None:
        self.app = app
        self.count = count
        self.stream = stream
        self.events = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._gone = asyncio.Event()

    async def _view(self) -> None:
        async def receive() -> dict[str, Any]:
            await self._gone.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            if message.get("body"):
                self.events += 1

        await self.app(self.stream.scope(), receive, send)

    def start(self) -> None:
        self._gone = asyncio.Event()
        self._tasks = [asyncio.ensure_future(self._view()) for _ in range(self.count)]

    async def stop(self) -> None:
        self._gone.set()
        await asyncio.gather(*self._tasks)


def batch(app: Any, viewers: Viewers | None = None) -> Callable[[int], Awaitable[None]]:
    async def run(count: int) -> None:
        if viewers is not None:
            viewers.start()
        for _ in range(count):
            reply = await call(app, JSON_REQUEST)
            if reply.status != 200:
                raise RuntimeError(f"JSON route answered {reply}")
            await asyncio.sleep(0)
        if viewers is not None:
            await viewers.stop()

    return run


async def main(quick: bool) -> int:
    bare = build_app()
    off, off_registry = variant(surfaces=False)
    on, on_registry = variant()
    watched, watched_registry = variant()
    viewers = Viewers(watched, VIEWERS, ACTIVE_STREAM)
    dashboard, dashboard_registry = variant()
    dashboards = Viewers(dashboard, VIEWERS, DASHBOARD_STREAM)
    contenders = [
        Contender("json", "bare", batch(bare)),
        Contender("json", "surfaces off", batch(off)),
        Contender("json", "surfaces on, no viewer", batch(on)),
        Contender("json", f"surfaces on, {VIEWERS} viewers", batch(watched, viewers)),
        Contender("json", f"{VIEWERS} dashboard viewers", batch(dashboard, dashboards)),
    ]
    rounds, per_round = (6, 1500) if quick else (20, 4000)
    await interleave(contenders, rounds=rounds, per_round=per_round, warmup=500, seed=11,
                     clock=CLOCKS["cpu"])
    registries = (off_registry, on_registry, watched_registry, dashboard_registry)
    for registry, contender in zip(registries, contenders[1:], strict=True):
        recorded = sample_total(registry, "http_server_request_duration_seconds_count")
        if recorded != contender.sent:
            print(f"{contender.variant}: recorded {recorded}, sent {contender.sent}")
            return 1
    rows = summarize(contenders, "bare")
    print(f"{rounds} rounds x {per_round} requests; per request, CPU time, median of rounds")
    print(f"{'variant':<28} {'median µs':>10} {'vs bare µs':>11}")
    for row in rows:
        print(f"{row.variant:<28} {row.median_us:>10.2f} {row.overhead_us:>11.2f}")
    off_t, on_t, watched_t, dashboard_t = (c.seconds_per_request for c in contenders[1:])
    no_viewer = statistics.median(b - a for a, b in zip(off_t, on_t, strict=True)) * 1e6
    print(f"surfaces on, no viewer vs off: {no_viewer:+.2f} µs per request (target <= 1 µs)")
    for name, times, watchers in (("in-flight", watched_t, viewers),
                                  ("dashboard", dashboard_t, dashboards)):
        ratio = statistics.median(b / a for a, b in zip(on_t, times, strict=True))
        print(f"{VIEWERS} {name} viewers vs no viewer: {100 * (ratio - 1):+.1f} % per request "
              f"(target <= 10 %); {watchers.events} events sent to them")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    sys.exit(asyncio.run(main(parser.parse_args().quick)))

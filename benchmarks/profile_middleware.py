"""Where asgi_mcp_metrics spends its time per request: cProfile over the in-process loop.

    python benchmarks/profile_middleware.py                  # plain JSON route
    python benchmarks/profile_middleware.py --workload mcp   # MCP tools/call (SDK answers replayed)
    python benchmarks/profile_middleware.py --workload sse

Prints the library's own functions (and the prometheus_client calls they make) sorted by
their own time, with microseconds per request, so the cost of each step can be read directly.
Profiling slows everything down several times over; compare the rows with each other, not
with the benchmark's totals.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import pstats
from collections.abc import Awaitable, Callable
from typing import Any

from apps import JSON_REQUEST, OURS, SSE_REQUEST, build_variant
from asgi_driver import ASGIApp, Lifespan, Request, call
from mcp_app import (
    HANDSHAKE_ERA,
    build_mcp_variant,
    build_sdk_app,
    parsed_variant_name,
    tool_call,
    tools_list,
)
from mcp_replay import Exchange, ReplayApp, capture

#: Path fragments of the code whose cost is shown.
SHOWN = ("asgi_mcp_metrics", "prometheus_client")


async def _loop(app: ASGIApp, request: Request, count: int) -> None:
    for _ in range(count):
        await call(app, request)


def _profile(run: Callable[[], Awaitable[None]]) -> cProfile.Profile:
    profiler = cProfile.Profile()

    async def profiled() -> None:
        profiler.enable()
        try:
            await run()
        finally:
            profiler.disable()

    asyncio.run(profiled())
    return profiler


def _shown(filename: str) -> bool:
    return any(part in filename for part in SHOWN)


def _table(profiler: cProfile.Profile, requests: int, limit: int) -> str:
    stats = pstats.Stats(profiler, stream=io.StringIO())
    rows = []
    entries: dict[tuple[str, int, str], tuple[int, int, float, float, dict[Any, Any]]] = (
        stats.stats)  # type: ignore[attr-defined]
    for (filename, line, function), (_, calls, own, cumulative, callers) in entries.items():
        if _shown(filename):
            short = filename.split("site-packages/")[-1].split("/work/main/")[-1]
            rows.append((own, cumulative, calls, f"{short}:{line} {function}"))
        elif filename == "~":
            # A builtin (json.loads, a lock, bytes.decode): only the share our code called.
            ours = [timing for caller, timing in callers.items() if _shown(caller[0])]
            if ours:
                rows.append((sum(t[2] for t in ours), sum(t[3] for t in ours),
                             sum(t[1] for t in ours), f"{function}, called by the above"))
    rows.sort(reverse=True)
    lines = ["| own µs/request | cumulative µs/request | calls/request | function |",
             "|---:|---:|---:|---|"]
    for own, cumulative, calls, name in rows[:limit]:
        lines.append(f"| {own / requests * 1e6:.2f} | {cumulative / requests * 1e6:.2f} | "
                     f"{calls / requests:.1f} | `{name}` |")
    total = sum(row[0] for row in rows)
    lines.append(f"\nOwn time of everything listed or not: {total / requests * 1e6:.1f} µs "
                 "per request under the profiler.")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workload", choices=("json", "sse", "mcp"), default="json")
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--mcp-parsing", default="full")
    parser.add_argument("--limit", type=int, default=30)
    arguments = parser.parse_args()
    count = arguments.requests

    if arguments.workload == "mcp":
        # The SDK's answers replayed by a stub, so the profile holds our code and little else.
        async def captured() -> list[Exchange]:
            source = build_sdk_app()
            async with Lifespan(source):
                return [await capture(source, tools_list(HANDSHAKE_ERA)),
                        await capture(source, tool_call(HANDSHAKE_ERA))]

        exchanges = asyncio.run(captured())
        variant = build_mcp_variant(parsed_variant_name(arguments.mcp_parsing),
                                    mcp_parsing=arguments.mcp_parsing,
                                    base=lambda: ReplayApp(exchanges))
        asyncio.run(call(variant.app, tools_list(HANDSHAKE_ERA)))
        asyncio.run(_loop(variant.app, tool_call(HANDSHAKE_ERA), 50))
        profiler = _profile(lambda: _loop(variant.app, tool_call(HANDSHAKE_ERA), count))
    else:
        plain = build_variant(OURS, mcp_parsing=arguments.mcp_parsing)
        request = JSON_REQUEST if arguments.workload == "json" else SSE_REQUEST
        # Warm up first (middleware stack build, first label children) outside the profile.
        asyncio.run(_loop(plain.app, request, 50))
        profiler = _profile(lambda: _loop(plain.app, request, count))
    print(f"{arguments.workload}, mcp_parsing={arguments.mcp_parsing}, {count} requests\n")
    print(_table(profiler, count, arguments.limit))


if __name__ == "__main__":
    main()

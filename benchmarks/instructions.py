"""Instructions per request, counted by callgrind: a comparison that a busy machine cannot blur.

    python benchmarks/instructions.py                             # every workload
    python benchmarks/instructions.py --workload mcp-handshake    # one workload

Each (workload, variant) runs twice under ``valgrind --tool=callgrind`` in a child process,
with ``--low`` and ``--high`` requests after the same warm-up; the difference of the two
instruction totals divided by the difference of the request counts is the cost of one request,
start-up excluded.  The instrumented variant's count minus the bare one's is the library's own
cost in instructions; the same with ``mcp_parsing="off"`` is what its HTTP metrics cost, and
the difference of the two what reading MCP costs (the "parsing" of issue 9's parsing share).
Instructions are not microseconds (a cache miss costs many), but they move only when the code
does, so they tell whether a change helped where timings on a shared machine cannot.  Needs
``valgrind``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from apps import BARE, JSON_REQUEST, OURS, SSE_REQUEST, build_variant
from asgi_driver import Lifespan, call
from mcp_app import (
    HANDSHAKE_ERA,
    MCP_BARE,
    MCP_HTTP_ONLY,
    MODERN_ERA,
    build_mcp_variant,
    build_sdk_app,
    parsed_variant_name,
    tool_call,
)
from mcp_app import tools_list as tools_list_request
from mcp_replay import ReplayApp, capture

WORKLOADS = ("json", "sse", "mcp-handshake", "mcp-modern")
#: Bare, HTTP metrics only (``mcp_parsing="off"``), and everything (``mcp_parsing="full"``).
VARIANTS = ("bare", "off", "ours")
_TOTAL = re.compile(rb"summary:\s+(\d+)")


async def _run(workload: str, variant: str, requests: int) -> None:
    if workload.startswith("mcp"):
        era = HANDSHAKE_ERA if workload == "mcp-handshake" else MODERN_ERA
        source = build_sdk_app()
        async with Lifespan(source):
            exchanges = [await capture(source, tools_list_request(era)),
                         await capture(source, tool_call(era))]
        name = {"bare": MCP_BARE, "off": MCP_HTTP_ONLY}.get(variant, parsed_variant_name("full"))
        app = build_mcp_variant(name, mcp_parsing="full", base=lambda: ReplayApp(exchanges)).app
        await call(app, tools_list_request(era))
        request = tool_call(era)
    else:
        app = build_variant(BARE if variant == "bare" else OURS,
                            mcp_parsing="off" if variant == "off" else "full").app
        request = JSON_REQUEST if workload == "json" else SSE_REQUEST
    for _ in range(50 + requests):
        await call(app, request)


def _count(workload: str, variant: str, requests: int) -> int:
    with tempfile.TemporaryDirectory() as directory:
        out = Path(directory) / "callgrind.out"
        subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
             sys.executable, __file__, "--child", workload, variant, str(requests)],
            check=True, capture_output=True, env={**os.environ, "PYTHONHASHSEED": "0"})
        match = _TOTAL.search(out.read_bytes())
        if match is None:
            raise RuntimeError("callgrind wrote no summary")
        return int(match.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workload", choices=WORKLOADS, action="append")
    parser.add_argument("--low", type=int, default=200)
    parser.add_argument("--high", type=int, default=1200)
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.child:
        workload, variant, requests = arguments.child
        asyncio.run(_run(workload, variant, int(requests)))
        return
    print("| workload | bare, instructions/request | asgi_mcp_metrics | overhead | of which "
          "HTTP metrics (`mcp_parsing=\"off\"`) | of which MCP parsing |")
    print("|---|---:|---:|---:|---:|---:|")
    for workload in arguments.workload or WORKLOADS:
        per = {}
        for variant in VARIANTS:
            low = _count(workload, variant, arguments.low)
            high = _count(workload, variant, arguments.high)
            per[variant] = (high - low) / (arguments.high - arguments.low)
        bare, off, ours = (per[variant] for variant in VARIANTS)
        print(f"| {workload} | {bare:,.0f} | {ours:,.0f} | +{ours - bare:,.0f} | "
              f"+{off - bare:,.0f} | {ours - off:+,.0f} |", flush=True)


if __name__ == "__main__":
    main()

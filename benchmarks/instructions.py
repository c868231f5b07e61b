"""Instructions per request, counted by callgrind: a comparison that a busy machine cannot blur.

    python benchmarks/instructions.py                             # every workload
    python benchmarks/instructions.py --workload mcp-handshake    # one workload
    python benchmarks/instructions.py --workload mcp-handshake-sdk --low 100 --high 400

Each (workload, variant) runs twice under ``valgrind --tool=callgrind`` in a child process,
with ``--low`` and ``--high`` requests after the same warm-up; the difference of the two
instruction totals divided by the difference of the request counts is the cost of one request,
start-up excluded.  The instrumented variant's count minus the bare one's is the library's own
cost in instructions; the same with ``mcp_parsing="off"`` is what its HTTP metrics cost, and
the difference of the two what reading MCP costs (the "parsing" of issue 9's parsing share).
The MCP workloads replay the SDK's answers; ``mcp-handshake-sdk`` and ``mcp-modern-sdk`` (not
run by default) count the same calls on the real SDK app.
Instructions are not microseconds (a cache miss costs many), but they move only when the code
does, so they tell whether a change helped where timings on a shared machine cannot.  Needs
``valgrind``.

    python benchmarks/instructions.py --server                    # the JSON route under uvicorn

counts the same way a uvicorn process (``--http h11 --loop asyncio``) serving ``GET /items/42``
on one keep-alive connection, bare and instrumented, with callgrind's cache simulation: the
instructions, and the first-level instruction- and data-cache misses, per request.  Between two
requests the server's own code runs, so this shows what the in-process loop, which keeps the
library's code and data warm, does not.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
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
from serve import APP_ENV, RECORDED_PATH, VARIANT_ENV
from server_load import HOST, free_port

WORKLOADS = ("json", "sse", "mcp-handshake", "mcp-modern")
#: The MCP workloads on the real SDK app rather than its replayed answers (not run by default:
#: the SDK's call is about 15 times the replayed one's instructions).
SDK_WORKLOADS = ("mcp-handshake-sdk", "mcp-modern-sdk")
#: Bare, HTTP metrics only (``mcp_parsing="off"``), and everything (``mcp_parsing="full"``).
VARIANTS = ("bare", "off", "ours")
_EVENTS = re.compile(rb"^events:(.*)$", re.MULTILINE)
_SUMMARY = re.compile(rb"^summary:(.*)$", re.MULTILINE)
#: Callgrind's cache-simulation events, and how the server table names them.
_CACHE_EVENTS = {"Ir": "instructions", "I1mr": "L1 instruction misses",
                 "D1mr": "L1 data read misses", "D1mw": "L1 data write misses"}


async def _run(workload: str, variant: str, requests: int) -> None:
    if workload.startswith("mcp"):
        era = HANDSHAKE_ERA if workload.startswith("mcp-handshake") else MODERN_ERA
        name = {"bare": MCP_BARE, "off": MCP_HTTP_ONLY}.get(variant, parsed_variant_name("full"))
        if workload in SDK_WORKLOADS:
            app = build_mcp_variant(name, mcp_parsing="full").app
            async with Lifespan(app):
                await call(app, tools_list_request(era))
                for _ in range(50 + requests):
                    await call(app, tool_call(era))
            return
        source = build_sdk_app()
        async with Lifespan(source):
            exchanges = [await capture(source, tools_list_request(era)),
                         await capture(source, tool_call(era))]
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
        return _events(out)["Ir"]


def _events(out: Path) -> dict[str, int]:
    """The totals of a callgrind output file, by event (``Ir``: instructions)."""
    text = out.read_bytes()
    events, summary = _EVENTS.search(text), _SUMMARY.search(text)
    if events is None or summary is None:
        raise RuntimeError("callgrind wrote no summary")
    return dict(zip(events.group(1).decode().split(), map(int, summary.group(1).split()),
                    strict=True))


def _count_server(variant: str, requests: int) -> dict[str, int]:
    """Callgrind's event totals for a uvicorn process that served ``requests`` JSON requests."""
    with tempfile.TemporaryDirectory() as directory:
        out = Path(directory) / "callgrind.out"
        port = free_port()
        bench_dir = Path(__file__).resolve().parent
        server = subprocess.Popen(
            ["valgrind", "--tool=callgrind", "--cache-sim=yes", f"--callgrind-out-file={out}",
             sys.executable, "-m", "uvicorn", "serve:app_from_environment", "--factory",
             "--app-dir", str(bench_dir), "--host", HOST, "--port", str(port),
             "--http", "h11", "--loop", "asyncio", "--no-access-log", "--log-level", "warning"],
            env={**os.environ, "PYTHONHASHSEED": "0", APP_ENV: "plain", VARIANT_ENV: variant},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            connection = _connect(port, server)
            for _ in range(50 + requests):
                connection.request("GET", JSON_REQUEST.path)
                response = connection.getresponse()
                response.read()
                if response.status != 200:
                    raise RuntimeError(f"{variant}: GET {JSON_REQUEST.path} answered "
                                       f"{response.status}")
            connection.close()
        finally:
            server.send_signal(signal.SIGINT)
            server.wait(timeout=300)
        return _events(out)


def _connect(port: int, server: subprocess.Popen[bytes]) -> http.client.HTTPConnection:
    """A keep-alive connection to the server, once it answers (valgrind starts slowly)."""
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and server.poll() is None:
        connection = http.client.HTTPConnection(HOST, port, timeout=600)
        try:
            connection.request("GET", RECORDED_PATH)
            connection.getresponse().read()
            return connection
        except OSError:
            connection.close()
            time.sleep(0.5)
    raise RuntimeError("uvicorn under valgrind did not start")


def _server_table(low: int, high: int) -> None:
    print("| per request, uvicorn `GET /items/42` | bare | asgi_mcp_metrics | difference |")
    print("|---|---:|---:|---:|")
    per = {}
    for variant in (BARE, OURS):
        first, second = _count_server(variant, low), _count_server(variant, high)
        per[variant] = {event: (second[event] - first[event]) / (high - low)
                        for event in _CACHE_EVENTS}
    for event, name in _CACHE_EVENTS.items():
        bare, ours = per[BARE][event], per[OURS][event]
        print(f"| {name} | {bare:,.0f} | {ours:,.0f} | {ours - bare:+,.0f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workload", choices=WORKLOADS + SDK_WORKLOADS, action="append")
    parser.add_argument("--low", type=int, default=200)
    parser.add_argument("--high", type=int, default=1200)
    parser.add_argument("--server", action="store_true",
                        help="the JSON route under uvicorn, with cache misses")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.child:
        workload, variant, requests = arguments.child
        asyncio.run(_run(workload, variant, int(requests)))
        return
    if arguments.server:
        _server_table(arguments.low, arguments.high)
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

"""The cycle collector under load: what it costs the server, and what an object held through a
request adds to that.

    python benchmarks/gc_load.py                 # tools/call, about two minutes on 2 cores
    python benchmarks/gc_load.py --route mixed   # items / mcp / stream in turn

Five uvicorn processes serve the mixed app (the 51 routes and the SDK's ``/mcp``) and are
loaded in turn, in a new random order every round, as ``run.py`` loads its servers:

- ``bare`` and ``asgi_mcp_metrics``, the collector's collections and CPU time counted from
  its callbacks;
- ``bare, holding N``: the bare app, each request holding N small objects the collector tracks
  until it ends (``--hold``), so what one object held through a request costs is the
  difference to ``bare`` divided by N;
- ``bare`` and ``asgi_mcp_metrics`` with the collector disabled: the library's cost without it.

Under concurrent requests every object a request holds may be found alive by a young
collection and promoted; enough promotions set off a full collection, which walks the whole
heap - the SDK's is about 86,000 objects.  ``tests/test_held_objects.py`` counts what the
middleware holds per request in flight.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from apps import BARE, JSON_REQUEST, OURS, SSE_REQUEST
from mcp_app import HANDSHAKE_ERA, tool_call
from run import _load_of, _prepare_mcp, _prepare_plain
from serve import GC_ENV, HOLD_ENV, RECORDED_PATH
from server_load import Load, Mix, Plan, Server, Stack, _get, interleave_load, running_servers


@dataclass(frozen=True)
class Setup:
    label: str
    variant: str
    collector: str
    hold: int = 0


def _setups(hold: int) -> list[Setup]:
    return [Setup("bare", BARE, "on"), Setup("asgi_mcp_metrics", OURS, "on"),
            Setup(f"bare, holding {hold}", BARE, "on", hold),
            Setup("bare, collector off", BARE, "off"),
            Setup("asgi_mcp_metrics, collector off", OURS, "off")]


@contextlib.contextmanager
def _servers(setups: Sequence[Setup], stack: Stack) -> Iterator[list[Server]]:
    with contextlib.ExitStack() as stack_of_servers:
        servers = []
        for setup in setups:
            servers += stack_of_servers.enter_context(running_servers(
                "mixed", [setup.variant], "full", stack,
                {GC_ENV: setup.collector, HOLD_ENV: str(setup.hold)}))
        yield servers


def _collector(server: Server) -> dict[str, list[float]] | None:
    status, body = _get(server.port, RECORDED_PATH)
    answer = json.loads(body)
    if status != 200 or answer["internal_errors"]:
        raise SystemExit(f"{server.variant}: {RECORDED_PATH} answered {status}, {answer}")
    gc_stats: dict[str, list[float]] | None = answer.get("gc")
    return gc_stats


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--route", choices=("mcp", "items", "mixed"), default="mcp")
    parser.add_argument("--hold", type=int, default=100, metavar="N")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=2.0)
    arguments = parser.parse_args(argv)
    loads: dict[str, Load | Mix] = {
        "mcp": _load_of(tool_call(HANDSHAKE_ERA)), "items": _load_of(JSON_REQUEST),
        "mixed": [_load_of(JSON_REQUEST), _load_of(tool_call(HANDSHAKE_ERA)),
                  _load_of(SSE_REQUEST)]}
    setups = _setups(arguments.hold)
    plan = Plan(rounds=arguments.rounds, seconds=arguments.seconds, warmup_seconds=1.0,
                connections=32, seed=11)
    print(f"{len(setups)} uvicorn servers (h11, asyncio), {arguments.route}, {plan.rounds} rounds "
          f"x {plan.seconds:g} s, 32 connections", file=sys.stderr)
    with _servers(setups, Stack("h11", "asyncio")) as servers:
        _prepare_plain(servers)
        _prepare_mcp(servers, HANDSHAKE_ERA, every_request=True)
        before = [_collector(server) for server in servers]
        interleave_load(servers, loads[arguments.route], plan)
        after = [_collector(server) for server in servers]
    cpu = {setup.label: statistics.median(run.cpu_us_per_request or 0.0 for run in server.runs)
           for setup, server in zip(setups, servers, strict=True)}
    print(f"| server ({arguments.route}) | CPU µs / request | collections per 1,000 requests "
          "(gen 0 / 1 / 2) | collector CPU µs / request (gen 0 / 1 / 2) |")
    print("|---|---:|---:|---:|")
    for setup, server, start, end in zip(setups, servers, before, after, strict=True):
        requests = sum(run.requests for run in server.runs)
        if start is None or end is None:
            counts = seconds = "-"
        else:
            pairs = zip(start["collections"], end["collections"], strict=True)
            counts = " / ".join(f"{1000 * (b - a) / requests:.1f}" for a, b in pairs)
            pairs = zip(start["seconds"], end["seconds"], strict=True)
            seconds = " / ".join(f"{1e6 * (b - a) / requests:.1f}" for a, b in pairs)
        print(f"| {setup.label} | {cpu[setup.label]:.1f} | {counts} | {seconds} |")
    held = setups[2].label
    print(f"\nOne object held through a request: "
          f"{(cpu[held] - cpu['bare']) / arguments.hold:.2f} µs of server CPU per request. "
          f"asgi_mcp_metrics over bare: {cpu['asgi_mcp_metrics'] - cpu['bare']:.1f} µs with the "
          f"collector, {cpu['asgi_mcp_metrics, collector off'] - cpu['bare, collector off']:.1f}"
          " µs without it.")


if __name__ == "__main__":
    main()

"""What MCP parsing's parts cost in place: the replayed ``tools/call`` with one part made free.

    python benchmarks/breakdown.py

Runs run.py's replayed ``tools/call`` workload (the SDK's captured answers served by a Starlette
stub; the bare app, the peers, ``mcp_parsing="off"`` and ``"full"`` interleaved; CPU clock) in a
child process as it is, then once per part with that part made free for the whole child, and
prints MCP parsing (``full`` minus ``off``, paired by round) in both protocol eras and what each
part's absence saved.  Parts:

* ``decode``: JSON decoding (request and answer bodies) becomes a look-up of earlier results;
* ``recording``: an answered operation is marked recorded without writing a metric;
* ``headers``: the request's headers become a look-up of earlier results.

A look-up still costs a call, so a saving is slightly less than the part.  The savings are
what a part costs among the app's own code, which evicts the middleware's from the caches
between requests, and are larger than the same part in a warm loop.  A run with a part made
free records less than was sent, so it is not verified: the numbers of record are run.py's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
from collections.abc import Callable
from typing import Any

from inprocess import Plan, _run_mcp_replay, parsing_workload
from mcp_app import ERAS, parsed_variant_name

#: One replayed run (as run.py's, fewer rounds).
PLAN = Plan(rounds=20, per_round=300, warmup=200, seed=5)


def _memoized(module: Any, name: str, key: Callable[[Any], Any] = lambda value: value) -> None:
    """``module.name(argument)`` answered from a table of earlier results, by ``key(argument)``
    (for this workload, whose few distinct inputs repeat and whose readers never change what
    they get)."""
    function: Callable[[Any], Any] = getattr(module, name)
    table: dict[Any, Any] = {}

    def memo(argument: Any) -> Any:
        found = table.get(key(argument))
        if found is None:
            found = table[key(argument)] = function(argument)
        return found

    setattr(module, name, memo)


def _free(part: str) -> None:
    from asgi_mcp_metrics.mcp import named, recording, request, response, tracker

    if part == "decode":
        _memoized(request, "decode")
        _memoized(response, "decode")
        _memoized(named, "decode")
    elif part == "headers":
        _memoized(tracker, "read_headers", tuple)
    elif part == "recording":
        def answered(self: Any, op: Any, *args: Any, **kwargs: Any) -> bool:
            op.settled = True
            return True

        recording.McpRecording.answered = answered  # type: ignore[method-assign]
    elif part != "none":
        raise SystemExit(f"unknown part {part!r}")


def _child(part: str) -> None:
    import inprocess

    _free(part)
    inprocess._verify_mcp = lambda *args, **kwargs: []  # type: ignore[assignment]
    results = asyncio.run(_run_mcp_replay(PLAN, "full"))
    parsing = {}
    for era in ERAS:
        rows = {row.variant: row for row in results.tables[parsing_workload(era)]}
        parsing[era] = rows[parsed_variant_name("full")].overhead_us
    print(json.dumps(parsing))


PARTS = ("decode", "recording", "headers")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.child:
        _child(arguments.child)
        return
    measured = {}
    for part in ("none", *PARTS):
        out = subprocess.run([sys.executable, __file__, "--child", part], check=True,
                             capture_output=True, text=True).stdout
        measured[part] = json.loads(out.strip().splitlines()[-1])
    print("| MCP parsing, replayed `tools/call` | " + " | ".join(ERAS) + " |")
    print("|---|" + "---:|" * len(ERAS))
    whole = measured["none"]
    print("| as it is | " + " | ".join(f"{whole[era]:.1f} µs" for era in ERAS) + " |")
    for part in PARTS:
        print(f"| `{part}` made free: saved | " + " | ".join(
            f"{whole[era] - measured[part][era]:.1f} µs" for era in ERAS) + " |")


if __name__ == "__main__":
    main()

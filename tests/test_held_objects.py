"""What the middleware keeps alive while a request is in flight.

Every object the library holds through a request that the cycle collector tracks is one the
collector may find alive and promote; under concurrent load on an app with a large heap (the
mcp SDK's) that costs more than making the object did (docs/performance.md, "Under load").
These tests count them exactly - by type, allocated in the library's own files, per request
in flight - so an object added to the per-request path is a decision, not an accident.
"""

from __future__ import annotations

import asyncio
import collections
import gc
import tracemalloc
import types
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

import asgi_mcp_metrics
from asgi_mcp_metrics import MetricsMiddleware

from .asgi import call, http_scope
from .mcp.wire_server import (
    ACCEPT_BOTH,
    JSON_TYPE,
    MODERN,
    SSE_TYPE,
    dumps,
    frame,
    modern_headers,
    request,
    result,
)

PACKAGE = str(Path(asgi_mcp_metrics.__file__).resolve().parent)
IN_FLIGHT = 50

ANSWER = result(1, content=[{"type": "text", "text": "3"}], isError=False)


def tool_call(version: str) -> tuple[list[tuple[bytes, bytes]], bytes]:
    headers = [JSON_TYPE, ACCEPT_BOTH, (b"mcp-protocol-version", version.encode())]
    if version == MODERN:
        headers += modern_headers("tools/call", b"add")
    return headers, dumps(request("tools/call", name="add", arguments={"a": 1, "b": 2}))


class GatedApp:
    """Reads the whole body, starts its answer (``stream``: an SSE stream with one event sent),
    then waits at a gate with every other request before it finishes."""

    def __init__(self, stream: bool) -> None:
        self.stream = stream
        self.waiting = 0
        self.arrived = asyncio.Event()
        self.gate = asyncio.Event()
        self.expected = 0

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        more = True
        while more:
            message = await receive()
            more = message.get("more_body", False)
        if self.stream:
            await send({"type": "http.response.start", "status": 200, "headers": [SSE_TYPE]})
            await send({"type": "http.response.body", "more_body": True, "body": frame(ANSWER)})
        self.waiting += 1
        if self.waiting == self.expected:
            self.arrived.set()
        await self.gate.wait()
        if self.stream:
            await send({"type": "http.response.body", "body": b""})
        else:
            await send({"type": "http.response.start", "status": 200, "headers": [JSON_TYPE]})
            await send({"type": "http.response.body", "body": dumps(ANSWER)})


def _ours() -> collections.Counter[str]:
    """The tracked objects alive now that the library made: allocated by its own code, or
    coroutines running its code (the app's coroutine, which the middleware's call creates, is
    the app's)."""
    gc.collect()
    found: collections.Counter[str] = collections.Counter()
    for obj in gc.get_objects():
        # (type(), not isinstance(): that asks lazy objects such as Django's for __class__.)
        kind = type(obj)
        if kind is types.FrameType:
            continue  # Python 3.10: a coroutine's frame, an object of its own, is its coroutine's
        if kind is types.CoroutineType:
            ours = obj.cr_code.co_filename.startswith(PACKAGE)
        else:
            traceback = tracemalloc.get_object_traceback(obj)
            ours = traceback is not None and traceback[0].filename.startswith(PACKAGE)
        if ours:
            found[kind.__qualname__] += 1
    return found


async def _held(method: str, path: str, headers: list[tuple[bytes, bytes]], body: bytes, *,
                stream: bool = False) -> dict[str, int]:
    gated = GatedApp(stream)
    app = MetricsMiddleware(gated, registry=CollectorRegistry())

    def scope() -> dict[str, Any]:
        return http_scope(path, method, headers=headers)

    # Warm up: every label child and cache the requests need exists before the count.
    gated.gate.set()
    gated.expected = -1
    for _ in range(3):
        await call(app, scope(), [body])
    gated.gate.clear()
    gated.waiting, gated.expected = 0, IN_FLIGHT
    tracemalloc.start()
    try:
        before = _ours()
        tasks = [asyncio.ensure_future(call(app, scope(), [body])) for _ in range(IN_FLIGHT)]
        await asyncio.wait_for(gated.arrived.wait(), 30)
        during = _ours()
        gated.gate.set()
        await asyncio.gather(*tasks)
    finally:
        tracemalloc.stop()
    # Per request, to the nearest whole object: what another thread of the process (an earlier
    # test's, say) allocates in the library's code meanwhile is a few objects, not one a request.
    per_request = {kind: round(count / IN_FLIGHT) for kind, count in (during - before).items()}
    return {kind: count for kind, count in per_request.items() if count}


def test_a_plain_request_holds_its_exchange_and_nothing_else() -> None:
    held = asyncio.run(_held("GET", "/items/42", [], b""))
    # The middleware's own call, the exchange (it is the app's receive) and the bound method
    # that is the app's send.
    assert held == {"coroutine": 1, "_Exchange": 1, "method": 1}


@pytest.mark.parametrize(("version", "expected"), [
    # The body names the operation: it waits for its answer, by id, in the request's dict.
    ("2025-11-25", {"coroutine": 1, "_Exchange": 1, "method": 1, "McpExchange": 1,
                    "McpRequest": 1, "Operation": 1, "dict": 1}),
    # The routing headers name it: one object reads the exchange, the body is kept unread and
    # no operation is made until the answer comes (a bytes body, and the tuple of header
    # texts, are not tracked by the collector).
    ("2026-07-28", {"coroutine": 1, "_Exchange": 1, "method": 1, "NamedCall": 1}),
])
def test_a_tool_call_in_flight(version: str, expected: dict[str, int]) -> None:
    headers, body = tool_call(version)
    assert asyncio.run(_held("POST", "/mcp", headers, body)) == expected


def test_an_mcp_stream_in_flight() -> None:
    headers, body = tool_call("2025-11-25")
    held = asyncio.run(_held("POST", "/mcp", headers, body, stream=True))
    # Its one request answered by the first event: the operation is gone, the stream's parser
    # stays for what may follow.
    assert held == {"coroutine": 1, "_Exchange": 1, "method": 1, "McpExchange": 1, "McpRequest": 1,
                    "SSEParser": 1}

"""The in-flight surfaces under a real uvicorn: the snapshot, the SSE stream's versions,
heartbeats and ``disabled`` event, the viewer cap, and 200 viewers leaving nothing behind."""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from asgi_mcp_metrics.starlette import instrument
from asgi_mcp_metrics.surfaces.app import Surfaces

from .servers import gauges_idle, serve, wait_until

pytestmark = pytest.mark.e2e


def build(registry: CollectorRegistry, gate: threading.Event, **options: Any) -> Starlette:
    async def slow(request: Request) -> PlainTextResponse:
        await asyncio.to_thread(gate.wait, 30)
        return PlainTextResponse("slow")

    async def fast(request: Request) -> PlainTextResponse:
        return PlainTextResponse("fast")

    async def tasks(request: Request) -> JSONResponse:
        return JSONResponse(len(asyncio.all_tasks()))

    app = Starlette(routes=[Route("/slow/{n}", slow), Route("/fast", fast),
                            Route("/tasks", tasks)])
    options.setdefault("sse_interval", 0.02)
    return instrument(app, registry=registry, exclude_paths=["/tasks"], **options)


def surfaces_of(app: Starlette) -> Surfaces:
    found: Surfaces = app.state.asgi_mcp_metrics_surfaces
    return found


def events(lines: Iterator[str]) -> Iterator[tuple[str, Any]]:
    """``(kind, data)`` per SSE event, and ``("heartbeat", None)`` per heartbeat comment."""
    kind, data = "message", ""
    for line in lines:
        if line == ": heartbeat":
            yield "heartbeat", None
        elif line.startswith("event: "):
            kind = line[7:]
        elif line.startswith("data: "):
            data = line[6:]
        elif line == "" and data:
            yield kind, json.loads(data)
            kind, data = "message", ""


def test_snapshot_shows_what_is_in_flight(registry: CollectorRegistry) -> None:
    gate = threading.Event()
    app = build(registry, gate)
    with serve(app) as url:
        assert httpx.get(f"{url}/metrics/active").json()["active"] == []
        threads = [threading.Thread(target=httpx.get, args=(f"{url}/slow/{n}",),
                                    kwargs={"timeout": 30}) for n in range(3)]
        for thread in threads:
            thread.start()
        wait_until(lambda: httpx.get(f"{url}/metrics/active").json()["requests"] == 3)
        doc = httpx.get(f"{url}/metrics/active").json()
        assert doc["streams"] == 0
        assert sorted(e["path"] for e in doc["active"]) == ["/slow/0", "/slow/1", "/slow/2"]
        assert {(e["kind"], e["method"], e["route"], e["status"]) for e in doc["active"]} == {
            ("request", "GET", "/slow/{n}", 0)}
        ages = [e["age_seconds"] for e in doc["active"]]
        assert ages == sorted(ages, reverse=True)  # oldest first
        gate.set()
        for thread in threads:
            thread.join(30)
        wait_until(lambda: httpx.get(f"{url}/metrics/active").json()["active"] == [])
        # 3 adds and 3 removes, nothing else: the surfaces' own requests are not tracked.
        assert httpx.get(f"{url}/metrics/active").json()["version"] == 6
        wait_until(lambda: gauges_idle(registry))


def test_snapshot_names_the_caller_when_identity_is_on(registry: CollectorRegistry) -> None:
    gate = threading.Event()
    app = build(registry, gate, identity="header:X-Client")
    with serve(app) as url:
        callers = [threading.Thread(target=httpx.get, args=(f"{url}/slow/{n}",),
                                    kwargs={"timeout": 30, "headers": headers})
                   for n, headers in enumerate(({"x-client": "alice"}, {}))]
        for caller in callers:
            caller.start()
        wait_until(lambda: httpx.get(f"{url}/metrics/active").json()["requests"] == 2)
        active = httpx.get(f"{url}/metrics/active").json()["active"]
        gate.set()
        for caller in callers:
            caller.join(30)
    by_path = {entry["path"]: entry for entry in active}
    assert by_path["/slow/0"]["identity"] == "alice"
    assert "identity" not in by_path["/slow/1"]


def test_stream_versions_are_contiguous_then_heartbeat_then_disabled(
        registry: CollectorRegistry) -> None:
    gate = threading.Event()
    app = build(registry, gate, sse_heartbeat=0.1)
    requests = 25
    seen: list[tuple[str, Any]] = []

    def watch(url: str) -> None:
        with httpx.stream("GET", f"{url}/metrics/active/stream", timeout=30) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            assert response.headers["cache-control"] == "no-cache"
            for item in events(response.iter_lines()):
                seen.append(item)
                if item[0] == "disabled":
                    return

    with serve(app) as url:
        watcher = threading.Thread(target=watch, args=(url,))
        watcher.start()
        wait_until(lambda: bool(seen))
        with httpx.Client() as client:
            for _ in range(requests):
                assert client.get(f"{url}/fast").text == "fast"
        wait_until(lambda: any(k == "update" and d["version"] == 2 * requests
                               for k, d in seen))
        count = len(seen)
        wait_until(lambda: any(k == "heartbeat" for k, _ in seen[count:]))
        surfaces_of(app).switch("active", False)
        watcher.join(10)
        assert not watcher.is_alive()
        assert httpx.get(f"{url}/metrics/active").status_code == 503
        surfaces_of(app).switch("active", True)
        assert httpx.get(f"{url}/metrics/active").status_code == 200
    updates = [d for k, d in seen if k == "update"]
    assert updates[0]["previous"] is None and updates[0]["version"] == 0
    for before, after in itertools.pairwise(updates):
        assert after["previous"] == before["version"]  # no change went unannounced
        assert after["version"] > before["version"]
    assert updates[-1]["version"] == 2 * requests
    assert seen[-1] == ("disabled", {})


def test_two_hundred_viewers_leave_nothing_behind(registry: CollectorRegistry) -> None:
    viewers = 200
    app = build(registry, threading.Event(), sse_max_viewers=viewers, sse_interval=0.2)
    surfaces = surfaces_of(app)

    async def crowd(url: str) -> None:
        limits = httpx.Limits(max_connections=viewers + 10)
        async with httpx.AsyncClient(timeout=60, limits=limits) as client:
            streams = []
            try:
                for _ in range(viewers):
                    stream = client.stream("GET", f"{url}/metrics/active/stream")
                    response = await stream.__aenter__()
                    streams.append(stream)
                    assert response.status_code == 200
                while surfaces.viewers.count < viewers:
                    await asyncio.sleep(0.02)
                over = await client.get(f"{url}/metrics/active/stream")
                assert over.status_code == 503
                assert over.headers["retry-after"] == "5"
                snapshot = (await client.get(f"{url}/metrics/active")).json()
                assert snapshot["viewers"] == viewers
            finally:
                for stream in streams:
                    await stream.__aexit__(None, None, None)

    with serve(app) as url:
        baseline = httpx.get(f"{url}/tasks").json()
        asyncio.run(crowd(url))
        wait_until(lambda: surfaces.viewers.count == 0, timeout=60)
        wait_until(lambda: httpx.get(f"{url}/tasks").json() == baseline, timeout=60)
        wait_until(lambda: gauges_idle(registry))
        assert len(registry_inflight(app)) == 0


def registry_inflight(app: Starlette) -> Any:
    return surfaces_of(app).recorder.inflight

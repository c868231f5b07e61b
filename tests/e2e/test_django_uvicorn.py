"""The example Django project (``examples/django_project``) under a real uvicorn.

The project runs in its own process, configured purely by its ``settings.py``; requests go over
the wire and the assertions read its ``/metrics``.  The last test runs one scenario against the
Django project and against an equivalent Starlette app and compares the series they export.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from ..promtool import check_metrics
from .servers import free_port, serve

django = pytest.importorskip("django")

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "django_project"
START_TIMEOUT_SECONDS = 60.0
WAIT_SECONDS = 20.0

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
# Families the library exports (the process and platform collectors differ between processes).
OURS = ("http_server_", "mcp_", "gen_ai_", "asgi_mcp_metrics_")


def uvicorn_command(port: int) -> list[str]:
    return [sys.executable, "-m", "uvicorn", "mysite.asgi:application", "--host", "127.0.0.1",
            "--port", str(port), "--lifespan", "on", "--log-level", "warning"]


def wsgiref_command(port: int) -> list[str]:
    serve_wsgi = ("from wsgiref.simple_server import make_server\n"
                  "from mysite.wsgi import application\n"
                  f"make_server('127.0.0.1', {port}, application).serve_forever()\n")
    return [sys.executable, "-c", serve_wsgi]


@contextmanager
def example_server(command: Callable[[int], list[str]] = uvicorn_command) -> Iterator[str]:
    """The example project served from its directory (uvicorn by default); yields the base URL."""
    port = free_port()
    environment = {key: item for key, item in os.environ.items()
                   if not key.startswith(("ASGI_MCP_METRICS_", "DJANGO_"))}
    inherited = [environment["PYTHONPATH"]] if environment.get("PYTHONPATH") else []
    environment["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(EXAMPLE), *inherited])
    process = subprocess.Popen(command(port), cwd=EXAMPLE, env=environment,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while True:
            if process.poll() is not None:
                output = process.stdout.read().decode() if process.stdout else ""
                raise RuntimeError(f"the example exited with {process.returncode}:\n{output}")
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the example did not start")
            time.sleep(0.05)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        if process.stdout is not None:
            process.stdout.close()


@pytest.fixture(scope="module")
def example() -> Iterator[str]:
    with example_server() as base:
        yield base


def scrape(base: str) -> Samples:
    response = httpx.get(f"{base}/metrics", timeout=5)
    assert response.status_code == 200
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return sum(found for (sample, pairs), found in samples.items()
               if sample == name and all(dict(pairs).get(k) == v for k, v in labels.items()))


def rose(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def wait_until(base: str, name: str, at_least: float, **labels: str) -> Samples:
    deadline = time.monotonic() + WAIT_SECONDS
    samples = scrape(base)
    while value(samples, name, **labels) < at_least:
        assert time.monotonic() < deadline, f"{name}{labels} never reached {at_least}"
        time.sleep(0.05)
        samples = scrape(base)
    return samples


DURATION = "http_server_request_duration_seconds_count"
STREAMS = "http_server_streams_total"


def test_json_route_is_labelled_with_its_pattern(example: str) -> None:
    before = scrape(example)
    response = httpx.get(f"{example}/items/2", timeout=5)
    assert response.json() == {"id": 2, "name": "kettle", "price": 42.0}
    after = scrape(example)
    labels = {"http_request_method": "GET", "http_route": "/items/{item_id}"}
    assert rose(before, after, DURATION, http_response_status_code="200", error_type="",
                **labels) == 1
    assert rose(before, after, "http_server_response_body_size_bytes_sum",
                **labels) == len(response.content)
    assert rose(before, after, DURATION) == 1  # the scrapes themselves are not measured


def test_regex_route_and_unmatched_path(example: str) -> None:
    before = scrape(example)
    assert httpx.get(f"{example}/legacy/items/3/", timeout=5).status_code == 200
    assert httpx.get(f"{example}/no/such/page", timeout=5).status_code == 404
    after = scrape(example)
    assert rose(before, after, DURATION, http_route="/legacy/items/{item_id}/",
                http_response_status_code="200") == 1
    assert rose(before, after, DURATION, http_route="__unmatched__",
                http_response_status_code="404") == 1


def test_event_stream_is_counted_once_to_its_last_byte(example: str) -> None:
    before = scrape(example)
    response = httpx.get(f"{example}/events", params={"count": "3"}, timeout=5)
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.text.count("event: price\n") == 3
    after = scrape(example)
    labels = {"http_route": "/events", "stream_kind": "sse"}
    assert rose(before, after, STREAMS, end_reason="completed", **labels) == 1
    assert rose(before, after, STREAMS) == 1
    assert rose(before, after, "http_server_stream_duration_seconds_count",
                end_reason="completed", **labels) == 1
    assert value(after, "http_server_streams_active", **labels) == 0
    assert rose(before, after, DURATION, http_route="/events") == 0
    assert rose(before, after, "http_server_response_body_size_bytes_sum",
                http_route="/events") == len(response.content)


@pytest.mark.skipif(django.VERSION < (5, 0), reason="Django < 5.0 does not listen for the "
                    "client's disconnect while a response streams")
def test_client_leaving_a_stream_is_a_disconnect(example: str) -> None:
    before = scrape(example)
    with httpx.Client(timeout=5) as client, \
            client.stream("GET", f"{example}/events", params={"count": "100"}) as response:
        first = next(response.iter_lines())
        assert first == "id: 0"
    after = wait_until(example, STREAMS,
                       value(before, STREAMS, end_reason="client_disconnect") + 1,
                       end_reason="client_disconnect")
    assert rose(before, after, STREAMS, http_route="/events", stream_kind="sse",
                end_reason="client_disconnect") == 1
    assert rose(before, after, STREAMS, end_reason="completed") == 0


async def mcp_session(base: str) -> None:
    from mcp import Client

    async with Client(f"{base}/mcp") as client:
        tools = await client.list_tools()
        assert sorted(tool.name for tool in tools.tools) == ["get_item", "list_items"]
        found = await client.call_tool("get_item", {"item_id": 2})
        assert found.is_error is False
        missing = await client.call_tool("get_item", {"item_id": 99})
        assert missing.is_error is True


def test_mcp_endpoint_beside_django_gets_wire_metrics(example: str) -> None:
    before = scrape(example)
    anyio.run(mcp_session, example)
    after = scrape(example)
    assert rose(before, after, "mcp_tool_calls_total", gen_ai_tool_name="get_item",
                outcome="ok") == 1
    assert rose(before, after, "mcp_tool_calls_total", gen_ai_tool_name="get_item",
                outcome="tool_error") == 1
    assert rose(before, after, "mcp_server_operation_duration_seconds_count",
                mcp_method_name="tools/call", gen_ai_tool_name="get_item") == 2
    assert rose(before, after, DURATION, http_route="/mcp", http_request_method="POST") >= 3


def test_exposition_passes_promtool(example: str) -> None:
    httpx.get(f"{example}/items/1", timeout=5)
    check_metrics(httpx.get(f"{example}/metrics", timeout=5).content)


def test_wsgi_deployment_records_from_the_django_middleware() -> None:
    with example_server(wsgiref_command) as base:
        item = httpx.get(f"{base}/items/3", timeout=5)
        stream = httpx.get(f"{base}/events", params={"count": "2"}, timeout=5)
        assert stream.text.count("event: price\n") == 2
        samples = scrape(base)
    assert value(samples, DURATION, http_request_method="GET", http_route="/items/{item_id}",
                 http_response_status_code="200", error_type="") == 1
    assert value(samples, "http_server_response_body_size_bytes_sum",
                 http_route="/items/{item_id}") == len(item.content)
    assert value(samples, STREAMS, http_route="/events", stream_kind="sse",
                 end_reason="completed") == 1
    assert value(samples, "http_server_response_body_size_bytes_sum",
                 http_route="/events") == len(stream.content)
    assert value(samples, DURATION) == 1  # neither the stream nor the scrape


# --- the same scenario on Starlette and on Django ------------------------------------------


def scenario(base: str) -> None:
    with httpx.Client(base_url=base, timeout=5) as client:
        assert client.get("/items/2").status_code == 200
        assert client.get("/items/99").status_code == 404
        assert client.get("/legacy/items/3/").status_code == 200
        assert client.get("/no/such/page").status_code == 404
        assert client.get("/health").status_code == 200
        assert client.get("/events", params={"count": "2"}).text.count("event: price") == 2
    anyio.run(mcp_session, base)


def series(samples: Samples) -> set[tuple[str, tuple[tuple[str, str], ...]]]:
    return {key for key in samples if key[0].startswith(OURS) and not key[0].endswith("_created")}


def starlette_shop(registry: CollectorRegistry) -> Any:
    """The example project's routes and MCP server, written for Starlette."""
    import json
    from collections.abc import AsyncIterator
    from contextlib import asynccontextmanager

    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
    from starlette.routing import Mount, Route

    from asgi_mcp_metrics.exposition import MetricsEndpoint
    from asgi_mcp_metrics.middleware import MetricsMiddleware

    sys.path.insert(0, str(EXAMPLE))
    try:
        items: dict[int, dict[str, object]] = importlib.import_module("shop.inventory").ITEMS
        mcp = importlib.import_module("shop.mcp_server").build_server()
    finally:
        sys.path.remove(str(EXAMPLE))

    mcp_app = mcp.streamable_http_app()

    async def item(request: Request) -> Response:
        found = items.get(int(request.path_params["item_id"]))
        return JSONResponse(found) if found else PlainTextResponse("no such item", 404)

    async def events(request: Request) -> StreamingResponse:
        count = int(request.query_params.get("count", "3"))

        async def stream() -> AsyncIterator[str]:
            for number in range(count):
                payload = json.dumps(items[number % len(items) + 1])
                yield f"id: {number}\nevent: price\ndata: {payload}\n\n"

        return StreamingResponse(stream(), media_type="text/event-stream")

    async def health(request: Request) -> Response:
        return PlainTextResponse("ok\n")

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with mcp.session_manager.run():
            yield

    shop = Starlette(routes=[
        Route("/metrics", MetricsEndpoint(registry=registry)),
        Route("/items/{item_id}", item),
        Route("/legacy/items/{item_id}/", item),
        Route("/events", events),
        Route("/health", health),
        Mount("/", mcp_app),
    ], lifespan=lifespan)
    # The options of the example's settings.ASGI_MCP_METRICS, as keyword arguments.
    return MetricsMiddleware(shop, registry=registry, exclude_paths=["/health"],
                             mcp_paths=["/mcp"])


def test_starlette_and_django_export_the_same_series(registry: CollectorRegistry) -> None:
    with serve(starlette_shop(registry)) as starlette_base:
        scenario(starlette_base)
        from_starlette = series(scrape(starlette_base))
    with example_server() as django_base:
        scenario(django_base)
        from_django = series(scrape(django_base))
    expected = ("http_server_streams_total",
                (("end_reason", "completed"), ("http_route", "/events"), ("stream_kind", "sse")))
    assert expected in from_django
    assert ("mcp_tool_calls_total", (("backend", ""), ("gen_ai_tool_name", "get_item"),
                                     ("identity", ""), ("outcome", "tool_error"))) in from_django
    assert from_django - from_starlette == set()
    assert from_starlette - from_django == set()

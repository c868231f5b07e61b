"""The exposition endpoint behind a real uvicorn on 127.0.0.1, scraped over the wire."""

from __future__ import annotations

import gzip
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
import uvicorn
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import Metric
from prometheus_client.openmetrics import parser as openmetrics_parser
from starlette.applications import Starlette
from starlette.routing import Route

from asgi_mcp_metrics.exposition import MetricsEndpoint
from tests.promtool import check_metrics

pytestmark = pytest.mark.e2e

parse_om: Callable[[str], Iterable[Metric]] = openmetrics_parser.text_string_to_metric_families

SERVER_START_TIMEOUT_SECONDS = 10.0


@contextmanager
def serving(app: Any) -> Iterator[str]:
    """Run ``app`` under uvicorn in a thread on a free port; yield its base URL.

    ``lifespan="on"``: an app that raises on, or never completes, lifespan start-up fails here.
    """
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, lifespan="on", log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT_SECONDS
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=SERVER_START_TIMEOUT_SECONDS)
        listener.close()
    assert not thread.is_alive(), "uvicorn did not shut down"


@pytest.fixture
def registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    Counter("shop_orders", "Orders placed.", ["channel"], registry=registry).labels("web").inc(5)
    Gauge("shop_carts_open", "Open carts.", registry=registry).set(12)
    duration = Histogram("shop_checkout_duration_seconds", "Checkout time.", registry=registry)
    duration.observe(0.3)
    duration.observe(4.0)
    return registry


def starlette_app(endpoint: MetricsEndpoint) -> Starlette:
    return Starlette(routes=[Route("/metrics", endpoint)])


def test_metrics_route_answers_directly_and_passes_promtool(registry: CollectorRegistry) -> None:
    with (
        serving(starlette_app(MetricsEndpoint(registry=registry))) as base_url,
        httpx.Client(base_url=base_url, follow_redirects=False) as client,
    ):
        response = client.get("/metrics", headers={"Accept-Encoding": "identity"})

    assert response.status_code == 200
    assert response.history == []
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert response.headers["cache-control"] == "no-cache"
    assert 'shop_orders_total{channel="web"} 5.0\n' in response.text
    assert 'shop_checkout_duration_seconds_bucket{le="5.0"} 2.0\n' in response.text
    check_metrics(response.content)


def test_gzip_over_the_wire(registry: CollectorRegistry) -> None:
    with (
        serving(starlette_app(MetricsEndpoint(registry=registry))) as base_url,
        httpx.Client(base_url=base_url) as client,
    ):
        plain = client.get("/metrics", headers={"Accept-Encoding": "identity"})
        with client.stream("GET", "/metrics", headers={"Accept-Encoding": "gzip"}) as zipped:
            wire_bytes = b"".join(zipped.iter_raw())

    assert zipped.headers["content-encoding"] == "gzip"
    assert zipped.headers["vary"] == "Accept, Accept-Encoding"
    assert int(zipped.headers["content-length"]) == len(wire_bytes)
    assert gzip.decompress(wire_bytes) == plain.content
    check_metrics(gzip.decompress(wire_bytes))


def test_openmetrics_over_the_wire(registry: CollectorRegistry) -> None:
    accept = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"
    with (
        serving(starlette_app(MetricsEndpoint(registry=registry))) as base_url,
        httpx.Client(base_url=base_url) as client,
    ):
        response = client.get("/metrics", headers={"Accept": accept})

    assert response.headers["content-type"] == (
        "application/openmetrics-text; version=1.0.0; charset=utf-8; escaping=underscores"
    )
    families = {family.name: family for family in parse_om(response.text)}
    assert families["shop_carts_open"].samples[0].value == 12.0
    assert families["shop_orders"].samples[0].value == 5.0


def test_bearer_auth_over_the_wire(registry: CollectorRegistry) -> None:
    endpoint = MetricsEndpoint(registry=registry, auth_bearer_token="scrape-token")
    with (
        serving(starlette_app(endpoint)) as base_url,
        httpx.Client(base_url=base_url) as client,
    ):
        missing = client.get("/metrics")
        wrong = client.get("/metrics", headers={"Authorization": "Bearer nope"})
        right = client.get("/metrics", headers={"Authorization": "Bearer scrape-token"})

    assert (missing.status_code, missing.headers["www-authenticate"]) == (
        401,
        'Bearer realm="metrics"',
    )
    assert wrong.status_code == 403
    assert right.status_code == 200
    check_metrics(right.content)


def test_bare_endpoint_is_a_complete_asgi_app(registry: CollectorRegistry) -> None:
    # Served without a framework: uvicorn drives the lifespan protocol against it directly.
    with (
        serving(MetricsEndpoint(registry=registry)) as base_url,
        httpx.Client(base_url=base_url) as client,
    ):
        get = client.get("/anything")
        head = client.head("/anything", headers={"Accept-Encoding": "identity"})
        post = client.post("/anything")

    assert get.status_code == 200
    assert 'shop_orders_total{channel="web"} 5.0\n' in get.text
    assert (head.status_code, head.content) == (200, b"")
    assert int(head.headers["content-length"]) == len(get.content)
    assert (post.status_code, post.headers["allow"]) == (405, "GET, HEAD")

"""The middleware under a real uvicorn: requests, SSE streams, clients that vanish."""

from __future__ import annotations

import socket
import time

import httpx
import pytest
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.routing import Route

from asgi_mcp_metrics.starlette import instrument

from ..asgi import total, value
from ..promtool import check_metrics
from .server_app import events, item, upload
from .servers import serve

pytestmark = pytest.mark.e2e

DURATION = "http_server_request_duration_seconds"


def app_and_registry() -> tuple[Starlette, CollectorRegistry]:
    registry = CollectorRegistry()
    app = Starlette(routes=[Route("/items/{item_id}", item), Route("/upload", upload,
                                                                   methods=["POST"]),
                            Route("/events", events)])
    return instrument(app, registry=registry), registry


def wait_until(condition: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.02)


def test_requests_and_streams_over_real_http() -> None:
    app, registry = app_and_registry()
    with serve(app) as url, httpx.Client(base_url=url) as client:
        for i in range(5):
            assert client.get(f"/items/{i}").json() == {"id": str(i)}
        body = b"x" * 100_000
        assert client.post("/upload", content=body).json() == {"size": 100_000}
        with client.stream("GET", "/events?n=4") as response:
            frames = [line for line in response.iter_lines() if line.startswith("data:")]
        assert frames == ["data: 0", "data: 1", "data: 2", "data: 3"]
        scrape = client.get("/metrics")
        assert scrape.status_code == 200
        check_metrics(scrape.content)
    assert value(registry, DURATION + "_count", http_request_method="GET",
                 http_route="/items/{item_id}", http_response_status_code="200",
                 error_type="") == 5
    assert value(registry, "http_server_request_body_size_bytes_sum", http_request_method="POST",
                 http_route="/upload") == 100_000
    assert value(registry, "http_server_streams_total", http_route="/events", stream_kind="sse",
                 end_reason="completed") == 1
    assert total(registry, DURATION + "_count", http_route="/events") == 0
    assert total(registry, "http_server_active_requests") == 0
    assert total(registry, "http_server_streams_active") == 0


def test_client_that_vanishes_mid_stream() -> None:
    app, registry = app_and_registry()
    with serve(app) as url:
        port = int(url.rsplit(":", 1)[1])
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(b"GET /events?n=1000 HTTP/1.1\r\nHost: x\r\n\r\n")
        assert b"data: 0" in sock.recv(4096) + sock.recv(4096)
        wait_until(lambda: total(registry, "http_server_streams_active") == 1)
        sock.close()
        wait_until(lambda: total(registry, "http_server_streams_total") == 1)
    assert value(registry, "http_server_streams_total", http_route="/events", stream_kind="sse",
                 end_reason="client_disconnect") == 1
    assert total(registry, "http_server_streams_active") == 0
    assert total(registry, "http_server_active_requests") == 0


def test_client_that_vanishes_mid_upload() -> None:
    app, registry = app_and_registry()
    with serve(app) as url:
        port = int(url.rsplit(":", 1)[1])
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n"
                     + b"y" * 1000)
        wait_until(lambda: total(registry, "http_server_active_requests") == 1)
        sock.close()
        wait_until(lambda: total(registry, DURATION + "_count") == 1)
    assert total(registry, DURATION + "_count", http_route="/upload",
                 http_response_status_code="499", error_type="client_disconnect") == 1
    assert total(registry, "http_server_active_requests") == 0

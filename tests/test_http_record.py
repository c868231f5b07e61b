"""``HttpRecord`` driven directly, as the Django front end does: no ASGI messages at all."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from asgi_mcp_metrics._binding import get_recorder
from asgi_mcp_metrics.config import Settings
from asgi_mcp_metrics.http_record import HttpMetrics, HttpRecord
from asgi_mcp_metrics.routing import ROUTE_KEY

from .asgi import total, value
from .helpers import FakeClock

ACTIVE = "http_server_active_requests"
DURATION = "http_server_request_duration_seconds"
STREAMS = "http_server_streams_total"
STREAMS_ACTIVE = "http_server_streams_active"


def metrics_of(registry: CollectorRegistry, **options: object) -> HttpMetrics:
    settings = Settings.load(overrides=options)
    return HttpMetrics(get_recorder(registry, settings), settings)


def record_of(http: HttpMetrics, method: str = "POST") -> HttpRecord:
    return HttpRecord(http, {"method": method, "scheme": "http", "path": "/work",
                             ROUTE_KEY: "/work"})


def test_a_request_fed_directly(registry: CollectorRegistry, clock: FakeClock) -> None:
    record = record_of(metrics_of(registry))
    record.begin()
    assert value(registry, ACTIVE, http_request_method="POST", url_scheme="http") == 1
    record.request_body(300)
    record.response_start(201, None)
    record.response_body(12)
    clock.advance(0.3)
    record.response_complete()
    clock.advance(60.0)  # after the last byte (background work): not part of the duration
    record.finish(None)
    labels = {"http_request_method": "POST", "http_route": "/work",
              "http_response_status_code": "201", "error_type": ""}
    assert value(registry, DURATION + "_sum", **labels) == pytest.approx(0.3)
    assert value(registry, DURATION + "_bucket", le="0.25", **labels) == 0
    assert value(registry, DURATION + "_bucket", le="0.5", **labels) == 1
    assert value(registry, "http_server_request_body_size_bytes_sum",
                 http_request_method="POST", http_route="/work") == 300
    assert value(registry, "http_server_response_body_size_bytes_sum",
                 http_request_method="POST", http_route="/work") == 12
    assert value(registry, ACTIVE, http_request_method="POST", url_scheme="http") == 0


@pytest.mark.parametrize(("disconnect", "error", "reason"), [
    (False, None, "completed"),
    (True, None, "client_disconnect"),
    (False, RuntimeError("boom"), "server_error"),
])
def test_http_streams_and_websockets_end_by_the_same_rule(
        registry: CollectorRegistry, clock: FakeClock, disconnect: bool,
        error: BaseException | None, reason: str) -> None:
    http = metrics_of(registry)
    stream = record_of(http, "GET")
    stream.begin()
    stream.response_start(200, "sse")
    socket = HttpRecord(http, {"type": "websocket", "path": "/work", ROUTE_KEY: "/work"})
    socket.accept_websocket()
    assert value(registry, STREAMS_ACTIVE, http_route="/work", stream_kind="websocket") == 1
    clock.advance(2.0)
    if disconnect:
        assert stream.disconnect() and socket.disconnect()
        assert not stream.disconnect()  # only the first time counts
    stream.finish(error)
    socket.end_stream(error, clock())
    for kind in ("sse", "websocket"):
        labels = {"http_route": "/work", "stream_kind": kind}
        assert value(registry, STREAMS, end_reason=reason, **labels) == 1
        assert value(registry, STREAMS_ACTIVE, **labels) == 0
        assert value(registry, "http_server_stream_duration_seconds_sum", end_reason=reason,
                     **labels) == pytest.approx(2.0)
    assert total(registry, STREAMS) == 2
    assert total(registry, DURATION + "_count") == 0
    assert value(registry, ACTIVE, http_request_method="GET", url_scheme="http") == 0


def test_a_response_complete_before_the_client_left_is_no_disconnect(
        registry: CollectorRegistry) -> None:
    record = record_of(metrics_of(registry), "GET")
    record.begin()
    record.response_start(200, None)
    record.response_complete()
    assert not record.disconnect()
    record.finish(None)
    assert value(registry, DURATION + "_count", http_request_method="GET", http_route="/work",
                 http_response_status_code="200", error_type="") == 1


@pytest.mark.parametrize(("method", "path", "excluded"), [
    ("GET", "/metrics", True), ("GET", "/health", True), ("GET", "/static/app.js", True),
    ("OPTIONS", "/work", True), ("GET", "/work", False), ("GET", "/staticx", False),
])
def test_exclusions_are_decided_once_for_every_front_end(
        registry: CollectorRegistry, method: str, path: str, excluded: bool) -> None:
    http = metrics_of(registry, exclude_paths=["/health", "/static/*"],
                      exclude_methods=["options"])
    assert http.excluded(method, path) is excluded


def test_streams_write_the_same_children_stream_after_stream(
        registry: CollectorRegistry, clock: FakeClock) -> None:
    """The children a stream writes are looked up once per label set and kept: later streams
    of the same route, kind and end add to the same series, and a stream that sends nothing
    leaves no time-to-first-byte series."""
    http = metrics_of(registry)
    ends = [(False, None), (True, None), (False, RuntimeError("boom"))] * 3  # 3 of each
    for disconnect, error in ends:
        record = record_of(http, "GET")
        record.begin()
        record.response_start(200, "sse")
        assert value(registry, STREAMS_ACTIVE, http_route="/work", stream_kind="sse") == 1
        clock.advance(0.02)
        record.response_body(10)
        record.response_body(5)
        clock.advance(2.0)
        if disconnect:
            record.disconnect()
        record.finish(error)
    silent = record_of(http, "GET")
    silent.begin()
    silent.response_start(200, "websocket")
    silent.finish(None)

    sse = {"http_route": "/work", "stream_kind": "sse"}
    for reason in ("completed", "client_disconnect", "server_error"):
        assert value(registry, STREAMS, end_reason=reason, **sse) == 3
        assert value(registry, "http_server_stream_duration_seconds_count",
                     end_reason=reason, **sse) == 3
        assert value(registry, "http_server_stream_duration_seconds_bucket", le="1.0",
                     end_reason=reason, **sse) == 0
        assert value(registry, "http_server_stream_duration_seconds_bucket", le="5.0",
                     end_reason=reason, **sse) == 3
        assert value(registry, "http_server_stream_duration_seconds_sum",
                     end_reason=reason, **sse) == pytest.approx(3 * 2.02)
    first_byte = "http_server_stream_time_to_first_byte_seconds"
    assert value(registry, first_byte + "_count", **sse) == 9
    assert value(registry, first_byte + "_bucket", le="0.01", **sse) == 0
    assert value(registry, first_byte + "_bucket", le="0.025", **sse) == 9
    assert registry.get_sample_value(first_byte + "_count", {
        "http_route": "/work", "stream_kind": "websocket"}) is None
    assert value(registry, STREAMS, end_reason="completed", http_route="/work",
                 stream_kind="websocket") == 1
    for kind in ("sse", "websocket"):
        assert value(registry, STREAMS_ACTIVE, http_route="/work", stream_kind=kind) == 0
    assert value(registry, "http_server_response_body_size_bytes_count",
                 http_request_method="GET", http_route="/work") == 10
    assert value(registry, "http_server_response_body_size_bytes_sum",
                 http_request_method="GET", http_route="/work") == 9 * 15
    assert total(registry, DURATION + "_count") == 0

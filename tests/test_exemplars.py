"""Exemplars (option ``exemplars``): duration observations carry the request's trace id."""

from __future__ import annotations

import logging

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.openmetrics.exposition import CONTENT_TYPE_LATEST

from asgi_mcp_metrics import MetricsMiddleware, instrument_tool
from asgi_mcp_metrics._binding import get_recorder
from asgi_mcp_metrics.exposition import render

from .asgi import call, http_scope

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01".encode()


async def ok(scope: object, receive: object, send: object) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})  # type: ignore[operator]
    await send({"type": "http.response.body", "body": b"ok"})  # type: ignore[operator]


def exemplar_lines(registry: CollectorRegistry, name: str) -> list[str]:
    """The lines of ``name`` with an exemplar, as the exposition core serves OpenMetrics."""
    exposition = render(registry, accept=CONTENT_TYPE_LATEST, accept_encoding="", names=(),
                        gzip=False)
    assert exposition.status == 200
    text = exposition.body.decode()
    return [line for line in text.splitlines() if line.startswith(name) and " # {" in line]


@pytest.mark.anyio
@pytest.mark.parametrize("enabled", [True, False])
async def test_the_request_duration_carries_the_traceparent(registry: CollectorRegistry,
                                                           enabled: bool) -> None:
    app = MetricsMiddleware(ok, registry=registry, exemplars=enabled)
    await call(app, http_scope("/", headers=[(b"traceparent", TRACEPARENT)]))
    await call(app, http_scope("/"))  # no trace context: no exemplar, the older one stays
    lines = exemplar_lines(registry, "http_server_request_duration_seconds_bucket")
    if enabled:
        assert len(lines) == 1
        assert f'# {{trace_id="{TRACE_ID}"}}' in lines[0]
    else:
        assert lines == []


def test_a_tool_call_carries_the_current_opentelemetry_span(registry: CollectorRegistry) -> None:
    from opentelemetry import trace
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

    get_recorder(registry).use_exemplars()

    @instrument_tool(registry=registry)
    def add(a: int, b: int) -> int:
        return a + b

    context = SpanContext(int(TRACE_ID, 16), 0x00F067AA0BA902B7, is_remote=True,
                          trace_flags=TraceFlags(1))
    with trace.use_span(NonRecordingSpan(context)):
        add(1, 2)
    lines = exemplar_lines(registry, "mcp_tool_call_duration_seconds_bucket")
    assert len(lines) == 1 and f'trace_id="{TRACE_ID}"' in lines[0]


def test_multiprocess_mode_keeps_them_off(registry: CollectorRegistry,
                                          caplog: pytest.LogCaptureFixture) -> None:
    recorder = get_recorder(registry)
    recorder.multiprocess = True
    with caplog.at_level(logging.WARNING, logger="asgi_mcp_metrics"):
        recorder.use_exemplars()
    assert recorder.exemplars is False
    assert "multiprocess" in caplog.text

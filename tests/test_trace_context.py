"""The trace context of the current request: W3C ``traceparent``, OpenTelemetry fallback."""

from __future__ import annotations

import json

import pytest
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from asgi_mcp_metrics.audit import audit_line
from asgi_mcp_metrics.trace_context import (
    current_trace_id,
    trace_id_of,
    traceparent_from_scope,
    use_traceparent,
)
from tests.asgi import http_scope

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.mark.parametrize(("header", "expected"), [
    (TRACEPARENT, "4bf92f3577b34da6a3ce929d0e0e4736"),
    (TRACEPARENT.upper(), "4bf92f3577b34da6a3ce929d0e0e4736"),
    ("00-00000000000000000000000000000000-00f067aa0ba902b7-01", None),
    ("garbage", None),
    ("", None),
    (None, None),
])
def test_trace_id_of_traceparent(header: str | None, expected: str | None) -> None:
    assert trace_id_of(header) == expected


def test_traceparent_of_the_current_request_is_used() -> None:
    with use_traceparent(TRACEPARENT):
        assert current_trace_id() == "4bf92f3577b34da6a3ce929d0e0e4736"
        record = json.loads(audit_line(tool="t", backend="", identity=None, outcome="ok",
                                       duration_seconds=0))
        assert record["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert current_trace_id() is None


def test_opentelemetry_span_is_the_fallback() -> None:
    context = SpanContext(trace_id=0x1234, span_id=0x5678, is_remote=True,
                          trace_flags=TraceFlags(TraceFlags.SAMPLED))
    with trace.use_span(NonRecordingSpan(context)):
        assert current_trace_id() == f"{0x1234:032x}"


def test_traceparent_from_scope_headers() -> None:
    scope = http_scope("/mcp", "POST", headers=[(b"traceparent", TRACEPARENT.encode())])
    assert traceparent_from_scope(scope) == TRACEPARENT
    assert traceparent_from_scope(http_scope("/mcp")) is None

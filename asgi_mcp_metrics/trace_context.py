"""W3C trace context of the current request, for the audit log and the tool decorators.

The middleware (option ``audit_log``) and the ``mcp`` SDK adapter publish the trace id of the
request's ``traceparent`` in a context variable for the length of the request; code can do the
same with :func:`use_traceparent`.  :func:`current_trace_id` reads it, falling back to the
current OpenTelemetry span when OpenTelemetry is installed and a span is recording.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar, Token
from typing import Any

__all__ = [
    "current_trace_id",
    "reset_traceparent",
    "set_traceparent",
    "trace_id_of",
    "traceparent_from_scope",
    "use_traceparent",
]

# version "-" trace-id "-" parent-id "-" flags; an all-zero trace id is invalid (W3C).
_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}")
_INVALID_TRACE_ID = "0" * 32

_trace_id: ContextVar[str | None] = ContextVar("asgi_mcp_metrics.trace_id", default=None)


def trace_id_of(traceparent: str | None) -> str | None:
    """The trace id of a W3C ``traceparent`` value; None when absent or malformed."""
    if not traceparent:
        return None
    match = _TRACEPARENT.match(traceparent.strip().lower())
    if match is None or match.group(1) == _INVALID_TRACE_ID:
        return None
    return match.group(1)


def set_traceparent(traceparent: str | None) -> Token[str | None]:
    return _trace_id.set(trace_id_of(traceparent))


def reset_traceparent(token: Token[str | None]) -> None:
    _trace_id.reset(token)


@contextmanager
def use_traceparent(traceparent: str | None) -> Iterator[None]:
    """Inside the block, audit lines carry the trace id of ``traceparent``."""
    token = _trace_id.set(trace_id_of(traceparent))
    try:
        yield
    finally:
        _trace_id.reset(token)


def traceparent_from_scope(scope: Mapping[str, Any]) -> str | None:
    for name, value in scope.get("headers") or ():
        if name.lower() == b"traceparent":
            return str(value.decode("latin-1"))
    return None


def current_trace_id() -> str | None:
    trace_id = _trace_id.get()
    if trace_id is not None:
        return trace_id
    return _opentelemetry_trace_id()


def _opentelemetry_trace_id() -> str | None:
    try:
        from opentelemetry import trace
    except ImportError:
        return None
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return f"{context.trace_id:032x}"

"""One structured JSON log line per tool call (option ``audit_log``, off by default).

The line goes to the standard ``logging`` logger named by ``audit_logger`` at INFO level, so
the application decides where it ends up (stdout, a file, a log shipper).  Fields::

    {"time": "2026-03-11T10:23:45.123456Z", "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
     "tool": "search", "backend": "github", "identity": "client-a", "outcome": "ok",
     "duration_seconds": 0.0123}

``trace_id`` comes from the W3C ``traceparent`` of the current request when one is known
(published with :func:`use_traceparent`, e.g. by the ``mcp`` SDK middleware from the
request's ``_meta`` or headers), else from the current OpenTelemetry span when OpenTelemetry is
installed and a span is recording, else ``null``.  Tool, backend and identity are the raw
values, not the bounded label values.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar, Token
from datetime import datetime, timezone
from typing import Any

__all__ = [
    "audit_line",
    "current_trace_id",
    "reset_traceparent",
    "set_traceparent",
    "trace_id_of",
    "use_traceparent",
    "write_audit_line",
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


def audit_line(*, tool: str, backend: str, identity: str | None, outcome: str,
               duration_seconds: float, now: datetime | None = None,
               trace_id: str | None = None) -> str:
    """The JSON text of one audit record."""
    when = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    record = {
        "time": when.isoformat(timespec="microseconds").replace("+00:00", "Z"),
        "trace_id": trace_id if trace_id is not None else current_trace_id(),
        "tool": tool,
        "backend": backend,
        "identity": identity,
        "outcome": outcome,
        "duration_seconds": round(duration_seconds, 6),
    }
    return json.dumps(record, separators=(",", ":"), ensure_ascii=False)


def write_audit_line(logger_name: str, *, tool: str, backend: str, identity: str | None,
                     outcome: str, duration_seconds: float) -> None:
    logger = logging.getLogger(logger_name)
    if logger.isEnabledFor(logging.INFO):
        logger.info(audit_line(tool=tool, backend=backend, identity=identity, outcome=outcome,
                               duration_seconds=duration_seconds))

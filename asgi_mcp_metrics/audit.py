"""One structured JSON log line per tool call (option ``audit_log``, off by default).

The line goes to the standard ``logging`` logger named by ``audit_logger`` at INFO level, so
the application decides where it ends up (stdout, a file, a log shipper).  Fields::

    {"time": "2026-03-11T10:23:45.123456Z", "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
     "tool": "search", "backend": "github", "identity": "client-a", "outcome": "ok",
     "duration_seconds": 0.0123}

``trace_id`` is :func:`~.trace_context.current_trace_id`: the W3C ``traceparent`` of the
current request when one is known, else the current OpenTelemetry span's, else ``null``.
Tool, backend and identity are the raw values, not the bounded label values.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone

from .trace_context import current_trace_id

__all__ = ["audit_line", "write_audit_line"]

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

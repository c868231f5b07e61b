"""Deep health: the state of every backend a ``BackendMonitor`` watches on this recorder.

Healthy means the monitor holds at least one open connection.  The answer is 200 when at least
``health_min_backends`` backends are healthy, else 503.
"""

from __future__ import annotations

from time import time
from typing import Any

from ..backends import BackendMonitor, monitors_of
from ..recorder import Recorder

__all__ = ["health"]


def health(recorder: Recorder, min_backends: int, *, details: bool) -> tuple[int, dict[str, Any]]:
    """``(status, body)``; the body lists the backends only with ``details``."""
    monitors = monitors_of(recorder)
    healthy = sum(1 for monitor in monitors if monitor.open_connections > 0)
    ok = healthy >= min_backends
    body: dict[str, Any] = {
        "status": "ok" if ok else "unavailable",
        "healthy_backends": healthy,
        "required": min_backends,
    }
    if details:
        now = time()
        body["backends"] = {monitor.backend: _state(monitor, now) for monitor in monitors}
    return (200 if ok else 503), body


def _state(monitor: BackendMonitor, now: float) -> dict[str, Any]:
    return {
        "up": monitor.open_connections > 0,
        "transport": monitor.transport,
        "open_connections": monitor.open_connections,
        "last_connect_seconds_ago": _ago(monitor.last_connect, now),
        "last_error": monitor.last_error,
        "last_error_seconds_ago": _ago(monitor.last_error_at, now),
        "last_call_latency_seconds": (round(monitor.last_call_seconds, 6)
                                      if monitor.last_call_seconds is not None else None),
    }


def _ago(when: float | None, now: float) -> float | None:
    return None if when is None else round(max(now - when, 0.0), 3)

"""Requests in flight: an O(1) table the middleware updates, and its snapshot for viewers.

The recording path calls :meth:`InFlight.add` when a request starts and :meth:`InFlight.remove`
when it ends: one set insert or delete and one counter step.  Everything else (what a record
looks like to an operator) happens here, when somebody looks.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from time import perf_counter
from typing import Any

__all__ = ["InFlight", "describe"]

MAX_PATH_CHARS = 200


class InFlight:
    """The requests, streams and MCP operations in flight on one recorder.

    ``version`` steps by one on every add and every remove, so a viewer that remembers the
    version it last showed knows exactly how many changes it has not shown yet.
    """

    __slots__ = ("_counter", "_records", "version")

    def __init__(self) -> None:
        self._records: set[Any] = set()
        # next() on itertools.count is atomic under the GIL: threads (WSGI) never share a step.
        self._counter = itertools.count(1)
        self.version = 0

    def add(self, record: Any) -> None:
        self._records.add(record)
        self.version = next(self._counter)

    def remove(self, record: Any) -> None:
        try:
            self._records.remove(record)
        except KeyError:
            return
        self.version = next(self._counter)

    def __len__(self) -> int:
        return len(self._records)

    def records(self) -> list[Any]:
        """A copy of the records; safe against a concurrent add/remove from another thread."""
        while True:
            try:
                return list(self._records)
            except RuntimeError:  # pragma: no cover - "dictionary changed size during iteration"
                continue


Identify = Callable[[Mapping[str, Any]], "str | None"]


def describe(record: Any, now: float | None = None,
             identify: Identify | None = None) -> dict[str, Any]:
    """What an operator sees of one in-flight HTTP exchange (read-only, best effort);
    ``identify`` gives the caller's identity from the scope (only when identity is on)."""
    now = perf_counter() if now is None else now
    scope: Mapping[str, Any] = getattr(record, "scope", {})
    stream_kind = getattr(record, "stream_kind", None)
    started = float(getattr(record, "started", now))
    path = str(scope.get("path", ""))
    entry: dict[str, Any] = {
        "kind": "stream" if stream_kind else "request",
        "method": str(getattr(record, "method", scope.get("method", ""))),
        "route": _route(record, scope),
        "path": path[:MAX_PATH_CHARS],
        "status": int(getattr(record, "status", 0) or 0),
        "age_seconds": round(max(now - started, 0.0), 3),
    }
    if stream_kind:
        entry["stream_kind"] = str(stream_kind)
    if identify is not None:
        identity = identify(scope)
        if identity:
            entry["identity"] = identity
    operations = [_operation(op, now) for op in _operations(record)]
    if operations:
        entry["mcp"] = operations
    return entry


def _route(record: Any, scope: Mapping[str, Any]) -> str:
    route = getattr(record, "route", "")
    if route:
        return str(route)
    template = getattr(scope.get("route"), "path", None)
    return str(template) if template else ""


def _operations(record: Any) -> list[Any]:
    request = getattr(getattr(record, "observer", None), "request", None)
    operations = getattr(request, "operations", None)
    if not isinstance(operations, Mapping):
        return []
    return [op for op in list(operations.values()) if not getattr(op, "settled", False)]


def _operation(operation: Any, now: float) -> dict[str, Any]:
    entry: dict[str, Any] = {"method": str(getattr(operation, "method", ""))}
    tool = getattr(operation, "tool", None)
    if tool:
        entry["tool"] = str(tool)
    identity = getattr(operation, "identity", "")
    if identity:
        entry["identity"] = str(identity)
    started = getattr(operation, "started", None)
    if isinstance(started, float):
        entry["age_seconds"] = round(max(now - started, 0.0), 3)
    return entry


def snapshot(inflight: InFlight, identify: Identify | None = None) -> dict[str, Any]:
    """The JSON document of ``/metrics/active``: the version and every record, oldest first."""
    version = inflight.version
    now = perf_counter()
    entries = [describe(record, now, identify) for record in inflight.records()]
    entries.sort(key=lambda entry: -entry["age_seconds"])
    return {
        "version": version,
        "requests": sum(1 for e in entries if e["kind"] == "request"),
        "streams": sum(1 for e in entries if e["kind"] == "stream"),
        "operations": sum(len(e.get("mcp", ())) for e in entries),
        "active": entries,
    }

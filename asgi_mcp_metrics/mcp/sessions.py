"""MCP sessions as seen on the wire, and requests still waiting for their answer.

A handshake-era session starts with a 2xx ``initialize`` response carrying ``Mcp-Session-Id``
(Streamable HTTP) or with the ``endpoint`` event of a legacy ``GET /sse`` stream, and ends with
a DELETE, a 404 "Session not found", the legacy stream's end, or the server's shutdown.  The
SDK's idle reaping is invisible on the wire until the client's next request gets its 404.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from time import perf_counter
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..recorder import Recorder
    from .jsonrpc import IdKey
    from .operations import Operation, Operations

#: Sessions tracked at most; past that new sessions are not tracked (and that is counted).
MAX_SESSIONS = 100_000
#: Requests of one legacy session waiting for their answer on the stream.
MAX_PENDING_PER_SESSION = 10_000


@dataclass(slots=True)
class Session:
    started: float
    transport: str
    version: str = ""
    pending: dict[IdKey | None, Operation] = field(default_factory=dict)


class Sessions:
    """Live sessions of one middleware instance."""

    def __init__(self, recorder: Recorder, operations: Operations) -> None:
        self.recorder = recorder
        self.operations = operations
        self.live: dict[str, Session] = {}
        self._active = recorder["mcp_server_sessions_active"]
        self._started = recorder["mcp_server_sessions_started_total"]
        self._ended = recorder["mcp_server_sessions_ended_total"]
        self._duration = recorder["mcp_server_session_duration_seconds"]
        self._not_found = recorder["mcp_server_session_not_found_total"]

    def start(self, session_id: str, transport: str, started: float) -> None:
        if session_id in self.live:
            return
        if len(self.live) >= MAX_SESSIONS:
            self.recorder.parse_limits.labels("sessions", "too_many").inc()
            return
        self.live[session_id] = Session(started, transport)
        self._active.labels(transport).inc()
        self._started.labels(transport).inc()

    def end(self, session_id: str, reason: str, ended: float | None = None) -> None:
        session = self.live.pop(session_id, None)
        if session is None:
            return
        ended = perf_counter() if ended is None else ended
        self._active.labels(session.transport).dec()
        self._ended.labels(session.transport, reason).inc()
        self._duration.labels(session.transport, reason).observe(ended - session.started)
        # Requests whose answer would have come on this session's stream never will.
        for operation in session.pending.values():
            self.operations.record(operation, "cancelled", "client_disconnect", ended)

    def not_found(self, session_id: str, transport: str) -> None:
        self._not_found.labels(transport).inc()
        self.end(session_id, "not_found")

    def await_answer(self, session_id: str, operations: list[Operation]) -> bool:
        """Park requests whose answers will arrive on the session's (legacy) stream."""
        session = self.live.get(session_id)
        if session is None:
            return False
        for operation in operations:
            if not operation.version:
                # Legacy clients send no version header: the session's negotiated one applies.
                operation.version = session.version
            if len(session.pending) >= MAX_PENDING_PER_SESSION:
                self.recorder.parse_limits.labels("pending_requests", "too_many").inc()
                break
            session.pending[operation.id_key] = operation
        return True

    def negotiated(self, session_id: str, version: str) -> None:
        session = self.live.get(session_id)
        if session is not None:
            session.version = version

    def take_answered(self, session_id: str, id_key: IdKey | None) -> Operation | None:
        session = self.live.get(session_id)
        if session is None:
            return None
        return session.pending.pop(id_key, None)

    def shutdown(self) -> None:
        now = perf_counter()
        for session_id in list(self.live):
            self.end(session_id, "shutdown", now)

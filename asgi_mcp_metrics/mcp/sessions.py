"""MCP sessions as seen on the wire, and the requests in flight on each.

A handshake-era session starts with a 2xx ``initialize`` response carrying ``Mcp-Session-Id``
(Streamable HTTP) or with the ``endpoint`` event of a legacy ``GET /sse`` stream, and ends with
a DELETE, a 404 "Session not found", the legacy stream's end, or the server's shutdown.  The
SDK's idle reaping is invisible on the wire until the client's next request gets its 404.

Each session keeps the requests still in flight on it, by JSON-RPC id: on the legacy transport
their answers arrive on the session's GET stream, and in both transports a
``notifications/cancelled`` names the request it cancels by id within the session.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from time import perf_counter
from typing import TYPE_CHECKING, Final

from .operations import CANCELLED

if TYPE_CHECKING:
    from .operations import Operation
    from .recording import McpRecording
    from .wire.jsonrpc import IdKey

#: Sessions tracked at most; past that new sessions are not tracked (and that is counted).
MAX_SESSIONS: Final = 100_000
#: Requests in flight on one session that are tracked at most.
MAX_OPEN_PER_SESSION: Final = 10_000


@dataclass(slots=True, eq=False)
class Session:
    started: float
    transport: str
    version: str = ""
    open: dict[IdKey, Operation] = field(default_factory=dict)


class Sessions:
    """Live sessions of one middleware instance."""

    def __init__(self, recording: McpRecording) -> None:
        self.recording = recording
        self.live: dict[str, Session] = {}

    def start(self, session_id: str, transport: str, started: float) -> None:
        if session_id in self.live:
            return
        if len(self.live) >= MAX_SESSIONS:
            self.recording.parse_limit("sessions", "too_many")
            return
        self.live[session_id] = Session(started, transport)
        self.recording.session_started(transport)

    def end(self, session_id: str, reason: str, ended: float | None = None) -> None:
        session = self.live.pop(session_id, None)
        if session is None:
            return
        ended = perf_counter() if ended is None else ended
        self.recording.session_ended(session.transport, reason, ended - session.started)
        for operation in session.open.values():
            operation.session = None
            if operation.on_stream:
                # Its answer would have come on this session's stream; it never will.
                self.recording.operation(operation, CANCELLED, reason, ended)
        session.open.clear()

    def not_found(self, session_id: str, transport: str) -> None:
        self.recording.session_not_found(transport)
        self.end(session_id, "not_found")

    def negotiated(self, session_id: str, version: str) -> None:
        session = self.live.get(session_id)
        if session is not None:
            session.version = version

    def track(self, session_id: str, operation: Operation, *, on_stream: bool) -> bool:
        """Remember ``operation`` as in flight on the session; False if it is not tracked."""
        session = self.live.get(session_id)
        if session is None or operation.id_key is None:
            return False
        if not operation.version:
            # Legacy clients send no version header: the session's negotiated one applies.
            operation.version = session.version
        open_operations = session.open
        previous = open_operations.get(operation.id_key)
        if previous is None:
            if len(open_operations) >= MAX_OPEN_PER_SESSION:
                self.recording.parse_limit("pending_requests", "too_many")
                return False
        else:
            previous.session = None
            if previous.on_stream:
                # The id is reused while the first request is still waiting: the answers
                # cannot be told apart, so the first one is given up rather than guessed.
                previous.settled = True
                self.recording.parse_limit("request_body", "duplicate_id")
        operation.session = session_id
        operation.on_stream = on_stream
        open_operations[operation.id_key] = operation
        return True

    def settle(self, operation: Operation, outcome: str, error_type: str, ended: float) -> None:
        """``operation`` got no answer here: forget it, and record how it ended."""
        self.release(operation)
        self.recording.operation(operation, outcome, error_type, ended)

    def release(self, operation: Operation) -> None:
        """``operation`` is settled (or answered elsewhere): forget it."""
        session_id = operation.session
        if session_id is None:
            return
        operation.session = None
        session = self.live.get(session_id)
        if session is not None and operation.id_key is not None and \
                session.open.get(operation.id_key) is operation:
            del session.open[operation.id_key]

    def take(self, session_id: str, id_key: IdKey | None) -> Operation | None:
        """The request an answer on the session's (legacy) stream belongs to."""
        session = self.live.get(session_id)
        if session is None or id_key is None:
            return None
        operation = session.open.get(id_key)
        if operation is None or not operation.on_stream:
            return None
        del session.open[id_key]
        operation.session = None
        if not operation.version:
            # Sent before the initialize answer was seen: the negotiated version applies.
            operation.version = session.version
        return operation

    def cancel(self, session_id: str, id_key: IdKey, ended: float) -> None:
        """``notifications/cancelled``: the named request ends as cancelled, now."""
        session = self.live.get(session_id)
        if session is None:
            return
        operation = session.open.pop(id_key, None)
        if operation is not None:
            operation.session = None
            self.recording.operation(operation, CANCELLED, "cancelled", ended)

    def open_count(self) -> int:
        """Requests in flight across all sessions (for tests and debugging)."""
        return sum(len(session.open) for session in self.live.values())

    def shutdown(self) -> None:
        now = perf_counter()
        for session_id in list(self.live):
            self.end(session_id, "shutdown", now)

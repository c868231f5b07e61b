"""MCP sessions as seen on the wire, and the requests in flight on each.

A handshake-era session starts with a 2xx ``initialize`` response carrying ``Mcp-Session-Id``
(Streamable HTTP) or with the ``endpoint`` event of a legacy ``GET /sse`` stream, and ends with
a DELETE, a 404 "Session not found", the legacy stream's end, or the server's shutdown.

A client that vanishes without a DELETE leaves nothing on the wire: the SDK reaps its session
after an idle timeout, unseen until the client's next request gets its 404, if it ever comes.
So a Streamable HTTP session with no exchange in flight (no request, no open GET stream) for
``session_idle_timeout_seconds`` ends here as ``idle_timeout``, like the SDK's own reaping: the
idle sessions are kept in the order they fell idle, and one timer on the event loop (and every
new exchange, should that loop be gone) ends those whose time is up.  A legacy session lives
exactly as long as its stream.

Each session keeps the requests still in flight on it, by JSON-RPC id: on the legacy transport
their answers arrive on the session's GET stream, and in both transports a
``notifications/cancelled`` names the request it cancels by id within the session.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from time import perf_counter
from typing import TYPE_CHECKING, Final

from .operations import CANCELLED
from .wire.vocabulary import STREAMABLE

if TYPE_CHECKING:
    from .operations import Operation
    from .recording import McpRecording
    from .wire.jsonrpc import IdKey

#: Sessions tracked at most; past that new sessions are not tracked (and that is counted).
MAX_SESSIONS: Final = 100_000
#: Requests in flight on one session that are tracked at most.
MAX_OPEN_PER_SESSION: Final = 10_000
#: Exchanges counted at most for session ids not (yet) started: a client's GET stream may open
#: before the middleware has seen the end of the initialize exchange that starts its session.
MAX_EARLY: Final = 1_000
#: Idle sessions ended at most per sweep: a sweep's work is bounded; the next one goes on.
MAX_REAPED_PER_SWEEP: Final = 1_000
IDLE_TIMEOUT: Final = "idle_timeout"
#: The requests in flight of a session that has none (written only through ``track``).
_NOTHING_OPEN: Final[dict[IdKey, Operation]] = {}


@dataclass(slots=True, eq=False)
class Session:
    id: str
    started: float
    transport: str
    version: str = ""
    #: Requests in flight on the session, by id; one shared empty table until the first.
    open: dict[IdKey, Operation] = field(default_factory=lambda: _NOTHING_OPEN)
    #: Exchanges on the session still going (requests, GET streams): it is not idle.
    in_flight: int = 0
    last_active: float = 0.0


class Sessions:
    """Live sessions of one middleware instance."""

    def __init__(self, recording: McpRecording, idle_timeout: float = 0.0) -> None:
        self.recording = recording
        self.live: dict[str, Session] = {}
        #: 0: sessions are never ended for being idle.
        self.idle_timeout = idle_timeout
        #: Reapable sessions with nothing in flight, longest idle first.
        self.idle: dict[str, Session] = {}
        #: Exchanges in flight on session ids that are not live (yet), by id.
        self.early: dict[str, int] = {}
        self._wake: asyncio.TimerHandle | None = None
        self._wake_loop: asyncio.AbstractEventLoop | None = None

    def start(self, session_id: str, transport: str, started: float) -> None:
        if session_id in self.live:
            return
        if len(self.live) >= MAX_SESSIONS:
            self.recording.parse_limit("sessions", "too_many")
            return
        session = self.live[session_id] = Session(session_id, started, transport,
                                                  in_flight=self.early.pop(session_id, 0))
        self.recording.session_started(transport)
        if not session.in_flight:
            self._idle_from(session, perf_counter())

    def end(self, session_id: str, reason: str, ended: float | None = None) -> None:
        session = self.live.pop(session_id, None)
        if session is None:
            return
        self.idle.pop(session_id, None)
        ended = perf_counter() if ended is None else ended
        self.recording.session_ended(session.transport, reason, ended - session.started)
        for operation in session.open.values():
            operation.session = None
            if operation.on_stream:
                # Its answer would have come on this session's stream; it never will.
                self.recording.operation(operation, CANCELLED, reason, ended)
        session.open = _NOTHING_OPEN

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
        if open_operations is _NOTHING_OPEN:
            open_operations = session.open = {}
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

    def enter(self, session_id: str) -> str:
        """An exchange on the session begins: until it ends, the session is not idle.

        Returns the id to keep for the exchange: the live session's own string when there is
        one (a long stream then holds no copy of its own)."""
        session = self.live.get(session_id)
        if session is not None:
            session.in_flight += 1
            self.idle.pop(session_id, None)
            return session.id
        if session_id in self.early or len(self.early) < MAX_EARLY:
            self.early[session_id] = self.early.get(session_id, 0) + 1
        return session_id

    def leave(self, session_id: str, ended: float) -> None:
        session = self.live.get(session_id)
        if session is not None:
            session.in_flight = max(session.in_flight - 1, 0)
            if not session.in_flight:
                self._idle_from(session, ended)
            return
        left = self.early.pop(session_id, 0) - 1
        if left > 0:
            self.early[session_id] = left

    def _idle_from(self, session: Session, now: float) -> None:
        if not self.idle_timeout or session.transport != STREAMABLE:
            return
        session.last_active = now
        self.idle.pop(session.id, None)  # to the end of the line
        self.idle[session.id] = session
        if self._wake is None or self._wake_loop is None or self._wake_loop.is_closed():
            self._schedule(self.idle_timeout)

    def sweep(self, now: float) -> None:
        """End the sessions idle for longer than the timeout (at most a bounded number)."""
        if not self.idle:
            return
        deadline = now - self.idle_timeout
        for _ in range(MAX_REAPED_PER_SWEEP):
            session = next(iter(self.idle.values()), None)
            if session is None or session.last_active > deadline:
                return
            self.end(session.id, IDLE_TIMEOUT, now)

    def _wake_up(self) -> None:
        self._wake = None
        try:
            self.sweep(perf_counter())
            session = next(iter(self.idle.values()), None)
            if session is not None:
                self._schedule(session.last_active + self.idle_timeout - perf_counter())
        except Exception:
            self.recording.recorder.internal_error("session_sweep")

    def _schedule(self, delay: float) -> None:
        """One timer for all sessions, on the loop the traffic runs on."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop here: the next exchange sweeps
        if self._wake is not None:
            self._wake.cancel()
        self._wake_loop = loop
        # (A little late rather than early: the session is surely past its time then.)
        self._wake = loop.call_later(max(delay, 0.0) + 0.01, self._wake_up)

    def open_count(self) -> int:
        """Requests in flight across all sessions (for tests and debugging)."""
        return sum(len(session.open) for session in self.live.values())

    def shutdown(self) -> None:
        if self._wake is not None:
            self._wake.cancel()
            self._wake = None
        now = perf_counter()
        for session_id in list(self.live):
            self.end(session_id, "shutdown", now)

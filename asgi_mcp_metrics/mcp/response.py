"""The response side of one MCP exchange: reading the answers and matching them by id.

An answer arrives as a JSON body, as SSE frames on the same response, or - legacy HTTP+SSE
transport - as frames on the session's GET stream, whose first ``endpoint`` event opens the
session.  Each answer settles the request with its id; what is read depends on ``mcp_parsing``
(see :mod:`.tracker`).  Buffers and frames are capped and past a cap is counted: a JSON answer is
then not read, an SSE frame is known by the id its first bytes show (an ``ok`` answer: its size is
all there is to go by), and the frames after it are read as usual.
"""

from __future__ import annotations

from collections.abc import Sequence
from time import perf_counter
from typing import TYPE_CHECKING, Any, Final

from .operations import outcome_of
from .wire.body import BoundedBuffer, CappedBody
from .wire.headers import response_headers
from .wire.jsonrpc import (
    IdKey,
    Message,
    Parsed,
    answer_id,
    decode,
    label_text,
    listed_names,
    messages_of,
    plain_result,
)
from .wire.sse import SSEEvent, SSEParser, legacy_endpoint
from .wire.vocabulary import LEGACY, version_label

if TYPE_CHECKING:
    from .endpoints import Endpoints
    from .policy import ReadPolicy
    from .recording import McpRecording
    from .request import McpRequest
    from .sessions import Sessions

#: Ids the SDKs put on transport-level errors that answer no request in particular.
_TRANSPORT_ERROR_IDS: Final[frozenset[IdKey]] = frozenset({("null", ""), ("str", "server-error")})


class McpResponse(CappedBody):
    """What the response of one exchange answers."""

    __slots__ = ("answered", "endpoints", "error_code", "frames", "invalid",
                 "legacy_stream_session", "policy", "reading", "recording", "request",
                 "session_id", "sessions", "sse", "status", "stream_kind", "unparsed")

    def __init__(self, policy: ReadPolicy, recording: McpRecording, sessions: Sessions,
                 endpoints: Endpoints, request: McpRequest) -> None:
        self.policy = policy
        self.recording = recording
        self.sessions = sessions
        self.endpoints = endpoints
        self.request = request
        self.status = 0
        #: The ``Mcp-Session-Id`` the response carries (a new session, after ``initialize``).
        self.session_id: str | None = None
        #: The JSON body's cap while it is read (0: not read), and its buffer once it comes in
        #: more than one message.
        self.body_cap = 0
        self.body: BoundedBuffer | None = None
        self.sse: SSEParser | None = None
        #: Whether answers are read from this response (by mode, and what the request was).
        self.reading = False
        self.legacy_stream_session: str | None = None
        self.frames = 0
        self.stream_kind: str | None = None
        #: Not read past a size cap: its status is all there is to go by.
        self.unparsed = False
        #: Read, but not JSON-RPC.
        self.invalid = False
        self.error_code: int | None = None
        #: At least one of the request's operations was answered here.
        self.answered = False

    def start(self, status: int, headers: Sequence[tuple[bytes, bytes]]) -> str | None:
        """``http.response.start``: returns the stream kind when the response is a stream."""
        self.status = status
        request = self.request
        # Whatever the app has not read of the request by now is not part of its answer.
        if request.body_cap:
            request.stop_reading()
        content_type, session_id = response_headers(headers)
        if session_id is not None and request.http_method == "POST":
            # (Only a POST's answer can start a session; a GET stream's echoes its own.)
            self.session_id = session_id.decode("latin-1")
        if 300 <= status < 400:
            return None  # a redirect (e.g. /messages -> /messages/): the request comes again
        if not request.parsed and not request.headers_used:
            request.from_headers()
        policy = self.policy
        reads_answers = policy.parse_responses or (policy.parse_requests and request.lists_tools)
        # (bytes.find: ``in`` on bytes takes a slower path.)
        if content_type.find(b"text/event-stream") >= 0:
            kind = self.stream_kind = self._stream_kind()
            self.reading = reads_answers
            if reads_answers or request.http_method == "GET":
                # A GET stream is read at least up to its first event: a legacy ``endpoint``.
                self.sse = SSEParser(policy.max_frame_bytes)
            return kind
        if content_type.find(b"json") >= 0 and (
                (request.operations and reads_answers)
                or (status >= 400 and policy.parse_responses)):
            self.reading = True
            self.body_cap = policy.max_frame_bytes
        return None

    def _stream_kind(self) -> str | None:
        request = self.request
        if request.http_method == "GET":
            if request.header_session is not None and not request.modern:
                request.is_mcp = True
                return "get_notifications"
            if request.path in self.endpoints.stream_paths:
                request.is_mcp = True
                return "sse_legacy"
            # A known MCP path: a stateless GET stream, or a legacy one once its first event
            # says so.  An unknown path: a plain SSE stream unless that first event says so.
            return "get_notifications" if request.is_mcp else None
        if not request.is_mcp:
            return None
        return "subscriptions_listen" if request.subscription else "post_response"

    def feed(self, chunk: bytes, more_body: bool) -> bool:
        """A piece of the response body; False once nothing more of it is wanted."""
        sse = self.sse
        if sse is not None:
            if chunk:
                now = perf_counter()
                overflows = sse.overflows
                for event in sse.feed(chunk):
                    self._event(event, now)
                if sse.overflows != overflows:
                    self.recording.parse_limit("sse_frame", "too_large",
                                               sse.overflows - overflows)
                    self.unparsed = True
            return self.sse is not None
        cap = self.body_cap
        if not cap:
            return False
        if more_body or self.body is not None or type(chunk) is not bytes:
            whole = self.take_body(chunk, more_body)
            if whole is None:
                return True
            data, overflowed = whole
        else:  # the whole body in one message, the common case, read as take_body reads it
            self.body_cap = 0
            data, overflowed = chunk, len(chunk) > cap
        if overflowed:
            self.recording.parse_limit("json_response", "too_large")
            self.unparsed = True
        else:
            self._read(data, perf_counter(), "json_response")
        return False

    def close(self) -> None:
        """The exchange is over: drop the parsers, count a frame cut off by the end."""
        sse = self.sse
        if sse is not None:
            sse.close()
            self.sse = None
            if sse.truncated and self.request.is_mcp:
                self.recording.parse_limit("sse_frame", "truncated")
        if self.body_cap:
            self.stop_reading()

    def _event(self, event: SSEEvent, now: float) -> None:
        self.frames += 1
        if self.request.http_method == "GET" and self.frames == 1:
            if event.event == "endpoint":
                self._legacy_stream(event)
                return
            if not (self.request.is_mcp and self.reading):
                self.sse = None  # not MCP, or nothing more wanted from this stream
                if not self.request.is_mcp:
                    # A plain event stream: GETs of this path are not looked at again.
                    self.endpoints.remember_plain_stream(self.request.path)
                return
        if self.sse is None:
            return
        if event.event != "message":
            return
        if event.oversized:
            # Too large to read: its id, if its first bytes show it, says what it answers.
            id_key = answer_id(event.data)
            if id_key is not None:
                self._answer(id_key, now, None, None)
            return
        self._read(event.data, now, "sse_frame")

    def _legacy_stream(self, event: SSEEvent) -> None:
        """``event: endpoint`` opens a legacy HTTP+SSE session: this stream is its lifetime."""
        request = self.request
        endpoint = legacy_endpoint(event)
        if endpoint is None or not endpoint.session_id:
            self.sse = None
            return
        request.is_mcp = True
        self.stream_kind = "sse_legacy"
        self.legacy_stream_session = endpoint.session_id
        self.endpoints.remember_stream(request.path)
        self.sessions.start(endpoint.session_id, LEGACY, request.started)
        # Every answer of this transport arrives here; headers-only mode reads none of them.
        self.reading = self.policy.parse_requests
        if not self.reading:
            self.sse = None

    def _read(self, data: bytes | str, now: float, where: str) -> None:
        """The answers in a JSON body or an SSE frame's data."""
        value, invalid = decode(data)
        # One successful answer, as servers send it, is read from its result as it is needed,
        # with no Message made.  Anything else is classified.
        answer = plain_result(value)
        if answer is not None:
            raw, result = answer
            self._answer(("int", raw) if type(raw) is int else ("str", raw), now, None, result)
            return
        self._answers(messages_of(value, invalid), now, where)

    def _answers(self, parsed: Parsed, now: float, where: str) -> None:
        if parsed.invalid is not None:
            if self.status < 400:
                # (An error page that is not JSON-RPC is expected; only answers count.)
                self.recording.parse_limit(where, parsed.invalid)
                self.invalid = True
            return
        for message in parsed.messages:
            kind = message.kind
            if kind == "response" or kind == "error":
                self._answer(message.id_key, now, message, None)
            elif kind == "notification":
                self.recording.notification(message.method, "out")

    def _answer(self, id_key: IdKey | None, now: float, message: Message | None,
                result: dict[str, Any] | None) -> None:
        """An answer, from its ``message`` or (the common case, see :meth:`_read`) straight from
        its ``result``; neither: a successful answer known by its id alone."""
        if message is not None and message.kind == "error" and self.error_code is None:
            self.error_code = message.error_code
        pending = self.request.operations
        operation = pending.pop(id_key, None) if id_key is not None else None
        if operation is None and len(pending) == 1 and None in pending and not (
                self.request.deferred is not None and id_key in _TRANSPORT_ERROR_IDS):
            # Known from headers only (the body was not read): the one answer is its answer -
            # unless the body is merely unread and the answer is a transport error, which
            # answers no request in particular.
            operation = pending.pop(None)
        if operation is None and self.legacy_stream_session is not None:
            operation = self.sessions.take(self.legacy_stream_session, id_key)
        if operation is None:
            # (A resumed stream, GET with Last-Event-ID, replays answers to earlier requests.)
            if (self.status < 400 and id_key is not None and id_key not in _TRANSPORT_ERROR_IDS
                    and self.request.last_event_id is None):
                self.recording.parse_limit("response", "unmatched_id")
            return
        self.answered = True
        method = operation.method
        protocol_version = tool_names = prompt_names = None
        if message is not None:
            outcome, error_type = outcome_of(message.kind == "error", message.error_code,
                                             message.is_error, message.result_type)
            protocol_version = message.protocol_version
            tool_names, prompt_names = message.tool_names, message.prompt_names
        elif result is not None:
            outcome, error_type = outcome_of(False, None, result.get("isError") is True,
                                             result.get("resultType"))
            # (Read only where they are of use.)
            if method == "initialize":
                protocol_version = label_text(result.get("protocolVersion"))
            elif method == "tools/list":
                tool_names = listed_names(result.get("tools"))
            elif method == "prompts/list":
                prompt_names = listed_names(result.get("prompts"))
        else:
            outcome, error_type = outcome_of(False, None, False, None)
        if method == "initialize" and protocol_version:
            # The negotiated version is the answer's, not the one the client asked for.
            operation.version = version_label(protocol_version)
            if self.legacy_stream_session is not None:
                self.sessions.negotiated(self.legacy_stream_session, operation.version)
        if operation.session is not None:
            self.sessions.release(operation)
        # (Recording is once only: an answer to a request cancelled already changes nothing.)
        self.recording.answered(operation, outcome, error_type, now,
                                tool_names=tool_names or (), prompt_names=prompt_names or ())

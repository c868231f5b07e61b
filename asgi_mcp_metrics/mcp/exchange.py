"""One HTTP exchange on an MCP endpoint, as the middleware's observer, and what its end means.

An exchange is the response side (:mod:`.response`, which reads the answers) with its request
(:mod:`.request`) beside it, so the middleware's calls for the response reach the reader with no
step in between.  When the exchange is over this module settles it: sessions started, ended or
not found, protocol errors by reason, and every request that got no answer here, by what the
status, the error and the client's disconnect say.
"""

from __future__ import annotations

from asyncio import CancelledError
from collections.abc import MutableMapping
from typing import TYPE_CHECKING, Any, Final

from .operations import (
    CANCELLED,
    CLIENT_DISCONNECT,
    ERROR,
    NO_RESPONSE,
    OK,
    REJECTED,
    UNREADABLE_RESPONSE,
    Operation,
)
from .request import McpRequest
from .response import McpResponse
from .wire.jsonrpc import (
    INVALID_EMPTY,
    INVALID_JSON,
    INVALID_NOT_AN_OBJECT,
    INVALID_NOT_JSONRPC,
    INVALID_TOO_DEEP,
    INVALID_UTF8,
)
from .wire.vocabulary import METHOD_NOT_FOUND, PROTOCOL_VERSIONS, STREAMABLE, rejection_reason

if TYPE_CHECKING:
    from .endpoints import Endpoints
    from .policy import ReadPolicy
    from .recording import McpRecording
    from .sessions import Sessions
    from .wire.headers import RequestHeaders

#: Request bodies we could not read as JSON-RPC at all (the SDKs answer these with -32700).
_UNPARSABLE: Final = frozenset({INVALID_EMPTY, INVALID_UTF8, INVALID_JSON, INVALID_TOO_DEEP})
#: Request bodies that show the endpoint is a JSON API, but not a JSON-RPC one.
_NOT_JSONRPC: Final = frozenset({INVALID_NOT_JSONRPC, INVALID_NOT_AN_OBJECT})


class McpExchange(McpResponse):
    """One HTTP exchange on an MCP endpoint: its response side, its request, its session."""

    __slots__ = ("held_session",)

    def __init__(self, policy: ReadPolicy, recording: McpRecording, sessions: Sessions,
                 endpoints: Endpoints, scope: MutableMapping[str, Any], started: float,
                 headers: RequestHeaders, known: bool) -> None:
        request = McpRequest(policy, recording, sessions, scope, started, headers, known)
        #: The session this exchange belongs to: while it lasts, the session is not idle.
        #: (``session_id`` is the new session a response may start.)  The request keeps the
        #: live session's own id string, not the copy decoded from the header.
        held = request.header_session
        if held is not None:
            held = request.header_session = sessions.enter(held)
        self.held_session = held
        McpResponse.__init__(self, policy, recording, sessions, endpoints, request)

    def request_body(self, chunk: bytes, more_body: bool) -> None:
        self.request.feed(chunk, more_body)

    # (The response's own methods: ``start`` returns the stream kind, ``feed`` whether more of
    # the body is wanted.)
    response_start = McpResponse.start
    response_body = McpResponse.feed

    def disconnect(self) -> None:
        pass  # the middleware tells finish() whether the client left

    def finish(self, *, error: BaseException | None, disconnected: bool, ended: float) -> None:
        request = self.request
        recording = self.recording
        if self.held_session is not None:
            self.sessions.leave(self.held_session, ended)
        self.close()
        if request.body_cap:
            request.stop_reading()
        if self.legacy_stream_session is not None:
            self.sessions.end(self.legacy_stream_session,
                                  _stream_end_reason(error, disconnected), ended)
        status = self.status
        if request.deferred is not None:
            if self.answered and status < 400:
                request.deferred = None  # answered: the headers said it all
            else:
                request.read_deferred()
        if not request.is_mcp:
            if 200 <= status < 300 and request.invalid in _NOT_JSONRPC:
                self.endpoints.remember(request.path, False)
            return
        if request.http_method == "POST" and (200 <= status < 300 or self.answered) \
                and request.path not in self.endpoints.mcp_paths:
            # Accepted, or answered by id: a JSON-RPC endpoint (a refusal alone proves nothing).
            self.endpoints.remember(request.path, True)
        if request.invalid is not None:
            recording.parse_limit("request_body", request.invalid)
        if request.invalid_elements:
            recording.parse_limit("request_body", "invalid_batch_element",
                                  request.invalid_elements)
        if request.invalid_ids:
            recording.parse_limit("request_body", "invalid_id", request.invalid_ids)
        if 300 <= status < 400:
            self._discard()
            return
        if not request.headers_used and not request.parsed:
            request.from_headers()  # no response at all: the headers may still name it
        if status >= 400 or self.session_id or request.http_method == "DELETE":
            self._sessions(status, ended)  # (nothing to settle otherwise)
        if request.operations:
            self._settle(error, disconnected, ended)

    def _sessions(self, status: int, ended: float) -> None:
        request = self.request
        sessions = self.sessions
        request_session = None if request.modern else request.header_session
        post_session = request.legacy_post_session
        if status == 404 and (request_session or post_session) and not self.answered:
            # The handshake era's "Session not found" (the modern era has no sessions, and its
            # 404 answers the request by id: "method not found").
            sessions.not_found(request_session or post_session or "", request.transport)
        elif 200 <= status < 300:
            if (self.session_id and request_session is None and post_session is None
                    and request.http_method == "POST"
                    and (request.initialize or not self.policy.parse_requests)):
                # Headers-only mode cannot see the method; only an initialize is answered
                # 2xx with a new session id.
                sessions.start(self.session_id, STREAMABLE, request.started)
            if request.http_method == "DELETE" and request_session:
                sessions.end(request_session, "client_delete", ended)
        elif 400 <= status < 500 and not (request.modern and status == 404):
            # (A modern-era 404 is the answer "method not found", not a rejection.)
            version = request.header_version
            reason = rejection_reason(
                status, self.error_code, batch=request.batch,
                unparsable=request.invalid in _UNPARSABLE,
                unknown_version=version is not None and version not in PROTOCOL_VERSIONS,
                missing_session=(not request.modern and request_session is None
                                 and post_session is None and not request.initialize
                                 and (request.parsed or request.http_method != "POST")))
            self.recording.protocol_error(reason)

    def _settle(self, error: BaseException | None, disconnected: bool, ended: float) -> None:
        """Requests that got no answer on this exchange."""
        request = self.request
        operations = request.operations
        request.operations = {}
        sessions = self.sessions
        for operation in operations.values():
            if operation.settled:
                continue
            if operation.on_stream and operation.session is not None:
                if self.status == 202:
                    continue  # accepted: its answer comes on the session's stream
                sessions.release(operation)
            verdict = self._unanswered(operation, error, disconnected)
            if verdict is None:
                operation.settled = True
                self.recording.parse_limit("response", "no_stream")
            else:
                sessions.settle(operation, verdict[0], verdict[1], ended)

    def _unanswered(self, operation: Operation, error: BaseException | None,
                    disconnected: bool) -> tuple[str, str] | None:
        """``(outcome, error_type)`` of a request whose answer was not seen."""
        status = self.status
        if (operation.method == "subscriptions/listen" and 200 <= status < 300
                and (error is None or disconnected)):
            return OK, ""  # a subscription ends when either side closes its stream
        if status == 0 or 200 <= status < 300:
            if disconnected:
                return CANCELLED, CLIENT_DISCONNECT
            if isinstance(error, CancelledError):
                return CANCELLED, "cancelled"
            if error is not None:
                return ERROR, type(error).__qualname__
        if status == 0:
            return ERROR, NO_RESPONSE
        if status >= 500:
            return ERROR, f"http_{status}"
        if status >= 400:
            if self.request.modern and status == 404:
                return ERROR, str(METHOD_NOT_FOUND)
            return REJECTED, f"http_{status}"
        if self.request.legacy_post_session is not None and status == 202:
            return None  # accepted, but its session's stream is not one we saw open
        if self.unparsed or not (self.reading or self.policy.parse_responses):
            # Not read (by mode, or past a size cap): a 2xx is all there is to go by.
            return OK, ""
        if self.invalid:
            return ERROR, UNREADABLE_RESPONSE
        return ERROR, NO_RESPONSE

    def _discard(self) -> None:
        """A redirect: the client sends the request again, and that one counts."""
        release = self.sessions.release
        for operation in self.request.operations.values():
            release(operation)
            operation.settled = True
        self.request.operations = {}


def _stream_end_reason(error: BaseException | None, disconnected: bool) -> str:
    if disconnected:
        return "client_disconnect"
    if error is None or isinstance(error, CancelledError):
        # The server closed the stream on its own: it is going away.
        return "shutdown"
    return "error"

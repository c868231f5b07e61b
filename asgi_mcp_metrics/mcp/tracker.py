"""MCP understood on the wire: the observer the middleware runs beside each HTTP exchange.

For every request that looks like MCP (a JSON POST, an MCP header, an event stream on a known
MCP path) an :class:`McpExchange` tees the request body as the app reads it, parses the JSON-RPC
messages once the body is complete, and matches the answers (a JSON body, SSE frames on the
same response, or - legacy HTTP+SSE transport - frames on the session's GET stream) by id.
Nothing here blocks, buffers past its caps or raises into the app.

How much is read depends on ``mcp_parsing``:

* ``full``: request bodies, JSON and SSE responses;
* ``request_body``: request bodies; a response only where the request alone cannot tell what
  happened - ``tools/list`` answers (the tool names that may become labels) and the legacy
  ``/sse`` stream (where every answer of that transport arrives).  Other outcomes come from the
  HTTP status;
* ``headers_only``: ``Mcp-Method``/``Mcp-Name`` (2026-07-28), ``Mcp-Session-Id`` and the legacy
  stream's ``endpoint`` event: sessions, streams, and modern-era operations by status;
* ``off``: the middleware does not create a tracker at all.
"""

from __future__ import annotations

from asyncio import CancelledError
from collections.abc import MutableMapping, Sequence
from time import perf_counter
from typing import TYPE_CHECKING, Any, Final

from .body import BoundedBuffer
from .headers import McpHeaders, mcp_request_headers, session_id_from_query
from .jsonrpc import (
    INVALID_EMPTY,
    INVALID_JSON,
    INVALID_NOT_AN_OBJECT,
    INVALID_NOT_JSONRPC,
    INVALID_TOO_DEEP,
    INVALID_UTF8,
    IdKey,
    Message,
    Parsed,
    parse_messages,
)
from .operations import (
    CANCELLED,
    CLIENT_DISCONNECT,
    ERROR,
    NO_RESPONSE,
    OK,
    REJECTED,
    TOOL_CALLS,
    UNREADABLE_RESPONSE,
    Operation,
    Operations,
    outcome_of,
)
from .sessions import Sessions
from .sse import SSEEvent, SSEParser, legacy_endpoint
from .vocabulary import (
    METHOD_NOT_FOUND,
    PROTOCOL_VERSIONS,
    is_modern,
    method_label,
    rejection_reason,
    version_label,
)

if TYPE_CHECKING:
    from ..config import Settings
    from ..recorder import Recorder

STREAMABLE: Final = "streamable_http"
LEGACY: Final = "sse"
#: Paths remembered as MCP endpoints, legacy stream endpoints, or plain JSON APIs, each.
MAX_REMEMBERED_PATHS: Final = 1024

#: Request bodies we could not read as JSON-RPC at all (the SDKs answer these with -32700).
_UNPARSABLE: Final = frozenset({INVALID_EMPTY, INVALID_UTF8, INVALID_JSON, INVALID_TOO_DEEP})
#: Request bodies that show the endpoint is a JSON API, but not a JSON-RPC one.
_NOT_JSONRPC: Final = frozenset({INVALID_NOT_JSONRPC, INVALID_NOT_AN_OBJECT})
#: Ids the SDKs put on transport-level errors that answer no request in particular.
_TRANSPORT_ERROR_IDS: Final[frozenset[IdKey]] = frozenset({("null", ""), ("str", "server-error")})


class McpTracker:
    """Process-wide MCP state of one middleware: sessions, learned endpoints."""

    def __init__(self, recorder: Recorder, settings: Settings) -> None:
        self.recorder = recorder
        self.settings = settings
        mode = settings.mcp_parsing
        self.parse_requests = mode in ("full", "request_body")
        self.parse_responses = mode == "full"
        self.identity_on = settings.identity != "off" or settings.identity_resolver is not None
        #: ``mcp_paths``: when set, these paths and no others are MCP endpoints.
        self.pinned_paths = frozenset(settings.mcp_paths)
        self.pinned = bool(self.pinned_paths)
        #: POST endpoints that answered JSON-RPC (Streamable HTTP, legacy /messages/).
        self.mcp_paths: set[str] = set()
        #: Legacy HTTP+SSE stream endpoints (their first event was ``endpoint``).
        self.stream_paths: set[str] = set()
        #: Endpoints that accepted a JSON body that is not JSON-RPC: not MCP.
        self.other_paths: set[str] = set()
        self.operations = Operations(recorder)
        self.sessions = Sessions(recorder, self.operations)
        self.notifications = recorder["mcp_server_notifications_total"]
        self.protocol_errors = recorder["mcp_server_protocol_errors_total"]
        self.parse_limits = recorder.parse_limits

    def observe(self, scope: MutableMapping[str, Any], started: float) -> McpExchange | None:
        method = scope["method"]
        # HEAD and OPTIONS (CORS preflight) are never MCP messages, on any path.
        if method != "POST" and method != "GET" and method != "DELETE":
            return None
        path = scope["path"]
        if self.pinned:
            if path not in self.pinned_paths:
                return None
            known = True
        else:
            if method == "POST" and path in self.other_paths:
                return None
            known = path in self.mcp_paths or path in self.stream_paths
        if not known and not _may_be_mcp(method, scope["headers"]):
            return None
        return McpExchange(self, scope, started, mcp_request_headers(scope["headers"]), known)

    def remember(self, path: str, is_mcp: bool) -> None:
        if self.pinned:
            return
        paths = self.mcp_paths if is_mcp else self.other_paths
        if path not in paths and len(paths) < MAX_REMEMBERED_PATHS:
            paths.add(path)

    def remember_stream(self, path: str) -> None:
        if path not in self.stream_paths and len(self.stream_paths) < MAX_REMEMBERED_PATHS:
            self.stream_paths.add(path)

    def settle(self, op: Operation, outcome: str, error_type: str, ended: float) -> None:
        self.sessions.release(op)
        self.operations.record(op, outcome, error_type, ended)

    def shutdown(self) -> None:
        self.sessions.shutdown()


_MCP_ONLY_HEADERS: Final = frozenset({b"mcp-session-id", b"mcp-method"})
_WATCHED_HEADERS: Final = _MCP_ONLY_HEADERS | {b"content-type", b"accept"}


def _may_be_mcp(method: str, headers: Any) -> bool:
    """On a path not known yet: a header only MCP clients send, a JSON POST, or a GET that
    accepts an event stream (a legacy ``/sse`` connect).

    One pass without allocating: for a request that is not MCP this is the tracker's whole
    cost.  ASGI servers send lower-case header names; other names get an exact second look.
    """
    for name, value in headers:
        if name in _MCP_ONLY_HEADERS:
            return True
        if name == b"content-type":
            if method == "POST" and b"json" in value.lower():
                return True
        elif name == b"accept":
            if method == "GET" and b"text/event-stream" in value.lower():
                return True
        elif not name.islower() and name.lower() in _WATCHED_HEADERS:
            return _may_be_mcp(method, [(n.lower(), v) for n, v in headers])
    return False


class McpExchange:
    """One HTTP exchange on an MCP endpoint."""

    __slots__ = ("answered", "batch", "body", "error_code", "headers", "headers_used",
                 "http_method", "initialize", "invalid_elements", "invalid_ids", "is_mcp",
                 "legacy_post_session",
                 "legacy_stream_session", "lists_tools", "modern", "operations", "parsed_request",
                 "path", "reading", "request_invalid", "response_invalid", "response_json",
                 "response_session", "response_unparsed", "scope", "sse", "started", "status",
                 "stream_frames", "stream_kind", "subscription", "tracker", "transport",
                 "version")

    def __init__(self, tracker: McpTracker, scope: MutableMapping[str, Any], started: float,
                 headers: McpHeaders, known: bool) -> None:
        self.tracker = tracker
        self.scope = scope
        self.started = started
        self.headers = headers
        self.http_method: str = scope["method"]
        self.path: str = scope["path"]
        post = self.http_method == "POST"
        self.legacy_post_session = (session_id_from_query(scope.get("query_string", b""))
                                    if post else None)
        self.transport = LEGACY if self.legacy_post_session is not None else STREAMABLE
        self.version = version_label(headers.protocol_version)
        self.modern = is_modern(headers.protocol_version)
        self.body = (BoundedBuffer(tracker.settings.max_body_bytes)
                     if post and tracker.parse_requests else None)
        # Only MCP clients send Mcp-Method or Mcp-Session-Id.
        self.is_mcp = known or headers.method is not None or headers.session_id is not None
        self.request_invalid: str | None = None
        self.invalid_elements = 0
        self.invalid_ids = 0
        self.parsed_request = False
        self.headers_used = False
        self.batch = False
        self.initialize = False
        self.subscription = False
        self.lists_tools = False
        self.operations: dict[IdKey | None, Operation] = {}
        self.status = 0
        self.response_session: str | None = None
        self.response_json: BoundedBuffer | None = None
        self.sse: SSEParser | None = None
        self.reading = False
        self.legacy_stream_session: str | None = None
        self.stream_frames = 0
        self.stream_kind: str | None = None
        self.response_unparsed = False
        self.response_invalid = False
        self.error_code: int | None = None
        self.answered = False

    # -- request ---------------------------------------------------------------------------
    def request_body(self, chunk: bytes, more_body: bool) -> None:
        body = self.body
        if body is None:
            return
        body.feed(chunk)
        if more_body:
            return
        self.body = None
        if body.overflowed:
            self.request_invalid = "too_large"
            self._operation_from_headers()
        else:
            self._parsed_request(parse_messages(body.getvalue()))

    def _operation_from_headers(self) -> None:
        """Modern-era headers name the method and tool when the body cannot be read."""
        if self.headers_used or self.parsed_request:
            return
        self.headers_used = True
        method = self.headers.method
        if method is None:
            return
        self.is_mcp = True
        if method.startswith("notifications/"):
            self.tracker.notifications.labels(method_label(method), "in").inc()
            return
        self._add_request(None, method, self.headers.name, self.headers.name, None)

    def _parsed_request(self, parsed: Parsed) -> None:
        if parsed.invalid is not None:
            self.request_invalid = parsed.invalid
            self._operation_from_headers()
            return
        tracker = self.tracker
        self.parsed_request = True
        self.is_mcp = True
        self.batch = parsed.batch
        self.invalid_elements = parsed.invalid_elements
        session = self.legacy_post_session
        if session is None and not self.modern:
            session = self.headers.session_id
        for message in parsed.messages:
            kind = message.kind
            if kind == "request":
                if message.invalid_id or message.method is None:
                    self.invalid_ids += 1  # e.g. a boolean or float id: nothing can match it
                    continue
                self._add_request(message.id_key, message.method, message.tool_name,
                                  message.prompt_name, message.protocol_version)
            elif kind == "notification":
                tracker.notifications.labels(method_label(message.method), "in").inc()
                cancelled = message.cancelled_id_key
                if cancelled is not None and session is not None:
                    tracker.sessions.cancel(session, cancelled, perf_counter())
            # A client's POSTed response answers a server-initiated request: not an operation.
        if session is not None and self.operations:
            # Legacy transport: the answers will come on the session's GET stream, possibly
            # before this POST's 202 is out, so the requests wait there from now on.
            on_stream = self.legacy_post_session is not None
            track = tracker.sessions.track
            for operation in self.operations.values():
                track(session, operation, on_stream=on_stream)

    def _add_request(self, id_key: IdKey | None, method: str, tool: str | None,
                     prompt: str | None, version: str | None) -> None:
        if method == "initialize":
            self.initialize = True
        elif method == "subscriptions/listen":
            self.subscription = True
        elif method == "tools/list":
            self.lists_tools = True
        if id_key in self.operations:
            # Two requests with one id in one message: their answers cannot be told apart.
            self.tracker.parse_limits.labels("request_body", "duplicate_id").inc()
        is_tool_call = method == "tools/call"
        self.operations[id_key] = Operation(
            id_key=id_key, method=method_label(method),
            tool=(tool or "") if is_tool_call else None,
            prompt=prompt if method == "prompts/get" else None,
            version=self.version or version_label(version), transport=self.transport,
            identity=self._identity() if is_tool_call else "",
            started=self.started)

    def _identity(self) -> str:
        tracker = self.tracker
        if not tracker.identity_on:
            return ""
        from ..identity import resolve_identity

        recorder = tracker.recorder
        try:
            identity = resolve_identity(self.scope, tracker.settings, recorder=recorder)
        except Exception:
            recorder.internal_error("identity")
            return ""
        return recorder.identities(identity, TOOL_CALLS) if identity else ""

    # -- response --------------------------------------------------------------------------
    def response_start(self, status: int, headers: Sequence[tuple[bytes, bytes]]) -> str | None:
        self.status = status
        # Whatever the app has not read of the request by now is not part of its answer.
        self.body = None
        content_type = b""
        for name, value in headers:
            lowered = name.lower()
            if lowered == b"content-type":
                content_type = value.lower()
            elif lowered == b"mcp-session-id":
                self.response_session = value.decode("latin-1")
        if 300 <= status < 400:
            return None  # a redirect (e.g. /messages -> /messages/): the request comes again
        if not self.parsed_request:
            self._operation_from_headers()
        tracker = self.tracker
        if b"text/event-stream" in content_type:
            kind = self.stream_kind = self._stream_kind()
            self.reading = self._reads_answers()
            if self.reading or self.http_method == "GET":
                # A GET stream is read at least up to its first event: a legacy ``endpoint``.
                self.sse = SSEParser(tracker.settings.max_frame_bytes)
            return kind
        if b"json" in content_type and (
                (self.operations and self._reads_answers())
                or (status >= 400 and tracker.parse_responses)):
            self.reading = True
            self.response_json = BoundedBuffer(tracker.settings.max_frame_bytes)
        return None

    def _reads_answers(self) -> bool:
        tracker = self.tracker
        return tracker.parse_responses or (tracker.parse_requests and self.lists_tools)

    def _stream_kind(self) -> str | None:
        if self.http_method == "GET":
            if self.headers.session_id is not None and not self.modern:
                self.is_mcp = True
                return "get_notifications"
            if self.path in self.tracker.stream_paths:
                self.is_mcp = True
                return "sse_legacy"
            # A known MCP path: a stateless GET stream, or a legacy one once its first event
            # says so.  An unknown path: a plain SSE stream unless that first event says so.
            return "get_notifications" if self.is_mcp else None
        if not self.is_mcp:
            return None
        return "subscriptions_listen" if self.subscription else "post_response"

    def response_body(self, chunk: bytes, more_body: bool) -> None:
        sse = self.sse
        if sse is not None:
            if chunk:
                now = perf_counter()
                for event in sse.feed(chunk):
                    self._event(event, now)
                if sse.overflowed:
                    self.tracker.parse_limits.labels("sse_frame", "too_large").inc()
                    self.sse = None
                    self.response_unparsed = True
            return
        buffer = self.response_json
        if buffer is not None:
            buffer.feed(chunk)
            if not more_body:
                self.response_json = None
                if buffer.overflowed:
                    self.tracker.parse_limits.labels("json_response", "too_large").inc()
                    self.response_unparsed = True
                else:
                    self._answers(parse_messages(buffer.getvalue()), perf_counter(),
                                  "json_response")

    def _event(self, event: SSEEvent, now: float) -> None:
        self.stream_frames += 1
        if self.http_method == "GET" and self.stream_frames == 1:
            if event.event == "endpoint":
                self._legacy_stream(event)
                return
            if not (self.is_mcp and self.reading):
                self.sse = None  # not MCP, or nothing more wanted from this stream
                return
        if self.sse is None:
            return
        if event.event == "message":
            self._answers(parse_messages(event.data), now, "sse_frame")

    def _legacy_stream(self, event: SSEEvent) -> None:
        """``event: endpoint`` opens a legacy HTTP+SSE session: this stream is its lifetime."""
        tracker = self.tracker
        endpoint = legacy_endpoint(event)
        if endpoint is None or not endpoint.session_id:
            self.sse = None
            return
        self.is_mcp = True
        self.stream_kind = "sse_legacy"
        self.legacy_stream_session = endpoint.session_id
        tracker.remember_stream(self.path)
        tracker.sessions.start(endpoint.session_id, LEGACY, self.started)
        # Every answer of this transport arrives here; headers-only mode reads none of them.
        self.reading = tracker.parse_requests
        if not self.reading:
            self.sse = None

    def _answers(self, parsed: Parsed, now: float, where: str) -> None:
        if parsed.invalid is not None:
            if self.status < 400:
                # (An error page that is not JSON-RPC is expected; only answers count.)
                self.tracker.parse_limits.labels(where, parsed.invalid).inc()
                self.response_invalid = True
            return
        notifications = self.tracker.notifications
        for message in parsed.messages:
            kind = message.kind
            if kind == "response" or kind == "error":
                self._answer(message, now)
            elif kind == "notification":
                notifications.labels(method_label(message.method), "out").inc()

    def _answer(self, message: Message, now: float) -> None:
        tracker = self.tracker
        if message.kind == "error" and self.error_code is None:
            self.error_code = message.error_code
        id_key = message.id_key
        operation = self.operations.pop(id_key, None) if id_key is not None else None
        if operation is None and len(self.operations) == 1 and None in self.operations:
            # Known from headers only (the body was not read): the one answer is its answer.
            operation = self.operations.pop(None)
        if operation is None and self.legacy_stream_session is not None:
            operation = tracker.sessions.take(self.legacy_stream_session, id_key)
        if operation is None:
            # (A resumed stream, GET with Last-Event-ID, replays answers to earlier requests.)
            if (self.status < 400 and id_key is not None and id_key not in _TRANSPORT_ERROR_IDS
                    and self.headers.last_event_id is None):
                tracker.parse_limits.labels("response", "unmatched_id").inc()
            return
        self.answered = True
        if operation.method == "tools/list" and message.tool_names:
            tracker.recorder.learn_tools(message.tool_names)
        elif operation.method == "initialize" and message.protocol_version:
            # The negotiated version is the answer's, not the one the client asked for.
            operation.version = version_label(message.protocol_version)
            if self.legacy_stream_session is not None:
                tracker.sessions.negotiated(self.legacy_stream_session, operation.version)
        outcome, error_type = outcome_of(message)
        if operation.tool and outcome in ("ok", "input_required"):
            # The server answered a successful result, so the tool exists: a client that calls
            # tools without listing them first still gets their names.  Unknown tools never
            # succeed, so a client cannot mint label values this way.
            tracker.recorder.learn_tools((operation.tool,))
        # (Recording is once only: an answer to a request cancelled already changes nothing.)
        tracker.settle(operation, outcome, error_type, now)

    def disconnect(self) -> None:
        pass  # the middleware tells finish() whether the client left

    # -- end -------------------------------------------------------------------------------
    def finish(self, *, error: BaseException | None, disconnected: bool, ended: float) -> None:
        tracker = self.tracker
        sse = self.sse
        if sse is not None:
            sse.close()
            self.sse = None
            if sse.truncated and self.is_mcp:
                tracker.parse_limits.labels("sse_frame", "truncated").inc()
        self.response_json = None
        self.body = None
        if self.legacy_stream_session is not None:
            tracker.sessions.end(self.legacy_stream_session,
                                 _stream_end_reason(error, disconnected), ended)
        status = self.status
        if not self.is_mcp:
            if 200 <= status < 300 and self.request_invalid in _NOT_JSONRPC:
                tracker.remember(self.path, False)
            return
        if self.http_method == "POST" and (200 <= status < 300 or self.answered):
            # Accepted, or answered by id: a JSON-RPC endpoint (a refusal alone proves nothing).
            tracker.remember(self.path, True)
        if self.request_invalid is not None:
            tracker.parse_limits.labels("request_body", self.request_invalid).inc()
        if self.invalid_elements:
            tracker.parse_limits.labels("request_body", "invalid_batch_element").inc(
                self.invalid_elements)
        if self.invalid_ids:
            tracker.parse_limits.labels("request_body", "invalid_id").inc(self.invalid_ids)
        if 300 <= status < 400:
            self._discard()
            return
        self._operation_from_headers()  # no response at all: the headers may still name it
        self._sessions(status, ended)
        self._settle(error, disconnected, ended)

    def _sessions(self, status: int, ended: float) -> None:
        sessions = self.tracker.sessions
        request_session = None if self.modern else self.headers.session_id
        post_session = self.legacy_post_session
        if status == 404 and (request_session or post_session) and not self.answered:
            # The handshake era's "Session not found" (the modern era has no sessions, and its
            # 404 answers the request by id: "method not found").
            sessions.not_found(request_session or post_session or "", self.transport)
        elif 200 <= status < 300:
            if (self.response_session and request_session is None and post_session is None
                    and self.http_method == "POST"
                    and (self.initialize or not self.tracker.parse_requests)):
                # Headers-only mode cannot see the method; only an initialize is answered
                # 2xx with a new session id.
                sessions.start(self.response_session, STREAMABLE, self.started)
            if self.http_method == "DELETE" and request_session:
                sessions.end(request_session, "client_delete", ended)
        elif 400 <= status < 500 and not (self.modern and status == 404):
            # (A modern-era 404 is the answer "method not found", not a rejection.)
            version = self.headers.protocol_version
            reason = rejection_reason(
                status, self.error_code, batch=self.batch,
                unparsable=self.request_invalid in _UNPARSABLE,
                unknown_version=version is not None and version not in PROTOCOL_VERSIONS,
                missing_session=(not self.modern and request_session is None
                                 and post_session is None and not self.initialize
                                 and (self.parsed_request or self.http_method != "POST")))
            self.tracker.protocol_errors.labels(reason).inc()

    def _settle(self, error: BaseException | None, disconnected: bool, ended: float) -> None:
        """Requests that got no answer on this exchange."""
        if not self.operations:
            return
        operations = self.operations
        self.operations = {}
        tracker = self.tracker
        for operation in operations.values():
            if operation.settled:
                continue
            if operation.on_stream and operation.session is not None:
                if self.status == 202:
                    continue  # accepted: its answer comes on the session's stream
                tracker.sessions.release(operation)
            verdict = self._unanswered(operation, error, disconnected)
            if verdict is None:
                operation.settled = True
                tracker.parse_limits.labels("response", "no_stream").inc()
            else:
                tracker.settle(operation, verdict[0], verdict[1], ended)

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
            if self.modern and status == 404:
                return ERROR, str(METHOD_NOT_FOUND)
            return REJECTED, f"http_{status}"
        if self.legacy_post_session is not None and status == 202:
            return None  # accepted, but its session's stream is not one we saw open
        if self.response_unparsed or not (self.reading or self.tracker.parse_responses):
            # Not read (by mode, or past a size cap): a 2xx is all there is to go by.
            return OK, ""
        if self.response_invalid:
            return ERROR, UNREADABLE_RESPONSE
        return ERROR, NO_RESPONSE

    def _discard(self) -> None:
        """A redirect: the client sends the request again, and that one counts."""
        release = self.tracker.sessions.release
        for operation in self.operations.values():
            release(operation)
            operation.settled = True
        self.operations = {}


def _stream_end_reason(error: BaseException | None, disconnected: bool) -> str:
    if disconnected:
        return "client_disconnect"
    if error is None or isinstance(error, CancelledError):
        # The server closed the stream on its own: it is going away.
        return "shutdown"
    return "error"

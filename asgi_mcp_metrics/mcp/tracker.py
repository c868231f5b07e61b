"""MCP understood on the wire: the observer the middleware runs beside each HTTP exchange.

For every request that looks like MCP (a JSON POST, an MCP header, a GET stream on a known MCP
path) an :class:`McpExchange` tees the request body as the app reads it, parses the JSON-RPC
messages once the body is complete, and matches the answers (a JSON body, SSE frames on the
same response, or - legacy HTTP+SSE transport - frames on the session's GET stream) by id.
Nothing here blocks, buffers past its caps or raises into the app.
"""

from __future__ import annotations

from collections.abc import MutableMapping, Sequence
from time import perf_counter
from typing import TYPE_CHECKING, Any

from .body import BoundedBuffer
from .headers import McpHeaders, mcp_request_headers, session_id_from_query
from .jsonrpc import Message, Parsed, parse_messages
from .operations import Operation, Operations, outcome_of
from .sessions import Sessions
from .sse import SSEEvent, SSEParser, legacy_endpoint
from .vocabulary import method_label, rejection_reason, version_label

if TYPE_CHECKING:
    from ..config import Settings
    from ..recorder import Recorder

STREAMABLE = "streamable_http"
LEGACY = "sse"
#: Paths remembered as MCP endpoints, or as plain JSON APIs that are not MCP.
MAX_REMEMBERED_PATHS = 1024


class McpTracker:
    """Process-wide MCP state of one middleware: sessions, learned endpoints."""

    def __init__(self, recorder: Recorder, settings: Settings) -> None:
        self.recorder = recorder
        self.settings = settings
        self.mode = settings.mcp_parsing
        self.parse_bodies = self.mode in ("full", "request_body")
        self.parse_responses = self.mode == "full"
        exact, prefixes = set(), []
        for path in settings.mcp_paths:
            if path.endswith("*"):
                prefixes.append(path[:-1])
            else:
                exact.add(path)
        self.pinned_exact = frozenset(exact)
        self.pinned_prefixes = tuple(prefixes)
        self.pinned = bool(exact or prefixes)
        self.mcp_paths: set[str] = set()
        self.other_paths: set[str] = set()
        self.operations = Operations(recorder)
        self.sessions = Sessions(recorder, self.operations)
        self.notifications = recorder["mcp_server_notifications_total"]
        self.protocol_errors = recorder["mcp_server_protocol_errors_total"]

    def observe(self, scope: MutableMapping[str, Any], started: float) -> McpExchange | None:
        method = scope["method"]
        path = scope["path"]
        if self.pinned:
            if path not in self.pinned_exact and not (
                    self.pinned_prefixes and path.startswith(self.pinned_prefixes)):
                return None
        elif method == "POST":
            if path in self.other_paths:
                return None
        elif method not in ("GET", "DELETE"):
            return None
        headers = mcp_request_headers(scope["headers"])
        if not self.pinned and path not in self.mcp_paths:
            if method == "POST":
                if headers.method is None and not _is_json(headers.content_type):
                    return None
            elif headers.session_id is None and not (
                    method == "GET" and headers.accept and "text/event-stream" in headers.accept):
                return None
        return McpExchange(self, scope, started, headers)

    def remember(self, path: str, is_mcp: bool) -> None:
        paths = self.mcp_paths if is_mcp else self.other_paths
        if path not in paths and len(paths) < MAX_REMEMBERED_PATHS:
            paths.add(path)

    def shutdown(self) -> None:
        self.sessions.shutdown()


def _is_json(content_type: str | None) -> bool:
    return content_type is not None and "json" in content_type


class McpExchange:
    """One HTTP exchange on an MCP endpoint."""

    def __init__(self, tracker: McpTracker, scope: MutableMapping[str, Any], started: float,
                 headers: McpHeaders) -> None:
        self.tracker = tracker
        self.scope = scope
        self.started = started
        self.headers = headers
        self.http_method: str = scope["method"]
        self.legacy_post_session = session_id_from_query(scope.get("query_string", b""))
        self.transport = LEGACY if self.legacy_post_session is not None else STREAMABLE
        self.version = version_label(headers.protocol_version)
        self.body = (BoundedBuffer(tracker.settings.max_body_bytes)
                     if tracker.parse_bodies and self.http_method == "POST" else None)
        self.is_mcp = tracker.pinned or scope["path"] in tracker.mcp_paths
        self.parsed_request = False
        self.batch = False
        self.initialize = False
        self.subscription = False
        self.operations: dict[Any, Operation] = {}
        self.status = 0
        self.response_session: str | None = None
        self.response_json: BoundedBuffer | None = None
        self.sse: SSEParser | None = None
        self.legacy_stream_session: str | None = None
        self.stream_frames = 0
        self.stream_kind: str | None = None
        self.response_unparsed = False
        self.error_code: int | None = None

    # -- request ---------------------------------------------------------------------------
    def request_body(self, chunk: bytes, more_body: bool) -> None:
        body = self.body
        if body is None:
            return
        body.feed(chunk)
        if not more_body:
            self.body = None
            if body.overflowed:
                self.tracker.recorder.parse_limits.labels("request_body", "too_large").inc()
                self._from_headers()
            else:
                self._parsed_request(parse_messages(body.getvalue()))

    def _from_headers(self) -> None:
        """Modern-era headers name the method and tool without the body."""
        if self.headers.method is None:
            return
        self.is_mcp = True
        self._add_request(None, self.headers.method, self.headers.name, self.headers.name, None)

    def _parsed_request(self, parsed: Parsed) -> None:
        tracker = self.tracker
        path = self.scope["path"]
        if parsed.invalid is not None:
            if self.is_mcp or self.headers.method is not None:
                tracker.recorder.parse_limits.labels("request_body", parsed.invalid).inc()
                self._from_headers()
            else:
                tracker.remember(path, False)
            return
        self.parsed_request = True
        self.is_mcp = True
        tracker.remember(path, True)
        self.batch = parsed.batch
        for message in parsed.messages:
            method = message.method
            if message.kind == "request" and method is not None:
                self._add_request(message.id_key, method, message.tool_name,
                                  message.prompt_name, message.protocol_version)
            elif message.kind == "notification":
                tracker.notifications.labels(method_label(method), "in").inc()

    def _add_request(self, id_key: Any, method: str, tool: str | None, prompt: str | None,
                     version: str | None) -> None:
        if method == "initialize":
            self.initialize = True
        elif method == "subscriptions/listen":
            self.subscription = True
        if version and not self.version:
            self.version = version_label(version)
        self.operations[id_key] = Operation(
            id_key=id_key, method=method_label(method),
            tool=tool if method == "tools/call" else None,
            prompt=prompt if method == "prompts/get" else None,
            version=self.version, transport=self.transport,
            identity=self._identity() if method == "tools/call" else "",
            started=self.started)

    def _identity(self) -> str:
        settings = self.tracker.settings
        if settings.identity == "off" and settings.identity_resolver is None:
            return ""
        from ..identity import resolve_identity

        recorder = self.tracker.recorder
        try:
            identity = resolve_identity(self.scope, settings)
        except Exception:
            recorder.internal_error("identity")
            return ""
        return recorder.identities(identity, "mcp_tool_calls_total") if identity else ""

    # -- response --------------------------------------------------------------------------
    def response_start(self, status: int, headers: Sequence[tuple[bytes, bytes]]) -> str | None:
        self.status = status
        content_type = b""
        for name, value in headers:
            lowered = name.lower()
            if lowered == b"content-type":
                content_type = value.lower()
            elif lowered == b"mcp-session-id":
                self.response_session = value.decode("latin-1")
        if b"text/event-stream" in content_type:
            kind = self.stream_kind = self._stream_kind()
            if self.tracker.parse_responses or kind == "sse_legacy":
                self.sse = SSEParser(self.tracker.settings.max_frame_bytes)
            return kind
        if (self.tracker.parse_responses and self.operations and b"json" in content_type):
            self.response_json = BoundedBuffer(self.tracker.settings.max_frame_bytes)
        return None

    def _stream_kind(self) -> str | None:
        if self.http_method == "GET":
            if self.headers.session_id is not None:
                self.is_mcp = True
                return "get_notifications"
            # A GET stream without a session: a legacy /sse stream if its first event says so.
            return "sse_legacy" if self.is_mcp else None
        if not self.is_mcp:
            return None
        return "subscriptions_listen" if self.subscription else "post_response"

    def response_body(self, chunk: bytes, more_body: bool) -> None:
        now = perf_counter()
        if self.sse is not None:
            if chunk:
                for event in self.sse.feed(chunk):
                    self._event(event, now)
                if self.sse.overflowed:
                    self.tracker.recorder.parse_limits.labels("sse_frame", "too_large").inc()
                    self.sse = None
                    self.response_unparsed = True
        elif self.response_json is not None:
            self.response_json.feed(chunk)
            if not more_body:
                buffer, self.response_json = self.response_json, None
                if buffer.overflowed:
                    self.tracker.recorder.parse_limits.labels("json_response", "too_large").inc()
                    self.response_unparsed = True
                    return
                self._answers(parse_messages(buffer.getvalue()), now)

    def _event(self, event: SSEEvent, now: float) -> None:
        self.stream_frames += 1
        if event.event == "endpoint" and self.http_method == "GET":
            endpoint = legacy_endpoint(event)
            if endpoint is not None and endpoint.session_id:
                self.is_mcp = True
                self.stream_kind = "sse_legacy"
                self.legacy_stream_session = endpoint.session_id
                self.tracker.remember(self.scope["path"], True)
                self.tracker.sessions.start(endpoint.session_id, LEGACY, self.started)
            return
        if self.stream_frames == 1 and not self.is_mcp:
            self.sse = None  # an SSE stream that is not MCP: stop looking at it
            return
        if event.event == "message" and event.data:
            self._answers(parse_messages(event.data), now)

    def _answers(self, parsed: Parsed, now: float) -> None:
        if parsed.invalid is not None:
            self.tracker.recorder.parse_limits.labels("response", parsed.invalid).inc()
            return
        for message in parsed.messages:
            kind = message.kind
            if kind == "response" or kind == "error":
                self._answer(message, now)
            elif kind == "notification":
                self.tracker.notifications.labels(method_label(message.method), "out").inc()

    def _answer(self, message: Message, now: float) -> None:
        tracker = self.tracker
        if message.tool_names:
            tracker.recorder.learn_tools(message.tool_names)
        operation = self.operations.pop(message.id_key, None)
        if operation is None and None in self.operations and len(self.operations) == 1:
            # Known from headers only (no body parsed): the one answer is its answer.
            operation = self.operations.pop(None)
        if operation is None and self.legacy_stream_session is not None:
            operation = tracker.sessions.take_answered(self.legacy_stream_session,
                                                       message.id_key)
        if operation is None:
            if message.kind == "error":
                self.error_code = message.error_code
            return
        if message.protocol_version and operation.method == "initialize":
            self.version = version_label(message.protocol_version)
            if self.legacy_stream_session is not None:
                tracker.sessions.negotiated(self.legacy_stream_session, self.version)
        outcome, error_type = outcome_of(message)
        tracker.operations.record(operation, outcome, error_type, now)

    def disconnect(self) -> None:
        pass  # the middleware tells finish() whether the client left

    # -- end -------------------------------------------------------------------------------
    def finish(self, *, error: BaseException | None, disconnected: bool, ended: float) -> None:
        if self.sse is not None:
            for event in self.sse.close():
                self._event(event, ended)
        if not self.is_mcp:
            return
        tracker = self.tracker
        status = self.status
        request_session = self.headers.session_id
        if self.legacy_stream_session is not None:
            reason = ("client_disconnect" if disconnected else
                      "error" if error is not None else "shutdown")
            tracker.sessions.end(self.legacy_stream_session, reason, ended)
        if status == 404 and (request_session or self.legacy_post_session):
            session = request_session or self.legacy_post_session or ""
            tracker.sessions.not_found(session, self.transport)
        elif 200 <= status < 300:
            if self.initialize and self.response_session:
                tracker.sessions.start(self.response_session, STREAMABLE, self.started)
            if self.http_method == "DELETE" and request_session:
                tracker.sessions.end(request_session, "client_delete", ended)
        elif status >= 400 and status != 404:
            tracker.protocol_errors.labels(rejection_reason(
                status, self.error_code, batch=self.batch,
                missing_session=request_session is None and not self.initialize)).inc()
        self._settle(error, disconnected, ended)

    def _settle(self, error: BaseException | None, disconnected: bool, ended: float) -> None:
        """Requests that got no answer on this exchange."""
        if not self.operations:
            return
        operations = self.operations
        self.operations = {}
        status = self.status
        record = self.tracker.operations.record
        if self.legacy_post_session is not None and status == 202:
            # Legacy transport: the answer comes later, on the session's GET stream.
            if self.tracker.sessions.await_answer(self.legacy_post_session,
                                                  list(operations.values())):
                return
        for operation in operations.values():
            if disconnected or (error is not None and not status):
                record(operation, "cancelled", "client_disconnect" if disconnected else
                       type(error).__qualname__, ended)
            elif status >= 400:
                record(operation, "rejected", f"http_{status}", ended)
            elif status == 0 or error is not None:
                record(operation, "error", type(error).__qualname__ if error else "no_response",
                       ended)
            elif operation.method == "subscriptions/listen" or (
                    not self.tracker.parse_responses or self.response_unparsed):
                # A subscription ends when its stream does; and where responses are not parsed
                # (by mode, or past the size cap) a 2xx is all there is to go by.
                record(operation, "ok", "", ended)
            else:
                record(operation, "error", "no_response", ended)

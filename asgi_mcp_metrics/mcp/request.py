"""The request side of one MCP exchange: which operations it starts.

The body is teed as the app reads it, capped, and parsed once it is complete.  When it cannot be
read (past the cap, not JSON-RPC, or not read at all in ``headers_only`` mode) the 2026-07-28
``Mcp-Method``/``Mcp-Name`` headers still name the operation.  Requests become
:class:`~.operations.Operation` objects keyed by JSON-RPC id, for the response side to match.
"""

from __future__ import annotations

from collections.abc import Iterable, MutableMapping
from time import perf_counter
from typing import TYPE_CHECKING, Any, Final

from .operations import Operation
from .wire.body import BoundedBuffer, CappedBody
from .wire.headers import RequestHeaders, session_id_from_query
from .wire.jsonrpc import IdKey, Message, Parsed, classify, decode, messages_of, parse_messages
from .wire.vocabulary import (
    HANDSHAKE_VERSIONS,
    LEGACY,
    PROTOCOL_VERSIONS,
    STREAMABLE,
    is_modern,
    version_label,
)

if TYPE_CHECKING:
    from .policy import ReadPolicy
    from .recording import McpRecording
    from .sessions import Sessions


#: The operations of a request that has none: never written to (see :meth:`McpRequest._add`).
_NO_OPERATIONS: Final[dict[IdKey | None, Operation]] = {}
#: ``(version_label, is_modern)`` of each known ``MCP-Protocol-Version`` header (and none).
_ERAS: Final[dict[str | None, tuple[str, bool]]] = {
    None: ("", False),
    **{version: (version, version not in HANDSHAKE_VERSIONS) for version in PROTOCOL_VERSIONS},
}


class McpRequest(CappedBody):
    """What the request of one exchange says, read from its body or its headers."""

    __slots__ = ("batch", "deferred", "header_method", "header_name", "header_session",
                 "header_version", "headers_used", "http_method", "initialize", "invalid",
                 "invalid_elements", "invalid_ids", "is_mcp", "last_event_id",
                 "legacy_post_session", "lists_tools", "modern", "operations", "parsed", "path",
                 "recording", "sessions", "started", "subscription", "version")

    def __init__(self, policy: ReadPolicy, recording: McpRecording, sessions: Sessions,
                 scope: MutableMapping[str, Any], started: float, headers: RequestHeaders,
                 known: bool) -> None:
        self.recording = recording
        self.sessions = sessions
        self.started = started
        method, name, version, session_id, last_event_id, _, _ = headers
        self.header_method = method
        self.header_name = name
        self.header_session = session_id
        self.header_version = version
        self.last_event_id = last_event_id
        self.http_method: str = scope["method"]
        self.path: str = scope["path"]
        post = self.http_method == "POST"
        query = scope.get("query_string") if post else None
        self.legacy_post_session = session_id_from_query(query) if query else None
        era = _ERAS.get(version)
        if era is None:
            era = (version_label(version), is_modern(version))
        self.version, self.modern = era
        #: The body's cap while it is to be read (0: not read), and its buffer once it comes
        #: in more than one message.
        self.body_cap = policy.max_body_bytes if post and policy.parse_requests else 0
        self.body: BoundedBuffer | None = None
        # Only MCP clients send Mcp-Method or Mcp-Session-Id.
        self.is_mcp = known or method is not None or session_id is not None
        #: Why the body could not be read as JSON-RPC (a parse-limit reason), if it could not.
        self.invalid: str | None = None
        self.invalid_elements = 0
        self.invalid_ids = 0
        self.parsed = False
        #: A 2026-07-28 body left unread: its headers said all there was to know.
        self.deferred: bytes | None = None
        self.headers_used = False
        self.batch = False
        self.initialize = False
        self.subscription = False
        self.lists_tools = False
        #: Requests waiting for their answer, by JSON-RPC id (None: known from headers only).
        #: Shared and empty until the first one (a GET stream, held for hours, has none).
        self.operations: dict[IdKey | None, Operation] = _NO_OPERATIONS

    @property
    def transport(self) -> str:
        """The legacy HTTP+SSE transport's POSTs name their session in the query string."""
        return LEGACY if self.legacy_post_session is not None else STREAMABLE

    def feed(self, chunk: bytes, more_body: bool) -> None:
        cap = self.body_cap
        if not cap:
            return
        if more_body or self.body is not None or type(chunk) is not bytes:
            whole = self.take_body(chunk, more_body)
            if whole is None:
                return
            data, overflowed = whole
        else:  # the whole body in one message, the common case, read as take_body reads it
            self.body_cap = 0
            data, overflowed = chunk, len(chunk) > cap
        if overflowed:
            self.invalid = "too_large"
            self.from_headers()
        elif self.modern and self.header_method is not None \
                and not self.header_method.startswith("notifications/"):
            # The 2026-07-28 routing headers name the method and the tool, and the server
            # refuses a body that disagrees with them: the body is read only when the
            # exchange ends without an answer here (see read_deferred).
            self.deferred = data
        else:
            self._read(data)

    def read_deferred(self) -> None:
        """Read a body left unread (see :meth:`feed`): what was wrong with it, if anything.

        The operation itself is the one its headers named."""
        data = self.deferred
        if data is None:
            return
        self.deferred = None
        self._shape(parse_messages(data))

    def _shape(self, parsed: Parsed) -> bool:
        """What the body looks like (invalid, a batch, elements or ids that are no use);
        False when it is not JSON-RPC at all."""
        if parsed.invalid is not None:
            self.invalid = parsed.invalid
            return False
        self.batch = parsed.batch
        self.invalid_elements = parsed.invalid_elements
        invalid_ids = 0
        for message in parsed.messages:
            if message.invalid_id and message.kind == "request":
                invalid_ids += 1  # e.g. a boolean or float id: nothing can match it
        self.invalid_ids = invalid_ids
        return True

    def from_headers(self) -> None:
        """Modern-era headers name the method and tool when the body cannot be read."""
        if self.headers_used or self.parsed:
            return
        self.headers_used = True
        method = self.header_method
        if method is None:
            return
        self.is_mcp = True
        if method.startswith("notifications/"):
            self.recording.notification(method, "in")
            return
        self._add(None, method, self.header_name, self.header_name, None)

    def _read(self, data: bytes) -> None:
        """A complete body: the operations it starts, or why it is not JSON-RPC."""
        value, invalid = decode(data)
        if type(value) is dict:
            # One message, the common case: classified as it is, with no batch around it
            # (one that is not JSON-RPC, or has an id no answer can match, is read as any
            # other body is).
            message = classify(value)
            if message is not None and not message.invalid_id:
                self._messages((message,))
                return
        parsed = messages_of(value, invalid)
        if self._shape(parsed):
            self._messages(parsed.messages)
        else:
            self.from_headers()

    def _messages(self, messages: Iterable[Message]) -> None:
        """The body's messages (shaped already): its requests become operations."""
        self.parsed = True
        self.is_mcp = True
        session = self.legacy_post_session
        if session is None and not self.modern:
            session = self.header_session
        for message in messages:
            kind = message.kind
            if kind == "request":
                method = message.method
                if method is None or message.invalid_id:
                    continue  # no answer can match it (counted by _shape)
                self._add(message.id_key, method, message.tool_name,
                          message.prompt_name, message.protocol_version)
            elif kind == "notification":
                self.recording.notification(message.method, "in")
                cancelled = message.cancelled_id_key
                if cancelled is not None and session is not None:
                    self.sessions.cancel(session, cancelled, perf_counter())
            # A client's POSTed response answers a server-initiated request: not an operation.
        if session is not None and self.operations:
            # Legacy transport: the answers will come on the session's GET stream, possibly
            # before this POST's 202 is out, so the requests wait there from now on.
            on_stream = self.legacy_post_session is not None
            track = self.sessions.track
            for operation in self.operations.values():
                track(session, operation, on_stream=on_stream)

    def _add(self, id_key: IdKey | None, method: str, tool: str | None, prompt: str | None,
             version: str | None) -> None:
        if method == "initialize":
            self.initialize = True
        elif method == "subscriptions/listen":
            self.subscription = True
        elif method == "tools/list":
            self.lists_tools = True
        operations = self.operations
        if operations is _NO_OPERATIONS:
            operations = self.operations = {}
        elif id_key in operations:
            # Two requests with one id in one message: their answers cannot be told apart.
            self.recording.parse_limit("request_body", "duplicate_id")
        operations[id_key] = self.recording.new_operation(
            id_key, method, tool, prompt, self.version or version_label(version),
            STREAMABLE if self.legacy_post_session is None else LEGACY, self.started)

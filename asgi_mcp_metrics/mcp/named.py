"""A 2026-07-28 request that its headers name, answered by one JSON result: read with least work.

In the 2026-07-28 era a client names each request in ``Mcp-Method`` and ``Mcp-Name``, and the
server refuses a body that disagrees with them, so the body of such a POST need not be read
while an answer settles it (see :meth:`.request.McpRequest.feed`).  The exchange nearly every
such request makes - its body in one message, a 2xx JSON response, one successful answer - is
read here by one object, with no request or response side and no table of pending requests.

At the first thing it does not expect (a body in parts or past its cap, an answer that is not a
plain success, a stream, an error or redirect status, a session id, an exchange that ends with
no answer) it hands over to a full :class:`~.exchange.McpExchange`, built as the tracker builds
it and given what was seen so far in the same order, so every other case is read exactly as the
full exchange reads it.
"""

from __future__ import annotations

from collections.abc import MutableMapping, Sequence
from time import perf_counter
from typing import TYPE_CHECKING, Any, Final, Protocol

from .exchange import McpExchange
from .operations import outcome_of
from .wire.headers import response_headers
from .wire.jsonrpc import decode, plain_result
from .wire.vocabulary import MODERN_VERSIONS, STREAMABLE

if TYPE_CHECKING:
    from .endpoints import Endpoints
    from .policy import ReadPolicy
    from .recording import McpRecording
    from .sessions import Sessions
    from .wire.headers import RequestHeaders

#: Methods whose answers tell more than an outcome (a negotiated version, the names of tools
#: or prompts that may become label values) or that open a stream: read by the full exchange.
_READ_IN_FULL: Final = frozenset({"initialize", "tools/list", "prompts/list",
                                  "subscriptions/listen"})


def is_named(scope: MutableMapping[str, Any], headers: RequestHeaders) -> bool:
    """Whether this request (a POST, its headers read) is one a :class:`NamedCall` reads: a
    2026-07-28 request named by ``Mcp-Method`` (not a notification), with no session id and no
    query string (the legacy transport names its session there)."""
    method = headers[0]
    return (method is not None and headers[2] in MODERN_VERSIONS and headers[3] is None
            and method not in _READ_IN_FULL and not method.startswith("notifications/")
            and not scope.get("query_string"))


class Tracker(Protocol):
    """The process-wide state a call reads and writes: the :class:`~.tracker.McpTracker`'s."""

    policy: ReadPolicy
    recording: McpRecording
    sessions: Sessions
    endpoints: Endpoints


class NamedCall:
    """One exchange of a request named by its headers (see the module's description)."""

    __slots__ = ("answered", "body", "full", "headers", "known", "response", "scope",
                 "started", "status", "tracker")

    def __init__(self, tracker: Tracker, scope: MutableMapping[str, Any], started: float,
                 headers: RequestHeaders, known: bool) -> None:
        self.tracker = tracker
        self.scope = scope
        self.started = started
        self.headers = headers
        self.known = known
        #: The request body, once it came whole in one message.
        self.body: bytes | None = None
        self.status = 0
        self.response: Sequence[tuple[bytes, bytes]] = ()
        self.answered = False
        #: The full exchange this one handed over to, if it did.
        self.full: McpExchange | None = None

    @property
    def stream_kind(self) -> str | None:
        return None if self.full is None else self.full.stream_kind

    def _hand_over(self) -> McpExchange:
        """The full exchange, told what this one has seen so far."""
        tracker = self.tracker
        full = self.full = McpExchange(tracker.policy, tracker.recording, tracker.sessions,
                                       tracker.endpoints, self.scope, self.started,
                                       self.headers, self.known)
        if self.body is not None:
            full.request_body(self.body, False)
        if self.status:
            full.response_start(self.status, self.response)
        return full

    def request_body(self, chunk: bytes, more_body: bool) -> None:
        full = self.full
        if full is None:
            if self.body is not None or self.status:
                return  # the body was whole (nor does the full exchange read past it)
            if (not more_body and type(chunk) is bytes
                    and len(chunk) <= self.tracker.policy.max_body_bytes):
                self.body = chunk  # not read: the headers named the request
                return
            full = self._hand_over()
        full.request_body(chunk, more_body)

    def response_start(self, status: int, headers: Sequence[tuple[bytes, bytes]]) -> str | None:
        full = self.full
        if full is not None:
            return full.response_start(status, headers)
        if self.body is not None and 200 <= status < 300:
            content_type, session_id = response_headers(headers)
            if (session_id is None and content_type.find(b"json") >= 0
                    and content_type.find(b"text/event-stream") < 0):
                self.status = status
                self.response = headers
                return None
        return self._hand_over().response_start(status, headers)

    def response_body(self, chunk: bytes, more_body: bool) -> bool:
        full = self.full
        if full is None:
            if self.answered:
                return False
            if (not more_body and type(chunk) is bytes
                    and len(chunk) <= self.tracker.policy.max_frame_bytes):
                now = perf_counter()
                value, _ = decode(chunk)
                answer = plain_result(value)
                # ("server-error" is the id the SDKs give a transport error, which answers no
                # request in particular: the full exchange tells it apart.)
                if answer is not None and answer[0] != "server-error":
                    self._answer(answer[1], now)
                    return False
            full = self._hand_over()
        return full.response_body(chunk, more_body)

    def _answer(self, result: dict[str, Any], now: float) -> None:
        self.answered = True
        self.body = None  # (nothing more is read of either)
        self.response = ()
        headers = self.headers
        name = headers[1]
        recording = self.tracker.recording
        operation = recording.new_operation(None, headers[0] or "", name, name,
                                            headers[2] or "", STREAMABLE, self.started)
        outcome, error_type = outcome_of(False, None, result.get("isError") is True,
                                         result.get("resultType"))
        recording.answered(operation, outcome, error_type, now)

    def disconnect(self) -> None:
        pass  # the middleware tells finish() whether the client left

    def finish(self, *, error: BaseException | None, disconnected: bool, ended: float) -> None:
        full = self.full
        if full is None and not self.answered:
            full = self._hand_over()
        if full is not None:
            full.finish(error=error, disconnected=disconnected, ended=ended)
            return
        # Answered: the path is an MCP endpoint (as the full exchange would learn).
        path = self.scope["path"]
        endpoints = self.tracker.endpoints
        if path not in endpoints.mcp_paths:
            endpoints.remember(path, True)

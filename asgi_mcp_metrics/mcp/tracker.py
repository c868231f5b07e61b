"""MCP understood on the wire: the observer the middleware runs beside each HTTP exchange.

For every request that looks like MCP (a JSON POST, an MCP header, an event stream on a known
MCP path; see :mod:`.endpoints`) an :class:`~.exchange.McpExchange` tees the request body as the
app reads it, parses the JSON-RPC messages once the body is complete (:mod:`.request`), and
matches the answers (a JSON body, SSE frames on the same response, or - legacy HTTP+SSE
transport - frames on the session's GET stream) by id (:mod:`.response`).  A 2026-07-28 request
that its headers name is read by a :class:`~.named.NamedCall`, which settles the common exchange
(one successful JSON answer) itself and hands anything else to a full exchange.  Nothing here
blocks, buffers past its caps or raises into the app.

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

from collections.abc import MutableMapping
from typing import TYPE_CHECKING, Any

from .endpoints import Endpoints, may_be_mcp, may_open_mcp_stream
from .exchange import McpExchange
from .named import NamedCall, is_named
from .policy import ReadPolicy
from .recording import McpRecording
from .sessions import Sessions
from .wire.headers import read_headers

if TYPE_CHECKING:
    from ..config import Settings
    from ..recorder import Recorder

__all__ = ["McpTracker"]


class McpTracker:
    """Process-wide MCP state of one middleware: sessions, learned endpoints."""

    def __init__(self, recorder: Recorder, settings: Settings) -> None:
        self.policy = ReadPolicy.from_settings(settings)
        self.endpoints = Endpoints(settings.mcp_paths)
        self.recording = McpRecording(recorder, identity_on=(
            settings.identity != "off" or settings.identity_resolver is not None))
        self.sessions = Sessions(self.recording, settings.session_idle_timeout_seconds)
        #: ``full``: a request its headers name is read by a :class:`~.named.NamedCall` (the
        #: other modes read no answer, or not all of them, and leave it to the full exchange).
        self.reads_answers = self.policy.parse_responses

    def observe(self, scope: MutableMapping[str, Any],
                started: float) -> McpExchange | NamedCall | None:
        method = scope["method"]
        # HEAD and OPTIONS (CORS preflight) are never MCP messages, on any path.
        if method != "POST" and method != "GET" and method != "DELETE":
            return None
        path = scope["path"]
        endpoints = self.endpoints
        known = endpoints.classify(method, path)
        if known is None:
            return None
        raw = scope["headers"]
        if not known and method == "GET" and not may_open_mcp_stream(
                raw, streams=path not in endpoints.plain_stream_paths):
            return None  # a plain GET, most requests: one pass over its headers, no objects
        headers = read_headers(raw)
        if not known and method != "GET" and not may_be_mcp(method, headers):
            return None
        if self.sessions.idle:
            self.sessions.sweep(started)
        if method == "POST" and self.reads_answers and is_named(scope, headers):
            return NamedCall(self, scope, started, headers, known)
        return McpExchange(self.policy, self.recording, self.sessions, self.endpoints, scope,
                           started, headers, known)

    def shutdown(self) -> None:
        self.sessions.shutdown()

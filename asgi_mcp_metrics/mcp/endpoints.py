"""Which paths are MCP endpoints: pinned by ``mcp_paths``, or learned from the traffic.

Without ``mcp_paths`` a path is looked at when the request could be MCP (a header only MCP
clients send, a JSON POST, a GET that accepts an event stream), and remembered once it has
answered JSON-RPC (an MCP endpoint), opened a legacy ``/sse`` stream (a stream endpoint) or
accepted a JSON body that is not JSON-RPC (a plain JSON API, not looked at again for POSTs), or
opened a plain event stream (not looked at again for GETs, until the path answers JSON-RPC).
Each set is capped, so a client sending to many paths cannot grow them without bound.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from .wire.headers import RequestHeaders

#: Paths remembered as MCP endpoints, legacy stream endpoints, or plain JSON APIs, each.
MAX_REMEMBERED_PATHS: Final = 1024
#: The request headers that may make a GET an MCP stream.
_STREAM_SIGNALS: Final = frozenset({b"accept", b"mcp-session-id", b"mcp-method"})


class Endpoints:
    """The paths of one middleware's MCP endpoints, pinned or learned."""

    __slots__ = ("mcp_paths", "other_paths", "pinned", "pinned_paths", "plain_stream_paths",
                 "stream_paths")

    def __init__(self, pinned_paths: Iterable[str]) -> None:
        #: ``mcp_paths``: when set, these paths and no others are MCP endpoints.
        self.pinned_paths = frozenset(pinned_paths)
        self.pinned = bool(self.pinned_paths)
        #: POST endpoints that answered JSON-RPC (Streamable HTTP, legacy /messages/).
        self.mcp_paths: set[str] = set()
        #: Legacy HTTP+SSE stream endpoints (their first event was ``endpoint``).
        self.stream_paths: set[str] = set()
        #: Endpoints that accepted a JSON body that is not JSON-RPC: not MCP.
        self.other_paths: set[str] = set()
        #: Paths whose GET opened an event stream that is not MCP (no MCP header, a first
        #: event other than a legacy ``endpoint``): plain server-sent events.
        self.plain_stream_paths: set[str] = set()

    def classify(self, method: str, path: str) -> bool | None:
        """``True`` for a known MCP endpoint, ``None`` for a request that is not looked at,
        ``False`` when the headers decide (:func:`may_be_mcp`)."""
        if self.pinned:
            return True if path in self.pinned_paths else None
        if method == "POST" and path in self.other_paths:
            return None
        return path in self.mcp_paths or path in self.stream_paths

    def remember(self, path: str, is_mcp: bool) -> None:
        if self.pinned:
            return
        _add_capped(self.mcp_paths if is_mcp else self.other_paths, path)

    def remember_stream(self, path: str) -> None:
        _add_capped(self.stream_paths, path)

    def remember_plain_stream(self, path: str) -> None:
        if not self.pinned and path not in self.mcp_paths and path not in self.stream_paths:
            _add_capped(self.plain_stream_paths, path)


def _add_capped(paths: set[str], path: str) -> None:
    if path not in paths and len(paths) < MAX_REMEMBERED_PATHS:
        paths.add(path)


def may_be_mcp(method: str, headers: RequestHeaders) -> bool:
    """A POST or DELETE on a path not known yet: a header only MCP clients send, or a JSON POST.
    ``headers``: the request's headers as :func:`~.wire.headers.read_headers` reads them.  (A
    GET: :func:`may_open_mcp_stream`.)"""
    header_method, _, _, session_id, _, content_type, _ = headers
    if session_id is not None or header_method is not None:
        return True
    # (bytes.find: ``in`` on bytes takes a slower path.)
    return method == "POST" and content_type is not None and \
        content_type.lower().find(b"json") >= 0


def may_open_mcp_stream(headers: Iterable[tuple[bytes, bytes]], *, streams: bool) -> bool:
    """A GET on a path not known yet, from its raw ASGI headers: a header only MCP clients
    send, or (``streams``: the path has not shown a plain event stream) an ``Accept`` that takes
    an event stream (a legacy ``/sse`` connect).  One pass and no objects: most GETs are plain
    ones, and this is all they pay for MCP."""
    for name, value in headers:
        if name not in _STREAM_SIGNALS:
            if name.islower():
                continue
            name = name.lower()
            if name not in _STREAM_SIGNALS:
                continue
        if name != b"accept":
            return True
        if streams and value.lower().find(b"text/event-stream") >= 0:
            return True
    return False

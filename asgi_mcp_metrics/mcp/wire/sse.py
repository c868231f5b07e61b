"""Incremental ``text/event-stream`` parser for watching MCP responses pass by.

It follows the event-stream interpretation rules of the HTML standard, with two
deliberate choices:

* An event whose data is empty is not dispatched. MCP never sends a JSON-RPC
  message with empty data; such events are priming events (2025-11-25) and their
  ``id`` is still remembered, as the standard requires.
* Bytes that are not valid UTF-8 are replaced with U+FFFD (as the standard's
  decoder does) and counted in :attr:`SSEParser.decode_errors`.

Memory is bounded: a line, or the data of one event, longer than
``max_line_bytes`` is not kept (counted in :attr:`SSEParser.overflows`). The parser drops the
event's data, skips to the blank line that ends the event and dispatches it as ``oversized``
with only the first :data:`HEAD_BYTES` of its data (enough to show a JSON-RPC answer's id; fewer
under a smaller cap, so that the head does not depend on how the stream was chunked); the events
after it are parsed as usual.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, NamedTuple
from urllib.parse import unquote, urlsplit

from .headers import session_id_from_query

_CR: Final = 0x0D
_LF: Final = 0x0A
_COLON: Final = 0x3A
_BOM: Final = b"\xef\xbb\xbf"
_DEFAULT_EVENT: Final = "message"

HEAD_BYTES: Final = 1024
"""Bytes of an oversized event's data that are kept."""


class SSEEvent(NamedTuple):
    event: str
    """The event type; ``"message"`` when the stream did not name one."""
    data: str
    """The ``data:`` lines joined with ``"\\n"``."""
    id: str | None
    """The stream's last event id when this event was dispatched; ``None`` if unset or empty."""
    oversized: bool = False
    """The data was longer than the parser keeps: ``data`` is only its first bytes."""


class SSEParser:
    """Feed response-body chunks in order; get back the events they complete.

    Chunk boundaries may fall anywhere, including between the ``\\r`` and ``\\n``
    of one line ending: the result does not depend on how the stream was split.
    """

    __slots__ = (
        "_at_stream_start",
        "_data_len",
        "_data_lines",
        "_dropping_line",
        "_event_type",
        "_head",
        "_head_bytes",
        "_last_event_id",
        "_max_line_bytes",
        "_oversized",
        "_partial",
        "_partial_len",
        "_skip_lf",
        "closed",
        "decode_errors",
        "overflows",
        "truncated",
    )

    def __init__(self, max_line_bytes: int) -> None:
        if max_line_bytes <= 0:
            raise ValueError(f"max_line_bytes must be > 0, got {max_line_bytes}")
        self._max_line_bytes = max_line_bytes
        # What any overflow has seen of the data at least (a line past the cap, less "data: ").
        self._head_bytes = min(HEAD_BYTES, max(0, max_line_bytes - 6))
        # Pieces of a line whose end has not arrived yet; kept as a list so a long
        # line delivered in small chunks costs O(n), not O(n^2).  (Empty: ``()``, no list
        # held by a stream that waits between events.)
        self._partial: _Pieces = ()
        self._partial_len = 0
        # The previous chunk ended in "\r": a "\n" opening the next chunk belongs
        # to that same line ending and must not be read as an empty line.
        self._skip_lf = False
        self._at_stream_start = True
        self._event_type = ""
        self._data_lines: _Pieces = ()
        self._data_len = 0
        self._last_event_id = ""
        # The event in progress outgrew the cap: its data is dropped up to the blank line that
        # ends it, and only its head is kept.
        self._oversized = False
        self._head = b""
        # The line in progress outgrew the cap: its bytes are dropped up to its line ending.
        self._dropping_line = False
        self.overflows = 0
        """Events whose data, or lines, exceeded ``max_line_bytes`` and were not kept."""
        self.decode_errors = 0
        """Fields or event data that were not valid UTF-8 (decoded with replacement)."""
        self.closed = False
        self.truncated = False
        """Set by :meth:`close` when the stream ended inside a line or an event."""

    @property
    def last_event_id(self) -> str | None:
        return self._last_event_id or None

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        if self.closed or not chunk:
            return []
        if self._skip_lf:
            self._skip_lf = False
            if chunk[0] == _LF:
                chunk = chunk[1:]
                if not chunk:
                    return []
        if self._dropping_line:
            chunk = self._drop_line(chunk)
            if not chunk:
                return []

        if b"\n" not in chunk and b"\r" not in chunk:
            self._partial_len += len(chunk)
            if self._partial_len > self._max_line_bytes:
                self._overflow(b"".join(_appended(self._partial,
                                                  chunk[: self._max_line_bytes])))
                self._dropping_line = True
            else:
                self._partial = _appended(self._partial, chunk)
            return []

        if self._partial:
            data = b"".join(_appended(self._partial, chunk))
            self._partial = ()
            self._partial_len = 0
        else:
            data = chunk
        lines = data.splitlines()
        last_byte = data[-1]
        if last_byte == _CR:
            self._skip_lf = True
            tail = b""
        elif last_byte == _LF:
            tail = b""
        else:
            tail = lines.pop()

        events = self._process(lines)
        if tail:
            if len(tail) > self._max_line_bytes:
                self._overflow(tail)
                self._dropping_line = True
            else:
                self._partial = [tail]
                self._partial_len = len(tail)
        return events

    def close(self) -> list[SSEEvent]:
        """End of stream. An event without its closing blank line is discarded, per the standard."""
        if not self.closed:
            self.closed = True
            # (An oversized event cut off by the end was counted as oversized already.)
            self.truncated = not self._oversized and bool(self._partial or self._data_lines)
            self._partial = ()
            self._data_lines = ()
            self._head = b""
        return []

    def _drop_line(self, chunk: bytes) -> bytes:
        """What follows the end of the line being dropped, if ``chunk`` holds it."""
        end = _line_end(chunk)
        if end == -1:
            return b""
        self._dropping_line = False
        if chunk[end] == _CR:
            if end + 1 == len(chunk):
                self._skip_lf = True
            elif chunk[end + 1] == _LF:
                end += 1
        return chunk[end + 1 :]

    def _process(self, lines: list[bytes]) -> list[SSEEvent]:
        events: list[SSEEvent] = []
        max_len = self._max_line_bytes
        for line in lines:
            if len(line) > max_len:
                self._overflow(line)
                continue
            if self._at_stream_start:
                self._at_stream_start = False
                line = line.removeprefix(_BOM)
            if not line:
                if self._oversized:
                    event = self._dispatch_oversized()
                    if event is not None:
                        events.append(event)
                elif self._data_lines:
                    event = self._dispatch()
                    if event is not None:
                        events.append(event)
                self._event_type = ""
                continue
            if line[0] == _COLON:
                continue  # a comment: keep-alive pings
            colon = line.find(b":")
            if colon == -1:
                name = line
                value = b""
            else:
                name = line[:colon]
                value = line[colon + 1 :]
                if value[:1] == b" ":
                    value = value[1:]
            if name == b"data":
                if self._oversized:
                    continue
                self._data_len += len(value) + 1
                if self._data_len > max_len:
                    self._overflow(line)
                    continue
                self._data_lines = _appended(self._data_lines, value)
            elif name == b"event":
                self._event_type = self._decode(value)
            elif name == b"id" and b"\x00" not in value:
                self._last_event_id = self._decode(value)
            # "retry" and unknown fields are ignored.
        return events

    def _dispatch(self) -> SSEEvent | None:
        data = b"\n".join(self._data_lines)
        self._data_lines = ()
        self._data_len = 0
        if not data:
            return None
        return SSEEvent(
            self._event_type or _DEFAULT_EVENT,
            self._decode(data),
            self._last_event_id or None,
        )

    def _dispatch_oversized(self) -> SSEEvent | None:
        head = self._head
        self._oversized = False
        self._head = b""
        if not head:
            return None  # an overlong comment or field: no data to speak of
        return SSEEvent(self._event_type or _DEFAULT_EVENT, self._decode(head),
                        self._last_event_id or None, oversized=True)

    def _decode(self, raw: bytes) -> str:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            self.decode_errors += 1
            return raw.decode("utf-8", "replace")

    def _overflow(self, line: bytes) -> None:
        """The event in progress outgrew the cap at ``line`` (or its first bytes)."""
        self._at_stream_start = False
        if not self._oversized:
            self._oversized = True
            self.overflows += 1
            head = b"\n".join(self._data_lines)
            cap = self._head_bytes
            if line.startswith(b"data:") and len(head) < cap:
                value = line[5 : 6 + cap].removeprefix(b" ")
                head = head + b"\n" + value if self._data_lines else value
            self._head = head[:cap]
        self._partial = ()
        self._partial_len = 0
        self._data_lines = ()
        self._data_len = 0


#: Pieces of bytes; ``()`` while there are none.
_Pieces = list[bytes] | tuple[()]


def _appended(pieces: _Pieces, piece: bytes) -> list[bytes]:
    """``pieces`` with ``piece`` at the end: the same list, or a new one in place of ``()``."""
    if isinstance(pieces, list):
        pieces.append(piece)
        return pieces
    return [piece]


def _line_end(chunk: bytes) -> int:
    """Index of the first ``\r`` or ``\n`` in ``chunk``, or -1."""
    cr = chunk.find(b"\r")
    lf = chunk.find(b"\n")
    if cr == -1:
        return lf
    return cr if lf == -1 else min(cr, lf)


@dataclass(frozen=True, slots=True)
class LegacyEndpoint:
    """The ``endpoint`` event that opens a legacy HTTP+SSE (2024-11-05) stream."""

    path: str
    """Where the client will POST, percent-decoded like ASGI's ``scope["path"]``."""
    session_id: str | None
    """The ``session_id`` query parameter; ``None`` if missing."""


def legacy_endpoint(event: SSEEvent) -> LegacyEndpoint | None:
    """Recognise ``event: endpoint`` / ``data: /messages/?session_id=<hex>``.

    The SDK sends ``quote(root_path + message_path)`` followed by the query, so the
    path may carry a mount prefix and percent-escapes; an absolute URL works too.
    Returns ``None`` for any other event.
    """
    if event.event != "endpoint":
        return None
    try:
        parts = urlsplit(event.data.strip())
    except ValueError:  # e.g. an unbalanced "[" in what looks like a host
        return None
    return LegacyEndpoint(path=unquote(parts.path), session_id=session_id_from_query(parts.query))

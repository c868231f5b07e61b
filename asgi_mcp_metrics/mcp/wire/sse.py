"""Incremental ``text/event-stream`` parser for watching MCP responses pass by.

It follows the event-stream interpretation rules of the HTML standard, with two
deliberate choices:

* An event whose data is empty is not dispatched. MCP never sends a JSON-RPC
  message with empty data; such events are priming events (2025-11-25) and their
  ``id`` is still remembered, as the standard requires.
* Bytes that are not valid UTF-8 are replaced with U+FFFD (as the standard's
  decoder does) and counted in :attr:`SSEParser.decode_errors`.

Memory is bounded: a line, or the data of one event, longer than
``max_line_bytes`` makes the parser give up on the stream for good
(:attr:`SSEParser.overflowed`); it then drops its buffers and returns nothing more.
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


class SSEEvent(NamedTuple):
    event: str
    """The event type; ``"message"`` when the stream did not name one."""
    data: str
    """The ``data:`` lines joined with ``"\\n"``."""
    id: str | None
    """The stream's last event id when this event was dispatched; ``None`` if unset or empty."""


class SSEParser:
    """Feed response-body chunks in order; get back the events they complete.

    Chunk boundaries may fall anywhere, including between the ``\\r`` and ``\\n``
    of one line ending: the result does not depend on how the stream was split.
    """

    __slots__ = (
        "_at_stream_start",
        "_data_len",
        "_data_lines",
        "_event_type",
        "_last_event_id",
        "_max_line_bytes",
        "_partial",
        "_partial_len",
        "_skip_lf",
        "closed",
        "decode_errors",
        "overflowed",
        "truncated",
    )

    def __init__(self, max_line_bytes: int) -> None:
        if max_line_bytes <= 0:
            raise ValueError(f"max_line_bytes must be > 0, got {max_line_bytes}")
        self._max_line_bytes = max_line_bytes
        # Pieces of a line whose end has not arrived yet; kept as a list so a long
        # line delivered in small chunks costs O(n), not O(n^2).
        self._partial: list[bytes] = []
        self._partial_len = 0
        # The previous chunk ended in "\r": a "\n" opening the next chunk belongs
        # to that same line ending and must not be read as an empty line.
        self._skip_lf = False
        self._at_stream_start = True
        self._event_type = ""
        self._data_lines: list[bytes] = []
        self._data_len = 0
        self._last_event_id = ""
        self.overflowed = False
        """A line or an event's data exceeded ``max_line_bytes``; parsing stopped for good."""
        self.decode_errors = 0
        """Fields or event data that were not valid UTF-8 (decoded with replacement)."""
        self.closed = False
        self.truncated = False
        """Set by :meth:`close` when the stream ended inside a line or an event."""

    @property
    def last_event_id(self) -> str | None:
        return self._last_event_id or None

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        if self.overflowed or self.closed or not chunk:
            return []
        if self._skip_lf:
            self._skip_lf = False
            if chunk[0] == _LF:
                chunk = chunk[1:]
                if not chunk:
                    return []

        if b"\n" not in chunk and b"\r" not in chunk:
            self._partial_len += len(chunk)
            if self._partial_len > self._max_line_bytes:
                self._overflow()
            else:
                self._partial.append(chunk)
            return []

        if self._partial:
            self._partial.append(chunk)
            data = b"".join(self._partial)
            self._partial = []
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
        if tail and not self.overflowed:
            if len(tail) > self._max_line_bytes:
                self._overflow()
            else:
                self._partial.append(tail)
                self._partial_len = len(tail)
        return events

    def close(self) -> list[SSEEvent]:
        """End of stream. An event without its closing blank line is discarded, per the standard."""
        if not self.closed:
            self.closed = True
            self.truncated = not self.overflowed and bool(self._partial or self._data_lines)
            self._partial = []
            self._data_lines = []
        return []

    def _process(self, lines: list[bytes]) -> list[SSEEvent]:
        events: list[SSEEvent] = []
        max_len = self._max_line_bytes
        for line in lines:
            if len(line) > max_len:
                self._overflow()
                break
            if self._at_stream_start:
                self._at_stream_start = False
                line = line.removeprefix(_BOM)
            if not line:
                if self._data_lines:
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
                self._data_len += len(value) + 1
                if self._data_len > max_len:
                    self._overflow()
                    break
                self._data_lines.append(value)
            elif name == b"event":
                self._event_type = self._decode(value)
            elif name == b"id" and b"\x00" not in value:
                self._last_event_id = self._decode(value)
            # "retry" and unknown fields are ignored.
        return events

    def _dispatch(self) -> SSEEvent | None:
        data = b"\n".join(self._data_lines)
        self._data_lines = []
        self._data_len = 0
        if not data:
            return None
        return SSEEvent(
            self._event_type or _DEFAULT_EVENT,
            self._decode(data),
            self._last_event_id or None,
        )

    def _decode(self, raw: bytes) -> str:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            self.decode_errors += 1
            return raw.decode("utf-8", "replace")

    def _overflow(self) -> None:
        self.overflowed = True
        self._partial = []
        self._partial_len = 0
        self._data_lines = []
        self._data_len = 0


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

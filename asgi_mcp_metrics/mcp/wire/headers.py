"""MCP facts carried in HTTP headers and the query string.

Modern-era (2026-07-28) clients send ``Mcp-Method`` and ``Mcp-Name`` on every POST,
which lets us label a request the application rejected before reading its body.
Handshake-era servers put the session in ``Mcp-Session-Id``; the legacy HTTP+SSE
transport puts it in the ``session_id`` query parameter.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final
from urllib.parse import unquote_plus

from .vocabulary import PROTOCOL_VERSIONS

INVALID_HEADER_VALUE: Final = "_invalid"
"""What a malformed ``=?base64?...?=`` value decodes to: one fixed, label-safe value."""

_SENTINEL_PREFIX: Final = b"=?base64?"
_SENTINEL_SUFFIX: Final = b"?="
_SENTINEL_MIN_LEN: Final = len(_SENTINEL_PREFIX) + len(_SENTINEL_SUFFIX)

#: The request headers the metrics read: name -> field number (its place in what
#: :func:`read_headers` collects; the first value wins, except ``Accept``'s, which are joined).
_WANTED: Final = {b"mcp-method": 0, b"mcp-name": 1, b"mcp-protocol-version": 2,
                  b"mcp-session-id": 3, b"last-event-id": 4, b"content-type": 5, b"accept": 6}
_ACCEPT: Final = _WANTED[b"accept"]
_VERSIONS: Final = {version.encode("ascii"): version for version in PROTOCOL_VERSIONS}
#: ``Mcp-Method`` and ``Mcp-Name`` values seen before, as text: a client names the same few
#: methods and tools again and again, and a shared string is neither copied per request nor
#: hashed again by the label look-ups it goes through.  Bounded in entries and in length.
_SHARED_TEXT: dict[bytes, str] = {}
_MAX_SHARED_TEXTS: Final = 1024
_MAX_SHARED_LENGTH: Final = 128


@dataclass(slots=True)
class McpHeaders:
    """The headers the MCP metrics read; ``None`` when absent. Treat as read-only."""

    method: str | None = None
    name: str | None = None
    """``Mcp-Name``, with the base64 sentinel decoded (see :func:`decode_header_value`)."""
    protocol_version: str | None = None
    session_id: str | None = None
    accept: str | None = None
    content_type: str | None = None
    last_event_id: str | None = None


def decode_header_value(raw: bytes | None) -> str | None:
    """Decode an MCP header value that may use the ``=?base64?<b64>?=`` sentinel.

    A plain value is returned as is (latin-1, as ASGI frameworks decode header
    values). A sentinel value is decoded as base64 of UTF-8; when that fails —
    bad alphabet or padding, non-canonical base64, invalid UTF-8 — the result is
    :data:`INVALID_HEADER_VALUE`, so an attacker cannot mint label values through
    garbage. The markers are case-sensitive: ``=?BASE64?...?=`` is a plain value.
    ``None`` passes through, so ``decode_header_value(headers.get(...))`` works.
    """
    if raw is None:
        return None
    if (
        len(raw) >= _SENTINEL_MIN_LEN
        and raw.startswith(_SENTINEL_PREFIX)
        and raw.endswith(_SENTINEL_SUFFIX)
    ):
        payload = raw[len(_SENTINEL_PREFIX) : -len(_SENTINEL_SUFFIX)]
        try:
            decoded = base64.b64decode(payload, validate=True)
        except binascii.Error:
            return INVALID_HEADER_VALUE
        # validate=True still accepts non-zero padding bits; senders only emit the
        # canonical form, and the SDK rejects anything else, so do we.
        if base64.b64encode(decoded) != payload:
            return INVALID_HEADER_VALUE
        try:
            return decoded.decode("utf-8")
        except UnicodeDecodeError:
            return INVALID_HEADER_VALUE
    return raw.decode("latin-1")


def mcp_request_headers(headers: Iterable[tuple[bytes, bytes]]) -> McpHeaders:
    """Pick the MCP-relevant headers out of an ASGI header list in one pass.

    Names match case-insensitively. The first occurrence wins, except ``Accept``,
    whose repeated values are joined with ``", "`` as HTTP defines. Works on
    response header lists too (``mcp-session-id``, ``content-type``).
    """
    method, name, version, session_id, last_event_id, content_type, accept = \
        read_headers(headers)
    return McpHeaders(method, name, version, session_id,
                      None if accept is None else accept.decode("latin-1"),
                      None if content_type is None else content_type.decode("latin-1"),
                      last_event_id)


#: What :func:`read_headers` returns: ``Mcp-Method``, ``Mcp-Name``, ``MCP-Protocol-Version``,
#: ``Mcp-Session-Id`` and ``Last-Event-Id`` as text, ``Content-Type`` and ``Accept`` raw.
RequestHeaders = tuple[str | None, str | None, str | None, str | None, str | None,
                       bytes | None, bytes | None]


def read_headers(headers: Iterable[tuple[bytes, bytes]]) -> RequestHeaders:
    """One pass over an ASGI header list: the values :func:`mcp_request_headers` reads, as a
    plain tuple (see :data:`RequestHeaders`; ``None`` when absent).  The tracker reads every
    MCP request's headers with this, so it makes no object but the tuple."""
    found: list[bytes | None] = [None] * 7  # by field number
    for key, value in headers:
        if key not in _WANTED:
            # ASGI servers send lowercase names; only pay for lower() when needed.
            if key.islower():
                continue
            key = key.lower()
            if key not in _WANTED:
                continue
        field = _WANTED[key]
        first = found[field]
        if first is None:
            found[field] = value
        elif field == _ACCEPT:
            found[field] = first + b", " + value
    method, name, version, session_id, last_event_id, content_type, accept = found
    return (
        None if method is None else _SHARED_TEXT.get(method) or _shared_text(method),
        None if name is None else (
            decode_header_value(name) if name.startswith(_SENTINEL_PREFIX)
            else _SHARED_TEXT.get(name) or _shared_text(name)),
        # A known version is one shared string, not a copy per request.
        None if version is None else _VERSIONS.get(version) or version.decode("latin-1"),
        None if session_id is None else session_id.decode("latin-1"),
        None if last_event_id is None else last_event_id.decode("latin-1"),
        content_type, accept)


def response_headers(headers: Iterable[tuple[bytes, bytes]]) -> tuple[bytes, bytes | None]:
    """What the MCP metrics read of a response's headers: its ``Content-Type``, lowercase
    (``b""`` when absent), and its ``Mcp-Session-Id``, raw (``None``); the last value wins."""
    content_type = b""
    session_id = None
    for name, value in headers:
        if not name.islower():
            name = name.lower()
        if name == b"content-type":
            content_type = value.lower()
        elif name == b"mcp-session-id":
            session_id = value
    return content_type, session_id


def _shared_text(value: bytes) -> str:
    """``value`` as latin-1 text, kept in :data:`_SHARED_TEXT` while there is room."""
    text = value.decode("latin-1")
    if len(value) <= _MAX_SHARED_LENGTH and len(_SHARED_TEXT) < _MAX_SHARED_TEXTS:
        _SHARED_TEXT[value] = text
    return text


def media_type(content_type: str | None) -> str | None:
    """``"Application/JSON; charset=utf-8"`` → ``"application/json"``; ``None`` stays ``None``."""
    if content_type is None:
        return None
    return content_type.partition(";")[0].strip().lower()


def session_id_from_query(query_string: bytes | str) -> str | None:
    """The ``session_id`` query parameter of the legacy HTTP+SSE transport.

    Parsed the way Starlette parses ``request.query_params`` (latin-1, ``+`` as
    space, UTF-8 percent-escapes, the last occurrence wins), so we see the id the
    server sees. An empty value counts as absent.
    """
    if not query_string:
        return None
    text = query_string.decode("latin-1") if isinstance(query_string, bytes) else query_string
    found: str | None = None
    for part in text.split("&"):
        key, _, value = part.partition("=")
        if "%" in key or "+" in key:
            key = unquote_plus(key)
        if key == "session_id":
            found = value
    if not found:
        return None
    return unquote_plus(found) or None



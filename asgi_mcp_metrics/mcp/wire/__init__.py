"""The MCP wire layer: pure, synchronous parsers that return plain facts.

No metrics, no ASGI, no tracker: nothing here imports from outside this package.

* :mod:`.body` — a capped buffer for request and JSON response bodies;
* :mod:`.jsonrpc` — classify JSON-RPC payloads: requests, notifications, responses, batches;
* :mod:`.sse` — an incremental ``text/event-stream`` parser and the legacy ``endpoint`` event;
* :mod:`.headers` — ``Mcp-*`` request headers, the base64 sentinel, the ``session_id`` query;
* :mod:`.vocabulary` — the closed label vocabularies (methods, versions, error codes, reasons).
"""

from __future__ import annotations

from .body import BoundedBuffer
from .headers import (
    INVALID_HEADER_VALUE,
    McpHeaders,
    decode_header_value,
    mcp_request_headers,
    media_type,
    session_id_from_query,
)
from .jsonrpc import IdKey, Message, MessageKind, Parsed, parse_messages
from .sse import LegacyEndpoint, SSEEvent, SSEParser, legacy_endpoint

__all__ = [
    "INVALID_HEADER_VALUE",
    "BoundedBuffer",
    "IdKey",
    "LegacyEndpoint",
    "McpHeaders",
    "Message",
    "MessageKind",
    "Parsed",
    "SSEEvent",
    "SSEParser",
    "decode_header_value",
    "legacy_endpoint",
    "mcp_request_headers",
    "media_type",
    "parse_messages",
    "session_id_from_query",
]

"""Passive MCP wire parsing: pure, synchronous helpers with no metrics and no ASGI in them.

* :mod:`.body` — a capped buffer for request and JSON response bodies;
* :mod:`.jsonrpc` — classify JSON-RPC payloads: requests, notifications, responses, batches;
* :mod:`.sse` — an incremental ``text/event-stream`` parser and the legacy ``endpoint`` event;
* :mod:`.headers` — ``Mcp-*`` request headers, the base64 sentinel, the ``session_id`` query.
"""

from __future__ import annotations

from asgi_mcp_metrics.mcp.body import BoundedBuffer
from asgi_mcp_metrics.mcp.headers import (
    INVALID_HEADER_VALUE,
    McpHeaders,
    decode_header_value,
    mcp_request_headers,
    media_type,
    session_id_from_query,
)
from asgi_mcp_metrics.mcp.jsonrpc import IdKey, Message, MessageKind, Parsed, parse_messages
from asgi_mcp_metrics.mcp.sse import LegacyEndpoint, SSEEvent, SSEParser, legacy_endpoint

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

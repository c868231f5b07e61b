"""Closed sets of label values for the MCP wire metrics.

Methods, protocol versions and error codes come from the network; only values in these sets
become label values, anything else is ``_OTHER``.
"""

from __future__ import annotations

from typing import Final

OTHER: Final = "_OTHER"

#: ``mcp.method.name`` values of the semantic conventions, both protocol eras.
METHODS: Final = frozenset({
    "initialize", "ping", "server/discover",
    "tools/list", "tools/call",
    "resources/list", "resources/templates/list", "resources/read",
    "resources/subscribe", "resources/unsubscribe",
    "prompts/list", "prompts/get",
    "completion/complete", "logging/setLevel",
    "sampling/createMessage", "elicitation/create", "roots/list",
    "subscriptions/listen",
    "tasks/get", "tasks/list", "tasks/cancel", "tasks/result",
    "notifications/initialized", "notifications/cancelled", "notifications/progress",
    "notifications/message", "notifications/tools/list_changed",
    "notifications/prompts/list_changed", "notifications/resources/list_changed",
    "notifications/resources/updated", "notifications/roots/list_changed",
    "notifications/subscriptions/acknowledged", "notifications/elicitation/complete",
    "notifications/tasks/status",
})

#: Versions of the handshake era (``initialize``, ``Mcp-Session-Id``, GET stream, DELETE).
HANDSHAKE_VERSIONS: Final = frozenset({"2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"})
#: Versions of the modern era: no sessions, ``Mcp-Method``/``Mcp-Name`` headers.
MODERN_VERSIONS: Final = frozenset({"2026-07-28"})
PROTOCOL_VERSIONS: Final = HANDSHAKE_VERSIONS | MODERN_VERSIONS

#: JSON-RPC and MCP error codes worth a label value of their own.  ``0`` is what the 1.x SDK
#: sends for an uncaught handler exception.
ERROR_CODES: Final = frozenset({
    -32700, -32600, -32601, -32602, -32603, -32000, -32001, -32002, -32042, -32020, -32021,
    -32022, 0,
})

#: Codes the semantic conventions call the caller's fault, not a server error.  They stay in
#: ``error_type``; the error-ratio queries in ``docs/mcp.md`` leave them out.
CALLER_FAULT_CODES: Final = frozenset({-32700, -32600, -32601, -32602, -32002})

METHOD_NOT_FOUND: Final = -32601

# Codes that name the reason of a 4xx rejection better than the status does.
_CODE_REASONS: Final = {
    -32700: "parse_error",
    -32020: "header_mismatch",
    -32021: "missing_client_capability",
    -32022: "unsupported_protocol_version",
}

# Generic JSON-RPC codes: used only when nothing more specific is known.
#: The ``transport`` label: Streamable HTTP, or the legacy HTTP+SSE transport.
STREAMABLE: Final = "streamable_http"
LEGACY: Final = "sse"

#: Why a session ended: the ``end_reason`` of ``mcp_server_sessions_ended_total``.
SESSION_END_REASONS: Final = ("client_delete", "client_disconnect", "not_found", "idle_timeout",
                              "shutdown", "error")

_GENERIC_CODE_REASONS: Final = {
    -32600: "invalid_request",
    -32601: "method_not_found",
    -32602: "invalid_params",
}

_STATUS_REASONS: Final = {
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "body_too_large",
    415: "unsupported_media_type",
    421: "misdirected_request",
    429: "rate_limited",
}

#: Every value :func:`rejection_reason` can return besides ``http_<status>`` and ``_OTHER``.
REJECTION_REASONS: Final = frozenset({
    *_CODE_REASONS.values(), *_GENERIC_CODE_REASONS.values(), *_STATUS_REASONS.values(),
    "batch_rejected", "missing_session_id", "bad_request",
})


def method_label(method: str | None) -> str:
    if method is None:
        return ""
    return method if method in METHODS else OTHER


def version_label(version: str | None) -> str:
    if not version:
        return ""
    return version if version in PROTOCOL_VERSIONS else OTHER


def is_modern(version: str | None) -> bool:
    """Whether a request with this ``MCP-Protocol-Version`` header is served by the modern era.

    The SDK routes any version header that is not a handshake-era version to the modern
    handler (``initialize`` carries no header, so it always goes to the handshake path).
    """
    return bool(version) and version not in HANDSHAKE_VERSIONS


def error_code_label(code: int) -> str:
    return str(code) if code in ERROR_CODES else OTHER


def rejection_reason(status: int, code: int | None, *, batch: bool = False,
                     unparsable: bool = False, unknown_version: bool = False,
                     missing_session: bool = False) -> str:
    """Why the transport turned an MCP request away: one fixed, low-cardinality value.

    ``code`` is the JSON-RPC error code of the response body, when one was read; the flags say
    what the request looked like (a batch, a body we could not parse ourselves, an
    ``MCP-Protocol-Version`` header naming no known version, a handshake-era request without
    its session id).  The SDKs answer most of these with a bare 400 and a generic ``-32600``,
    so the request's own shape often says more than the response.
    """
    reason = _STATUS_REASONS.get(status)
    if reason is not None:
        return reason
    if 400 <= status < 500:
        if status == 400 and batch:
            return "batch_rejected"
        if code is not None and code in _CODE_REASONS:
            return _CODE_REASONS[code]
        if status == 400:
            if unparsable:
                return "parse_error"
            if unknown_version:
                return "unsupported_protocol_version"
            if missing_session:
                return "missing_session_id"
        if code is not None and code in _GENERIC_CODE_REASONS:
            return _GENERIC_CODE_REASONS[code]
        if status == 400:
            return "bad_request"
    return f"http_{status}" if 100 <= status <= 599 else OTHER

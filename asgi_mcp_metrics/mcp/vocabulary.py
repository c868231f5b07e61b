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

PROTOCOL_VERSIONS: Final = frozenset({
    "2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25", "2026-07-28",
})

#: JSON-RPC and MCP error codes worth a label value of their own.  ``0`` is what the 1.x SDK
#: sends for an uncaught handler exception.
ERROR_CODES: Final = frozenset({
    -32700, -32600, -32601, -32602, -32603, -32000, -32001, -32002, -32042, -32020, -32021,
    -32022, 0,
})

#: Codes the semantic conventions call the caller's fault, not a server error.
CALLER_FAULT_CODES: Final = frozenset({-32700, -32600, -32601, -32602, -32002})

_CODE_REASONS: Final = {
    -32020: "header_mismatch",
    -32021: "missing_client_capability",
    -32022: "unsupported_protocol_version",
    -32700: "parse_error",
}

_STATUS_REASONS: Final = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "body_too_large",
    415: "unsupported_media_type",
    421: "misdirected_request",
    429: "rate_limited",
}


def method_label(method: str | None) -> str:
    if method is None:
        return ""
    return method if method in METHODS else OTHER


def version_label(version: str | None) -> str:
    if not version:
        return ""
    return version if version in PROTOCOL_VERSIONS else OTHER


def error_code_label(code: int) -> str:
    return str(code) if code in ERROR_CODES else OTHER


def rejection_reason(status: int, code: int | None, *, batch: bool, missing_session: bool) -> str:
    """Why the transport turned an MCP request away (a fixed, low-cardinality value)."""
    if code is not None and code in _CODE_REASONS:
        return _CODE_REASONS[code]
    if status == 400:
        if batch:
            return "batch_rejected"
        if missing_session:
            return "missing_session_id"
    reason = _STATUS_REASONS.get(status)
    if reason is not None:
        return reason
    return f"http_{status}" if 100 <= status <= 599 else OTHER

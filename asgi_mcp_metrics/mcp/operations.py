"""MCP operations (JSON-RPC requests) and their outcomes.

Outcomes: ``ok``, ``tool_error`` (``result.isError: true`` inside a 200), ``error`` (a JSON-RPC
error, a 5xx, no answer), ``input_required`` (2026-07-28 multi-round-trip), ``cancelled``
(the client left or sent ``notifications/cancelled``) and ``rejected`` (the transport refused
the request with a 4xx before it ran).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from .wire.vocabulary import OTHER, error_code_label

if TYPE_CHECKING:
    from .wire.jsonrpc import IdKey

OPERATION: Final = "mcp_server_operation_duration_seconds"
TOOL_CALLS: Final = "mcp_tool_calls_total"
TOOL_DURATION: Final = "mcp_tool_call_duration_seconds"

OK: Final = "ok"
TOOL_ERROR: Final = "tool_error"
ERROR: Final = "error"
INPUT_REQUIRED: Final = "input_required"
CANCELLED: Final = "cancelled"
REJECTED: Final = "rejected"

# error_type values that are not JSON-RPC codes.
CLIENT_DISCONNECT: Final = "client_disconnect"
NO_RESPONSE: Final = "no_response"
UNREADABLE_RESPONSE: Final = OTHER


@dataclass(slots=True, eq=False)
class Operation:
    """A request seen going in, waiting for its answer."""

    id_key: IdKey | None
    """``None`` when the operation is known from ``Mcp-Method`` headers only."""
    method: str
    """Already a bounded label value."""
    tool: str | None
    """The raw tool name of a ``tools/call`` (``""`` when it had none); ``None`` otherwise."""
    prompt: str | None
    version: str
    transport: str
    identity: str
    started: float
    session: str | None = None
    """The session the request belongs to, when that session is tracked."""
    on_stream: bool = False
    """Legacy HTTP+SSE: the answer arrives on the session's GET stream, not on this POST."""
    settled: bool = False


def outcome_of(error: bool, error_code: int | None, is_error: bool,
               result_type: object) -> tuple[str, str]:
    """``(outcome, error_type)`` of an answer: a JSON-RPC ``error`` (with its code, if it has
    one), or a result - ``isError: true`` inside it is a tool error, a ``resultType`` of
    ``input_required`` asks for more input (2026-07-28)."""
    if error:
        return ERROR, error_code_label(error_code) if error_code is not None else OTHER
    if is_error:
        return TOOL_ERROR, "tool_error"
    if result_type == "input_required":
        return INPUT_REQUIRED, ""
    return OK, ""

"""MCP operations (JSON-RPC requests) and how their outcomes become metrics.

Outcomes: ``ok``, ``tool_error`` (``result.isError: true`` inside a 200), ``error`` (a JSON-RPC
error, a 5xx, no answer), ``input_required`` (2026-07-28 multi-round-trip), ``cancelled``
(the client left or sent ``notifications/cancelled``) and ``rejected`` (the transport refused
the request with a 4xx before it ran).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from ..known import is_declared_tool
from .vocabulary import OTHER, error_code_label

if TYPE_CHECKING:
    from ..recorder import Recorder
    from .jsonrpc import IdKey, Message

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


def outcome_of(answer: Message) -> tuple[str, str]:
    """``(outcome, error_type)`` of a response or error message."""
    if answer.kind == "error":
        code = answer.error_code
        return ERROR, error_code_label(code) if code is not None else OTHER
    if answer.is_error:
        return TOOL_ERROR, "tool_error"
    if answer.result_type == "input_required":
        return INPUT_REQUIRED, ""
    return OK, ""


class Operations:
    """Writes finished operations to the operation, request and tool-call metrics."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        self._duration = recorder[OPERATION]
        self._requests = recorder["mcp_server_requests_total"]
        self._tool_calls = recorder[TOOL_CALLS]
        self._tool_duration = recorder[TOOL_DURATION]

    def record(self, op: Operation, outcome: str, error_type: str, ended: float) -> bool:
        """Record ``op`` once; a second call for the same operation does nothing.

        Returns whether this call recorded it.
        """
        if op.settled:
            return False
        op.settled = True
        self._requests.labels(op.method, outcome, op.transport).inc()
        if outcome == REJECTED:
            # The request never ran: it has no latency and is not a tool call.
            return True
        tool = prompt = ""
        if op.tool is not None:
            # A tools/call without a usable name is still a tool call, of an unknown tool.
            tool = self.recorder.tool_label(op.tool, OPERATION) if op.tool else OTHER
        elif op.prompt is not None:
            prompt = self.recorder.prompt_label(op.prompt, OPERATION)
        # A subscription lasts as long as its stream, which the stream metrics measure.
        elapsed = ended - op.started
        if op.method != "subscriptions/listen":
            self._duration.labels(op.method, tool, prompt, error_type, op.version).observe(elapsed)
        # A tool declared with @instrument_tool is counted and timed by its decorator, which
        # knows the backend and whether the handler raised; recording it here too would count
        # it twice.  Every other tool call is counted and timed here, once.
        if op.tool is not None and not is_declared_tool(op.tool):
            self._tool_calls.labels(tool, "", outcome, op.identity).inc()
            self._tool_duration.labels(tool, "", outcome).observe(elapsed)
        return True

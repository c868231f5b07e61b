"""MCP operations (JSON-RPC requests) and how their outcomes become metrics."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..known import is_declared_tool
from .vocabulary import error_code_label

if TYPE_CHECKING:
    from ..recorder import Recorder
    from .jsonrpc import IdKey, Message

OPERATION = "mcp_server_operation_duration_seconds"
TOOL_CALLS = "mcp_tool_calls_total"


@dataclass(slots=True)
class Operation:
    """A request seen going in, waiting for its answer."""

    id_key: IdKey | None
    method: str
    """Already a bounded label value."""
    tool: str | None
    prompt: str | None
    version: str
    transport: str
    identity: str
    started: float


def outcome_of(answer: Message) -> tuple[str, str]:
    """``(outcome, error_type)`` of a response or error message."""
    if answer.kind == "error":
        code = answer.error_code
        return "error", error_code_label(code) if code is not None else "_OTHER"
    if answer.is_error:
        return "tool_error", "tool_error"
    if answer.result_type == "input_required":
        return "input_required", ""
    return "ok", ""


class Operations:
    """Writes finished operations to the operation, request and tool-call metrics."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        self._duration = recorder[OPERATION]
        self._requests = recorder["mcp_server_requests_total"]
        self._tool_calls = recorder[TOOL_CALLS]
        self._prompts = recorder.guard("gen_ai_prompt_name")

    def record(self, op: Operation, outcome: str, error_type: str, ended: float) -> None:
        tool = prompt = ""
        if op.tool is not None:
            tool = self.recorder.tool_label(op.tool, OPERATION)
        elif op.prompt is not None:
            prompt = self._prompts(op.prompt, OPERATION)
        # A rejected request never ran; a subscription lasts as long as its stream, which the
        # stream metrics measure.
        if outcome != "rejected" and op.method != "subscriptions/listen":
            self._duration.labels(op.method, tool, prompt, error_type, op.version).observe(
                ended - op.started)
        self._requests.labels(op.method, outcome, op.transport).inc()
        # A tool declared with @instrument_tool is counted by its decorator, which knows the
        # backend and whether the handler raised; counting it here too would count it twice.
        if op.tool is not None and not is_declared_tool(op.tool):
            self._tool_calls.labels(tool, "", outcome, op.identity).inc()

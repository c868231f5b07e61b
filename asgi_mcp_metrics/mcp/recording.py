"""The one object that writes MCP metrics, for the wire tracker and the ``mcp`` SDK adapter.

Both paths hand it the same facts - an operation and how it ended, a notification, a session
that started or ended, a parse limit that was hit - so the label rules (which tool and prompt
names become label values, which tool calls the decorators count instead) cannot diverge.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Final

from .. import declared_tools
from ..identity import identity_label
from ..writers import HistogramWriter, value_of
from .operations import (
    INPUT_REQUIRED,
    OK,
    OPERATION,
    REJECTED,
    TOOL_CALLS,
    TOOL_DURATION,
    Operation,
)
from .wire.vocabulary import METHODS, OTHER, method_label

if TYPE_CHECKING:
    from ..recorder import Recorder
    from .wire.jsonrpc import IdKey

_SUCCESS: Final = frozenset({OK, INPUT_REQUIRED})
#: Operation shapes whose children are kept at most.
_MAX_SHAPES: Final = 4096
_OperationKey = tuple[str, "str | None", "str | None", str, str, str, str, str]
_OperationChildren = tuple[Any, "HistogramWriter | None", Any, "HistogramWriter | None"]


class McpRecording:
    """Writes MCP operations, notifications, sessions, protocol errors and parse limits."""

    __slots__ = ("_children", "_duration", "_notifications", "_parse_limits",
                 "_protocol_errors", "_requests", "_sessions_active", "_sessions_duration",
                 "_sessions_ended", "_sessions_not_found", "_sessions_started", "_tool_calls",
                 "_tool_duration", "identity_on", "recorder")

    def __init__(self, recorder: Recorder, *, identity_on: bool = True) -> None:
        self.recorder = recorder
        self.identity_on = identity_on
        self._duration = recorder[OPERATION]
        self._requests = recorder["mcp_server_requests_total"]
        self._tool_calls = recorder[TOOL_CALLS]
        self._tool_duration = recorder[TOOL_DURATION]
        self._notifications = recorder["mcp_server_notifications_total"]
        self._protocol_errors = recorder["mcp_server_protocol_errors_total"]
        self._parse_limits = recorder.parse_limits
        self._sessions_active = recorder["mcp_server_sessions_active"]
        self._sessions_started = recorder["mcp_server_sessions_started_total"]
        self._sessions_ended = recorder["mcp_server_sessions_ended_total"]
        self._sessions_duration = recorder["mcp_server_session_duration_seconds"]
        self._sessions_not_found = recorder["mcp_server_session_not_found_total"]
        #: Operation shape -> the children it writes to (see :meth:`_resolve`).
        self._children: dict[_OperationKey, _OperationChildren] = {}

    # -- operations -----------------------------------------------------------------------------

    def new_operation(self, id_key: IdKey | None, method: str, tool: str | None,
                      prompt: str | None, version: str, transport: str,
                      started: float) -> Operation:
        """A request seen going in, as an :class:`Operation` ready for its labels: its method a
        bounded label value, its tool name kept for a ``tools/call`` (``""`` when it had none),
        its prompt name for a ``prompts/get``, the identity for a tool call."""
        is_tool_call = method == "tools/call"
        # (Positional: id_key, method, tool, prompt, version, transport, identity, started.)
        return Operation(
            id_key, method if method in METHODS else OTHER,
            (tool or "") if is_tool_call else None,
            prompt if method == "prompts/get" else None,
            version, transport,
            self.identity() if is_tool_call and self.identity_on else "",
            started)

    def identity(self) -> str:
        """The current request's identity as a tool-call label value ("" when off)."""
        if not self.identity_on:
            return ""
        # The middleware published this request's identity (resolved once, on first use);
        # the decorators read the same value.
        try:
            return identity_label(self.recorder, TOOL_CALLS)
        except Exception:
            self.recorder.internal_error("identity")
            return ""

    def answered(self, op: Operation, outcome: str, error_type: str, ended: float, *,
                 tool_names: Iterable[str] = (), prompt_names: Iterable[str] = ()) -> bool:
        """``op`` was answered: learn the names the answer shows exist, then record it."""
        if op.method == "tools/list":
            self.recorder.learn_tools(tool_names)
        elif op.method == "prompts/list":
            self.recorder.learn_prompts(prompt_names)
        if outcome in _SUCCESS:
            # The server answered a successful result, so the tool or prompt exists: a client
            # that calls without listing first still gets the names.  Unknown tools and
            # prompts never succeed, so a client cannot mint label values this way.
            if op.tool:
                if op.tool not in self.recorder.learned_tools:
                    self.recorder.learn_tools((op.tool,))
            elif op.prompt:
                self.recorder.learn_prompts((op.prompt,))
        return self.operation(op, outcome, error_type, ended)

    def operation(self, op: Operation, outcome: str, error_type: str, ended: float) -> bool:
        """Record ``op`` once; a second call for the same operation does nothing.

        Returns whether this call recorded it.
        """
        if op.settled:
            return False
        op.settled = True
        key = (op.method, op.tool, op.prompt, outcome, error_type, op.version, op.transport,
               op.identity)
        children = self._children.get(key)
        if children is None:
            children = self._resolve(key)
        requests, duration, tool_calls, tool_duration = children
        requests.inc(1)
        if duration is None and tool_duration is None:
            return True
        recorder = self.recorder
        exemplar = recorder.exemplar() if recorder.exemplars else None
        elapsed = ended - op.started
        if duration is not None:
            duration.observe(elapsed, exemplar)
        # A tool declared with @instrument_tool is counted and timed by its decorator, which
        # knows the backend and whether the handler raised; recording it here too would count
        # it twice.  Every other tool call is counted and timed here, once.
        if tool_duration is not None and op.tool not in declared_tools._declared_tools:
            tool_calls.inc(1)
            tool_duration.observe(elapsed, exemplar)
        return True

    def _resolve(self, key: _OperationKey) -> _OperationChildren:
        """The children an operation of this shape writes to (kept when its labels are
        settled: names already admitted as label values)."""
        method, tool, prompt, outcome, error_type, version, transport, identity = key
        recorder = self.recorder
        requests = value_of(self._requests.labels(method, outcome, transport))
        if outcome == REJECTED:
            # The request never ran: it has no latency and is not a tool call.
            children: _OperationChildren = (requests, None, None, None)
        else:
            tool_label = prompt_label = ""
            if tool is not None:
                # A tools/call without a usable name is still a tool call, of an unknown tool.
                tool_label = recorder.tool_label(tool, OPERATION) if tool else OTHER
            elif prompt is not None:
                prompt_label = recorder.prompt_label(prompt, OPERATION)
            # A subscription lasts as long as its stream, which the stream metrics measure.
            duration = (None if method == "subscriptions/listen" else HistogramWriter(
                self._duration.labels(method, tool_label, prompt_label, error_type, version)))
            tool_calls = tool_duration = None
            if tool is not None:
                tool_calls = value_of(self._tool_calls.labels(tool_label, "", outcome, identity))
                tool_duration = HistogramWriter(
                    self._tool_duration.labels(tool_label, "", outcome))
            children = (requests, duration, tool_calls, tool_duration)
        # Raw names become keys only once they are label values themselves (bounded by the
        # guards): a client sending endless unknown names is resolved anew each time.
        if ((not tool or tool in recorder.tool_names.admitted)
                and (not prompt or prompt in recorder.guard("gen_ai_prompt_name").admitted)
                and len(self._children) < _MAX_SHAPES):
            self._children[key] = children
        return children

    # -- everything else ------------------------------------------------------------------------

    def notification(self, method: str | None, direction: str) -> None:
        self._notifications.labels(method_label(method), direction).inc()

    def protocol_error(self, reason: str) -> None:
        self._protocol_errors.labels(reason).inc()

    def parse_limit(self, where: str, reason: str, count: int = 1) -> None:
        self._parse_limits.labels(where, reason).inc(count)

    def session_started(self, transport: str) -> None:
        self._sessions_active.labels(transport).inc()
        self._sessions_started.labels(transport).inc()

    def session_ended(self, transport: str, reason: str, seconds: float) -> None:
        self._sessions_active.labels(transport).dec()
        self._sessions_ended.labels(transport, reason).inc()
        self._sessions_duration.labels(transport, reason).observe(seconds)

    def session_not_found(self, transport: str) -> None:
        self._sessions_not_found.labels(transport).inc()

"""Decorators for code that knows more than the wire: tool handlers and access decisions.

``@instrument_tool`` measures a tool handler (or a proxy's dispatch function) and records
``mcp_tool_calls_total`` and ``mcp_tool_call_duration_seconds`` with the backend and the
caller's identity, which the wire cannot see.  ``@instrument_acl`` records the decisions of the
function that grants or denies access in ``mcp_acl_decisions_total``.

Both work on sync and async functions, generators and async generators, methods, classmethods
and staticmethods, keep the signature and ``inspect.iscoroutinefunction``, and never change
what the decorated function returns or raises: an error of ours, or of a label extractor you
pass, is logged and counted, and the call goes on as if undecorated.

Nothing is bound at import time: the registry and settings are resolved on the first call (see
:mod:`asgi_mcp_metrics._binding`), so decorating never needs the application to exist yet.
"""

from __future__ import annotations

import inspect
import sys
import types
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from time import perf_counter
from types import FrameType
from typing import Any, ClassVar, NamedTuple, TypeVar, overload

from prometheus_client import CollectorRegistry

from ._binding import Binding
from ._outcomes import is_cancellation, is_tool_error
from ._wrapping import wrap
from .audit import write_audit_line
from .config import Settings
from .declared_tools import declare_tool
from .identity import current_identity, identity_label
from .recorder import Recorder

__all__ = ["instrument_acl", "instrument_tool", "is_permission_error", "parse_decision"]

F = TypeVar("F", bound=Callable[..., Any])

TOOL_CALLS = "mcp_tool_calls_total"
TOOL_DURATION = "mcp_tool_call_duration_seconds"
ACL_DECISIONS = "mcp_acl_decisions_total"
ACL_DURATION = "mcp_acl_decision_duration_seconds"

#: A label value: a constant, or a callable of the decorated function's arguments.
LabelSource = str | Callable[..., Any] | None

_PERMISSION_WORDS = ("Permission", "Forbidden", "Denied")


# -- shared helpers --------------------------------------------------------------------------


def _tool_outcome(result: Any, error: BaseException | None) -> str:
    if error is None:
        return "tool_error" if is_tool_error(result) else "ok"
    if isinstance(error, GeneratorExit):
        return "ok"  # the consumer stopped iterating early: not a failure of the tool
    if is_cancellation(error):
        return "cancelled"
    return "error"


def _default_name(target: Any) -> str:
    func = getattr(target, "__func__", target)
    return str(getattr(func, "__name__", "") or type(func).__name__)


class _Call(NamedTuple):
    """What a probe keeps of one call until it has ended."""

    started: float
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    #: The request's identity, read when the call begins: it may end in another context.
    identity: str | None


@dataclass(frozen=True, kw_only=True, eq=False)
class _TimedProbe(ABC):
    """What both decorators do around a call; what they record is each one's ``record``."""

    #: The decorator's name, under which errors of ours and of label extractors are counted.
    decorator: ClassVar[str]
    binding: Binding

    def begin(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> _Call:
        return _Call(perf_counter(), args, kwargs, current_identity())

    def end(self, state: _Call, result: Any, error: BaseException | None) -> None:
        self.record(state, perf_counter() - state.started, result, error)

    @abstractmethod
    def record(self, call: _Call, elapsed: float, result: Any,
               error: BaseException | None) -> None:
        """What this kind records; each subclass says."""

    def extract(self, source: LabelSource, call: _Call, recorder: Recorder,
                option: str) -> str | None:
        """Evaluate a label source; a raising callable is counted and yields None."""
        if source is None or isinstance(source, str):
            return source
        try:
            value = source(*call.args, **call.kwargs)
        except Exception:
            recorder.callback_error(f"{self.decorator}.{option}")
            return None
        return None if value is None else str(value)

    def internal_error(self, where: str) -> None:
        self.binding.internal_error(f"{self.decorator}.{where}")


# -- instrument_tool ---------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, eq=False)
class _ToolProbe(_TimedProbe):
    """What one decorated tool handler records per call."""

    decorator = "instrument_tool"
    name: str
    explicit_name: bool
    backend: LabelSource
    tool: Callable[..., Any] | None

    def record(self, call: _Call, elapsed: float, result: Any,
               error: BaseException | None) -> None:
        recorder, settings = self.binding.resolve()
        outcome = _tool_outcome(result, error)
        name = self.name
        if self.tool is not None:
            extracted = self.extract(self.tool, call, recorder, "tool")
            if extracted:
                name = extracted
                # The wire layer skips declared names; this call is counted here.
                declare_tool(name)
            elif not self.explicit_name:
                name = ""
        backend = self.extract(self.backend, call, recorder, "backend") or ""
        tool_label = recorder.tool_label(name, TOOL_CALLS)
        backend_label = recorder.guard("backend")(backend, TOOL_CALLS)
        who = identity_label(recorder, TOOL_CALLS, call.identity or "")
        recorder[TOOL_CALLS].labels(tool_label, backend_label, outcome, who).inc()
        recorder[TOOL_DURATION].labels(tool_label, backend_label, outcome).observe(elapsed)
        if settings.audit_log:
            write_audit_line(settings.audit_logger, tool=name, backend=backend,
                             identity=call.identity, outcome=outcome, duration_seconds=elapsed)


@overload
def instrument_tool(func: F, /) -> F: ...


@overload
def instrument_tool(*, name: str | None = None, backend: LabelSource = None,
                    tool: Callable[..., Any] | None = None,
                    registry: CollectorRegistry | None = None,
                    settings: Settings | None = None) -> Callable[[F], F]: ...


def instrument_tool(func: Any = None, /, *, name: str | None = None, backend: LabelSource = None,
                    tool: Callable[..., Any] | None = None,
                    registry: CollectorRegistry | None = None,
                    settings: Settings | None = None) -> Any:
    """Measure a tool handler: calls by tool, backend, outcome and identity, and their duration.

    * ``name``: the tool name; defaults to the function's ``__name__`` (as the ``mcp`` SDK
      names tools) or, above ``@mcp.tool(name=...)``, the name the SDK registered.
    * ``tool``: a callable of the arguments returning the tool name, for a proxy's dispatch
      function that serves many tools.
    * ``backend``: a backend name, or a callable of the arguments returning one.
    * ``registry`` / ``settings``: where to record; resolved on the first call.

    Outcomes: ``ok``; ``tool_error`` when the result reports ``isError``/``is_error``;
    ``error`` when the handler raised (the exception is re-raised unchanged); ``cancelled``
    when the call was cancelled.  Label extractors run when the call has ended, with the
    arguments of the call as the ``def`` declares them: for a method, ``self`` (or ``cls``)
    comes first.
    """
    def decorator(target: Any) -> Any:
        return _instrument_tool(target, name, backend, tool, registry, settings)

    return decorator if func is None else decorator(func)


def _instrument_tool(target: Any, name: str | None, backend: LabelSource,
                     tool: Callable[..., Any] | None, registry: CollectorRegistry | None,
                     settings: Settings | None) -> Any:
    if not callable(target) and not hasattr(target, "__func__"):
        raise TypeError(f"instrument_tool decorates a callable, not {type(target).__name__}")
    frame = _caller_frame()
    try:
        registrations = _sdk_registrations(target, frame)
    finally:
        del frame  # a frame reference kept alive would pin the module's whole namespace
    if name is None and registrations:
        name = str(getattr(registrations[0], "name", "") or "") or None
    explicit = name is not None
    resolved = name if name is not None else _default_name(target)
    if tool is None:
        declare_tool(resolved)
    probe = _ToolProbe(name=resolved, explicit_name=explicit, backend=backend, tool=tool,
                       binding=Binding(registry, settings, layer="tool",
                                       who="instrument_tool()"))
    wrapper = wrap(target, probe)
    for registered in registrations:
        # Above ``@mcp.tool()`` the SDK stored the bare function; hand it the wrapper so that
        # the SDK's own calls are measured.  The wrapper has the same signature and kind,
        # so the SDK's argument handling is unchanged.
        registered.fn = wrapper
    return wrapper


def _caller_frame() -> FrameType | None:
    """The first frame outside this package: where the decorator expression was written."""
    frame = sys._getframe(1)
    while frame is not None and str(frame.f_globals.get("__name__", "")).startswith(
            "asgi_mcp_metrics"):
        frame = frame.f_back  # type: ignore[assignment]
    return frame


def _sdk_registrations(target: Any, frame: FrameType | None) -> list[Any]:
    """Tool records of ``mcp`` servers in the decorating scope that hold ``target`` itself.

    ``@mcp.tool()`` (``MCPServer`` in 2.x, ``FastMCP`` in 1.x) registers the function and
    returns it unchanged, so a decorator written above it receives a function the server
    already holds.  The server object is in the scope where the decorators are written
    (module globals or the enclosing function's locals); its tool manager keeps a
    ``name -> Tool`` dict whose ``fn`` is the function.
    """
    # No SDK server can exist before the SDK is imported: plain functions cost nothing.
    if frame is None or not inspect.isfunction(target) or "mcp" not in sys.modules:
        return []
    found: list[Any] = []
    seen: set[int] = set()
    for namespace in (frame.f_locals, frame.f_globals):
        for value in list(namespace.values()):
            if isinstance(value, _NOT_A_SERVER) or id(value) in seen:
                continue
            seen.add(id(value))
            manager = _static_attribute(value, "_tool_manager")
            tools = _static_attribute(manager, "_tools") if manager is not None else None
            if not isinstance(tools, dict):
                continue
            found.extend(record for record in tools.values()
                         if _static_attribute(record, "fn") is target)
    return found


#: Values of a namespace that cannot be an MCP server object; skipped without a look-up.
_NOT_A_SERVER = (type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType,
                 types.MethodType, str, bytes, int, float, bool, tuple, list, dict, set,
                 frozenset, type(None))


def _static_attribute(obj: Any, name: str) -> Any:
    # getattr_static: looking must not run properties or __getattr__ of arbitrary objects.
    try:
        return inspect.getattr_static(obj, name, None)
    except Exception:
        return None


# -- instrument_acl ----------------------------------------------------------------------------


def is_permission_error(error: BaseException,
                        extra: tuple[type[BaseException], ...] = ()) -> bool:
    """``PermissionError``, one of ``extra``, or any exception whose class name (or a base
    class name) contains "Permission", "Forbidden" or "Denied"."""
    if isinstance(error, (PermissionError, *extra)):
        return True
    return any(word in cls.__name__ for cls in type(error).__mro__ for word in _PERMISSION_WORDS)


_ALLOW_WORDS = frozenset({"allow", "allowed", "grant", "granted", "permit", "permitted",
                          "accept", "accepted", "yes", "true"})
_DENY_WORDS = frozenset({"deny", "denied", "reject", "rejected", "forbid", "forbidden",
                         "refuse", "refused", "block", "blocked", "no", "false"})


def parse_decision(result: Any) -> str:
    """``"allow"`` or ``"deny"`` for the common shapes of an access decision.

    ``bool``; ``None`` (a guard that returns nothing and raises to deny) is allow; a string or
    enum ("allow"/"deny" and synonyms); a mapping or object with ``allowed``, ``allow``,
    ``granted`` (true means allow), ``denied`` (true means deny) or ``decision`` (a string or
    enum).  Anything else counts by its truth value.
    """
    if result is None:
        return "allow"
    if isinstance(result, bool):
        return "allow" if result else "deny"
    word = _decision_word(result)
    if word is not None:
        return word
    for field, allow_when in (("allowed", True), ("allow", True), ("granted", True),
                              ("denied", False)):
        value = _field(result, field)
        if value is not None and not callable(value):
            return "allow" if bool(value) == allow_when else "deny"
    decision = _field(result, "decision")
    if decision is not None:
        if isinstance(decision, bool):
            return "allow" if decision else "deny"
        word = _decision_word(decision)
        if word is not None:
            return word
    return "allow" if bool(result) else "deny"


def _decision_word(value: Any) -> str | None:
    text = value
    if not isinstance(text, str):
        text = getattr(value, "value", None)
        if not isinstance(text, str):
            text = getattr(value, "name", None)
    if not isinstance(text, str):
        return None
    text = text.strip().lower()
    if text in _ALLOW_WORDS:
        return "allow"
    if text in _DENY_WORDS:
        return "deny"
    return None


def _field(obj: Any, name: str) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(name)
    if isinstance(obj, (str, bytes, int, float)):
        return None
    try:
        return getattr(obj, name, None)
    except Exception:
        return None


def _field_text(obj: Any, names: Iterable[str]) -> str | None:
    for name in names:
        value = _field(obj, name)
        if isinstance(value, str) and value:
            return value
    return None


@dataclass(frozen=True, kw_only=True, eq=False)
class _AclProbe(_TimedProbe):
    """What one decorated access-control function records per decision."""

    decorator = "instrument_acl"
    tool: LabelSource
    backend: LabelSource
    identity: LabelSource
    rule: LabelSource
    deny_exceptions: tuple[type[BaseException], ...]

    def record(self, call: _Call, elapsed: float, result: Any,
               error: BaseException | None) -> None:
        if error is not None:
            if not is_permission_error(error, self.deny_exceptions):
                return  # the check itself failed: not a decision
            decision, source = "deny", error
        else:
            decision, source = parse_decision(result), result
        recorder = self.binding.recorder

        def label(option: LabelSource, fields: tuple[str, ...], callback: str) -> str:
            value = self.extract(option, call, recorder, callback)
            if value is None and option is None:
                value = _field_text(source, fields)
            return value or ""

        tool = label(self.tool, ("tool", "tool_name"), "tool")
        backend = label(self.backend, ("backend",), "backend")
        who = label(self.identity, ("identity",), "identity") or call.identity or ""
        rule = label(self.rule, ("rule", "rule_id", "policy"), "rule")
        recorder[ACL_DECISIONS].labels(
            decision, recorder.tool_label(tool, ACL_DECISIONS),
            recorder.guard("backend")(backend, ACL_DECISIONS),
            identity_label(recorder, ACL_DECISIONS, who),
            recorder.guard("rule")(rule, ACL_DECISIONS)).inc()
        recorder[ACL_DURATION].labels(decision).observe(elapsed)


def _zero_decisions(recorder: Recorder) -> None:
    """``allow`` and ``deny`` exist at 0 from binding on, so an alert on a jump sees the first
    one.  They live in the duration histogram, whose only label is the decision: the counter's
    tool, backend, identity and rule are not known before a decision is made."""
    family = recorder[ACL_DURATION]
    for decision in ("allow", "deny"):
        family.labels(decision)


@overload
def instrument_acl(func: F, /) -> F: ...


@overload
def instrument_acl(*, tool: LabelSource = None, backend: LabelSource = None,
                   identity: LabelSource = None, rule: LabelSource = None,
                   deny_exceptions: tuple[type[BaseException], ...] = (),
                   registry: CollectorRegistry | None = None,
                   settings: Settings | None = None) -> Callable[[F], F]: ...


def instrument_acl(func: Any = None, /, *, tool: LabelSource = None, backend: LabelSource = None,
                   identity: LabelSource = None, rule: LabelSource = None,
                   deny_exceptions: tuple[type[BaseException], ...] = (),
                   registry: CollectorRegistry | None = None,
                   settings: Settings | None = None) -> Any:
    """Record the decisions of an access-control function in ``mcp_acl_decisions_total``.

    The decision is read from what the function returns (see :func:`parse_decision`) or, when
    it raises a permission error (see :func:`is_permission_error`; add your own classes with
    ``deny_exceptions``), is ``deny`` and the exception is re-raised unchanged.  Other
    exceptions are not decisions: re-raised, not recorded.

    ``tool``, ``backend``, ``identity`` and ``rule`` are constants or callables of the
    function's arguments (for a method, ``self`` first).  Without one, the value is read from
    the result (or the exception) when it has a field of that name (``tool``/``tool_name``,
    ``backend``, ``identity``, ``rule``/``rule_id``/``policy``); identity falls back to the
    current request's identity.

    The ``allow`` and ``deny`` series are created at 0 as soon as the registry is bound: at
    decoration when ``settings`` is given or the app already configured the registry,
    otherwise when it does (or at the first decision, whichever comes first).
    """
    def decorator(target: Any) -> Any:
        binding = Binding(registry, settings, on_bind=_zero_decisions, layer="acl",
                          who="instrument_acl()")
        probe = _AclProbe(tool=tool, backend=backend, identity=identity, rule=rule,
                          deny_exceptions=tuple(deny_exceptions), binding=binding)
        return wrap(target, probe)

    return decorator if func is None else decorator(func)

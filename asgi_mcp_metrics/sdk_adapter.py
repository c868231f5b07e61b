"""Adapters for the official ``mcp`` SDK (2.x): server middleware and client sessions.

``MetricsServerMiddleware`` joins the SDK's server middleware chain, so a server on any
transport (stdio included) gets per-operation metrics without the HTTP middleware:

.. code-block:: python

    from mcp.server.mcpserver import MCPServer
    from asgi_mcp_metrics.sdk_adapter import MetricsServerMiddleware

    mcp = MCPServer("demo", middleware=[MetricsServerMiddleware()])
    # or: mcp.middleware.append(MetricsServerMiddleware())

Over HTTP behind :class:`~asgi_mcp_metrics.middleware.MetricsMiddleware` the wire layer already
records these operations.  ``MetricsMiddleware`` marks every request scope with
``scope["asgi_mcp_metrics.observed"] = True``; when the SDK middleware sees that marker on
``ctx.request.scope`` it records nothing, so nothing is counted twice.  In both cases it
publishes the request's identity (from ``ctx.request.scope``, when no identity is set yet) and
W3C trace context (from ``_meta.traceparent`` or the ``traceparent`` header) for the tool
decorator and the audit log.

``instrument_client_session`` times a proxy's calls to one backend
(``mcp_client_operation_duration_seconds``) by wrapping the session's ``send_request``, which
``call_tool``, ``list_tools`` and every other request go through.

Nothing here imports ``mcp`` at module level; the SDK's classes are recognised by shape.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from contextvars import Token
from time import perf_counter
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry

from ._binding import Binding
from ._outcomes import error_type_of, is_cancellation, is_tool_error
from ._wrapping import probe_of, wrap
from .backends import BackendMonitor
from .config import Settings, configure
from .identity import current_identity, reset_identity, resolve_identity, set_identity
from .mcp.operations import Operation
from .mcp.recording import McpRecording
from .mcp.wire.jsonrpc import listed_names
from .mcp.wire.vocabulary import error_code_label, method_label, version_label
from .trace_context import reset_traceparent, set_traceparent, traceparent_from_scope

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from .config import ServerOptions

__all__ = ["OBSERVED_KEY", "MetricsServerMiddleware", "instrument_client_session"]

#: Scope key ``MetricsMiddleware`` sets on every request it measures.
OBSERVED_KEY = "asgi_mcp_metrics.observed"

_INVALID_PARAMS = -32602
_INTERNAL_ERROR = -32603


def _outcome(result: Any, error: BaseException | None) -> tuple[str, str]:
    """``(outcome, error_type)`` of one request as the middleware saw it end."""
    if error is not None:
        if is_cancellation(error):
            return "cancelled", "cancelled"
        code = getattr(getattr(error, "error", None), "code", None)
        if isinstance(code, int) and not isinstance(code, bool):
            return "error", error_code_label(code)
        if type(error).__name__ == "ValidationError":  # pydantic: the SDK answers -32602
            return "error", error_code_label(_INVALID_PARAMS)
        return "error", error_code_label(_INTERNAL_ERROR)
    if is_tool_error(result):
        return "tool_error", "tool_error"
    if isinstance(result, Mapping) and result.get("resultType") == "input_required":
        return "input_required", ""
    return "ok", ""


def _transport_of(scope: Mapping[str, Any] | None) -> str:
    if scope is None:
        return "stdio"
    # The legacy HTTP+SSE transport posts messages to an endpoint carrying ?session_id=.
    return "sse" if b"session_id=" in scope.get("query_string", b"") else "streamable_http"


def _traceparent(ctx: Any, scope: Mapping[str, Any] | None) -> str | None:
    meta = getattr(ctx, "meta", None)
    value = None
    if isinstance(meta, Mapping):
        value = meta.get("traceparent")
    elif meta is not None:
        value = getattr(meta, "traceparent", None)
    if isinstance(value, str):
        return value
    return traceparent_from_scope(scope) if scope is not None else None


class _Request:
    __slots__ = ("method", "name", "observed", "scope", "started", "version")

    def __init__(self, ctx: Any) -> None:
        self.started = perf_counter()
        self.method: str = ctx.method
        request = getattr(ctx, "request", None)
        scope = getattr(request, "scope", None)
        self.scope: Mapping[str, Any] | None = scope if isinstance(scope, Mapping) else None
        self.observed = self.scope is not None and self.scope.get(OBSERVED_KEY) is True
        params = ctx.params if isinstance(ctx.params, Mapping) else {}
        name = params.get("name")
        self.name: str | None = name if isinstance(name, str) else None
        self.version: str = getattr(ctx, "protocol_version", "") or ""


class MetricsServerMiddleware:
    """Per-operation metrics from inside the ``mcp`` 2.x server, for every transport.

    Records ``mcp_server_operation_duration_seconds``, ``mcp_server_requests_total`` and
    ``mcp_server_notifications_total``, learns tool names from ``tools/list`` results, and
    counts ``mcp_tool_calls_total`` for tools not declared with ``@instrument_tool`` (those
    count themselves).  Records nothing for requests the HTTP middleware already observes.

    ``transport`` overrides the transport label (default: ``stdio`` without an HTTP request,
    else ``streamable_http`` or ``sse``).  Options: the ones that shape the metrics (as for
    ``MetricsMiddleware``) and ``identity``/``identity_resolver``; any other raises ``TypeError``.
    """

    def __init__(self, *, registry: CollectorRegistry | None = None,
                 settings: Settings | None = None, transport: str | None = None,
                 **options: Unpack[ServerOptions]) -> None:
        # Without options it joins the app's binding; with them it configures its own.
        configured = (configure(settings, options, "MetricsServerMiddleware()")
                      if settings is not None or options else None)
        self._binding = Binding(registry, configured, layer="mcp",
                                who="MetricsServerMiddleware()")
        self._bound_recording: McpRecording | None = None
        self.transport = transport

    async def __call__(self, ctx: Any, call_next: Callable[[Any], Awaitable[Any]]) -> Any:
        try:
            request: _Request | None = _Request(ctx)
        except Exception:
            self._internal_error("sdk_middleware.start")
            request = None
        if request is None:
            return await call_next(ctx)
        identity_token, trace_token = self._publish(ctx, request)
        error: BaseException | None = None
        result: Any = None
        try:
            result = await call_next(ctx)
            return result
        except BaseException as exc:
            error = exc
            raise
        finally:
            if identity_token is not None:
                reset_identity(identity_token)
            if trace_token is not None:
                reset_traceparent(trace_token)
            if not request.observed:
                try:
                    self._record(ctx, request, result, error)
                except Exception:
                    self._internal_error("sdk_middleware.record")

    def _publish(self, ctx: Any, request: _Request) -> tuple[Token[Any] | None,
                                                             Token[str | None] | None]:
        """Identity and trace context for the code the request runs (decorators, audit)."""
        identity_token: Token[Any] | None = None
        trace_token: Token[str | None] | None = None
        try:
            recorder, settings = self._binding.resolve()
            if request.scope is not None and current_identity() is None:
                identity = resolve_identity(request.scope, settings, recorder=recorder)
                if identity is not None:
                    identity_token = set_identity(identity)
            traceparent = _traceparent(ctx, request.scope)
            if traceparent is not None:
                trace_token = set_traceparent(traceparent)
        except Exception:
            self._internal_error("sdk_middleware.publish")
        return identity_token, trace_token

    def _record(self, ctx: Any, request: _Request, result: Any,
                error: BaseException | None) -> None:
        ended = perf_counter()
        recording = self._recording()
        if getattr(ctx, "request_id", None) is None:
            recording.notification(request.method, "in")
            return
        outcome, error_type = _outcome(result, error)
        method = request.method
        operation = Operation(
            id_key=None, method=method_label(method),
            tool=(request.name or "") if method == "tools/call" else None,
            prompt=request.name if method == "prompts/get" else None,
            version=version_label(request.version),
            transport=self.transport or _transport_of(request.scope),
            identity=recording.identity() if method == "tools/call" else "",
            started=request.started)
        listed = result if isinstance(result, Mapping) else {}
        recording.answered(operation, outcome, error_type, ended,
                           tool_names=listed_names(listed.get("tools")) or (),
                           prompt_names=listed_names(listed.get("prompts")) or ())

    def _recording(self) -> McpRecording:
        """The recording of the bound recorder: the same rules as the wire's."""
        recorder = self._binding.recorder
        recording = self._bound_recording
        if recording is None or recording.recorder is not recorder:
            recording = self._bound_recording = McpRecording(recorder)
        return recording

    def _internal_error(self, where: str) -> None:
        self._binding.internal_error(where)


class _SessionProbe:
    """Times ``ClientSession.send_request`` per method (and tool, for ``tools/call``)."""

    def __init__(self, monitor: BackendMonitor) -> None:
        self.monitor = monitor

    def begin(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        # args: (session, request, result_type, ...) - the wrapped send_request is bound.
        request = args[1] if len(args) > 1 else kwargs.get("request")
        method = getattr(request, "method", None)
        tool = None
        if method == "tools/call":
            name = getattr(getattr(request, "params", None), "name", None)
            tool = name if isinstance(name, str) else None
        return (perf_counter(), method if isinstance(method, str) else "", tool)

    def end(self, state: Any, result: Any, error: BaseException | None) -> None:
        started, method, tool = state
        if error is not None:
            error_type = error_type_of(error)
        else:
            error_type = "tool_error" if is_tool_error(result) else ""
        self.monitor.observe_call(method, tool, error_type, perf_counter() - started)

    def internal_error(self, where: str) -> None:
        self.monitor._internal_error(f"client_session.{where}")


def instrument_client_session(session: Any, backend: str | BackendMonitor, *,
                              transport: str = "", registry: CollectorRegistry | None = None,
                              settings: Settings | None = None) -> Any:
    """Time every request ``session`` (an ``mcp`` ``ClientSession``) sends to ``backend``.

    Wraps the session's ``send_request`` on this instance only; ``call_tool``, ``list_tools``,
    ``read_resource`` ... all go through it.  ``error_type`` is the JSON-RPC code of an error
    response, ``timeout``, ``tool_error`` for a ``CallToolResult`` with ``is_error``, or the
    exception's class name.  Instrumenting a session twice keeps the first instrumentation.
    Returns the session.  For the high-level ``mcp.Client``, pass ``client.session``.
    """
    if probe_of(getattr(session, "__dict__", {}).get("send_request")) is not None:
        return session
    monitor = backend if isinstance(backend, BackendMonitor) else BackendMonitor(
        backend, transport=transport, registry=registry, settings=settings)
    session.send_request = wrap(session.send_request, _SessionProbe(monitor))
    return session

"""Adapter for FastMCP 4.x (the ``fastmcp`` package): a native FastMCP middleware.

Over HTTP a FastMCP server needs nothing but the ASGI middleware, the one-line way::

    from asgi_mcp_metrics.starlette import instrument

    app = instrument(mcp.http_app())

For stdio (or any transport without our HTTP middleware) add the FastMCP middleware::

    from asgi_mcp_metrics.fastmcp_adapter import FastMCPMetricsMiddleware

    mcp.add_middleware(FastMCPMetricsMiddleware())

It records what :class:`~asgi_mcp_metrics.sdk_adapter.MetricsServerMiddleware` records, through
the same code: operations, requests by outcome, notifications and tool calls.  With both present
each call is recorded once: a message whose HTTP request ``MetricsMiddleware`` observes (the
``asgi_mcp_metrics.observed`` scope marker) is left to the wire.

FastMCP runs a middleware's ``__call__`` once per inbound message (its "outer" pass for the
messages the component dispatch never sees, the full pass for the rest), so overriding
``__call__`` rather than the per-method hooks counts every message exactly once.  A tool's
failure reaches the middleware as ``ToolError`` (or ``NotFoundError`` for an unknown tool);
FastMCP answers both with ``isError: true``, so they count as ``tool_error``, as on the wire.

Nothing here imports ``fastmcp`` at module level; FastMCP accepts any object with this
``__call__``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from .sdk_adapter import MetricsServerMiddleware, _outcome, _Request

__all__ = ["FastMCPMetricsMiddleware"]

#: FastMCP's exceptions that it answers with a ``CallToolResult`` carrying ``isError: true``.
_TOOL_ERRORS = frozenset({"ToolError", "NotFoundError", "DisabledError"})


def _read(context: Any) -> _Request:
    """The message of a FastMCP ``MiddlewareContext``."""
    message = context.message
    # The component dispatch hands over the request's params (``CallToolRequestParams``), the
    # outer pass the whole request.
    params = getattr(message, "params", message)
    if isinstance(message, Mapping):
        params = message.get("params", message)
    fastmcp_context = getattr(context, "fastmcp_context", None)
    request_context = getattr(fastmcp_context, "request_context", None)
    return _Request(method=context.method or "", params=params,
                    request=getattr(request_context, "request", None) or _http_request(),
                    version=getattr(request_context, "protocol_version", None),
                    notification=context.type == "notification",
                    meta=getattr(request_context, "meta", None))


def _http_request() -> Any:
    """FastMCP's current HTTP request (set before its request context exists); None on stdio."""
    from fastmcp.server.dependencies import get_http_request

    try:
        return get_http_request()
    except RuntimeError:
        return None


class FastMCPMetricsMiddleware(MetricsServerMiddleware):
    """Per-operation metrics from inside a FastMCP 4.x server, for every transport.

    Options as for :class:`~asgi_mcp_metrics.sdk_adapter.MetricsServerMiddleware`.
    """

    async def __call__(self, context: Any, call_next: Callable[[Any], Awaitable[Any]]) -> Any:
        return await self._measure(context, call_next, _read)

    def _outcome(self, result: Any, error: BaseException | None) -> tuple[str, str]:
        if error is not None and any(cls.__name__ in _TOOL_ERRORS and
                                     cls.__module__.startswith("fastmcp")
                                     for cls in type(error).__mro__):
            return "tool_error", "tool_error"
        return _outcome(result, error)

    def _listed(self, method: str, result: Any) -> tuple[Iterable[str], Iterable[str]]:
        # FastMCP hands its middleware lists of components, not the wire's result.
        if isinstance(result, (list, tuple)):
            names = [name for item in result
                     if isinstance(name := getattr(item, "name", None), str)]
            if method == "tools/list":
                return names, ()
            if method == "prompts/list":
                return (), names
        return super()._listed(method, result)

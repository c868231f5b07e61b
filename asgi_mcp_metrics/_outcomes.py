"""How a call ended, in label values: tool errors in results, cancellations, timeouts."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any


def is_tool_error(result: Any) -> bool:
    """True for a result that reports a failed tool call (``isError`` / ``is_error`` true).

    Dicts (the wire form) and objects with the attribute: the ``mcp`` SDK's ``CallToolResult``
    has ``is_error``, 1.x and other libraries ``isError``.  Only a real ``True`` counts, so a
    mock or a truthy non-bool never does.
    """
    if result is None or isinstance(result, (str, bytes, int, float, list, tuple)):
        return False
    if isinstance(result, Mapping):
        return result.get("isError") is True or result.get("is_error") is True
    # The first field present decides: FastMCP keeps ``isError`` as a deprecated alias that
    # warns when read.
    for field in ("is_error", "isError"):
        try:
            value = getattr(result, field, None)
        except Exception:  # a property that raises is not our business
            return False
        if value is not None:
            return value is True
    return False


def is_cancellation(error: BaseException) -> bool:
    # anyio on asyncio cancels with CancelledError; trio's exception is named Cancelled.
    return isinstance(error, asyncio.CancelledError) or type(error).__name__ == "Cancelled"


def is_timeout(error: BaseException) -> bool:
    return isinstance(error, TimeoutError) or "Timeout" in type(error).__name__


def error_type_of(error: BaseException) -> str:
    """The ``error_type`` label of a failed call.

    The JSON-RPC code of an ``mcp`` ``MCPError`` (``"-32602"``; codes outside the known set
    are ``_OTHER``), ``timeout`` for timeouts,
    ``cancelled`` for cancellation, else the exception's class name.
    """
    code = getattr(getattr(error, "error", None), "code", None)
    if code is None:
        code = getattr(error, "code", None)
    if isinstance(code, int) and not isinstance(code, bool):
        from .mcp.wire.vocabulary import error_code_label  # codes come from the peer: bounded

        return error_code_label(code)
    if is_timeout(error):
        return "timeout"
    if is_cancellation(error):
        return "cancelled"
    return type(error).__qualname__

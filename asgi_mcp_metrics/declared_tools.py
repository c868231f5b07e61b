"""Tool names the code has declared (through ``instrument_tool``), process-wide.

Decorators run at import time, before any registry or recorder exists, so the names they
declare are kept here; every recorder treats them as known label values.
"""

from __future__ import annotations

import threading

_declared_tools: set[str] = set()
_lock = threading.Lock()
#: Declared names are written by code, not by clients, but a loop that decorates on the fly
#: must not grow this without limit either.
MAX_DECLARED_TOOLS = 10_000


def declare_tool(name: str) -> None:
    with _lock:
        if len(_declared_tools) < MAX_DECLARED_TOOLS:
            _declared_tools.add(name)


def is_declared_tool(name: str) -> bool:
    return name in _declared_tools

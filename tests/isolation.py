"""Test isolation for process-wide state of the in-code layer.

Tool names declared by ``@instrument_tool`` are process-wide (the wire layer leaves calls of
declared tools to their decorator), so a test that decorates ``add`` would change how another
test's wire-only ``add`` is counted.  Importing this fixture into a test module gives every test
there a private copy of the declared names.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from asgi_mcp_metrics import known


@pytest.fixture(autouse=True)
def declared_tools_restored(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(known, "_known_tools", set(known._known_tools))
    yield

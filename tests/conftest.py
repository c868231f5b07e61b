from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def registry() -> CollectorRegistry:
    """A fresh registry per test, so counts start at zero."""
    return CollectorRegistry()


@pytest.fixture(autouse=True)
def _declared_tools_restored(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tool names declared by ``@instrument_tool`` are process-wide; each test gets its own."""
    from asgi_mcp_metrics import known

    monkeypatch.setattr(known, "_known_tools", set(known._known_tools))


@pytest.fixture(autouse=True)
def _no_config_from_environment(monkeypatch: pytest.MonkeyPatch,
                                tmp_path_factory: pytest.TempPathFactory) -> None:
    """Keep the developer's environment and pyproject.toml out of the tests' settings."""
    import os

    for key in list(os.environ):
        if key.startswith("ASGI_MCP_METRICS_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))

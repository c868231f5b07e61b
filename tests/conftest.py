from __future__ import annotations

import sys
import time

import pytest
from prometheus_client import CollectorRegistry

from .helpers import FakeClock


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def registry() -> CollectorRegistry:
    """A fresh registry per test, so counts start at zero."""
    return CollectorRegistry()


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """Time stands still in the library until the test advances it: no sleeps, exact buckets.

    Every module of the package that times something with ``perf_counter`` gets the same clock,
    so a request that crosses several of them (middleware, MCP tracker, sessions) is measured
    with one time line.
    """
    fake = FakeClock()
    for name, module in list(sys.modules.items()):
        if (name.partition(".")[0] == "asgi_mcp_metrics"
                and getattr(module, "perf_counter", None) is time.perf_counter):
            monkeypatch.setattr(module, "perf_counter", fake)
    return fake


@pytest.fixture(autouse=True)
def _declared_tools_restored(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tool names declared by ``@instrument_tool`` are process-wide; each test gets its own."""
    from asgi_mcp_metrics import declared_tools

    monkeypatch.setattr(declared_tools, "_declared_tools", set(declared_tools._declared_tools))


@pytest.fixture(autouse=True)
def _no_config_from_environment(monkeypatch: pytest.MonkeyPatch,
                                tmp_path_factory: pytest.TempPathFactory) -> None:
    """Keep the developer's environment and pyproject.toml out of the tests' settings."""
    import os

    for key in list(os.environ):
        if key.startswith("ASGI_MCP_METRICS_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))


pytest_plugins = ["pytester", "tests.e2e_marker"]

"""``BackendMonitor``: connections, lifetimes, client calls, tool cache, child processes."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from typing import Any

import pytest
from mcp.shared.exceptions import MCPError
from mcp_types import CallToolResult, TextContent
from prometheus_client import CollectorRegistry, generate_latest

from asgi_mcp_metrics.backends import BackendMonitor
from asgi_mcp_metrics.config import Settings
from tests.asgi import total, value
from tests.helpers import FakeClock, client_operations

pytestmark = pytest.mark.anyio


@pytest.fixture
def monitor(registry: CollectorRegistry) -> BackendMonitor:
    return BackendMonitor("github", transport="streamable_http", registry=registry,
                          settings=Settings())


def up(registry: CollectorRegistry, backend: str = "github",
       transport: str = "streamable_http") -> float | None:
    return registry.get_sample_value("mcp_backend_up", {"backend": backend,
                                                        "transport": transport})


def connects(registry: CollectorRegistry, trigger: str, outcome: str) -> float:
    return value(registry, "mcp_backend_connects_total", backend="github", trigger=trigger,
                 outcome=outcome)


# -- connections -----------------------------------------------------------------------------


def test_configured_backend_is_visible_down_before_connecting(registry: CollectorRegistry,
                                                              monitor: BackendMonitor) -> None:
    assert up(registry) == 0


def test_connect_lifetime_and_disconnect(registry: CollectorRegistry, monitor: BackendMonitor,
                                         clock: FakeClock) -> None:
    with monitor.connect(trigger="startup"):
        clock.advance(0.2)
    assert connects(registry, "startup", "ok") == 1
    assert up(registry) == 1
    connect_bucket = "mcp_backend_connect_duration_seconds_bucket"
    assert value(registry, connect_bucket, backend="github", le="0.1") == 0
    assert value(registry, connect_bucket, backend="github", le="0.25") == 1

    clock.advance(120)
    monitor.disconnected(reason="idle_reaped")
    assert up(registry) == 0
    assert value(registry, "mcp_backend_disconnects_total", backend="github",
                 reason="idle_reaped") == 1
    lifetime = {"backend": "github", "transport": "streamable_http", "end_reason": "idle_reaped"}
    assert value(registry, "mcp_client_session_duration_seconds_sum",
                 **lifetime) == pytest.approx(120)
    assert value(registry, "mcp_client_session_duration_seconds_bucket", le="60.0",
                 **lifetime) == 0
    assert value(registry, "mcp_client_session_duration_seconds_bucket", le="300.0",
                 **lifetime) == 1


async def test_async_connect_failures_by_kind(registry: CollectorRegistry,
                                              monitor: BackendMonitor) -> None:
    with pytest.raises(ConnectionRefusedError):
        async with monitor.connect(trigger="lazy"):
            raise ConnectionRefusedError
    with pytest.raises(TimeoutError):
        async with monitor.connect(trigger="reconnect"):
            raise TimeoutError
    async with monitor.connect(trigger="reconnect"):
        pass
    assert connects(registry, "lazy", "error") == 1
    assert connects(registry, "reconnect", "timeout") == 1
    assert connects(registry, "reconnect", "ok") == 1
    assert up(registry) == 1


def test_pool_with_several_connections_is_up_until_the_last_closes(
        registry: CollectorRegistry, monitor: BackendMonitor) -> None:
    monitor.connected("startup")
    monitor.connected("startup")
    monitor.disconnected("remote_closed")
    assert up(registry) == 1
    monitor.disconnected("shutdown")
    assert up(registry) == 0
    monitor.disconnected("shutdown")  # nothing open: ignored
    assert total(registry, "mcp_backend_disconnects_total") == 2
    assert monitor.open_connections == 0


# -- client calls ------------------------------------------------------------------------------


def test_call_context_manager_records_method_tool_and_error_type(
        registry: CollectorRegistry, monitor: BackendMonitor, clock: FakeClock) -> None:
    with monitor.call("tools/call", tool="undeclared_search") as call:
        clock.advance(0.03)
        call.result(CallToolResult(content=[TextContent(type="text", text="x")], is_error=True))
    with pytest.raises(MCPError), monitor.call("tools/call", tool="undeclared_search"):
        raise MCPError(code=-32602, message="Unknown tool")
    with monitor.call("tools/list"):
        clock.advance(0.5)
    with pytest.raises(MCPError), monitor.call("tools/list"):
        raise MCPError(code=-31999, message="odd")

    # The tool name is not declared anywhere: not a label value.
    assert client_operations(registry, "github", "tools/call", tool="_OTHER",
                             error_type="tool_error") == 1
    assert client_operations(registry, "github", "tools/call", tool="_OTHER",
                             error_type="-32602") == 1
    assert client_operations(registry, "github", "tools/list") == 1
    assert client_operations(registry, "github", "tools/list", error_type="_OTHER") == 1
    assert value(registry, "mcp_client_operation_duration_seconds_sum", backend="github",
                 mcp_method_name="tools/list", gen_ai_tool_name="",
                 error_type="") == pytest.approx(0.5)


async def test_call_as_a_decorator_of_an_async_function(registry: CollectorRegistry,
                                                        monitor: BackendMonitor) -> None:
    monitor.tools_discovered(["get_issue"])

    @monitor.call("tools/call", tool="get_issue")
    async def get_issue(number: int) -> dict[str, Any]:
        if number < 0:
            raise TimeoutError
        return {"content": [], "isError": number == 0}

    assert (await get_issue(1))["isError"] is False
    await get_issue(0)
    with pytest.raises(TimeoutError):
        await get_issue(-1)
    for error_type in ("", "tool_error", "timeout"):
        assert client_operations(registry, "github", "tools/call", tool="get_issue",
                                 error_type=error_type) == 1


# -- tool cache --------------------------------------------------------------------------------


def test_tool_cache_size_is_read_at_scrape_time(registry: CollectorRegistry) -> None:
    settings = Settings()
    github = BackendMonitor("github", registry=registry, settings=settings)
    files = BackendMonitor("files", registry=registry, settings=settings)
    github_cache: dict[str, object] = {"a": 1, "b": 2}
    files_cache: list[str] = []
    github.track_tool_cache(lambda: len(github_cache))
    files.track_tool_cache(files_cache.__len__)

    def entries(backend: str) -> float | None:
        return registry.get_sample_value("mcp_tool_cache_entries", {"backend": backend})

    assert entries("github") == 2
    assert entries("files") == 0
    github_cache["c"] = 3
    files_cache.extend(["x", "y", "z", "w"])
    assert entries("github") == 3
    assert entries("files") == 4


def test_failing_cache_callback_keeps_the_last_value(registry: CollectorRegistry,
                                                     monitor: BackendMonitor) -> None:
    sizes: list[Any] = [5, RuntimeError("cache locked")]

    def size() -> int:
        item = sizes.pop(0) if len(sizes) > 1 else sizes[0]
        if isinstance(item, Exception):
            raise item
        return int(item)

    monitor.track_tool_cache(size)
    assert registry.get_sample_value("mcp_tool_cache_entries", {"backend": "github"}) == 5
    # The scrape still succeeds: the endpoint must never fail because of a callback.
    assert b"mcp_tool_cache_entries" in generate_latest(registry)
    assert registry.get_sample_value("mcp_tool_cache_entries", {"backend": "github"}) == 5
    assert value(registry, "asgi_mcp_metrics_callback_errors_total",
                 callback="track_tool_cache") >= 1


def test_cache_lookups(registry: CollectorRegistry, monitor: BackendMonitor) -> None:
    monitor.cache_hit()
    monitor.cache_hit()
    monitor.cache_miss()
    monitor.cache_stale()
    for result, expected in (("hit", 2), ("miss", 1), ("stale", 1)):
        assert value(registry, "mcp_tool_cache_requests_total", backend="github",
                     result=result) == expected


# -- child processes ---------------------------------------------------------------------------


def exits(registry: CollectorRegistry, kind: str) -> float:
    return value(registry, "mcp_backend_process_exits_total", backend="github", kind=kind)


def running(registry: CollectorRegistry) -> float:
    return value(registry, "mcp_backend_processes", backend="github")


def test_process_exit_kinds(registry: CollectorRegistry, monitor: BackendMonitor) -> None:
    for pid in (101, 102, 103):
        monitor.process_started(pid)
    monitor.process_started(101)  # the same process again: one start
    assert running(registry) == 3
    monitor.process_exited(0, pid=101)
    monitor.process_exited(2, pid=102)
    monitor.process_exited(-signal.SIGKILL, pid=103)
    monitor.process_exited(0, pid=103)  # reported twice: once
    monitor.process_exited(0, pid=999)  # never started here: ignored
    assert value(registry, "mcp_backend_process_starts_total", backend="github") == 3
    assert exits(registry, "clean") == 1
    assert exits(registry, "nonzero") == 1
    assert exits(registry, "signal") == 1
    assert running(registry) == 0


def test_watch_a_popen_child(registry: CollectorRegistry, monitor: BackendMonitor) -> None:
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.exit(3)"])
    watcher = monitor.watch_process(child)
    assert value(registry, "mcp_backend_process_starts_total", backend="github") == 1
    watcher.join(timeout=30)  # type: ignore[union-attr]
    assert exits(registry, "nonzero") == 1
    assert running(registry) == 0


async def test_watch_an_asyncio_child_killed_by_a_signal(registry: CollectorRegistry,
                                                         monitor: BackendMonitor) -> None:
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "import time; time.sleep(60)")
    watcher = monitor.watch_process(child)
    assert running(registry) == 1
    child.send_signal(signal.SIGTERM)
    await asyncio.wait_for(watcher, timeout=30)  # type: ignore[arg-type]
    assert exits(registry, "signal") == 1
    assert running(registry) == 0


async def test_watch_a_clean_exit(registry: CollectorRegistry, monitor: BackendMonitor) -> None:
    child = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
    await asyncio.wait_for(monitor.watch_process(child), timeout=30)  # type: ignore[arg-type]
    assert exits(registry, "clean") == 1


def test_many_backends_beyond_the_cap_share_other(registry: CollectorRegistry) -> None:
    settings = Settings(max_label_values=2)
    monitors = [BackendMonitor(f"b{i}", registry=registry, settings=settings) for i in range(3)]
    for monitor in monitors:
        monitor.cache_hit()
    assert value(registry, "mcp_tool_cache_requests_total", backend="b0", result="hit") == 1
    assert value(registry, "mcp_tool_cache_requests_total", backend="b1", result="hit") == 1
    assert value(registry, "mcp_tool_cache_requests_total", backend="_OTHER", result="hit") == 1

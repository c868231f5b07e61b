"""The example proxy (``examples/mcp_proxy``) driven by real MCP clients over real HTTP.

An HTTP backend and a stdio child backend behind the proxy; three clients with different
identities; an idle reap and lazy reconnects.  Every question of the proxy operators' issue is
answered from the proxy's ``/metrics`` scrape, with exact values.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from examples.mcp_proxy.app import ProxyConfig, build_proxy, default_backends
from examples.mcp_proxy.weather_server import build_weather_app
from tests.asgi import total
from tests.e2e.servers import serve
from tests.helpers import FakeClock

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

IDLE_TIMEOUT = 30.0
POLL_TIMEOUT = 20.0


class Metrics:
    """One scrape of ``/metrics``, parsed."""

    def __init__(self, text: str) -> None:
        self.samples: list[tuple[str, dict[str, str], float]] = [
            (sample.name, sample.labels, sample.value)
            for family in text_string_to_metric_families(text) for sample in family.samples]

    def __call__(self, name: str, **labels: str) -> float:
        """Sum of the samples called ``name`` whose labels include ``labels``."""
        return sum(value for sample, sample_labels, value in self.samples
                   if sample == name and all(sample_labels.get(k) == v
                                             for k, v in labels.items()))

    def has(self, name: str, **labels: str) -> bool:
        return any(sample == name and sample_labels == labels
                   for sample, sample_labels, _ in self.samples)


def scrape(base_url: str) -> Metrics:
    response = httpx.get(f"{base_url}/metrics", timeout=10)
    response.raise_for_status()
    return Metrics(response.text)


def wait_for(base_url: str, condition: Callable[[Metrics], bool]) -> Metrics:
    """Scrape until ``condition`` holds: the reaper and process exits run on their own."""
    deadline = time.monotonic() + POLL_TIMEOUT
    while True:
        metrics = scrape(base_url)
        if condition(metrics):
            return metrics
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached; last scrape:\n" + "\n".join(
                f"{name}{labels} {value}" for name, labels, value in metrics.samples
                if "backend" in name))
        time.sleep(0.02)


@asynccontextmanager
async def client(url: str, identity: str | None) -> AsyncIterator[Client]:
    headers = {"X-Client-Id": identity} if identity else {}
    # A generous read timeout: a lazy connect starts a child process, slow on a loaded machine.
    async with httpx2.AsyncClient(headers=headers, timeout=60) as http, \
            Client(streamable_http_client(url, http_client=http), mode="legacy") as session:
        # Every client lists first, as MCP clients do; later calls then never list implicitly.
        await session.list_tools()
        yield session


async def call(session: Client, tool: str, **arguments: Any) -> bool:
    """Call a tool; True when the result is a tool error."""
    return (await session.call_tool(tool, arguments)).is_error


async def test_proxy_metrics_answer_the_operators_questions(registry: CollectorRegistry) -> None:
    clock = FakeClock(0.0)  # the pool's idea of time: the test decides idleness, no sleeping
    with serve(build_weather_app()) as weather_url:
        config = ProxyConfig(backends=default_backends(f"{weather_url}/mcp"),
                             idle_timeout=IDLE_TIMEOUT, reap_interval=0.02, clock=clock)
        with serve(build_proxy(config, registry=registry)) as proxy_url:
            mcp_url = f"{proxy_url}/mcp"
            before = scrape(proxy_url)
            # Configured backends are visible (down) before anyone calls; ACL series exist.
            assert before("mcp_backend_up") == 0
            assert before.has("mcp_backend_up", backend="notes", transport="stdio")
            assert before.has("mcp_backend_up", backend="weather", transport="streamable_http")
            for decision in ("allow", "deny"):
                assert before.has("mcp_acl_decision_duration_seconds_count", decision=decision)
                assert before("mcp_acl_decision_duration_seconds_count", decision=decision) == 0

            async with client(mcp_url, "analyst") as analyst:
                for _ in range(3):
                    assert not await call(analyst, "get_forecast", city="paris")
                assert await call(analyst, "get_alerts", region="mars")
                assert not await call(analyst, "read_note", name="todo")
                assert not await call(analyst, "read_note", name="ideas")
                assert await call(analyst, "read_note", name="nope")
                assert await call(analyst, "delete_note", name="todo")  # denied
            async with client(mcp_url, "ops") as ops:
                assert not await call(ops, "delete_note", name="ideas")
                with pytest.raises(MCPError):
                    await call(ops, "no_such_tool")
            async with client(mcp_url, None) as anonymous:
                assert await call(anonymous, "get_forecast", city="oslo")  # denied

            m = scrape(proxy_url)
            # -- throughput by backend, tool and identity --------------------------------------
            calls = "mcp_tool_calls_total"
            assert m(calls, backend="weather", gen_ai_tool_name="get_forecast",
                     identity="analyst", outcome="ok") == 3
            assert m(calls, backend="weather", gen_ai_tool_name="get_alerts",
                     outcome="tool_error") == 1
            assert m(calls, backend="notes", gen_ai_tool_name="read_note", outcome="ok") == 2
            assert m(calls, backend="notes", gen_ai_tool_name="read_note",
                     outcome="tool_error") == 1
            assert m(calls, backend="notes", gen_ai_tool_name="delete_note",
                     identity="analyst", outcome="error") == 1
            assert m(calls, backend="notes", gen_ai_tool_name="delete_note", identity="ops",
                     outcome="ok") == 1
            assert m(calls, backend="weather", identity="", outcome="error") == 1
            # The unknown tool never reached a backend: counted once, by the wire layer.
            assert m(calls, backend="", identity="ops", outcome="error") == 1
            assert m(calls) == 11
            assert m(calls, backend="weather") == 5
            assert m(calls, backend="notes") == 5
            # -- latency: every forwarded call is in the histograms -----------------------------
            assert m("mcp_tool_call_duration_seconds_count", backend="weather") == 5
            client_ops = "mcp_client_operation_duration_seconds_count"
            assert m(client_ops, backend="weather", mcp_method_name="tools/call",
                     gen_ai_tool_name="get_forecast", error_type="") == 3
            assert m(client_ops, backend="weather", mcp_method_name="tools/call",
                     gen_ai_tool_name="get_alerts", error_type="tool_error") == 1
            assert m(client_ops, backend="notes", mcp_method_name="tools/call",
                     error_type="tool_error") == 1
            assert m(client_ops, backend="notes", mcp_method_name="tools/call") == 4
            assert m("mcp_server_operation_duration_seconds_count",
                     mcp_method_name="tools/call") == 11
            # -- ACL ------------------------------------------------------------------------------
            decisions = "mcp_acl_decisions_total"
            assert m(decisions, decision="deny", identity="analyst",
                     gen_ai_tool_name="delete_note", rule="default-deny") == 1
            assert m(decisions, decision="deny", identity="", gen_ai_tool_name="get_forecast",
                     backend="weather") == 1
            assert m(decisions, decision="allow", identity="ops", rule="*") == 1
            assert m(decisions, decision="allow", identity="analyst", rule="read_*") == 3
            assert m(decisions, decision="deny") == 2
            # -- backend pool, tool cache, child process -----------------------------------------
            connects = "mcp_backend_connects_total"
            assert m(connects, backend="weather", trigger="lazy", outcome="ok") == 1
            assert m(connects, backend="notes", trigger="lazy", outcome="ok") == 1
            assert m("mcp_backend_up") == 2
            assert m("mcp_tool_cache_entries", backend="weather") == 2
            assert m("mcp_tool_cache_entries", backend="notes") == 3
            lookups = "mcp_tool_cache_requests_total"
            assert m(lookups, backend="weather", result="miss") == 1
            assert m(lookups, backend="notes", result="miss") == 1
            # weather: 4 + 1 routed calls, 2 listings by later clients
            assert m(lookups, backend="weather", result="hit") == 7
            # notes: 3 reads + 2 deletes routed, 2 listings by later clients
            assert m(lookups, backend="notes", result="hit") == 7
            assert m("mcp_backend_process_starts_total", backend="notes") == 1
            assert m("mcp_backend_processes", backend="notes") == 1
            # -- sessions on the proxy's own endpoint ---------------------------------------------
            assert m("mcp_server_sessions_started_total") == 3
            assert m("mcp_server_sessions_active") == 0

            # -- the idle reaper -----------------------------------------------------------------
            clock.advance(IDLE_TIMEOUT + 1)
            m = wait_for(proxy_url, lambda m: m("mcp_backend_disconnects_total",
                                                reason="idle_reaped") == 2
                         and m("mcp_backend_process_exits_total") == 1)
            assert m("mcp_backend_up") == 0
            assert m("mcp_backend_process_exits_total", backend="notes", kind="clean") == 1
            assert m("mcp_backend_processes", backend="notes") == 0
            lifetimes = "mcp_client_session_duration_seconds_count"
            assert m(lifetimes, backend="weather", transport="streamable_http",
                     end_reason="idle_reaped") == 1
            assert m(lifetimes, backend="notes", transport="stdio",
                     end_reason="idle_reaped") == 1
            assert httpx.get(f"{proxy_url}/health").json()["backends_connected"] == 0

            # -- lazy reconnection, one backend at a time ----------------------------------------
            async with client(mcp_url, "analyst") as analyst:
                assert not await call(analyst, "get_forecast", city="paris")
                m = scrape(proxy_url)
                assert m(connects, backend="weather", trigger="reconnect", outcome="ok") == 1
                assert m(connects, backend="notes", trigger="reconnect") == 0
                assert m("mcp_backend_up", backend="notes") == 0
                assert not await call(analyst, "read_note", name="todo")
            m = scrape(proxy_url)
            assert m(connects, backend="notes", trigger="reconnect", outcome="ok") == 1
            assert m("mcp_backend_up") == 2
            assert m("mcp_backend_process_starts_total", backend="notes") == 2
            assert m("mcp_backend_processes", backend="notes") == 1
            assert m(calls, backend="weather", gen_ai_tool_name="get_forecast",
                     identity="analyst", outcome="ok") == 4
            # The cache survived the reap: no new miss.
            assert m(lookups, result="miss") == 2
            health = httpx.get(f"{proxy_url}/health").json()
            assert health == {"status": "ok", "backends_configured": 2,
                              "backends_connected": 2, "tools": 5, "version": "0.4.3"}
            assert m("build_info", version="0.4.3") == 1

    # Shutting the proxy down closes both backends and ends the child cleanly.
    assert total(registry, "mcp_backend_disconnects_total", reason="shutdown") == 2
    assert total(registry, "mcp_backend_process_exits_total", kind="clean") == 2
    assert total(registry, "mcp_backend_processes") == 0

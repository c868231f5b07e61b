"""The surfaces under real MCP traffic: the official SDK's server under uvicorn, its own client.

An in-flight tool call shows as an MCP operation with its tool; the totals equal what the
Prometheus exposition says, exactly.
"""

from __future__ import annotations

import asyncio
import threading

import httpx
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

mcp_sdk = pytest.importorskip("mcp", reason="the mcp SDK is not installed")
if not hasattr(mcp_sdk, "Client"):  # pragma: no cover - the 1.x line
    pytest.skip("needs the mcp 2.x SDK (mcp.Client)", allow_module_level=True)

from mcp import Client  # noqa: E402
from mcp.server import MCPServer  # noqa: E402

from asgi_mcp_metrics.starlette import instrument  # noqa: E402

from .servers import gauges_idle, serve, wait_until  # noqa: E402
from .tools import register_common_tools  # noqa: E402

pytestmark = pytest.mark.e2e


def scraped_tool_calls(url: str) -> dict[tuple[str, str, str], float]:
    found = {}
    for family in text_string_to_metric_families(httpx.get(f"{url}/metrics").text):
        for sample in family.samples:
            if sample.name == "mcp_tool_calls_total":
                labels = sample.labels
                key = (labels["backend"], labels["gen_ai_tool_name"], labels["outcome"])
                found[key] = found.get(key, 0) + sample.value
    return found


def test_in_flight_tool_call_and_exact_totals(registry: CollectorRegistry) -> None:
    server = MCPServer("surfaces")
    register_common_tools(server)
    gate = threading.Event()

    @server.tool()
    async def wait() -> str:
        await asyncio.to_thread(gate.wait, 30)
        return "done"

    app = instrument(server.streamable_http_app(), registry=registry)
    with serve(app) as url:
        async def session() -> None:
            async with Client(f"{url}/mcp", mode="legacy") as client:
                for i in range(4):
                    await client.call_tool("add", {"a": i, "b": 1})
                await client.call_tool("boom", {})
                await client.call_tool("wait", {})

        caller = threading.Thread(target=lambda: asyncio.run(session()))
        caller.start()

        def waiting() -> list[dict[str, object]]:
            active = httpx.get(f"{url}/metrics/active").json()["active"]
            return [op for entry in active for op in entry.get("mcp", [])
                    if op.get("tool") == "wait"]

        wait_until(lambda: bool(waiting()))
        operation = waiting()[0]
        assert operation["method"] == "tools/call"
        assert isinstance(operation["age_seconds"], float)
        gate.set()
        caller.join(30)
        wait_until(lambda: gauges_idle(registry))
        wait_until(lambda: not waiting())

        totals = httpx.get(f"{url}/metrics/totals").json()["tool_calls"]
        scraped = scraped_tool_calls(url)
    assert scraped == {("", "add", "ok"): 4, ("", "boom", "tool_error"): 1,
                       ("", "wait", "ok"): 1}
    assert totals["total"] == sum(scraped.values()) == 6
    for (backend, tool, outcome), count in scraped.items():
        assert totals["backends"][backend]["tools"][tool]["outcomes"][outcome] == count

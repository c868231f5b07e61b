"""Every PromQL query of the docs runs on a real Prometheus scraping an undecorated SDK server.

The server is the ``mcp`` SDK's ``MCPServer`` with plain ``@server.tool()`` tools (nobody
decorated them with ``@instrument_tool``), under ``instrument()`` and uvicorn, while the SDK's
own client calls its tools.  Prometheus must accept every documented query, and every query
about tool latency must return data: the docs point p50/p95/p99 at
``mcp_tool_call_duration_seconds``, which the wire layer writes for such tools.
"""

from __future__ import annotations

import asyncio
import math
import subprocess
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry

from ..promtool import prometheus_binary
from .promql_docs import documented_queries
from .servers import free_port, serve
from .test_prometheus import query, wait_for
from .tools import register_common_tools

mcp_sdk = pytest.importorskip("mcp", reason="the mcp SDK is not installed")
if not hasattr(mcp_sdk, "Client"):  # pragma: no cover - the 1.x line has its own tests
    pytest.skip("needs the mcp 2.x SDK (mcp.Client)", allow_module_level=True)

from mcp import Client  # noqa: E402
from mcp.server import MCPServer  # noqa: E402

from asgi_mcp_metrics.starlette import instrument  # noqa: E402

pytestmark = pytest.mark.e2e

TOOL_LATENCY = "mcp_tool_call_duration_seconds"
MAX_ROUNDS = 5000  # each round is two tool calls; the test stops the client long before


def test_the_queries_are_found() -> None:
    queries = [promql for _, promql in documented_queries()]
    assert len(queries) >= 80
    latency = [promql for promql in queries if TOOL_LATENCY in promql]
    # p50, p95, p99, by backend, day over day, mean.
    assert len(latency) == 6, latency


def _drive(url: str, stop: threading.Event, rounds: list[int]) -> None:
    async def calls() -> None:
        async with Client(url + "/mcp") as client:
            await client.list_tools()
            for _ in range(MAX_ROUNDS):
                if stop.is_set():
                    return
                assert not (await client.call_tool("add", {"a": 1, "b": 2})).is_error
                assert (await client.call_tool("boom", {})).is_error
                rounds[0] += 1

    asyncio.run(calls())


def test_every_documented_query_runs_and_tool_latency_has_data(tmp_path: Path) -> None:
    binary = prometheus_binary()
    server = MCPServer("undecorated")
    register_common_tools(server)
    registry = CollectorRegistry()
    app = instrument(server.streamable_http_app(), registry=registry)

    with serve(app) as url:
        port = url.rsplit(":", 1)[1]
        config = tmp_path / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            "scrape_configs:\n  - job_name: undecorated\n    static_configs:\n"
            f"      - targets: ['127.0.0.1:{port}']\n")
        prom_port = free_port()
        prometheus = subprocess.Popen(
            [binary, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'data'}",
             f"--web.listen-address=127.0.0.1:{prom_port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{prom_port}"
        stop = threading.Event()
        rounds = [0]
        client = threading.Thread(target=_drive, args=(url, stop, rounds), daemon=True)
        client.start()
        try:
            wait_for(base, 'up{job="undecorated"}', lambda v: v == 1)
            # rate() needs two samples of a series inside its window: wait until it has them.
            wait_for(base, f"sum(rate({TOOL_LATENCY}_count[5m]))", lambda v: v > 0)
            for where, promql in documented_queries():
                # The day-over-day comparison asks for data a day old; the test's history
                # is seconds long, so it compares with a few seconds ago instead.
                runnable = promql.replace(" offset 1d", " offset 2s")
                try:
                    query(base, runnable)
                except httpx.HTTPStatusError as error:
                    raise AssertionError(f"{where}: Prometheus rejected {promql!r}: "
                                         f"{error.response.text}") from None
                if TOOL_LATENCY in promql:
                    _wait_for_data(base, where, runnable)
        finally:
            stop.set()
            client.join(30)
            prometheus.terminate()
            prometheus.wait(20)
    assert not client.is_alive()
    assert rounds[0] > 0
    # Both undecorated tools were timed on the wire, once per call.
    counts = {sample.labels["gen_ai_tool_name"]: sample.value
              for family in registry.collect() for sample in family.samples
              if sample.name == f"{TOOL_LATENCY}_count"}
    calls = {sample.labels["gen_ai_tool_name"]: sample.value
             for family in registry.collect() for sample in family.samples
             if sample.name == "mcp_tool_calls_total"}
    assert counts == calls
    assert set(counts) == {"add", "boom"}


def _wait_for_data(base: str, where: str, promql: str) -> None:
    """The query returns at least one series, every value a number (not NaN)."""
    def has_data(result: list[dict[str, Any]]) -> bool:
        return bool(result) and all(math.isfinite(float(series["value"][1]))
                                    for series in result)

    last: list[dict[str, Any]] = []
    for _ in range(60):
        last = query(base, promql)
        if has_data(last):
            return
        threading.Event().wait(1)
    raise AssertionError(f"{where}: no data for {promql!r}; last answer {last}")

"""Which metric families a scrape lists: a feature's families appear when the feature is in use.

A plain FastAPI app lists its HTTP families and the library's info gauge, nothing else; MCP
traffic, an ACL decorator, a backend monitor and LLM metrics each add exactly their own
families.  Scraped over real HTTP from uvicorn, checked by promtool.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from asgi_mcp_metrics import BackendMonitor, instrument_acl, instrument_tool
from asgi_mcp_metrics.catalog import METRICS
from asgi_mcp_metrics.llm import LLMMetrics
from asgi_mcp_metrics.sdk_adapter import MetricsServerMiddleware
from asgi_mcp_metrics.starlette import instrument

from ..promtool import check_metrics
from .servers import serve, wait_until

pytestmark = pytest.mark.e2e

INFO = {"asgi_mcp_metrics_info"}


def layer(name: str) -> set[str]:
    """The family names (as scraped: counters without ``_total``) of one catalog layer."""
    return {spec.name.removesuffix("_total") if spec.kind == "counter" else spec.name
            for spec in METRICS if spec.layer == name}


def scrape(url: str, **params: Any) -> tuple[set[str], list[str], str]:
    """Family names, sample names and the raw text of one scrape."""
    response = httpx.get(f"{url}/metrics", params=params, timeout=10)
    response.raise_for_status()
    families = list(text_string_to_metric_families(response.text))
    return ({family.name for family in families},
            [sample.name for family in families for sample in family.samples], response.text)


def plain_app(registry: CollectorRegistry, **options: Any) -> FastAPI:
    app = FastAPI()

    @app.get("/items/{item_id}")
    def item(item_id: int) -> dict[str, int]:
        return {"item_id": item_id}

    return instrument(app, registry=registry, **options)


def test_a_plain_fastapi_app_lists_its_http_families_only(registry: CollectorRegistry) -> None:
    with serve(plain_app(registry)) as url:
        before, samples, text = scrape(url)
        assert before == layer("http") | INFO
        assert samples == ["asgi_mcp_metrics_info"]  # nothing measured yet, nothing else
        for item_id in range(3):
            assert httpx.get(f"{url}/items/{item_id}").status_code == 200
        after, samples, text = scrape(url)
        assert after == before
        assert samples.count("http_server_request_duration_seconds_count") == 1
        assert not [name for name in samples if name.endswith("_created")]
        assert 'http_route="/items/{item_id}"' in text
        check_metrics(text)


def test_created_series_come_back_by_option(registry: CollectorRegistry) -> None:
    with serve(plain_app(registry, created_series=True)) as url:
        httpx.get(f"{url}/items/1").raise_for_status()
        families, samples, text = scrape(url)
        # The text format turns each _created sample into a gauge family of its own.
        assert families == layer("http") | INFO | {
            "http_server_request_duration_seconds_created",
            "http_server_response_body_size_bytes_created"}
        assert samples.count("http_server_request_duration_seconds_created") == 1
        check_metrics(text)


def test_each_in_code_feature_adds_exactly_its_families(registry: CollectorRegistry) -> None:
    with serve(plain_app(registry)) as url:
        expected = layer("http") | INFO

        def lists(families: Iterable[str]) -> None:
            nonlocal expected
            expected |= set(families)
            found, _, text = scrape(url)
            assert found == expected
            check_metrics(text)

        @instrument_acl(registry=registry)
        def check(identity: str) -> bool:
            return identity == "ops"

        lists(layer("acl"))
        _, samples, text = scrape(url)
        # Both decisions are there at 0 for alerting; no placeholder with empty labels.
        assert 'mcp_acl_decision_duration_seconds_count{decision="deny"} 0.0' in text
        assert 'mcp_acl_decision_duration_seconds_count{decision="allow"} 0.0' in text
        assert "mcp_acl_decisions_total" not in samples
        assert not check("guest")
        _, _, text = scrape(url)
        assert ('mcp_acl_decisions_total{backend="",decision="deny",gen_ai_tool_name="",'
                'identity="",rule=""} 1.0') in text

        BackendMonitor("github", transport="stdio", registry=registry)
        lists(layer("backend"))
        LLMMetrics(registry=registry)
        lists(layer("llm"))

        @instrument_tool(registry=registry)
        def search(query: str) -> str:
            return query

        search("x")
        lists(layer("tool"))
        MetricsServerMiddleware(registry=registry)
        lists(layer("mcp"))
        assert expected == layer("http") | INFO | layer("acl") | layer("backend") | \
            layer("llm") | layer("tool") | layer("mcp")


mcp_sdk = pytest.importorskip("mcp", reason="the mcp SDK is not installed")


def test_mcp_traffic_adds_the_mcp_families(registry: CollectorRegistry) -> None:
    if not hasattr(mcp_sdk, "Client"):  # pragma: no cover - the 1.x line
        pytest.skip("needs the mcp 2.x SDK (mcp.Client)")
    from mcp import Client
    from mcp.server import MCPServer

    server = MCPServer("families")

    @server.tool()
    def add(a: int, b: int) -> int:
        return a + b

    sdk_app = server.streamable_http_app(json_response=True)
    app = FastAPI(lifespan=lambda _: sdk_app.router.lifespan_context(sdk_app))
    app.mount("/", sdk_app)
    instrument(app, registry=registry)
    with serve(app) as url:
        before, _, _ = scrape(url)
        assert before == layer("http") | INFO

        async def session() -> None:
            async with Client(url + "/mcp", mode="legacy") as client:
                await client.list_tools()

        asyncio.run(session())
        wait_until(lambda: "mcp_server_requests" in scrape(url)[0])
        after, _, text = scrape(url)
        assert after == layer("http") | INFO | layer("mcp")
        check_metrics(text)

        async def call() -> None:
            async with Client(url + "/mcp", mode="legacy") as client:
                assert (await client.call_tool("add", {"a": 1, "b": 2})).structured_content

        asyncio.run(call())
        wait_until(lambda: "mcp_tool_calls" in scrape(url)[0])
        assert scrape(url)[0] == layer("http") | INFO | layer("mcp") | layer("tool")

"""Route templates under a real server: a reverse-proxy ``root_path`` and per-tenant mounts."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

from asgi_mcp_metrics.starlette import instrument

from .servers import serve, wait_until

pytestmark = pytest.mark.e2e


async def hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse(request.path_params.get("tenant", "-"))


def test_tenant_mounts_behind_a_proxy_prefix_under_uvicorn() -> None:
    registry = CollectorRegistry()
    app = Starlette(routes=[
        Route("/health", hello),
        Mount("/t/{tenant}", routes=[Route("/items/{item_id:int}", hello),
                                     Mount("/servers/{name}", routes=[Route("/mcp", hello)])]),
    ])
    instrument(app, registry=registry)
    tenants = [f"tenant-{i}" for i in range(200)]
    # A proxy strips /gateway; uvicorn puts it back in front of the path, as root_path.
    with serve(app, root_path="/gateway") as url, httpx.Client(base_url=url) as client:
        for i, tenant in enumerate(tenants):
            assert client.get(f"/t/{tenant}/items/{i}").text == tenant
            assert client.get(f"/t/{tenant}/servers/s{i}/mcp").status_code == 200
        assert client.get("/health").status_code == 200
        wait_until(lambda: _count(registry, "/health") == 1)
        exposition = client.get("/metrics").text
    routes = {line.split('http_route="')[1].split('"')[0]
              for line in exposition.splitlines()
              if line.startswith("http_server_request_duration_seconds_count")}
    assert routes == {"/health", "/t/{tenant}/items/{item_id}",
                      "/t/{tenant}/servers/{name}/mcp"}
    assert _count(registry, "/t/{tenant}/items/{item_id}") == len(tenants)
    assert _count(registry, "/t/{tenant}/servers/{name}/mcp") == len(tenants)
    assert "tenant-" not in exposition
    # The metrics endpoint is not measured, under a root_path too.
    assert _count(registry, "/metrics") == 0


def _count(registry: CollectorRegistry, route: str) -> float:
    return registry.get_sample_value(
        "http_server_request_duration_seconds_count",
        {"http_request_method": "GET", "http_route": route, "http_response_status_code": "200",
         "error_type": ""}) or 0.0

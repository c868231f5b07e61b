from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Mount, Route
from starlette.testclient import TestClient

from asgi_mcp_metrics import http_record as http_record_module
from asgi_mcp_metrics.routing import match_template
from asgi_mcp_metrics.starlette import instrument

from .asgi import http_scope, total, value

DURATION = "http_server_request_duration_seconds"


async def hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse("hello")


def test_instrument_serves_metrics_before_a_catch_all_mount(registry: CollectorRegistry) -> None:
    catch_all = Starlette(routes=[Route("/{anything:path}", hello)])
    app = Starlette(routes=[Route("/hello", hello), Mount("/", app=catch_all)])
    assert instrument(app, registry=registry) is app
    with TestClient(app) as client:
        assert client.get("/hello").text == "hello"
        response = client.get("/metrics", follow_redirects=False)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        assert response.headers["cache-control"] == "no-cache"
        assert 'http_route="/hello"' in response.text
        assert client.head("/metrics").content == b""
        assert client.post("/metrics").status_code == 405
    # The endpoint itself is not measured.
    assert total(registry, DURATION + "_count", http_route="/metrics") == 0
    assert total(registry, DURATION + "_count", http_route="/hello") == 1


def test_instrument_with_options_and_auth(registry: CollectorRegistry) -> None:
    app = instrument(Starlette(routes=[Route("/hello", hello)]), registry=registry,
                     metrics_path="/internal/metrics", auth_bearer_token="s3cret",
                     namespace="proxy")
    with TestClient(app) as client:
        client.get("/hello")
        assert client.get("/internal/metrics").status_code == 401
        assert client.get("/internal/metrics",
                          headers={"authorization": "Bearer nope"}).status_code == 403
        ok = client.get("/internal/metrics", headers={"authorization": "Bearer s3cret"})
        assert ok.status_code == 200
        assert "proxy_http_server_request_duration_seconds_count" in ok.text
        assert client.get("/metrics").status_code == 404


def test_bad_option_fails_at_instrument_time(registry: CollectorRegistry) -> None:
    with pytest.raises(ValueError, match="max_body_bytes"):
        instrument(Starlette(), registry=registry, max_body_bytes=0)


def test_two_apps_on_one_registry(registry: CollectorRegistry) -> None:
    a = instrument(Starlette(routes=[Route("/a", hello)]), registry=registry)
    b = instrument(Starlette(routes=[Route("/b", hello)]), registry=registry)
    with TestClient(a) as client_a, TestClient(b) as client_b:
        client_a.get("/a")
        client_b.get("/b")
    assert total(registry, DURATION + "_count") == 2


def test_fastapi_route_templates(registry: CollectorRegistry) -> None:
    api = FastAPI()

    @api.get("/users/{user_id}/orders/{order_id}")
    async def order(user_id: int, order_id: str) -> dict[str, Any]:
        return {"user": user_id, "order": order_id}

    instrument(api, registry=registry)
    with TestClient(api) as client:
        for i in range(3):
            assert client.get(f"/users/{i}/orders/x{i}").status_code == 200
        assert client.get("/users/abc/orders/1").status_code == 422
    route = "/users/{user_id}/orders/{order_id}"
    assert value(registry, DURATION + "_count", http_request_method="GET", http_route=route,
                 http_response_status_code="200", error_type="") == 3
    assert value(registry, DURATION + "_count", http_request_method="GET", http_route=route,
                 http_response_status_code="422", error_type="") == 1


def test_latency_stops_at_the_last_byte_not_after_background_tasks(
        registry: CollectorRegistry, monkeypatch: pytest.MonkeyPatch) -> None:
    now = [100.0]
    monkeypatch.setattr(http_record_module, "perf_counter", lambda: now[0])

    def slow_cleanup() -> None:
        now[0] += 60.0

    async def handler(request: Request) -> JSONResponse:
        now[0] += 0.2
        return JSONResponse({"ok": True}, background=BackgroundTask(slow_cleanup))

    app = instrument(Starlette(routes=[Route("/work", handler)]), registry=registry)
    with TestClient(app) as client:
        assert client.get("/work").json() == {"ok": True}
    labels = {"http_request_method": "GET", "http_route": "/work",
              "http_response_status_code": "200", "error_type": ""}
    assert value(registry, DURATION + "_sum", **labels) == pytest.approx(0.2)
    assert value(registry, DURATION + "_bucket", le="0.25", **labels) == 1


def test_fallback_matcher_for_starlette_without_scope_route() -> None:
    """Starlette < 1.7 does not put the route in the scope: the templates are matched again."""
    inner = Starlette(routes=[Route("/things/{thing_id:int}", hello)])
    app = Starlette(routes=[Route("/items/{item_id}", hello), Mount("/sub", app=inner),
                            Mount("/raw", app=hello)])
    assert match_template(app.routes, http_scope("/items/3"), "") == "/items/{item_id}"
    assert match_template(app.routes, http_scope("/sub/things/4"), "") == "/sub/things/{thing_id}"
    assert match_template(app.routes, http_scope("/raw/x/y"), "") == "/raw"
    assert match_template(app.routes, http_scope("/nowhere"), "") is None


def test_route_label_falls_back_to_the_outer_router() -> None:
    from asgi_mcp_metrics.routing import UNMATCHED, route_label

    app = Starlette(routes=[Route("/items/{item_id}", hello)])
    scope = http_scope("/items/9")
    scope["router"] = app.router  # what old Starlette leaves behind: a router, no route
    assert route_label(scope, "", 200) == "/items/{item_id}"
    assert route_label(http_scope("/items/9") | {"router": app.router}, "", 200) == \
        "/items/{item_id}"
    unmatched = http_scope("/elsewhere") | {"router": app.router}
    assert route_label(unmatched, "", 404) == UNMATCHED

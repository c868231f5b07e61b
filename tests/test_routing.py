"""``http_route`` is a template in every way Starlette and FastAPI compose routes.

Each case runs the framework's own router (through Starlette's test client) and reads the label
the middleware recorded.  The per-tenant cases send many distinct prefixes and assert that the
label keeps one value, so a multi-tenant gateway cannot mint a series per tenant.
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import APIRouter, FastAPI
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Host, Mount, Route, Router, WebSocketRoute
from starlette.testclient import TestClient
from starlette.websockets import WebSocket

from asgi_mcp_metrics import MetricsMiddleware
from asgi_mcp_metrics.routing import UNKNOWN_MOUNT, UNMATCHED
from asgi_mcp_metrics.starlette import instrument

from .asgi import call, http_scope

DURATION = "http_server_request_duration_seconds_count"
STREAMS = "http_server_streams_total"


async def hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse("hello")


async def raw_app(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": scope["root_path"].encode()})


def routes_seen(registry: CollectorRegistry, name: str = DURATION) -> dict[str, float]:
    """Every ``http_route`` value of ``name`` with its count."""
    seen: dict[str, float] = {}
    for family in registry.collect():
        for sample in family.samples:
            if sample.name == name:
                route = sample.labels["http_route"]
                seen[route] = seen.get(route, 0.0) + sample.value
    return seen


def requests(app: Any, paths: list[str], **client_options: Any) -> list[int]:
    with TestClient(app, **client_options) as client:
        return [client.get(path).status_code for path in paths]


TENANTS = [f"tenant{i}" for i in range(50)]


def test_mount_with_a_converter_keeps_one_label_for_every_tenant(
        registry: CollectorRegistry) -> None:
    app = Starlette(routes=[Mount("/t/{tenant}", routes=[Route("/items/{item_id:int}", hello)])])
    instrument(app, registry=registry)
    assert set(requests(app, [f"/t/{t}/items/{i}" for i, t in enumerate(TENANTS)])) == {200}
    assert routes_seen(registry) == {"/t/{tenant}/items/{item_id}": len(TENANTS)}


def test_nested_mounts_with_converters(registry: CollectorRegistry) -> None:
    inner = Router(routes=[Route("/tools/{tool}", hello)])
    app = Starlette(routes=[
        Mount("/t/{tenant}", routes=[
            Mount("/servers/{name:str}", app=inner),
            Route("/health", hello),
        ]),
        Mount("/static", routes=[Route("/{file:path}", hello)]),
    ])
    instrument(app, registry=registry)
    paths = [f"/t/{t}/servers/s{i}/tools/x{i}" for i, t in enumerate(TENANTS)]
    paths += [f"/t/{t}/health" for t in TENANTS[:5]] + ["/static/a/b.css", "/static/c.js"]
    assert set(requests(app, paths)) == {200}
    assert routes_seen(registry) == {
        "/t/{tenant}/servers/{name}/tools/{tool}": len(TENANTS),
        "/t/{tenant}/health": 5,
        "/static/{file}": 2,
    }


def test_mounted_plain_asgi_app_is_labelled_with_its_mount_template(
        registry: CollectorRegistry) -> None:
    app = Starlette(routes=[Mount("/servers/{name}", app=raw_app), Mount("/raw", app=raw_app)])
    instrument(app, registry=registry)
    with TestClient(app) as client:
        # The app itself still sees the matched prefix: only the label is a template.
        assert client.get("/servers/git/mcp").text == "/servers/git"
        for name in TENANTS:
            client.get(f"/servers/{name}/mcp/x")
        client.get("/raw/anything")
    assert routes_seen(registry) == {"/servers/{name}": len(TENANTS) + 1, "/raw": 1}


def test_mounted_starlette_sub_application(registry: CollectorRegistry) -> None:
    sub = Starlette(routes=[Route("/items/{item_id}", hello)])
    app = Starlette(routes=[Mount("/v1/{tenant}", app=sub)])
    instrument(app, registry=registry)
    requests(app, [f"/v1/{t}/items/{t}" for t in TENANTS[:10]] + ["/v1/a/nothing"])
    assert routes_seen(registry) == {"/v1/{tenant}/items/{item_id}": 10, UNMATCHED: 1}


def test_fastapi_routers_with_prefixes_and_sub_applications(registry: CollectorRegistry) -> None:
    router = APIRouter(prefix="/orgs/{org}")

    @router.get("/users/{user_id}")
    async def user(org: str, user_id: int) -> dict[str, Any]:
        return {"org": org, "user": user_id}

    sub = FastAPI()

    @sub.get("/reports/{report_id}")
    async def report(report_id: str) -> dict[str, str]:
        return {"report": report_id}

    api = FastAPI()
    api.include_router(router, prefix="/api")
    api.mount("/tenants/{tenant}", sub)
    instrument(api, registry=registry)
    paths = [f"/api/orgs/{t}/users/{i}" for i, t in enumerate(TENANTS[:20])]
    paths += [f"/tenants/{t}/reports/r{i}" for i, t in enumerate(TENANTS[:20])]
    assert set(requests(api, paths)) == {200}
    assert routes_seen(registry) == {
        "/api/orgs/{org}/users/{user_id}": 20,
        "/tenants/{tenant}/reports/{report_id}": 20,
    }


def test_host_based_routing(registry: CollectorRegistry) -> None:
    tenant_api = Router(routes=[Route("/items/{item_id}", hello)])
    app = Starlette(routes=[
        Host("{tenant}.example.org", app=Router(routes=[
            Mount("/api/{version}", app=tenant_api)])),
        Route("/items/{item_id}", hello),
    ])
    instrument(app, registry=registry)
    with TestClient(app) as client:
        for tenant in TENANTS[:10]:
            response = client.get(f"/api/v{tenant}/items/1",
                                  headers={"host": f"{tenant}.example.org"})
            assert response.status_code == 200
        assert client.get("/items/2", headers={"host": "other.test"}).status_code == 200
    assert routes_seen(registry) == {"/api/{version}/items/{item_id}": 10,
                                     "/items/{item_id}": 1}


def test_root_path_set_by_the_server_is_not_part_of_the_label(
        registry: CollectorRegistry) -> None:
    """Behind a reverse proxy, ``root_path`` is a constant the server sets before the app."""
    app = Starlette(routes=[Route("/items/{item_id}", hello),
                            Mount("/t/{tenant}", routes=[Route("/x", hello)])])
    instrument(app, registry=registry)
    statuses = requests(app, ["/gateway/items/1", "/gateway/t/a/x", "/gateway/t/b/x"],
                        root_path="/gateway")
    assert statuses == [200, 200, 200]
    assert routes_seen(registry) == {"/items/{item_id}": 1, "/t/{tenant}/x": 2}


def test_middleware_on_an_app_mounted_under_a_converter(registry: CollectorRegistry) -> None:
    """The prefix an outer router matched before the middleware is not part of the label."""
    inner = Starlette(routes=[Mount("/servers/{name}", routes=[Route("/items/{i}", hello)])])
    instrument(inner, registry=registry)
    outer = Starlette(routes=[Mount("/t/{tenant}", app=inner)])
    assert set(requests(outer, [f"/t/{t}/servers/s/items/1" for t in TENANTS[:10]])) == {200}
    assert routes_seen(registry) == {"/servers/{name}/items/{i}": 10}


def test_websocket_under_a_parameterised_mount(registry: CollectorRegistry) -> None:
    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text("hi")
        await websocket.close()

    app = Starlette(routes=[Mount("/t/{tenant}", routes=[WebSocketRoute("/ws", ws)])])
    instrument(app, registry=registry)
    with TestClient(app) as client:
        for tenant in TENANTS[:5]:
            with client.websocket_connect(f"/t/{tenant}/ws") as socket:
                assert socket.receive_text() == "hi"
    assert routes_seen(registry, STREAMS) == {"/t/{tenant}/ws": 5}


@pytest.mark.anyio
async def test_unknown_prefix_is_a_fixed_value(registry: CollectorRegistry) -> None:
    """An app that extends root_path by itself, outside any router: no raw prefix in labels."""
    leaf = Route("/items/{item_id}", hello)

    async def dispatcher(scope: Any, receive: Any, send: Any) -> None:
        tenant = scope["path"].split("/")[2]
        scope["root_path"] = scope["root_path"] + f"/t/{tenant}"
        scope["route"] = leaf
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    mw = MetricsMiddleware(dispatcher, registry=registry, mcp_parsing="off")
    for tenant in TENANTS[:5]:
        await call(mw, http_scope(f"/t/{tenant}/items/1"))
    assert routes_seen(registry) == {UNKNOWN_MOUNT + "/items/{item_id}": 5}


def test_many_tenants_keep_the_exposition_bounded(registry: CollectorRegistry) -> None:
    """2,000 tenants under one mount: the series count does not grow with the tenants."""
    app = Starlette(routes=[Mount("/t/{tenant}", routes=[Route("/items/{item_id}", hello)])])
    instrument(app, registry=registry)

    def series() -> int:
        return sum(len(family.samples) for family in registry.collect())

    requests(app, [f"/t/warmup/items/{i}" for i in range(3)])
    before = series()
    requests(app, [f"/t/tenant{i}/items/{i}" for i in range(2000)])
    assert series() == before
    assert routes_seen(registry) == {"/t/{tenant}/items/{item_id}": 2003}


@pytest.mark.anyio
async def test_a_stashed_route_gets_the_template_of_the_mount_above_it(
        registry: CollectorRegistry) -> None:
    """A Django app mounted in Starlette: its pattern is relative to where it was mounted."""
    from asgi_mcp_metrics.routing import ROUTE_KEY

    async def django_like(scope: Any, receive: Any, send: Any) -> None:
        scope[ROUTE_KEY] = "/items/{id}"  # what the Django adapter stashes
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    app = Starlette(routes=[Mount("/sites/{site}", app=django_like)])
    mw = MetricsMiddleware(app, registry=registry, mcp_parsing="off")
    for site in TENANTS[:4]:
        await call(mw, http_scope(f"/sites/{site}/items/1"))
    assert routes_seen(registry) == {"/sites/{site}/items/{id}": 4}

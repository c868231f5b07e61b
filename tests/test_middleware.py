from __future__ import annotations

import asyncio
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, StreamingResponse
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.websockets import WebSocket

from asgi_mcp_metrics import MetricsMiddleware
from asgi_mcp_metrics._binding import get_recorder
from asgi_mcp_metrics.middleware import mark_stream
from asgi_mcp_metrics.surfaces.inflight import describe

from .asgi import call, http_scope, read_body, total, value
from .helpers import FakeClock

pytestmark = pytest.mark.anyio

DURATION = "http_server_request_duration_seconds"


async def item(request: Request) -> JSONResponse:
    return JSONResponse(request.path_params)


async def echo(request: Request) -> PlainTextResponse:
    body = await request.body()
    return PlainTextResponse(body)


async def boom(request: Request) -> PlainTextResponse:
    raise RuntimeError("boom")


async def events(request: Request) -> StreamingResponse:
    async def gen() -> Any:
        for i in range(3):
            yield f"data: {i}\n\n"

    return StreamingResponse(gen(), media_type="text/event-stream")


def starlette_app() -> Starlette:
    inner = Starlette(routes=[Route("/things/{thing_id:int}", item)])
    return Starlette(routes=[
        Route("/items/{item_id}", item),
        Route("/echo", echo, methods=["POST"]),
        Route("/boom", boom),
        Route("/events", events),
        Route("/old", lambda request: RedirectResponse("/items/1")),
        Mount("/sub", app=inner),
    ])


def instrumented(registry: CollectorRegistry, app: Any = None, **options: Any) -> MetricsMiddleware:
    return MetricsMiddleware(app or starlette_app(), registry=registry, mcp_parsing="off",
                             **options)


async def test_request_counted_with_route_template_and_exact_bucket(
        registry: CollectorRegistry, clock: FakeClock) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        clock.now += 0.3
        scope["route"] = Route("/items/{item_id}", item)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"hello"})

    mw = instrumented(registry, app)
    await call(mw, http_scope("/items/42"))
    labels = {"http_request_method": "GET", "http_route": "/items/{item_id}",
              "http_response_status_code": "200", "error_type": ""}
    assert value(registry, DURATION + "_count", **labels) == 1
    assert value(registry, DURATION + "_sum", **labels) == pytest.approx(0.3)
    assert value(registry, DURATION + "_bucket", le="0.25", **labels) == 0
    assert value(registry, DURATION + "_bucket", le="0.5", **labels) == 1
    assert value(registry, "http_server_response_body_size_bytes_sum",
                 http_request_method="GET", http_route="/items/{item_id}") == 5
    # No request body, no request-size observation (as the semantic conventions have it).
    assert value(registry, "http_server_request_body_size_bytes_count",
                 http_request_method="GET", http_route="/items/{item_id}") == 0


async def test_starlette_routes_mounts_redirects_and_unmatched(registry: CollectorRegistry) -> None:
    mw = instrumented(registry)
    for path in ("/items/1", "/items/2", "/sub/things/7", "/nope", "/old", "/items/3/"):
        await call(mw, http_scope(path))
    await call(mw, http_scope("/echo", "GET"))  # GET on a POST-only route

    def count(route: str, status: str) -> float:
        return value(registry, DURATION + "_count", http_request_method="GET", http_route=route,
                     http_response_status_code=status, error_type="")

    assert count("/items/{item_id}", "200") == 2
    assert count("/sub/things/{thing_id}", "200") == 1
    assert count("__unmatched__", "404") == 1
    # /old answers with the app's own redirect: the route is known.
    assert count("/old", "307") == 1
    # /items/3/ is redirected by the router (trailing slash): no route served it.
    assert count("__redirect__", "307") == 1
    assert count("__method_not_allowed__", "405") == 1
    assert total(registry, DURATION + "_count") == 7


async def test_unknown_method_becomes_other(registry: CollectorRegistry) -> None:
    mw = instrumented(registry)
    await call(mw, http_scope("/items/1", method="BREW"))
    assert total(registry, DURATION + "_count", http_request_method="_OTHER") == 1
    assert total(registry, DURATION + "_count", http_request_method="BREW") == 0


async def test_in_flight_gauge_while_running_and_zero_after(registry: CollectorRegistry) -> None:
    seen: list[float] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(value(registry, "http_server_active_requests", http_request_method="POST",
                          url_scheme="https"))
        await receive()
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    mw = instrumented(registry, app)
    await call(mw, http_scope("/x", "POST", scheme="https"))
    assert seen == [1.0]
    assert value(registry, "http_server_active_requests", http_request_method="POST",
                 url_scheme="https") == 0


async def test_body_sizes_count_bytes_actually_sent(registry: CollectorRegistry) -> None:
    mw = instrumented(registry)
    chunks = [b"abc", b"defg", b"hij"]
    ex = await call(mw, http_scope("/echo", "POST",
                                   headers=[(b"content-length", b"999")]), chunks)
    assert ex.body == b"abcdefghij"
    labels = {"http_request_method": "POST", "http_route": "/echo"}
    assert value(registry, "http_server_request_body_size_bytes_sum", **labels) == 10
    assert value(registry, "http_server_response_body_size_bytes_sum", **labels) == 10
    assert value(registry, "http_server_request_body_size_bytes_bucket", le="64.0", **labels) == 1


async def test_sse_response_is_a_stream_not_a_request(registry: CollectorRegistry) -> None:
    during: dict[str, float] = {}
    gate = asyncio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/event-stream; charset=utf-8")]})
        await send({"type": "http.response.body", "body": b"data: 1\n\n", "more_body": True})
        during["active"] = value(registry, "http_server_active_requests",
                                 http_request_method="GET", url_scheme="http")
        during["streams"] = total(registry, "http_server_streams_active")
        gate.set()
        await send({"type": "http.response.body", "body": b"data: 2\n\n", "more_body": False})

    mw = instrumented(registry, app)
    await call(mw, http_scope("/events"))
    assert during == {"active": 0.0, "streams": 1.0}
    assert total(registry, "http_server_streams_active") == 0
    assert total(registry, "http_server_streams_total", stream_kind="sse",
                 end_reason="completed") == 1
    assert total(registry, "http_server_stream_duration_seconds_count") == 1
    assert total(registry, DURATION + "_count") == 0
    assert value(registry, "http_server_active_requests", http_request_method="GET",
                 url_scheme="http") == 0


async def test_client_disconnect_mid_stream(registry: CollectorRegistry) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/event-stream")]})
        await send({"type": "http.response.body", "body": b": hi\n\n", "more_body": True})
        while (await receive())["type"] != "http.disconnect":
            pass

    mw = instrumented(registry, app)
    await call(mw, http_scope("/events"), disconnect_after=0)
    assert total(registry, "http_server_streams_total", end_reason="client_disconnect") == 1
    assert total(registry, "http_server_streams_active") == 0


async def test_send_failure_mid_stream_is_a_client_disconnect(registry: CollectorRegistry) -> None:
    bare = await call(starlette_app(), http_scope("/events"), fail_send_after=2,
                      raise_errors=False)
    mw = instrumented(registry)
    ex = await call(mw, http_scope("/events"), fail_send_after=2, raise_errors=False)
    assert type(ex.error) is type(bare.error)
    assert total(registry, "http_server_streams_total", end_reason="client_disconnect") == 1
    assert total(registry, "http_server_streams_active") == 0


async def test_marked_stream(registry: CollectorRegistry) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        mark_stream(scope, "ndjson")
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/x-ndjson")]})
        await send({"type": "http.response.body", "body": b"{}\n"})

    await call(instrumented(registry, app), http_scope("/feed"))
    assert total(registry, "http_server_streams_total", stream_kind="ndjson",
                 end_reason="completed") == 1


async def test_exception_before_start_is_500_and_reraised_unchanged(
        registry: CollectorRegistry) -> None:
    error = RuntimeError("mine")

    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise error

    ex = await call(instrumented(registry, app), http_scope("/x"), raise_errors=False)
    assert ex.error is error
    assert value(registry, DURATION + "_count", http_request_method="GET", http_route="",
                 http_response_status_code="500", error_type="RuntimeError") == 1
    assert total(registry, "http_server_active_requests") == 0


async def test_exception_after_start_keeps_the_sent_status(registry: CollectorRegistry) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"part", "more_body": True})
        raise ValueError("late")

    ex = await call(instrumented(registry, app), http_scope("/x"), raise_errors=False)
    assert type(ex.error) is ValueError
    assert value(registry, DURATION + "_count", http_request_method="GET", http_route="",
                 http_response_status_code="200", error_type="ValueError") == 1


async def test_client_gone_before_response(registry: CollectorRegistry) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    await call(instrumented(registry, app), http_scope("/slow", "POST"), [b"x"],
               disconnect_after=0)
    assert value(registry, DURATION + "_count", http_request_method="POST", http_route="",
                 http_response_status_code="499", error_type="client_disconnect") == 1
    assert total(registry, "http_server_active_requests") == 0


async def test_app_that_never_sends_a_body(registry: CollectorRegistry) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 204, "headers": []})

    await call(instrumented(registry, app), http_scope("/x"))
    assert value(registry, DURATION + "_count", http_request_method="GET", http_route="",
                 http_response_status_code="204", error_type="") == 1
    assert total(registry, "http_server_active_requests") == 0


@pytest.mark.parametrize("content_type", [b"text/event-stream", b"text/plain"])
async def test_a_second_response_start_is_passed_on_not_counted(
        registry: CollectorRegistry, content_type: bytes) -> None:
    """Found by the transparency fuzz test: a second start (an app bug; real servers raise
    from it) once took the in-flight gauge below 0 and left a stream open for ever."""
    starts = [{"type": "http.response.start", "status": status,
               "headers": [(b"content-type", content_type)]} for status in (200, 503)]

    async def app(scope: Any, receive: Any, send: Any) -> None:
        for start in starts:
            await send(start)
        await send({"type": "http.response.body", "body": b"x"})

    exchange = await call(instrumented(registry, app), http_scope("/x"))
    assert exchange.sent == [*starts, {"type": "http.response.body", "body": b"x"}]
    stream = content_type == b"text/event-stream"
    assert total(registry, "http_server_streams_total", end_reason="completed") == stream
    assert value(registry, DURATION + "_count", http_request_method="GET", http_route="",
                 http_response_status_code="200", error_type="") == (not stream)
    assert total(registry, DURATION + "_count", http_response_status_code="503") == 0
    assert total(registry, "http_server_active_requests") == 0
    assert total(registry, "http_server_streams_active") == 0


async def test_transparent_byte_exact(registry: CollectorRegistry) -> None:
    """The app and the server see exactly the same messages with and without the middleware."""
    async def app(scope: Any, receive: Any, send: Any) -> None:
        got = await read_body(receive)
        await send({"type": "http.response.start", "status": 201,
                    "headers": [(b"X-B", b"\xff\xfe"), (b"x-a", b"1"), (b"X-B", b"2")]})
        for i in range(0, len(got), 7):
            await send({"type": "http.response.body", "body": got[i:i + 7], "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    body = [bytes([i % 256]) * 13 for i in range(40)] + [b"\xff\xfe\x00invalid utf-8"]
    scope = http_scope("/caf\udce9", raw_path=b"/caf\xe9",
                       headers=[(b"x-bad", b"\xff\xfe"), (b"content-type", b"application/json")])
    bare = await call(app, dict(scope), body)
    wrapped = await call(instrumented(registry, app), dict(scope), body)
    assert wrapped.sent == bare.sent
    assert wrapped.received == bare.received


async def test_huge_body_streams_through(registry: CollectorRegistry) -> None:
    chunk = b"\x00" * (1 << 20)
    n = 50
    await call(instrumented(registry), http_scope("/echo", "POST"), [chunk] * n)
    labels = {"http_request_method": "POST", "http_route": "/echo"}
    assert value(registry, "http_server_request_body_size_bytes_sum", **labels) == n << 20
    assert value(registry, "http_server_response_body_size_bytes_sum", **labels) == n << 20


async def test_lifespan_passes_through(registry: CollectorRegistry) -> None:
    seen: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["type"])
        message = await receive()
        seen.append(message["type"])
        await send({"type": "lifespan.startup.complete"})

    sent: list[Any] = []

    async def receive() -> dict[str, Any]:
        return {"type": "lifespan.startup"}

    async def send(message: Any) -> None:
        sent.append(message)

    await instrumented(registry, app)({"type": "lifespan", "asgi": {"version": "3.0"}},
                                      receive, send)
    assert seen == ["lifespan", "lifespan.startup"]
    assert sent == [{"type": "lifespan.startup.complete"}]


async def test_websocket_counted_as_stream(registry: CollectorRegistry) -> None:
    inflight = get_recorder(registry).inflight
    seen: list[list[dict[str, Any]]] = []

    async def ws(websocket: WebSocket) -> None:
        seen.append([describe(record) for record in inflight.records()])
        await websocket.accept()
        seen.append([describe(record) for record in inflight.records()])
        await websocket.send_text("hi")
        await websocket.close()

    app = Starlette(routes=[WebSocketRoute("/ws", ws)])
    from starlette.testclient import TestClient

    with TestClient(instrumented(registry, app)) as client, \
            client.websocket_connect("/ws") as conn:
        assert conn.receive_text() == "hi"
    assert value(registry, "http_server_streams_total", http_route="/ws",
                 stream_kind="websocket", end_reason="completed") == 1
    assert total(registry, "http_server_streams_active") == 0
    # In flight from the handshake on, a stream once accepted, and gone when it ended.
    connecting, accepted = seen
    assert [(entry["kind"], entry["method"], entry["path"]) for entry in connecting] == [
        ("request", "GET", "/ws")]
    assert [(entry["kind"], entry["stream_kind"], entry["route"], entry["status"])
            for entry in accepted] == [("stream", "websocket", "/ws", 101)]
    assert len(inflight) == 0
    assert inflight.version == 2  # one add, one remove


async def test_excluded_paths_and_methods(registry: CollectorRegistry) -> None:
    mw = instrumented(registry, exclude_paths=("/health", "/static/*"),
                      exclude_methods=("options",))
    for path in ("/metrics", "/health", "/static/app.js"):
        await call(mw, http_scope(path))
    await call(mw, http_scope("/items/1", "OPTIONS"))
    assert total(registry, DURATION + "_count") == 0
    await call(mw, http_scope("/items/1"))
    assert total(registry, DURATION + "_count") == 1


async def test_our_own_error_is_counted_not_raised(registry: CollectorRegistry) -> None:
    class Broken:
        def observe(self, scope: Any, started: float) -> Any:
            raise KeyError("ours")

    mw = instrumented(registry)
    mw._observer = Broken()  # type: ignore[assignment]
    ex = await call(mw, http_scope("/items/1"))
    assert ex.status == 200
    assert value(registry, "asgi_mcp_metrics_internal_errors_total", where="observe") == 1
    assert total(registry, DURATION + "_count") == 1


def test_two_middlewares_on_one_registry_share_metrics(registry: CollectorRegistry) -> None:
    a = instrumented(registry)
    b = instrumented(registry)
    assert a.recorder is b.recorder


def test_namespace_prefixes_every_name(registry: CollectorRegistry) -> None:
    instrumented(registry, namespace="proxy")
    names = {family.name for family in registry.collect()}
    assert "proxy_http_server_request_duration_seconds" in names
    assert all(name.startswith("proxy_") for name in names)


@pytest.mark.parametrize(("option", "bad"), [
    ("max_body_bytes", -1),
    ("request_duration_buckets", (1.0, 0.5)),
    ("namespace", "no spaces"),
    ("metrics_path", "metrics"),
])
def test_bad_options_fail_at_construction_naming_the_option(
        registry: CollectorRegistry, option: str, bad: Any) -> None:
    with pytest.raises(ValueError, match=option):
        MetricsMiddleware(starlette_app(), registry=registry, **{option: bad})


def test_unknown_option_is_rejected(registry: CollectorRegistry) -> None:
    with pytest.raises(ValueError, match="max_body_byte"):
        MetricsMiddleware(starlette_app(), registry=registry, max_body_byte=1)


async def test_stream_time_to_first_byte(registry: CollectorRegistry, clock: FakeClock) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        scope["route"] = Route("/events", events)
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/event-stream")]})
        clock.now += 0.07
        await send({"type": "http.response.body", "body": b"data: 1\n\n", "more_body": True})
        clock.now += 5
        await send({"type": "http.response.body", "body": b"data: 2\n\n"})

    await call(instrumented(registry, app), http_scope("/events"))
    name = "http_server_stream_time_to_first_byte_seconds"
    labels = {"http_route": "/events", "stream_kind": "sse"}
    assert value(registry, name + "_count", **labels) == 1
    assert value(registry, name + "_bucket", le="0.05", **labels) == 0
    assert value(registry, name + "_bucket", le="0.075", **labels) == 1
    assert value(registry, "http_server_stream_duration_seconds_sum", end_reason="completed",
                 **labels) == pytest.approx(5.07)

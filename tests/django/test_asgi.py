"""Under the outer ASGI middleware (``get_asgi_application``): Django only stashes the route.

With Django's own test clients and handlers (no server).
"""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from tests.asgi import call, http_scope, total, value

django = pytest.importorskip("django")

from django.conf import settings as django_settings  # noqa: E402
from django.test import Client, override_settings  # noqa: E402

from asgi_mcp_metrics.routing import (  # noqa: E402
    ROUTE_KEY,
    UNMATCHED,
)
from tests.django.support import (  # noqa: E402
    DURATION,
    RESPONSE_SIZE,
    STREAMS,
    STREAMS_ACTIVE,
    django_asgi_app,
    metrics_settings,
    requests,
)


@pytest.mark.anyio
async def test_outer_layer_reads_the_route_stashed_in_the_same_scope(
        metrics: CollectorRegistry) -> None:
    scope = http_scope("/api/legacy/12/")
    exchange = await call(django_asgi_app(), scope)
    assert exchange.status == 200
    # The Django middleware wrote into the very dict the server passed to the outer layer.
    assert scope[ROUTE_KEY] == "/api/legacy/{pk}/"
    assert requests(metrics, "/api/legacy/{pk}/") == 1
    # Recorded once: the Django middleware saw the scope marked and did not record again.
    assert total(metrics, DURATION) == 1
    assert value(metrics, RESPONSE_SIZE, http_request_method="GET",
                 http_route="/api/legacy/{pk}/") == len(exchange.body)


@pytest.mark.anyio
async def test_outer_layer_unmatched_path(metrics: CollectorRegistry) -> None:
    scope = http_scope("/nothing/here")
    exchange = await call(django_asgi_app(), scope)
    assert exchange.status == 404
    assert ROUTE_KEY not in scope
    assert requests(metrics, UNMATCHED, "404") == 1
    assert total(metrics, DURATION) == 1


@pytest.mark.anyio
async def test_outer_layer_counts_a_stream_once_to_its_last_byte(
        metrics: CollectorRegistry) -> None:
    from tests.django_settings.views import EVENT, EVENTS

    exchange = await call(django_asgi_app(), http_scope("/async-events"))
    assert exchange.body == EVENT * EVENTS
    labels = {"http_route": "/async-events", "stream_kind": "sse"}
    assert value(metrics, STREAMS, end_reason="completed", **labels) == 1
    assert total(metrics, STREAMS) == 1
    assert total(metrics, DURATION) == 0
    assert value(metrics, STREAMS_ACTIVE, **labels) == 0
    assert value(metrics, RESPONSE_SIZE, http_request_method="GET",
                 http_route="/async-events") == len(EVENT) * EVENTS


@pytest.mark.anyio
@pytest.mark.parametrize(("path", "how", "error"), [
    pytest.param("/endless", {"disconnect_after_body": True}, None, id="client_leaves",
                 marks=pytest.mark.skipif(django.VERSION < (5, 0),
                                          reason="Django < 5.0 does not listen for the client's "
                                                 "disconnect while a response streams")),
    # The third message (the second event) fails, as when the connection is gone.
    pytest.param("/ticking", {"fail_send_after": 2, "raise_errors": False}, OSError,
                 id="send_fails"),
])
async def test_outer_layer_sees_the_client_leave_a_stream(
        metrics: CollectorRegistry, path: str, how: dict[str, Any],
        error: type[BaseException] | None) -> None:
    from tests.django_settings.views import EVENT

    exchange = await call(django_asgi_app(), http_scope(path), **how)
    assert (exchange.error is None) if error is None else isinstance(exchange.error, error)
    assert exchange.body == EVENT
    labels = {"http_route": path, "stream_kind": "sse"}
    assert value(metrics, STREAMS, end_reason="client_disconnect", **labels) == 1
    assert total(metrics, STREAMS) == 1
    assert value(metrics, STREAMS_ACTIVE, **labels) == 0


@pytest.mark.anyio
async def test_route_is_stashed_when_django_runs_the_middleware_synchronously(
        registry: CollectorRegistry) -> None:
    # A sync-only middleware further down makes Django call ours in sync mode under ASGI.
    sync_only = "tests.django_settings.middleware.SyncOnlyMiddleware"
    middleware = [*django_settings.MIDDLEWARE, sync_only]
    with metrics_settings(registry), override_settings(MIDDLEWARE=middleware):
        exchange = await call(django_asgi_app(), http_scope("/items/5"))
    assert exchange.status == 200
    assert requests(registry, "/items/{id}") == 1
    assert total(registry, DURATION) == 1


def test_a_failing_route_normalisation_never_reaches_the_app(
        metrics: CollectorRegistry, monkeypatch: pytest.MonkeyPatch) -> None:
    from asgi_mcp_metrics.django import recording

    def broken(request: Any) -> str:
        raise ValueError("bug")

    monkeypatch.setattr(recording, "request_route", broken)
    assert Client().get("/items/1").status_code == 200
    assert value(metrics, "asgi_mcp_metrics_internal_errors_total",
                 where="django_response") == 1

"""Recording from inside Django when no ASGI layer wraps it: WSGI, and ASGI without the outer
middleware; every request goes into the same ``HttpRecord`` as under ASGI.

With Django's own test clients and handlers (no server).
"""

from __future__ import annotations

import contextvars

import pytest
from prometheus_client import CollectorRegistry

from tests.asgi import total, value

django = pytest.importorskip("django")

from django.test import AsyncClient, Client  # noqa: E402

from tests.django.support import (  # noqa: E402
    ACTIVE,
    DURATION,
    REQUEST_SIZE,
    RESPONSE_SIZE,
    STREAM_DURATION,
    STREAM_FIRST_BYTE,
    STREAMS,
    STREAMS_ACTIVE,
    metrics_settings,
    requests,
)


def test_wsgi_request_is_recorded_once_with_sizes(metrics: CollectorRegistry) -> None:
    response = Client().get("/items/7")
    assert response.content == b'{"id": 7}'
    assert requests(metrics, "/items/{id}") == 1
    assert value(metrics, RESPONSE_SIZE, http_request_method="GET",
                 http_route="/items/{id}") == len(b'{"id": 7}')
    assert value(metrics, REQUEST_SIZE, http_request_method="GET", http_route="/items/{id}") == 0
    assert value(metrics, ACTIVE, http_request_method="GET", url_scheme="http") == 0


def test_wsgi_request_body_size_comes_from_content_length(metrics: CollectorRegistry) -> None:
    response = Client().post("/upload", data=b"a" * 300, content_type="application/octet-stream")
    assert response.content == b"x" * 300
    assert value(metrics, REQUEST_SIZE, http_request_method="POST", http_route="/upload") == 300
    assert value(metrics, RESPONSE_SIZE, http_request_method="POST", http_route="/upload") == 300


def test_wsgi_request_body_size_is_the_declared_length_however_large(
        metrics: CollectorRegistry) -> None:
    # The length is recorded as a number: nothing of that size is built or replayed.
    declared = 5 * (1 << 30)
    assert Client().get("/items/7", CONTENT_LENGTH=str(declared)).status_code == 200
    assert value(metrics, REQUEST_SIZE, http_request_method="GET",
                 http_route="/items/{id}") == declared
    assert requests(metrics, "/items/{id}") == 1


def test_wsgi_server_error_is_recorded_as_500(metrics: CollectorRegistry) -> None:
    response = Client(raise_request_exception=False).get("/boom")
    assert response.status_code == 500
    assert requests(metrics, "/boom", "500", error_type="500") == 1
    assert value(metrics, ACTIVE, http_request_method="GET", url_scheme="http") == 0


def test_wsgi_event_stream_is_a_stream_not_a_request(metrics: CollectorRegistry) -> None:
    from tests.django_settings.views import EVENT, EVENTS

    response = Client().get("/events")
    labels = {"http_route": "/events", "stream_kind": "sse"}
    # Counted as open until the server has taken the last chunk.
    assert value(metrics, STREAMS_ACTIVE, **labels) == 1
    assert value(metrics, ACTIVE, http_request_method="GET", url_scheme="http") == 0
    assert b"".join(response.streaming_content) == EVENT * EVENTS
    response.close()
    assert value(metrics, STREAMS, end_reason="completed", **labels) == 1
    assert value(metrics, STREAM_DURATION, end_reason="completed", **labels) == 1
    assert value(metrics, STREAM_FIRST_BYTE, **labels) == 1
    assert total(metrics, STREAMS) == 1
    assert value(metrics, STREAMS_ACTIVE, **labels) == 0
    assert total(metrics, DURATION) == 0
    assert value(metrics, RESPONSE_SIZE, http_request_method="GET",
                 http_route="/events") == len(EVENT) * EVENTS


def test_wsgi_stream_closed_early_is_a_client_disconnect(metrics: CollectorRegistry) -> None:
    from tests.django_settings.views import EVENT

    response = Client().get("/events")
    assert next(iter(response.streaming_content)) == EVENT
    response.close()  # what a WSGI server does when the client has gone
    labels = {"http_route": "/events", "stream_kind": "sse"}
    assert value(metrics, STREAMS, end_reason="client_disconnect", **labels) == 1
    assert total(metrics, STREAMS) == 1
    assert value(metrics, STREAMS_ACTIVE, **labels) == 0
    assert value(metrics, RESPONSE_SIZE, http_request_method="GET",
                 http_route="/events") == len(EVENT)


def test_wsgi_streaming_download_is_a_request_measured_to_its_end(
        metrics: CollectorRegistry) -> None:
    from tests.django_settings.views import CHUNK

    response = Client().get("/download")
    assert requests(metrics, "/download") == 0  # not finished before it is consumed
    assert b"".join(response.streaming_content) == CHUNK * 2
    assert requests(metrics, "/download") == 1
    assert total(metrics, STREAMS) == 0
    assert value(metrics, RESPONSE_SIZE, http_request_method="GET",
                 http_route="/download") == 2 * len(CHUNK)


def test_identity_and_audit_settings_do_not_disturb_the_replay(
        registry: CollectorRegistry) -> None:
    from tests.django_settings.views import EVENT, EVENTS

    with metrics_settings(registry, identity="header:X-User", audit_log=True):
        response = Client().get("/events", headers={"X-User": "alice"})
        # Consumed in another context, as by a server that hands the response to a thread.
        body = contextvars.copy_context().run(b"".join, response.streaming_content)
        assert body == EVENT * EVENTS
        assert Client().get("/items/1", headers={"X-User": "alice"}).status_code == 200
    assert value(registry, STREAMS, http_route="/events", stream_kind="sse",
                 end_reason="completed") == 1
    assert requests(registry, "/items/{id}") == 1
    assert total(registry, "asgi_mcp_metrics_internal_errors_total") == 0


def test_excluded_paths_are_not_recorded(registry: CollectorRegistry) -> None:
    with metrics_settings(registry, exclude_paths=["/health"], exclude_methods=["post"]):
        client = Client()
        assert client.get("/health").status_code == 200
        assert client.post("/upload", data=b"", content_type="text/plain").status_code == 200
        assert client.get("/metrics").status_code == 200
        assert client.get("/items/1").status_code == 200
    assert total(registry, DURATION) == 1
    assert requests(registry, "/items/{id}") == 1




@pytest.mark.anyio
async def test_asgi_without_outer_layer_records_from_django(metrics: CollectorRegistry) -> None:
    response = await AsyncClient().get("/items/3")
    assert response.status_code == 200
    assert requests(metrics, "/items/{id}") == 1
    assert total(metrics, DURATION) == 1


@pytest.mark.anyio
async def test_asgi_without_outer_layer_measures_async_streams(
        metrics: CollectorRegistry) -> None:
    from tests.django_settings.views import EVENT, EVENTS

    response = await AsyncClient().get("/async-events")
    body = b"".join([chunk async for chunk in response.streaming_content])
    assert body == EVENT * EVENTS
    labels = {"http_route": "/async-events", "stream_kind": "sse"}
    assert value(metrics, STREAMS, end_reason="completed", **labels) == 1
    assert total(metrics, STREAMS) == 1
    assert value(metrics, STREAMS_ACTIVE, **labels) == 0
    assert value(metrics, RESPONSE_SIZE, http_request_method="GET",
                 http_route="/async-events") == len(EVENT) * EVENTS

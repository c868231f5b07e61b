"""The metrics endpoint as a Django view, answered by the exposition core.

With Django's own test clients and handlers (no server).
"""

from __future__ import annotations

import gzip
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from tests.asgi import call, http_scope, total

django = pytest.importorskip("django")

from django.test import Client  # noqa: E402

from tests.django.support import (  # noqa: E402
    DURATION,
    django_asgi_app,
    metrics_settings,
)


def test_endpoint_serves_the_registry_at_the_exact_path(metrics: CollectorRegistry) -> None:
    client = Client()
    client.get("/items/1")
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    assert response["Cache-Control"] == "no-cache"
    text = response.content.decode()
    assert ('http_server_request_duration_seconds_count{error_type="",http_request_method="GET",'
            'http_response_status_code="200",http_route="/items/{id}"} 1.0') in text
    assert client.get("/metrics/").status_code == 404  # no redirect to a slash


def test_endpoint_negotiates_openmetrics_gzip_and_filters(metrics: CollectorRegistry) -> None:
    client = Client()
    client.get("/items/1")
    response = client.get("/metrics", {"name[]": "http_server_active_requests"},
                          headers={"Accept": "application/openmetrics-text; version=1.0.0",
                                   "Accept-Encoding": "gzip"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/openmetrics-text")
    assert response["Content-Encoding"] == "gzip"
    text = gzip.decompress(response.content).decode()
    assert text.endswith("# EOF\n")
    assert "http_server_active_requests{" in text
    assert "http_server_request_duration_seconds" not in text


def test_endpoint_answers_head_and_refuses_other_methods(metrics: CollectorRegistry) -> None:
    client = Client()
    head = client.head("/metrics")
    assert head.status_code == 200
    assert head.content == b""
    post = client.post("/metrics")
    assert post.status_code == 405
    assert post["Allow"] == "GET, HEAD"


def test_endpoint_bearer_auth_from_settings(registry: CollectorRegistry) -> None:
    with metrics_settings(registry, auth_bearer_token="s3cret"):
        client = Client()
        missing = client.get("/metrics")
        wrong = client.get("/metrics", headers={"Authorization": "Bearer nope"})
        right = client.get("/metrics", headers={"Authorization": "Bearer s3cret"})
    assert missing.status_code == 401
    assert missing["WWW-Authenticate"] == 'Bearer realm="metrics"'
    assert wrong.status_code == 403
    assert right.status_code == 200


def test_endpoint_auth_callable_from_a_dotted_path(registry: CollectorRegistry) -> None:
    with metrics_settings(registry, auth="tests.django.test_views.allow_scraper"):
        client = Client()
        assert client.get("/metrics").status_code == 403
        assert client.get("/metrics", headers={"X-Scraper": "prometheus"}).status_code == 200


def allow_scraper(headers: Any) -> bool:
    return bool(headers.get("x-scraper") == "prometheus")


@pytest.mark.anyio
async def test_endpoint_under_asgi_is_not_measured(metrics: CollectorRegistry) -> None:
    exchange = await call(django_asgi_app(), http_scope("/metrics"))
    assert exchange.status == 200
    assert b"asgi_mcp_metrics_info" in exchange.body
    assert total(metrics, DURATION) == 0
    # The positive control: a page through the same application is measured.
    assert (await call(django_asgi_app(), http_scope("/items/3"))).status == 200
    assert total(metrics, DURATION) == 1

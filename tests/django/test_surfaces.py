"""The operator surfaces through the Django URL include: JSON surfaces with Django's test
client, the SSE stream under a real ASGI server."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

django = pytest.importorskip("django")

from django.test import Client  # noqa: E402

from tests.django.support import django_asgi_app, metrics_settings  # noqa: E402


def test_surfaces_are_served_by_the_url_include(metrics: CollectorRegistry) -> None:
    client = Client()
    for _ in range(3):
        client.get("/items/1")
    totals = client.get("/metrics/totals")
    assert totals.status_code == 200
    assert totals["Cache-Control"] == "no-cache"
    assert totals.json()["tool_calls"] == {"total": 0}
    active = client.get("/metrics/active").json()
    assert active["active"] == []
    assert active["version"] == 6  # three requests in, three out
    page = client.get("/metrics/ui")
    assert page["Content-Type"] == "text/html; charset=utf-8"
    assert b"uPlot" in page.content
    assert client.get("/metrics/ui/history?range=60").json()["resolution"] == 1
    assert client.post("/metrics/totals").status_code == 405
    # Under WSGI a never-ending stream is refused rather than holding a worker thread.
    assert client.get("/metrics/active/stream").status_code == 501
    # health is opt-in, and /health here is the project's own view
    assert client.get("/health").json() == {"id": 0}


def test_surfaces_behind_the_metrics_auth(registry: CollectorRegistry) -> None:
    with metrics_settings(registry, auth_bearer_token="s3cret"):
        client = Client()
        assert client.get("/metrics/active").status_code == 401
        assert client.get("/metrics/totals", headers={"Authorization": "Bearer x"}
                          ).status_code == 403
        assert client.get("/metrics/totals", headers={"Authorization": "Bearer s3cret"}
                          ).status_code == 200


def test_surface_switched_off_in_settings_is_not_found(registry: CollectorRegistry) -> None:
    with metrics_settings(registry, surfaces_totals=False):
        assert Client().get("/metrics/totals").status_code == 404
        assert Client().get("/metrics/active").status_code == 200


def test_active_stream_under_a_real_asgi_server(registry: CollectorRegistry) -> None:
    # Django < 5.0 does not tell a streaming response that its client left: there the stream
    # ends after 10 heartbeats (1 s here), from 5.0 on as soon as the client leaves.
    with metrics_settings(registry, sse_heartbeat=0.1):
        _stream_and_leave()


def _stream_and_leave() -> None:
    import httpx

    from asgi_mcp_metrics.django import views
    from tests.e2e.servers import serve, wait_until

    with serve(django_asgi_app(), lifespan="off") as url:
        httpx.get(f"{url}/items/1")
        with httpx.stream("GET", f"{url}/metrics/active/stream", timeout=30) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            lines = response.iter_lines()
            assert next(lines) == "id: 2"
            assert next(lines) == "event: update"
            assert next(lines).startswith('data: {"version":2,')
            surfaces = views._current_surfaces()
            assert surfaces.viewers.count == 1
        wait_until(lambda: surfaces.viewers.count == 0)

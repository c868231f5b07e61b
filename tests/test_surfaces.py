"""The surfaces' guards: switches, paths, auth on every surface, headers, configuration."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from asgi_mcp_metrics._binding import get_recorder
from asgi_mcp_metrics.config import ConfigError, Settings
from asgi_mcp_metrics.starlette import instrument
from asgi_mcp_metrics.surfaces.app import Surfaces
from asgi_mcp_metrics.surfaces.paths import SurfacePaths

from .asgi import call, http_scope, total

JSON_SURFACES = ("/metrics/active", "/metrics/totals", "/metrics/ui/history")
EVERY_SURFACE = (*JSON_SURFACES, "/metrics/ui", "/metrics/active/stream", "/metrics/ui/stream")


async def hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse("hello")


def test_default_paths_follow_the_metrics_path() -> None:
    paths = SurfacePaths.of(Settings(metrics_path="/internal/metrics", surfaces_health=True))
    assert paths.items() == [
        ("ui", "/internal/metrics/ui"), ("history", "/internal/metrics/ui/history"),
        ("live", "/internal/metrics/ui/stream"), ("active", "/internal/metrics/active"),
        ("active_stream", "/internal/metrics/active/stream"),
        ("totals", "/internal/metrics/totals"), ("health", "/health")]
    custom = SurfacePaths.of(Settings(ui_path="/dash", active_path="/live", totals_path="/sum"))
    assert (custom.ui, custom.active_stream, custom.totals) == ("/dash", "/live/stream", "/sum")
    assert SurfacePaths.of(Settings(surfaces=False)).items() == []
    assert [n for n, _ in SurfacePaths.of(Settings(surfaces_ui=False,
                                                   surfaces_totals=False)).items()] == [
        "active", "active_stream"]


def test_every_surface_is_behind_the_metrics_auth(registry: CollectorRegistry) -> None:
    app = instrument(Starlette(routes=[Route("/hello", hello)]), registry=registry,
                     auth_basic_username="ops", auth_basic_password="pw")
    with TestClient(app) as client:
        for path in EVERY_SURFACE:
            denied = client.get(path)
            assert denied.status_code == 401, path
            assert denied.headers["www-authenticate"] == 'Basic realm="metrics"'
            assert client.get(path, auth=("ops", "wrong")).status_code == 403, path
        for path in (*JSON_SURFACES, "/metrics/ui"):
            ok = client.get(path, auth=("ops", "pw"))
            assert ok.status_code == 200, path
            assert ok.headers["cache-control"] == "no-cache"
            assert "access-control-allow-origin" not in ok.headers  # no CORS by default
            assert client.head(path, auth=("ops", "pw")).content == b""
            assert client.post(path, auth=("ops", "pw")).status_code == 405
        page = client.get("/metrics/ui", auth=("ops", "pw"))
        assert page.headers["content-type"] == "text/html; charset=utf-8"
        assert "uPlot" in page.text and "<script src" not in page.text  # nothing external
        # The surfaces are not measured as requests of the app.
        client.get("/hello")
    assert total(registry, "http_server_request_duration_seconds_count") == 1


def test_switched_off_surfaces_are_not_served_and_not_tracked(
        registry: CollectorRegistry) -> None:
    app = instrument(Starlette(routes=[Route("/hello", hello)]), registry=registry,
                     surfaces=False)
    with TestClient(app) as client:
        for path in EVERY_SURFACE:
            assert client.get(path).status_code == 404, path
        assert client.get("/hello").text == "hello"
    assert get_recorder(registry).inflight.version == 0  # the request path did nothing extra


def test_one_surface_off(registry: CollectorRegistry) -> None:
    app = instrument(Starlette(routes=[Route("/hello", hello)]), registry=registry,
                     surfaces_active=False)
    with TestClient(app) as client:
        assert client.get("/metrics/active").status_code == 404
        assert client.get("/metrics/totals").status_code == 200
        client.get("/hello")
    assert get_recorder(registry).inflight.version == 0


@pytest.mark.anyio
async def test_the_plain_asgi_app_routes_every_surface(registry: CollectorRegistry) -> None:
    surfaces = Surfaces(registry=registry, surfaces_health=True, health_min_backends=0)
    answer = await call(surfaces, http_scope("/metrics/totals"))
    assert answer.status == 200
    assert b'"tool_calls": {"total": 0}' in answer.body
    assert (await call(surfaces, http_scope("/health"))).status == 200
    assert (await call(surfaces, http_scope("/elsewhere"))).status == 404
    with pytest.raises(ValueError, match="surface must be one of"):
        surfaces.switch("dashboard", False)


@pytest.mark.parametrize(("variable", "value", "message"), [
    ("ASGI_MCP_METRICS_SSE_INTERVAL", "0", "ASGI_MCP_METRICS_SSE_INTERVAL (environment): "
                                           "expected a finite number > 0"),
    ("ASGI_MCP_METRICS_SSE_MAX_VIEWERS", "0", "ASGI_MCP_METRICS_SSE_MAX_VIEWERS (environment)"),
    ("ASGI_MCP_METRICS_UI_PATH", "ui", "ASGI_MCP_METRICS_UI_PATH (environment): expected a path"),
    ("ASGI_MCP_METRICS_HEALTH_MIN_BACKENDS", "-1", "ASGI_MCP_METRICS_HEALTH_MIN_BACKENDS"),
    ("ASGI_MCP_METRICS_SURFACES", "maybe", "ASGI_MCP_METRICS_SURFACES (environment)"),
])
def test_bad_surface_settings_name_the_key(variable: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        Settings.load(environ={variable: value})
    assert str(error.value).startswith(message)


def test_surface_settings_from_every_source(tmp_path: object) -> None:
    loaded = Settings.load(environ={"ASGI_MCP_METRICS_SSE_HEARTBEAT": "2.5",
                                    "ASGI_MCP_METRICS_SURFACES_HEALTH": "on"},
                           django={"sse_max_viewers": 3}, overrides={"totals_path": "/t"})
    assert (loaded.sse_heartbeat, loaded.surfaces_health, loaded.sse_max_viewers,
            loaded.totals_path) == (2.5, True, 3, "/t")
    with pytest.raises(ConfigError, match=r"ASGI_MCP_METRICS\['sse_max_viewers'\]"):
        Settings.load(django={"sse_max_viewers": "3"})


def test_surface_defaults() -> None:
    settings = Settings()
    assert (settings.surfaces, settings.surfaces_ui, settings.surfaces_active,
            settings.surfaces_totals, settings.surfaces_health) == (True, True, True, True, False)
    assert (settings.ui_path, settings.active_path, settings.totals_path) == (None, None, None)
    assert (settings.health_path, settings.health_min_backends) == ("/health", 1)
    assert (settings.sse_interval, settings.sse_heartbeat, settings.sse_max_viewers) == (
        0.5, 15.0, 20)
    assert (settings.history_seconds, settings.history_minutes) == (3600, 1440)


def test_one_exact_route_serves_endpoint_and_surfaces(registry: CollectorRegistry) -> None:
    app = instrument(Starlette(routes=[Route("/hello", hello)]), registry=registry)
    assert app.url_path_for("metrics") == "/metrics"
    assert app.url_path_for("metrics_totals") == "/metrics/totals"
    assert app.url_path_for("metrics_active_stream") == "/metrics/active/stream"
    # Behind a proxy prefix the paths match below the root_path, as Starlette's routes do.
    with TestClient(app, root_path="/api") as client:
        assert client.get("/api/metrics/totals").status_code == 200
        assert client.get("/api/metrics").status_code == 200
        assert client.get("/api/hello").text == "hello"
        assert client.get("/api/metrics/nothing").status_code == 404

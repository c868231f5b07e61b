"""The Django adapter with Django's own test clients and handlers (no server).

Django is configured once for this module from ``tests/django_settings``; every test records
into a fresh registry given through ``settings.ASGI_MCP_METRICS["registry"]``.
"""

from __future__ import annotations

import contextvars
import gzip
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from tests.asgi import call, http_scope, total, value

django = pytest.importorskip("django")

from django.conf import settings as django_settings  # noqa: E402
from django.test import AsyncClient, Client, override_settings  # noqa: E402

from asgi_mcp_metrics.routing import (  # noqa: E402
    METHOD_NOT_ALLOWED,
    REDIRECT,
    ROUTE_KEY,
    UNMATCHED,
)

DURATION = "http_server_request_duration_seconds_count"
STREAMS = "http_server_streams_total"
STREAMS_ACTIVE = "http_server_streams_active"
ACTIVE = "http_server_active_requests"
RESPONSE_SIZE = "http_server_response_body_size_bytes_sum"
REQUEST_SIZE = "http_server_request_body_size_bytes_sum"
STREAM_DURATION = "http_server_stream_duration_seconds_count"
STREAM_FIRST_BYTE = "http_server_stream_time_to_first_byte_seconds_count"
TEST_SETTINGS = "tests.django_settings.settings"


@pytest.fixture(scope="module", autouse=True)
def _django_project() -> None:
    """Configure Django in this process once; nothing else in the suite uses Django."""
    if not django_settings.configured:
        from tests.django_settings import settings as project

        django_settings.configure(
            **{name: getattr(project, name) for name in dir(project) if name.isupper()})
        django.setup()
    assert django_settings.ROOT_URLCONF == "tests.django_settings.urls", (
        "Django was configured by something else in this process")


@contextmanager
def metrics_settings(registry: CollectorRegistry, **options: Any) -> Iterator[None]:
    with override_settings(ASGI_MCP_METRICS={"registry": registry, **options}):
        yield


@pytest.fixture
def metrics(registry: CollectorRegistry) -> Iterator[CollectorRegistry]:
    """``registry``, configured as the project's registry for the length of the test."""
    with metrics_settings(registry):
        yield registry


def requests(registry: CollectorRegistry, route: str, status: str = "200",
             method: str = "GET", error_type: str = "") -> float:
    return value(registry, DURATION, http_request_method=method, http_route=route,
                 http_response_status_code=status, error_type=error_type)


# --- route labels --------------------------------------------------------------------------


@pytest.mark.parametrize(("pattern", "template"), [
    ("items/<int:id>", "/items/{id}"),
    ("items/<slug>/", "/items/{slug}/"),
    ("", "/"),
    ("api/v1/users/<uuid:user_id>/orders/<int:order>", "/api/v1/users/{user_id}/orders/{order}"),
    (r"^items/(?P<pk>[0-9]+)/$", "/items/{pk}/"),
    (r"^api/legacy/(?P<pk>[0-9]+)/$", "/api/legacy/{pk}/"),
    (r"^articles/([0-9]{4})/([0-9]{2})/$", "/articles/{0}/{1}/"),
    (r"^files/(?P<name>[^/)(]+)\.(?P<ext>json|xml)$", "/files/{name}.{ext}"),
    (r"^nested/(?P<slug>(?:[a-z]+)(-[0-9]+)?)/$", "/nested/{slug}/"),
    (r"^page(?:-(?P<number>\d+))?/$", "/page(?:-{number})?/"),
    (r"^price\$/(?P<amount>\d+)\Z", "/price$/{amount}"),
    (r"^(?i)case/$", "/(?i)case/"),
])
def test_route_template(pattern: str, template: str) -> None:
    from asgi_mcp_metrics.django.routes import route_template

    assert route_template(pattern) == template


@pytest.mark.parametrize(("path", "route"), [
    ("/items/7", "/items/{id}"),
    ("/api/legacy/5/", "/api/legacy/{pk}/"),
    ("/api/archive/2024/", "/api/archive/{0}/"),
    ("/t/acme/items/3", "/t/{tenant}/items/{id}"),
    ("/t/globex/items/4", "/t/{tenant}/items/{id}"),
])
def test_route_label_is_the_url_pattern(metrics: CollectorRegistry, path: str,
                                        route: str) -> None:
    assert Client().get(path).status_code == 200
    assert requests(metrics, route) == 1
    assert total(metrics, DURATION) == 1


def test_resolver_match_route_joins_include_prefixes() -> None:
    from django.urls import resolve

    # What the normalisation builds on: Django joins the include() prefix and a re_path child.
    assert resolve("/api/legacy/5/").route == "api/legacy/(?P<pk>[0-9]+)/$"
    assert resolve("/api/archive/2024/").route == "api/archive/([0-9]{4})/$"


def test_unmatched_path_gets_the_fixed_value(metrics: CollectorRegistry) -> None:
    assert Client().get("/no/such/page").status_code == 404
    assert requests(metrics, UNMATCHED, "404") == 1
    assert total(metrics, DURATION) == 1


def test_not_found_raised_by_a_matched_view_keeps_the_route(metrics: CollectorRegistry) -> None:
    assert Client().get("/items/404").status_code == 404
    assert requests(metrics, "/items/{id}", "404") == 1


def test_slash_redirect_gets_the_fixed_value(metrics: CollectorRegistry) -> None:
    response = Client().get("/api/legacy/5")  # CommonMiddleware's APPEND_SLASH
    assert response.status_code == 301
    assert response["Location"] == "/api/legacy/5/"
    assert requests(metrics, REDIRECT, "301") == 1
    assert total(metrics, DURATION) == 1


def test_method_not_allowed_gets_the_fixed_value(metrics: CollectorRegistry) -> None:
    assert Client().post("/get-only").status_code == 405
    assert requests(metrics, METHOD_NOT_ALLOWED, "405", method="POST") == 1


# --- recording under WSGI (Django's test Client is a WSGI handler) ---------------------------


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


# --- recording under ASGI without the outer middleware (AsyncClient) ------------------------


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


# --- under the outer ASGI middleware (get_asgi_application) --------------------------------


def django_asgi_app() -> Any:
    from asgi_mcp_metrics.django import get_asgi_application

    return get_asgi_application()


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
    pytest.param("/endless", {"disconnect_after": 0.01}, None, id="client_leaves",
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


# --- the endpoint view ------------------------------------------------------------------------


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
    with metrics_settings(registry, auth="tests.test_django.allow_scraper"):
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


# --- configuration ----------------------------------------------------------------------------


@pytest.mark.parametrize(("setting", "named"), [
    (["namespace", "x"], "ASGI_MCP_METRICS (Django settings): expected a dict, got list"),
    ({"namespce": "x"}, "ASGI_MCP_METRICS['namespce'] (Django settings): unknown option; "
                        "did you mean 'namespace'?"),
    ({"request_duration_buckets": [1, 0.5]},
     "ASGI_MCP_METRICS['request_duration_buckets'] (Django settings): expected a non-empty list"),
    ({"max_tool_names": "many"}, "ASGI_MCP_METRICS['max_tool_names'] (Django settings)"),
    ({"namespace": "has-dash"}, "ASGI_MCP_METRICS['namespace'] (Django settings)"),
    ({"auth_basic_username": "prom"}, "auth_basic_password"),
    ({"registry": "tests.django_settings.settings.SECRET_KEY"},
     "ASGI_MCP_METRICS['registry'] (Django settings): expected a prometheus_client "
     "CollectorRegistry"),
    ({"registry": "tests.no_such_module.REGISTRY"},
     "ASGI_MCP_METRICS['registry'] (Django settings): cannot import"),
    ({"auth": "tests.django_settings.settings.SECRET_KEY"},
     "ASGI_MCP_METRICS['auth'] (Django settings): expected a callable"),
])
def test_invalid_settings_are_improperly_configured(setting: Any, named: str) -> None:
    from django.apps import apps
    from django.core.exceptions import ImproperlyConfigured

    with override_settings(ASGI_MCP_METRICS=setting), \
            pytest.raises(ImproperlyConfigured) as raised:
        apps.get_app_config("asgi_mcp_metrics").ready()
    assert named in str(raised.value)


def test_settings_are_read_from_django_settings(registry: CollectorRegistry) -> None:
    from asgi_mcp_metrics.django.conf import get_config

    with metrics_settings(registry, namespace="shop", exclude_paths=["/health"],
                          request_duration_buckets=[0.1, 1]):
        config = get_config()
        assert config.registry is registry
        assert config.settings.namespace == "shop"
        assert config.settings.exclude_paths == ("/health",)
        assert config.settings.request_duration_buckets == (0.1, 1.0)
        Client().get("/items/2")
    assert value(registry, "shop_http_server_request_duration_seconds_bucket",
                 http_request_method="GET", http_route="/items/{id}",
                 http_response_status_code="200", error_type="", le="+Inf") == 1


def test_no_setting_means_defaults() -> None:
    from asgi_mcp_metrics.config import Settings
    from asgi_mcp_metrics.django.conf import load_config

    with override_settings():
        del django_settings.ASGI_MCP_METRICS
        config = load_config()
    assert config.settings == Settings()
    assert config.registry is None


# --- start-up checks --------------------------------------------------------------------------


def check_ids() -> list[str]:
    from django.core.checks import run_checks

    return [str(message.id) for message in run_checks(tags=["asgi_mcp_metrics"])]


def test_complete_setup_passes_the_checks(metrics: CollectorRegistry) -> None:
    assert check_ids() == []


def test_missing_middleware_is_a_warning(metrics: CollectorRegistry) -> None:
    with override_settings(MIDDLEWARE=["django.middleware.common.CommonMiddleware"]):
        assert check_ids() == ["asgi_mcp_metrics.W001"]


def test_subclassed_middleware_counts_as_installed(metrics: CollectorRegistry) -> None:
    middleware = ["tests.django_settings.middleware.ProjectRouteMiddleware"]
    with override_settings(MIDDLEWARE=middleware):
        assert check_ids() == []


def test_missing_url_include_is_a_warning(metrics: CollectorRegistry) -> None:
    with override_settings(ROOT_URLCONF="tests.django_settings.urls_without_metrics"):
        assert check_ids() == ["asgi_mcp_metrics.W002"]


def test_endpoint_served_elsewhere_than_metrics_path_is_a_warning(
        registry: CollectorRegistry) -> None:
    with metrics_settings(registry, metrics_path="/ops/metrics"):
        assert check_ids() == ["asgi_mcp_metrics.W002"]


def test_problems_are_logged_once_by_servers(metrics: CollectorRegistry,
                                             caplog: pytest.LogCaptureFixture,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from asgi_mcp_metrics.django import checks

    monkeypatch.setattr(checks, "_reported", set())
    with override_settings(MIDDLEWARE=[]), caplog.at_level(logging.WARNING, "asgi_mcp_metrics"):
        django_asgi_app()
        django_asgi_app()
    logged = [record.getMessage() for record in caplog.records]
    assert len(logged) == 1
    assert "asgi_mcp_metrics.W001" in logged[0]


def test_wsgi_deployments_log_problems_at_the_first_request(
        metrics: CollectorRegistry, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from django.apps import apps

    from asgi_mcp_metrics.django import checks

    monkeypatch.setattr(checks, "_reported", set())
    apps.get_app_config("asgi_mcp_metrics").ready()  # connects the one-shot receiver again
    with override_settings(ROOT_URLCONF="tests.django_settings.urls_without_metrics"), \
            caplog.at_level(logging.WARNING, "asgi_mcp_metrics"):
        client = Client()
        client.get("/items/1")
        client.get("/items/2")
    logged = [record.getMessage() for record in caplog.records]
    assert len(logged) == 1
    assert "asgi_mcp_metrics.W002" in logged[0]
    assert requests(metrics, "/items/{id}") == 2


def test_silenced_checks_are_not_logged(metrics: CollectorRegistry,
                                        caplog: pytest.LogCaptureFixture,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from asgi_mcp_metrics.django import checks

    monkeypatch.setattr(checks, "_reported", set())
    with override_settings(MIDDLEWARE=[], SILENCED_SYSTEM_CHECKS=["asgi_mcp_metrics.W001"]), \
            caplog.at_level(logging.WARNING, "asgi_mcp_metrics"):
        checks.report_problems_once()
    assert caplog.records == []


# --- the operator surfaces ------------------------------------------------------------------


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


def test_active_stream_under_a_real_asgi_server(metrics: CollectorRegistry) -> None:
    import httpx

    from asgi_mcp_metrics.django import views

    from .e2e.servers import serve, wait_until

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

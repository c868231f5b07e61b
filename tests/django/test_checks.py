"""Django's system checks of the set-up, and how they are reported.

With Django's own test clients and handlers (no server).
"""

from __future__ import annotations

import logging

import pytest
from prometheus_client import CollectorRegistry

django = pytest.importorskip("django")

from django.test import Client, override_settings  # noqa: E402

from tests.django.support import (  # noqa: E402
    django_asgi_app,
    metrics_settings,
    requests,
)


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

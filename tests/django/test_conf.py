"""Settings read from Django's settings, validated at start-up.

With Django's own test clients and handlers (no server).
"""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from tests.asgi import value

django = pytest.importorskip("django")

from django.conf import settings as django_settings  # noqa: E402
from django.test import Client, override_settings  # noqa: E402

from tests.django.support import (  # noqa: E402
    DURATION,
    metrics_settings,
)


@pytest.mark.parametrize(("setting", "named"), [
    (["namespace", "x"], "ASGI_MCP_METRICS (Django settings): expected a dict, got list"),
    ({"namespce": "x"}, "ASGI_MCP_METRICS['namespce'] (Django settings): unknown option; "
                        "did you mean 'namespace'?"),
    ({"request_duration_buckets": [1, 0.5]},
     "ASGI_MCP_METRICS['request_duration_buckets'] (Django settings): expected a non-empty list"),
    ({"max_tool_names": "many"}, "ASGI_MCP_METRICS['max_tool_names'] (Django settings)"),
    ({"session_idle_timeout_seconds": -1},
     "ASGI_MCP_METRICS['session_idle_timeout_seconds'] (Django settings): expected a finite "
     "number >= 0, got -1"),
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


def test_ready_binds_the_registry_and_takes_over_what_came_before(
        registry: CollectorRegistry) -> None:
    """Monitors and LLM metrics created at import time, before ``ready()``, join the binding
    Django's settings configure; the site answers exactly as without the library."""
    from django.apps import apps

    from asgi_mcp_metrics import BackendMonitor, LLMMetrics
    from asgi_mcp_metrics._binding import bound_slots

    paths = ("/items/3", "/items/404", "/api/legacy/7/", "/nowhere")
    with override_settings(MIDDLEWARE=["django.middleware.common.CommonMiddleware"]):
        bare = [_answer(Client().get(path)) for path in paths]

    LLMMetrics(registry=registry).set_build_info("1.2.0", "3f2c1ab", variant="canary")
    monitor = BackendMonitor("db", registry=registry)
    assert value(registry, "mcp_backend_up", backend="db", transport="") == 0
    with metrics_settings(registry, constant_labels={"variant": "canary"}):
        apps.get_app_config("asgi_mcp_metrics").ready()
        [slot] = bound_slots(registry)
        assert slot.who == "the asgi_mcp_metrics.django app config (ready())"
        assert not slot.provisional
        assert monitor._binding.recorder is slot.recorder
        assert value(registry, "mcp_backend_up", backend="db", transport="",
                     variant="canary") == 0
        assert value(registry, "build_info", version="1.2.0", commit="3f2c1ab",
                     variant="canary") == 1
        assert [_answer(Client().get(path)) for path in paths] == bare
    assert value(registry, DURATION, http_request_method="GET", http_route="/items/{id}",
                 http_response_status_code="200", error_type="", variant="canary") == 1
    assert value(registry, DURATION, http_request_method="GET", http_route="/items/{id}",
                 http_response_status_code="404", error_type="", variant="canary") == 1


def test_ready_raises_when_the_registry_was_configured_otherwise(
        registry: CollectorRegistry) -> None:
    from django.apps import apps
    from django.core.exceptions import ImproperlyConfigured

    from asgi_mcp_metrics import MetricsMiddleware

    MetricsMiddleware(_bare_asgi, registry=registry, namespace="shop")
    with metrics_settings(registry, namespace="shop", max_identities=3), \
            pytest.raises(ImproperlyConfigured, match=(
                r"^the asgi_mcp_metrics.django app config \(ready\(\)\): max_identities: .* "
                r"configured by MetricsMiddleware\(\) at .*test_conf.py:\d+ with "
                r"max_identities=50 \(from max_identities \(default\)\); this configuration "
                r"asks for max_identities=3 \(from ASGI_MCP_METRICS\['max_identities'\] "
                r"\(Django settings\)\)")):
        apps.get_app_config("asgi_mcp_metrics").ready()


async def _bare_asgi(scope: Any, receive: Any, send: Any) -> None:
    raise AssertionError("never called")  # pragma: no cover


def _answer(response: Any) -> tuple[int, list[tuple[str, str]], bytes]:
    return response.status_code, sorted(response.items()), response.content

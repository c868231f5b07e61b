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

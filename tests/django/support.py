"""What the Django adapter's tests share: metric names, the settings override, readers."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from tests.asgi import value

pytest.importorskip("django")

from django.test import override_settings

DURATION = "http_server_request_duration_seconds_count"
STREAMS = "http_server_streams_total"
STREAMS_ACTIVE = "http_server_streams_active"
ACTIVE = "http_server_active_requests"
RESPONSE_SIZE = "http_server_response_body_size_bytes_sum"
REQUEST_SIZE = "http_server_request_body_size_bytes_sum"
STREAM_DURATION = "http_server_stream_duration_seconds_count"
STREAM_FIRST_BYTE = "http_server_stream_time_to_first_byte_seconds_count"
TEST_SETTINGS = "tests.django_settings.settings"


@contextmanager
def metrics_settings(registry: CollectorRegistry, **options: Any) -> Iterator[None]:
    with override_settings(ASGI_MCP_METRICS={"registry": registry, **options}):
        yield


def requests(registry: CollectorRegistry, route: str, status: str = "200",
             method: str = "GET", error_type: str = "") -> float:
    return value(registry, DURATION, http_request_method=method, http_route=route,
                 http_response_status_code=status, error_type=error_type)


def django_asgi_app() -> Any:
    from asgi_mcp_metrics.django import get_asgi_application

    return get_asgi_application()

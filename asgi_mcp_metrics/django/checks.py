"""System checks: a missing middleware or URL include is reported once, as a warning.

``manage.py check`` / ``runserver`` / ``test`` show these like Django's own checks (silence them
with ``SILENCED_SYSTEM_CHECKS``).  Servers do not run system checks, so the same findings are
also logged once per process: at start-up by ``get_asgi_application()``, else at the first
request.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from django.apps import AppConfig
from django.conf import settings as django_settings
from django.core.checks import CheckMessage, Tags, register
from django.core.checks import Warning as CheckWarning
from django.urls import Resolver404, resolve
from django.utils.module_loading import import_string

from .conf import get_config

logger = logging.getLogger("asgi_mcp_metrics")

TAG = "asgi_mcp_metrics"
MIDDLEWARE = "asgi_mcp_metrics.django.middleware.RouteMiddleware"
URLS = "asgi_mcp_metrics.django.urls"
MISSING_MIDDLEWARE = "asgi_mcp_metrics.W001"
MISSING_ENDPOINT = "asgi_mcp_metrics.W002"

# Check ids already shown in this process, by the check framework or the log.
_reported: set[str] = set()


def check_middleware(app_configs: Sequence[AppConfig] | None = None,
                     **kwargs: Any) -> list[CheckMessage]:
    return _shown(middleware_problems())


def check_endpoint(app_configs: Sequence[AppConfig] | None = None,
                   **kwargs: Any) -> list[CheckMessage]:
    return _shown(endpoint_problems())


def middleware_problems() -> list[CheckMessage]:
    from .middleware import RouteMiddleware

    for entry in getattr(django_settings, "MIDDLEWARE", ()):
        try:
            installed = import_string(entry)
        except ImportError:
            continue  # Django's own start-up reports that
        if isinstance(installed, type) and issubclass(installed, RouteMiddleware):
            return []
    return [CheckWarning(
        f"{MIDDLEWARE} is not in MIDDLEWARE: requests get no route label (http_route), and "
        "without get_asgi_application() they are not recorded at all.",
        hint=f"Add {MIDDLEWARE!r} as the first entry of MIDDLEWARE.",
        id=MISSING_MIDDLEWARE,
    )]


def endpoint_problems() -> list[CheckMessage]:
    from .views import metrics

    metrics_path = get_config().settings.metrics_path
    try:
        served_by = resolve(metrics_path).func
    except Resolver404:
        served_by = None
    if served_by is metrics:
        return []
    return [CheckWarning(
        f"The metrics endpoint is not served at {metrics_path!r} (metrics_path): Prometheus "
        "cannot scrape this project, and requests to that path are measured like any other.",
        hint=(f"Add path('', include({URLS!r})) to ROOT_URLCONF, or set metrics_path to where "
              "the endpoint is served. Silence this check if the metrics are served by another "
              "process."),
        id=MISSING_ENDPOINT,
    )]


register(TAG)(check_middleware)
register(Tags.urls, TAG)(check_endpoint)


def report_problems_once() -> None:
    """Log each finding not shown yet in this process (servers run no system checks)."""
    for message in (*middleware_problems(), *endpoint_problems()):
        if message.id in _reported or message.is_silenced():
            continue
        _reported.add(str(message.id))
        logger.warning("%s", message)


def _shown(messages: list[CheckMessage]) -> list[CheckMessage]:
    _reported.update(str(message.id) for message in messages)
    return messages

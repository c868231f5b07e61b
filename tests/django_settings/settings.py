"""Settings for the Django adapter's tests; each test swaps in its own registry."""

from __future__ import annotations

DEBUG = False
SECRET_KEY = "tests-only"
ALLOWED_HOSTS = ["*"]
USE_TZ = True
ROOT_URLCONF = "tests.django_settings.urls"
INSTALLED_APPS = ["asgi_mcp_metrics.django"]
MIDDLEWARE = [
    "asgi_mcp_metrics.django.middleware.RouteMiddleware",
    "django.middleware.common.CommonMiddleware",
]
# Records into a registry of its own until a test overrides it with a fresh one.
ASGI_MCP_METRICS = {"registry": "tests.django_settings.registries.DEFAULT"}
LOGGING_CONFIG = None

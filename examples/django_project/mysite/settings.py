"""Settings of the example project: the metrics are configured here and nowhere else."""

from __future__ import annotations

import os

DEBUG = False
SECRET_KEY = "example-only-not-a-secret"
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]

INSTALLED_APPS = [
    "asgi_mcp_metrics.django",  # validates ASGI_MCP_METRICS at start-up
    "shop",
]

MIDDLEWARE = [
    # First, so that it sees every response the other middleware produce.
    "asgi_mcp_metrics.django.middleware.RouteMiddleware",
    "django.middleware.common.CommonMiddleware",
]

ROOT_URLCONF = "mysite.urls"
ASGI_APPLICATION = "mysite.asgi.application"
WSGI_APPLICATION = "mysite.wsgi.application"

ASGI_MCP_METRICS = {
    "exclude_paths": ["/health"],
    "mcp_paths": ["/mcp"],
    # Set SHOP_METRICS_TOKEN to require "Authorization: Bearer <token>" on /metrics.
    "auth_bearer_token": os.environ.get("SHOP_METRICS_TOKEN") or None,
}

USE_TZ = True
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"asgi_mcp_metrics": {"handlers": ["console"], "level": "WARNING"}},
}

from __future__ import annotations

from django.urls import include, path

urlpatterns = [
    path("", include("asgi_mcp_metrics.django.urls")),  # GET /metrics
    path("", include("shop.urls")),
]

from __future__ import annotations

from django.urls import include, path, re_path

from . import views

legacy = [
    re_path(r"^legacy/(?P<pk>[0-9]+)/$", views.item),
    re_path(r"^archive/([0-9]{4})/$", views.archive),
]

tenant = [
    path("items/<int:id>", views.item),
]

urlpatterns = [
    path("", include("asgi_mcp_metrics.django.urls")),
    path("items/<int:id>", views.item),
    path("api/", include(legacy)),
    path("t/<slug:tenant>/", include(tenant)),
    path("events", views.events),
    path("async-events", views.async_events),
    path("endless", views.endless),
    path("ticking", views.ticking),
    path("download", views.download),
    path("boom", views.boom),
    path("get-only", views.get_only),
    path("upload", views.upload),
    path("health", views.item),
]

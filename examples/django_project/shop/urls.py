from __future__ import annotations

from django.urls import path, re_path

from . import views

urlpatterns = [
    path("items/", views.item_list, name="item-list"),
    path("items/<int:item_id>", views.item_detail, name="item-detail"),
    # The route label of this one is /legacy/items/{item_id}/.
    re_path(r"^legacy/items/(?P<item_id>[0-9]+)/$", views.item_detail, name="legacy-item"),
    path("events", views.price_events, name="price-events"),
    path("health", views.health, name="health"),
]

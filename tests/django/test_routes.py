"""The ``http_route`` label from Django's URL patterns.

With Django's own test clients and handlers (no server).
"""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from tests.asgi import total

django = pytest.importorskip("django")

from django.test import Client  # noqa: E402

from asgi_mcp_metrics.routing import (  # noqa: E402
    METHOD_NOT_ALLOWED,
    REDIRECT,
    UNMATCHED,
)
from tests.django.support import (  # noqa: E402
    DURATION,
    requests,
)


@pytest.mark.parametrize(("pattern", "template"), [
    ("items/<int:id>", "/items/{id}"),
    ("items/<slug>/", "/items/{slug}/"),
    ("", "/"),
    ("api/v1/users/<uuid:user_id>/orders/<int:order>", "/api/v1/users/{user_id}/orders/{order}"),
    (r"^items/(?P<pk>[0-9]+)/$", "/items/{pk}/"),
    (r"^api/legacy/(?P<pk>[0-9]+)/$", "/api/legacy/{pk}/"),
    (r"^articles/([0-9]{4})/([0-9]{2})/$", "/articles/{0}/{1}/"),
    (r"^files/(?P<name>[^/)(]+)\.(?P<ext>json|xml)$", "/files/{name}.{ext}"),
    (r"^nested/(?P<slug>(?:[a-z]+)(-[0-9]+)?)/$", "/nested/{slug}/"),
    (r"^page(?:-(?P<number>\d+))?/$", "/page(?:-{number})?/"),
    (r"^price\$/(?P<amount>\d+)\Z", "/price$/{amount}"),
    (r"^(?i)case/$", "/(?i)case/"),
])
def test_route_template(pattern: str, template: str) -> None:
    from asgi_mcp_metrics.django.routes import route_template

    assert route_template(pattern) == template


@pytest.mark.parametrize(("path", "route"), [
    ("/items/7", "/items/{id}"),
    ("/api/legacy/5/", "/api/legacy/{pk}/"),
    ("/api/archive/2024/", "/api/archive/{0}/"),
    ("/t/acme/items/3", "/t/{tenant}/items/{id}"),
    ("/t/globex/items/4", "/t/{tenant}/items/{id}"),
])
def test_route_label_is_the_url_pattern(metrics: CollectorRegistry, path: str,
                                        route: str) -> None:
    assert Client().get(path).status_code == 200
    assert requests(metrics, route) == 1
    assert total(metrics, DURATION) == 1


def test_resolver_match_route_joins_include_prefixes() -> None:
    from django.urls import resolve

    # What the normalisation builds on: Django joins the include() prefix and a re_path child.
    assert resolve("/api/legacy/5/").route == "api/legacy/(?P<pk>[0-9]+)/$"
    assert resolve("/api/archive/2024/").route == "api/archive/([0-9]{4})/$"


def test_unmatched_path_gets_the_fixed_value(metrics: CollectorRegistry) -> None:
    assert Client().get("/no/such/page").status_code == 404
    assert requests(metrics, UNMATCHED, "404") == 1
    assert total(metrics, DURATION) == 1


def test_not_found_raised_by_a_matched_view_keeps_the_route(metrics: CollectorRegistry) -> None:
    assert Client().get("/items/404").status_code == 404
    assert requests(metrics, "/items/{id}", "404") == 1


def test_slash_redirect_gets_the_fixed_value(metrics: CollectorRegistry) -> None:
    response = Client().get("/api/legacy/5")  # CommonMiddleware's APPEND_SLASH
    assert response.status_code == 301
    assert response["Location"] == "/api/legacy/5/"
    assert requests(metrics, REDIRECT, "301") == 1
    assert total(metrics, DURATION) == 1


def test_method_not_allowed_gets_the_fixed_value(metrics: CollectorRegistry) -> None:
    assert Client().post("/get-only").status_code == 405
    assert requests(metrics, METHOD_NOT_ALLOWED, "405", method="POST") == 1

"""Django is configured once, in-process, from ``tests/django_settings``; every test records
into a fresh registry given through ``settings.ASGI_MCP_METRICS["registry"]``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry

django = pytest.importorskip("django")

from django.conf import settings as django_settings  # noqa: E402

from tests.django.support import (  # noqa: E402
    metrics_settings,
)


@pytest.fixture(scope="module", autouse=True)
def _django_project() -> None:
    """Configure Django in this process once; nothing else in the suite uses Django."""
    if not django_settings.configured:
        from tests.django_settings import settings as project

        django_settings.configure(
            **{name: getattr(project, name) for name in dir(project) if name.isupper()})
        django.setup()
    assert django_settings.ROOT_URLCONF == "tests.django_settings.urls", (
        "Django was configured by something else in this process")


@pytest.fixture
def metrics(registry: CollectorRegistry) -> Iterator[CollectorRegistry]:
    """``registry``, configured as the project's registry for the length of the test."""
    with metrics_settings(registry):
        yield registry

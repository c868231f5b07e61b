"""pytest plugin (entry point ``pytest11``): the ``metrics_registry`` fixture."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry


@pytest.fixture
def metrics_registry() -> CollectorRegistry:
    """A fresh registry per test: pass it as ``registry=`` and every count starts at zero."""
    return CollectorRegistry()

from __future__ import annotations

from prometheus_client import CollectorRegistry

DEFAULT = CollectorRegistry()

"""Helpers for testing code instrumented with this library.

``sample`` reads one sample, ``total`` sums the samples whose labels include the given ones, and
``metric_delta`` measures how much a metric rose inside a block::

    with metric_delta("mcp_tool_calls_total", registry=registry, gen_ai_tool_name="add") as d:
        await client.call_tool("add", {"a": 1, "b": 2})
    assert d.value == 1

A name that neither the registry nor the catalog knows is an error that lists the closest known
names, so a typo cannot pass as "the metric stayed at 0".  A catalog metric that has not been
written yet reads 0: families appear when their feature is first used.

The pytest plugin (:mod:`asgi_mcp_metrics.pytest_plugin`, registered through the ``pytest11``
entry point) adds the ``metrics_registry`` fixture: a fresh registry per test.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import REGISTRY, CollectorRegistry

from .catalog import METRICS

__all__ = ["MetricDelta", "UnknownMetricError", "metric_delta", "sample", "total"]

_SUFFIXES = {
    "counter": ("", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
}
#: Every sample name the catalog can produce (without a namespace).
_CATALOG_SAMPLES = frozenset(
    spec.name.removesuffix("_total") + suffix if suffix == "_created" else spec.name + suffix
    for spec in METRICS for suffix in _SUFFIXES[spec.kind])


class UnknownMetricError(LookupError):
    """A sample name that neither the registry nor the catalog knows."""


def total(registry: CollectorRegistry, name: str, **labels: str) -> float:
    """Sum of every sample called ``name`` whose labels include ``labels``."""
    result = 0.0
    found = False
    for family in registry.collect():
        for item in family.samples:
            if item.name != name:
                continue
            found = True
            if all(item.labels.get(key) == value for key, value in labels.items()):
                result += item.value
    if not found:
        _check_known(registry, name)
    return result


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    """The value of the sample ``name`` with exactly ``labels``; 0.0 when that series is absent."""
    result = registry.get_sample_value(name, labels)
    if result is None:
        _check_known(registry, name)
        return 0.0
    return result


class MetricDelta:
    """How much ``name`` (summed over the labels not given) rose since the block began.

    Inside the block ``value`` is the rise so far; after it, the rise over the whole block.
    """

    def __init__(self, registry: CollectorRegistry, name: str, labels: dict[str, str]) -> None:
        self.registry = registry
        self.name = name
        self.labels = labels
        self.before = total(registry, name, **labels)
        self.after: float | None = None

    @property
    def value(self) -> float:
        after = self.after if self.after is not None else self._now()
        return after - self.before

    def _now(self) -> float:
        return total(self.registry, self.name, **self.labels)

    def __repr__(self) -> str:
        return f"MetricDelta({self.name!r}, {self.labels!r}, value={self.value!r})"


@contextmanager
def metric_delta(name: str, *, registry: CollectorRegistry | None = None,
                 **labels: str) -> Iterator[MetricDelta]:
    """Measure the rise of ``name`` inside the block (default registry: the global one)."""
    delta = MetricDelta(REGISTRY if registry is None else registry, name, labels)
    try:
        yield delta
    finally:
        delta.after = delta._now()


def _check_known(registry: CollectorRegistry, name: str) -> None:
    if name in _CATALOG_SAMPLES:
        return
    present = {item.name for family in registry.collect() for item in family.samples}
    # A namespace prefixes the catalog's names: ``myapp_mcp_tool_calls_total``.
    if name in present or any(name.endswith("_" + known) for known in _CATALOG_SAMPLES):
        return
    close = difflib.get_close_matches(name, sorted(present | _CATALOG_SAMPLES), n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise UnknownMetricError(f"no metric produces a sample named {name!r}{hint}")

"""OpenTelemetry export: the registry's own families sent over OTLP, recorded once.

Nothing records twice: every ``export_interval`` a daemon thread reads the library's families
from the ``prometheus_client`` registry (the catalog says which) and hands them to the real
OTLP exporter (``opentelemetry-exporter-otlp-proto-http`` or ``-grpc``, the ``otlp`` extra) as
OpenTelemetry metric data, with the names, units and attributes of the semantic conventions
(:func:`~asgi_mcp_metrics.catalog.otel_name`, :data:`~asgi_mcp_metrics.catalog.OTEL_ATTRIBUTES`):

* counters -> monotonic sums, cumulative;
* gauges whose workers add up (``livesum``: in-flight requests, open streams and sessions) ->
  non-monotonic sums (UpDownCounter); the others -> gauges;
* histograms -> explicit-bucket histograms with the boundaries as recorded; Prometheus keeps no
  minimum or maximum, so none is sent.

The request path is untouched.  This module is imported only when ``otlp_endpoint`` is set; the
exporter reads the usual ``OTEL_EXPORTER_OTLP_*`` variables (headers, timeout, certificates)
and the resource comes from ``OTEL_SERVICE_NAME`` / ``OTEL_RESOURCE_ATTRIBUTES``.
"""

from __future__ import annotations

import atexit
import logging
import math
import threading
import time
import weakref
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric as PrometheusFamily

from ._version import __version__
from .catalog import METRICS, NETWORK_TRANSPORTS, OTEL_ATTRIBUTES, MetricSpec, otel_name
from .config import Settings

__all__ = ["OtlpExport", "start_export", "stop_exports"]

logger = logging.getLogger("asgi_mcp_metrics")

_exports: weakref.WeakKeyDictionary[CollectorRegistry, dict[tuple[str, str, str], OtlpExport]] = (
    weakref.WeakKeyDictionary())
_lock = threading.Lock()


def start_export(registry: CollectorRegistry, settings: Settings) -> OtlpExport:
    """The running export of ``registry`` in ``settings.namespace`` to ``otlp_endpoint``;
    started on the first call, the same object after (one per registry, namespace, endpoint)."""
    key = (settings.namespace, settings.otlp_endpoint, settings.otlp_protocol)
    with _lock:
        per_registry = _exports.setdefault(registry, {})
        export = per_registry.get(key)
        if export is None:
            export = per_registry[key] = OtlpExport(
                registry, _exporter(settings.otlp_endpoint, settings.otlp_protocol),
                namespace=settings.namespace, interval=settings.otlp_interval_seconds)
            export.start()
        return export


def stop_exports(registry: CollectorRegistry) -> None:
    """Export ``registry`` one last time and stop its exports (also done at interpreter exit)."""
    with _lock:
        exports = list(_exports.pop(registry, {}).values())
    for export in exports:
        export.shutdown()


def _exporter(endpoint: str, protocol: str) -> Any:
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
        parts = urlsplit(endpoint)
        return OTLPMetricExporter(endpoint=parts.netloc, insecure=parts.scheme == "http")
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
        OTLPMetricExporter as HttpExporter,
    )
    if urlsplit(endpoint).path in ("", "/"):
        endpoint = endpoint.rstrip("/") + "/v1/metrics"
    return HttpExporter(endpoint=endpoint)


class OtlpExport:
    """Reads ``registry`` every ``interval`` seconds and exports what it holds of the catalog."""

    def __init__(self, registry: CollectorRegistry, exporter: Any, *, namespace: str = "",
                 interval: float = 60.0) -> None:
        self.registry = registry
        self.exporter = exporter
        self.interval = interval
        prefix = f"{namespace}_" if namespace else ""
        # prometheus_client names a counter's family without ``_total``.
        self._specs = {prefix + (spec.name.removesuffix("_total") if spec.kind == "counter"
                                 else spec.name): spec for spec in METRICS}
        self._started_ns = time.time_ns()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="asgi-mcp-metrics-otlp",
                                        daemon=True)
        self._export_lock = threading.Lock()

    def start(self) -> None:
        self._thread.start()
        atexit.register(self.shutdown)

    def shutdown(self) -> None:
        """Export one last time and stop the exporter."""
        if self._stop.is_set():
            return
        self._stop.set()
        # Stopped: interpreter exit has nothing left to do, and must not keep the registry.
        atexit.unregister(self.shutdown)
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()
        self.export()
        self.exporter.shutdown()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.export()

    def export(self) -> bool:
        """Export the registry's current values now; False when that failed (logged)."""
        with self._export_lock:
            try:
                from opentelemetry.sdk.metrics.export import MetricExportResult
                result = self.exporter.export(self.collect())
                return bool(result == MetricExportResult.SUCCESS)
            except Exception:
                logger.exception("asgi_mcp_metrics: the OTLP export failed")
                return False

    def collect(self) -> Any:
        """The registry's families of the catalog as OpenTelemetry ``MetricsData``."""
        from opentelemetry.sdk.metrics.export import (
            MetricsData,
            ResourceMetrics,
            ScopeMetrics,
        )
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.util.instrumentation import InstrumentationScope

        now = time.time_ns()
        metrics = [self._metric(spec, family, now) for family in self.registry.collect()
                   if (spec := self._specs.get(family.name)) is not None and family.samples]
        scope = ScopeMetrics(scope=InstrumentationScope("asgi_mcp_metrics", __version__),
                             metrics=metrics, schema_url="")
        return MetricsData(resource_metrics=[ResourceMetrics(
            resource=Resource.create(), scope_metrics=[scope], schema_url="")])

    def _metric(self, spec: MetricSpec, family: PrometheusFamily, now: int) -> Any:
        from opentelemetry.sdk.metrics.export import (
            AggregationTemporality,
            Gauge,
            Histogram,
            Metric,
            Sum,
        )

        name, unit = otel_name(spec)
        cumulative = AggregationTemporality.CUMULATIVE
        data: Any
        if spec.kind == "histogram":
            data = Histogram(data_points=list(self._histogram_points(family, now)),
                             aggregation_temporality=cumulative)
        elif spec.kind == "counter":
            data = Sum(data_points=list(self._number_points(family, "_total", now)),
                       aggregation_temporality=cumulative, is_monotonic=True)
        elif spec.multiprocess_mode == "livesum":
            data = Sum(data_points=list(self._number_points(family, "", now)),
                       aggregation_temporality=cumulative, is_monotonic=False)
        else:
            data = Gauge(data_points=list(self._number_points(family, "", now)))
        return Metric(name=name, description=spec.help, unit=unit, data=data)

    def _number_points(self, family: PrometheusFamily, suffix: str, now: int) -> Iterator[Any]:
        from opentelemetry.sdk.metrics.export import NumberDataPoint

        created = _created(family)
        for sample in family.samples:
            if sample.name == family.name + suffix:
                labels = tuple(sorted(sample.labels.items()))
                yield NumberDataPoint(
                    attributes=attributes(sample.labels),
                    start_time_unix_nano=created.get(labels, self._started_ns),
                    time_unix_nano=now, value=sample.value)

    def _histogram_points(self, family: PrometheusFamily, now: int) -> Iterator[Any]:
        from opentelemetry.sdk.metrics.export import HistogramDataPoint

        series: dict[tuple[tuple[str, str], ...], dict[str, Any]] = {}
        for sample in family.samples:
            labels = dict(sample.labels)
            bound = labels.pop("le", None)
            point = series.setdefault(tuple(sorted(labels.items())), {"buckets": []})
            kind = sample.name[len(family.name):]
            if kind == "_bucket" and bound is not None:
                point["buckets"].append((float(bound), sample.value))
            elif kind in ("_count", "_sum"):
                point[kind] = sample.value
        created = _created(family)
        for key, point in series.items():
            buckets = sorted(point["buckets"])
            bounds = [bound for bound, _ in buckets if not math.isinf(bound)]
            cumulative = [count for _, count in buckets]
            counts = [int(c - p) for c, p in zip(cumulative, [0.0, *cumulative[:-1]], strict=True)]
            # Prometheus keeps no minimum or maximum: the points carry none (absent in OTLP).
            unknown: Any = None
            yield HistogramDataPoint(
                attributes=attributes(dict(key)),
                start_time_unix_nano=created.get(key, self._started_ns), time_unix_nano=now,
                count=int(point.get("_count", 0)), sum=point.get("_sum", 0.0),
                bucket_counts=counts, explicit_bounds=bounds, min=unknown, max=unknown)


def attributes(labels: dict[str, str]) -> dict[str, str]:
    """Prometheus labels as OpenTelemetry attributes: semconv names, empty values left out
    (a label the series does not use), ``network.transport`` beside ``transport``."""
    result = {OTEL_ATTRIBUTES.get(name, name): value for name, value in labels.items() if value}
    network = NETWORK_TRANSPORTS.get(labels.get("transport", ""))
    if network is not None:
        result["network.transport"] = network
    return result


def _created(family: PrometheusFamily) -> dict[tuple[tuple[str, str], ...], int]:
    """Series -> its creation time (ns), from the ``_created`` samples."""
    return {tuple(sorted(sample.labels.items())): int(sample.value * 1e9)
            for sample in family.samples if sample.name == family.name + "_created"}

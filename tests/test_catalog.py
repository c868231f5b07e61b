from __future__ import annotations

import re
from pathlib import Path

from prometheus_client import CollectorRegistry

from asgi_mcp_metrics._binding import get_recorder
from asgi_mcp_metrics.catalog import METRICS
from asgi_mcp_metrics.docgen import metrics_markdown

DOC = Path(__file__).resolve().parents[1] / "docs" / "metrics.md"
NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


def test_docs_metrics_md_is_generated_from_the_catalog() -> None:
    assert DOC.read_text() == metrics_markdown(), (
        "docs/metrics.md is stale: python -m asgi_mcp_metrics.docgen metrics > docs/metrics.md")


def test_names_follow_prometheus_conventions() -> None:
    names = [spec.name for spec in METRICS]
    assert len(names) == len(set(names))
    for spec in METRICS:
        assert NAME.match(spec.name), spec.name
        assert all(NAME.match(label) and not label.startswith("__") for label in spec.labels)
        assert spec.name.endswith("_total") == (spec.kind == "counter"), spec.name
        if spec.kind == "histogram":
            assert spec.buckets == tuple(sorted(set(spec.buckets))), spec.name
            if spec.unit:
                assert spec.name.endswith("_" + spec.unit), spec.name


def test_every_catalog_entry_is_registered_once_its_layer_is_on() -> None:
    registry = CollectorRegistry()
    recorder = get_recorder(registry)
    for _ in range(2):  # enabling again registers nothing twice
        for layer in {spec.layer for spec in METRICS}:
            recorder.enable(layer)
    exposed = {family.name for family in registry.collect()}
    expected = {spec.name[: -len("_total")] if spec.kind == "counter" else spec.name
                for spec in METRICS}
    assert exposed == expected


def test_semconv_names_and_buckets() -> None:
    by_name = {spec.name: spec for spec in METRICS}
    http = by_name["http_server_request_duration_seconds"]
    assert http.labels[:3] == ("http_request_method", "http_route", "http_response_status_code")
    assert http.buckets == (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5,
                            5.0, 7.5, 10.0)
    op = by_name["mcp_server_operation_duration_seconds"]
    assert op.labels[0] == "mcp_method_name"
    assert op.buckets[0] == 0.01 and op.buckets[-1] == 300.0
    assert by_name["http_server_stream_duration_seconds"].buckets[-1] == 86400.0


def test_default_buckets_are_the_catalogs() -> None:
    from asgi_mcp_metrics import Settings

    defaults = Settings()
    options = {spec.buckets_option for spec in METRICS if spec.buckets_option}
    assert options == {"request_duration_buckets", "stream_duration_buckets",
                       "operation_duration_buckets", "session_duration_buckets"}
    for spec in METRICS:
        if spec.buckets_option:
            assert getattr(defaults, spec.buckets_option) == spec.buckets, spec.name

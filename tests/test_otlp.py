"""The OTLP export's mapping and options, without a network (``tests/e2e/test_otlp.py`` sends)."""

from __future__ import annotations

import gc
import io
import re
import weakref
from pathlib import Path

import pytest
from opentelemetry.sdk.metrics.export import ConsoleMetricExporter
from prometheus_client import CollectorRegistry

from asgi_mcp_metrics import ConfigError, Settings
from asgi_mcp_metrics.catalog import BY_NAME, METRICS, otel_name
from asgi_mcp_metrics.otlp import OtlpExport, attributes

DOC = Path(__file__).parent.parent / "docs" / "opentelemetry.md"


def test_a_stopped_export_lets_its_registry_go() -> None:
    """Stopping an export (a test's teardown, an app rebuilt) leaves nothing that holds the
    registry until interpreter exit; it exported once more on the way out."""
    registry = CollectorRegistry()
    out = io.StringIO()
    export = OtlpExport(registry, ConsoleMetricExporter(out=out), interval=3600)
    export.start()
    export.shutdown()
    assert '"resource_metrics"' in out.getvalue()
    gone = weakref.ref(registry)
    del registry, export
    gc.collect()
    assert gone() is None


def test_the_docs_name_table_is_the_catalog() -> None:
    row = re.compile(r"^\| `(\w+)` \| `(\w+\.[\w.]+)` \|\s*`?([^|`]*?)`?\s*\|$", re.M)
    rows = row.findall(DOC.read_text())
    assert len(rows) == 6
    for prometheus, name, unit in rows:
        assert otel_name(BY_NAME[prometheus]) == (name, unit.strip())


def test_semconv_names_and_units() -> None:
    assert otel_name(BY_NAME["mcp_server_operation_duration_seconds"]) == (
        "mcp.server.operation.duration", "s")
    assert otel_name(BY_NAME["mcp_client_operation_duration_seconds"]) == (
        "mcp.client.operation.duration", "s")
    assert otel_name(BY_NAME["http_server_request_body_size_bytes"]) == (
        "http.server.request.body.size", "By")
    assert otel_name(BY_NAME["gen_ai_client_operation_duration_seconds"]) == (
        "gen_ai.client.operation.duration", "s")
    assert otel_name(BY_NAME["asgi_mcp_metrics_internal_errors_total"]) == (
        "asgi_mcp_metrics.internal.errors", "")


def test_every_metric_has_its_own_name() -> None:
    names = [otel_name(spec)[0] for spec in METRICS]
    assert len(set(names)) == len(names)


def test_labels_become_semconv_attributes() -> None:
    assert attributes({"mcp_method_name": "tools/call", "gen_ai_tool_name": "add",
                       "error_type": "", "transport": "stdio", "backend": "b"}) == {
        "mcp.method.name": "tools/call", "gen_ai.tool.name": "add", "transport": "stdio",
        "network.transport": "pipe", "backend": "b"}


@pytest.mark.parametrize(("option", "value"), [
    ("otlp_protocol", "http/json"),
    ("otlp_endpoint", "collector:4318"),
    ("otlp_endpoint", "http://"),
    ("otlp_interval_seconds", 0),
])
def test_bad_options_fail_naming_the_option(option: str, value: object) -> None:
    with pytest.raises(ConfigError, match=option):
        Settings(**{option: value})  # type: ignore[arg-type]


def test_the_environment_configures_the_export(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASGI_MCP_METRICS_OTLP_ENDPOINT", "https://collector:4317")
    monkeypatch.setenv("ASGI_MCP_METRICS_OTLP_PROTOCOL", "grpc")
    monkeypatch.setenv("ASGI_MCP_METRICS_OTLP_INTERVAL_SECONDS", "15")
    settings = Settings.load()
    assert (settings.otlp_endpoint, settings.otlp_protocol, settings.otlp_interval_seconds) == (
        "https://collector:4317", "grpc", 15.0)

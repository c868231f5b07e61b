"""The OTLP export: the real OpenTelemetry exporters (HTTP and gRPC) send what a real ``mcp``
SDK server recorded to a receiver started here, which decodes the protobuf; names, units,
attributes, bucket boundaries and values are checked against the registry the app recorded."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent import futures
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc
import pytest
from mcp import Client
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.metrics.v1 import metrics_pb2
from prometheus_client import CollectorRegistry

from asgi_mcp_metrics.catalog import (
    HTTP_DURATION_BUCKETS,
    LONG_LIVED_BUCKETS,
    MCP_OPERATION_BUCKETS,
)
from asgi_mcp_metrics.otlp import stop_exports
from asgi_mcp_metrics.starlette import instrument
from asgi_mcp_metrics.testing import sample

from ..docs import doc_block
from .servers import ROOT, free_port, gauges_idle, serve, wait_until
from .test_mcp_wire import HANDSHAKE, common_calls, make_server

pytestmark = pytest.mark.e2e

DOC = ROOT / "docs" / "opentelemetry.md"
CUMULATIVE = metrics_pb2.AGGREGATION_TEMPORALITY_CUMULATIVE


class Received:
    """The export requests a receiver got, decoded."""

    def __init__(self) -> None:
        self.requests: list[metrics_service_pb2.ExportMetricsServiceRequest] = []
        self.lock = threading.Lock()

    def add(self, request: metrics_service_pb2.ExportMetricsServiceRequest) -> None:
        with self.lock:
            self.requests.append(request)

    def count(self) -> int:
        with self.lock:
            return len(self.requests)

    def metrics(self) -> dict[str, metrics_pb2.Metric]:
        """The metrics of the last request, by name."""
        with self.lock:
            last = self.requests[-1]
        scopes = [scope for resource in last.resource_metrics for scope in resource.scope_metrics]
        assert [scope.scope.name for scope in scopes] == ["asgi_mcp_metrics"]
        return {metric.name: metric for metric in scopes[0].metrics}


@contextmanager
def http_receiver() -> Iterator[tuple[str, Received]]:
    received = Received()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            assert self.path == "/v1/metrics"
            assert self.headers["Content-Type"] == "application/x-protobuf"
            request = metrics_service_pb2.ExportMetricsServiceRequest()
            request.ParseFromString(body)
            received.add(request)
            answer = metrics_service_pb2.ExportMetricsServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", received
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def grpc_receiver() -> Iterator[tuple[str, Received]]:
    received = Received()

    class Service(metrics_service_pb2_grpc.MetricsServiceServicer):
        def Export(self, request: Any, context: Any) -> Any:
            received.add(request)
            return metrics_service_pb2.ExportMetricsServiceResponse()

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(Service(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"http://127.0.0.1:{port}", received
    finally:
        server.stop(grace=None)


RECEIVERS = {"http/protobuf": http_receiver, "grpc": grpc_receiver}


def attributes(point: Any) -> dict[str, str]:
    return {item.key: item.value.string_value for item in point.attributes}


def point(metric: metrics_pb2.Metric, **expected: str) -> Any:
    """The one data point of ``metric`` whose attributes are exactly ``expected``."""
    data = getattr(metric, metric.WhichOneof("data"))
    found = [p for p in data.data_points if attributes(p) == expected]
    assert len(found) == 1, [attributes(p) for p in data.data_points]
    return found[0]


def per_bucket(registry: CollectorRegistry, name: str, bounds: tuple[float, ...],
               **labels: str) -> list[int]:
    """The registry's cumulative buckets of one series as OTLP's per-bucket counts."""
    cumulative = [sample(registry, f"{name}_bucket", le=str(bound), **labels)
                  for bound in bounds] + [sample(registry, f"{name}_bucket", le="+Inf", **labels)]
    return [int(c - p) for c, p in zip(cumulative, [0.0, *cumulative[:-1]], strict=True)]


@pytest.mark.parametrize("protocol", list(RECEIVERS))
def test_the_exporter_sends_the_catalog_with_semconv_names(registry: CollectorRegistry,
                                                           protocol: str) -> None:
    with RECEIVERS[protocol]() as (endpoint, received):
        app = instrument(make_server().streamable_http_app(), registry=registry,
                         otlp_endpoint=endpoint, otlp_protocol=protocol,
                         otlp_interval_seconds=0.2)
        try:
            with serve(app) as url:
                async def session() -> None:
                    async with Client(url + "/mcp", mode="legacy") as client:
                        await common_calls(client)

                asyncio.run(session())
                wait_until(lambda: gauges_idle(registry))
            # The periodic export runs on its own; the last one goes out when it stops.
            wait_until(lambda: received.count() >= 1)
        finally:
            stop_exports(registry)
        metrics = received.metrics()

    operations = metrics["mcp.server.operation.duration"]
    assert operations.unit == "s"
    assert operations.histogram.aggregation_temporality == CUMULATIVE
    add = point(operations, **{"mcp.method.name": "tools/call", "gen_ai.tool.name": "add",
                               "mcp.protocol.version": HANDSHAKE})
    labels = {"mcp_method_name": "tools/call", "gen_ai_tool_name": "add",
              "gen_ai_prompt_name": "", "error_type": "", "mcp_protocol_version": HANDSHAKE}
    assert add.count == 3
    assert list(add.explicit_bounds) == list(MCP_OPERATION_BUCKETS)
    assert list(add.bucket_counts) == per_bucket(
        registry, "mcp_server_operation_duration_seconds", MCP_OPERATION_BUCKETS, **labels)
    assert sum(add.bucket_counts) == 3
    assert add.sum == sample(registry, "mcp_server_operation_duration_seconds_sum", **labels)
    assert not add.HasField("min") and not add.HasField("max")
    boom = point(operations, **{"mcp.method.name": "tools/call", "gen_ai.tool.name": "boom",
                                "error.type": "tool_error", "mcp.protocol.version": HANDSHAKE})
    assert boom.count == 1
    assert point(operations, **{"mcp.method.name": "prompts/get", "gen_ai.prompt.name": "greet",
                                "mcp.protocol.version": HANDSHAKE}).count == 1

    calls = metrics["mcp.tool.calls"]
    assert (calls.sum.is_monotonic, calls.sum.aggregation_temporality) == (True, CUMULATIVE)
    assert point(calls, **{"gen_ai.tool.name": "add", "outcome": "ok"}).as_double == 3
    assert point(calls, **{"gen_ai.tool.name": "_OTHER", "outcome": "tool_error"}).as_double == 1

    requests = metrics["mcp.server.requests"]
    assert point(requests, **{"mcp.method.name": "tools/list", "outcome": "ok",
                              "transport": "streamable_http",
                              "network.transport": "tcp"}).as_double == 1

    sessions = metrics["mcp.server.session.duration"]
    assert sessions.unit == "s"
    ended = point(sessions, transport="streamable_http", end_reason="client_delete",
                  **{"network.transport": "tcp"})
    assert (ended.count, list(ended.explicit_bounds)) == (1, list(LONG_LIVED_BUCKETS))

    http = metrics["http.server.request.duration"]
    assert http.unit == "s"
    # SSE answers are streams; the 202 of notifications/initialized is the one plain POST.
    accepted = point(http, **{"http.request.method": "POST", "http.route": "/mcp",
                              "http.response.status_code": "202"})
    assert list(accepted.explicit_bounds) == list(HTTP_DURATION_BUCKETS)
    assert accepted.count == 1
    active = metrics["http.server.active_requests"]
    assert (active.unit, active.sum.is_monotonic) == ("{request}", False)
    assert point(active, **{"http.request.method": "POST", "url.scheme": "http"}).as_double == 0
    # Only the catalog's families go out; the app's own metrics stay in Prometheus.
    assert all(not name.startswith("python_") for name in metrics)


def test_the_docs_one_liner_exports(monkeypatch: pytest.MonkeyPatch) -> None:
    from prometheus_client import REGISTRY

    monkeypatch.setenv("ASGI_MCP_METRICS_OTLP_INTERVAL_SECONDS", "0.2")
    with http_receiver() as (endpoint, received):
        namespace: dict[str, Any] = {"mcp": make_server()}
        exec(doc_block(DOC, "otlp").replace("http://localhost:4318", endpoint), namespace)
        try:
            with serve(namespace["app"]) as url:
                async def session() -> None:
                    async with Client(url + "/mcp") as client:
                        await client.call_tool("add", {"a": 1, "b": 2})

                asyncio.run(session())
            wait_until(lambda: received.count() >= 1)
        finally:
            stop_exports(REGISTRY)
        calls = received.metrics()["mcp.tool.calls"]
    assert point(calls, **{"gen_ai.tool.name": "add", "outcome": "ok"}).as_double == sample(
        REGISTRY, "mcp_tool_calls_total", gen_ai_tool_name="add", outcome="ok", backend="",
        identity="") >= 1


IMPORTS = """
import sys
from starlette.applications import Starlette
from starlette.testclient import TestClient
from asgi_mcp_metrics.starlette import instrument
app = instrument(Starlette(), {options})
with TestClient(app) as client:
    client.get("/")
    client.get("/metrics")
print(sorted(m for m in sys.modules if m.split(".")[0] == "opentelemetry"))
"""


@pytest.mark.parametrize(("options", "imported"), [
    ("", False),
    # The control: the same app exporting does import it.
    ("otlp_endpoint='http://127.0.0.1:9', otlp_interval_seconds=3600", True),
])
def test_without_otlp_nothing_of_opentelemetry_is_imported(options: str,
                                                           imported: bool) -> None:
    result = subprocess.run([sys.executable, "-c", IMPORTS.format(options=options)],
                            capture_output=True, text=True, check=True, timeout=120)
    modules = eval(result.stdout.strip().splitlines()[-1])
    assert bool(modules) is imported, modules

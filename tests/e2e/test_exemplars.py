"""Exemplars: a real Prometheus with exemplar storage scrapes an ``mcp`` SDK server (OpenMetrics)
and ``/api/v1/query_exemplars`` returns the trace ids the client sent in ``traceparent``."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry

from ..docs import doc_block
from ..promtool import prometheus_binary
from .servers import ROOT, free_port, serve, wait_until
from .test_mcp_wire import HANDSHAKE, make_server

pytestmark = pytest.mark.e2e

DOC = ROOT / "docs" / "opentelemetry.md"

HISTOGRAMS = ("http_server_request_duration_seconds_bucket",
              "mcp_server_operation_duration_seconds_bucket",
              "mcp_tool_call_duration_seconds_bucket")


def call_add(url: str, trace_id: str, number: int) -> None:
    reply = httpx.post(url + "/mcp", timeout=30, json={
        "jsonrpc": "2.0", "id": number, "method": "tools/call",
        "params": {"name": "add", "arguments": {"a": number, "b": 1}}}, headers={
        "traceparent": f"00-{trace_id}-{'b7ad6b7169203331'}-01",
        "accept": "application/json, text/event-stream", "mcp-protocol-version": HANDSHAKE})
    assert reply.status_code == 200
    assert reply.json()["result"]["structuredContent"] == {"result": number + 1}


def exemplar_trace_ids(base: str, metric: str) -> set[str]:
    try:
        response = httpx.get(f"{base}/api/v1/query_exemplars", timeout=5, params={
            "query": metric, "start": time.time() - 600, "end": time.time() + 60})
        response.raise_for_status()
    except httpx.HTTPError:
        return set()
    data: list[dict[str, Any]] = response.json()["data"]
    return {exemplar["labels"]["trace_id"] for series in data for exemplar in series["exemplars"]}


def test_prometheus_stores_the_trace_ids_as_exemplars(tmp_path: Path,
                                                      registry: CollectorRegistry) -> None:
    binary = prometheus_binary()
    # The docs' snippet, on this test's registry and a server that takes plain POSTs.
    namespace: dict[str, Any] = {"mcp": make_server(), "registry": registry}
    exec(doc_block(DOC, "exemplars")
         .replace("streamable_http_app()",
                  "streamable_http_app(stateless_http=True, json_response=True)")
         .replace("exemplars=True)", "exemplars=True, registry=registry)"), namespace)
    app = namespace["app"]
    trace_ids = [f"{n:032x}" for n in (0x4BF92F3577B34DA6A3CE929D0E0E4736, 0xA1, 0xB2)]
    with serve(app) as url:
        prom_port = free_port()
        config = tmp_path / "prometheus.yml"
        config.write_text(doc_block(DOC, "prometheus").replace("15s", "1s")
                          .replace("localhost:8000", url.removeprefix("http://")))
        prometheus = subprocess.Popen(
            [binary, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'data'}",
             f"--web.listen-address=127.0.0.1:{prom_port}", "--enable-feature=exemplar-storage"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{prom_port}"
        try:
            # One call at a time: a bucket exposes only its latest exemplar, so each trace id
            # is waited for in Prometheus before the next call may replace it.
            for number, trace_id in enumerate(trace_ids, start=1):
                call_add(url, trace_id, number)
                for metric in HISTOGRAMS:
                    wait_until(lambda m=metric, t=trace_id: t in exemplar_trace_ids(base, m),
                               timeout=60)
            for metric in HISTOGRAMS:
                assert exemplar_trace_ids(base, metric) == set(trace_ids)
        finally:
            prometheus.terminate()
            prometheus.wait(timeout=30)

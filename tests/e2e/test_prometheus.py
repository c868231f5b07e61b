"""A real Prometheus server scrapes the demo app and answers the operators' PromQL."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from ..promtool import prometheus_binary
from .servers import free_port

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


def query(base: str, promql: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{base}/api/v1/query", params={"query": promql}, timeout=5)
    response.raise_for_status()
    result: list[dict[str, Any]] = response.json()["data"]["result"]
    return result


def scalar(base: str, promql: str) -> float | None:
    result = query(base, promql)
    return float(result[0]["value"][1]) if result else None


def wait_for(base: str, promql: str, ok: Any, timeout: float = 60) -> float:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = scalar(base, promql)
        except httpx.HTTPError:
            last = None
        if last is not None and ok(last):
            return last
        time.sleep(1)
    raise AssertionError(f"{promql} never satisfied the condition; last value {last}")


def test_prometheus_scrapes_the_demo_and_answers_promql(tmp_path: Path) -> None:
    binary = prometheus_binary()
    app_port, prom_port = free_port(), free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: demo\n    static_configs:\n"
        f"      - targets: ['127.0.0.1:{app_port}']\n")
    demo = subprocess.Popen([sys.executable, str(ROOT / "examples" / "demo.py"), "--port",
                             str(app_port), "--duration", "120"], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    prometheus = subprocess.Popen(
        [binary, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'data'}",
         f"--web.listen-address=127.0.0.1:{prom_port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{prom_port}"
    try:
        wait_for(base, 'up{job="demo"}', lambda v: v == 1)
        wait_for(base, 'sum(mcp_tool_calls_total{gen_ai_tool_name="flaky"})', lambda v: v >= 12)
        # Throughput by tool.
        # (rate() needs two samples of a series inside its window: ask until it has them.)
        wait_for(base, 'count(sum by (gen_ai_tool_name) (rate(mcp_tool_calls_total{'
                       'gen_ai_tool_name=~"add|search|flaky"}[20s]) > 0))', lambda v: v == 3)
        # p95 per tool.  The bounds come from the scripted load, not from luck: the slow tool
        # sleeps uniform(0.02, 0.3) s per call (examples/demo.py), so every observation lies
        # above the 0.02 bucket boundary and histogram_quantile cannot estimate less than 0.02
        # however few calls the window holds (a bound of 0.1 failed once with 0.0975: a window
        # with three calls, all under 0.1 s).  Above, 0.3 s lands in the (0.2, 0.5] bucket; the
        # rest is slack for a loaded machine.
        def p95(tool: str) -> float:
            return wait_for(base, 'histogram_quantile(0.95, sum by (le) (rate('
                            'mcp_server_operation_duration_seconds_bucket'
                            f'{{gen_ai_tool_name="{tool}"}}[30s])))', lambda v: v == v)

        assert 0.02 <= p95("search") <= 2.0
        # Slow versus fast over the whole run (every call so far): the slow tool's mean holds
        # its sleeps (0.16 s on average, 0.02 s at least) on top of what both tools pay.
        def mean(tool: str) -> float:
            selector = f'{{gen_ai_tool_name="{tool}"}}'
            return wait_for(base, f"sum(mcp_server_operation_duration_seconds_sum{selector}) / "
                                  f"sum(mcp_server_operation_duration_seconds_count{selector})",
                            lambda v: v == v)

        assert mean("add") < mean("search")
        # Error ratio of the flaky tool: every fourth call fails inside an HTTP 200.
        ratio = scalar(base, 'sum(mcp_tool_calls_total{gen_ai_tool_name="flaky",'
                             'outcome="tool_error"}) / sum(mcp_tool_calls_total'
                             '{gen_ai_tool_name="flaky"})')
        assert ratio is not None and 0.15 <= ratio <= 0.35
        # Sessions are live while the demo client runs.
        assert (scalar(base, "sum(mcp_server_sessions_active)") or 0) >= 1
    finally:
        prometheus.terminate()
        demo.terminate()
        prometheus.wait(20)
        demo.wait(20)

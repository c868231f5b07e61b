"""The README's demo: an instrumented MCP server whose tool metrics show up within seconds."""

from __future__ import annotations

import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from ..promtool import check_metrics
from .servers import demo

pytestmark = pytest.mark.e2e


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(url, timeout=5).text
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str,
          **labels: str) -> float:
    return sum(v for (n, ls), v in samples.items()
               if n == name and all(dict(ls).get(k) == want for k, want in labels.items()))


def test_demo_serves_tool_metrics_within_seconds() -> None:
    with demo(30) as (port, printed):
        assert printed[-1].startswith("MCP endpoint: http://127.0.0.1:"), printed
        url = f"http://127.0.0.1:{port}/metrics"
        deadline = time.monotonic() + 20
        samples = scrape(url)
        while value(samples, "mcp_tool_calls_total", gen_ai_tool_name="flaky") < 4:
            assert time.monotonic() < deadline, "no tool calls recorded"
            time.sleep(0.5)
            samples = scrape(url)
        # Every fourth flaky call raises: a tool error inside HTTP 200.
        assert value(samples, "mcp_tool_calls_total", gen_ai_tool_name="flaky",
                     outcome="tool_error") >= 1
        assert value(samples, "mcp_tool_calls_total", gen_ai_tool_name="add",
                     outcome="ok") >= 1
        assert value(samples, "mcp_server_sessions_active") >= 1
        assert httpx.get(f"http://127.0.0.1:{port}/ticks", timeout=5).status_code == 200
        samples = scrape(url)
        assert value(samples, "http_server_streams_total", http_route="/ticks",
                     end_reason="completed") == 1
        check_metrics(httpx.get(url, timeout=5).content)

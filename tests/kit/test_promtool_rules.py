"""``promtool test rules``: each generated alert fires on the series that should fire it and
stays silent on the neighbouring series that should not, including canary vs production.

The rule file is generated with the default thresholds, windows and ``for:`` durations; only
the annotations are left out, because promtool compares rendered annotations exactly and
``$value`` renderings would turn this into a test of Go's number formatting.  ``promtool check
rules`` (test_generation.py) covers the annotations' templates.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from asgi_mcp_metrics.kit import rules
from asgi_mcp_metrics.kit.yaml import dump

from ..promtool import PROMTOOL_TIMEOUT_SECONDS, promtool_binary

EVAL = "25m"  # later than every default ``for:`` (15m at most) plus one window


def series(name: str, values: str, **labels: str) -> dict[str, str]:
    body = ", ".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    return {"series": f"{name}{{{body}}}", "values": values}


def alert(name: str, severity: str, **labels: str) -> dict[str, Any]:
    return {"exp_labels": {"severity": severity, **labels}}


def case(name: str, input_series: list[dict[str, str]], alertname: str,
         firing: list[dict[str, Any]]) -> dict[str, Any]:
    return {"name": name, "interval": "1m", "input_series": input_series,
            "alert_rule_test": [{"eval_time": EVAL, "alertname": alertname,
                                 "exp_alerts": firing}]}


def tool_calls(outcome: str, values: str, *, job: str = "proxy", tool: str = "search",
               backend: str = "docs", variant: str = "production") -> dict[str, str]:
    return series("mcp_tool_calls_total", values, job=job, instance="a:1", identity="",
                  gen_ai_tool_name=tool, backend=backend, outcome=outcome, variant=variant)


def tool_latency(le_values: dict[str, str], **labels: str) -> list[dict[str, str]]:
    return [series("mcp_tool_call_duration_seconds_bucket", values, le=le, outcome="ok",
                   instance="a:1", **labels) for le, values in le_values.items()]


SLOW = {"0.5": "0x30", "1": "0x30", "2": "0x30", "5": "0+10x30", "+Inf": "0+10x30"}
FAST = {"0.5": "0+10x30", "1": "0+10x30", "2": "0+10x30", "5": "0+10x30", "+Inf": "0+10x30"}
# p95 of 0.1-0.2 s and of 0.5-1 s: the canary is 5x slower.
P_FAST = {"0.1": "0x30", "0.2": "0+10x30", "0.5": "0+10x30", "1": "0+10x30", "+Inf": "0+10x30"}
P_SLOW = {"0.1": "0x30", "0.2": "0x30", "0.5": "0x30", "1": "0+10x30", "+Inf": "0+10x30"}


def backend(instance: str, name: str, up: str, failed_connects: str) -> list[dict[str, str]]:
    return [
        series("mcp_backend_up", up, job="proxy", instance=instance, backend=name,
               transport="streamable_http"),
        series("mcp_backend_connects_total", failed_connects, job="proxy", instance=instance,
               backend=name, trigger="lazy", outcome="error"),
        series("mcp_backend_connects_total", "0+1x30", job="proxy", instance=instance,
               backend=name, trigger="reconnect", outcome="ok") if up == "1x30" else
        series("mcp_backend_connects_total", "0x30", job="proxy", instance=instance,
               backend=name, trigger="reconnect", outcome="ok"),
    ]


CASES = [
    # -- tool error ratio: 10 of 70 calls fail on one tool, 1 of 61 on another -----------------
    case("error ratio", [
        tool_calls("ok", "0+60x30"), tool_calls("tool_error", "0+10x30"),
        tool_calls("ok", "0+60x30", tool="fetch"), tool_calls("error", "0+1x30", tool="fetch"),
    ], "MCPToolErrorRatioHigh",
        [alert("MCPToolErrorRatioHigh", "warning", job="proxy", variant="production",
               gen_ai_tool_name="search", backend="docs")]),
    # -- tool p95: one tool answers in 2-5 s, the other under 0.5 s ----------------------------
    case("tool latency",
         tool_latency(SLOW, job="proxy", variant="production", gen_ai_tool_name="search",
                      backend="docs")
         + tool_latency(FAST, job="proxy", variant="production", gen_ai_tool_name="fetch",
                        backend="docs"),
         "MCPToolLatencyHigh",
         [alert("MCPToolLatencyHigh", "warning", job="proxy", variant="production",
                gen_ai_tool_name="search", backend="docs")]),
    # -- session not found: 1/s on one replica, one a minute on the other ----------------------
    case("session not found", [
        series("mcp_server_session_not_found_total", "0+60x30", job="proxy", instance="a:1",
               transport="streamable_http"),
        series("mcp_server_session_not_found_total", "0+1x30", job="proxy", instance="b:1",
               transport="streamable_http"),
    ], "MCPSessionNotFoundSpike",
        [alert("MCPSessionNotFoundSpike", "warning", job="proxy", instance="a:1")]),
    # -- backends: on a:1 weather fails to connect while notes is up; on b:1 notes is merely
    #    idle-reaped (down, no failed connects); on c:1 every backend fails --------------------
    case("backend down",
         backend("a:1", "weather", "0x30", "0+1x30") + backend("a:1", "notes", "1x30", "0x30")
         + backend("b:1", "notes", "0x30", "0x30")
         + backend("c:1", "weather", "0x30", "0+1x30") + backend("c:1", "notes", "0x30",
                                                                 "0+1x30"),
         "MCPBackendDown",
         [alert("MCPBackendDown", "warning", job="proxy", instance="a:1", backend="weather"),
          alert("MCPBackendDown", "warning", job="proxy", instance="c:1", backend="notes"),
          alert("MCPBackendDown", "warning", job="proxy", instance="c:1", backend="weather")]),
    case("all backends down",
         backend("a:1", "weather", "0x30", "0+1x30") + backend("a:1", "notes", "1x30", "0x30")
         + backend("b:1", "notes", "0x30", "0x30")
         + backend("c:1", "weather", "0x30", "0+1x30") + backend("c:1", "notes", "0x30",
                                                                 "0+1x30"),
         "MCPAllBackendsDown",
         [alert("MCPAllBackendsDown", "critical", job="proxy", instance="c:1")]),
    # -- canary vs production: errors ------------------------------------------------------------
    case("canary fails more", [
        tool_calls("ok", "0+99x30"), tool_calls("error", "0+1x30"),
        tool_calls("ok", "0+50x30", variant="canary"),
        tool_calls("error", "0+10x30", variant="canary"),
    ], "MCPCanaryErrorRatioHigh", [alert("MCPCanaryErrorRatioHigh", "warning")]),
    case("canary fails as often as production", [
        tool_calls("ok", "0+90x30"), tool_calls("error", "0+10x30"),
        tool_calls("ok", "0+45x30", variant="canary"),
        tool_calls("error", "0+5x30", variant="canary"),
    ], "MCPCanaryErrorRatioHigh", []),
    case("canary and production both clean", [
        tool_calls("ok", "0+90x30"), tool_calls("ok", "0+45x30", variant="canary"),
        tool_calls("error", "0x30", variant="canary"),
    ], "MCPCanaryErrorRatioHigh", []),
    # -- canary vs production: latency -----------------------------------------------------------
    case("canary slower",
         tool_latency(P_FAST, job="proxy", variant="production", gen_ai_tool_name="search",
                      backend="docs")
         + tool_latency(P_SLOW, job="proxy", variant="canary", gen_ai_tool_name="search",
                        backend="docs"),
         "MCPCanaryLatencyHigh", [alert("MCPCanaryLatencyHigh", "warning")]),
    case("canary as fast as production",
         tool_latency(P_SLOW, job="proxy", variant="production", gen_ai_tool_name="search",
                      backend="docs")
         + tool_latency(P_SLOW, job="proxy", variant="canary", gen_ai_tool_name="search",
                        backend="docs"),
         "MCPCanaryLatencyHigh", []),
    # -- ACL denials: 2/s on one job, 0.5/s on another -----------------------------------------
    case("acl denials", [
        series("mcp_acl_decisions_total", "0+120x30", job="proxy", instance="a:1",
               decision="deny", gen_ai_tool_name="delete", backend="b", identity="x", rule="r"),
        series("mcp_acl_decisions_total", "0+30x30", job="quiet", instance="a:1",
               decision="deny", gen_ai_tool_name="delete", backend="b", identity="x", rule="r"),
    ], "MCPACLDenialSpike", [alert("MCPACLDenialSpike", "warning", job="proxy")]),
    # -- the library's guards --------------------------------------------------------------------
    case("label overflow", [
        series("asgi_mcp_metrics_label_overflow_total", "0+1x30", job="proxy", instance="a:1",
               metric="mcp_tool_calls_total", label="gen_ai_tool_name"),
        series("asgi_mcp_metrics_label_overflow_total", "5x30", job="proxy", instance="a:1",
               metric="mcp_tool_calls_total", label="identity"),
    ], "MCPMetricsLabelOverflow",
        [alert("MCPMetricsLabelOverflow", "info", job="proxy", instance="a:1",
               metric="mcp_tool_calls_total", label="gen_ai_tool_name")]),
    case("internal errors", [
        series("asgi_mcp_metrics_internal_errors_total", "0+1x30", job="proxy",
               instance="a:1", where="middleware"),
        series("asgi_mcp_metrics_internal_errors_total", "3x30", job="proxy", instance="a:1",
               where="exposition"),
    ], "MCPMetricsInternalErrors",
        [alert("MCPMetricsInternalErrors", "warning", job="proxy", instance="a:1",
               where="middleware")]),
    # -- the target --------------------------------------------------------------------------------
    case("target down", [
        series("up", "0x30", job="proxy", instance="a:1"),
        series("up", "1x30", job="proxy", instance="b:1"),
    ], "MCPTargetMissing", [alert("MCPTargetMissing", "critical", job="proxy", instance="a:1")]),
    case("target absent", [series("node_up", "1x30", job="node", instance="n:1")],
         "MCPTargetMissing", [alert("MCPTargetMissing", "critical")]),
]


def test_every_alert_fires_and_stays_silent_when_it_should(tmp_path: Path) -> None:
    promtool = promtool_binary()
    file = rules.rule_file(rules.RuleOptions())
    for group in file["groups"]:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    (tmp_path / "rules.yml").write_text(dump(file))
    tested = {entry["alertname"] for c in CASES for entry in c["alert_rule_test"]}
    assert tested == {a.name for a in rules.alerts(rules.RuleOptions())}
    tests = {"rule_files": ["rules.yml"], "evaluation_interval": "1m", "tests": CASES}
    (tmp_path / "tests.yml").write_text(dump(tests))
    completed = subprocess.run([promtool, "test", "rules", "tests.yml"], cwd=tmp_path,
                               capture_output=True, text=True,
                               timeout=PROMTOOL_TIMEOUT_SECONDS, check=False)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "SUCCESS" in completed.stdout


def test_a_silent_case_really_fails_promtool_when_it_fires(tmp_path: Path) -> None:
    """The harness can fail: a case expecting silence while the alert fires is reported."""
    promtool = promtool_binary()
    (tmp_path / "rules.yml").write_text(dump(rules.rule_file(rules.RuleOptions())))
    wrong = case("wrong", [series("up", "0x30", job="proxy", instance="a:1")],
                 "MCPTargetMissing", [])
    (tmp_path / "tests.yml").write_text(dump({"rule_files": ["rules.yml"],
                                              "evaluation_interval": "1m", "tests": [wrong]}))
    completed = subprocess.run([promtool, "test", "rules", "tests.yml"], cwd=tmp_path,
                               capture_output=True, text=True,
                               timeout=PROMTOOL_TIMEOUT_SECONDS, check=False)
    assert completed.returncode != 0

"""The Grafana dashboard (JSON model, ``schemaVersion`` 41), generated from the catalog.

Rows of panels, each panel's queries built by :class:`~.promql.Queries` with the template
variables ``$job``, ``$instance`` and ``$variant`` as its selector and ``$__rate_interval`` as
its window.  A panel whose metric has no data says why in its ``noValue`` text and description.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .promql import CALLER_FAULTS, OPERATION_DURATION, Queries

SCHEMA_VERSION = 41
WINDOW = "$__rate_interval"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
SELECTOR = ('job=~"$job"', 'instance=~"$instance"', 'variant=~"$variant"')
QUANTILES = (0.5, 0.95, 0.99)

_NO_IDENTITY = ("identity labels are off (setting `identity`), or no caller was identified: "
                "the identity label is empty")
_NO_SESSIONS = ("no sessions: the 2026-07-28 protocol era has no sessions, so only clients "
                "of the handshake era (initialize with a session id, or legacy /sse) appear")
_NO_PROXY = "no backends: this service is not a proxy instrumented with BackendMonitor"
_NO_LLM = "no LLM traffic: this service does not use LLMMetrics (an LLM gateway does)"
_NO_ACL = "no access-control decisions: nothing is decorated with instrument_acl"


@dataclass(frozen=True)
class Target:
    expr: str
    legend: str


@dataclass(frozen=True)
class Panel:
    title: str
    description: str
    targets: tuple[Target, ...]
    unit: str = "short"
    no_value: str = "No data"
    kind: str = "timeseries"


@dataclass(frozen=True)
class Row:
    title: str
    panels: tuple[Panel, ...]
    collapsed: bool = True


@dataclass(frozen=True)
class DashboardOptions:
    namespace: str = ""
    title: str = "MCP server (asgi-mcp-metrics)"
    uid: str = ""
    tags: tuple[str, ...] = ("mcp", "asgi-mcp-metrics")
    refresh: str = "30s"


def _t(expr: str, legend: str) -> Target:
    return Target(expr, legend)


def _quantiles(q: Queries, metric: str, by: Sequence[str], legend: str,
               *matchers: str) -> tuple[Target, ...]:
    return tuple(_t(q.quantile(p, metric, WINDOW, *matchers, by=by), f"p{p * 100:g} {legend}")
                 for p in QUANTILES)


def rows(q: Queries) -> tuple[Row, ...]:
    """Every row and panel; public so that tests can evaluate each panel's queries."""
    tool_by = ("gen_ai_tool_name", "backend")
    tool_legend = "{{gen_ai_tool_name}} @ {{backend}}"
    return (
        Row("Traffic", (
            Panel("HTTP requests/s by status",
                  "Finished HTTP requests per second (long-lived streams are counted in "
                  "Sessions and streams).",
                  (_t(q.count_rate("http_server_request_duration_seconds", WINDOW,
                                   by=("http_response_status_code",)),
                      "{{http_response_status_code}}"),), "reqps"),
            Panel("MCP requests/s by method and outcome",
                  "JSON-RPC requests seen on the wire.",
                  (_t(q.rate("mcp_server_requests_total", WINDOW,
                             by=("mcp_method_name", "outcome")),
                      "{{mcp_method_name}} {{outcome}}"),), "reqps",
                  "no MCP traffic on the wire (is the MCP endpoint instrumented?)"),
            Panel("Tool calls/s by tool and backend", "Tool calls per second, every outcome.",
                  (_t(q.tool_calls(WINDOW, by=tool_by), tool_legend),), "reqps",
                  "no tool calls"),
            Panel("HTTP requests in flight", "Requests being served (streams excluded).",
                  (_t(q.gauge("http_server_active_requests", by=("http_request_method",)),
                      "{{http_request_method}}"),), "short", "no request in flight"),
            Panel("MCP notifications/s", "Notifications by method and direction.",
                  (_t(q.rate("mcp_server_notifications_total", WINDOW,
                             by=("mcp_method_name", "direction")),
                      "{{mcp_method_name}} {{direction}}"),), "ops", "no notifications"),
            Panel("Body sizes (p95) by route", "Request and response bodies.",
                  (_t(q.quantile(0.95, "http_server_request_body_size_bytes", WINDOW,
                                 by=("http_route",)), "request {{http_route}}"),
                   _t(q.quantile(0.95, "http_server_response_body_size_bytes", WINDOW,
                                 by=("http_route",)), "response {{http_route}}")), "bytes"),
        ), collapsed=False),
        Row("Latency", (
            Panel("Tool call latency by tool and backend",
                  "p50 / p95 / p99 of tool calls as measured inside the code (decorators, "
                  "proxy dispatch).",
                  tuple(_t(q.tool_p(p, WINDOW, by=tool_by), f"p{p * 100:g} {tool_legend}")
                        for p in QUANTILES), "s", "no tool calls"),
            Panel("MCP operation latency by method",
                  "p50 / p95 / p99 of JSON-RPC requests, from arrival to the final response "
                  "byte.",
                  _quantiles(q, OPERATION_DURATION, ("mcp_method_name",),
                             "{{mcp_method_name}}"), "s", "no MCP operations"),
            Panel("MCP tool call latency on the wire by tool",
                  "p50 / p95 / p99 of tools/call operations as the client sees them, from "
                  "request arrival to the final response byte.",
                  _quantiles(q, OPERATION_DURATION, ("gen_ai_tool_name",), "{{gen_ai_tool_name}}",
                             'mcp_method_name="tools/call"'), "s", "no tool calls on the wire"),
            Panel("Backend call latency (p95)",
                  "Proxy-to-backend MCP calls, by backend and method.",
                  (_t(q.quantile(0.95, "mcp_client_operation_duration_seconds", WINDOW,
                                 by=("backend", "mcp_method_name")),
                      "{{backend}} {{mcp_method_name}}"),), "s", _NO_PROXY),
            Panel("HTTP request latency (p95) by route", "Streams excluded.",
                  (_t(q.quantile(0.95, "http_server_request_duration_seconds", WINDOW,
                                 by=("http_route",)), "{{http_route}}"),), "s"),
            Panel("Stream time to first byte (p95)", "First event or first token of a stream.",
                  (_t(q.quantile(0.95, "http_server_stream_time_to_first_byte_seconds", WINDOW,
                                 by=("stream_kind",)), "{{stream_kind}}"),), "s",
                  "no long-lived streams"),
            Panel("Backend connect time (p95)", "Time to connect and initialize a backend.",
                  (_t(q.quantile(0.95, "mcp_backend_connect_duration_seconds", WINDOW,
                                 by=("backend",)), "{{backend}}"),), "s",
                  "no backend connected in the window"),
        ), collapsed=False),
        Row("Errors", (
            Panel("Failing tool calls",
                  "Share of tool calls that raised or returned isError, by tool and backend.",
                  (_t(q.tool_error_ratio(WINDOW, by=tool_by), tool_legend),),
                  "percentunit", "no tool calls"),
            Panel("Tool failures by kind",
                  "tool_error: an isError result inside HTTP 200; error: the handler raised "
                  "(a proxy's ACL denial too); caller faults: JSON-RPC errors that are the "
                  "caller's fault (unknown tool, invalid params).",
                  (_t(q.rate("mcp_tool_calls_total", WINDOW, 'outcome="tool_error"',
                             by=("gen_ai_tool_name",)), "tool_error {{gen_ai_tool_name}}"),
                   _t(q.rate("mcp_tool_calls_total", WINDOW, 'outcome="error"',
                             by=("gen_ai_tool_name",)), "raised {{gen_ai_tool_name}}"),
                   _t(q.count_rate(OPERATION_DURATION, WINDOW, 'mcp_method_name="tools/call"',
                                   f'error_type=~"{CALLER_FAULTS}"', by=("error_type",)),
                      "caller fault {{error_type}}")), "reqps", "no failing tool calls"),
            Panel("MCP server error ratio (caller faults left out)",
                  "Share of MCP operations that failed for a reason other than the caller's.",
                  (_t(q.server_error_ratio(WINDOW), "error ratio"),),
                  "percentunit", "no MCP operations"),
            Panel("Protocol rejections by reason",
                  "Transport-level rejections that never became an operation.",
                  (_t(q.rate("mcp_server_protocol_errors_total", WINDOW, by=("reason",)),
                      "{{reason}}"),), "reqps", "no protocol rejections"),
        ), collapsed=False),
        Row("Sessions and streams", (
            Panel("Active sessions and streams", _NO_SESSIONS + ".",
                  (_t(q.gauge("mcp_server_sessions_active", by=("transport",)),
                      "sessions {{transport}}"),
                   _t(q.gauge("http_server_streams_active", by=("stream_kind",)),
                      "streams {{stream_kind}}")), "short", _NO_SESSIONS),
            Panel("Sessions started and ended",
                  "Per second; ended by end reason. " + _NO_SESSIONS + ".",
                  (_t(q.rate("mcp_server_sessions_started_total", WINDOW, by=("transport",)),
                      "started {{transport}}"),
                   _t(q.rate("mcp_server_sessions_ended_total", WINDOW, by=("end_reason",)),
                      "ended {{end_reason}}")), "ops", _NO_SESSIONS),
            Panel("Session duration", "Lifetime of MCP sessions. " + _NO_SESSIONS + ".",
                  _quantiles(q, "mcp_server_session_duration_seconds", ("transport",),
                             "{{transport}}"), "s", _NO_SESSIONS),
            Panel("Stream ends by reason", "Long-lived streams (SSE, MCP streams) that ended.",
                  (_t(q.rate("http_server_streams_total", WINDOW,
                             by=("stream_kind", "end_reason")),
                      "{{stream_kind}} {{end_reason}}"),), "ops", "no long-lived streams"),
            Panel("Stream duration (p95)", "Lifetime of long-lived streams.",
                  (_t(q.quantile(0.95, "http_server_stream_duration_seconds", WINDOW,
                                 by=("stream_kind",)), "{{stream_kind}}"),), "s",
                  "no long-lived streams"),
            Panel("Session not found",
                  "404 'Session not found' per second: expired or reaped sessions, or a load "
                  "balancer without stickiness.",
                  (_t(q.rate("mcp_server_session_not_found_total", WINDOW, by=("transport",)),
                      "{{transport}}"),), "reqps", "no unknown sessions"),
        )),
        Row("Backend pool", (
            Panel("Backends up", "1 when the proxy holds a live connection to the backend; "
                  "lazy proxies show 0 until the first call and after an idle reap.",
                  (_t(q.gauge("mcp_backend_up", by=("backend",), agg="max"), "{{backend}}"),),
                  "short", _NO_PROXY),
            Panel("Backend connects by trigger and outcome", "Connection attempts per second.",
                  (_t(q.rate("mcp_backend_connects_total", WINDOW,
                             by=("backend", "trigger", "outcome")),
                      "{{backend}} {{trigger}} {{outcome}}"),), "ops", _NO_PROXY),
            Panel("Backend disconnects by reason", "Idle reaps, errors, shutdowns.",
                  (_t(q.rate("mcp_backend_disconnects_total", WINDOW, by=("backend", "reason")),
                      "{{backend}} {{reason}}"),), "ops", "no disconnects"),
            Panel("Backend connection lifetime (p95)", "Proxy-to-backend connections.",
                  (_t(q.quantile(0.95, "mcp_client_session_duration_seconds", WINDOW,
                                 by=("backend",)), "{{backend}}"),), "s",
                  "no backend connection has ended yet"),
            Panel("Tool cache", "Cached tools per backend and the cache hit ratio.",
                  (_t(q.gauge("mcp_tool_cache_entries", by=("backend",)),
                      "entries {{backend}}"),
                   _t(q.hit_ratio("mcp_tool_cache_requests_total", WINDOW, by=("backend",)),
                      "hit ratio {{backend}}")), "short", _NO_PROXY),
            Panel("Child processes", "Running stdio children, starts and exits per second.",
                  (_t(q.gauge("mcp_backend_processes", by=("backend",)),
                      "running {{backend}}"),
                   _t(q.rate("mcp_backend_process_starts_total", WINDOW, by=("backend",)),
                      "starts {{backend}}"),
                   _t(q.rate("mcp_backend_process_exits_total", WINDOW, by=("backend", "kind")),
                      "exits {{backend}} {{kind}}")), "short",
                  "no stdio backends (child processes) in this proxy"),
        )),
        Row("Access control", (
            Panel("ACL decisions", "Decisions per second.",
                  (_t(q.rate("mcp_acl_decisions_total", WINDOW, by=("decision",)),
                      "{{decision}}"),), "ops", _NO_ACL),
            Panel("Denials by identity and tool", "Denied calls per second. An empty identity "
                  "means " + _NO_IDENTITY + ".",
                  (_t(q.rate("mcp_acl_decisions_total", WINDOW, 'decision="deny"',
                             by=("identity", "gen_ai_tool_name")),
                      "{{identity}} {{gen_ai_tool_name}}"),), "ops", _NO_ACL),
            Panel("Tool calls by identity", "Calls per second. An empty identity means "
                  + _NO_IDENTITY + ".",
                  (_t(q.tool_calls(WINDOW, by=("identity",)), "{{identity}}"),), "reqps",
                  "no tool calls"),
            Panel("ACL decision time (p95)", "Time spent deciding access.",
                  (_t(q.quantile(0.95, "mcp_acl_decision_duration_seconds", WINDOW,
                                 by=("decision",)), "{{decision}}"),), "s", _NO_ACL),
        )),
        Row("LLM gateway", (
            Panel("Tokens/s by model and direction", _NO_LLM + ".",
                  (_t(q.rate("gen_ai_client_tokens_total", WINDOW,
                             by=("gen_ai_request_model", "gen_ai_token_type")),
                      "{{gen_ai_request_model}} {{gen_ai_token_type}}"),), "short", _NO_LLM),
            Panel("Upstream call latency (p95) by model", _NO_LLM + ".",
                  (_t(q.quantile(0.95, "gen_ai_client_operation_duration_seconds", WINDOW,
                                 by=("gen_ai_request_model",)), "{{gen_ai_request_model}}"),),
                  "s", _NO_LLM),
            Panel("Upstream errors by type", _NO_LLM + ".",
                  (_t(q.rate("gen_ai_client_upstream_errors_total", WINDOW,
                             by=("gen_ai_provider_name", "error_type")),
                      "{{gen_ai_provider_name}} {{error_type}}"),), "ops", "no upstream errors"),
            Panel("Tokens per call (p95)", "Per model call, by direction.",
                  (_t(q.quantile(0.95, "gen_ai_client_token_usage", WINDOW,
                                 by=("gen_ai_request_model", "gen_ai_token_type")),
                      "{{gen_ai_request_model}} {{gen_ai_token_type}}"),), "short", _NO_LLM),
            Panel("Rate limit", "Current requests/s allowed towards each provider, and its "
                  "adjustments.",
                  (_t(q.gauge("gen_ai_client_rate_limit_requests_per_second",
                              by=("gen_ai_provider_name",), agg="max"),
                      "{{gen_ai_provider_name}}"),
                   _t(q.rate("gen_ai_client_rate_limit_adjustments_total", WINDOW,
                             by=("gen_ai_provider_name", "direction")),
                      "adjustments {{gen_ai_provider_name}} {{direction}}")), "reqps", _NO_LLM),
            Panel("Circuit breakers", "0 closed, 1 open, 2 half-open.",
                  (_t(q.gauge("gen_ai_client_circuit_breaker_state",
                              by=("gen_ai_provider_name",), agg="max"),
                      "{{gen_ai_provider_name}}"),), "short", _NO_LLM),
            Panel("Response cache hit ratio", _NO_LLM + ".",
                  (_t(q.hit_ratio("gen_ai_client_cache_requests_total", WINDOW,
                                  by=("gen_ai_provider_name",)),
                      "{{gen_ai_provider_name}}"),), "percentunit", _NO_LLM),
            Panel("Build info by variant", "Versions running, from build_info.",
                  (_t(q.gauge("build_info", by=("version", "commit", "variant"), agg="count"),
                      "{{version}} {{commit}} {{variant}}"),), "short",
                  "build_info is not set (LLMMetrics.set_build_info)"),
        )),
        Row("Canary vs production", (
            Panel("Tool calls/s by variant", "The `variant` label comes from a constant label "
                  "or from relabelling a pod label.",
                  (_t(q.tool_calls(WINDOW, by=("variant",)), "{{variant}}"),), "reqps",
                  "no tool calls"),
            Panel("Failing tool calls by variant", "Share of failing tool calls per variant.",
                  (_t(q.tool_error_ratio(WINDOW, by=("variant",)), "{{variant}}"),),
                  "percentunit", "no tool calls"),
            Panel("Tool call latency (p95) by variant", "p95 of tool calls per variant.",
                  (_t(q.tool_p(0.95, WINDOW, by=("variant",)), "{{variant}}"),), "s",
                  "no tool calls"),
        )),
        Row("Library health", (
            Panel("Label overflow", "Label values replaced by _OTHER (unknown or over the cap).",
                  (_t(q.rate("asgi_mcp_metrics_label_overflow_total", WINDOW,
                             by=("metric", "label")), "{{metric}} {{label}}"),), "ops",
                  "no overflow: every label value was kept"),
            Panel("Parse limits", "Messages not parsed: over a size cap or malformed.",
                  (_t(q.rate("asgi_mcp_metrics_parse_limit_total", WINDOW,
                             by=("where", "reason")), "{{where}} {{reason}}"),), "ops",
                  "no message hit a parse limit"),
            Panel("Internal and callback errors",
                  "Errors caught inside the library, and user callables that raised.",
                  (_t(q.rate("asgi_mcp_metrics_internal_errors_total", WINDOW, by=("where",)),
                      "internal {{where}}"),
                   _t(q.rate("asgi_mcp_metrics_callback_errors_total", WINDOW,
                             by=("callback",)), "callback {{callback}}")), "ops",
                  "no internal errors"),
            Panel("Library version", "asgi-mcp-metrics versions running, per instance.",
                  (_t(q.gauge("asgi_mcp_metrics_info", by=("instance", "version"), agg="max"),
                      "{{instance}} {{version}}"),), "short",
                  "no target exports asgi_mcp_metrics_info"),
        )),
    )


@dataclass
class _Layout:
    next_id: int = 1
    y: int = 0
    panels: list[dict[str, Any]] = field(default_factory=list)

    def take_id(self) -> int:
        self.next_id += 1
        return self.next_id - 1


def _panel_json(panel: Panel, panel_id: int, x: int, y: int, width: int) -> dict[str, Any]:
    targets = [{"datasource": DATASOURCE, "expr": target.expr, "legendFormat": target.legend,
                "range": True, "refId": chr(ord("A") + index)}
               for index, target in enumerate(panel.targets)]
    return {
        "datasource": DATASOURCE,
        "description": f"{panel.description} No data means: {panel.no_value}.",
        "fieldConfig": {"defaults": {"noValue": panel.no_value, "unit": panel.unit},
                        "overrides": []},
        "gridPos": {"h": 8, "w": width, "x": x, "y": y},
        "id": panel_id,
        "options": {"legend": {"calcs": [], "displayMode": "list", "placement": "bottom",
                               "showLegend": True},
                    "tooltip": {"mode": "multi", "sort": "desc"}},
        "targets": targets,
        "title": panel.title,
        "type": panel.kind,
    }


def _variable(name: str, label: str, query: str) -> dict[str, Any]:
    return {
        "allValue": ".*",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "datasource": DATASOURCE,
        "definition": query,
        "includeAll": True,
        "label": label,
        "multi": True,
        "name": name,
        "options": [],
        "query": query,
        "refresh": 2,
        "regex": "",
        "sort": 1,
        "type": "query",
    }


def build(options: DashboardOptions | None = None) -> dict[str, Any]:
    """The dashboard as a Grafana JSON model (a dict)."""
    options = options or DashboardOptions()
    q = Queries(options.namespace, SELECTOR)
    info = Queries(options.namespace).metric("asgi_mcp_metrics_info")
    layout = _Layout()
    for row in rows(q):
        row_json: dict[str, Any] = {
            "collapsed": row.collapsed, "gridPos": {"h": 1, "w": 24, "x": 0, "y": layout.y},
            "id": layout.take_id(), "panels": [], "title": row.title, "type": "row"}
        layout.panels.append(row_json)
        layout.y += 1
        inner: list[dict[str, Any]] = []
        for index, panel in enumerate(row.panels):
            x, width = (index % 3) * 8, 8
            if index and index % 3 == 0:
                layout.y += 8
            inner.append(_panel_json(panel, layout.take_id(), x, layout.y, width))
        layout.y += 8
        if row.collapsed:
            row_json["panels"] = inner
        else:
            layout.panels.extend(inner)
    uid = options.uid or ("asgi-mcp-metrics" + (f"-{options.namespace}" if options.namespace
                                                  else ""))[:40]
    return {
        "annotations": {"list": [{
            "builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"},
            "enable": True, "hide": True, "iconColor": "rgba(0, 211, 255, 1)",
            "name": "Annotations & Alerts", "type": "dashboard"}]},
        "description": "Generated by `python -m asgi_mcp_metrics dashboard` from the metric "
                       "catalog of asgi-mcp-metrics.",
        "editable": True,
        "fiscalYearStartMonth": 0,
        "graphTooltip": 1,
        "links": [],
        "panels": layout.panels,
        "refresh": options.refresh,
        "schemaVersion": SCHEMA_VERSION,
        "tags": list(options.tags),
        "templating": {"list": [
            {"current": {"text": "Prometheus", "value": "prometheus"}, "hide": 0,
             "includeAll": False, "label": "Data source", "multi": False,
             "name": "datasource", "options": [], "query": "prometheus",
             "refresh": 1, "regex": "", "type": "datasource"},
            _variable("job", "Job", f"label_values({info}, job)"),
            _variable("instance", "Instance", f'label_values({info}{{job=~"$job"}}, instance)'),
            _variable("variant", "Variant", f'label_values({info}{{job=~"$job"}}, variant)'),
        ]},
        "time": {"from": "now-1h", "to": "now"},
        "timepicker": {},
        "timezone": "browser",
        "title": options.title,
        "uid": uid,
        "version": 1,
    }


def all_panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Every non-row panel, including those inside collapsed rows."""
    found: list[dict[str, Any]] = []
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            found.extend(panel.get("panels", []))
        else:
            found.append(panel)
    return found


def render(options: DashboardOptions | None = None) -> str:
    return json.dumps(build(options), indent=2, sort_keys=True) + "\n"

"""Prometheus recording and alerting rules, generated from the catalog.

Recording rules hold the RED series per tool and backend; the alerts are listed in
``ALERTS`` with their runbook sections in ``docs/runbook.md``.  Every expression comes from
:class:`~.promql.Queries`, the same builders the dashboard's panels use.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import kubernetes, yaml
from .promql import Queries

RUNBOOK_URL = ("https://github.com/asgi-mcp-metrics/asgi-mcp-metrics/blob/main/docs/runbook.md")
RED_BY = ("job", "variant", "gen_ai_tool_name", "backend")


@dataclass(frozen=True)
class RuleOptions:
    """Thresholds, ``for:`` durations and where the rules apply; every field is a CLI option."""

    namespace: str = ""
    selector: tuple[str, ...] = ()
    """Label matchers added to every series, e.g. ``job="my-proxy"``."""
    window: str = "5m"
    """Range of rate() and increase() in every rule."""
    error_ratio: float = 0.05
    error_ratio_for: str = "10m"
    p95_seconds: float = 2.0
    p95_for: str = "10m"
    session_not_found_per_second: float = 0.1
    session_not_found_for: str = "5m"
    backend_down_for: str = "5m"
    all_backends_down_for: str = "2m"
    canary_variant: str = "canary"
    production_variant: str = "production"
    canary_error_factor: float = 2.0
    canary_min_error_ratio: float = 0.01
    canary_p95_factor: float = 1.5
    canary_min_p95_seconds: float = 0.05
    canary_for: str = "10m"
    acl_denials_per_second: float = 1.0
    acl_denials_for: str = "5m"
    label_overflow_for: str = "15m"
    internal_errors_for: str = "5m"
    target_missing_for: str = "5m"
    runbook_url: str = RUNBOOK_URL
    name: str = "asgi-mcp-metrics"
    """PrometheusRule metadata.name (and the rule groups' name prefix)."""
    k8s_namespace: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    """PrometheusRule metadata.labels (e.g. ``release=prometheus`` for a ruleSelector)."""

    def with_for(self, duration: str) -> RuleOptions:
        """A copy with every ``for:`` set to ``duration`` (tests use seconds)."""
        changes: dict[str, Any] = {
            f.name: duration for f in dataclasses.fields(self) if f.name.endswith("_for")}
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class Alert:
    name: str
    expr: str
    duration: str
    severity: str
    summary: str
    description: str


def _g(value: float) -> str:
    return f"{value:g}"


def recording_rules(o: RuleOptions) -> list[dict[str, Any]]:
    q = Queries(o.namespace, o.selector)
    calls = q.metric("mcp_tool_calls_total")
    duration = q.metric("mcp_tool_call_duration_seconds")
    w = o.window
    level = "job_variant_tool_backend"
    rules: list[dict[str, Any]] = [
        yaml.Ordered(record=f"{level}:{calls}:rate{w}", expr=q.tool_calls(w, by=RED_BY)),
        yaml.Ordered(record=f"{level}:{calls}:failures_rate{w}",
                     expr=q.tool_failures(w, by=RED_BY)),
        yaml.Ordered(record=f"{level}:{calls}:error_ratio{w}",
                     expr=q.tool_error_ratio(w, by=RED_BY)),
    ]
    for p in (0.5, 0.95, 0.99):
        rules.append(yaml.Ordered(record=f"{level}:{duration}:p{p * 100:g}_{w}",
                                  expr=q.tool_p(p, w, by=RED_BY)))
    return rules


def alerts(o: RuleOptions) -> list[Alert]:
    q = Queries(o.namespace, o.selector)
    w = o.window
    tool_by = ("job", "variant", "gen_ai_tool_name", "backend")
    canary, production = f'variant="{o.canary_variant}"', f'variant="{o.production_variant}"'
    failed_connects = q.rate("mcp_backend_connects_total", w, 'outcome!="ok"',
                             by=("job", "instance", "backend"), func="increase")
    up = _up(o.selector)  # ``up`` is Prometheus' own, not in the catalog
    where = "{{ $labels.job }} {{ $labels.instance }}"
    return [
        Alert("MCPToolErrorRatioHigh",
              f"(\n  {q.tool_error_ratio(w, by=tool_by)}\n) > {_g(o.error_ratio)}",
              o.error_ratio_for, "warning",
              "Tool {{ $labels.gen_ai_tool_name }} on {{ $labels.backend }} is failing",
              f"{{{{ $value | humanizePercentage }}}} of calls of tool "
              f"{{{{ $labels.gen_ai_tool_name }}}} (backend {{{{ $labels.backend }}}}, job "
              f"{{{{ $labels.job }}}}) raised or returned isError over {w}; the threshold is "
              f"{o.error_ratio:.0%}."),
        Alert("MCPToolLatencyHigh",
              f"{q.tool_p(0.95, w, by=tool_by)}\n  > {_g(o.p95_seconds)}",
              o.p95_for, "warning",
              "Tool {{ $labels.gen_ai_tool_name }} on {{ $labels.backend }} is slow",
              f"p95 of tool {{{{ $labels.gen_ai_tool_name }}}} (backend {{{{ $labels.backend }}}}"
              f", job {{{{ $labels.job }}}}) is {{{{ $value | humanizeDuration }}}} over {w}; "
              f"the threshold is {_g(o.p95_seconds)}s."),
        Alert("MCPSessionNotFoundSpike",
              f"{q.rate('mcp_server_session_not_found_total', w, by=('job', 'instance'))}\n"
              f"  > {_g(o.session_not_found_per_second)}",
              o.session_not_found_for, "warning",
              f"Requests for unknown MCP sessions on {where}",
              f"{{{{ $value | humanize }}}}/s requests are answered 404 'Session not found' "
              f"(threshold {_g(o.session_not_found_per_second)}/s): sessions expire or are "
              "reaped, or a load balancer sends a session's requests to a replica that does "
              "not hold it (no stickiness)."),
        Alert("MCPBackendDown",
              f"(\n  {q.gauge('mcp_backend_up', by=('job', 'instance', 'backend'), agg='max')}"
              f" == 0\n) and on (job, instance, backend) (\n  {failed_connects} > 0\n)",
              o.backend_down_for, "warning",
              "Backend {{ $labels.backend }} of " + where + " is down",
              "The proxy holds no connection to backend {{ $labels.backend }} and its "
              f"connection attempts failed within the last {w}."),
        Alert("MCPAllBackendsDown",
              _all_down(q, w),
              o.all_backends_down_for, "critical",
              f"Every backend of {where} is down",
              "The proxy holds no connection to any backend and connection attempts are "
              "failing: every tool call through it fails."),
        Alert("MCPCanaryErrorRatioHigh",
              f"(\n  {q.tool_error_ratio(w, canary)}\n) >= {_g(o.canary_error_factor)} * (\n"
              f"  {q.tool_error_ratio(w, production)}\n)\nand (\n"
              f"  {q.tool_error_ratio(w, canary)}\n) > {_g(o.canary_min_error_ratio)}",
              o.canary_for, "warning",
              f"The {o.canary_variant} fails tool calls more often than {o.production_variant}",
              f"{{{{ $value | humanizePercentage }}}} of the {o.canary_variant}'s tool calls "
              f"fail, at least {_g(o.canary_error_factor)}x the {o.production_variant} error "
              f"ratio (and over {o.canary_min_error_ratio:.0%}). Hold or roll back the "
              "rollout."),
        Alert("MCPCanaryLatencyHigh",
              f"(\n  {q.tool_p(0.95, w, canary)}\n) >= {_g(o.canary_p95_factor)} * (\n"
              f"  {q.tool_p(0.95, w, production)}\n)\nand (\n"
              f"  {q.tool_p(0.95, w, canary)}\n) > {_g(o.canary_min_p95_seconds)}",
              o.canary_for, "warning",
              f"The {o.canary_variant} is slower than {o.production_variant}",
              f"p95 of the {o.canary_variant}'s tool calls is {{{{ $value | humanizeDuration }}}}"
              f", at least {_g(o.canary_p95_factor)}x the {o.production_variant} p95. Hold or "
              "roll back the rollout."),
        Alert("MCPACLDenialSpike",
              f"{_deny(q, w)}\n  > {_g(o.acl_denials_per_second)}",
              o.acl_denials_for, "warning",
              "Access denials are spiking on {{ $labels.job }}",
              f"{{{{ $value | humanize }}}}/s calls are denied by the ACL (threshold "
              f"{_g(o.acl_denials_per_second)}/s): a misconfigured client, a changed policy, or "
              "someone probing tools they may not call."),
        Alert("MCPMetricsLabelOverflow",
              _increase(q, "asgi_mcp_metrics_label_overflow_total", w,
                        ("job", "instance", "metric", "label")),
              o.label_overflow_for, "info",
              "Label {{ $labels.label }} of {{ $labels.metric }} overflows to _OTHER",
              "The cardinality guard is replacing values of label {{ $labels.label }} by "
              "_OTHER on " + where + ": raise the cap or declare the values."),
        Alert("MCPMetricsInternalErrors",
              _increase(q, "asgi_mcp_metrics_internal_errors_total", w,
                        ("job", "instance", "where")),
              o.internal_errors_for, "warning",
              "asgi-mcp-metrics caught internal errors on " + where,
              "The metrics library caught and logged errors in {{ $labels.where }}; the app "
              "is unaffected but some metrics may be missing. See the application log."),
        Alert("MCPTargetMissing",
              f"{up} == 0 or absent({up})",
              o.target_missing_for, "critical",
              "Prometheus cannot scrape {{ $labels.job }} {{ $labels.instance }}",
              "The target is down or missing: no metrics, and no other alert of this group "
              "can fire for it."),
    ]


def _up(selector: Sequence[str]) -> str:
    return f"up{{{', '.join(selector)}}}" if selector else "up"


def _all_down(q: Queries, w: str) -> str:
    failed = q.rate("mcp_backend_connects_total", w, 'outcome!="ok"', by=("job", "instance"),
                    func="increase")
    up = q.gauge("mcp_backend_up", by=("job", "instance"), agg="max")
    return f"(\n  {up} == 0\n) and on (job, instance) (\n  {failed} > 0\n)"


def _increase(q: Queries, name: str, w: str, by: Sequence[str]) -> str:
    return f"{q.rate(name, w, by=by, func='increase')} > 0"


def _deny(q: Queries, w: str) -> str:
    return q.rate("mcp_acl_decisions_total", w, 'decision="deny"', by=("job",))


def runbook_anchor(alert: str) -> str:
    return alert.lower()


def groups(o: RuleOptions) -> list[dict[str, Any]]:
    alert_rules = []
    for a in alerts(o):
        alert_rules.append(yaml.Ordered(
            alert=a.name, expr=a.expr, **{"for": a.duration},
            labels={"severity": a.severity},
            annotations=yaml.Ordered(
                summary=a.summary, description=a.description,
                runbook_url=f"{o.runbook_url}#{runbook_anchor(a.name)}"),
        ))
    return [
        yaml.Ordered(name=f"{o.name}.recording", rules=recording_rules(o)),
        yaml.Ordered(name=f"{o.name}.alerts", rules=alert_rules),
    ]


def rule_file(o: RuleOptions) -> dict[str, Any]:
    return {"groups": groups(o)}


def prometheus_rule(o: RuleOptions) -> dict[str, Any]:
    metadata = kubernetes.metadata(o.name, o.k8s_namespace, o.labels)
    return yaml.Ordered(apiVersion="monitoring.coreos.com/v1", kind="PrometheusRule",
                        metadata=metadata, spec={"groups": groups(o)})


def render(o: RuleOptions | None = None, *, fmt: str = "prometheus") -> str:
    o = o or RuleOptions()
    header = "# Generated by `python -m asgi_mcp_metrics rules` from the metric catalog.\n"
    document = prometheus_rule(o) if fmt == "prometheusrule" else rule_file(o)
    return header + yaml.dump(document)

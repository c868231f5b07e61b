"""Every metric this library exports, declared once.

The catalog is the single source of truth for names, types, units, label names, help texts and
default buckets.  :mod:`asgi_mcp_metrics.recorder` binds it to a registry, the settings take
their default buckets from it, and ``docs/metrics.md`` is generated from it
(``python -m asgi_mcp_metrics.docgen metrics``).

Names follow the OpenTelemetry semantic conventions in their Prometheus translation where a
convention exists (``http.server.request.duration`` -> ``http_server_request_duration_seconds``,
``mcp.method.name`` -> ``mcp_method_name``); everything else uses the ``mcp_`` / ``gen_ai_``
prefixes and Prometheus naming rules (base units, ``_total`` for counters).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["counter", "gauge", "histogram"]

#: ``http.server.request.duration`` (stable semconv).
HTTP_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5,
                         10.0)
#: ``mcp.server.operation.duration`` (semconv).
MCP_OPERATION_BUCKETS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0,
                         300.0)
#: Long-lived streams and sessions.  Semconv stops at 300 s, which puts every real session in
#: +Inf; these reach a day.
LONG_LIVED_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0,
                      28800.0, 86400.0)
#: Body sizes, powers of four from 64 B to 64 MiB.
SIZE_BUCKETS = tuple(float(64 * 4**i) for i in range(11))
#: ``gen_ai.client.token.usage`` (semconv).
TOKEN_BUCKETS = tuple(float(4**i) for i in range(14))
#: ``gen_ai.client.operation.duration`` (semconv).
GEN_AI_DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24,
                           20.48, 40.96, 81.92)
#: Connect / ACL decision times: short operations.
SHORT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                 10.0, 30.0)


@dataclass(frozen=True)
class MetricSpec:
    """One exported metric.

    ``name`` is the name as exposed (counters include ``_total``), without the namespace.
    ``buckets_option`` names the Settings field that overrides ``buckets``.
    ``multiprocess_mode`` (gauges) says how the values of several worker processes combine
    under ``PROMETHEUS_MULTIPROC_DIR``; see :data:`MULTIPROCESS_MODES`.
    """

    name: str
    kind: Kind
    help: str
    labels: tuple[str, ...] = ()
    unit: str = ""
    buckets: tuple[float, ...] = ()
    buckets_option: str = ""
    layer: str = "http"
    multiprocess_mode: str = ""


def _h(name: str, help: str, labels: tuple[str, ...], buckets: tuple[float, ...], *,
       unit: str = "seconds", option: str = "", layer: str) -> MetricSpec:
    return MetricSpec(name, "histogram", help, labels, unit, buckets, option, layer)


def _c(name: str, help: str, labels: tuple[str, ...], *, layer: str) -> MetricSpec:
    return MetricSpec(name, "counter", help, labels, layer=layer)


#: How a gauge's per-worker values combine; only live workers count, so a worker that died
#: (and was reported dead, see :mod:`asgi_mcp_metrics.multiprocess`) stops contributing.
MULTIPROCESS_MODES = {
    "livesum": "sum over the live workers",
    "livemax": "highest value among the live workers",
}


def _g(name: str, help: str, labels: tuple[str, ...], *, unit: str = "", layer: str,
       across: str = "livesum") -> MetricSpec:
    return MetricSpec(name, "gauge", help, labels, unit, layer=layer, multiprocess_mode=across)


_ROUTE = ("http_request_method", "http_route")

METRICS: tuple[MetricSpec, ...] = (
    # -- HTTP requests -------------------------------------------------------------------------
    _h("http_server_request_duration_seconds",
       "Duration of HTTP requests, from the first ASGI event to the last response body byte. "
       "Long-lived streams are not counted here.",
       (*_ROUTE, "http_response_status_code", "error_type"), HTTP_DURATION_BUCKETS,
       option="request_duration_buckets", layer="http"),
    _g("http_server_active_requests", "HTTP requests in flight (streams excluded).",
       ("http_request_method", "url_scheme"), layer="http"),
    _h("http_server_request_body_size_bytes",
       "Request body bytes actually received by the application (requests with a body).",
       _ROUTE, SIZE_BUCKETS,
       unit="bytes", layer="http"),
    _h("http_server_response_body_size_bytes",
       "Response body bytes actually sent by the application.", _ROUTE, SIZE_BUCKETS,
       unit="bytes", layer="http"),
    # -- long-lived streams (SSE, MCP streams, websockets) ----------------------------------------
    _g("http_server_streams_active",
       "Open long-lived streams (text/event-stream responses, MCP streams, websockets).",
       ("http_route", "stream_kind"), layer="http"),
    _h("http_server_stream_duration_seconds",
       "Lifetime of long-lived streams, from the request's arrival to the stream's end.",
       ("http_route", "stream_kind", "end_reason"), LONG_LIVED_BUCKETS,
       option="stream_duration_buckets", layer="http"),
    _c("http_server_streams_total", "Long-lived streams that ended, by why they ended.",
       ("http_route", "stream_kind", "end_reason"), layer="http"),
    _h("http_server_stream_time_to_first_byte_seconds",
       "Time from a stream's request to its first body byte (first event, first token).",
       ("http_route", "stream_kind"), HTTP_DURATION_BUCKETS, option="request_duration_buckets",
       layer="http"),
    # -- MCP on the wire ---------------------------------------------------------------------------
    _h("mcp_server_operation_duration_seconds",
       "MCP operations (JSON-RPC requests) from request arrival to the final response byte.",
       ("mcp_method_name", "gen_ai_tool_name", "gen_ai_prompt_name", "error_type",
        "mcp_protocol_version"), MCP_OPERATION_BUCKETS, option="operation_duration_buckets",
       layer="mcp"),
    _c("mcp_server_requests_total", "MCP JSON-RPC requests by method and outcome.",
       ("mcp_method_name", "outcome", "transport"), layer="mcp"),
    _c("mcp_server_notifications_total", "MCP notifications by method and direction.",
       ("mcp_method_name", "direction"), layer="mcp"),
    _c("mcp_server_protocol_errors_total",
       "Transport-level MCP rejections that never became an operation, by reason.",
       ("reason",), layer="mcp"),
    _g("mcp_server_sessions_active", "Open MCP sessions (handshake era) seen on the wire.",
       ("transport",), layer="mcp"),
    _c("mcp_server_sessions_started_total",
       "MCP sessions started: a 2xx initialize that carried a session id, or a legacy /sse "
       "connect.",
       ("transport",), layer="mcp"),
    _c("mcp_server_sessions_ended_total",
       "MCP sessions that ended, by why they ended: client_delete, client_disconnect, "
       "not_found, idle_timeout, shutdown, error.",
       ("transport", "end_reason"), layer="mcp"),
    _h("mcp_server_session_duration_seconds", "Lifetime of MCP sessions.",
       ("transport", "end_reason"), LONG_LIVED_BUCKETS, option="session_duration_buckets",
       layer="mcp"),
    _c("mcp_server_session_not_found_total",
       "Requests answered 404 'Session not found' (expired or reaped sessions, or a load "
       "balancer without stickiness).", ("transport",), layer="mcp"),
    # -- tool calls (wire and decorators share these) --------------------------------------------
    _c("mcp_tool_calls_total", "Tool calls by tool, backend and outcome.",
       ("gen_ai_tool_name", "backend", "outcome", "identity"), layer="tool"),
    _h("mcp_tool_call_duration_seconds",
       "Tool call duration: inside the code for tools decorated with instrument_tool (handlers, "
       "proxy dispatch), else from request to answer on the wire, once per call.",
       ("gen_ai_tool_name", "backend", "outcome"), MCP_OPERATION_BUCKETS,
       option="operation_duration_buckets", layer="tool"),
    # -- ACL ------------------------------------------------------------------------------------
    _c("mcp_acl_decisions_total", "Access-control decisions, by decision, tool, backend, identity "
       "and rule.", ("decision", "gen_ai_tool_name", "backend", "identity", "rule"), layer="acl"),
    _h("mcp_acl_decision_duration_seconds", "Time spent deciding access.", ("decision",),
       SHORT_BUCKETS, layer="acl"),
    # -- backends of a proxy -------------------------------------------------------------------
    _g("mcp_backend_up", "1 when the proxy holds a live connection to the backend, else 0.",
       ("backend", "transport"), layer="backend", across="livemax"),
    _c("mcp_backend_connects_total", "Backend connection attempts by trigger and outcome.",
       ("backend", "trigger", "outcome"), layer="backend"),
    _h("mcp_backend_connect_duration_seconds", "Time to connect (and initialize) a backend.",
       ("backend",), SHORT_BUCKETS, layer="backend"),
    _c("mcp_backend_disconnects_total", "Backend disconnections by reason.",
       ("backend", "reason"), layer="backend"),
    _h("mcp_client_session_duration_seconds",
       "Lifetime of proxy-to-backend connections (semconv mcp.client.session.duration).",
       ("backend", "transport", "end_reason"), LONG_LIVED_BUCKETS,
       option="session_duration_buckets", layer="backend"),
    _h("mcp_client_operation_duration_seconds",
       "Proxy-to-backend MCP calls (semconv mcp.client.operation.duration).",
       ("backend", "mcp_method_name", "gen_ai_tool_name", "error_type"), MCP_OPERATION_BUCKETS,
       option="operation_duration_buckets", layer="backend"),
    _g("mcp_tool_cache_entries", "Tools held in the proxy's tool cache.", ("backend",),
       layer="backend", across="livemax"),
    _c("mcp_tool_cache_requests_total", "Tool-cache lookups by result (hit, miss, stale).",
       ("backend", "result"), layer="backend"),
    _g("mcp_backend_processes", "Running stdio child processes.", ("backend",), layer="backend"),
    _c("mcp_backend_process_starts_total", "stdio child processes started.", ("backend",),
       layer="backend"),
    _c("mcp_backend_process_exits_total",
       "stdio child processes that exited, by kind (clean, nonzero, signal).",
       ("backend", "kind"), layer="backend"),
    # -- LLM proxies -------------------------------------------------------------------------------
    _h("gen_ai_client_token_usage", "Tokens per model call (semconv gen_ai.client.token.usage).",
       ("gen_ai_operation_name", "gen_ai_provider_name", "gen_ai_token_type",
        "gen_ai_request_model"), TOKEN_BUCKETS, unit="", layer="llm"),
    _c("gen_ai_client_tokens_total", "Tokens by provider, model, direction and identity.",
       ("gen_ai_provider_name", "gen_ai_request_model", "gen_ai_token_type", "identity"),
       layer="llm"),
    _h("gen_ai_client_operation_duration_seconds",
       "Upstream model call duration (semconv gen_ai.client.operation.duration).",
       ("gen_ai_operation_name", "gen_ai_provider_name", "gen_ai_request_model", "error_type"),
       GEN_AI_DURATION_BUCKETS, layer="llm"),
    _c("gen_ai_client_upstream_errors_total", "Upstream model call errors by type.",
       ("gen_ai_provider_name", "error_type"), layer="llm"),
    _g("gen_ai_client_rate_limit_requests_per_second", "Current rate limit towards a provider.",
       ("gen_ai_provider_name",), layer="llm"),
    _c("gen_ai_client_rate_limit_adjustments_total", "Rate-limit changes by direction.",
       ("gen_ai_provider_name", "direction"), layer="llm"),
    _g("gen_ai_client_circuit_breaker_state",
       "Circuit-breaker state per provider: 0 closed, 1 open, 2 half-open.",
       ("gen_ai_provider_name",), layer="llm", across="livemax"),
    _c("gen_ai_client_cache_requests_total", "Response-cache lookups by result.",
       ("gen_ai_provider_name", "result"), layer="llm"),
    _g("build_info", "Build information of the instrumented service; the value is always 1.",
       ("version", "commit", "variant"), layer="llm", across="livemax"),
    # -- the library itself --------------------------------------------------------------------
    _g("asgi_mcp_metrics_info", "asgi-mcp-metrics build information; the value is always 1.",
       ("version",), layer="self", across="livemax"),
    _c("asgi_mcp_metrics_label_overflow_total",
       "Label values replaced by _OTHER because they were unknown or over the cap.",
       ("metric", "label"), layer="self"),
    _c("asgi_mcp_metrics_parse_limit_total",
       "Messages not parsed because they were over a size cap or malformed.",
       ("where", "reason"), layer="self"),
    _c("asgi_mcp_metrics_internal_errors_total",
       "Errors inside this library that were caught, logged and not raised into the app.",
       ("where",), layer="self"),
    _c("asgi_mcp_metrics_callback_errors_total",
       "User callables (label extractors, identity resolvers, auth) that raised.",
       ("callback",), layer="self"),
)

BY_NAME: dict[str, MetricSpec] = {spec.name: spec for spec in METRICS}


def default_buckets(option: str) -> tuple[float, ...]:
    """The default of a ``*_buckets`` option: the buckets of the metrics it shapes."""
    found = {spec.buckets for spec in METRICS if spec.buckets_option == option}
    if len(found) != 1:
        raise LookupError(f"{option}: the catalog has {len(found)} default bucket sets for it")
    return found.pop()

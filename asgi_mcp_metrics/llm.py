"""Metrics for gateways that proxy model calls (LLM proxies): tokens, upstream latency and
errors, rate limits, circuit breakers, the response cache and build information.

Use the module-level functions (they record on the default registry, bound on first use) or an
:class:`LLMMetrics` of your own for another registry:

.. code-block:: python

    from asgi_mcp_metrics import llm

    with llm.time_upstream("openai", "gpt-4o") as call:   # duration, errors by type
        response = await client.chat(...)
    llm.record_tokens("openai", "gpt-4o", input=312, output=87)
    llm.set_circuit_breaker("openai", "open")
    llm.set_build_info("1.2.0", "3f2c1ab", variant="canary")

``constant_labels`` (e.g. ``{"variant": "canary"}``) are added to every series by the recorder.
Provider and model names are bounded labels (``max_label_values``, overflow ``_OTHER``).
"""

from __future__ import annotations

import threading
from time import perf_counter
from types import TracebackType
from typing import Literal

from prometheus_client import CollectorRegistry

from ._binding import Binding
from ._outcomes import error_type_of
from .config import Settings
from .identity import identity_label
from .recorder import Recorder

__all__ = [
    "CIRCUIT_STATES",
    "LLMMetrics",
    "UpstreamCall",
    "cache_hit",
    "cache_miss",
    "rate_limit_adjusted",
    "record_tokens",
    "set_build_info",
    "set_circuit_breaker",
    "set_rate_limit",
    "time_upstream",
]

CircuitState = Literal["closed", "open", "half_open"]
#: ``gen_ai_client_circuit_breaker_state`` values.
CIRCUIT_STATES: dict[str, int] = {"closed": 0, "open": 1, "half_open": 2}

TOKEN_USAGE = "gen_ai_client_token_usage"
TOKENS_TOTAL = "gen_ai_client_tokens_total"
DURATION = "gen_ai_client_operation_duration_seconds"
UPSTREAM_ERRORS = "gen_ai_client_upstream_errors_total"


def upstream_error_type(error: BaseException) -> str:
    """``http_<status>`` for HTTP errors that carry a response (httpx, aiohttp, requests, the
    OpenAI SDK), ``timeout``, else the exception's class name."""
    status = getattr(error, "status_code", None)
    if status is None:
        response = getattr(error, "response", None)
        status = getattr(response, "status_code", getattr(response, "status", None))
    if status is None:
        status = getattr(error, "status", None)
    if isinstance(status, int) and not isinstance(status, bool) and 100 <= status <= 599:
        return f"http_{status}"
    return error_type_of(error)


class UpstreamCall:
    """One upstream model call being timed (sync and async context manager)."""

    __slots__ = ("_error_type", "_metrics", "_model", "_operation", "_provider", "_started")

    def __init__(self, metrics: LLMMetrics, provider: str, model: str, operation: str) -> None:
        self._metrics = metrics
        self._provider = provider
        self._model = model
        self._operation = operation
        self._error_type = ""
        self._started = 0.0

    def fail(self, error_type: str) -> None:
        """Mark the call as failed without an exception (e.g. an error status you handle)."""
        self._error_type = error_type

    def __enter__(self) -> UpstreamCall:
        self._started = perf_counter()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self._finish(error)

    async def __aenter__(self) -> UpstreamCall:
        self._started = perf_counter()
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        traceback: TracebackType | None) -> None:
        self._finish(error)

    def _finish(self, error: BaseException | None) -> None:
        elapsed = perf_counter() - self._started
        error_type = upstream_error_type(error) if error is not None else self._error_type
        self._metrics._upstream_finished(self._provider, self._model, self._operation,
                                         error_type, elapsed)


class LLMMetrics:
    """The LLM-proxy metrics on one registry (bound on first use)."""

    def __init__(self, *, registry: CollectorRegistry | None = None,
                 settings: Settings | None = None) -> None:
        self._binding = Binding(registry, settings, layer="llm", who="LLMMetrics()")
        self._build_lock = threading.Lock()
        self._build_labels: tuple[str, str, str] | None = None

    def _recorder(self) -> Recorder:
        return self._binding.recorder

    def _internal_error(self, where: str) -> None:
        self._binding.internal_error(f"llm.{where}")

    def _bounded(self, recorder: Recorder, label: str, value: str, metric: str) -> str:
        return recorder.guard(label)(value, metric)

    def record_tokens(self, provider: str, model: str, *, input: int = 0, output: int = 0,
                      operation: str = "chat") -> None:
        """Tokens of one model call: one histogram observation per direction, and the totals
        by provider, model, direction and the current identity."""
        try:
            recorder = self._recorder()
            provider_label = self._bounded(recorder, "gen_ai_provider_name", provider,
                                           TOKEN_USAGE)
            model_label = self._bounded(recorder, "gen_ai_request_model", model, TOKEN_USAGE)
            who = identity_label(recorder, TOKENS_TOTAL)
            for token_type, count in (("input", input), ("output", output)):
                if count < 0:
                    continue
                recorder[TOKEN_USAGE].labels(operation, provider_label, token_type,
                                             model_label).observe(count)
                recorder[TOKENS_TOTAL].labels(provider_label, model_label, token_type,
                                              who).inc(count)
        except Exception:
            self._internal_error("record_tokens")

    def time_upstream(self, provider: str, model: str, *, operation: str = "chat") -> UpstreamCall:
        """Time an upstream model call; an exception (or ``call.fail(type)``) counts an upstream
        error by type and is re-raised unchanged."""
        return UpstreamCall(self, provider, model, operation)

    def _upstream_finished(self, provider: str, model: str, operation: str, error_type: str,
                           elapsed: float) -> None:
        try:
            recorder = self._recorder()
            provider_label = self._bounded(recorder, "gen_ai_provider_name", provider, DURATION)
            model_label = self._bounded(recorder, "gen_ai_request_model", model, DURATION)
            error_label = self._bounded(recorder, "error_type", error_type, DURATION)
            recorder[DURATION].labels(operation, provider_label, model_label,
                                      error_label).observe(elapsed)
            if error_type:
                recorder[UPSTREAM_ERRORS].labels(provider_label, error_label).inc()
        except Exception:
            self._internal_error("time_upstream")

    def set_rate_limit(self, provider: str, requests_per_second: float) -> None:
        try:
            recorder = self._recorder()
            recorder["gen_ai_client_rate_limit_requests_per_second"].labels(
                self._bounded(recorder, "gen_ai_provider_name", provider, "rate_limit"),
            ).set(requests_per_second)
        except Exception:
            self._internal_error("set_rate_limit")

    def rate_limit_adjusted(self, provider: str, direction: Literal["up", "down"] | str) -> None:
        try:
            recorder = self._recorder()
            recorder["gen_ai_client_rate_limit_adjustments_total"].labels(
                self._bounded(recorder, "gen_ai_provider_name", provider, "rate_limit"),
                direction if direction in ("up", "down") else "_OTHER",
            ).inc()
        except Exception:
            self._internal_error("rate_limit_adjusted")

    def set_circuit_breaker(self, provider: str, state: CircuitState | str) -> None:
        """``closed`` (0), ``open`` (1) or ``half_open`` (2; ``half-open`` is accepted)."""
        value = CIRCUIT_STATES.get(state.replace("-", "_"))
        if value is None:
            raise ValueError(f"circuit-breaker state must be one of {sorted(CIRCUIT_STATES)}, "
                             f"not {state!r}")
        try:
            recorder = self._recorder()
            recorder["gen_ai_client_circuit_breaker_state"].labels(
                self._bounded(recorder, "gen_ai_provider_name", provider, "circuit_breaker"),
            ).set(value)
        except Exception:
            self._internal_error("set_circuit_breaker")

    def cache_hit(self, provider: str = "") -> None:
        self._cache(provider, "hit")

    def cache_miss(self, provider: str = "") -> None:
        self._cache(provider, "miss")

    def _cache(self, provider: str, result: str) -> None:
        try:
            recorder = self._recorder()
            recorder["gen_ai_client_cache_requests_total"].labels(
                self._bounded(recorder, "gen_ai_provider_name", provider, "cache"), result,
            ).inc()
        except Exception:
            self._internal_error("cache")

    def set_build_info(self, version: str, commit: str = "", variant: str | None = None) -> None:
        """``build_info{version, commit, variant} 1``; one series: a new call replaces it.

        ``variant`` defaults to the ``variant`` option.
        """
        try:
            recorder, settings = self._binding.resolve()
            if variant is None:
                # A ``variant`` constant label and the option describe the same thing.
                variant = settings.variant or recorder.constant_labels.get("variant", "")
            labels = (version, commit, variant)
            family = recorder["build_info"]
            with self._build_lock:
                replaced = self._build_labels
                if replaced is not None and replaced != labels:
                    if recorder.multiprocess:
                        # The metric files keep every child written (prometheus_client cannot
                        # remove one there): the replaced build reads 0.
                        family.labels(*replaced).set(0)
                    else:
                        family.metric.remove(*replaced, *family.const)
                        family.children.pop(replaced, None)
                family.labels(*labels).set(1)
                self._build_labels = labels
        except Exception:
            self._internal_error("set_build_info")


_default: LLMMetrics | None = None
_default_lock = threading.Lock()


def default_metrics() -> LLMMetrics:
    """The :class:`LLMMetrics` the module-level functions use (default registry)."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = LLMMetrics()
    return _default


def record_tokens(provider: str, model: str, *, input: int = 0, output: int = 0,
                  operation: str = "chat") -> None:
    default_metrics().record_tokens(provider, model, input=input, output=output,
                                    operation=operation)


def time_upstream(provider: str, model: str, *, operation: str = "chat") -> UpstreamCall:
    return default_metrics().time_upstream(provider, model, operation=operation)


def set_rate_limit(provider: str, requests_per_second: float) -> None:
    default_metrics().set_rate_limit(provider, requests_per_second)


def rate_limit_adjusted(provider: str, direction: Literal["up", "down"] | str) -> None:
    default_metrics().rate_limit_adjusted(provider, direction)


def set_circuit_breaker(provider: str, state: CircuitState | str) -> None:
    default_metrics().set_circuit_breaker(provider, state)


def cache_hit(provider: str = "") -> None:
    default_metrics().cache_hit(provider)


def cache_miss(provider: str = "") -> None:
    default_metrics().cache_miss(provider)


def set_build_info(version: str, commit: str = "", variant: str | None = None) -> None:
    default_metrics().set_build_info(version, commit, variant)

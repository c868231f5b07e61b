"""LLM-proxy metrics: tokens, upstream calls, rate limits, circuit breakers, cache, build info."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest

from asgi_mcp_metrics import llm
from asgi_mcp_metrics.config import Settings
from asgi_mcp_metrics.identity import use_identity
from asgi_mcp_metrics.llm import LLMMetrics, upstream_error_type
from tests.asgi import total, value

pytestmark = pytest.mark.anyio


@pytest.fixture
def metrics(registry: CollectorRegistry) -> LLMMetrics:
    return LLMMetrics(registry=registry, settings=Settings())


def test_tokens_histogram_and_totals(registry: CollectorRegistry, metrics: LLMMetrics) -> None:
    metrics.record_tokens("anthropic", "claude-sonnet", input=312, output=87)
    metrics.record_tokens("anthropic", "claude-sonnet", input=10, output=0)
    usage = {"gen_ai_operation_name": "chat", "gen_ai_provider_name": "anthropic",
             "gen_ai_request_model": "claude-sonnet"}
    bucket = "gen_ai_client_token_usage_bucket"
    # 312 lies between 4**4 = 256 and 4**5 = 1024.
    assert value(registry, bucket, gen_ai_token_type="input", le="256.0", **usage) == 1
    assert value(registry, bucket, gen_ai_token_type="input", le="1024.0", **usage) == 2
    assert value(registry, "gen_ai_client_token_usage_sum", gen_ai_token_type="output",
                 **usage) == 87
    totals = {"gen_ai_provider_name": "anthropic", "gen_ai_request_model": "claude-sonnet",
              "identity": ""}
    assert value(registry, "gen_ai_client_tokens_total", gen_ai_token_type="input",
                 **totals) == 322
    assert value(registry, "gen_ai_client_tokens_total", gen_ai_token_type="output",
                 **totals) == 87


def test_tokens_by_identity(registry: CollectorRegistry, metrics: LLMMetrics) -> None:
    with use_identity("team-a"):
        metrics.record_tokens("openai", "gpt-4o", input=5, output=6, operation="embeddings")
    assert value(registry, "gen_ai_client_tokens_total", gen_ai_provider_name="openai",
                 gen_ai_request_model="gpt-4o", gen_ai_token_type="output",
                 identity="team-a") == 6
    assert value(registry, "gen_ai_client_token_usage_count", gen_ai_operation_name="embeddings",
                 gen_ai_provider_name="openai", gen_ai_request_model="gpt-4o",
                 gen_ai_token_type="input") == 1


class RateLimited(Exception):
    status_code = 429


class Response:
    status = 503


class UpstreamDown(Exception):
    response = Response()


async def test_upstream_calls_and_errors_by_type(registry: CollectorRegistry,
                                                 metrics: LLMMetrics) -> None:
    async with metrics.time_upstream("openai", "gpt-4o"):
        pass
    with pytest.raises(RateLimited), metrics.time_upstream("openai", "gpt-4o"):
        raise RateLimited
    with pytest.raises(TimeoutError), metrics.time_upstream("openai", "gpt-4o"):
        raise TimeoutError
    with metrics.time_upstream("openai", "gpt-4o") as call:
        call.fail("content_filter")
    labels = {"gen_ai_operation_name": "chat", "gen_ai_provider_name": "openai",
              "gen_ai_request_model": "gpt-4o"}
    name = "gen_ai_client_operation_duration_seconds_count"
    assert value(registry, name, error_type="", **labels) == 1
    assert value(registry, name, error_type="http_429", **labels) == 1
    assert value(registry, name, error_type="timeout", **labels) == 1
    errors = "gen_ai_client_upstream_errors_total"
    assert value(registry, errors, gen_ai_provider_name="openai", error_type="http_429") == 1
    assert value(registry, errors, gen_ai_provider_name="openai", error_type="timeout") == 1
    assert value(registry, errors, gen_ai_provider_name="openai",
                 error_type="content_filter") == 1
    assert total(registry, errors) == 3


def test_upstream_error_types() -> None:
    assert upstream_error_type(RateLimited()) == "http_429"
    assert upstream_error_type(UpstreamDown()) == "http_503"
    assert upstream_error_type(ConnectionResetError()) == "ConnectionResetError"


def test_rate_limit_state_and_adjustments(registry: CollectorRegistry,
                                          metrics: LLMMetrics) -> None:
    metrics.set_rate_limit("zai", 40)
    metrics.rate_limit_adjusted("zai", "down")
    metrics.set_rate_limit("zai", 30)
    metrics.rate_limit_adjusted("zai", "down")
    metrics.rate_limit_adjusted("zai", "up")
    metrics.rate_limit_adjusted("zai", "sideways")
    assert value(registry, "gen_ai_client_rate_limit_requests_per_second",
                 gen_ai_provider_name="zai") == 30
    adjustments = "gen_ai_client_rate_limit_adjustments_total"
    assert value(registry, adjustments, gen_ai_provider_name="zai", direction="down") == 2
    assert value(registry, adjustments, gen_ai_provider_name="zai", direction="up") == 1
    assert value(registry, adjustments, gen_ai_provider_name="zai", direction="_OTHER") == 1


def test_circuit_breaker_states(registry: CollectorRegistry, metrics: LLMMetrics) -> None:
    state = "gen_ai_client_circuit_breaker_state"
    for name, expected in (("open", 1), ("half-open", 2), ("half_open", 2), ("closed", 0)):
        metrics.set_circuit_breaker("groq", name)
        assert value(registry, state, gen_ai_provider_name="groq") == expected
    with pytest.raises(ValueError, match="circuit-breaker state"):
        metrics.set_circuit_breaker("groq", "ajar")


def test_response_cache(registry: CollectorRegistry, metrics: LLMMetrics) -> None:
    metrics.cache_hit("openai")
    metrics.cache_hit("openai")
    metrics.cache_miss("openai")
    cache = "gen_ai_client_cache_requests_total"
    assert value(registry, cache, gen_ai_provider_name="openai", result="hit") == 2
    assert value(registry, cache, gen_ai_provider_name="openai", result="miss") == 1


def test_build_info_keeps_one_series(registry: CollectorRegistry) -> None:
    metrics = LLMMetrics(registry=registry, settings=Settings(variant="production"))
    metrics.set_build_info("1.0.0", "aaa")
    assert value(registry, "build_info", version="1.0.0", commit="aaa",
                 variant="production") == 1
    metrics.set_build_info("1.2.0", "bbb", variant="canary")
    assert registry.get_sample_value("build_info", {"version": "1.0.0", "commit": "aaa",
                                                    "variant": "production"}) is None
    assert value(registry, "build_info", version="1.2.0", commit="bbb", variant="canary") == 1


def test_constant_variant_label_on_every_series(registry: CollectorRegistry) -> None:
    metrics = LLMMetrics(registry=registry,
                         settings=Settings(constant_labels={"variant": "canary"}))
    metrics.record_tokens("zai", "glm-4", input=1, output=2)
    metrics.set_build_info("1.2.0", "abc")
    assert value(registry, "gen_ai_client_tokens_total", gen_ai_provider_name="zai",
                 gen_ai_request_model="glm-4", gen_ai_token_type="output", identity="",
                 variant="canary") == 2
    # build_info has a variant label of its own; it takes the constant label's value.
    assert value(registry, "build_info", version="1.2.0", commit="abc", variant="canary") == 1
    text = generate_latest(registry).decode()
    build_lines = [line for line in text.splitlines() if line.startswith("build_info{")]
    assert build_lines == ['build_info{commit="abc",variant="canary",version="1.2.0"} 1.0']


def test_provider_and_model_are_bounded(registry: CollectorRegistry) -> None:
    metrics = LLMMetrics(registry=registry, settings=Settings(max_label_values=1))
    metrics.record_tokens("p1", "m1", input=1)
    metrics.record_tokens("p2", "m2", input=1)
    assert value(registry, "gen_ai_client_tokens_total", gen_ai_provider_name="_OTHER",
                 gen_ai_request_model="_OTHER", gen_ai_token_type="input", identity="") == 1


def test_module_functions_record_through_the_default_instance(
        registry: CollectorRegistry, metrics: LLMMetrics, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(llm, "_default", metrics)
    llm.record_tokens("mistral", "large", input=3, output=4)
    with llm.time_upstream("mistral", "large"):
        pass
    llm.set_rate_limit("mistral", 7)
    llm.rate_limit_adjusted("mistral", "up")
    llm.set_circuit_breaker("mistral", "open")
    llm.cache_hit("mistral")
    llm.cache_miss("mistral")
    llm.set_build_info("9.9.9", "fff", variant="canary")
    provider = {"gen_ai_provider_name": "mistral"}
    assert value(registry, "gen_ai_client_tokens_total", gen_ai_request_model="large",
                 gen_ai_token_type="input", identity="", **provider) == 3
    assert value(registry, "gen_ai_client_operation_duration_seconds_count", error_type="",
                 gen_ai_operation_name="chat", gen_ai_request_model="large", **provider) == 1
    assert value(registry, "gen_ai_client_rate_limit_requests_per_second", **provider) == 7
    assert value(registry, "gen_ai_client_rate_limit_adjustments_total", direction="up",
                 **provider) == 1
    assert value(registry, "gen_ai_client_circuit_breaker_state", **provider) == 1
    assert total(registry, "gen_ai_client_cache_requests_total", **provider) == 2
    assert value(registry, "build_info", version="9.9.9", commit="fff", variant="canary") == 1


def test_default_instance_is_created_once_and_bound_late() -> None:
    assert llm.default_metrics() is llm.default_metrics()
    assert llm.default_metrics()._binding.registry is REGISTRY

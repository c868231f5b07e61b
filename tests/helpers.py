"""Helpers several test modules share: a controllable clock, and readers of common metrics."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from .asgi import value


class FakeClock:
    """Stands in for ``perf_counter``: durations, and so bucket placement, are exact."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def tool_calls(registry: CollectorRegistry, tool: str, outcome: str = "ok", *, backend: str = "",
               identity: str = "") -> float:
    """``mcp_tool_calls_total`` for one tool, outcome, backend and identity."""
    return value(registry, "mcp_tool_calls_total", gen_ai_tool_name=tool, backend=backend,
                 outcome=outcome, identity=identity)


def client_operations(registry: CollectorRegistry, backend: str, method: str, *,
                      tool: str = "", error_type: str = "") -> float:
    """How many calls to a backend ``mcp_client_operation_duration_seconds`` has seen."""
    return value(registry, "mcp_client_operation_duration_seconds_count", backend=backend,
                 mcp_method_name=method, gen_ai_tool_name=tool, error_type=error_type)

"""Every documented set-up order binds one set of metrics, and the app answers as without us.

In-code instrumentation (decorators, ``LLMMetrics``, ``BackendMonitor``) may be created and
even used before or after the app configures the registry (``instrument()``,
``MetricsMiddleware``), at import time or in the app's lifespan: they all end up on the one
binding the app configured, and a conflict of two configurations raises at the line of the
second one, never as a failing request.
"""

from __future__ import annotations

import gc
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from asgi_mcp_metrics import (
    BackendMonitor,
    ConfigError,
    MetricsMiddleware,
    instrument_acl,
    instrument_tool,
)
from asgi_mcp_metrics._binding import bound_slots
from asgi_mcp_metrics.config import Settings
from asgi_mcp_metrics.llm import LLMMetrics
from asgi_mcp_metrics.starlette import instrument

from .asgi import value

CANARY = {"variant": "canary"}
HERE = re.escape(__file__)


class Parts:
    """What one set-up order created; each ``make_*`` runs at the point the order says."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.monitor: BackendMonitor | None = None
        self.tool: Callable[[int], int] | None = None
        self.acl: Callable[[str], bool] | None = None

    def make_llm(self) -> None:
        llm = LLMMetrics(registry=self.registry)
        llm.set_build_info("1.2.0", "3f2c1ab", variant="canary")

    def make_monitor(self) -> None:
        self.monitor = BackendMonitor("db", transport="stdio", registry=self.registry)

    def make_tool(self) -> None:
        @instrument_tool(name="double", registry=self.registry)
        def double(x: int) -> int:
            return 2 * x

        self.tool = double

    def make_acl(self) -> None:
        @instrument_acl(tool="double", registry=self.registry)
        def allowed(who: str) -> bool:
            return who == "alice"

        self.acl = allowed

    def make_all(self) -> None:
        self.make_llm()
        self.make_monitor()
        self.make_tool()
        self.make_acl()


def build(parts: Parts | None, lifespan_setup: bool = False) -> Starlette:
    async def answer(request: Request) -> JSONResponse:
        x = int(request.query_params.get("x", "1"))
        doubled = parts.tool(x) if parts is not None and parts.tool else 2 * x
        allowed = parts.acl("alice") if parts is not None and parts.acl else True
        return JSONResponse({"doubled": doubled, "allowed": allowed},
                            headers={"x-answer": "yes"})

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if lifespan_setup and parts is not None:
            parts.make_all()
        yield

    return Starlette(routes=[Route("/answer", answer, methods=["GET", "POST"])],
                     lifespan=lifespan)


def answers(app: Any) -> list[tuple[int, list[tuple[str, str]], bytes]]:
    seen = []
    with TestClient(app) as client:
        for method, url in (("GET", "/answer?x=4"), ("POST", "/answer?x=5"),
                            ("GET", "/missing"), ("DELETE", "/answer")):
            response = client.request(method, url)
            seen.append((response.status_code, list(response.headers.multi_items()),
                         response.content))
    return seen


def starlette_instrument(registry: CollectorRegistry) -> Callable[[Starlette], Any]:
    return lambda app: instrument(app, registry=registry, constant_labels=CANARY)


def raw_middleware(registry: CollectorRegistry) -> Callable[[Starlette], Any]:
    return lambda app: MetricsMiddleware(app, registry=registry, constant_labels=CANARY)


# (name, front end, what runs before it, what runs after it, set up in the lifespan?)
ORDERS = [
    ("instrument, then LLMMetrics and a monitor", starlette_instrument, (),
     ("make_all",), False),
    ("LLMMetrics used before instrument", starlette_instrument, ("make_llm",),
     ("make_monitor", "make_tool", "make_acl"), False),
    ("everything at import time, before instrument", starlette_instrument, ("make_all",),
     (), False),
    ("decorators before, monitors after", starlette_instrument, ("make_tool", "make_acl"),
     ("make_llm", "make_monitor"), False),
    ("set-up in the lifespan", starlette_instrument, (), (), True),
    ("everything before MetricsMiddleware", raw_middleware, ("make_all",), (), False),
    ("MetricsMiddleware, then everything", raw_middleware, (), ("make_all",), False),
]


@pytest.mark.parametrize(("front_end", "before", "after", "in_lifespan"),
                         [order[1:] for order in ORDERS], ids=[order[0] for order in ORDERS])
def test_every_set_up_order_binds_once_and_leaves_the_answers_alone(
        front_end: Callable[[CollectorRegistry], Callable[[Starlette], Any]],
        before: tuple[str, ...], after: tuple[str, ...], in_lifespan: bool) -> None:
    bare = answers(build(Parts(CollectorRegistry())))

    registry = CollectorRegistry()
    parts = Parts(registry)
    for step in before:
        getattr(parts, step)()
    app = front_end(registry)(build(parts, lifespan_setup=in_lifespan))
    for step in after:
        getattr(parts, step)()

    assert answers(app) == bare

    [slot] = bound_slots(registry)
    assert not slot.provisional
    assert slot.settings.constant_labels == CANARY
    # Everything landed on that one binding, with the constant label.
    assert value(registry, "build_info", version="1.2.0", commit="3f2c1ab",
                 variant="canary") == 1
    assert value(registry, "mcp_backend_up", backend="db", transport="stdio",
                 variant="canary") == 0
    assert parts.monitor is not None and parts.monitor._binding.recorder is slot.recorder
    assert value(registry, "mcp_tool_calls_total", gen_ai_tool_name="double",
                 backend="", outcome="ok", identity="", variant="canary") == 2
    assert value(registry, "mcp_acl_decisions_total", decision="allow",
                 gen_ai_tool_name="double", backend="", identity="", rule="",
                 variant="canary") == 2
    assert registry.get_sample_value("mcp_acl_decision_duration_seconds_count",
                                     {"decision": "deny", "variant": "canary"}) == 0
    requests = sum(value(registry, "http_server_request_duration_seconds_count",
                         http_request_method=method, http_route=route,
                         http_response_status_code=status, error_type="",
                         variant="canary")
                   for method, route, status in (("GET", "/answer", "200"),
                                                 ("POST", "/answer", "200")))
    assert requests == 2


def test_the_reported_sequence_answers_200(registry: CollectorRegistry) -> None:
    """``instrument(constant_labels=...)`` then ``LLMMetrics().set_build_info`` at import time
    used to make every request, ``/metrics`` included, answer 500."""
    app = build(None)
    app = instrument(app, registry=registry, constant_labels=CANARY)
    llm = LLMMetrics(registry=registry)
    llm.set_build_info("1.2.0", "3f2c1ab", variant="canary")
    with TestClient(app) as client:
        assert client.get("/answer").status_code == 200
        metrics = client.get("/metrics")
    assert metrics.status_code == 200
    assert ('build_info{commit="3f2c1ab",variant="canary",version="1.2.0"} 1.0'
            in metrics.text)


def test_a_monitor_created_before_the_app_shows_its_backend_once_the_app_is_configured(
        registry: CollectorRegistry) -> None:
    BackendMonitor("search", registry=registry)  # kept nowhere: configured all the same
    gc.collect()
    assert registry.get_sample_value("mcp_backend_up", {"backend": "search",
                                                         "transport": ""}) is None
    instrument(build(None), registry=registry, constant_labels=CANARY)
    assert registry.get_sample_value("mcp_backend_up", {"backend": "search", "transport": "",
                                                         "variant": "canary"}) == 0


def test_counts_recorded_before_the_app_is_configured_carry_over(
        registry: CollectorRegistry) -> None:
    @instrument_tool(name="early", registry=registry)
    def early() -> str:
        return "ok"

    early()
    early()
    instrument(build(None), registry=registry, namespace="gw", constant_labels=CANARY)
    early()
    assert value(registry, "gw_mcp_tool_calls_total", gen_ai_tool_name="early",
                 backend="", outcome="ok", identity="", variant="canary") == 3
    assert value(registry, "gw_mcp_tool_call_duration_seconds_count", gen_ai_tool_name="early",
                 backend="", outcome="ok", variant="canary") == 3
    assert value(registry, "mcp_tool_calls_total", gen_ai_tool_name="early",
                 backend="", outcome="ok", identity="") == 0
    [slot] = bound_slots(registry)
    assert slot.settings.namespace == "gw"


def test_two_configurations_conflict_at_the_second_line(registry: CollectorRegistry,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASGI_MCP_METRICS_CONSTANT_LABELS", "variant=blue")
    instrument(build(None), registry=registry)
    with pytest.raises(ConfigError) as raised:
        MetricsMiddleware(build(None), registry=registry, constant_labels=CANARY)
    message = str(raised.value)
    assert re.search(
        rf"^MetricsMiddleware\(\) at {HERE}:\d+: constant_labels: this registry's metrics "
        rf"were already configured by instrument\(\) at {HERE}:\d+ with "
        r"constant_labels=\{'variant': 'blue'\} \(from ASGI_MCP_METRICS_CONSTANT_LABELS "
        r"\(environment\)\); this configuration asks for "
        r"constant_labels=\{'variant': 'canary'\} \(from constant_labels \(keyword argument\)\)",
        message), message
    # The first binding is untouched and keeps working.
    [slot] = bound_slots(registry)
    assert slot.settings.constant_labels == {"variant": "blue"}


def test_a_decorator_with_other_settings_conflicts_where_it_is_applied(
        registry: CollectorRegistry) -> None:
    MetricsMiddleware(build(None), registry=registry, max_tool_names=5)
    with pytest.raises(ConfigError, match=r"max_tool_names=200 \(from max_tool_names "
                                          r"\(default\)\)"):
        @instrument_tool(registry=registry, settings=Settings())
        def tool() -> None: ...


def test_observations_that_cannot_move_into_other_buckets_are_a_start_up_error(
        registry: CollectorRegistry) -> None:
    @instrument_tool(name="early", registry=registry)
    def early() -> str:
        return "ok"

    early()
    with pytest.raises(ConfigError, match=r"^instrument\(\) at .*: operation_duration_buckets: "
                                          r"mcp_tool_call_duration_seconds already holds "
                                          r"observations recorded by instrument_tool\(\) at "):
        instrument(build(None), registry=registry, operation_duration_buckets=(1.0, 2.0))
    # Nothing was lost: the provisional binding stays, with its observation.
    [slot] = bound_slots(registry)
    assert slot.provisional
    assert value(registry, "mcp_tool_call_duration_seconds_count", gen_ai_tool_name="early",
                 backend="", outcome="ok") == 1
    # Same buckets: the app takes the binding over.
    instrument(build(None), registry=registry, constant_labels=CANARY)
    assert value(registry, "mcp_tool_call_duration_seconds_count", gen_ai_tool_name="early",
                 backend="", outcome="ok", variant="canary") == 1

"""``instrument_tool`` and ``instrument_acl``: every callable kind, outcomes, labels, failsafety."""

from __future__ import annotations

import asyncio
import enum
import inspect
import json
import logging
from collections.abc import AsyncGenerator, Generator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from mcp.server.mcpserver import MCPServer
from mcp_types import CallToolResult, TextContent
from prometheus_client import CollectorRegistry, Counter

from asgi_mcp_metrics._binding import get_recorder
from asgi_mcp_metrics.config import Settings
from asgi_mcp_metrics.declared_tools import declare_tool, is_declared_tool
from asgi_mcp_metrics.decorators import instrument_acl, instrument_tool, parse_decision
from asgi_mcp_metrics.identity import use_identity
from tests.asgi import total, value
from tests.helpers import FakeClock, tool_calls

pytestmark = pytest.mark.anyio

BUCKET = "mcp_tool_call_duration_seconds_bucket"
COUNT = "mcp_tool_call_duration_seconds_count"


@pytest.fixture
def settings() -> Settings:
    return Settings()


# -- kinds of callables --------------------------------------------------------------------------


def test_sync_function_counts_and_times_one_call(registry: CollectorRegistry, settings: Settings,
                                                 clock: FakeClock) -> None:
    @instrument_tool(backend="github", registry=registry, settings=settings)
    def search(query: str) -> str:
        clock.advance(0.3)
        return query.upper()

    assert search("mcp") == "MCP"
    assert tool_calls(registry, "search", backend="github") == 1
    labels = {"gen_ai_tool_name": "search", "backend": "github", "outcome": "ok"}
    assert value(registry, BUCKET, le="0.2", **labels) == 0
    assert value(registry, BUCKET, le="0.5", **labels) == 1
    assert value(registry, "mcp_tool_call_duration_seconds_sum", **labels) == pytest.approx(0.3)


async def test_async_function_is_timed_until_awaited(registry: CollectorRegistry,
                                                     settings: Settings,
                                                     clock: FakeClock) -> None:
    @instrument_tool(registry=registry, settings=settings)
    async def fetch(n: int) -> int:
        await asyncio.sleep(0)
        clock.advance(1.5)
        return n * 2

    assert inspect.iscoroutinefunction(fetch)
    pending = fetch(2)
    clock.advance(100)  # time between creating and awaiting the coroutine is not the call's
    assert await pending == 4
    labels = {"gen_ai_tool_name": "fetch", "backend": "", "outcome": "ok"}
    assert value(registry, BUCKET, le="1.0", **labels) == 0
    assert value(registry, BUCKET, le="2.0", **labels) == 1


def test_generator_call_lasts_until_exhausted(registry: CollectorRegistry, settings: Settings,
                                              clock: FakeClock) -> None:
    @instrument_tool(registry=registry, settings=settings)
    def stream(n: int) -> Iterator[int]:
        for i in range(n):
            clock.advance(1)
            yield i

    assert inspect.isgeneratorfunction(stream)
    iterator = stream(3)
    assert next(iterator) == 0
    assert total(registry, COUNT) == 0  # still running
    assert list(iterator) == [1, 2]
    assert tool_calls(registry, "stream") == 1
    assert value(registry, "mcp_tool_call_duration_seconds_sum", gen_ai_tool_name="stream",
                 backend="", outcome="ok") == pytest.approx(3)


def test_generator_closed_early_is_ok_and_raising_is_error(registry: CollectorRegistry,
                                                           settings: Settings) -> None:
    @instrument_tool(registry=registry, settings=settings)
    def numbers(fail: bool) -> Generator[int, None, None]:
        yield 1
        if fail:
            raise LookupError("gone")
        yield 2

    iterator = numbers(False)
    next(iterator)
    iterator.close()
    assert tool_calls(registry, "numbers", "ok") == 1

    failing = numbers(True)
    next(failing)
    with pytest.raises(LookupError):
        next(failing)
    assert tool_calls(registry, "numbers", "error") == 1


def test_generator_send_and_throw_reach_the_generator(registry: CollectorRegistry,
                                                       settings: Settings) -> None:
    @instrument_tool(registry=registry, settings=settings)
    def echo() -> Generator[str, Any, None]:
        received = yield "ready"
        while True:
            try:
                received = yield f"got {received}"
            except KeyError:
                received = "thrown"

    gen = echo()
    assert next(gen) == "ready"
    assert gen.send("a") == "got a"
    assert gen.throw(KeyError("k")) == "got thrown"
    gen.close()
    assert tool_calls(registry, "echo", "ok") == 1


async def test_async_generator_forwards_asend_athrow_and_aclose(registry: CollectorRegistry,
                                                                settings: Settings,
                                                                clock: FakeClock) -> None:
    @instrument_tool(registry=registry, settings=settings)
    async def chat(prefix: str) -> AsyncGenerator[str, Any]:
        received = yield f"{prefix} ready"
        while True:
            try:
                clock.advance(0.5)
                received = yield f"{prefix} {received}"
            except KeyError:
                received = "thrown"

    assert inspect.isasyncgenfunction(chat)
    gen = chat(">")
    assert await gen.__anext__() == "> ready"
    assert await gen.asend("hi") == "> hi"
    assert await gen.athrow(KeyError("k")) == "> thrown"
    assert total(registry, COUNT) == 0
    await gen.aclose()
    assert tool_calls(registry, "chat", "ok") == 1
    assert value(registry, "mcp_tool_call_duration_seconds_sum", gen_ai_tool_name="chat",
                 backend="", outcome="ok") == pytest.approx(1.0)


async def test_async_generator_that_raises_is_an_error(registry: CollectorRegistry,
                                                       settings: Settings) -> None:
    @instrument_tool(registry=registry, settings=settings)
    async def items() -> AsyncGenerator[int, None]:
        yield 1
        raise RuntimeError("broken stream")

    collected = []
    with pytest.raises(RuntimeError, match="broken stream"):
        async for item in items():
            collected.append(item)
    assert collected == [1]
    assert tool_calls(registry, "items", "error") == 1


async def test_async_generator_exhausted_is_ok(registry: CollectorRegistry,
                                               settings: Settings) -> None:
    @instrument_tool(registry=registry, settings=settings)
    async def three() -> AsyncGenerator[int, None]:
        for i in range(3):
            yield i

    assert [i async for i in three()] == [0, 1, 2]
    assert tool_calls(registry, "three", "ok") == 1


def test_methods_classmethods_and_staticmethods_in_either_order(
        registry: CollectorRegistry, settings: Settings) -> None:
    options: dict[str, Any] = {"registry": registry, "settings": settings}

    class Tools:
        factor = 10

        def __init__(self) -> None:
            self.offset = 1

        @instrument_tool(**options)
        def method(self, x: int) -> int:
            return x + self.offset

        @instrument_tool(**options)
        @classmethod
        def class_above(cls, x: int) -> int:
            return x * cls.factor

        @classmethod
        @instrument_tool(**options)
        def class_below(cls, x: int) -> int:
            return x * cls.factor + 1

        @instrument_tool(**options)
        @staticmethod
        def static_above(x: int) -> int:
            return -x

        @staticmethod
        @instrument_tool(**options)
        def static_below(x: int) -> int:
            return -x - 1

    tools = Tools()
    assert tools.method(1) == 2
    assert Tools.class_above(2) == 20
    assert tools.class_above(2) == 20
    assert Tools.class_below(2) == 21
    assert Tools.static_above(3) == -3
    assert tools.static_below(3) == -4
    assert tool_calls(registry, "method") == 1
    assert tool_calls(registry, "class_above") == 2
    assert tool_calls(registry, "class_below") == 1
    assert tool_calls(registry, "static_above") == 1
    assert tool_calls(registry, "static_below") == 1
    assert list(inspect.signature(tools.method).parameters) == ["x"]
    assert list(inspect.signature(Tools.method).parameters) == ["self", "x"]


async def test_async_methods_stay_coroutine_functions(registry: CollectorRegistry,
                                                      settings: Settings) -> None:
    class Handler:
        @instrument_tool(registry=registry, settings=settings)
        async def handle(self, x: int) -> int:
            return x

    handler = Handler()
    assert inspect.iscoroutinefunction(handler.handle)
    assert inspect.iscoroutinefunction(Handler.handle)
    assert await handler.handle(5) == 5
    assert tool_calls(registry, "handle") == 1


def test_bare_decorator_keeps_name_signature_and_wrapped(registry: CollectorRegistry) -> None:
    def lookup(key: str, *, default: int = 0) -> int:
        """Find a key."""
        return default

    wrapped = instrument_tool(lookup)
    assert inspect.unwrap(wrapped) is lookup
    assert wrapped.__name__ == "lookup"
    assert wrapped.__doc__ == "Find a key."
    assert inspect.signature(wrapped) == inspect.signature(lookup)
    assert not inspect.iscoroutinefunction(wrapped)
    assert is_declared_tool("lookup")


# -- outcomes -----------------------------------------------------------------------------------


def test_exception_is_reraised_unchanged_and_counted(registry: CollectorRegistry,
                                                     settings: Settings) -> None:
    error = ValueError("bad input")

    @instrument_tool(registry=registry, settings=settings)
    def explode() -> None:
        raise error

    with pytest.raises(ValueError) as caught:
        explode()
    assert caught.value is error
    assert tool_calls(registry, "explode", "error") == 1
    assert tool_calls(registry, "explode", "ok") == 0


@pytest.mark.parametrize("result", [
    {"isError": True, "content": []},
    {"is_error": True},
    CallToolResult(content=[TextContent(type="text", text="nope")], is_error=True),
])
def test_results_reporting_is_error_are_tool_errors(registry: CollectorRegistry,
                                                    settings: Settings, result: Any) -> None:
    @instrument_tool(name="flaky", registry=registry, settings=settings)
    def handler() -> Any:
        return result

    assert handler() is result
    assert tool_calls(registry, "flaky", "tool_error") == 1


def test_object_with_is_error_attribute_is_a_tool_error(registry: CollectorRegistry,
                                                        settings: Settings) -> None:
    @dataclass
    class Reply:
        isError: bool

    @instrument_tool(name="reply", registry=registry, settings=settings)
    def handler(failed: bool) -> Reply:
        return Reply(isError=failed)

    handler(True)
    handler(False)
    assert tool_calls(registry, "reply", "tool_error") == 1
    assert tool_calls(registry, "reply", "ok") == 1


def test_truthy_non_bool_is_error_is_not_a_tool_error(registry: CollectorRegistry,
                                                      settings: Settings) -> None:
    @instrument_tool(name="strict", registry=registry, settings=settings)
    def handler() -> dict[str, Any]:
        return {"isError": "yes"}

    handler()
    assert tool_calls(registry, "strict", "ok") == 1


async def test_cancelled_call_is_counted_as_cancelled(registry: CollectorRegistry,
                                                      settings: Settings) -> None:
    started = asyncio.Event()

    @instrument_tool(registry=registry, settings=settings)
    async def slow() -> None:
        started.set()
        await asyncio.Event().wait()

    task = asyncio.create_task(slow())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert tool_calls(registry, "slow", "cancelled") == 1


# -- labels -------------------------------------------------------------------------------------


def test_dispatch_function_with_tool_and_backend_extractors(registry: CollectorRegistry,
                                                            settings: Settings) -> None:
    owners = {"search": "github", "read_file": "files"}

    @instrument_tool(tool=lambda name, arguments: name,
                     backend=lambda name, arguments: owners[name],
                     registry=registry, settings=settings)
    def dispatch(name: str, arguments: dict[str, Any]) -> str:
        return f"{name}:{arguments}"

    dispatch("search", {"q": 1})
    dispatch("search", {"q": 2})
    dispatch(name="read_file", arguments={})
    assert tool_calls(registry, "search", backend="github") == 2
    assert tool_calls(registry, "read_file", backend="files") == 1
    assert tool_calls(registry, "dispatch") == 0
    # Names a decorator counts are skipped by the wire layer.
    assert is_declared_tool("read_file")


async def test_extractors_of_a_method_get_self_first(registry: CollectorRegistry,
                                                   settings: Settings) -> None:
    class Proxy:
        def __init__(self) -> None:
            self.routes = {"forecast": "weather"}

        @instrument_tool(tool=lambda self, name, arguments: name,
                         backend=lambda self, name, arguments: self.routes[name],
                         registry=registry, settings=settings)
        async def forward(self, name: str, arguments: dict[str, Any]) -> str:
            return name

    proxy = Proxy()
    assert await proxy.forward("forecast", {}) == "forecast"
    # A bound method decorated at run time sees the same arguments.
    bound = instrument_tool(tool=lambda self, name, arguments: name,
                            backend=lambda self, name, arguments: self.routes[name],
                            registry=registry, settings=settings)(
        inspect.unwrap(Proxy.forward).__get__(proxy))
    assert await bound("forecast", {}) == "forecast"
    assert tool_calls(registry, "forecast", backend="weather") == 2


def test_failing_extractors_are_counted_and_the_call_is_unaffected(
        registry: CollectorRegistry, settings: Settings) -> None:
    def broken(*args: Any) -> str:
        raise KeyError("no such backend")

    @instrument_tool(name="resilient", backend=broken, registry=registry, settings=settings)
    def handler(x: int) -> int:
        return x + 1

    assert handler(1) == 2
    assert tool_calls(registry, "resilient", backend="") == 1
    assert value(registry, "asgi_mcp_metrics_callback_errors_total",
                 callback="instrument_tool.backend") == 1


def test_identity_comes_from_the_current_request(registry: CollectorRegistry) -> None:
    settings = Settings(identity_allowlist=("alice",))

    @instrument_tool(name="whoami", registry=registry, settings=settings)
    def handler() -> str:
        return "ok"

    with use_identity("alice"):
        handler()
    with use_identity("mallory"):
        handler()
    handler()
    assert tool_calls(registry, "whoami", identity="alice") == 1
    assert tool_calls(registry, "whoami", identity="_OTHER") == 1
    assert tool_calls(registry, "whoami", identity="") == 1


# -- binding and failsafety ---------------------------------------------------------------------


def test_nothing_is_registered_before_the_first_call(registry: CollectorRegistry) -> None:
    @instrument_tool(registry=registry)
    def idle() -> None:
        pass

    assert list(registry.collect()) == []
    idle()
    assert tool_calls(registry, "idle") == 1


def test_reuses_the_recorder_the_app_built_on_the_registry(registry: CollectorRegistry) -> None:
    get_recorder(registry, Settings(namespace="proxy"))

    @instrument_tool(registry=registry)
    def shared() -> None:
        pass

    shared()
    assert value(registry, "proxy_mcp_tool_calls_total", gen_ai_tool_name="shared", backend="",
                 outcome="ok", identity="") == 1


def test_a_broken_registry_never_reaches_the_caller(registry: CollectorRegistry,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    # Someone else already owns the name: binding our metrics fails with "Duplicated".
    Counter("mcp_tool_calls", "not ours", registry=registry)

    @instrument_tool(registry=registry, settings=Settings())
    def still_works(x: int) -> int:
        return x * 3

    with caplog.at_level(logging.ERROR, logger="asgi_mcp_metrics"):
        assert still_works(3) == 9
    # Logged as an error of ours (at decoration, where it binds, and at the call), not raised.
    assert "asgi_mcp_metrics: internal error in bind" in caplog.text
    assert "asgi_mcp_metrics: internal error in instrument_tool" in caplog.text
    assert "Duplicated timeseries" in caplog.text


def test_audit_line_per_call(registry: CollectorRegistry,
                             caplog: pytest.LogCaptureFixture) -> None:
    settings = Settings(audit_log=True, audit_logger="test.audit")

    @instrument_tool(name="audited", backend="files", registry=registry, settings=settings)
    def handler() -> None:
        raise OSError("disk")

    with caplog.at_level(logging.INFO, logger="test.audit"), use_identity("client-a"), \
            pytest.raises(OSError):
        handler()
    [record] = [r for r in caplog.records if r.name == "test.audit"]
    line = json.loads(record.getMessage())
    assert line["tool"] == "audited"
    assert line["backend"] == "files"
    assert line["identity"] == "client-a"
    assert line["outcome"] == "error"
    assert line["duration_seconds"] >= 0
    assert line["time"].endswith("Z")


def test_audit_is_off_by_default(registry: CollectorRegistry, settings: Settings,
                                 caplog: pytest.LogCaptureFixture) -> None:
    @instrument_tool(name="quiet", registry=registry, settings=settings)
    def handler() -> None:
        pass

    with caplog.at_level(logging.INFO):
        handler()
    assert [r for r in caplog.records if r.name == settings.audit_logger] == []

    # The positive control: with the option on, the same call writes one line.
    @instrument_tool(name="loud", registry=registry, settings=settings.replace(audit_log=True))
    def loud() -> None:
        pass

    with caplog.at_level(logging.INFO):
        loud()
    assert len([r for r in caplog.records if r.name == settings.audit_logger]) == 1


# -- next to the mcp SDK (no transport: MCPServer.call_tool) --------------------------------------


async def test_stacks_with_mcp_tool_in_either_order(registry: CollectorRegistry,
                                                    settings: Settings) -> None:
    mcp = MCPServer("stacking")

    @mcp.tool()
    @instrument_tool(backend="below", registry=registry, settings=settings)
    async def add(a: int, b: int) -> int:
        return a + b

    @instrument_tool(backend="above", registry=registry, settings=settings)
    @mcp.tool(name="times")
    def multiply(a: int, b: int) -> int:
        return a * b

    first = await mcp.call_tool("add", {"a": 2, "b": 3})
    second = await mcp.call_tool("times", {"a": 2, "b": 3})
    assert first.structured_content == {"result": 5}  # type: ignore[union-attr]
    assert second.structured_content == {"result": 6}  # type: ignore[union-attr]
    assert tool_calls(registry, "add", backend="below") == 1
    # Above @mcp.tool(name=...), the name is the one the SDK registered.
    assert tool_calls(registry, "times", backend="above") == 1
    # The function itself stays callable and counted.
    assert multiply(4, 5) == 20
    assert tool_calls(registry, "times", backend="above") == 2


async def test_stacking_above_mcp_tool_inside_a_factory_function(registry: CollectorRegistry,
                                                                 settings: Settings) -> None:
    def build() -> MCPServer:
        server = MCPServer("factory")

        @instrument_tool(registry=registry, settings=settings)
        @server.tool()
        def ping() -> str:
            return "pong"

        return server

    server = build()
    await server.call_tool("ping", {})
    assert tool_calls(registry, "ping") == 1


# -- instrument_acl -----------------------------------------------------------------------------

DECISIONS = "mcp_acl_decisions_total"


def decisions(registry: CollectorRegistry, decision: str, **labels: str) -> float:
    return total(registry, DECISIONS, decision=decision, **labels)


def test_acl_series_exist_at_zero_once_bound(registry: CollectorRegistry,
                                             settings: Settings) -> None:
    @instrument_acl(registry=registry, settings=settings)
    def check(identity: str, tool: str) -> bool:
        return True

    for decision in ("allow", "deny"):
        assert registry.get_sample_value("mcp_acl_decision_duration_seconds_count",
                                         {"decision": decision}) == 0
    # No placeholder series with empty labels in the counter: its family is listed, empty.
    counter = next(family for family in registry.collect()
                   if family.name == DECISIONS.removesuffix("_total"))
    assert counter.samples == []


def test_acl_without_settings_binds_on_first_decision(registry: CollectorRegistry) -> None:
    @instrument_acl(registry=registry)
    def check() -> bool:
        return False

    assert list(registry.collect()) == []
    check()
    assert decisions(registry, "deny") == 1
    assert decisions(registry, "allow") == 0


class Verdict(enum.Enum):
    ALLOW = "allow"
    DENY = "deny"


@dataclass
class Decision:
    allowed: bool
    rule: str


@pytest.mark.parametrize(("result", "expected"), [
    (True, "allow"), (False, "deny"), (None, "allow"),
    ({"allowed": True}, "allow"), ({"allowed": False}, "deny"),
    ({"allow": False}, "deny"), ({"granted": True}, "allow"),
    ({"denied": True}, "deny"), ({"denied": False}, "allow"),
    ({"decision": "deny"}, "deny"), ({"decision": "ALLOW"}, "allow"),
    ({"decision": Verdict.DENY}, "deny"), (Verdict.ALLOW, "allow"), ("denied", "deny"),
    (Decision(allowed=False, rule="r1"), "deny"),
])
def test_decision_shapes(result: Any, expected: str) -> None:
    assert parse_decision(result) == expected


def test_acl_labels_from_arguments_result_and_identity(registry: CollectorRegistry,
                                                       settings: Settings) -> None:
    @instrument_acl(tool=lambda tool, backend: tool, backend=lambda tool, backend: backend,
                    registry=registry, settings=settings)
    def check(tool: str, backend: str) -> Decision:
        return Decision(allowed=tool != "delete_repo", rule="no-destructive")

    declare_tool("acl_list_issues")  # as @instrument_tool does: a known label value

    with use_identity("client-b"):
        assert check("acl_list_issues", "github").allowed
        assert not check("delete_repo", "github").allowed
        assert not check("delete_repo", "github").allowed
    assert decisions(registry, "allow", gen_ai_tool_name="acl_list_issues", backend="github",
                     identity="client-b", rule="no-destructive") == 1
    # A tool name nobody declared or listed is not a label value.
    assert decisions(registry, "deny", gen_ai_tool_name="_OTHER", identity="client-b") == 2


def test_acl_denials_by_exception_are_reraised(registry: CollectorRegistry,
                                               settings: Settings) -> None:
    class AccessDenied(Exception):
        rule = "team-only"

    class Refusal(Exception):
        pass

    errors: list[BaseException] = [PermissionError("no"), AccessDenied(), Refusal()]

    @instrument_acl(deny_exceptions=(Refusal,), registry=registry, settings=settings)
    def guard(i: int) -> None:
        raise errors[i]

    for i, error in enumerate(errors):
        with pytest.raises(type(error)) as caught:
            guard(i)
        assert caught.value is error
    assert decisions(registry, "deny") == 3
    assert decisions(registry, "deny", rule="team-only") == 1


def test_acl_errors_that_are_not_decisions_are_not_counted(registry: CollectorRegistry,
                                                           settings: Settings) -> None:
    @instrument_acl(registry=registry, settings=settings)
    def guard() -> bool:
        raise ConnectionError("policy server down")

    with pytest.raises(ConnectionError):
        guard()
    assert decisions(registry, "deny") == 0
    assert decisions(registry, "allow") == 0

    # The positive control: a guard that decides is counted.
    @instrument_acl(registry=registry, settings=settings)
    def deciding() -> bool:
        return False

    deciding()
    assert decisions(registry, "deny") == 1


async def test_async_acl_and_decision_duration(registry: CollectorRegistry, settings: Settings,
                                               clock: FakeClock) -> None:
    @instrument_acl(rule="static", registry=registry, settings=settings)
    async def check(allowed: bool) -> dict[str, bool]:
        clock.advance(0.004)
        return {"allowed": allowed}

    assert inspect.iscoroutinefunction(check)
    await check(True)
    await check(False)
    assert decisions(registry, "allow", rule="static") == 1
    assert decisions(registry, "deny", rule="static") == 1
    bucket = "mcp_acl_decision_duration_seconds_bucket"
    assert value(registry, bucket, decision="deny", le="0.0025") == 0
    assert value(registry, bucket, decision="deny", le="0.005") == 1


def test_acl_failing_extractor_still_records_the_decision(registry: CollectorRegistry,
                                                          settings: Settings) -> None:
    @instrument_acl(rule=lambda *a: 1 / 0, registry=registry, settings=settings)
    def check() -> bool:
        return False

    assert check() is False
    assert decisions(registry, "deny", rule="") == 1
    assert value(registry, "asgi_mcp_metrics_callback_errors_total",
                 callback="instrument_acl.rule") == 1

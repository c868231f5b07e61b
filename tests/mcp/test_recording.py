"""One recording path: the wire tracker and the ``mcp`` SDK adapter give the same labels.

The same conversation - prompts listed, got, refused; tools called with and without listing;
a notification - is played once on the wire through ``MetricsMiddleware`` and once through
``MetricsServerMiddleware`` with the SDK's own context objects.  Every operation sample must
come out with the same labels and counts.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from tests.mcp.wire_server import (
    FakeServer,
    Reply,
    dumps,
    failure,
    instrument,
    json_reply,
    notification,
    post,
    request,
    result,
)

mcp_sdk = pytest.importorskip("mcp", reason="the mcp SDK is not installed")
if not hasattr(mcp_sdk, "Client"):  # pragma: no cover - the adapter is for the 2.x line
    pytest.skip("needs the mcp 2.x SDK (its server middleware)", allow_module_level=True)

from mcp.shared.exceptions import MCPError  # noqa: E402

from asgi_mcp_metrics.config import Settings  # noqa: E402
from asgi_mcp_metrics.sdk_adapter import MetricsServerMiddleware  # noqa: E402
from tests.test_sdk_adapter import context, raising, returning  # noqa: E402

pytestmark = pytest.mark.anyio

PROMPTS = [{"name": "listed"}]
TOOLS = [{"name": "search", "inputSchema": {}}]
UNKNOWN = -32602

#: (method, params, answer): the answer is a result, or a JSON-RPC error code.
CONVERSATION: list[tuple[str, dict[str, Any], dict[str, Any] | int]] = [
    ("prompts/get", {"name": "greet"}, {"messages": []}),  # succeeds without listing
    ("prompts/get", {"name": "made-up-by-a-client"}, UNKNOWN),  # never listed, refused
    ("prompts/list", {}, {"prompts": PROMPTS}),
    ("prompts/get", {"name": "listed"}, UNKNOWN),  # listed, then refused
    ("tools/call", {"name": "fetch"}, {"content": [], "isError": False}),  # succeeds unlisted
    ("tools/call", {"name": "invented"}, UNKNOWN),
    ("tools/list", {}, {"tools": TOOLS}),
    ("tools/call", {"name": "search"}, {"content": [], "isError": True}),
    ("tools/call", {}, UNKNOWN),  # no name at all
]


def operation_samples(registry: CollectorRegistry) -> dict[tuple[tuple[str, str], ...], float]:
    """Every ``mcp_server_operation_duration_seconds`` count and every tool-call count."""
    samples = {}
    for family in registry.collect():
        for sample in family.samples:
            if sample.name in ("mcp_server_operation_duration_seconds_count",
                               "mcp_tool_calls_total", "mcp_server_notifications_total"):
                samples[(("name", sample.name), *sorted(sample.labels.items()))] = sample.value
    return samples


async def play_on_the_wire(registry: CollectorRegistry) -> None:
    answers = {}

    def handler(body: bytes, scope: dict[str, Any]) -> Reply:
        message = json.loads(body)
        if "id" not in message:
            return Reply(202, [])
        answer = answers[message["id"]]
        if isinstance(answer, int):
            return json_reply(failure(message["id"], answer, "refused"))
        return json_reply(result(message["id"], **answer))

    mw = instrument(registry, FakeServer(handler), mcp_paths=["/mcp"])
    for i, (method, params, answer) in enumerate(CONVERSATION):
        answers[i] = answer
        await post(mw, dumps(request(method, i, **params)))
    await post(mw, dumps(notification("notifications/initialized")))


async def play_through_the_sdk(registry: CollectorRegistry) -> None:
    middleware = MetricsServerMiddleware(registry=registry, settings=Settings())
    for i, (method, params, answer) in enumerate(CONVERSATION):
        call_next = (raising(MCPError(code=answer, message="refused"))
                     if isinstance(answer, int) else returning(answer))
        with contextlib.suppress(MCPError):  # raised on to the SDK, as a handler's error is
            await middleware(context(method, params, request_id=i), call_next)
    await middleware(context("notifications/initialized", request_id=None), returning(None))


async def test_wire_and_sdk_paths_give_the_same_labels() -> None:
    wire, sdk = CollectorRegistry(), CollectorRegistry()
    await play_on_the_wire(wire)
    await play_through_the_sdk(sdk)
    on_the_wire = operation_samples(wire)
    assert on_the_wire == operation_samples(sdk)
    # What the rule is: a prompt or tool name is a label value once it was listed or answered
    # with success; anything a client merely asked for is _OTHER.
    prompts = {dict(labels)["gen_ai_prompt_name"] for labels in on_the_wire
               if dict(labels).get("mcp_method_name") == "prompts/get"}
    assert prompts == {"greet", "listed", "_OTHER"}
    tools = {dict(labels)["gen_ai_tool_name"]: value for labels, value in on_the_wire.items()
             if dict(labels)["name"] == "mcp_tool_calls_total"}
    assert tools == {"fetch": 1, "search": 1, "_OTHER": 2}
    assert sum(value for labels, value in on_the_wire.items()
               if dict(labels)["name"] == "mcp_server_notifications_total") == 1


async def test_a_name_becomes_a_label_once_known_although_the_same_call_came_before(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Calls of one shape share their children, but never past what the label rules say: an
    unknown name stays ``_OTHER`` only until it is listed, and a tool declared later is
    counted by its decorator from then on."""
    from asgi_mcp_metrics import declared_tools

    monkeypatch.setattr(declared_tools, "_declared_tools", set())
    registry = CollectorRegistry()
    answers: dict[int, dict[str, Any] | int] = {}

    def handler(body: bytes, scope: dict[str, Any]) -> Reply:
        message = json.loads(body)
        answer = answers[message["id"]]
        if isinstance(answer, int):
            return json_reply(failure(message["id"], answer, "refused"))
        return json_reply(result(message["id"], **answer))

    mw = instrument(registry, FakeServer(handler), mcp_paths=["/mcp"])
    plan: list[tuple[str, dict[str, Any], dict[str, Any] | int]] = [
        ("tools/call", {"name": "later"}, UNKNOWN),
        ("tools/call", {"name": "later"}, UNKNOWN),
        ("tools/list", {}, {"tools": [{"name": "later"}]}),
        ("tools/call", {"name": "later"}, UNKNOWN),
        ("tools/call", {"name": "later"}, {"content": []}),
        ("tools/call", {"name": "later"}, {"content": []}),
    ]
    for i, (method, params, answer) in enumerate(plan):
        answers[i] = answer
        await post(mw, dumps(request(method, i, **params)))
    declared_tools.declare_tool("later")
    answers[99] = {"content": []}
    await post(mw, dumps(request("tools/call", 99, name="later")))

    calls = {(dict(labels)["gen_ai_tool_name"], dict(labels)["outcome"]): value
             for labels, value in operation_samples(registry).items()
             if dict(labels)["name"] == "mcp_tool_calls_total"}
    assert calls == {("_OTHER", "error"): 2, ("later", "error"): 1, ("later", "ok"): 2}
    durations = {(dict(labels)["gen_ai_tool_name"], dict(labels)["error_type"]): value
                 for labels, value in operation_samples(registry).items()
                 if dict(labels)["name"] == "mcp_server_operation_duration_seconds_count"
                 and dict(labels)["mcp_method_name"] == "tools/call"}
    # The declared call is still an operation; only the tool-call count is the decorator's.
    assert durations == {("_OTHER", "-32602"): 2, ("later", "-32602"): 1, ("later", ""): 3}

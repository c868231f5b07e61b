"""The MCP wire tracker on JSON-RPC shapes: batches, reused and unknown ids, client responses.

Driven in-process with hand-made ASGI messages through ``MetricsMiddleware``; every test
asserts exact metric values.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from asgi_mcp_metrics.mcp.exchange import McpExchange
from asgi_mcp_metrics.mcp.named import NamedCall
from tests.asgi import call, http_scope, total, value
from tests.helpers import tool_calls
from tests.mcp.wire_server import (
    JSON_TYPE,
    NOTIFICATIONS,
    OPERATION,
    PARSE_LIMITS,
    PROTOCOL_ERRORS,
    REQUESTS,
    SESSION,
    TOOL_CALLS,
    FakeServer,
    Reply,
    assert_idle,
    assert_released,
    dumps,
    failure,
    frame,
    handshake,
    handshake_tools,
    instrument,
    json_reply,
    mcp_handler,
    notification,
    operations,
    post,
    request,
    requests_of,
    result,
    sse_reply,
)

pytestmark = pytest.mark.anyio


async def test_batch_answered_by_a_json_array(registry: CollectorRegistry) -> None:
    mw = instrument(registry, FakeServer(mcp_handler()))
    await handshake(mw)
    batch = [request("tools/call", 1, name="add"), request("tools/call", "1", name="boom"),
             notification("notifications/progress", progressToken=1, progress=1),
             request("ping", 3)]
    await post(mw, dumps(batch), session=SESSION, version="2025-03-26")
    # 1 and "1" are different ids and each got its own answer.
    assert tool_calls(registry, "add", "ok") == 1
    assert tool_calls(registry, "boom", "tool_error") == 1
    assert operations(registry, "ping", version="2025-03-26") == 1
    assert value(registry, NOTIFICATIONS, mcp_method_name="notifications/progress",
                 direction="in") == 1
    assert_idle(registry, mw)


async def test_batch_answered_as_sse_frames_in_any_order(registry: CollectorRegistry) -> None:
    def handler(body: bytes, scope: dict[str, Any]) -> Reply:
        return sse_reply(frame(result("1", isError=True)), frame([result(1, isError=False)]))

    mw = instrument(registry, FakeServer(handler))
    await handshake_tools(mw)
    await post(mw, dumps([request("tools/call", 1, name="add"),
                          request("tools/call", "1", name="add")]))
    assert tool_calls(registry, "add", "ok") == 1
    assert tool_calls(registry, "add", "tool_error") == 1


async def test_batch_of_1000_rejected(registry: CollectorRegistry,
                                      exchanges: list[McpExchange | NamedCall]) -> None:
    def handler(body: bytes, scope: dict[str, Any]) -> Reply:
        return json_reply(failure(None, -32602, "Validation error"), 400)

    server = FakeServer(handler)
    mw = instrument(registry, server)
    body = dumps([request("tools/call", i, name=f"t{i}") for i in range(1000)])
    ex = await post(mw, body)
    assert server.received == [body]
    assert ex.status == 400
    assert requests_of(registry, "tools/call", "rejected") == 1000
    assert value(registry, PROTOCOL_ERRORS, reason="batch_rejected") == 1
    assert total(registry, OPERATION + "_count") == 0
    assert total(registry, TOOL_CALLS) == 0
    # No tool name of the batch became a label (and none was even admitted to the guard).
    assert mw.recorder.tool_names.admitted == set()
    assert_idle(registry, mw)
    assert_released(exchanges)


async def test_batch_of_1000_answered(registry: CollectorRegistry) -> None:
    mw = instrument(registry, FakeServer(mcp_handler()))
    await handshake(mw)
    ex = await post(mw, dumps([request("tools/call", i, name="add") for i in range(1000)]),
                    session=SESSION)
    assert len(json.loads(ex.body)) == 1000
    assert tool_calls(registry, "add", "ok") == 1000
    assert operations(registry, "tools/call", tool="add") == 1000
    assert_idle(registry, mw)


async def test_ids_reused(registry: CollectorRegistry) -> None:
    mw = instrument(registry, FakeServer(mcp_handler()))
    await handshake(mw)
    # One after the other, the same id is fine: each request is answered before the next.
    for _ in range(3):
        await post(mw, dumps(request("tools/call", 5, name="add")), session=SESSION)
    assert tool_calls(registry, "add", "ok") == 3
    # Twice in one batch: the answers cannot be told apart; one request is given up.
    await post(mw, dumps([request("tools/call", 9, name="add"),
                          request("tools/call", 9, name="boom")]), session=SESSION)
    assert value(registry, PARSE_LIMITS, where="request_body", reason="duplicate_id") == 1
    assert total(registry, TOOL_CALLS) == 4
    assert_idle(registry, mw)


async def test_answers_with_ids_never_requested(registry: CollectorRegistry) -> None:
    def handler(body: bytes, scope: dict[str, Any]) -> Reply:
        return sse_reply(frame(result(999, isError=False)), frame(result("2", isError=False)))

    mw = instrument(registry, FakeServer(handler))
    await post(mw, dumps(request("tools/call", 2, name="add")))
    assert value(registry, PARSE_LIMITS, where="response", reason="unmatched_id") == 2
    # A resumed stream (2025-11-25) replays earlier answers: expected, not counted.
    resume = http_scope("/mcp", "GET", headers=[(b"accept", b"text/event-stream"),
                                                (b"mcp-session-id", SESSION.encode()),
                                                (b"last-event-id", b"41")])
    await call(mw, resume)
    assert value(registry, PARSE_LIMITS, where="response", reason="unmatched_id") == 2
    # Its own answer never came: not "ok", and no guessing from the other answers.
    assert operations(registry, "tools/call", tool="_OTHER", error_type="no_response") == 1
    assert_idle(registry, mw)


async def test_client_responses_and_invalid_ids_are_not_operations(
        registry: CollectorRegistry) -> None:
    mw = instrument(registry, FakeServer(lambda body, scope: Reply(202, [JSON_TYPE])))
    body = dumps([result("srv-1", roots=[]), request("tools/call", True, name="add"),
                  {"jsonrpc": "2.0", "id": 1.5, "method": "ping"}, {"id": 3}, 7])
    await post(mw, body)
    assert total(registry, REQUESTS) == 0
    assert value(registry, PARSE_LIMITS, where="request_body", reason="invalid_id") == 2
    assert value(registry, PARSE_LIMITS, where="request_body",
                 reason="invalid_batch_element") == 2


@pytest.mark.parametrize(("answer", "outcome", "error_type", "unmatched"), [
    # The common shape, read without a Message: an int or a string id, an object result.
    pytest.param({"jsonrpc": "2.0", "id": 4, "result": {"isError": True}}, "tool_error",
                 "tool_error", 0, id="int_id"),
    # A result that is not an object still answers: it says nothing of an error.
    pytest.param({"jsonrpc": "2.0", "id": 4, "result": [1, 2]}, "ok", "", 0, id="list_result"),
    pytest.param({"jsonrpc": "2.0", "id": 4, "result": None}, "ok", "", 0, id="null_result"),
    # Ids no request can have: the answer matches nothing and is not counted as unmatched.
    pytest.param({"jsonrpc": "2.0", "id": True, "result": {}}, "error", "no_response", 0,
                 id="bool_id"),
    pytest.param({"jsonrpc": "2.0", "id": 4.0, "result": {}}, "error", "no_response", 0,
                 id="float_id"),
    pytest.param({"jsonrpc": "2.0", "id": "4", "result": {}}, "error", "no_response", 1,
                 id="string_id_of_another_request"),
    # Not JSON-RPC 2.0, or an error as well: not a successful answer.
    pytest.param({"jsonrpc": "1.0", "id": 4, "result": {}}, "error", "_OTHER", 0,
                 id="not_2_0"),
    pytest.param({"jsonrpc": "2.0", "id": 4, "result": {}, "error": {"code": -32603}},
                 "error", "-32603", 0, id="error_wins"),
])
@pytest.mark.parametrize("carried", ["json", "sse"])
async def test_answers_read_by_shape(registry: CollectorRegistry, answer: dict[str, Any],
                                     outcome: str, error_type: str, unmatched: int,
                                     carried: str) -> None:
    def handler(body: bytes, scope: dict[str, Any]) -> Reply:
        return json_reply(answer) if carried == "json" else sse_reply(frame(answer))

    mw = instrument(registry, FakeServer(handler))
    await post(mw, dumps(request("tools/call", 4, name="add")))
    # (A successful answer shows the tool exists: its name becomes a label value.)
    tool = "add" if outcome == "ok" else "_OTHER"
    assert operations(registry, "tools/call", tool=tool, error_type=error_type) == 1
    assert requests_of(registry, "tools/call", outcome) == 1
    assert total(registry, REQUESTS) == 1
    assert value(registry, PARSE_LIMITS, where="response", reason="unmatched_id") == unmatched
    assert_idle(registry, mw)


@pytest.mark.parametrize("body", [
    pytest.param(request("tools/call", True, name="add"), id="bool_id"),
    pytest.param(request("tools/call", 1.5, name="add"), id="float_id"),
    pytest.param(request("tools/call", {"a": 1}, name="add"), id="object_id"),
])
async def test_a_single_request_with_an_unusable_id(registry: CollectorRegistry,
                                                    body: dict[str, Any]) -> None:
    # (The SDKs refuse it; here the server answers anyway: no answer can match it.)
    mw = instrument(registry, FakeServer(lambda body, scope: json_reply(result(None))))
    await post(mw, dumps(body))
    assert value(registry, PARSE_LIMITS, where="request_body", reason="invalid_id") == 1
    assert total(registry, REQUESTS) == 0
    assert total(registry, TOOL_CALLS) == 0
    assert_idle(registry, mw)

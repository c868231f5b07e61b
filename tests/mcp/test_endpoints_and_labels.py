"""Which paths are MCP (learned or pinned), and the guards on client-controlled labels.

Driven in-process with hand-made ASGI messages through ``MetricsMiddleware``; every test
asserts exact metric values.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from asgi_mcp_metrics import MetricsMiddleware, declared_tools
from tests.asgi import call, http_scope, total, value
from tests.helpers import FakeClock, tool_calls
from tests.mcp.wire_server import (
    ACCEPT_BOTH,
    JSON_TYPE,
    OPERATION,
    OVERFLOW,
    PROTOCOL_ERRORS,
    REQUESTS,
    SESSION,
    TOOL_CALLS,
    FakeServer,
    Reply,
    dumps,
    failure,
    handshake,
    handshake_tools,
    instrument,
    json_reply,
    mcp_handler,
    operations,
    post,
    request,
    requests_of,
    result,
    sse_reply,
    tracker_of,
)
from tests.promtool import check_metrics

pytestmark = pytest.mark.anyio


async def test_json_api_is_not_mcp_and_garbage_does_not_unlearn_an_endpoint(
        registry: CollectorRegistry) -> None:
    def handler(body: bytes, scope: dict[str, Any]) -> Reply:
        if scope["path"] == "/api":
            return json_reply({"ok": True})
        return mcp_handler()(body, scope)  # type: ignore[return-value]

    mw = instrument(registry, FakeServer(handler))
    tracker = tracker_of(mw)
    await post(mw, b'{"item": 1}', path="/api")
    assert tracker.endpoints.other_paths == {"/api"}
    assert tracker_of(mw).observe(http_scope("/api", "POST", headers=[JSON_TYPE]), 0) is None
    # The first thing an attacker sends to /mcp is garbage: /mcp stays detectable.
    await post(mw, b'{"not": "json-rpc"', path="/mcp")
    await post(mw, b'{"not": "json-rpc"}', path="/mcp")
    assert tracker.endpoints.other_paths == {"/api"}
    await post(mw, dumps(request("ping", 1)))
    assert tracker.endpoints.mcp_paths == {"/mcp"}
    assert requests_of(registry, "ping", "ok") == 1
    # A plain SSE stream elsewhere is just a stream.
    events = FakeServer(lambda b, s: sse_reply(b"data: hello\n\n"), read_body=False)
    plain = instrument(registry, events)
    await call(plain, http_scope("/feed", "GET", headers=[(b"accept", b"text/event-stream")]))
    assert value(registry, "http_server_streams_total", http_route="",
                 stream_kind="sse", end_reason="completed") == 1


async def test_a_plain_event_stream_path_is_not_looked_at_again(
        registry: CollectorRegistry) -> None:
    """Its first GET is looked at (it could be a legacy ``/sse`` stream); once its first event
    shows a plain stream, later GETs of that path cost the tracker nothing - until the path
    answers JSON-RPC, which makes it an MCP endpoint after all."""
    def handler(body: bytes, scope: dict[str, Any]) -> Reply:
        if scope["method"] == "GET":
            return sse_reply(b"data: tick\n\n")
        return mcp_handler()(body, scope)  # type: ignore[return-value]

    mw = instrument(registry, FakeServer(handler))
    tracker = tracker_of(mw)
    stream = http_scope("/feed", "GET", headers=[(b"accept", b"text/event-stream")])
    assert tracker.observe(dict(stream), 0) is not None
    for _ in range(3):
        await call(mw, http_scope("/feed", "GET", headers=[(b"accept", b"text/event-stream")]))
    assert tracker.endpoints.plain_stream_paths == {"/feed"}
    assert tracker.observe(dict(stream), 0) is None
    assert value(registry, "http_server_streams_total", http_route="",
                 stream_kind="sse", end_reason="completed") == 3
    # A session's GET there (an MCP header) is still looked at: it may be MCP.
    with_session = http_scope("/feed", "GET", headers=[(b"accept", b"text/event-stream"),
                                                       (b"mcp-session-id", b"s")])
    assert tracker.observe(with_session, 0) is not None
    await post(mw, dumps(request("ping", 1)), path="/feed")
    assert tracker.endpoints.mcp_paths == {"/feed"}
    assert tracker.observe(dict(stream), 0) is not None


async def test_pinned_paths(registry: CollectorRegistry) -> None:
    mw = instrument(registry, FakeServer(mcp_handler()), mcp_paths=("/mcp", "/tenant/mcp"))
    await post(mw, dumps(request("ping", 1)), path="/other")
    await post(mw, dumps(request("ping", 1)), path="/tenant/mcp")
    await post(mw, dumps(request("ping", 1)), path="/mcp")
    assert requests_of(registry, "ping", "ok") == 2
    # Pinned: nothing is learned, and a GET stream there is an MCP stream from the start.
    assert tracker_of(mw).endpoints.mcp_paths == set()


@pytest.mark.parametrize("method", ["HEAD", "OPTIONS", "PUT"])
async def test_head_options_and_others_are_never_mcp(registry: CollectorRegistry,
                                                     method: str) -> None:
    mw = instrument(registry, FakeServer(lambda b, s: Reply(405, [], [b""]), read_body=False),
                    mcp_paths=("/mcp",))
    headers = [JSON_TYPE, ACCEPT_BOTH, (b"mcp-session-id", SESSION.encode()),
               (b"mcp-method", b"tools/call")]
    assert tracker_of(mw).observe(http_scope("/mcp", method, headers=headers), 0) is None
    await call(mw, http_scope("/mcp", method, headers=headers))
    assert total(registry, PROTOCOL_ERRORS) == 0
    assert total(registry, REQUESTS) == 0


async def test_non_mcp_traffic_is_not_observed(registry: CollectorRegistry) -> None:
    tracker = tracker_of(instrument(registry, FakeServer(mcp_handler())))
    assert tracker.observe(http_scope("/page", "GET", headers=[(b"accept", b"text/html")]),
                           0) is None
    assert tracker.observe(http_scope("/form", "POST", headers=[
        (b"content-type", b"application/x-www-form-urlencoded")]), 0) is None
    assert tracker.observe(http_scope("/x", "DELETE"), 0) is None
    assert tracker.observe(http_scope("/page", "GET", headers=[
        (b"Host", b"x"), (b"ACCEPT", b"application/json"), (b"accept", b"*/*")]), 0) is None
    # What may be MCP is looked at, whatever the case of the header names.
    for method, headers in [("GET", [(b"Accept", b"text/event-stream")]),
                            ("GET", [(b"accept", b"application/json"),
                                     (b"Accept", b"Text/Event-Stream")]),
                            ("GET", [(b"Mcp-Session-Id", b"s")]),
                            ("GET", [(b"host", b"x"), (b"mcp-method", b"tools/list")]),
                            ("DELETE", [(b"Mcp-Session-Id", b"s")]),
                            ("POST", [(b"content-type", b"Application/JSON")]),
                            ("POST", [(b"mcp-method", b"tools/list")])]:
        assert tracker.observe(http_scope("/y", method, headers=headers), 0) is not None


async def test_tool_name_cap_and_declared_tools(registry: CollectorRegistry) -> None:
    def handler(body: bytes, scope: dict[str, Any]) -> Reply:
        message = json.loads(body)
        if message["method"] in ("tools/list", "ping"):
            return json_reply(result(message["id"], tools=[{"name": n} for n in "abcx"]))
        return json_reply(result(message["id"], isError=False))

    mw = instrument(registry, FakeServer(handler), max_tool_names=2)
    # A tools list in the answer to anything but tools/list teaches nothing.
    await post(mw, dumps(request("ping", 0)))
    assert mw.recorder.learned_tools == set()
    await post(mw, dumps(request("tools/list", 1)))
    assert mw.recorder.learned_tools == {"a", "b", "c", "x"}
    for i, name in enumerate("abc", 2):
        await post(mw, dumps(request("tools/call", i, name=name)))
    assert tool_calls(registry, "a", "ok") == 1
    assert tool_calls(registry, "b", "ok") == 1
    assert tool_calls(registry, "c", "ok") == 0
    assert tool_calls(registry, "_OTHER", "ok") == 1
    # A declared tool is a label, and its decorator (not the wire) counts its calls.
    declared_tools.declare_tool("declared")
    await post(mw, dumps(request("tools/call", 9, name="declared")))
    assert operations(registry, "tools/call", tool="_OTHER") == 2
    assert total(registry, TOOL_CALLS) == 3


async def test_tools_call_without_a_name(registry: CollectorRegistry) -> None:
    mw = instrument(registry, FakeServer(lambda b, s: json_reply(failure(1, -32602), 200)))
    await post(mw, dumps(request("tools/call", 1)))
    assert tool_calls(registry, "_OTHER", "error") == 1


async def test_identity_label_on_tool_calls(registry: CollectorRegistry) -> None:
    mw = instrument(registry, FakeServer(mcp_handler()), identity="header:x-client")
    await handshake_tools(mw)
    await post(mw, dumps(request("tools/call", 1, name="add")), extra=[(b"x-client", b"team-a")])
    assert tool_calls(registry, "add", "ok", identity="team-a") == 1


async def test_exposition_passes_promtool(registry: CollectorRegistry) -> None:
    mw = instrument(registry, FakeServer(mcp_handler(sse=True)))
    await handshake(mw)
    await post(mw, dumps(request("tools/call", 2, name="add")), session=SESSION)
    await post(mw, b"{", session=SESSION)
    check_metrics(generate_latest(registry))


async def test_tool_that_succeeds_is_known_without_tools_list(registry: CollectorRegistry) -> None:
    """A client may call a tool it never listed: a successful answer proves the tool exists."""

    async def server(scope: Any, receive: Any, send: Any) -> None:
        message = await receive()
        request = json.loads(message["body"])
        name = request["params"]["name"]
        result = {"content": [], "isError": name != "real"}
        body = json.dumps({"jsonrpc": "2.0", "id": request["id"], "result": result}).encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})

    app = MetricsMiddleware(server, registry=registry)
    for i, name in enumerate(["made-up", "real", "real", "made-up"]):
        body = json.dumps({"jsonrpc": "2.0", "id": i, "method": "tools/call",
                           "params": {"name": name, "arguments": {}}}).encode()
        await call(app, http_scope("/mcp", "POST",
                                   headers=[(b"content-type", b"application/json")]), [body])
    assert value(registry, "mcp_tool_calls_total", gen_ai_tool_name="real", backend="",
                 outcome="ok", identity="") == 2
    assert value(registry, "mcp_tool_calls_total", gen_ai_tool_name="_OTHER", backend="",
                 outcome="tool_error", identity="") == 2
    assert value(registry, "mcp_tool_calls_total", gen_ai_tool_name="made-up", backend="",
                 outcome="tool_error", identity="") == 0


async def test_prompt_names_are_labels_only_when_known(registry: CollectorRegistry) -> None:
    """Like tool names: listed by prompts/list, or answered successfully; else _OTHER."""
    listed = {"jsonrpc": "2.0", "id": 1, "result": {"prompts": [{"name": "summarize"}]}}
    replies = iter([listed, {"jsonrpc": "2.0", "id": 2, "result": {"messages": []}},
                    failure(3, -32602, "Unknown prompt"),
                    {"jsonrpc": "2.0", "id": 4, "result": {"messages": []}}])
    mw = instrument(registry, FakeServer(lambda body, scope: json_reply(next(replies))))
    await post(mw, dumps(request("prompts/list", 1)))
    await post(mw, dumps(request("prompts/get", 2, name="summarize")))
    await post(mw, dumps(request("prompts/get", 3, name="made-up")))
    await post(mw, dumps(request("prompts/get", 4, name="unlisted-but-real")))
    assert operations(registry, "prompts/get", prompt="summarize") == 1
    assert operations(registry, "prompts/get", prompt="_OTHER", error_type="-32602") == 1
    assert operations(registry, "prompts/get", prompt="unlisted-but-real") == 1
    assert value(registry, OVERFLOW, metric=OPERATION, label="gen_ai_prompt_name") == 1


async def test_undecorated_tool_calls_are_timed_on_the_wire_once(
        registry: CollectorRegistry, clock: FakeClock) -> None:
    mw = instrument(registry, FakeServer(mcp_handler(tick=clock, seconds=0.03)))
    await handshake_tools(mw)
    await post(mw, dumps(request("tools/call", 1, name="add")))
    await post(mw, dumps(request("tools/call", 2, name="add")))
    duration = {"gen_ai_tool_name": "add", "backend": "", "outcome": "ok"}
    assert tool_calls(registry, "add", "ok") == 2
    assert value(registry, "mcp_tool_call_duration_seconds_count", **duration) == 2
    assert value(registry, "mcp_tool_call_duration_seconds_bucket", le="0.02", **duration) == 0
    assert value(registry, "mcp_tool_call_duration_seconds_bucket", le="0.05", **duration) == 2
    assert value(registry, "mcp_tool_call_duration_seconds_sum", **duration) == \
        pytest.approx(0.06)
    # A declared tool is timed by its decorator only: the wire adds nothing.
    declared_tools.declare_tool("add")
    await post(mw, dumps(request("tools/call", 3, name="add")))
    assert operations(registry, "tools/call", tool="add") == 3
    assert value(registry, "mcp_tool_call_duration_seconds_count", **duration) == 2
    assert tool_calls(registry, "add", "ok") == 2

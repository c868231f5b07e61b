"""A 2026-07-28 request named by its headers: read by a NamedCall, or handed to the full exchange.

Every exchange below runs twice - through the middleware as it is, and with the named-call lane
turned off so the full exchange reads it - and both must record exactly the same samples (every
count, size bucket and label; of the durations, which depend on the machine, only their counts)
and learn the same endpoints.  Each case also
says whether the named call read it itself or handed over, so a case that silently stops taking
the lane (or takes it where it must not) fails too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from asgi_mcp_metrics.mcp.exchange import McpExchange
from asgi_mcp_metrics.mcp.named import NamedCall
from tests.mcp.wire_server import (
    JSON_TYPE,
    MODERN,
    SSE_TYPE,
    FakeServer,
    Reply,
    b64,
    dumps,
    failure,
    frame,
    instrument,
    modern_headers,
    post,
    request,
    result,
    tracker_of,
)

pytestmark = pytest.mark.anyio

OK_BODY = dumps(request("tools/call", 7, name="add", arguments={"a": 1}))


def answer(value: Any, status: int = 200, headers: list[tuple[bytes, bytes]] | None = None,
           ) -> Callable[[bytes, dict[str, Any]], Reply]:
    return lambda body, scope: Reply(status, [JSON_TYPE] if headers is None else headers,
                                     [value if isinstance(value, bytes) else dumps(value)])


def raising(body: bytes, scope: dict[str, Any]) -> Reply:
    raise RuntimeError("the app failed")


@dataclass
class Case:
    name: str
    handler: Callable[[bytes, dict[str, Any]], Reply | None]
    in_lane: bool
    """Read by the NamedCall to the end (no hand-over)."""
    method: str = "tools/call"
    tool: bytes | None = b"add"
    body: bytes | list[bytes] = OK_BODY
    path: str = "/mcp"
    query: bytes = b""
    read_body: bool = True
    options: dict[str, Any] = field(default_factory=dict)
    call: dict[str, Any] = field(default_factory=dict)


CASES = [
    Case("ok", answer(result(7, content=[], isError=False)), True),
    Case("tool error", answer(result(7, content=[], isError=True)), True),
    Case("input required", answer(result(7, resultType="input_required")), True),
    Case("prompt", answer(result(7, messages=[])), True, method="prompts/get", tool=b"greet"),
    Case("resource", answer(result(7, contents=[])), True, method="resources/read",
         tool=b"file:///a"),
    Case("a method of its own", answer(result(7)), True, method="x/custom", tool=None),
    Case("a base64 name", answer(result(7, content=[])), True, tool=b64("ádd")),
    Case("a string id", answer(result("r-1", content=[])), True,
         body=dumps(request("tools/call", "r-1", name="add"))),
    Case("an unlearned path", answer(result(7, content=[])), True, path="/other"),
    Case("a JSON-RPC error", answer(failure(7, -32602)), False),
    Case("a transport error's id", answer(result("server-error", content=[])), False),
    Case("a null id", answer({"jsonrpc": "2.0", "id": None, "result": {}}), False),
    Case("a batch answer", answer([result(7, content=[])]), False),
    Case("not JSON", answer(b"{nope"), False),
    Case("an empty body", answer(b""), False),
    Case("invalid UTF-8", answer(b'{"jsonrpc":"2.0","id":7,"result":{"\xff":1}}'), False),
    Case("an answer in two messages",
         lambda body, scope: Reply(200, [JSON_TYPE], [b'{"jsonrpc":"2.0",',
                                                      b'"id":7,"result":{}}']), False),
    Case("an answer past the frame cap", answer(result(7, content=["x" * 200])), False,
         options={"max_frame_bytes": 100}),
    Case("a request body in two messages", answer(result(7, content=[])), False,
         body=[OK_BODY[:10], OK_BODY[10:]]),
    Case("a request body past its cap", answer(result(7, content=[])), False,
         options={"max_body_bytes": 10}),
    Case("an unread request body", answer(result(7, content=[])), False, read_body=False),
    Case("an event stream", lambda body, scope: Reply(
        200, [SSE_TYPE], [frame(result(7, content=[])), b""]), False),
    Case("a session id", answer(result(7, content=[]),
                                headers=[JSON_TYPE, (b"mcp-session-id", b"s-1")]), False),
    Case("no content type", answer(result(7, content=[]), headers=[]), False),
    Case("a 400", answer(failure(7, -32600), 400), False),
    Case("a 404 (method not found)", answer(failure(7, -32601), 404), False),
    Case("a 500", answer(b"oops", 500, [(b"content-type", b"text/plain")]), False),
    Case("a redirect", lambda body, scope: Reply(307, [(b"location", b"/mcp/")], [b""]), False),
    Case("a 202 with nothing", lambda body, scope: Reply(202, [], [b""]), False),
    Case("the app raises", raising, False, call={"raise_errors": False}),
    Case("the client leaves", answer(result(7, content=[])), True,
         call={"disconnect_after_body": True}),
    # (The middleware shows the observer a message before passing it on.)
    Case("a body that cannot be sent", answer(result(7, content=[])), True,
         call={"fail_send_after": 1, "raise_errors": False}),
    Case("a start that cannot be sent", answer(result(7, content=[])), False,
         call={"fail_send_after": 0, "raise_errors": False}),
    Case("a legacy query string", answer(result(7, content=[])), False,
         query=b"session_id=abc"),
    Case("a notification", lambda body, scope: Reply(202, [], [b""]), False,
         method="notifications/cancelled", tool=None,
         body=dumps({"jsonrpc": "2.0", "method": "notifications/cancelled"})),
    Case("tools/list", answer(result(7, tools=[{"name": "add"}])), False, method="tools/list",
         tool=None, body=dumps(request("tools/list", 7))),
]


async def _run(case: Case, lane: bool) -> tuple[dict[tuple[str, tuple[Any, ...]], float],
                                               list[Any], set[str]]:
    registry = CollectorRegistry()
    options = {"mcp_paths": ()} if case.path != "/mcp" else {"mcp_paths": ("/mcp",)}
    mw = instrument(registry, FakeServer(case.handler, read_body=case.read_body),
                    **options, **case.options)
    tracker = tracker_of(mw)
    tracker.reads_answers = lane
    seen: list[Any] = []
    original = tracker.observe

    def observe(scope: Any, started: float) -> Any:
        observed = original(scope, started)
        seen.append(observed)
        return observed

    tracker.observe = observe  # type: ignore[method-assign]
    mw.recorder.learn_tools(["add"])
    await post(mw, case.body, version=MODERN, path=case.path, query=case.query,
               extra=modern_headers(case.method, case.tool), **case.call)
    samples = {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
               for family in registry.collect() for sample in family.samples
               if not sample.name.endswith(("_sum", "_created", "_seconds_bucket"))}
    return samples, seen, set(tracker.endpoints.mcp_paths)


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
async def test_the_named_call_records_what_the_full_exchange_records(case: Case) -> None:
    named, seen, learned = await _run(case, lane=True)
    full, full_seen, full_learned = await _run(case, lane=False)
    assert named == full
    assert learned == full_learned
    assert all(type(observed) is McpExchange for observed in full_seen)
    [observed] = seen
    if case.method.startswith("notifications/") or case.query or case.method == "tools/list":
        assert type(observed) is McpExchange  # never named: read in full from the start
        return
    assert type(observed) is NamedCall
    assert (observed.full is None) is case.in_lane
    if case.in_lane:
        assert observed.answered and observed.body is None and observed.response == ()


async def test_the_lane_counts_what_it_reads(registry: CollectorRegistry) -> None:
    """The lane's own numbers, not only the full exchange's: calls by outcome and tool."""
    replies = iter([result(7, content=[], isError=False), result(7, content=[], isError=True),
                    result(7, content=[], isError=False)])
    mw = instrument(registry, FakeServer(lambda body, scope: Reply(
        200, [JSON_TYPE], [dumps(next(replies))])), mcp_paths=("/mcp",))
    mw.recorder.learn_tools(["add"])
    for _ in range(3):
        await post(mw, OK_BODY, version=MODERN, extra=modern_headers("tools/call", b"add"))
    calls = {sample.labels["outcome"]: sample.value
             for family in registry.collect() if family.name == "mcp_tool_calls"
             for sample in family.samples if sample.name == "mcp_tool_calls_total"}
    assert calls == {"ok": 2, "tool_error": 1}
    timed = {sample.labels["error_type"]: sample.value
             for family in registry.collect()
             if family.name == "mcp_server_operation_duration_seconds"
             for sample in family.samples if sample.name.endswith("_count")}
    assert timed == {"": 2, "tool_error": 1}


def test_a_named_call_is_made_only_where_answers_are_read() -> None:
    for mode, lane in (("full", True), ("request_body", False), ("headers_only", False)):
        mw = instrument(CollectorRegistry(), FakeServer(answer(result(7))), mcp_parsing=mode)
        assert tracker_of(mw).reads_answers is lane

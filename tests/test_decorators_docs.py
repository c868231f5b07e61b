"""Every Python snippet of ``docs/decorators.md``, run as written against the real library.

The snippets record into ``prometheus_client.REGISTRY``; each test swaps in a fresh registry
as that default, so the counts read back are those of the snippet alone.  ``await`` lines run
inside an ``async def`` (as the page says they belong in async code), and the ``mcp`` SDK
pieces run with the real SDK: its server behind our ASGI front end, its in-process client.
"""

from __future__ import annotations

import asyncio
import json
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from mcp import Client
from mcp.server.mcpserver import MCPServer
from prometheus_client import CollectorRegistry
from starlette.testclient import TestClient

from asgi_mcp_metrics import _binding, exposition, llm
from asgi_mcp_metrics.declared_tools import declare_tool
from asgi_mcp_metrics.testing import sample, total

from .docs import doc_block

DOC = Path(__file__).resolve().parents[1] / "docs" / "decorators.md"


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> CollectorRegistry:
    """A fresh registry as the library's default, and no LLM recorder bound to the old one."""
    fresh = CollectorRegistry()
    monkeypatch.setattr(_binding, "REGISTRY", fresh)
    monkeypatch.setattr(exposition, "REGISTRY", fresh)
    monkeypatch.setattr(llm, "_default", None)
    return fresh


def run(name: str, code: str | None = None, **names: Any) -> dict[str, Any]:
    """Execute the block ``name`` (or ``code`` taken from it) with ``names`` predefined."""
    namespace = dict(names)
    exec(doc_block(DOC, name) if code is None else code, namespace)
    return namespace


async def run_async(name: str, code: str | None = None, **names: Any) -> dict[str, Any]:
    """Execute a block with ``await`` lines as the body of an ``async def``; its locals."""
    body = textwrap.indent(doc_block(DOC, name) if code is None else code, "    ")
    namespace = dict(names)
    exec(f"async def snippet():\n{body}\n    return locals()\n", namespace)
    result: dict[str, Any] = await namespace["snippet"]()
    return result


def tool_calls(registry: CollectorRegistry, tool: str, *, backend: str = "",
               outcome: str = "ok", identity: str = "") -> float:
    return sample(registry, "mcp_tool_calls_total", gen_ai_tool_name=tool, backend=backend,
                  outcome=outcome, identity=identity)


def client_operations(registry: CollectorRegistry, method: str, *, tool: str = "",
                      error_type: str = "") -> float:
    return sample(registry, "mcp_client_operation_duration_seconds_count", backend="github",
                  mcp_method_name=method, gen_ai_tool_name=tool, error_type=error_type)


def github_server() -> MCPServer:
    """A real MCP server standing in for the proxy's backend."""
    server = MCPServer("github")

    @server.tool()
    def search(q: str) -> list[str]:
        if q == "boom":
            raise ValueError("search failed")
        return [q]

    return server


def test_instrument_tool(registry: CollectorRegistry) -> None:
    namespace = run("tool")
    assert asyncio.run(namespace["search"]("mcp")) is None
    assert namespace["read"]("/etc") is None
    assert tool_calls(registry, "search") == 1
    assert tool_calls(registry, "read_file", backend="files") == 1
    assert total(registry, "mcp_tool_calls_total") == 2
    assert sample(registry, "mcp_tool_call_duration_seconds_count", gen_ai_tool_name="read_file",
                  backend="files", outcome="ok") == 1


def mcp_post(client: TestClient, body: dict[str, Any], **headers: str) -> Any:
    response = client.post("/mcp", json=body, headers={
        "accept": "application/json, text/event-stream", "mcp-protocol-version": "2025-06-18",
        **headers})
    assert response.status_code == 200, response.text
    for line in response.text.splitlines():
        if line.startswith("data:"):
            return json.loads(line.removeprefix("data:"))
    return response.json()


def test_with_the_mcp_sdk_in_either_order(registry: CollectorRegistry) -> None:
    namespace = run("sdk")
    mcp = namespace["mcp"]
    # Above @mcp.tool(name="times") the server was handed the instrumented wrapper.
    assert mcp._tool_manager._tools["times"].fn is namespace["multiply"]
    assert mcp._tool_manager._tools["add"].fn is namespace["add"]
    with TestClient(namespace["app"], base_url="http://127.0.0.1:8000") as client:
        init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "docs", "version": "1"}}}
        response = client.post("/mcp", json=init, headers={
            "accept": "application/json, text/event-stream"})
        assert response.status_code == 200, response.text
        session = {"mcp-session-id": response.headers["mcp-session-id"],
                   "x-client-id": "client-a"}
        for request_id, (tool, expected) in enumerate([("add", 5), ("times", 6)], start=2):
            reply = mcp_post(client, {"jsonrpc": "2.0", "id": request_id, "method": "tools/call",
                                      "params": {"name": tool, "arguments": {"a": 2, "b": 3}}},
                             **session)
            assert reply["result"]["structuredContent"] == {"result": expected}
    assert tool_calls(registry, "add", backend="math", identity="client-a") == 1
    assert tool_calls(registry, "times", backend="math", identity="client-a") == 1
    assert total(registry, "mcp_tool_calls_total") == 2  # the wire layer did not count them again


def test_a_proxy_dispatch_function(registry: CollectorRegistry) -> None:
    namespace = run("proxy")
    proxy = namespace["Proxy"]({"search": "github"})
    assert asyncio.run(proxy.forward("search", {"q": "mcp"})) is None
    assert asyncio.run(proxy.forward("get_issue", {"n": 1})) is None
    assert tool_calls(registry, "search", backend="github") == 1
    assert tool_calls(registry, "get_issue") == 1
    assert total(registry, "mcp_tool_calls_total") == 2


def test_instrument_acl(registry: CollectorRegistry) -> None:
    namespace = run("acl")
    for declared in ("get_issue", "delete_repo"):
        declare_tool(declared)
    decide = namespace["decide"]
    assert decide("ops", "delete_repo").allowed
    assert decide("bob", "get_issue").allowed
    assert not decide("bob", "delete_repo").allowed

    def decisions(decision: str, tool: str, rule: str) -> float:
        return sample(registry, "mcp_acl_decisions_total", decision=decision,
                      gen_ai_tool_name=tool, backend="", identity="", rule=rule)

    assert decisions("allow", "delete_repo", "read-only") == 1
    assert decisions("allow", "get_issue", "read-only") == 1
    assert decisions("deny", "delete_repo", "default-deny") == 1
    assert total(registry, "mcp_acl_decisions_total") == 3
    assert sample(registry, "mcp_acl_decision_duration_seconds_count", decision="deny") == 1


def test_identity(registry: CollectorRegistry) -> None:
    from asgi_mcp_metrics import instrument_tool

    @instrument_tool
    def lookup() -> str:
        return "found"

    # The block's placeholder stands for the caller's tool calls: here, one call of lookup.
    code = doc_block(DOC, "identity").replace("    ...", "    lookup()", 1)
    assert "lookup()" in code
    namespace = run("identity", code, lookup=lookup)
    assert namespace["identity"] is None  # outside the block nobody is calling
    assert tool_calls(registry, "lookup", identity="client-a") == 1
    assert total(registry, "mcp_tool_calls_total") == 1


def test_backend_monitor(registry: CollectorRegistry) -> None:
    setup, marker, rest = doc_block(DOC, "monitor").partition("monitor.disconnected")
    namespace = run("monitor", setup)
    up = {"backend": "github", "transport": "streamable_http"}
    assert sample(registry, "mcp_backend_up", **up) == 0  # configured, not connected yet
    assert asyncio.run(namespace["connect"]("lazy")) is None
    assert sample(registry, "mcp_backend_connects_total", backend="github", outcome="ok",
                  trigger="lazy") == 1
    assert sample(registry, "mcp_backend_up", **up) == 1
    run("monitor", marker + rest, **namespace)
    assert sample(registry, "mcp_backend_disconnects_total", backend="github",
                  reason="idle_reaped") == 1
    assert sample(registry, "mcp_client_session_duration_seconds_count", end_reason="idle_reaped",
                  **up) == 1
    assert sample(registry, "mcp_backend_up", **up) == 0


def monitor_namespace() -> dict[str, Any]:
    return run("monitor", doc_block(DOC, "monitor").partition("monitor.disconnected")[0])


def test_timed_backend_calls(registry: CollectorRegistry) -> None:
    monitor = monitor_namespace()["monitor"]
    monitor.tools_discovered(["search"])

    async def main() -> None:
        async with Client(github_server()) as client:
            code = doc_block(DOC, "client-call").replace('"mcp"}', '"boom"}', 1)
            namespace = await run_async("client-call", code, monitor=monitor,
                                        session=client.session)
            assert namespace["result"].is_error
            assert await namespace["refresh_tools"]() is None

    asyncio.run(main())
    assert client_operations(registry, "tools/call", tool="search", error_type="tool_error") == 1
    assert client_operations(registry, "tools/list") == 1
    assert total(registry, "mcp_client_operation_duration_seconds_count") == 2


def test_instrumented_client_session(registry: CollectorRegistry) -> None:
    monitor = monitor_namespace()["monitor"]
    monitor.tools_discovered(["search"])
    code = doc_block(DOC, "client-session").replace('"http://github-mcp:8000/mcp"', "server")
    asyncio.run(run_async("client-session", code, monitor=monitor, server=github_server()))
    assert client_operations(registry, "tools/call", tool="search") == 1
    assert total(registry, "mcp_client_operation_duration_seconds_count",
                 mcp_method_name="tools/call") == 1


def test_tool_cache(registry: CollectorRegistry) -> None:
    namespace = run("tool-cache", **monitor_namespace())
    assert sample(registry, "mcp_tool_cache_entries", backend="github") == 0
    namespace["cache"]["github"] = ["search", "get_issue", "list_prs"]
    assert sample(registry, "mcp_tool_cache_entries", backend="github") == 3  # read at scrape
    for result in ("hit", "miss", "stale"):
        assert sample(registry, "mcp_tool_cache_requests_total", backend="github",
                      result=result) == 1
    # Discovered names are label values from now on.
    namespace["monitor"].call("tools/call", tool="get_issue")(lambda: None)()
    assert client_operations(registry, "tools/call", tool="get_issue") == 1


def wait_until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 60
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def test_child_processes(registry: CollectorRegistry) -> None:
    code = (doc_block(DOC, "processes")
            .replace('"github-mcp-server", "stdio")', 'sys.executable, "-c", "pass")', 1)
            .replace('["github-mcp-server", "stdio"]', '[sys.executable, "-c", "exit(3)"]', 1))
    assert code.count("sys.executable") == 2

    def exits(kind: str) -> float:
        return sample(registry, "mcp_backend_process_exits_total", backend="github", kind=kind)

    async def main() -> dict[str, Any]:
        namespace = await run_async("processes", code, sys=sys, **monitor_namespace())
        deadline = time.monotonic() + 60
        while exits("clean") < 1:  # the asyncio watcher runs on this loop
            assert time.monotonic() < deadline, "the asyncio child's exit was not recorded"
            await asyncio.sleep(0.01)
        return namespace

    namespace = asyncio.run(main())
    namespace["child"].wait()
    wait_until(lambda: exits("nonzero") == 1)
    assert sample(registry, "mcp_backend_process_starts_total", backend="github") == 3
    assert (exits("clean"), exits("nonzero"), exits("signal")) == (1, 1, 1)
    assert sample(registry, "mcp_backend_processes", backend="github") == 0


def test_server_middleware(registry: CollectorRegistry) -> None:
    code = doc_block(DOC, "sdk-middleware")
    assert code.count("mcp.run()") == 1
    namespace = run("sdk-middleware", code.replace("mcp.run()", "", 1))
    mcp: MCPServer = namespace["mcp"]

    @mcp.tool()
    def add(a: int, b: int) -> int:
        return a + b

    async def main() -> None:
        async with Client(mcp) as client:  # no HTTP request: the transport label is stdio
            assert [tool.name for tool in (await client.list_tools()).tools] == ["add"]
            assert (await client.call_tool("add", {"a": 1, "b": 2})).structured_content == {
                "result": 3}

    asyncio.run(main())
    assert sample(registry, "mcp_server_requests_total", mcp_method_name="tools/call",
                  outcome="ok", transport="stdio") == 1
    assert sample(registry, "mcp_server_requests_total", mcp_method_name="tools/list",
                  outcome="ok", transport="stdio") == 1
    assert tool_calls(registry, "add") == 1  # learnt from tools/list, counted here


def test_llm_proxies(registry: CollectorRegistry) -> None:
    def send_upstream() -> SimpleNamespace:
        return SimpleNamespace(finish_reason="content_filter")

    run("llm", send_upstream=send_upstream)
    tokens = {"gen_ai_operation_name": "chat", "gen_ai_provider_name": "openai",
              "gen_ai_request_model": "gpt-4o"}
    for token_type, count in (("input", 312), ("output", 87)):
        assert sample(registry, "gen_ai_client_tokens_total", gen_ai_provider_name="openai",
                      gen_ai_request_model="gpt-4o", gen_ai_token_type=token_type,
                      identity="") == count
        assert sample(registry, "gen_ai_client_token_usage_sum", gen_ai_token_type=token_type,
                      **tokens) == count
    assert sample(registry, "gen_ai_client_upstream_errors_total", gen_ai_provider_name="openai",
                  error_type="content_filter") == 1
    assert sample(registry, "gen_ai_client_operation_duration_seconds_count",
                  error_type="content_filter", **tokens) == 1
    assert sample(registry, "gen_ai_client_rate_limit_requests_per_second",
                  gen_ai_provider_name="openai") == 40
    assert sample(registry, "gen_ai_client_rate_limit_adjustments_total",
                  gen_ai_provider_name="openai", direction="down") == 1
    assert sample(registry, "gen_ai_client_circuit_breaker_state",
                  gen_ai_provider_name="openai") == 2
    for result in ("hit", "miss"):
        assert sample(registry, "gen_ai_client_cache_requests_total",
                      gen_ai_provider_name="openai", result=result) == 1
    assert sample(registry, "build_info", version="1.2.0", commit="3f2c1ab",
                  variant="canary") == 1

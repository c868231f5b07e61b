"""Running totals: the wildcard matcher, the tree, and equality with the registry's counters."""

from __future__ import annotations

import sys

import pytest
import yaml
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.testclient import TestClient

from asgi_mcp_metrics import instrument_tool
from asgi_mcp_metrics.config import Settings
from asgi_mcp_metrics.llm import LLMMetrics
from asgi_mcp_metrics.starlette import instrument
from asgi_mcp_metrics.surfaces.totals import MAX_PATTERN_CHARS, wildcard_match

from .asgi import total


@pytest.mark.parametrize(("pattern", "text", "expected"), [
    ("git*", "github", True),
    ("git*", "gitlab-mirror", True),
    ("git*", "a-git", False),
    ("*issue*", "create_issue", True),
    ("*issue*", "issues_list", True),
    ("*issue*", "isue", False),
    ("a?c", "abc", True),
    ("a?c", "ac", False),
    ("a?c", "abbc", False),
    ("?", "", False),
    ("*", "", True),
    ("", "", True),
    ("", "x", False),
    ("**a**", "A", True),             # case-insensitive, repeated stars
    ("*a*b", "aaab", True),
    ("*a*b", "aaa", False),
    ("*ab*ab*", "xabyab", True),
    ("*ab*ab*", "xaby", False),
    ("[x]", "[x]", True),             # brackets are literal: no character classes
    ("[x]", "x", False),
    (".*", "anything", False),        # regex syntax is literal
    (".*", ".tail", True),
    ("a\\*", "a\\zz", True),          # backslash is literal, the star still a wildcard
    ("*?", "", False),
    ("*?", "z", True),
])
def test_wildcards(pattern: str, text: str, expected: bool) -> None:
    assert wildcard_match(pattern, text) is expected


def test_adversarial_pattern_is_linear() -> None:
    # A regex engine backtracks exponentially on this; the matcher is O(len(p) * len(t)).
    assert wildcard_match("*a" * 50 + "b", "a" * 5000) is False


def _app(registry: CollectorRegistry, **options: object) -> TestClient:
    app = instrument(Starlette(), registry=registry, **options)  # type: ignore[arg-type]
    return TestClient(app)


def _traffic(registry: CollectorRegistry) -> None:
    settings = Settings()

    @instrument_tool(backend="github", registry=registry, settings=settings)
    def create_issue(fail: bool = False) -> str:
        if fail:
            raise RuntimeError("nope")
        return "ok"

    @instrument_tool(backend="gitlab", registry=registry, settings=settings)
    def list_issues() -> str:
        return "ok"

    @instrument_tool(backend="jira", registry=registry, settings=settings)
    def search() -> str:
        return "ok"

    for fail in (False, False, True):
        with pytest.raises(RuntimeError) if fail else _nothing():
            create_issue(fail)
    for _ in range(4):
        list_issues()
    search()
    llm = LLMMetrics(registry=registry, settings=settings)
    llm.record_tokens("openai", "gpt-4o", input=100, output=20)
    llm.record_tokens("openai", "gpt-4o-mini", input=7, output=3)
    llm.record_tokens("anthropic", "claude-x", input=50, output=0)


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *args: object) -> None:
        return None


def test_totals_equal_the_counters_and_filter(registry: CollectorRegistry) -> None:
    with _app(registry) as client:
        _traffic(registry)
        doc = client.get("/metrics/totals").json()
        calls = doc["tool_calls"]
        assert calls["total"] == total(registry, "mcp_tool_calls_total") == 8
        assert calls["backends"]["github"] == {
            "total": 3, "tools": {"create_issue": {"total": 3, "outcomes": {"ok": 2, "error": 1}}}}
        for backend, node in calls["backends"].items():
            assert node["total"] == total(registry, "mcp_tool_calls_total", backend=backend)
            for tool, leaf in node["tools"].items():
                for outcome, count in leaf["outcomes"].items():
                    assert count == total(registry, "mcp_tool_calls_total", backend=backend,
                                          gen_ai_tool_name=tool, outcome=outcome)
        tokens = doc["tokens"]
        assert tokens["total"] == total(registry, "gen_ai_client_tokens_total") == 180
        assert tokens["providers"]["openai"]["models"]["gpt-4o"] == {
            "total": 120, "directions": {"input": 100, "output": 20}}
        assert tokens["providers"]["anthropic"]["total"] == 50

        filtered = client.get("/metrics/totals?backend=git*&tool=*issue*").json()
        assert filtered["filters"] == {"backend": "git*", "tool": "*issue*"}
        assert sorted(filtered["tool_calls"]["backends"]) == ["github", "gitlab"]
        assert filtered["tool_calls"]["total"] == 7
        outcome = client.get("/metrics/totals?outcome=err??").json()["tool_calls"]
        assert outcome["total"] == 1
        models = client.get("/metrics/totals?model=GPT-4O").json()["tokens"]
        assert models["total"] == 120  # case-insensitive, exact (no implicit prefix match)
        nothing = client.get("/metrics/totals?provider=[openai]").json()["tokens"]
        assert nothing == {"total": 0}

        as_yaml = client.get("/metrics/totals?format=yaml&direction=out*")
        assert as_yaml.status_code == 200
        assert as_yaml.headers["content-type"] == "application/yaml; charset=utf-8"
        assert as_yaml.headers["cache-control"] == "no-cache"
        parsed = yaml.safe_load(as_yaml.text)
        assert parsed["tokens"]["total"] == 23
        assert parsed["tool_calls"]["total"] == 8

        assert client.get("/metrics/totals?format=xml").status_code == 400
        long = client.get("/metrics/totals", params={"tool": "*" * (MAX_PATTERN_CHARS + 1)})
        assert long.status_code == 400
        assert "tool" in long.json()["error"]


def test_yaml_without_pyyaml_is_a_clear_406(registry: CollectorRegistry,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "yaml", None)  # what an absent package looks like
    with _app(registry) as client:
        answer = client.get("/metrics/totals?format=yaml")
        assert answer.status_code == 406
        assert "asgi-mcp-metrics[yaml]" in answer.text


def test_totals_with_a_namespace_and_behind_auth(registry: CollectorRegistry) -> None:
    with _app(registry, namespace="gw", auth_bearer_token="tok") as client:
        LLMMetrics(registry=registry).record_tokens("p", "m", input=5)
        assert client.get("/metrics/totals").status_code == 401
        assert client.get("/metrics/totals",
                          headers={"authorization": "Bearer bad"}).status_code == 403
        ok = client.get("/metrics/totals", headers={"authorization": "Bearer tok"})
        assert ok.json()["tokens"]["total"] == 5

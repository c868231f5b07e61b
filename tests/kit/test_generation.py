"""The kit's generators: deterministic, schema-valid, every name from the catalog."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml as pyyaml

from asgi_mcp_metrics.__main__ import main, render
from asgi_mcp_metrics.catalog import METRICS
from asgi_mcp_metrics.kit import dashboard, rules
from asgi_mcp_metrics.kit.yaml import Ordered, dump, dump_all

from ..promtool import PROMTOOL_TIMEOUT_SECONDS, promtool_binary

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = ROOT / "tests" / "data" / "schemas"
COMMANDS = (
    ["dashboard"],
    ["rules"],
    ["rules", "--format", "prometheusrule"],
    ["servicemonitor", "--service", "my-proxy", "--port", "http"],
    ["podmonitor", "--service", "my-proxy", "--port", "http"],
)


def exprs(board: dict[str, Any]) -> list[str]:
    return [target["expr"] for panel in dashboard.all_panels(board)
            for target in panel["targets"]]


def metric_names(expr: str) -> set[str]:
    """Identifiers directly followed by a selector or range: the series an expression reads."""
    return set(re.findall(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*[{\[]", expr)) - {"by", "on"}


@pytest.mark.parametrize("argv", COMMANDS, ids=" ".join)
def test_generation_is_deterministic(argv: list[str]) -> None:
    first, _ = render(argv)
    second, _ = render(list(argv))
    assert first == second
    # A new interpreter (another hash seed) writes the same bytes.
    out = subprocess.run([sys.executable, "-m", "asgi_mcp_metrics", *argv], cwd=ROOT,
                         capture_output=True, text=True, check=True,
                         env={"PYTHONHASHSEED": "12345", "PATH": "/usr/bin:/bin"})
    assert out.stdout == first


@pytest.mark.parametrize("argv", COMMANDS[1:], ids=" ".join)
def test_yaml_output_parses_back(argv: list[str]) -> None:
    text, _ = render(argv)
    document = pyyaml.safe_load(text)
    assert isinstance(document, dict)
    if argv[0] == "rules" and len(argv) == 1:
        assert document == json.loads(json.dumps(rules.rule_file(rules.RuleOptions())))


def test_yaml_emitter_round_trips_the_plain_subset() -> None:
    value = {
        "plain": "abc", "quoted": "true", "number_like": "1.5", "empty": "", "colon": "a: b",
        "hash": "a #b", "multi": "line one\n  line two", "trailing": "line\n",
        "int": 3, "float": 0.25, "bool": False, "none": None, "list": [1, "two", [3, []]],
        "nested": [{"a": {"b": [{"c": 1}]}, "d": {}}], "unicode": "é ✓",
        "template": "{{ $labels.job }} is {{ $value | humanizePercentage }}",
        "ordered": Ordered(z=1, a=2),
    }
    assert pyyaml.safe_load(dump(value)) == value
    assert list(pyyaml.safe_load_all(dump_all([{"a": 1}, {"b": 2}]))) == [{"a": 1}, {"b": 2}]
    assert dump(Ordered(z=1, a=2)) == "z: 1\na: 2\n"


def test_dashboard_matches_grafana_schema() -> None:
    schema = json.loads((SCHEMAS / "grafana-dashboard.jsonschema.json").read_text())
    board = json.loads(render(["dashboard"])[0])
    jsonschema.validate(board, schema)
    assert board["schemaVersion"] >= 39
    names = [variable["name"] for variable in board["templating"]["list"]]
    assert names == ["datasource", "job", "instance", "variant"]
    rows = [panel for panel in board["panels"] if panel["type"] == "row"]
    assert len(rows) >= 9 and any(row["collapsed"] for row in rows)
    panels = dashboard.all_panels(board)
    assert len({panel["id"] for panel in panels + rows}) == len(panels) + len(rows)
    for panel in panels:
        assert panel["targets"], panel["title"]
        assert panel["fieldConfig"]["defaults"]["noValue"], panel["title"]
        assert "No data means" in panel["description"]
        for target in panel["targets"]:
            assert '$job' in target["expr"] and "$variant" in target["expr"], target["expr"]


def test_every_catalog_metric_has_a_panel_and_nothing_else_is_queried() -> None:
    board = dashboard.build()
    read = set().union(*(metric_names(expr) for expr in exprs(board)))
    exposed = set()
    for spec in METRICS:
        if spec.kind == "histogram":
            exposed |= {spec.name + suffix for suffix in ("_bucket", "_sum", "_count")}
        else:
            exposed.add(spec.name)
    assert read <= exposed
    for spec in METRICS:
        assert any(name.startswith(spec.name) for name in read), spec.name


def test_namespace_prefixes_every_name() -> None:
    board = dashboard.build(dashboard.DashboardOptions(namespace="gw"))
    for expr in exprs(board):
        assert all(name.startswith("gw_") for name in metric_names(expr)), expr
    file = rules.rule_file(rules.RuleOptions(namespace="gw"))
    for group in file["groups"]:
        for rule in group["rules"]:
            assert all(name.startswith("gw_") or name == "up"
                       for name in metric_names(rule["expr"])), rule["expr"]


def test_namespace_comes_from_the_library_settings(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.asgi_mcp_metrics]\nnamespace = "gateway"\n')
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ASGI_MCP_METRICS_NAMESPACE", raising=False)
    monkeypatch.delenv("ASGI_MCP_METRICS_CONFIG", raising=False)
    text, _ = render(["rules"])
    assert "rate(gateway_mcp_tool_calls_total[5m])" in text
    assert "gateway_mcp_tool_calls_total" in render(["dashboard"])[0]
    monkeypatch.setenv("ASGI_MCP_METRICS_NAMESPACE", "edge")
    assert "edge_mcp_tool_calls_total" in render(["dashboard"])[0]
    # The flag wins over the settings.
    assert "other_mcp_tool_calls_total" in render(["dashboard", "--namespace", "other"])[0]


def test_thresholds_and_durations_are_options(tmp_path: Path) -> None:
    out = tmp_path / "rules.yml"
    assert main(["rules", "--job", "proxy", "--error-ratio", "0.2", "--p95-seconds", "0.5",
                 "--canary-for", "3m", "--output", str(out)]) == 0
    document = pyyaml.safe_load(out.read_text())
    by_name = {rule.get("alert"): rule for group in document["groups"]
               for rule in group["rules"]}
    assert by_name["MCPToolErrorRatioHigh"]["expr"].endswith("> 0.2")
    assert 'job="proxy"' in by_name["MCPToolErrorRatioHigh"]["expr"]
    assert by_name["MCPToolLatencyHigh"]["expr"].endswith("> 0.5")
    assert by_name["MCPCanaryErrorRatioHigh"]["for"] == "3m"
    everything = pyyaml.safe_load(render(["rules", "--for", "7s"])[0])
    assert {rule["for"] for group in everything["groups"] for rule in group["rules"]
            if "alert" in rule} == {"7s"}


def test_every_alert_has_a_runbook_section() -> None:
    runbook = (ROOT / "docs" / "runbook.md").read_text()
    headings = {line[3:].strip() for line in runbook.splitlines() if line.startswith("## ")}
    for alert in rules.alerts(rules.RuleOptions()):
        assert alert.name in headings, alert.name
        assert rules.runbook_anchor(alert.name) == alert.name.lower()


@pytest.mark.parametrize("fmt", ["prometheus", "prometheusrule"])
def test_promtool_checks_the_rule_files(tmp_path: Path, fmt: str) -> None:
    promtool = promtool_binary()
    document = pyyaml.safe_load(render(["rules", "--format", fmt, "--namespace", "gw"])[0])
    groups = document["spec"] if fmt == "prometheusrule" else document
    path = tmp_path / "rules.yml"
    path.write_text(dump(groups))
    completed = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True,
                               text=True, timeout=PROMTOOL_TIMEOUT_SECONDS, check=False)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "SUCCESS: 17 rules found" in completed.stdout

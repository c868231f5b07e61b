"""The package as a whole: its import paths and what the test suite depends on."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]


def test_documented_former_import_paths_still_work() -> None:
    from asgi_mcp_metrics import audit, declared_tools, known, mcp_sdk, sdk_adapter, trace_context

    assert audit.use_traceparent is trace_context.use_traceparent
    assert known.declare_tool is declared_tools.declare_tool
    assert known.is_declared_tool is declared_tools.is_declared_tool
    assert mcp_sdk.MetricsServerMiddleware is sdk_adapter.MetricsServerMiddleware
    assert mcp_sdk.instrument_client_session is sdk_adapter.instrument_client_session
    known.declare_tool("declared_through_the_former_path")
    assert declared_tools.is_declared_tool("declared_through_the_former_path")


def imported_modules(paths: list[Path]) -> set[str]:
    """Top-level modules imported anywhere in ``paths`` (absolute imports only)."""
    modules: set[str] = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                modules.update(alias.name.partition(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules.add(node.module.partition(".")[0])
    return modules


def requirement_names(requirements: list[str]) -> set[str]:
    return {re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0].lower().replace("_", "-")
            for requirement in requirements}


def test_the_test_extra_lists_every_distribution_the_tests_import() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    declared = (requirement_names(project["dependencies"])
                | requirement_names(project["optional-dependencies"]["test"]))
    local = {"asgi_mcp_metrics", "tests", "examples"}
    imported = imported_modules(sorted((ROOT / "tests").rglob("*.py")))
    third_party = imported - set(sys.stdlib_module_names) - local
    providers = importlib.metadata.packages_distributions()
    missing = {module: providers.get(module) for module in third_party
               if not {name.lower().replace("_", "-")
                       for name in providers.get(module, [])} & declared}
    assert missing == {}
    # The check sees what it must: opentelemetry is imported by the tests and listed.
    assert "opentelemetry" in third_party
    assert "opentelemetry-api" in declared

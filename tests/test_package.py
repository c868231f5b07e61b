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


def distributions_providing() -> dict[str, list[str]]:
    """Top-level module -> the installed distributions whose files provide it.

    Read from each distribution's file list, so namespace packages (``opentelemetry``) are found
    on every Python; 3.10's ``packages_distributions()`` only reads ``top_level.txt``.
    """
    providers: dict[str, list[str]] = {}
    for distribution in importlib.metadata.distributions():
        name = distribution.metadata["Name"]
        tops = {Path(str(file)).parts[0].removesuffix(".py") for file in distribution.files or ()
                if not str(file).startswith(("..", "/"))}
        for top in tops:
            providers.setdefault(top, []).append(name)
    return providers


def test_the_test_extra_lists_every_distribution_the_tests_import() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    declared = (requirement_names(project["dependencies"])
                | requirement_names(project["optional-dependencies"]["test"]))
    local = {"asgi_mcp_metrics", "tests", "examples"}
    imported = imported_modules(sorted((ROOT / "tests").rglob("*.py")))
    # tomllib is imported under a version check, where it is the standard library's.
    third_party = imported - set(sys.stdlib_module_names) - local - {"tomllib"}
    providers = distributions_providing()
    # A module is covered when a declared distribution provides it, or - for one that is not
    # installed on this interpreter (tomli on 3.11+, behind its version marker) - has its name.
    missing = {module: providers.get(module) for module in third_party
               if not ({name.lower().replace("_", "-") for name in providers.get(module, [])}
                       | {module.lower().replace("_", "-")}) & declared}
    assert missing == {}
    # The check sees what it must: opentelemetry is imported by the tests and listed.
    assert "opentelemetry" in third_party
    assert "opentelemetry-api" in declared


PACKAGE = ROOT / "asgi_mcp_metrics"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def import_graph() -> dict[str, set[str]]:
    """Which package modules each package module imports: every import statement in the source,
    those under ``if TYPE_CHECKING:`` and inside functions included."""
    modules = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                # ``from package import module`` imports the module itself.
                targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules
                           else base for alias in node.names]
            graph[name].update(target for target in targets
                               if target in modules and target != name)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    visiting: list[str] = []
    done: set[str] = set()

    def visit(node: str) -> list[str] | None:
        if node in visiting:
            return [*visiting[visiting.index(node):], node]
        if node in done:
            return None
        visiting.append(node)
        for target in sorted(graph[node]):
            cycle = visit(target)
            if cycle is not None:
                return cycle
        visiting.pop()
        done.add(node)
        return None

    for start in sorted(graph):
        cycle = visit(start)
        if cycle is not None:
            return cycle
    return None


def test_the_package_has_no_import_cycle() -> None:
    graph = import_graph()
    assert find_cycle(graph) is None
    # The graph is real: it sees a TYPE_CHECKING-only import and a relative one.
    assert "asgi_mcp_metrics.mcp.recording" in graph["asgi_mcp_metrics.mcp.sessions"]
    assert "asgi_mcp_metrics.mcp.exchange" in graph["asgi_mcp_metrics.mcp.tracker"]


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_wire_layer_imports_nothing_outside_itself() -> None:
    wire = "asgi_mcp_metrics.mcp.wire"
    graph = import_graph()
    outside = {name: sorted(target for target in targets if not target.startswith(wire))
               for name, targets in graph.items() if name.startswith(wire)}
    assert outside == {name: [] for name in outside}
    assert len(outside) == 6  # the package and its five modules
    third_party = imported_modules(sorted((PACKAGE / "mcp" / "wire").rglob("*.py")))
    assert third_party <= set(sys.stdlib_module_names) | {"asgi_mcp_metrics"}

"""The PromQL queries of the docs: every ```promql block, split into its queries."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = (ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")))
_BLOCK = re.compile(r"^```promql\n(.*?)^```", re.DOTALL | re.MULTILINE)
_OPERATOR = re.compile(r"^\s*(?:[-+*/%^<>=!]|and\b|or\b|unless\b|on\b|ignoring\b|group_)")


def documented_queries() -> list[tuple[str, str]]:
    """``(where, query)`` for every query in the docs.

    A block holds one query per line; a query continues on the next line while its parentheses
    are open, when the next line is indented or starts with an operator, or when the line ends
    with one.
    """
    queries: list[tuple[str, str]] = []
    for path in DOCS:
        text = path.read_text(encoding="utf-8")
        for block in _BLOCK.finditer(text):
            line_number = text.count("\n", 0, block.start(1)) + 1
            current: list[str] = []
            start = line_number
            for offset, line in enumerate(block.group(1).splitlines()):
                if not line.strip() or line.lstrip().startswith("#"):
                    continue
                joined = " ".join(current)
                continues = current and (
                    joined.count("(") > joined.count(")") or line[0].isspace()
                    or _OPERATOR.match(line) is not None
                    or _OPERATOR.match(current[-1].strip()[-1:]) is not None)
                if not continues and current:
                    queries.append((f"{path.name}:{start}", joined))
                    current = []
                if not current:
                    start = line_number + offset
                current.append(line.strip())
            if current:
                queries.append((f"{path.name}:{start}", " ".join(current)))
    return queries

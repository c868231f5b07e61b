"""Running totals since start: tool calls by backend → tool → outcome, tokens by provider →
model → direction, read from the registry's own counters (so they equal them exactly).

Filters are shell-like wildcards on each level (``*`` any run, ``?`` one character, every other
character literal, case-insensitive), matched without backtracking so that no pattern a client
sends can cost more than ``len(pattern) * len(value)`` steps.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from prometheus_client.registry import Collector

__all__ = ["MAX_PATTERN_CHARS", "TOTALS_FILTERS", "FilterError", "RowReader", "Rows", "document",
           "increase", "totals", "wildcard_match"]

MAX_PATTERN_CHARS = 200
TOOL_LEVELS = ("backend", "tool", "outcome")
TOKEN_LEVELS = ("provider", "model", "direction")
TOTALS_FILTERS = TOOL_LEVELS + TOKEN_LEVELS
# (metric, the label of each level, the key each level's children are listed under)
_TOOL_CALLS = ("mcp_tool_calls_total", ("backend", "gen_ai_tool_name", "outcome"),
               ("backends", "tools", "outcomes"))
_TOKENS = ("gen_ai_client_tokens_total",
           ("gen_ai_provider_name", "gen_ai_request_model", "gen_ai_token_type"),
           ("providers", "models", "directions"))


class FilterError(ValueError):
    """A filter a client sent is not acceptable (too long)."""


def wildcard_match(pattern: str, text: str) -> bool:
    """``*`` and ``?`` wildcards, case-insensitive; linear-space, no regex, no backtracking."""
    pattern, text = pattern.casefold(), text.casefold()
    p = t = 0
    star = -1
    resume = 0
    while t < len(text):
        if p < len(pattern) and pattern[p] == "*":
            star, resume = p, t
            p += 1
        elif p < len(pattern) and (pattern[p] == "?" or pattern[p] == text[t]):
            p += 1
            t += 1
        elif star >= 0:
            p = star + 1
            resume += 1
            t = resume
        else:
            return False
    while p < len(pattern) and pattern[p] == "*":
        p += 1
    return p == len(pattern)


def check_filters(filters: Mapping[str, str]) -> dict[str, str]:
    """The filters that apply (known names, non-empty); raise FilterError on an over-long one."""
    kept: dict[str, str] = {}
    for name in TOTALS_FILTERS:
        pattern = filters.get(name)
        if not pattern:
            continue
        if len(pattern) > MAX_PATTERN_CHARS:
            raise FilterError(f"filter {name!r} is longer than {MAX_PATTERN_CHARS} characters")
        kept[name] = pattern
    return kept


Rows = dict[str, dict[tuple[str, ...], float]]
"""Per metric (``tool_calls``, ``tokens``): the summed value of each key of its levels."""


class RowReader:
    """Picks the two totals metrics' samples out of a collect, summed by their levels."""

    def __init__(self, namespace: str = "") -> None:
        prefix = f"{namespace}_" if namespace else ""
        self._specs = {prefix + _TOOL_CALLS[0]: ("tool_calls", _TOOL_CALLS[1]),
                       prefix + _TOKENS[0]: ("tokens", _TOKENS[1])}

    @staticmethod
    def empty() -> Rows:
        return {"tool_calls": {}, "tokens": {}}

    def take(self, rows: Rows, name: str, labels: Mapping[str, str], value: float) -> bool:
        """Add one sample to ``rows`` when it belongs to the totals; True when it did."""
        spec = self._specs.get(name)
        if spec is None:
            return False
        table = rows[spec[0]]
        key = tuple(labels.get(label, "") for label in spec[1])
        table[key] = table.get(key, 0.0) + value
        return True

    def read(self, source: Collector) -> Rows:
        rows = self.empty()
        for family in source.collect():
            for sample in family.samples:
                self.take(rows, sample.name, sample.labels, sample.value)
        return rows


def increase(now: Rows, then: Rows) -> Rows:
    """What each counter gained since ``then`` (a counter that restarted counts from 0)."""
    gained = RowReader.empty()
    for metric, table in now.items():
        before = then.get(metric, {})
        for key, value in table.items():
            earlier = before.get(key, 0.0)
            gained[metric][key] = value - earlier if value >= earlier else value
    return gained


def totals(source: Collector, *, namespace: str = "",
           filters: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The totals document since start; ``filters`` maps a level (``backend``, ``tool``, ...)
    to a pattern."""
    return document(RowReader(namespace).read(source), filters)


def document(rows: Rows, filters: Mapping[str, str] | None = None) -> dict[str, Any]:
    applied = check_filters(filters or {})
    return {
        "filters": applied,
        "tool_calls": _tree(rows["tool_calls"].items(), TOOL_LEVELS, _TOOL_CALLS[2], applied),
        "tokens": _tree(rows["tokens"].items(), TOKEN_LEVELS, _TOKENS[2], applied),
    }


def _tree(rows: Iterable[tuple[tuple[str, ...], float]], levels: tuple[str, ...],
          child_keys: tuple[str, ...], filters: Mapping[str, str]) -> dict[str, Any]:
    root: dict[str, Any] = {"total": 0}
    for key, value in rows:
        if not all(wildcard_match(filters[level], part)
                   for level, part in zip(levels, key, strict=True) if level in filters):
            continue
        amount = _number(value)
        root["total"] += amount
        node = root
        for depth, part in enumerate(key):
            children = node.setdefault(child_keys[depth], {})
            if depth == len(key) - 1:
                children[part] = children.get(part, 0) + amount
            else:
                node = children.setdefault(part, {"total": 0})
                node["total"] += amount
    return root


def _number(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value

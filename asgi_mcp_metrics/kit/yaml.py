"""A small deterministic YAML emitter for the plain subset the kit writes.

Dicts (keys emitted in sorted order unless the dict is an :class:`Ordered`), lists, strings,
booleans, integers, floats and None.  Strings that YAML would read as something else (numbers,
booleans, null, anything with special characters) are double-quoted with JSON escapes, which
is valid YAML; multi-line strings use literal blocks.  No new runtime dependency.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence

_PLAIN = re.compile(r"^[A-Za-z_/][A-Za-z0-9_./-]*$")
_RESERVED = {"true", "false", "yes", "no", "on", "off", "null", "y", "n", "~"}


class Ordered(dict):  # type: ignore[type-arg]
    """A mapping emitted in insertion order (Kubernetes readers expect apiVersion first)."""


def _scalar(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    text = str(value)
    if _PLAIN.match(text) and text.lower() not in _RESERVED:
        return text
    return json.dumps(text, ensure_ascii=False)


def _keys(mapping: Mapping[str, object]) -> list[str]:
    return list(mapping) if isinstance(mapping, Ordered) else sorted(mapping)


def _block(value: object, indent: int) -> list[str]:
    """Lines of ``value`` as a block, each prefixed by ``indent`` spaces."""
    pad = " " * indent
    if isinstance(value, Mapping):
        if not value:
            return [pad + "{}"]
        lines: list[str] = []
        for key in _keys(value):
            lines += _entry(pad + _scalar(key) + ":", value[key], indent)
        return lines
    if isinstance(value, Sequence) and not isinstance(value, str):
        if not value:
            return [pad + "[]"]
        lines = []
        for item in value:
            lines += _entry(pad + "-", item, indent, item_of_list=True)
        return lines
    return [pad + _scalar(value)]


def _entry(head: str, value: object, indent: int, *, item_of_list: bool = False) -> list[str]:
    if isinstance(value, str) and "\n" in value:
        body = value if value.endswith("\n") else value + "\n"
        chomp = "" if value.endswith("\n") else "-"
        return [f"{head} |{chomp}"] + [
            (" " * (indent + 2) + line) if line else "" for line in body.splitlines()]
    if isinstance(value, (Mapping, list, tuple)) and value:
        if item_of_list:
            inner = _block(value, indent + 2)
            # The first line of a list item's mapping shares the dash's line.
            return [head + " " + inner[0].lstrip(), *inner[1:]]
        if isinstance(value, Mapping):
            return [head, *_block(value, indent + 2)]
        return [head, *_block(value, indent)]
    return [f"{head} {_block(value, 0)[0]}"]


def dump(value: object) -> str:
    """``value`` as a YAML document (ends with a newline)."""
    return "\n".join(_block(value, 0)) + "\n"


def dump_all(values: Sequence[object]) -> str:
    """Several documents separated by ``---``."""
    return "---\n".join(dump(value) for value in values)

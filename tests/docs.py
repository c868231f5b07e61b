"""Code blocks of the docs that tests run: each is marked ``<!-- test: NAME -->`` on the line
before its opening fence."""

from __future__ import annotations

import re
from pathlib import Path

_BLOCK = re.compile(r"<!-- test: (?P<name>[^>]+?) -->\n```[a-z]*\n(?P<code>.*?)^```", re.S | re.M)


def doc_block(path: Path, name: str) -> str:
    """The code of the block marked ``name`` in ``path``; fails when there is none."""
    blocks = {match["name"]: match["code"] for match in _BLOCK.finditer(path.read_text())}
    if name not in blocks:
        raise AssertionError(f"{path.name} has no code block marked 'test: {name}'")
    return blocks[name]

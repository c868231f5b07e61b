"""The example READMEs' commands run from the README's venv, as written (no activated venv:
a bare ``uvicorn`` or ``python`` is "command not found" or the wrong interpreter)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BARE = re.compile(r"^(python|python3|uvicorn|gunicorn|pip|pytest|daphne)\b")


@pytest.mark.parametrize("readme", sorted((ROOT / "examples").glob("*/README.md")),
                         ids=lambda path: path.parent.name)
def test_example_commands_name_the_venv(readme: Path) -> None:
    text = readme.read_text()
    for block in re.findall(r"```(?:bash|sh)\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            command = line.strip()
            assert not BARE.match(command) or command.startswith("python3 -m venv"), (
                f"{readme.relative_to(ROOT)}: {command!r} assumes an activated venv")

"""``docs/surfaces.md`` as a script: its Python blocks are the served app, each ``sh`` block is
run against it, and the ``text`` block after a command lists lines its output has, in order."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from asgi_mcp_metrics.surfaces.ui import page

from .servers import answers, free_port, wait_until

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "surfaces.md"
BLOCK = re.compile(r"```(\w+)\n(.*?)```", re.DOTALL)
DOC_URL = "http://127.0.0.1:8000"


def blocks() -> list[tuple[str, str]]:
    return [(m.group(1), m.group(2)) for m in BLOCK.finditer(DOC.read_text())]


def test_the_stated_page_weight_is_true() -> None:
    assert "Page\nweight: 61 KB in one request" in DOC.read_text()
    assert 60_500 <= len(page()) < 61_500


def test_every_block_runs_as_documented(tmp_path: Path) -> None:
    found = blocks()
    python = [code for kind, code in found if kind == "python"]
    assert len(python) == 2
    module = tmp_path / "docs_app.py"
    module.write_text("\n".join(python))
    port = free_port()
    serve = textwrap.dedent(f"""
        import sys, uvicorn
        sys.path.insert(0, {str(tmp_path)!r})
        import docs_app
        from asgi_mcp_metrics.surfaces.app import Surfaces
        assert isinstance(docs_app.surfaces_app, Surfaces)
        uvicorn.run(docs_app.app, host="127.0.0.1", port={port}, log_level="warning")
    """)
    environment = {k: v for k, v in os.environ.items() if not k.startswith("ASGI_MCP_METRICS_")}
    server = subprocess.Popen([sys.executable, "-c", serve], cwd=tmp_path, env=environment)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: answers(f"{url}/metrics"), timeout=30)
        commands = 0
        for index, (kind, code) in enumerate(found):
            if kind != "sh":
                continue
            commands += 1
            script = "set -euo pipefail\n" + code.replace(DOC_URL, url)
            run = subprocess.run(["bash", "-c", script], capture_output=True, text=True,
                                 timeout=30)
            # A stream is read until curl's --max-time ends it: exit code 28, "timed out".
            allowed = (0, 28) if "--max-time" in code else (0,)
            assert run.returncode in allowed, (code, run.returncode, run.stderr)
            following = found[index + 1] if index + 1 < len(found) else ("", "")
            if following[0] == "text":
                _in_order(following[1].splitlines(), run.stdout.splitlines(), code)
        assert commands == 9
    finally:
        server.terminate()
        server.wait(15)


def _in_order(expected: list[str], output: list[str], command: str) -> None:
    position = 0
    for line in expected:
        while position < len(output) and output[position] != line:
            position += 1
        assert position < len(output), f"{command!r}: {line!r} missing or out of order in " \
                                       f"{output!r}"
        position += 1

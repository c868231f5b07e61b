"""The docs' FastMCP server with the docs' middleware, served over stdio by FastMCP itself; at
exit it writes its exposition to ``$E2E_METRICS_DUMP`` for the test to read."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any

from prometheus_client import REGISTRY, generate_latest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.docs import doc_block  # noqa: E402

DOC = ROOT / "docs" / "fastmcp.md"


def main() -> None:
    # The client closes stdin, then terminates a process that has not left within its grace
    # period; either way the exposition is written.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    namespace: dict[str, Any] = {}
    exec(doc_block(DOC, "server"), namespace)
    exec(doc_block(DOC, "stdio"), namespace)
    try:
        namespace["mcp"].run(show_banner=False)
    finally:
        Path(os.environ["E2E_METRICS_DUMP"]).write_bytes(generate_latest(REGISTRY))


if __name__ == "__main__":
    main()

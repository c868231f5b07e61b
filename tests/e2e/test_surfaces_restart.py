"""The dashboard history in an SQLite file survives a restart of a real uvicorn process."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from .servers import answers, free_port, wait_until

pytestmark = pytest.mark.e2e

APP = textwrap.dedent("""
    import sys
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route
    from asgi_mcp_metrics.starlette import instrument

    async def hello(request):
        return PlainTextResponse("hello")

    app = instrument(Starlette(routes=[Route("/hello", hello)]), history_path=sys.argv[1])
""")


@contextmanager
def server(directory: Path, history: Path) -> Iterator[str]:
    port = free_port()
    (directory / "restart_app.py").write_text(APP)
    runner = ("import sys, uvicorn\n"
              f"sys.argv[1:] = [{str(history)!r}]\n"
              f"uvicorn.run('restart_app:app', host='127.0.0.1', port={port}, "
              "log_level='warning')\n")
    environment = {k: v for k, v in os.environ.items() if not k.startswith("ASGI_MCP_METRICS_")}
    proc = subprocess.Popen([sys.executable, "-c", runner], cwd=directory, env=environment)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: answers(f"{url}/hello"), timeout=30)
        yield url
    finally:
        proc.terminate()
        proc.wait(15)


def stored_requests(history: Path) -> float:
    """The largest request count any stored sample holds (the first column)."""
    if not history.exists():
        return 0
    with sqlite3.connect(history) as db:
        found = db.execute("SELECT max(json_extract(data, '$.v[0]')) FROM samples").fetchone()
    return float(found[0] or 0)


def test_history_before_a_restart_is_shown_after_it(tmp_path: Path) -> None:
    history = tmp_path / "metrics-history.sqlite3"
    with server(tmp_path, history) as url:
        httpx.get(f"{url}/metrics/ui/history?range=60")  # the first view starts the sampler
        for _ in range(30):
            httpx.get(f"{url}/hello")
        # 1 request from the readiness probe, 30 here: written within a batch or two.
        wait_until(lambda: stored_requests(history) == 31, timeout=30)
        before = httpx.get(f"{url}/metrics/ui/history?range=3600").json()
    assert sum(before["series"]["requests_per_second"]) > 0

    with server(tmp_path, history) as url:
        after = httpx.get(f"{url}/metrics/ui/history?range=3600").json()
    # Every point the first process showed is shown by the second, with the same values.
    shown = dict(zip(after["t"], after["series"]["requests_per_second"], strict=True))
    for t, rate in zip(before["t"], before["series"]["requests_per_second"], strict=True):
        assert shown[t] == rate

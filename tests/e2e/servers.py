"""Run an ASGI app under a real uvicorn on 127.0.0.1 for the length of a test, and wait for
what the server does after the client has its answer."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from prometheus_client import CollectorRegistry

from ..asgi import total

#: Gauges that are back to 0 once every client has gone and the server has finished.
ACTIVE_GAUGES = ("http_server_active_requests", "http_server_streams_active",
                 "mcp_server_sessions_active")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serve(app: Any, *, lifespan: str = "on", timeout: float = 20.0,
          root_path: str = "") -> Iterator[str]:
    """Serve ``app`` in a background thread; yields the base URL, stops cleanly after."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, lifespan=lifespan,
                            log_level="warning", access_log=False, root_path=root_path,
                            timeout_graceful_shutdown=5)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout)


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """The server finishes its side of an exchange a moment after the client has moved on."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.01)


def answers(url: str) -> bool:
    """``url`` answers 200 (a server started in another process is up)."""
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def gauges_idle(registry: CollectorRegistry) -> bool:
    return all(total(registry, name) == 0 for name in ACTIVE_GAUGES)


DEMO = Path(__file__).resolve().parents[2] / "examples" / "demo.py"


@contextmanager
def demo(duration: float) -> Iterator[tuple[int, list[str]]]:
    """Run ``examples/demo.py`` on a free port; yields the port and the lines it printed up to
    and including the MCP endpoint's address."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(DEMO), "--port", str(port), "--duration",
                             str(duration)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, cwd=DEMO.parents[1])
    try:
        assert proc.stdout is not None
        printed = [proc.stdout.readline()]
        while printed[-1] and not printed[-1].startswith("MCP endpoint:"):
            printed.append(proc.stdout.readline())
        yield port, printed
    finally:
        proc.terminate()
        proc.wait(15)

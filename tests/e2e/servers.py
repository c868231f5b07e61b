"""Run an ASGI app under a real server on 127.0.0.1 for the length of a test, and wait for
what the server does after the client has its answer.

One helper starts each server the way it is deployed: uvicorn (h11 or httptools) and hypercorn
in a thread with an event loop of their own; granian, a Rust server with its own process
model, as a child process serving an import string.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import signal
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

#: Every server the end-to-end tests run under.
SERVERS = ("uvicorn-h11", "uvicorn-httptools", "hypercorn", "granian")

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def load(target: str) -> Any:
    """``"module:factory"``: the app the factory builds, as granian's ``--factory`` does."""
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)()


@contextmanager
def serve(app: Any, *, server: str = "uvicorn-h11", lifespan: str = "on",
          timeout: float = 20.0, root_path: str = "") -> Iterator[str]:
    """Serve ``app`` under ``server``; yields the base URL, stops cleanly (lifespan shutdown
    included) after. ``root_path`` is the prefix a reverse proxy strips, set on the server.

    ``app`` is an ASGI app or a ``"module:factory"`` import string; granian, which runs in a
    process of its own, needs the import string.
    """
    if server == "granian":
        if not isinstance(app, str):
            raise TypeError("granian serves an import string, 'module:factory'")
        runner = _granian
    else:
        if isinstance(app, str):
            app = load(app)
        runner = _hypercorn if server == "hypercorn" else _uvicorn
    port = free_port()
    with runner(app, port, server=server, lifespan=lifespan, timeout=timeout,
                root_path=root_path) as alive:
        _wait_for_port(port, alive, timeout)
        yield f"http://127.0.0.1:{port}"


def _wait_for_port(port: int, alive: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if not alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the server on port {port} did not start") from None
            time.sleep(0.01)


@contextmanager
def _uvicorn(app: Any, port: int, *, server: str, lifespan: str, timeout: float,
             root_path: str) -> Iterator[Callable[[], bool]]:
    config = uvicorn.Config(app, host="127.0.0.1", port=port, lifespan=lifespan,
                            http=server.partition("-")[2] or "h11", log_level="warning",
                            access_log=False, root_path=root_path,
                            timeout_graceful_shutdown=5)
    instance = uvicorn.Server(config)
    thread = threading.Thread(target=instance.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not instance.started:  # the port is bound only after lifespan startup
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield thread.is_alive
    finally:
        instance.should_exit = True
        thread.join(timeout)


@contextmanager
def _hypercorn(app: Any, port: int, *, server: str, lifespan: str, timeout: float,
               root_path: str) -> Iterator[Callable[[], bool]]:
    from hypercorn.asyncio import serve as hypercorn_serve
    from hypercorn.config import Config

    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.loglevel = "WARNING"
    config.graceful_timeout = 5
    config.root_path = root_path
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(hypercorn_serve(app, config, shutdown_trigger=stop.wait))
        # Tasks the app left behind (the SDK's SSE watchers) end with the loop, not after it.
        pending = asyncio.all_tasks(loop)
        for task in pending:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.close()

    thread = threading.Thread(target=run, name=f"hypercorn-{port}", daemon=True)
    thread.start()
    try:
        yield thread.is_alive
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(timeout)


@contextmanager
def _granian(app: str, port: int, *, server: str, lifespan: str, timeout: float,
             root_path: str) -> Iterator[Callable[[], bool]]:
    command = [sys.executable, "-m", "granian", "--interface", "asgi", "--factory",
               "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
               "--log-level", "warning", "--no-access-log", app]
    if root_path:
        command[-1:-1] = ["--url-path-prefix", root_path]
    if lifespan != "on":
        raise ValueError("granian always runs the lifespan protocol here")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [
        str(ROOT), os.environ.get("PYTHONPATH", "")]))}
    process = subprocess.Popen(command, cwd=ROOT, env=env)
    try:
        yield lambda: process.poll() is None
    finally:
        process.send_signal(signal.SIGINT)  # graceful: lifespan shutdown runs
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise


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

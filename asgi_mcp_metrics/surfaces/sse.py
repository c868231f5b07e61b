"""Server-Sent Events for the surfaces: push on a version change, heartbeats, a viewer cap.

A stream checks its source's version every ``interval`` seconds (never on the request path)
and sends one ``update`` event per check that found changes; each event carries the version it
shows and the version of the event before it, so a client can verify that it missed nothing.
An idle stream sends a ``: heartbeat`` comment every ``heartbeat`` seconds; a surface switched
off sends ``event: disabled`` and ends the stream.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from typing import Any

from ..types import Receive, Send

__all__ = ["Viewers", "event", "serve_stream"]

STREAM_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


class Viewers:
    """Counts open streams; :meth:`enter` refuses once ``cap`` are open."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.count = 0
        self._lock = threading.Lock()

    def enter(self) -> bool:
        with self._lock:
            if self.count >= self.cap:
                return False
            self.count += 1
            return True

    def leave(self) -> None:
        with self._lock:
            self.count -= 1


def event(name: str, data: Any, event_id: int | None = None) -> bytes:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


async def serve_stream(receive: Receive, send: Send, *, version: Callable[[], int],
                       payload: Callable[[int | None, int], Any], enabled: Callable[[], bool],
                       interval: float, heartbeat: float) -> None:
    """Run one SSE stream until the client leaves or the surface is switched off.

    ``payload(previous, current)`` builds the data of the update from version ``previous`` to
    ``current`` (``previous`` is None for the first event, which shows the full state).  The
    disconnect watcher is cancelled on every way out, so nothing is left running after a
    client drops.
    """
    await send({"type": "http.response.start", "status": 200, "headers": STREAM_HEADERS})
    gone = asyncio.ensure_future(_disconnected(receive))
    try:
        shown: int | None = None
        last_sent = time.monotonic()
        while not gone.done():
            if not enabled():
                await send({"type": "http.response.body", "body": event("disabled", {}),
                            "more_body": False})
                return
            current = version()
            if current != shown:
                body = event("update", payload(shown, current), current)
                shown = current
            elif time.monotonic() - last_sent >= heartbeat:
                body = b": heartbeat\n\n"
            else:
                body = b""
            if body:
                await send({"type": "http.response.body", "body": body, "more_body": True})
                last_sent = time.monotonic()
            await asyncio.wait((gone,), timeout=interval)
    except OSError:
        pass  # the client went away while we were writing
    finally:
        gone.cancel()
        await asyncio.gather(gone, return_exceptions=True)


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass

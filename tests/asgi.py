"""Drive an ASGI app in-process with full control over the message sequence."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from prometheus_client import CollectorRegistry


def http_scope(path: str = "/", method: str = "GET", *, headers: Iterable[tuple[bytes, bytes]] = (),
               query_string: bytes = b"", root_path: str = "", scheme: str = "http",
               raw_path: bytes | None = None) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": method,
        "scheme": scheme,
        "path": path,
        "raw_path": raw_path if raw_path is not None else path.encode("utf-8", "surrogateescape"),
        "root_path": root_path,
        "query_string": query_string,
        "headers": list(headers),
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }


class Exchange:
    """The messages an app sent, and what it received, for one call."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.received: list[dict[str, Any]] = []
        self.error: BaseException | None = None

    @property
    def status(self) -> int:
        return int(self.sent[0]["status"])

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.sent if m["type"] == "http.response.body")

    @property
    def headers(self) -> list[tuple[bytes, bytes]]:
        return list(self.sent[0]["headers"])


async def call(app: Any, scope: dict[str, Any], body: Iterable[bytes] = (b"",), *,
               disconnect_after: float | None = None, fail_send_after: int | None = None,
               disconnect_after_body: bool = False, raise_errors: bool = True) -> Exchange:
    """Run ``app`` once.

    ``body`` chunks are delivered as ``http.request`` messages; afterwards ``receive`` blocks
    until ``disconnect_after`` seconds pass (then ``http.disconnect``) or forever.
    ``fail_send_after``: the n-th ``send`` (0-based) and later raise OSError, like a server
    whose client is gone.  ``disconnect_after_body``: the client leaves once the app has sent
    response body bytes (a condition, not a time, so a busy machine cannot reorder it).
    """
    ex = Exchange()
    chunks = list(body)
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    for i, chunk in enumerate(chunks):
        queue.put_nowait({"type": "http.request", "body": chunk,
                          "more_body": i < len(chunks) - 1})

    body_sent = asyncio.Event()

    async def receive() -> dict[str, Any]:
        if queue.empty():
            if disconnect_after_body:
                await body_sent.wait()
            elif disconnect_after is None:
                await asyncio.Event().wait()
            await asyncio.sleep(disconnect_after or 0)
            message: dict[str, Any] = {"type": "http.disconnect"}
        else:
            message = queue.get_nowait()
        ex.received.append(message)
        return message

    async def send(message: dict[str, Any]) -> None:
        if fail_send_after is not None and len(ex.sent) >= fail_send_after:
            raise OSError("client gone")
        ex.sent.append(message)
        if message["type"] == "http.response.body" and message.get("body"):
            body_sent.set()

    try:
        await app(scope, receive, send)
    except BaseException as exc:
        ex.error = exc
        if raise_errors:
            raise
    return ex


async def read_body(receive: Any) -> bytes:
    """What an app does to read the whole request body; a disconnect ends it early."""
    body = b""
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return body
        body += message.get("body", b"")
        if not message.get("more_body", False):
            return body


def value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    """A sample's value; 0.0 when the series does not exist."""
    result = registry.get_sample_value(name, labels)
    return 0.0 if result is None else result


def total(registry: CollectorRegistry, name: str, **match: str) -> float:
    """Sum of every sample called ``name`` whose labels include ``match``."""
    result = 0.0
    for family in registry.collect():
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in match.items()):
                result += sample.value
    return result

"""Call an ASGI app directly, the way uvicorn would, with no HTTP client in between.

The in-process numbers measure the app and its middleware, not a socket: every request gets a
fresh scope, a ``receive`` that hands over the body once and then waits (as uvicorn's does) until
the response is complete, and a ``send`` that only notes what came back.  The scope says ASGI
spec 2.3, as uvicorn's does, so Starlette's streaming responses run their disconnect listener
exactly as they would under the real server.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: What uvicorn (h11 and httptools alike) puts in ``scope["asgi"]``.
UVICORN_ASGI = {"version": "3.0", "spec_version": "2.3"}


@dataclass(frozen=True)
class Request:
    """One request to replay many times."""

    method: str
    path: str
    headers: tuple[tuple[bytes, bytes], ...] = ()
    body: bytes = b""
    query_string: bytes = b""

    def scope(self) -> Scope:
        return {
            "type": "http",
            "asgi": dict(UVICORN_ASGI),
            "http_version": "1.1",
            "method": self.method,
            "scheme": "http",
            "path": self.path,
            "raw_path": self.path.encode("ascii"),
            "query_string": self.query_string,
            "root_path": "",
            "headers": list(self.headers),
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8000),
            "state": {},
        }


@dataclass
class Reply:
    """What the app sent back: the status, the body and how many body messages carried it."""

    status: int = 0
    body: bytes = b""
    body_messages: int = 0
    headers: tuple[tuple[bytes, bytes], ...] = ()
    """Kept, like the body, only when asked for."""

    def header(self, name: bytes) -> bytes | None:
        return next((value for key, value in self.headers if key.lower() == name), None)


class UnexpectedReply(RuntimeError):
    """The app answered something other than what the benchmark expects; numbers would lie."""


async def call(app: ASGIApp, request: Request, *, keep_body: bool = False) -> Reply:
    """Run one request through ``app`` and return what it sent."""
    reply = Reply()
    done = asyncio.Event()
    body_given = False

    async def receive() -> Message:
        nonlocal body_given
        if not body_given:
            body_given = True
            return {"type": "http.request", "body": request.body, "more_body": False}
        # Like uvicorn: nothing more arrives until the response is over (or the client leaves).
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            reply.status = int(message["status"])
            if keep_body:
                reply.headers = tuple(message.get("headers", ()))
        elif kind == "http.response.body":
            reply.body_messages += 1
            if keep_body:
                reply.body += message.get("body", b"")
            if not message.get("more_body", False):
                done.set()

    await app(request.scope(), receive, send)
    return reply


class Lifespan:
    """Runs an app's lifespan (startup on enter, shutdown on exit), as a server would."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app
        self._inbox: asyncio.Queue[Message] = asyncio.Queue()
        self._outbox: asyncio.Queue[Message] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Lifespan:
        scope: Scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"},
                        "state": {}}

        async def serve() -> None:
            await self._app(scope, self._inbox.get, self._outbox.put)

        self._task = asyncio.create_task(serve())
        await self._inbox.put({"type": "lifespan.startup"})
        await self._expect("lifespan.startup.complete")
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        traceback: TracebackType | None) -> None:
        await self._inbox.put({"type": "lifespan.shutdown"})
        await self._expect("lifespan.shutdown.complete")
        if self._task is not None:
            await self._task

    async def _expect(self, kind: str) -> None:
        message = await asyncio.wait_for(self._outbox.get(), timeout=30)
        if message["type"] != kind:
            raise RuntimeError(f"lifespan: expected {kind}, got {message!r}")

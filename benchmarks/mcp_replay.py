"""The SDK's exact answers, replayed, to time the MCP parsing without the SDK's noise.

One ``tools/call`` through the real SDK costs around a millisecond and varies by hundreds of
microseconds from call to call, which buries a cost of a few microseconds.  So the exchanges are
first captured from the real SDK app (request body in, ASGI messages out), then a stub app
replays them byte for byte: it reads the request body the way the SDK does and sends the same
``http.response.start`` and body messages.  The middleware sees exactly what it sees in front of
the SDK; the difference between the wrapped and the bare stub is its own cost.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.routing import Route

from asgi_driver import ASGIApp, Message, Receive, Reply, Request, Scope, Send


@dataclass(frozen=True)
class Exchange:
    request: Request
    response: tuple[Message, ...]

    def reply(self) -> Reply:
        """The captured answer as :func:`asgi_driver.call` would have returned it."""
        reply = Reply()
        for message in self.response:
            if message["type"] == "http.response.start":
                reply.status = int(message["status"])
            elif message["type"] == "http.response.body":
                reply.body_messages += 1
                reply.body += message.get("body", b"")
        return reply


async def capture(app: ASGIApp, request: Request) -> Exchange:
    """Run ``request`` through the real ``app`` (lifespan already running) and keep its answer."""
    sent: list[Message] = []
    body_given = False

    async def receive() -> Message:
        nonlocal body_given
        if not body_given:
            body_given = True
            return {"type": "http.request", "body": request.body, "more_body": False}
        # A JSON-mode answer never waits for the client again; nothing more ever arrives.
        raise RuntimeError("the app asked for more of the request than there is")

    async def send(message: Message) -> None:
        copied = dict(message)
        if "headers" in copied:
            copied["headers"] = list(copied["headers"])
        sent.append(copied)

    await app(request.scope(), receive, send)
    return Exchange(request, tuple(sent))


class ReplayApp:
    """Answers each captured request with the captured messages (keyed by request body)."""

    def __init__(self, exchanges: list[Exchange]) -> None:
        self._answers = {exchange.request.body: exchange.response for exchange in exchanges}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        for answer in self._answers[body]:
            await send(dict(answer))


def replay_app(exchanges: list[Exchange], path: str) -> Starlette:
    """:class:`ReplayApp` at ``path`` of a Starlette app, the shape of the SDK's own app.

    The peers are added to a Starlette app; every variant of the replayed run, the bare one
    included, gets this same routing in front of the stub.
    """
    return Starlette(routes=[Route(path, endpoint=ReplayApp(exchanges))])

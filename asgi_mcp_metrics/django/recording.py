"""Recording from inside Django when no ``MetricsMiddleware`` wraps the application.

Under WSGI (or under ASGI without :func:`asgi_mcp_metrics.django.get_asgi_application`) there is
no outer ASGI layer, so the Django middleware reports each request itself - but it counts
nothing on its own.  What Django does (response start, body chunks, the end of a stream, a
client that left, an error) is replayed as ASGI messages *through* ``MetricsMiddleware``: one
instance per Django middleware, whose coroutine for a request is stepped by hand, event by
event, as Django produces them.  Exclusions, labels, outcomes, streams and every observation are
therefore decided by the same code as under ASGI, and both paths produce the same series.

The replayed app only ever waits for the next Django event, so the middleware's coroutine never
waits on the event loop and can be driven from synchronous code.

What cannot be seen from here: bytes as the server writes them (a streaming response ends when
the server took its last chunk; a client that left is noticed when the server closes the
response early), the request body as it arrives (its ``Content-Length`` stands in for it) and
the MCP messages inside the bodies.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine, Generator, Iterator
from typing import Any

from django.http import HttpRequest, HttpResponseBase, StreamingHttpResponse
from prometheus_client import CollectorRegistry

from ..config import Settings
from ..middleware import MetricsMiddleware
from ..routing import ROUTE_KEY
from ..types import Message, Receive, Scope, Send
from .routes import request_route

_EXCHANGE_KEY = "asgi_mcp_metrics.django.exchange"
# Stands in for body bytes the middleware only takes the length of (MCP parsing is off here).
_ZEROS = bytes(1 << 20)
# A Content-Length is only a claim: replaying it is bounded (1024 messages) so that a forged
# header cannot cost time.  Larger bodies are recorded as this size, far above the top bucket.
MAX_REPLAYED_BODY_BYTES = 1 << 30


class _Disconnect:
    """Tells the replayed app that the client has gone."""


class _Finished:
    """Tells the replayed app that the response is complete."""


_DISCONNECT = _Disconnect()
_FINISHED = _Finished()
Event = Message | _Disconnect | _Finished | BaseException | None
"""What the driver hands the replayed app; None starts the coroutine."""


class _NextEvent:
    """Awaited by the replayed app: suspends the coroutine until the driver resumes it."""

    def __await__(self) -> Generator[_NextEvent, Event, Event]:
        event = yield self
        return event


class DirectRecorder:
    """Feeds Django requests through ``MetricsMiddleware``."""

    def __init__(self, settings: Settings, registry: CollectorRegistry | None) -> None:
        # MCP messages are parsed from the ASGI byte stream, which does not exist here.  The
        # identity and trace context are published for the length of an ASGI call in a
        # ContextVar; a replay may end in another context (a stream consumed in a worker
        # thread), so they stay with the ASGI path.
        self._middleware = MetricsMiddleware(
            _replayed_app, registry=registry,
            settings=settings.replace(mcp_parsing="off", identity="off", identity_resolver=None,
                                      audit_log=False))

    def begin(self, request: HttpRequest) -> DirectExchange | None:
        """Start measuring ``request``; None if that failed (the request goes on unmeasured)."""
        try:
            return DirectExchange(self._middleware, request)
        except Exception:
            self.internal_error("django_request")
            return None

    def internal_error(self, where: str) -> None:
        self._middleware.recorder.internal_error(where)


async def _replayed_app(scope: Scope, receive: Receive, send: Send) -> None:
    """Plays back what Django did, one event at a time, as the driver hands events over."""
    while (await receive()).get("more_body"):
        pass
    while True:
        event = await _NextEvent()
        if isinstance(event, _Finished):
            return
        if isinstance(event, _Disconnect):
            await receive()  # the driver's receive now answers http.disconnect
            return
        if isinstance(event, BaseException):
            raise event
        if event is not None:
            await send(event)


class DirectExchange:
    """One Django request/response, replayed through the middleware as it happens."""

    __slots__ = ("_coroutine", "_recorder", "_request_chunks", "scope")

    def __init__(self, middleware: MetricsMiddleware, request: HttpRequest) -> None:
        self._recorder = middleware.recorder
        self._request_chunks = _body_messages("http.request", _content_length(request))
        self.scope: Scope = {
            "type": "http", "method": request.method or "GET", "scheme": request.scheme,
            "path": request.path, "root_path": "", "query_string": b"", "headers": [],
        }
        self._coroutine: Coroutine[Any, Event, None] | None = middleware(
            self.scope, self._receive, self._send)
        self._resume(None)

    def failed(self, error: BaseException) -> None:
        """The middleware chain raised instead of returning a response."""
        self._resume(error)

    def respond(self, request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
        """The view's response is ready; a streaming one is measured until it is consumed."""
        try:
            route = request_route(request)
            if route is not None:
                self.scope[ROUTE_KEY] = route
            content_type = response.get("Content-Type", "")
            self._resume({"type": "http.response.start", "status": response.status_code,
                          "headers": [(b"content-type", content_type.encode("latin-1"))]})
            if isinstance(response, StreamingHttpResponse) and not _is_file(response):
                content = response.streaming_content
                # Django closes whatever it is given as content when the response is closed.
                response.streaming_content = (
                    _CountedAsyncIterator(self, content) if response.is_async
                    else _CountedIterator(self, content))
                return response
            if isinstance(response, StreamingHttpResponse):
                body = _body_messages("http.response.body", _declared_length(response))
            else:
                body = [{"type": "http.response.body", "body": response.content}]
            for message in body:
                self._resume(message)
        except Exception:
            self._recorder.internal_error("django_response")
        self._resume(_FINISHED)
        return response

    def chunk(self, chunk: bytes) -> None:
        self._resume({"type": "http.response.body", "body": chunk, "more_body": True})

    def end(self, error: BaseException | None, *, consumed: bool) -> None:
        """The streaming content ended: consumed to the end, failed, or closed before."""
        if consumed:
            self._resume({"type": "http.response.body", "body": b""})
            self._resume(_FINISHED)
        elif error is not None:
            self._resume(error)
        else:
            self._resume(_DISCONNECT)

    async def _receive(self) -> Message:
        if self._request_chunks:
            return self._request_chunks.pop(0)
        return {"type": "http.disconnect"}

    async def _send(self, message: Message) -> None:
        pass

    def _resume(self, event: Event | None) -> None:
        coroutine = self._coroutine
        if coroutine is None:
            return
        try:
            suspended = coroutine.send(event)
        except StopIteration:
            self._coroutine = None
            return
        except BaseException as error:
            self._coroutine = None
            if error is not event:  # the view's own error comes back through the middleware
                self._recorder.internal_error("django_replay")
            return
        if not isinstance(suspended, _NextEvent):
            # The middleware waited on something else than the replayed app: it cannot be
            # driven by hand any more.  Nothing is recorded for this request.
            self._coroutine = None
            coroutine.close()
            self._recorder.internal_error("django_replay")


class _CountedContent:
    """Passes a streaming response's chunks through, replaying each, and reports its end.

    Django closes the response once the server is done with it; content that was not consumed
    to the end by then was abandoned by the client.  Should nobody close it (a cancelled ASGI
    task does not), the end is reported when the response is garbage collected.
    """

    def __init__(self, exchange: DirectExchange, content: Any) -> None:
        self._exchange = exchange
        self._content = content
        self._ended = False

    def close(self) -> None:
        self._end(None, consumed=False)

    def __del__(self) -> None:
        self._end(None, consumed=False)

    def _stopped(self, error: BaseException) -> None:
        """Iteration raised: the end of the content, or a failure while producing it."""
        if isinstance(error, (StopIteration, StopAsyncIteration)):
            self._end(None, consumed=True)
        else:
            self._end(error, consumed=False)

    def _end(self, error: BaseException | None, *, consumed: bool) -> None:
        if self._ended:
            return
        self._ended = True
        if isinstance(error, asyncio.CancelledError):
            error = None  # the ASGI handler cancels the response when the client leaves
        self._exchange.end(error, consumed=consumed)


class _CountedIterator(_CountedContent):
    """Synchronous content: WSGI, or a sync iterator under ASGI."""

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        try:
            chunk: bytes = next(self._content)
        except BaseException as error:
            self._stopped(error)
            raise
        self._exchange.chunk(chunk)
        return chunk


class _CountedAsyncIterator(_CountedContent):
    """Asynchronous content (an async generator view) under ASGI."""

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        try:
            chunk: bytes = await self._content.__anext__()
        except BaseException as error:
            self._stopped(error)
            raise
        self._exchange.chunk(chunk)
        return chunk


def _body_messages(kind: str, length: int) -> list[Message]:
    """ASGI body messages of ``length`` bytes, the last one without ``more_body``."""
    messages: list[Message] = []
    length = min(length, MAX_REPLAYED_BODY_BYTES)
    while length > len(_ZEROS):
        messages.append({"type": kind, "body": _ZEROS, "more_body": True})
        length -= len(_ZEROS)
    messages.append({"type": kind, "body": _ZEROS[:length], "more_body": False})
    return messages


def _is_file(response: StreamingHttpResponse) -> bool:
    # A FileResponse may be sent by the server's file wrapper (sendfile) without iterating it;
    # it is measured up to the view's return, its size taken from Content-Length.
    return getattr(response, "file_to_stream", None) is not None


def _content_length(request: HttpRequest) -> int:
    try:
        return max(int(request.META.get("CONTENT_LENGTH") or 0), 0)
    except ValueError:
        return 0


def _declared_length(response: HttpResponseBase) -> int:
    try:
        return max(int(response.get("Content-Length") or 0), 0)
    except ValueError:
        return 0

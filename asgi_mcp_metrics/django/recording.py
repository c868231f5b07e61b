"""Recording from inside Django when no ``MetricsMiddleware`` wraps the application.

Under WSGI (or under ASGI without :func:`asgi_mcp_metrics.django.get_asgi_application`) there is
no outer ASGI layer, so the Django middleware reports each request itself.  It does not count
anything on its own: Django's view of a request (method, route, status, content type, body
sizes, the streaming iterator) is translated into the events of the ASGI middleware's exchange,
whose code decides labels, outcomes, streams and what to observe.  Both paths therefore produce
the same series.

What cannot be seen from here: bytes as the server writes them (a streaming response ends when
the server asked for its last chunk, a client that left is noticed at the next chunk or when
the server closes the response), the request body as received (``Content-Length`` stands in for
it), and the MCP messages inside the bodies.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from time import perf_counter
from typing import Any

from django.http import HttpRequest, HttpResponseBase, StreamingHttpResponse
from prometheus_client import CollectorRegistry

from .. import middleware as asgi_middleware
from ..config import Settings
from ..routing import ROUTE_KEY
from .routes import request_route


async def _never_called(scope: Any, receive: Any, send: Any) -> None:  # pragma: no cover
    raise RuntimeError("the Django middleware records without calling an ASGI app")


class DirectRecorder:
    """Records Django requests through the ASGI middleware's exchange logic."""

    def __init__(self, settings: Settings, registry: CollectorRegistry | None) -> None:
        # MCP messages are parsed from the ASGI byte stream, which does not exist here.
        self._middleware = asgi_middleware.MetricsMiddleware(
            _never_called, registry=registry, settings=settings.replace(mcp_parsing="off"))

    def measures(self, request: HttpRequest) -> bool:
        mw = self._middleware
        path = request.path
        return not (path in mw._excluded or request.method in mw._excluded_methods
                    or (mw._excluded_prefixes and path.startswith(mw._excluded_prefixes)))

    def begin(self, request: HttpRequest) -> DirectExchange | None:
        """Start measuring ``request``; None if that failed (the request goes on unmeasured)."""
        try:
            return DirectExchange(self._middleware, request)
        except Exception:
            self.internal_error("django_request")
            return None

    def internal_error(self, where: str) -> None:
        self._middleware.recorder.internal_error(where)


class DirectExchange:
    """One Django request/response, fed into an ASGI exchange as it happens."""

    __slots__ = ("_exchange", "_finished")

    def __init__(self, middleware: asgi_middleware.MetricsMiddleware,
                 request: HttpRequest) -> None:
        scope = {"type": "http", "method": request.method or "GET", "scheme": request.scheme,
                 "path": request.path, "root_path": ""}
        exchange = asgi_middleware._Exchange(middleware, scope)
        exchange.request_bytes = _content_length(request)
        exchange.active = middleware._active.labels(exchange.method, request.scheme)
        exchange.active.inc()
        self._exchange = exchange
        self._finished = False

    def failed(self, error: BaseException) -> None:
        """The middleware chain raised instead of returning a response."""
        self._finish(error)

    def respond(self, request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
        """The view's response is ready; a streaming one is measured until it is consumed."""
        exchange = self._exchange
        try:
            route = request_route(request)
            if route is not None:
                exchange.scope[ROUTE_KEY] = route
            content_type = response.get("Content-Type", "")
            exchange._start({"type": "http.response.start", "status": response.status_code,
                             "headers": [(b"content-type", content_type.encode("latin-1"))]})
            if isinstance(response, StreamingHttpResponse) and not _is_file(response):
                content = response.streaming_content
                # Django closes what it is given as content when the response is closed.
                response.streaming_content = (
                    _CountedAsyncIterator(self, content) if response.is_async
                    else _CountedIterator(self, content))
                return response
            exchange.response_bytes = _response_size(response)
            exchange.ended = perf_counter()
        except Exception:
            exchange.mw.recorder.internal_error("django_response")
        self._finish(None)
        return response

    def chunk(self, size: int) -> None:
        exchange = self._exchange
        if size:
            exchange.response_bytes += size
            if not exchange.first_byte:
                exchange.first_byte = perf_counter()

    def end(self, error: BaseException | None, *, consumed: bool) -> None:
        """The streaming content ended: consumed to the end, failed, or closed before."""
        exchange = self._exchange
        try:
            if consumed:
                exchange.ended = perf_counter()
            elif error is None:
                exchange._on_disconnect()
        except Exception:
            exchange.mw.recorder.internal_error("django_stream_end")
        self._finish(error)

    def _finish(self, error: BaseException | None) -> None:
        if self._finished:
            return
        self._finished = True
        try:
            self._exchange._finish(error)
        except Exception:
            self._exchange.mw.recorder.internal_error("finish")


class _CountedContent:
    """Passes a streaming response's chunks through, counting them, and reports its end.

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
        except StopIteration:
            self._end(None, consumed=True)
            raise
        except BaseException as error:
            self._end(error, consumed=False)
            raise
        self._exchange.chunk(len(chunk))
        return chunk


class _CountedAsyncIterator(_CountedContent):
    """Asynchronous content (an async generator view) under ASGI."""

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        try:
            chunk: bytes = await self._content.__anext__()
        except StopAsyncIteration:
            self._end(None, consumed=True)
            raise
        except BaseException as error:
            self._end(error, consumed=False)
            raise
        self._exchange.chunk(len(chunk))
        return chunk


def _is_file(response: StreamingHttpResponse) -> bool:
    # A FileResponse may be sent by the server's file wrapper (sendfile) without iterating it;
    # it is measured as a whole response up to the view's return, its size from Content-Length.
    return getattr(response, "file_to_stream", None) is not None


def _content_length(request: HttpRequest) -> int:
    try:
        return max(int(request.META.get("CONTENT_LENGTH") or 0), 0)
    except ValueError:
        return 0


def _response_size(response: HttpResponseBase) -> int:
    if isinstance(response, StreamingHttpResponse):
        try:
            return max(int(response.get("Content-Length") or 0), 0)
        except ValueError:
            return 0
    return len(getattr(response, "content", b""))

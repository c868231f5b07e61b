"""Recording from inside Django when no ``MetricsMiddleware`` wraps the application.

Under WSGI (or under ASGI without :func:`asgi_mcp_metrics.django.get_asgi_application`) there is
no outer ASGI layer, so the Django middleware reports each request itself, into the same
:class:`~asgi_mcp_metrics.http_record.HttpRecord` the ASGI middleware feeds: exclusions,
labels, outcomes, streams and every observation are decided by the same code, and both paths
produce the same series.

What cannot be seen from here: bytes as the server writes them (a streaming response ends when
the server took its last chunk; a client that left is noticed when the server closes the
response early), the request body as it arrives (its ``Content-Length`` stands in for it) and
the MCP messages inside the bodies.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

from django.http import HttpRequest, HttpResponseBase, StreamingHttpResponse
from prometheus_client import CollectorRegistry

from .._binding import get_recorder
from ..config import Settings
from ..http_record import HttpMetrics, HttpRecord
from ..routing import ROUTE_KEY
from .routes import request_route


class DirectRecorder:
    """Records Django requests into :class:`HttpRecord` objects."""

    def __init__(self, settings: Settings, registry: CollectorRegistry | None) -> None:
        # MCP messages are parsed from the ASGI byte stream, which does not exist here; the
        # identity and trace context are published by the ASGI middleware only.
        self._recorder = get_recorder(registry, settings)
        self._http = HttpMetrics(self._recorder, settings)

    def begin(self, request: HttpRequest) -> DirectExchange | None:
        """Start measuring ``request``; None when it is excluded or that failed."""
        try:
            method, path = request.method or "GET", request.path
            if self._http.excluded(method, path):
                return None
            return DirectExchange(self._http, request, method, path)
        except Exception:
            self.internal_error("django_request")
            return None

    def internal_error(self, where: str) -> None:
        self._recorder.internal_error(where)


class DirectExchange:
    """One Django request/response, recorded as it happens."""

    __slots__ = ("_record",)

    def __init__(self, http: HttpMetrics, request: HttpRequest, method: str, path: str) -> None:
        self._record = record = HttpRecord(
            http, {"method": method, "scheme": request.scheme, "path": path})
        record.request_body(_content_length(request))
        record.begin()

    def failed(self, error: BaseException) -> None:
        """The middleware chain raised instead of returning a response."""
        self._finish(error)

    def respond(self, request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
        """The view's response is ready; a streaming one is measured until it is consumed."""
        record = self._record
        try:
            route = request_route(request)
            if route is not None:
                record.scope[ROUTE_KEY] = route
            content_type = response.get("Content-Type", "").encode("latin-1")
            record.response_start(response.status_code,
                                  record.http.stream_kind([(b"content-type", content_type)]))
            if isinstance(response, StreamingHttpResponse) and not _is_file(response):
                content = response.streaming_content
                # Django closes whatever it is given as content when the response is closed.
                response.streaming_content = (
                    _CountedAsyncIterator(self, content) if response.is_async
                    else _CountedIterator(self, content))
                return response
            if isinstance(response, StreamingHttpResponse):
                record.response_body(_declared_length(response))
            else:
                record.response_body(len(response.content))
            record.response_complete()
        except Exception:
            record.http.recorder.internal_error("django_response")
        self._finish(None)
        return response

    def chunk(self, chunk: bytes) -> None:
        try:
            self._record.response_body(len(chunk))
        except Exception:
            self._record.http.recorder.internal_error("django_response")

    def end(self, error: BaseException | None, *, consumed: bool) -> None:
        """The streaming content ended: consumed to the end, failed, or closed before."""
        if consumed:
            self._record.response_complete()
        elif error is None:
            self._record.disconnect()
        self._finish(error)

    def _finish(self, error: BaseException | None) -> None:
        try:
            self._record.finish(error)
        except Exception:
            self._record.http.recorder.internal_error("django_finish")


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

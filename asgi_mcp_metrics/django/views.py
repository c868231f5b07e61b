"""The metrics endpoint and the operator surfaces as Django views, answered by the same ASGI
apps every other adapter serves (one exposition core, one surfaces app)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, TypeVar

import django
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase

from ..exposition import MetricsEndpoint
from ..surfaces.app import Surfaces
from ..types import ASGIApp, Message
from .conf import DjangoConfig, get_config

_apps: dict[type, tuple[DjangoConfig, Any]] = {}
#: The surfaces that answer with a never-ending SSE stream.
STREAMS = ("active_stream", "live")


async def metrics(request: HttpRequest) -> HttpResponseBase:
    """Serve the exposition: auth, OpenMetrics/text negotiation, gzip, ``name[]``, multiprocess."""
    method = request.method or "GET"
    # Django joins repeated headers with "," as HTTP allows; the core expects lower-case names.
    headers = {name.lower(): value for name, value in request.headers.items()}
    answer = await _current_endpoint().answer(
        method, headers, request.META.get("QUERY_STRING", ""))
    response = HttpResponse(b"" if method == "HEAD" else answer.body, status=answer.status)
    for name, value in _headers(answer.headers).items():
        response[name] = value
    return response


async def surface(request: HttpRequest, surface: str) -> HttpResponseBase:
    """Serve one operator surface (``docs/surfaces.md``); its SSE streams need Django on ASGI."""
    surfaces = _current_surfaces()
    if surface not in dict(surfaces.paths.items()):
        return HttpResponse("Not Found\n", status=404, content_type="text/plain; charset=utf-8")
    if surface in STREAMS and not isinstance(request, ASGIRequest):
        # Under WSGI a stream that never ends would hold a worker thread for good.
        return HttpResponse("This stream needs Django served over ASGI.\n", status=501,
                            content_type="text/plain; charset=utf-8")
    return await _answer(surfaces.handler(surface), request)


# A scrape never carries a CSRF token; methods other than GET and HEAD get the core's 405.
# Set as csrf_exempt() does: Django 4.2's decorator would turn the coroutine into a sync view.
metrics.csrf_exempt = True  # type: ignore[attr-defined]
surface.csrf_exempt = True  # type: ignore[attr-defined]


def _current_endpoint() -> MetricsEndpoint:
    return _built(MetricsEndpoint)


def _current_surfaces() -> Surfaces:
    return _built(Surfaces)


BuiltT = TypeVar("BuiltT", MetricsEndpoint, Surfaces)


def _built(kind: type[BuiltT]) -> BuiltT:
    """The app of ``kind`` for the current configuration, built again when it changes."""
    config = get_config()
    cached = _apps.get(kind)
    if cached is None or cached[0] is not config:
        cached = _apps[kind] = (config, kind(registry=config.registry, settings=config.settings))
    app: BuiltT = cached[1]
    return app


async def _answer(app: ASGIApp, request: HttpRequest) -> HttpResponseBase:
    """Run ``app`` for ``request``: a buffered response, or a streaming one for an SSE answer."""
    messages: asyncio.Queue[Message | None] = asyncio.Queue()
    gone = asyncio.Event()
    asked = False

    async def receive() -> Message:
        nonlocal asked
        if not asked:
            asked = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        await messages.put(message)

    async def run() -> None:
        try:
            await app(_scope_of(request), receive, send)
        finally:
            await messages.put(None)

    task = asyncio.ensure_future(run())
    start = await messages.get()
    if start is None:  # pragma: no cover - the apps always answer
        await task
        return HttpResponse(status=500)
    headers = _headers(start["headers"])
    if headers.get("content-type", "").startswith("text/event-stream"):
        return _streaming(start["status"], headers, messages, gone, task, _stream_lifetime())
    chunks = []
    while (message := await messages.get()) is not None:
        chunks.append(message.get("body", b""))
    await task
    response = HttpResponse(b"".join(chunks), status=start["status"])
    for name, value in headers.items():
        response[name] = value
    return response


def _streaming(status: int, headers: dict[str, str], messages: asyncio.Queue[Message | None],
               gone: asyncio.Event, task: asyncio.Future[None],
               lifetime: float | None) -> StreamingHttpResponse:
    async def body() -> AsyncIterator[bytes]:
        loop = asyncio.get_running_loop()
        deadline = None if lifetime is None else loop.time() + lifetime
        try:
            while True:
                left = None if deadline is None else max(deadline - loop.time(), 0.0)
                try:
                    message = await asyncio.wait_for(messages.get(), left)
                except asyncio.TimeoutError:
                    break  # the stream's lifetime is over; EventSource reconnects by itself
                if message is None:
                    break
                yield message.get("body", b"")
                if not message.get("more_body", False):
                    break
        finally:
            gone.set()  # the client left (or the stream ended): the app sees a disconnect
            await asyncio.gather(task, return_exceptions=True)

    response = StreamingHttpResponse(body(), status=status)
    for name, value in headers.items():
        response[name] = value
    return response


def _stream_lifetime() -> float | None:
    """How long an SSE answer may last: without limit from Django 5.0 on, which tells a
    streaming response that its client left; before that, ``10 * sse_heartbeat`` seconds, so a
    stream whose client is gone cannot go on for ever (the client reconnects by itself)."""
    if django.VERSION >= (5, 0):
        return None
    return 10 * get_config().settings.sse_heartbeat


def _headers(raw: Any) -> dict[str, str]:
    combined: dict[str, str] = {}
    for raw_name, raw_value in raw:
        name, value = raw_name.decode("latin-1"), raw_value.decode("latin-1")
        # A Django response holds one value per header; HTTP allows joining repeats with ",".
        combined[name] = f"{combined[name]}, {value}" if name in combined else value
    return combined


def _scope_of(request: HttpRequest) -> dict[str, Any]:
    """An ASGI scope for the core, built the same way under WSGI and ASGI."""
    headers = [(name.lower().encode("latin-1"), value.encode("latin-1"))
               for name, value in request.headers.items()]
    scope: dict[str, Any] = {
        "type": "http",
        "method": request.method,
        "scheme": request.scheme,
        "path": request.path,
        "query_string": request.META.get("QUERY_STRING", "").encode("latin-1"),
        "headers": headers,
    }
    remote = request.META.get("REMOTE_ADDR")
    if remote:
        scope["client"] = (remote, 0)
    return scope

"""Views with exactly known responses, so tests can assert sizes and counts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator

from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    JsonResponse,
    StreamingHttpResponse,
)
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET

EVENT = b"data: tick\n\n"  # 12 bytes
EVENTS = 3
CHUNK = b"0123456789"  # 10 bytes


def item(request: HttpRequest, id: int | str = 0, pk: str = "", tenant: str = "") -> JsonResponse:
    if id == 404:
        raise Http404("no such item")
    return JsonResponse({"id": int(id or pk or 0)})


def archive(request: HttpRequest, year: str) -> HttpResponse:
    return HttpResponse(year)


def events(request: HttpRequest) -> StreamingHttpResponse:
    def stream() -> Iterator[bytes]:
        for _ in range(EVENTS):
            yield EVENT

    return StreamingHttpResponse(stream(), content_type="text/event-stream")


async def async_events(request: HttpRequest) -> StreamingHttpResponse:
    async def stream() -> AsyncIterator[bytes]:
        for _ in range(EVENTS):
            await asyncio.sleep(0)
            yield EVENT

    return StreamingHttpResponse(stream(), content_type="text/event-stream")


async def endless(request: HttpRequest) -> StreamingHttpResponse:
    """One event, then nothing until the client leaves."""

    async def stream() -> AsyncIterator[bytes]:
        yield EVENT
        await asyncio.Event().wait()

    return StreamingHttpResponse(stream(), content_type="text/event-stream")


async def ticking(request: HttpRequest) -> StreamingHttpResponse:
    """Events without end, for as long as they can be sent."""

    async def stream() -> AsyncIterator[bytes]:
        while True:
            yield EVENT
            await asyncio.sleep(0)

    return StreamingHttpResponse(stream(), content_type="text/event-stream")


def download(request: HttpRequest) -> StreamingHttpResponse:
    return StreamingHttpResponse(iter([CHUNK, CHUNK]), content_type="application/octet-stream")


def boom(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("view failed")


def _get_only(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok")


def _upload(request: HttpRequest) -> HttpResponse:
    return HttpResponse(b"x" * len(request.body))


get_only: Callable[[HttpRequest], HttpResponse] = require_GET(_get_only)
upload: Callable[[HttpRequest], HttpResponse] = csrf_exempt(_upload)

"""A JSON API, a legacy regex route, a server-sent event stream and a health check."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

from django.http import Http404, HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse

from .inventory import ITEMS

MAX_EVENTS = 100


def item_list(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"items": list(ITEMS.values())})


def item_detail(request: HttpRequest, item_id: int | str) -> JsonResponse:
    # path() converts the id to int; the legacy re_path() passes the digits as text.
    try:
        return JsonResponse(ITEMS[int(item_id)])
    except KeyError:
        raise Http404("no such item") from None


async def price_events(request: HttpRequest) -> StreamingHttpResponse:
    """``GET /events?count=N``: N price updates as server-sent events, then the stream ends."""
    try:
        count = min(max(int(request.GET.get("count", "3")), 0), MAX_EVENTS)
    except ValueError:
        count = 3
    interval = 0.01

    async def events() -> AsyncIterator[str]:
        for number in range(count):
            item = ITEMS[number % len(ITEMS) + 1]
            yield f"id: {number}\nevent: price\ndata: {json.dumps(item)}\n\n"
            await asyncio.sleep(interval)

    response = StreamingHttpResponse(events(), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    return response


def health(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok\n", content_type="text/plain")

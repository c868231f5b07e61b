"""The metrics endpoint as a Django view, answered by the library's one exposition core."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse

from ..exposition import MetricsEndpoint
from .conf import DjangoConfig, get_config

_endpoint: tuple[DjangoConfig, MetricsEndpoint] | None = None


async def metrics(request: HttpRequest) -> HttpResponse:
    """Serve the exposition: auth, OpenMetrics/text negotiation, gzip, ``name[]``, multiprocess."""
    method = request.method or "GET"
    # Django joins repeated headers with "," as HTTP allows; the core expects lower-case names.
    headers = {name.lower(): value for name, value in request.headers.items()}
    answer = await _current_endpoint().answer(
        method, headers, request.META.get("QUERY_STRING", ""))
    response = HttpResponse(b"" if method == "HEAD" else answer.body, status=answer.status)
    combined: dict[str, str] = {}
    for raw_name, raw_value in answer.headers:
        name, value = raw_name.decode("latin-1"), raw_value.decode("latin-1")
        # A Django response holds one value per header; HTTP allows joining repeats with ",".
        combined[name] = f"{combined[name]}, {value}" if name in combined else value
    for name, value in combined.items():
        response[name] = value
    return response


# A scrape never carries a CSRF token; methods other than GET and HEAD get the core's 405.
# Set as csrf_exempt() does: Django 4.2's decorator would turn the coroutine into a sync view.
metrics.csrf_exempt = True  # type: ignore[attr-defined]


def _current_endpoint() -> MetricsEndpoint:
    global _endpoint
    config = get_config()
    if _endpoint is None or _endpoint[0] is not config:
        _endpoint = (config, MetricsEndpoint(registry=config.registry, settings=config.settings))
    return _endpoint[1]

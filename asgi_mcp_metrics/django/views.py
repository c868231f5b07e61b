"""The metrics endpoint as a Django view, answered by the library's one exposition core."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse

from ..exposition import MetricsEndpoint
from .conf import DjangoConfig, get_config

_endpoint: tuple[DjangoConfig, MetricsEndpoint] | None = None


async def metrics(request: HttpRequest) -> HttpResponse:
    """Serve the exposition: auth, OpenMetrics/text negotiation, gzip, ``name[]``, multiprocess."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        sent.append(message)

    await _current_endpoint()(_scope_of(request), receive, send)
    start, body = sent[0], b"".join(m.get("body", b"") for m in sent[1:])
    response = HttpResponse(body, status=start["status"])
    combined: dict[str, str] = {}
    for raw_name, raw_value in start["headers"]:
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

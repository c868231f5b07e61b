"""One HTTP request, stream or websocket as the metrics see it, whatever front end feeds it.

:class:`HttpRecord` holds the per-request bookkeeping - start, body bytes, request or stream,
the end and its reason - and writes every HTTP observation.  The ASGI exchange
(:mod:`.middleware`) feeds it from ASGI messages; the Django path (:mod:`.django.recording`)
calls it directly with what Django did.  Both therefore produce the same series by the same
code.  :class:`HttpMetrics` is what a front end shares between its records: the metric families
and the settings that decide what is measured and what is a stream.
"""

from __future__ import annotations

import asyncio
from collections.abc import MutableMapping, Sequence
from time import perf_counter
from typing import Any

from .config import Settings
from .recorder import Recorder
from .routing import route_label
from .surfaces.paths import surface_paths
from .writers import HistogramWriter, value_of

_KNOWN_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "QUERY"})
_STATUS_TEXT = {status: str(status) for status in range(100, 600)}
_UNSEEN: Any = object()
_Finished = tuple[HistogramWriter, HistogramWriter]
_StreamEnd = tuple[HistogramWriter, Any]
_MAX_CONTENT_TYPES = 256

#: ``stream_end_reason`` values.
COMPLETED = "completed"
CLIENT_DISCONNECT = "client_disconnect"
SERVER_ERROR = "server_error"


class HttpMetrics:
    """The HTTP metric families of one front end, and the settings that shape its records."""

    __slots__ = ("active", "active_values", "duration", "excluded_methods", "excluded_paths",
                 "excluded_prefixes", "finished", "first_byte", "inflight", "kinds", "recorder",
                 "request_size", "request_sizes", "response_size", "response_sizes",
                 "stream_duration", "stream_ends", "stream_gauges", "stream_types",
                 "streams_active", "streams_total", "time_to_first_byte")

    def __init__(self, recorder: Recorder, settings: Settings) -> None:
        self.recorder = recorder
        recorder.enable("http")
        exact = {settings.metrics_path, *surface_paths(settings)}
        prefixes = []
        for path in settings.exclude_paths:
            if path.endswith("*"):
                prefixes.append(path[:-1])
            else:
                exact.add(path)
        self.excluded_paths = frozenset(exact)
        self.excluded_prefixes = tuple(prefixes)
        self.excluded_methods = frozenset(m.upper() for m in settings.exclude_methods)
        self.stream_types = frozenset(t.lower().encode("latin-1")
                                      for t in settings.stream_content_types)
        self.duration = recorder["http_server_request_duration_seconds"]
        self.active = recorder["http_server_active_requests"]
        self.request_size = recorder["http_server_request_body_size_bytes"]
        self.response_size = recorder["http_server_response_body_size_bytes"]
        self.first_byte = recorder["http_server_stream_time_to_first_byte_seconds"]
        self.streams_active = recorder["http_server_streams_active"]
        self.stream_duration = recorder["http_server_stream_duration_seconds"]
        self.streams_total = recorder["http_server_streams_total"]
        #: The in-flight table of the operator surfaces; None when that surface is off.
        self.inflight = (recorder.inflight
                         if settings.surfaces and settings.surfaces_active else None)
        #: ``(method, route, status, error_type)`` -> the duration and body-size writers of a
        #: finished request: one look-up per request instead of one per family.
        self.finished: dict[tuple[str, str, str, str], _Finished] = {}
        #: ``(method, route)`` -> the request-size writer, and a stream's response-size writer.
        self.request_sizes: dict[tuple[str, str], HistogramWriter] = {}
        self.response_sizes: dict[tuple[str, str], HistogramWriter] = {}
        #: ``(route, kind)`` -> the open streams' gauge value, and the time-to-first-byte
        #: writer; ``(route, kind, end_reason)`` -> the duration writer and counter value.
        self.stream_gauges: dict[tuple[str, str], Any] = {}
        self.time_to_first_byte: dict[tuple[str, str], HistogramWriter] = {}
        self.stream_ends: dict[tuple[str, str, str], _StreamEnd] = {}
        #: ``(method, scheme)`` -> the in-flight gauge's value (see :func:`.writers.value_of`).
        self.active_values: dict[tuple[str, str], Any] = {}
        #: Response ``Content-Type`` values seen -> their stream kind (an app sends a few).
        self.kinds: dict[bytes, str | None] = {}

    def finished_children(self, key: tuple[str, str, str, str]) -> _Finished:
        """The request-duration and response-size writers of a request's outcome, ``key``:
        ``(method, route, status, error_type)``."""
        children = self.finished.get(key)
        if children is None:
            method, route = key[0], key[1]
            children = (HistogramWriter(self.duration.labels(*key)),
                        HistogramWriter(self.response_size.labels(method, route)))
            self.finished[key] = children
        return children

    def request_size_writer(self, method: str, route: str) -> HistogramWriter:
        """The request-size writer (made at the first request with a body: only those have a
        request size, so no empty series appears for routes that never get one)."""
        return _writer(self.request_sizes, self.request_size, (method, route))

    def response_size_writer(self, method: str, route: str) -> HistogramWriter:
        """The response-size writer of a stream (a request's comes with its duration's)."""
        return _writer(self.response_sizes, self.response_size, (method, route))

    def stream_gauge(self, route: str, kind: str) -> Any:
        """The value of ``streams_active`` for streams of this route and kind."""
        return _value(self.stream_gauges, self.streams_active, (route, kind))

    def first_byte_writer(self, route: str, kind: str) -> HistogramWriter:
        """The time-to-first-byte writer (made at the first stream that sends a byte)."""
        return _writer(self.time_to_first_byte, self.first_byte, (route, kind))

    def stream_end(self, route: str, kind: str, reason: str) -> _StreamEnd:
        """An ended stream's duration writer and ``streams_total`` value."""
        key = (route, kind, reason)
        children = self.stream_ends.get(key)
        if children is None:
            children = self.stream_ends[key] = (
                HistogramWriter(self.stream_duration.labels(*key)),
                value_of(self.streams_total.labels(*key)))
        return children

    def active_value(self, method: str, scheme: str) -> Any:
        """The in-flight gauge value of requests with this method and scheme."""
        return _value(self.active_values, self.active, (method, scheme))

    def excluded(self, method: str, path: str) -> bool:
        """Requests the settings leave unmeasured (the metrics path among them)."""
        if path in self.excluded_paths or method in self.excluded_methods:
            return True
        prefixes = self.excluded_prefixes
        return path.startswith(prefixes) if prefixes else False

    def stream_kind(self, headers: Sequence[tuple[bytes, bytes]]) -> str | None:
        """``sse`` when the response's content type is one of ``stream_content_types``."""
        if self.stream_types:
            for name, value in headers:
                # Only a 12-byte name can be ``content-type``: most names skip lower().
                if name == b"content-type" or (len(name) == 12 and name.lower() == b"content-type"):
                    kind: str | None = self.kinds.get(value, _UNSEEN)
                    if kind is _UNSEEN:
                        media = value.split(b";", 1)[0].strip().lower()
                        kind = "sse" if media in self.stream_types else None
                        if len(self.kinds) < _MAX_CONTENT_TYPES:
                            self.kinds[value] = kind
                    return kind
        return None


class HttpRecord:
    """One request (or stream) from its start to its end, and what has been seen of it."""

    __slots__ = ("aborted", "active", "disconnected", "ended", "http", "method", "request_bytes",
                 "response_bytes", "root_path", "route", "scope", "started", "status",
                 "stream_kind")

    def __init__(self, http: HttpMetrics, scope: MutableMapping[str, Any]) -> None:
        self.http = http
        self.scope = scope
        self.started = perf_counter()
        self.root_path = scope.get("root_path", "")
        self.status = 0
        self.request_bytes = 0
        self.response_bytes = 0
        self.ended = 0.0
        self.disconnected = False
        self.aborted = False  # the client left before the response started
        self.stream_kind: str | None = None
        self.route = ""  # known once the response starts as a stream
        self.method = "_OTHER"
        self.active: Any = None

    def begin(self) -> None:
        """An HTTP request starts: it is in flight until its response starts as a stream or ends."""
        scope = self.scope
        http = self.http
        method = scope["method"]
        method = self.method = method if method in _KNOWN_METHODS else "_OTHER"
        scheme = scope.get("scheme", "http")
        active = http.active_values.get((method, scheme))
        if active is None:
            active = http.active_value(method, scheme)
        self.active = active
        active.inc(1)
        if http.inflight is not None:
            http.inflight.add(self)

    def request_body(self, size: int) -> None:
        self.request_bytes += size

    def response_start(self, status: int, stream_kind: str | None) -> None:
        self.status = status
        if stream_kind is not None:
            # A stream leaves the in-flight gauge and the request histogram at once.
            self.active.inc(-1)
            self.become_stream(stream_kind)

    def accept_websocket(self) -> None:
        """A websocket is a stream from its ``websocket.accept`` on."""
        self.status = 101
        self.become_stream("websocket")

    def become_stream(self, kind: str) -> None:
        self.stream_kind = kind
        self.route = self._route()
        self.http.stream_gauge(self.route, kind).inc(1)

    def refine_stream(self, kind: str) -> None:
        """The body said more precisely what this stream is (a legacy MCP /sse stream)."""
        current = self.stream_kind
        if current is not None and kind != current:
            stream_gauge = self.http.stream_gauge
            stream_gauge(self.route, current).inc(-1)
            stream_gauge(self.route, kind).inc(1)
            self.stream_kind = kind

    def response_body(self, size: int) -> None:
        if size:
            if not self.response_bytes and self.stream_kind is not None:
                self.http.first_byte_writer(self.route, self.stream_kind).observe(
                    perf_counter() - self.started)
            self.response_bytes += size

    def response_complete(self) -> None:
        """The last body byte went out: the request's duration ends here."""
        if not self.ended:
            self.ended = perf_counter()

    def disconnect(self) -> bool:
        """The client left; True the first time, and only before the response was complete."""
        if self.ended or self.disconnected:
            return False
        self.disconnected = True
        self.aborted = not self.status
        return True

    def finish(self, error: BaseException | None) -> float:
        """The app is done (``error`` if it raised): record the request; returns its end time."""
        http = self.http
        if http.inflight is not None:
            http.inflight.remove(self)
        ended = self.ended or perf_counter()
        method = self.method
        if self.stream_kind is not None:
            self.end_stream(error, ended)
            route = self.route
            response_size = http.response_size_writer(method, route)
        else:
            self.active.inc(-1)
            status = self.status
            route = route_label(self.scope, self.root_path, status)
            if error is None and status and not self.aborted:
                text = _STATUS_TEXT.get(status) or str(status)
                key = (method, route, text, text if status >= 500 else "")
            else:
                key = (method, route, *self._outcome(error))
            duration, response_size = http.finished.get(key) or http.finished_children(key)
            recorder = http.recorder
            duration.observe(ended - self.started,
                             recorder.exemplar() if recorder.exemplars else None)
        # Like the semantic conventions' body-size metrics, a request without a body has no
        # request size (GETs would otherwise fill the zero bucket, at a cost per request).
        if self.request_bytes:
            http.request_size_writer(method, route).observe(self.request_bytes)
        response_size.observe(self.response_bytes)
        return ended

    def end_stream(self, error: BaseException | None, ended: float) -> None:
        """An HTTP stream or a websocket ends: why, and how long it was open."""
        kind = self.stream_kind
        if kind is None:
            return
        if self.disconnected:
            reason = CLIENT_DISCONNECT
        elif error is not None:
            reason = SERVER_ERROR
        else:
            reason = COMPLETED
        http = self.http
        route = self.route
        http.stream_gauge(route, kind).inc(-1)
        duration, total = http.stream_end(route, kind, reason)
        duration.observe(ended - self.started)
        total.inc(1)

    def _route(self) -> str:
        return route_label(self.scope, self.root_path, self.status)

    def _outcome(self, error: BaseException | None) -> tuple[str, str]:
        """``(http_response_status_code, error_type)`` of a finished request."""
        status = self.status
        if self.aborted or (not status and isinstance(error, asyncio.CancelledError)):
            # The client left before any response: nginx's 499, and a reason that says so.
            # Whatever the app sends afterwards reaches nobody; the mcp SDK, for one, answers a
            # body cut short with a 500, which is no server error.
            return "499", CLIENT_DISCONNECT
        if status:
            text = _STATUS_TEXT.get(status) or str(status)
            if error is not None and not self.ended:
                return text, _error_name(error, self.disconnected)
            return text, (text if status >= 500 else "")
        if error is not None:
            return "500", _error_name(error, False)
        return "500", "no_response"


def _writer(writers: dict[tuple[str, str], HistogramWriter], family: Any,
            key: tuple[str, str]) -> HistogramWriter:
    """The writer of ``family``'s child ``key``, kept in ``writers``."""
    writer = writers.get(key)
    if writer is None:
        writer = writers[key] = HistogramWriter(family.labels(*key))
    return writer


def _value(values: dict[tuple[str, str], Any], family: Any, key: tuple[str, str]) -> Any:
    """The value of the counter or gauge ``family``'s child ``key``, kept in ``values``."""
    value = values.get(key)
    if value is None:
        value = values[key] = value_of(family.labels(*key))
    return value


def _error_name(error: BaseException, disconnected: bool) -> str:
    if disconnected:
        return CLIENT_DISCONNECT
    return type(error).__qualname__

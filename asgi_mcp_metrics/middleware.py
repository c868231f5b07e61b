"""``MetricsMiddleware``: pure ASGI, requests and long-lived streams.

The middleware only watches: it passes every ASGI message through unchanged, in order, without
reading the request body ahead of the app, and never raises into the app.  All per-request
state lives in one small :class:`_Exchange` object per request.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from time import perf_counter
from typing import Any, Protocol

from prometheus_client import CollectorRegistry

from .audit import reset_traceparent, set_traceparent, traceparent_from_scope
from .config import Settings
from .identity import publish_request, reset_identity
from .recorder import Recorder, get_recorder
from .routing import route_label
from .surfaces.paths import surface_paths
from .types import ASGIApp, Message, Receive, Scope, Send

#: Set on every scope the middleware measures, so inner layers (the Django middleware, the
#: mcp SDK adapter) know the request is already counted.
OBSERVED_KEY = "asgi_mcp_metrics.observed"

#: An app (or a route) can mark its response as a stream by setting this scope key to a stream
#: kind before it sends ``http.response.start``; see :func:`mark_stream`.
STREAM_KEY = "asgi_mcp_metrics.stream"

_KNOWN_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "QUERY"})
_STATUS_TEXT = {status: str(status) for status in range(100, 600)}
_FINAL_EXTENSIONS = frozenset({"http.response.pathsend", "http.response.zerocopysend"})


def mark_stream(scope: Scope, kind: str = "stream") -> None:
    """Tell the middleware that this request's response is a long-lived stream."""
    scope[STREAM_KEY] = kind


class ExchangeObserver(Protocol):
    """What a protocol observer (the MCP tracker) sees of one HTTP exchange."""

    @property
    def stream_kind(self) -> str | None:
        """A more specific stream kind learned from the body (e.g. a legacy MCP /sse stream)."""

    def request_body(self, chunk: bytes, more_body: bool) -> None: ...

    def response_start(self, status: int, headers: Sequence[tuple[bytes, bytes]]) -> str | None:
        """Returns a stream kind when the observer knows what this stream is."""

    def response_body(self, chunk: bytes, more_body: bool) -> None: ...

    def disconnect(self) -> None: ...

    def finish(self, *, error: BaseException | None, disconnected: bool, ended: float) -> None: ...


class ObserverFactory(Protocol):
    def observe(self, scope: Scope, started: float) -> ExchangeObserver | None: ...

    def shutdown(self) -> None:
        """The app's lifespan ended: whatever is still open ends now."""


class MetricsMiddleware:
    """Records HTTP requests, streams and (with MCP parsing on) MCP traffic of ``app``.

    Options are keyword-only; see ``docs/configuration.md``.  Pass ``settings=`` to use a
    prepared :class:`~asgi_mcp_metrics.config.Settings`, or options as keywords (they are
    merged over the environment and configuration files).
    """

    def __init__(self, app: ASGIApp, *, registry: CollectorRegistry | None = None,
                 settings: Settings | None = None, **options: Any) -> None:
        if settings is None:
            settings = Settings.load(overrides=options)
        elif options:
            settings = settings.replace(**options)
        self.app = app
        self.settings = settings
        self.recorder: Recorder = get_recorder(registry, settings)
        self.recorder.enable("http")
        exact = {settings.metrics_path, *surface_paths(settings)}
        prefixes = []
        for path in settings.exclude_paths:
            if path.endswith("*"):
                prefixes.append(path[:-1])
            else:
                exact.add(path)
        self._excluded = frozenset(exact)
        self._excluded_prefixes = tuple(prefixes)
        self._excluded_methods = frozenset(m.upper() for m in settings.exclude_methods)
        self._stream_types = frozenset(t.lower().encode("latin-1")
                                       for t in settings.stream_content_types)
        self._observers: tuple[ObserverFactory, ...] = tuple(self._make_observers())
        # The in-flight table of the operator surfaces; None when that surface is off.
        self._inflight = (self.recorder.inflight
                          if settings.surfaces and settings.surfaces_active else None)
        self._identity_enabled = (settings.identity != "off"
                                  or settings.identity_resolver is not None)
        rec = self.recorder
        self._duration = rec["http_server_request_duration_seconds"]
        self._active = rec["http_server_active_requests"]
        self._request_size = rec["http_server_request_body_size_bytes"]
        self._response_size = rec["http_server_response_body_size_bytes"]
        self._first_byte = rec["http_server_stream_time_to_first_byte_seconds"]
        self._streams_active = rec["http_server_streams_active"]
        self._stream_duration = rec["http_server_stream_duration_seconds"]
        self._streams_total = rec["http_server_streams_total"]

    def _make_observers(self) -> list[ObserverFactory]:
        if self.settings.mcp_parsing == "off":
            return []
        from .mcp.tracker import McpTracker

        return [McpTracker(self.recorder, self.settings)]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            path = scope["path"]
            root_path = scope.get("root_path")
            if root_path and path.startswith(root_path):
                # Paths are excluded as the app routes them: behind a proxy prefix too.
                path = path[len(root_path):]
            if (path in self._excluded or scope["method"] in self._excluded_methods
                    or (self._excluded_prefixes and path.startswith(self._excluded_prefixes))):
                await self.app(scope, receive, send)
                return
            await _Exchange(self, scope).run(receive, send)
        elif kind == "websocket":
            await _WebSocket(self, scope).run(receive, send)
        elif kind == "lifespan" and self._observers:
            await self._lifespan(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def watch_send(message: Message) -> None:
            if message.get("type") in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
                for factory in self._observers:
                    try:
                        factory.shutdown()
                    except Exception:
                        self.recorder.internal_error("shutdown")
            await send(message)

        await self.app(scope, receive, watch_send)


class _Exchange:
    """One HTTP request/response (or stream) and what has been seen of it so far."""

    __slots__ = ("aborted", "active", "disconnected", "ended", "method", "mw", "observers",
                 "receive", "request_bytes", "response_bytes", "root_path", "route", "scope",
                 "send", "started", "status", "stream_kind")

    def __init__(self, mw: MetricsMiddleware, scope: Scope) -> None:
        self.mw = mw
        self.scope = scope
        scope[OBSERVED_KEY] = True
        self.started = perf_counter()
        method = scope["method"]
        self.method = method if method in _KNOWN_METHODS else "_OTHER"
        self.root_path = scope.get("root_path", "")
        self.status = 0
        self.request_bytes = 0
        self.response_bytes = 0
        self.ended = 0.0
        self.disconnected = False
        self.aborted = False  # the client left before the response started
        self.stream_kind: str | None = None
        self.route = ""  # known once the response starts as a stream
        self.active: Any = None
        observers = []
        for factory in mw._observers:
            try:
                observer = factory.observe(scope, self.started)
            except Exception:
                mw.recorder.internal_error("observe")
                observer = None
            if observer is not None:
                observers.append(observer)
        self.observers: list[ExchangeObserver] = observers

    async def run(self, receive: Receive, send: Send) -> None:
        self.receive = receive
        self.send = send
        self.active = self.mw._active.labels(self.method, self.scope.get("scheme", "http"))
        self.active.inc()
        mw = self.mw
        inflight = mw._inflight
        if inflight is not None:
            inflight.add(self)
        identity = (publish_request(self.scope, mw.settings, mw.recorder)
                    if mw._identity_enabled else None)
        trace = (set_traceparent(traceparent_from_scope(self.scope))
                 if mw.settings.audit_log else None)
        error: BaseException | None = None
        try:
            await mw.app(self.scope, self._receive, self._send)
        except BaseException as exc:
            error = exc
            raise
        finally:
            if inflight is not None:
                inflight.remove(self)
            if identity is not None:
                reset_identity(identity)
            if trace is not None:
                reset_traceparent(trace)
            try:
                self._finish(error)
            except Exception:
                mw.recorder.internal_error("finish")

    async def _receive(self) -> Message:
        message = await self.receive()
        try:
            kind = message["type"]
            if kind == "http.request":
                body = message.get("body", b"")
                self.request_bytes += len(body)
                if self.observers:
                    more = message.get("more_body", False)
                    for observer in self.observers:
                        observer.request_body(body, more)
            elif kind == "http.disconnect":
                self._on_disconnect()
        except Exception:
            self.mw.recorder.internal_error("receive")
        return message

    async def _send(self, message: Message) -> None:
        final = False
        try:
            kind = message["type"]
            if kind == "http.response.body":
                body = message.get("body", b"")
                final = not message.get("more_body", False)
                if self.observers:
                    for observer in self.observers:
                        observer.response_body(body, not final)
                    if self.stream_kind is not None:
                        self._refine_stream(self.stream_kind)
                if body:
                    if not self.response_bytes and self.stream_kind is not None:
                        self.mw._first_byte.labels(self.route, self.stream_kind).observe(
                            perf_counter() - self.started)
                    self.response_bytes += len(body)
            elif kind == "http.response.start":
                self._start(message)
            elif kind in _FINAL_EXTENSIONS:
                final = True
        except Exception:
            self.mw.recorder.internal_error("send")
        try:
            await self.send(message)
        except Exception:
            # Servers raise from send() once the client is gone (ASGI spec 2.4).
            self._on_disconnect()
            raise
        if final and not self.ended:
            self.ended = perf_counter()

    def _on_disconnect(self) -> None:
        if self.ended or self.disconnected:
            return
        self.disconnected = True
        self.aborted = not self.status
        for observer in self.observers:
            observer.disconnect()

    def _start(self, message: Message) -> None:
        self.status = status = message["status"]
        headers = message.get("headers", ())
        kind = self.scope.get(STREAM_KEY)
        for observer in self.observers:
            observer_kind = observer.response_start(status, headers)
            if observer_kind is not None:
                kind = observer_kind
        if kind is None and self.mw._stream_types:
            for name, value in headers:
                if name.lower() == b"content-type":
                    media = value.split(b";", 1)[0].strip().lower()
                    if media in self.mw._stream_types:
                        kind = "sse"
                    break
        if kind is not None:
            self._become_stream(str(kind))

    def _become_stream(self, kind: str) -> None:
        """A stream leaves the in-flight gauge and the request histogram at once."""
        self.stream_kind = kind
        self.active.dec()
        self.route = self._route()
        self.mw._streams_active.labels(self.route, kind).inc()

    def _refine_stream(self, current: str) -> None:
        for observer in self.observers:
            kind = observer.stream_kind
            if kind is not None and kind != current:
                gauge = self.mw._streams_active
                gauge.labels(self.route, current).dec()
                gauge.labels(self.route, kind).inc()
                self.stream_kind = current = kind

    def _route(self) -> str:
        return route_label(self.scope, self.root_path, self.status)

    def _finish(self, error: BaseException | None) -> None:
        mw = self.mw
        ended = self.ended or perf_counter()
        route = self.route if self.stream_kind is not None else self._route()
        elapsed = ended - self.started
        if self.stream_kind is not None:
            if self.disconnected:
                reason = "client_disconnect"
            elif error is not None:
                reason = "server_error"
            else:
                reason = "completed"
            mw._streams_active.labels(route, self.stream_kind).dec()
            mw._stream_duration.labels(route, self.stream_kind, reason).observe(elapsed)
            mw._streams_total.labels(route, self.stream_kind, reason).inc()
        else:
            self.active.dec()
            status, error_type = self._outcome(error)
            mw._duration.labels(self.method, route, status, error_type).observe(elapsed)
        # Like the semantic conventions' body-size metrics, a request without a body has no
        # request size (GETs would otherwise fill the zero bucket, at a cost per request).
        if self.request_bytes:
            mw._request_size.labels(self.method, route).observe(self.request_bytes)
        mw._response_size.labels(self.method, route).observe(self.response_bytes)
        for observer in self.observers:
            try:
                observer.finish(error=error, disconnected=self.disconnected, ended=ended)
            except Exception:
                mw.recorder.internal_error("observer_finish")

    def _outcome(self, error: BaseException | None) -> tuple[str, str]:
        """``(http_response_status_code, error_type)`` of a finished request."""
        status = self.status
        if self.aborted or (not status and isinstance(error, asyncio.CancelledError)):
            # The client left before any response: nginx's 499, and a reason that says so.
            # Whatever the app sends afterwards reaches nobody; the mcp SDK, for one, answers a
            # body cut short with a 500, which is no server error.
            return "499", "client_disconnect"
        if status:
            text = _STATUS_TEXT.get(status) or str(status)
            if error is not None and not self.ended:
                return text, _error_name(error, self.disconnected)
            return text, (text if status >= 500 else "")
        if error is not None:
            return "500", _error_name(error, False)
        return "500", "no_response"


def _error_name(error: BaseException, disconnected: bool) -> str:
    if disconnected:
        return "client_disconnect"
    return type(error).__qualname__


class _WebSocket:
    """A websocket connection, counted as a stream of kind ``websocket``."""

    __slots__ = ("accepted", "closed_by_client", "mw", "root_path", "route", "scope", "send",
                 "started")

    def __init__(self, mw: MetricsMiddleware, scope: Scope) -> None:
        self.mw = mw
        self.scope = scope
        scope[OBSERVED_KEY] = True
        self.started = perf_counter()
        self.accepted = False
        self.closed_by_client = False
        self.route = ""
        self.root_path = scope.get("root_path", "")

    async def run(self, receive: Receive, send: Send) -> None:
        self.send = send

        async def watch_receive() -> Message:
            message = await receive()
            if message.get("type") == "websocket.disconnect":
                self.closed_by_client = True
            return message

        error: BaseException | None = None
        try:
            await self.mw.app(self.scope, watch_receive, self._send)
        except BaseException as exc:
            error = exc
            raise
        finally:
            if self.accepted:
                try:
                    if self.closed_by_client:
                        reason = "client_disconnect"
                    elif error is not None:
                        reason = "server_error"
                    else:
                        reason = "completed"
                    route = self.route or route_label(self.scope, self.root_path, 101)
                    elapsed = perf_counter() - self.started
                    self.mw._streams_active.labels(route, "websocket").dec()
                    self.mw._stream_duration.labels(route, "websocket", reason).observe(elapsed)
                    self.mw._streams_total.labels(route, "websocket", reason).inc()
                except Exception:
                    self.mw.recorder.internal_error("websocket")

    async def _send(self, message: Message) -> None:
        if message.get("type") == "websocket.accept" and not self.accepted:
            try:
                self.route = route_label(self.scope, self.root_path, 101)
                self.mw._streams_active.labels(self.route, "websocket").inc()
                self.accepted = True
            except Exception:
                self.mw.recorder.internal_error("websocket")
        await self.send(message)

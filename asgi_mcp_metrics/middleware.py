"""``MetricsMiddleware``: pure ASGI, requests and long-lived streams.

The middleware only watches: it passes every ASGI message through unchanged, in order, without
reading the request body ahead of the app, and never raises into the app.  All per-request
state lives in one small :class:`_Exchange` object per request: the request's
:class:`~.http_record.HttpRecord`, fed from the ASGI messages.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextvars import Token
from time import perf_counter
from typing import TYPE_CHECKING, Any, Protocol

from prometheus_client import CollectorRegistry

from ._binding import bind, caller
from .config import Settings, configure
from .http_record import HttpMetrics, HttpRecord
from .identity import publish_request, reset_identity
from .recorder import Recorder
from .trace_context import reset_traceparent, set_traceparent, traceparent_from_scope
from .types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from .config import MiddlewareOptions

#: Set on every scope the middleware measures, so inner layers (the Django middleware, the
#: mcp SDK adapter) know the request is already counted.
OBSERVED_KEY = "asgi_mcp_metrics.observed"

#: An app (or a route) can mark its response as a stream by setting this scope key to a stream
#: kind before it sends ``http.response.start``; see :func:`mark_stream`.
STREAM_KEY = "asgi_mcp_metrics.stream"

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

    def response_body(self, chunk: bytes, more_body: bool) -> bool:
        """False once the observer wants nothing more of this response body."""

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
    merged over the environment and configuration files).  The endpoint's options (``auth*``,
    ``gzip``, ``render_offload_seconds``) raise ``TypeError`` here: they belong to
    ``MetricsEndpoint`` or ``instrument()``.
    """

    def __init__(self, app: ASGIApp, *, registry: CollectorRegistry | None = None,
                 settings: Settings | None = None,
                 **options: Unpack[MiddlewareOptions]) -> None:
        configured = configure(settings, options, "MetricsMiddleware()")
        settings = configured.settings
        self.app = app
        self.settings = settings
        self.recorder: Recorder = bind(registry, configured,
                                       f"MetricsMiddleware() at {caller()}").recorder
        self.http = HttpMetrics(self.recorder, settings)
        #: The protocol observer (the MCP tracker), or None when MCP parsing is off.
        self._observer: ObserverFactory | None = self._make_observer()
        self._identity_enabled = (settings.identity != "off"
                                  or settings.identity_resolver is not None)

    def _make_observer(self) -> ObserverFactory | None:
        if self.settings.mcp_parsing == "off":
            return None
        from .mcp.tracker import McpTracker

        return McpTracker(self.recorder, self.settings)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            path = scope["path"]
            root_path = scope.get("root_path")
            if root_path and path.startswith(root_path):
                # Paths are excluded as the app routes them: behind a proxy prefix too.
                path = path[len(root_path):]
            if self.http.excluded(scope["method"], path):
                await self.app(scope, receive, send)
                return
            # (The exchange is driven from here, not from a coroutine of its own: a stream
            # holds this frame for as long as it lasts, and one frame is enough.)
            exchange = _Exchange(self, scope, receive, send)
            identity, trace = exchange.enter()
            error: BaseException | None = None
            try:
                await self.app(scope, exchange, exchange._send)
            except BaseException as exc:
                error = exc
                raise
            finally:
                exchange.leave(error, identity, trace)
        elif kind == "websocket":
            await _WebSocket(self, scope).run(receive, send)
        elif kind == "lifespan" and self._observer is not None:
            await self._lifespan(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def watch_send(message: Message) -> None:
            observer = self._observer
            if observer is not None and message.get("type") in ("lifespan.shutdown.complete",
                                                                "lifespan.shutdown.failed"):
                try:
                    observer.shutdown()
                except Exception:
                    self.recorder.internal_error("shutdown")
            await send(message)

        await self.app(scope, receive, watch_send)


class _Exchange(HttpRecord):
    """One HTTP request/response (or stream): its record, fed from the ASGI messages."""

    __slots__ = ("body_observer", "mw", "observer", "receive", "send")

    def __init__(self, mw: MetricsMiddleware, scope: Scope, receive: Receive,
                 send: Send) -> None:
        HttpRecord.__init__(self, mw.http, scope)
        self.mw = mw
        self.receive = receive
        self.send = send
        scope[OBSERVED_KEY] = True
        observer: ExchangeObserver | None = None
        if mw._observer is not None:
            try:
                observer = mw._observer.observe(scope, self.started)
            except Exception:
                mw.recorder.internal_error("observe")
        self.observer = observer
        #: The observer while it reads the response body.
        self.body_observer = observer

    def enter(self) -> tuple[Token[Any] | None, Token[Any] | None]:
        """The request starts: in flight, and its identity and trace published for the app
        (the tokens that undo them)."""
        self.begin()
        mw = self.mw
        identity = (publish_request(self.scope, mw.settings, mw.recorder)
                    if mw._identity_enabled else None)
        trace = (set_traceparent(traceparent_from_scope(self.scope))
                 if mw.settings.audit_log or mw.recorder.exemplars else None)
        return identity, trace

    def leave(self, error: BaseException | None, identity: Token[Any] | None,
              trace: Token[Any] | None) -> None:
        """The app returned (``error`` if it raised): record the request, undo ``enter``."""
        mw = self.mw
        if identity is not None:
            reset_identity(identity)
        try:
            # Still inside the request's trace context: the observations' exemplars.
            ended = self.finish(error)
            observer = self.observer
            if observer is not None:
                # An app may keep this exchange's receive() after it is over (the mcp SDK
                # does, for a session's POSTs): the observer's state goes now.
                self.observer = self.body_observer = None
                try:
                    observer.finish(error=error, disconnected=self.disconnected, ended=ended)
                except Exception:
                    mw.recorder.internal_error("observer_finish")
        except Exception:
            mw.recorder.internal_error("finish")
        if trace is not None:
            reset_traceparent(trace)

    async def __call__(self) -> Message:
        """The app's ``receive`` is the exchange itself: a bound method would be one more
        object held for as long as the request lasts - and under load an object that outlives
        a young-generation collection costs the collector more than the call that made it (see
        docs/performance.md, "Under load").  (``receive``, not ``send``: calling an instance
        costs a little more than calling a bound method, and an app receives once or twice
        per request where it may send many times.)"""
        message = await self.receive()
        try:
            kind = message["type"]
            if kind == "http.request":
                body = message.get("body", b"")
                self.request_bytes += len(body)
                if self.observer is not None:
                    self.observer.request_body(body, message.get("more_body", False))
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
                observer = self.body_observer
                if observer is not None:
                    if not observer.response_body(body, not final):
                        # Nothing more to read: the events that follow skip the observer.
                        self.body_observer = None
                    if self.stream_kind is not None:
                        refined = observer.stream_kind
                        if refined is not None:
                            self.refine_stream(refined)
                if body:
                    if self.stream_kind is None or self.response_bytes:
                        self.response_bytes += len(body)  # (response_body, minus the call)
                    else:
                        self.response_body(len(body))  # a stream's first bytes are timed
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
        if final:
            self.response_complete()

    def _on_disconnect(self) -> None:
        if self.disconnect() and self.observer is not None:
            self.observer.disconnect()

    def _start(self, message: Message) -> None:
        if self.status or self.stream_kind is not None:
            # A second start is the app's bug (the server refuses it); counting it again
            # would take the in-flight gauge below zero and leave a stream open for ever.
            return
        status = message["status"]
        headers = message.get("headers", ())
        kind = self.scope.get(STREAM_KEY)
        if self.observer is not None:
            observer_kind = self.observer.response_start(status, headers)
            if observer_kind is not None:
                kind = observer_kind
        if kind is None:
            kind = self.http.stream_kind(headers)
        self.response_start(status, None if kind is None else str(kind))


class _WebSocket(HttpRecord):
    """A websocket connection, counted as a stream of kind ``websocket``, and in flight (in
    the operator surfaces' table) from its handshake to its end."""

    __slots__ = ("mw", "send")

    def __init__(self, mw: MetricsMiddleware, scope: Scope) -> None:
        HttpRecord.__init__(self, mw.http, scope)
        self.mw = mw
        self.method = "GET"  # the opening handshake's
        scope[OBSERVED_KEY] = True

    async def run(self, receive: Receive, send: Send) -> None:
        self.send = send

        async def watch_receive() -> Message:
            message = await receive()
            if message.get("type") == "websocket.disconnect":
                self.disconnect()
            return message

        inflight = self.http.inflight
        if inflight is not None:
            inflight.add(self)
        error: BaseException | None = None
        try:
            await self.mw.app(self.scope, watch_receive, self._send)
        except BaseException as exc:
            error = exc
            raise
        finally:
            if inflight is not None:
                inflight.remove(self)
            if self.stream_kind is not None:
                try:
                    self.end_stream(error, perf_counter())
                except Exception:
                    self.mw.recorder.internal_error("websocket")

    async def _send(self, message: Message) -> None:
        if message.get("type") == "websocket.accept" and self.stream_kind is None:
            try:
                self.accept_websocket()
            except Exception:
                self.mw.recorder.internal_error("websocket")
        await self.send(message)

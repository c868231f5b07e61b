"""One ASGI app serving every operator surface, behind the metrics endpoint's auth.

Each surface is also reachable on its own through :meth:`Surfaces.handler`, which is how the
Starlette and Django adapters route them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from prometheus_client import CollectorRegistry

from .. import multiprocess
from .._binding import bind, caller
from ..config import Settings, configure
from ..exposition import (
    ALLOWED_METHODS,
    Exposition,
    _header_map,
    authorize,
    scrape_source,
)
from ..identity import resolve_identity
from ..types import Receive, Scope, Send
from .health import health
from .history import History, history_of
from .inflight import Identify, snapshot
from .paths import SurfacePaths
from .sse import Viewers, serve_stream
from .totals import FilterError, RowReader, document, totals
from .ui import page

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from ..config import SurfacesOptions

__all__ = ["SURFACES", "SurfaceEndpoint", "Surfaces"]

Handler = Callable[[Scope, Receive, Send], Awaitable[None]]
#: The runtime switches: each covers the paths of its surface.
SURFACES = ("ui", "active", "totals", "health")
_SWITCH_OF = {"ui": "ui", "history": "ui", "live": "ui", "active": "active",
              "active_stream": "active", "totals": "totals", "health": "health"}
MAX_RANGE_SECONDS = 7 * 86400
RETRY_AFTER_SECONDS = 5


class Surfaces:
    """The surfaces of one registry, configured by the same settings as the endpoint."""

    def __init__(self, *, registry: CollectorRegistry | None = None,
                 settings: Settings | None = None,
                 **options: Unpack[SurfacesOptions]) -> None:
        configured = configure(settings, options, "Surfaces()")
        settings = configured.settings
        self.settings = settings
        self.recorder = bind(registry, configured, f"Surfaces() at {caller()}").recorder
        self.paths = SurfacePaths.of(settings)
        self.viewers = Viewers(settings.sse_max_viewers)
        self.history: History = history_of(self.recorder, seconds=settings.history_seconds,
                                           minutes=settings.history_minutes,
                                           path=settings.history_path)
        self._off: set[str] = set()
        self._identify: Identify | None = None
        if settings.identity != "off" or settings.identity_resolver is not None:
            recorder = self.recorder
            self._identify = lambda scope: resolve_identity(scope, settings, recorder=recorder)
        self._handlers: dict[str, Handler] = {
            "ui": self._ui, "history": self._history, "live": self._live,
            "active": self._active, "active_stream": self._active_stream,
            "totals": self._totals, "health": self._health,
        }
        self._by_path = {path: name for name, path in self.paths.items()}

    # -- switches ------------------------------------------------------------------------------
    def switch(self, surface: str, on: bool) -> None:
        """Switch a surface (``ui``, ``active``, ``totals``, ``health``) off or on again at run
        time; its open SSE streams get a ``disabled`` event and end."""
        if surface not in SURFACES:
            raise ValueError(f"surface must be one of {', '.join(SURFACES)}; got {surface!r}")
        (self._off.discard if on else self._off.add)(surface)

    def is_on(self, surface: str) -> bool:
        return surface not in self._off

    # -- routing -------------------------------------------------------------------------------
    def routes(self) -> list[tuple[str, str, SurfaceEndpoint]]:
        """``(name, path, handler)`` of every configured surface."""
        return [(name, path, self.handler(name)) for name, path in self.paths.items()]

    def handler(self, name: str) -> SurfaceEndpoint:
        """The ASGI app of one surface (an object, so that routers treat it as an ASGI app)."""
        return SurfaceEndpoint(self, name)

    async def serve(self, name: str, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer one request for the surface ``name``: method, switch, then the surface."""
        if scope["type"] != "http":
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1000})
            return
        if scope["method"] not in ALLOWED_METHODS:
            allow = ", ".join(ALLOWED_METHODS).encode("ascii")
            await _send(scope, send, Exposition.plain_text(
                405, "Method Not Allowed\n", [(b"allow", allow)]))
            return
        # A switched-off stream still opens, to tell its viewer with a `disabled` event.
        if not self.is_on(_SWITCH_OF[name]) and name not in ("active_stream", "live"):
            await _send(scope, send, _json(503, {"disabled": True}))
            return
        await self._handlers[name](scope, receive, send)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve every surface from one app (plain ASGI): routed on the exact path."""
        if scope["type"] == "lifespan":
            from ..exposition import _serve_lifespan

            await _serve_lifespan(receive, send)
            return
        name = self._by_path.get(scope.get("path", ""))
        if name is None:
            if scope["type"] == "http":
                await _send(scope, send, Exposition.plain_text(404, "Not Found\n"))
            return
        await self.serve(name, scope, receive, send)

    # -- auth ----------------------------------------------------------------------------------
    async def _denied(self, scope: Scope) -> Exposition | None:
        s = self.settings
        verdict = await authorize(_header_map(scope["headers"]),
                                  bearer_token=s.auth_bearer_token,
                                  basic_username=s.auth_basic_username,
                                  basic_password=s.auth_basic_password, auth=s.auth)
        return None if verdict.allowed else verdict.denial()

    async def _guarded(self, scope: Scope, send: Send,
                       build: Callable[[dict[str, list[str]]], Exposition]) -> None:
        denial = await self._denied(scope)
        if denial is not None:
            await _send(scope, send, denial)
            return
        try:
            answer = build(_query(scope))
        except Exception:
            self.recorder.internal_error("surfaces.answer")
            answer = Exposition.plain_text(500, "Internal Server Error\n")
        await _send(scope, send, answer)

    # -- surfaces ------------------------------------------------------------------------------
    async def _ui(self, scope: Scope, receive: Receive, send: Send) -> None:
        def build(query: dict[str, list[str]]) -> Exposition:
            self.history.ensure_started()
            return _body(200, b"text/html; charset=utf-8", page())

        await self._guarded(scope, send, build)

    async def _history(self, scope: Scope, receive: Receive, send: Send) -> None:
        def build(query: dict[str, list[str]]) -> Exposition:
            self.history.ensure_started()
            text = _last(query, "range") or "300"
            try:
                seconds = int(text)
            except ValueError:
                seconds = 0
            if not 2 <= seconds <= MAX_RANGE_SECONDS:
                return _json(400, {"error": f"range must be a whole number of seconds "
                                            f"from 2 to {MAX_RANGE_SECONDS}"})
            return _json(200, {**self.history.window(seconds), **self._tables()})

        await self._guarded(scope, send, build)

    async def _live(self, scope: Scope, receive: Receive, send: Send) -> None:
        denial = await self._denied(scope)
        if denial is not None:
            await _send(scope, send, denial)
            return
        self.history.ensure_started()
        history = self.history

        def payload(previous: int | None, current: int) -> dict[str, Any]:
            fresh = 1 if previous is None else max(current - previous, 1)
            samples = list(history.fine)[-(fresh + 1 + 10):]
            points = history.derive(samples, 10)
            points = {"t": points["t"][-fresh:],
                      "series": {k: v[-fresh:] for k, v in points["series"].items()}}
            return {"version": current, "previous": previous, "points": points,
                    **self._tables()}

        await self._stream(scope, receive, send, "ui", lambda: history.version, payload)

    async def _active(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._guarded(scope, send,
                            lambda query: _json(200, self._active_document()))

    async def _active_stream(self, scope: Scope, receive: Receive, send: Send) -> None:
        denial = await self._denied(scope)
        if denial is not None:
            await _send(scope, send, denial)
            return
        inflight = self.recorder.inflight

        def payload(previous: int | None, current: int) -> dict[str, Any]:
            return {**self._active_document(), "version": current, "previous": previous}

        await self._stream(scope, receive, send, "active", lambda: inflight.version, payload)

    def _active_document(self) -> dict[str, Any]:
        return {**snapshot(self.recorder.inflight, self._identify), "viewers": self.viewers.count,
                "scope": _worker_scope()}

    async def _stream(self, scope: Scope, receive: Receive, send: Send, surface: str,
                      version: Callable[[], int],
                      payload: Callable[[int | None, int], Any]) -> None:
        if not self.viewers.enter():
            await _send(scope, send, Exposition.plain_text(
                503, "Too many viewers\n", [(b"retry-after", str(RETRY_AFTER_SECONDS).encode())]))
            return
        try:
            await serve_stream(receive, send, version=version, payload=payload,
                               enabled=lambda: self.is_on(surface),
                               interval=self.settings.sse_interval,
                               heartbeat=self.settings.sse_heartbeat)
        finally:
            self.viewers.leave()

    async def _totals(self, scope: Scope, receive: Receive, send: Send) -> None:
        def build(query: dict[str, list[str]]) -> Exposition:
            form = _last(query, "format") or "json"
            if form not in ("json", "yaml"):
                return _json(400, {"error": "format must be json or yaml"})
            filters = {key: values[-1] for key, values in query.items() if values}
            window = _last(query, "window")
            try:
                if window is None:
                    answer = totals(scrape_source(self.recorder.registry),
                                    namespace=self.recorder.namespace, filters=filters)
                else:
                    answer = self._window_totals(window, filters)
            except FilterError as error:
                return _json(400, {"error": str(error)})
            answer["scope"] = _worker_scope()
            if form == "json":
                return _json(200, answer)
            try:
                import yaml
            except ImportError:
                return Exposition.plain_text(
                    406, "format=yaml needs PyYAML: pip install 'asgi-mcp-metrics[yaml]'\n")
            text = yaml.safe_dump(answer, sort_keys=False, allow_unicode=True)
            return _body(200, b"application/yaml; charset=utf-8", text.encode("utf-8"))

        await self._guarded(scope, send, build)

    def _window_totals(self, window: str, filters: dict[str, str]) -> dict[str, Any]:
        try:
            seconds = int(window)
        except ValueError:
            seconds = 0
        if not 1 <= seconds <= MAX_RANGE_SECONDS:
            raise FilterError(f"window must be a whole number of seconds from 1 to "
                              f"{MAX_RANGE_SECONDS}")
        self.history.ensure_started()
        reader = RowReader(self.recorder.namespace)
        now = (self.history.clock(), reader.read(scrape_source(self.recorder.registry)))
        found = self.history.totals_since(seconds, now)
        rows, since = (found[1], found[0]) if found is not None else (RowReader.empty(), None)
        return {**document(rows, filters), "window": {"seconds": seconds, "since": since}}

    async def _health(self, scope: Scope, receive: Receive, send: Send) -> None:
        query = _query(scope)
        details = "details" in query
        if details:
            denial = await self._denied(scope)
            if denial is not None:
                await _send(scope, send, denial)
                return
        try:
            status, body = health(self.recorder, self.settings.health_min_backends,
                                  details=details)
            answer = _json(status, body)
        except Exception:
            self.recorder.internal_error("surfaces.health")
            answer = Exposition.plain_text(500, "Internal Server Error\n")
        await _send(scope, send, answer)

    def _tables(self) -> dict[str, Any]:
        """The dashboard's tables: top tools and the backends."""
        tree = totals(scrape_source(self.recorder.registry), namespace=self.recorder.namespace)
        by_tool: dict[str, float] = {}
        errors: dict[str, float] = {}
        for backend in tree["tool_calls"].get("backends", {}).values():
            for tool, node in backend.get("tools", {}).items():
                by_tool[tool] = by_tool.get(tool, 0) + node["total"]
                failed = sum(v for k, v in node.get("outcomes", {}).items() if k != "ok")
                errors[tool] = errors.get(tool, 0) + failed
        top = sorted(by_tool.items(), key=lambda item: (-item[1], item[0]))[:10]
        _, state = health(self.recorder, self.settings.health_min_backends, details=True)
        return {
            "top_tools": [{"tool": t, "calls": n, "errors": errors[t]} for t, n in top],
            "backends": state["backends"],
            "scope": _worker_scope(),
        }


class SurfaceEndpoint:
    """One surface as an ASGI app."""

    __slots__ = ("name", "surfaces")

    def __init__(self, surfaces: Surfaces, name: str) -> None:
        self.surfaces = surfaces
        self.name = name

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.surfaces.serve(self.name, scope, receive, send)


def _worker_scope() -> str:
    if multiprocess.directory() is not None:
        return "all workers"
    return f"one worker (pid {os.getpid()})"


def _query(scope: Scope) -> dict[str, list[str]]:
    return parse_qs(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)


def _last(query: dict[str, list[str]], key: str) -> str | None:
    values = query.get(key)
    return values[-1] if values else None


def _body(status: int, content_type: bytes, body: bytes) -> Exposition:
    headers = [(b"content-type", content_type), (b"cache-control", b"no-cache"),
               (b"content-length", str(len(body)).encode("ascii"))]
    return Exposition(status, headers, body)


def _json(status: int, document: Any) -> Exposition:
    return _body(status, b"application/json", json.dumps(document).encode("utf-8"))


async def _send(scope: Scope, send: Send, answer: Exposition) -> None:
    await send({"type": "http.response.start", "status": answer.status,
                "headers": answer.headers})
    body = b"" if scope.get("method") == "HEAD" else answer.body
    await send({"type": "http.response.body", "body": body})

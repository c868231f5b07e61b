"""One exposition core: auth, format negotiation, gzip, ``name[]`` filtering, multiprocess.

``authorize`` and ``render`` know nothing about any web framework, so every adapter (a Starlette
route, a Django view, a bare ASGI app) answers a scrape the same way. ``MetricsEndpoint`` is the
ASGI app built on top of them.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import concurrent.futures
import hmac
import inspect
import logging
import os
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import parse_qs

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from . import multiprocess
from ._binding import library_metrics, refresh_callbacks
from .config import AuthCheck, Settings, configure
from .encoder import encode, fast_format
from .types import Receive, Scope, Send

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from .config import EndpointOptions

__all__ = ["AuthResult", "Exposition", "MetricsEndpoint", "authorize", "render", "scrape_source"]

logger = logging.getLogger(__name__)

#: zlib's own default: a 10k-line body compresses in a quarter of level 9's time, 12 % larger.
GZIP_LEVEL = 6
#: A larger body is compressed in the render thread, off the event loop (a 64 KiB body takes
#: about 0.2 ms at level 6 here, handing it to the thread and back about 0.05 ms).
GZIP_IN_LOOP_BYTES = 64 * 1024


REALM = "metrics"
ALLOWED_METHODS = ("GET", "HEAD")
MULTIPROCESS_ENV_VARS = multiprocess.ENV_VARS


@dataclass(frozen=True)
class Exposition:
    """A complete HTTP answer: status, raw header pairs and body."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes

    @classmethod
    def plain_text(
        cls, status: int, text: str, extra_headers: Sequence[tuple[bytes, bytes]] = ()
    ) -> Exposition:
        body = text.encode("utf-8")
        headers = [
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", str(len(body)).encode("ascii")),
            (b"cache-control", b"no-cache"),
            *extra_headers,
        ]
        return cls(status, headers, body)


@dataclass(frozen=True)
class AuthResult:
    """Outcome of the endpoint's auth check: 200 allowed, 401 no credentials, 403 refused."""

    status: int
    challenges: tuple[str, ...] = field(default=())

    @property
    def allowed(self) -> bool:
        return self.status == 200

    def denial(self) -> Exposition:
        """The response to send when the request is not allowed."""
        text = "Unauthorized\n" if self.status == 401 else "Forbidden\n"
        challenge_headers = [(b"www-authenticate", c.encode("ascii")) for c in self.challenges]
        return Exposition.plain_text(self.status, text, challenge_headers)


async def authorize(
    headers: Mapping[str, str],
    *,
    bearer_token: str | None,
    basic_username: str | None,
    basic_password: str | None,
    auth: AuthCheck | None,
) -> AuthResult:
    """Allow the request when any configured check accepts it; no checks configured allows all.

    ``headers`` has lower-case names. A user callable that raises counts as a refusal and is
    logged, never raised. Missing credentials for a configured scheme get 401 with a challenge,
    anything else that is refused gets 403.
    """
    basic = (basic_username, basic_password) if basic_username and basic_password else None
    if bearer_token is None and basic is None and auth is None:
        return AuthResult(200)
    scheme, _, credentials = headers.get("authorization", "").strip().partition(" ")
    scheme, credentials = scheme.lower(), credentials.strip()
    if bearer_token is not None and scheme == "bearer" and _equal(credentials, bearer_token):
        return AuthResult(200)
    if basic is not None and scheme == "basic" and _basic_matches(credentials, *basic):
        return AuthResult(200)
    if auth is not None and await _call_auth(auth, headers):
        return AuthResult(200)
    challenges: tuple[str, ...] = (f'Bearer realm="{REALM}"',) if bearer_token is not None else ()
    challenges += (f'Basic realm="{REALM}"',) if basic is not None else ()
    if challenges and "authorization" not in headers:
        return AuthResult(401, challenges)
    return AuthResult(403)


def _equal(given: str | bytes, expected: str) -> bool:
    # Encode before comparing: compare_digest on bytes is constant-time for any content.
    given_bytes = given.encode("utf-8") if isinstance(given, str) else given
    return hmac.compare_digest(given_bytes, expected.encode("utf-8"))


def _basic_matches(credentials: str, username: str, password: str) -> bool:
    try:
        decoded = base64.b64decode(credentials.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        return False
    given_user, separator, given_password = decoded.partition(b":")
    # Both halves are always compared so timing does not reveal which one was wrong.
    user_ok = _equal(given_user, username)
    password_ok = _equal(given_password, password)
    return bool(separator) and user_ok and password_ok


async def _call_auth(auth: AuthCheck, headers: Mapping[str, str]) -> bool:
    try:
        verdict = auth(headers)
        if inspect.isawaitable(verdict):
            verdict = await verdict
    except Exception:
        logger.exception("metrics endpoint auth callable raised; request refused")
        return False
    # Only a real True opens the endpoint; a stray truthy object must not.
    return verdict is True


#: How long an offloaded render sleeps in each of its pauses (see ``encoder.PAUSE_AFTER_SECONDS``).
RENDER_PAUSE_SECONDS = 0.0003


def render(
    registry: Collector,
    *,
    accept: str,
    accept_encoding: str,
    names: Sequence[str],
    gzip: bool,
    created_series: bool = True,
    reap_dead_workers: bool = True,
    pause: Callable[[], None] | None = None,
) -> Exposition:
    """Render ``registry`` for one scrape.

    With ``PROMETHEUS_MULTIPROC_DIR`` set (read now, not at import) the values written by all
    worker processes are rendered instead of ``registry``: this worker's scrape-time gauges are
    written to its files first, and (``reap_dead_workers``) workers that are gone are dropped
    from the live gauges.  ``created_series=False`` leaves out the ``_created`` samples of every
    counter, histogram and summary.  ``pause`` is called after every slice of rendering of the
    library's own families (see :func:`.encoder.encode`).  The body is gzip-compressed when
    ``gzip`` is set and ``accept_encoding`` takes it.
    """
    exposition = _encoded(registry, accept=accept, names=names, vary_encoding=gzip,
                          created_series=created_series, reap_dead_workers=reap_dead_workers,
                          pause=pause)
    return gzipped(exposition) if gzip and _accepts_gzip(accept_encoding) else exposition


def _encoded(
    registry: Collector,
    *,
    accept: str,
    names: Sequence[str],
    vary_encoding: bool,
    created_series: bool,
    reap_dead_workers: bool,
    pause: Callable[[], None] | None,
) -> Exposition:
    """The uncompressed answer to a scrape; ``vary_encoding``: it could have been compressed."""
    merged = multiprocess.merged_collector(reap=reap_dead_workers, before=lambda:
                                           refresh_callbacks(registry))
    source: Collector = registry if merged is None else merged
    encoder, content_type = choose_encoder(accept)
    fmt = fast_format(encoder)
    if merged is None and not names and fmt is not None and isinstance(registry,
                                                                        CollectorRegistry):
        body = encode(registry, fmt, library_metrics(registry), encoder,
                      created=created_series,
                      wrap=None if created_series else lambda c: _Samples(c, None, False),
                      pause=pause)
    else:
        if names or not created_series:
            source = _Samples(source, frozenset(names) or None, created_series)
        body = encoder(source)
    headers = [
        (b"content-type", content_type.encode("ascii")),
        (b"cache-control", b"no-cache"),
        (b"vary", b"Accept, Accept-Encoding" if vary_encoding else b"Accept"),
        (b"content-length", str(len(body)).encode("ascii")),
    ]
    return Exposition(200, headers, body)


def gzipped(exposition: Exposition) -> Exposition:
    """``exposition`` with its body gzip-compressed.

    zlib itself (gzip framing: wbits 31) compresses without holding the GIL, so other threads
    run meanwhile."""
    compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)
    body = compressor.compress(exposition.body) + compressor.flush()
    headers = [pair for pair in exposition.headers if pair[0] != b"content-length"]
    headers += [(b"content-encoding", b"gzip"), (b"content-length", str(len(body)).encode("ascii"))]
    return Exposition(exposition.status, headers, body)


_HAS_CREATED = frozenset({"counter", "histogram", "summary"})


class _Samples(Collector):
    """The samples a scrape asked for: only those named in ``name[]`` (``names`` not None),
    without ``_created`` unless ``created`` is set.

    ``restricted_registry`` would skip collectors that cannot describe themselves, the
    multiprocess collector among them, so the filter runs over a full collect instead.  A
    family that keeps no sample is left out only when ``name[]`` filtered it away.
    """

    def __init__(self, source: Collector, names: frozenset[str] | None, created: bool) -> None:
        self._source = source
        self._names = names
        self._created = created

    def collect(self) -> Iterator[Metric]:
        for metric in self._source.collect():
            keeps_created = self._created or metric.type not in _HAS_CREATED
            if self._names is None and keeps_created:
                yield metric
                continue
            dropped = "" if keeps_created else f"{metric.name}_created"
            samples = [sample for sample in metric.samples if sample.name != dropped
                       and (self._names is None or sample.name in self._names)]
            if samples or self._names is None:
                kept = Metric(metric.name, metric.documentation, metric.type, metric.unit)
                kept.samples = samples
                yield kept


def scrape_source(registry: Collector) -> Collector:
    """What a scrape reads (without reaping): ``registry``, or every worker's values in
    multiprocess mode."""
    merged = multiprocess.merged_collector(reap=False,
                                           before=lambda: refresh_callbacks(registry))
    return registry if merged is None else merged


def _accepts_gzip(accept_encoding: str) -> bool:
    # An explicit "gzip" entry wins over "*"; "q=0" (or a q we cannot read) means "not this one".
    qualities: dict[str, float] = {}
    for item in accept_encoding.split(","):
        coding, *params = (part.strip() for part in item.split(";"))
        quality = next((p[2:] for p in params if p.lower().startswith("q=")), "1")
        try:
            qualities.setdefault(coding.lower(), float(quality))
        except ValueError:
            qualities.setdefault(coding.lower(), 0.0)
    return qualities.get("gzip", qualities.get("*", 0.0)) > 0


class MetricsEndpoint:
    """ASGI app that serves the exposition; the caller's router decides the path.

    Encoding a scrape holds the GIL.  While it takes no more than ``render_offload_seconds`` of
    CPU time it runs on the event loop, in one piece: for a small registry, less work than
    handing it to a thread.  A longer encoding makes the following ones run in the render
    thread (one for the process, at a lower priority on Linux), which pauses after every slice
    of work, so a large registry does not stall the event loop (and, next to a busy route,
    costs its p99 less than on the loop: see ``docs/performance.md``); ``0`` always offloads.
    Compression needs no GIL: a body of :data:`GZIP_IN_LOOP_BYTES` or more is compressed in the
    render thread either way.
    """

    def __init__(self, *, registry: CollectorRegistry | None = None,
                 settings: Settings | None = None,
                 **options: Unpack[EndpointOptions]) -> None:
        """Options (see ``docs/configuration.md``): ``auth_bearer_token``,
        ``auth_basic_username``/``auth_basic_password``, ``auth``, ``gzip`` and
        ``render_offload_seconds``; any other raises ``TypeError``."""
        if registry is not None and not isinstance(registry, CollectorRegistry):
            raise ValueError("registry must be a prometheus_client CollectorRegistry or None")
        settings = configure(settings, options, "MetricsEndpoint()").settings
        auth_bearer_token = settings.auth_bearer_token
        auth_basic_username = settings.auth_basic_username
        auth_basic_password = settings.auth_basic_password
        auth = settings.auth
        gzip = settings.gzip
        self.created_series = settings.created_series
        self.reap_dead_workers = settings.reap_dead_workers
        render_offload_seconds = settings.render_offload_seconds
        self.registry = registry if registry is not None else REGISTRY
        self._bearer_token = auth_bearer_token
        self._basic_username = auth_basic_username
        self._basic_password = auth_basic_password
        self._auth = auth
        self.gzip = gzip
        self.render_offload_seconds = float(render_offload_seconds)
        # Shared across requests on purpose: it is how long rendering this registry takes.
        self._last_render_seconds = 0.0

    def __repr__(self) -> str:
        configured = (("bearer", self._bearer_token), ("basic", self._basic_username))
        schemes = [name for name, value in (*configured, ("callable", self._auth)) if value]
        return (
            f"MetricsEndpoint(auth={schemes!r}, gzip={self.gzip!r}, "
            f"render_offload_seconds={self.render_offload_seconds!r})"
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            answer = await self._answer(scope)
            await send(
                {"type": "http.response.start", "status": answer.status, "headers": answer.headers}
            )
            body = b"" if scope["method"] == "HEAD" else answer.body
            await send({"type": "http.response.body", "body": body})
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1000})
        elif scope["type"] == "lifespan":
            await _serve_lifespan(receive, send)

    async def _answer(self, scope: Scope) -> Exposition:
        return await self.answer(scope["method"], _header_map(scope["headers"]),
                                 scope.get("query_string", b"").decode("latin-1"))

    async def answer(self, method: str, headers: Mapping[str, str],
                     query_string: str) -> Exposition:
        """The complete answer to one scrape, for any framework.

        ``headers`` has lower-case names, repeated headers joined with ``", "``; the body is the
        full exposition even for ``HEAD`` (the caller drops it, keeping ``Content-Length``).
        """
        if method not in ALLOWED_METHODS:
            allow = ", ".join(ALLOWED_METHODS).encode("ascii")
            return Exposition.plain_text(405, "Method Not Allowed\n", [(b"allow", allow)])
        verdict = await authorize(
            headers,
            bearer_token=self._bearer_token,
            basic_username=self._basic_username,
            basic_password=self._basic_password,
            auth=self._auth,
        )
        if not verdict.allowed:
            return verdict.denial()
        names = parse_qs(query_string).get("name[]", [])
        accept = headers.get("accept", "")
        compress = self.gzip and _accepts_gzip(headers.get("accept-encoding", ""))
        try:
            if self._should_offload():
                # The render thread still holds the GIL while it encodes: it gives it up after
                # every slice of work, so the event loop's requests wait for a slice, not the
                # render.
                return await asyncio.get_running_loop().run_in_executor(
                    _render_thread(), self._timed_render, accept, names, compress, _release_gil)
            exposition = self._timed_render(accept, names, False)
            if not compress:
                return exposition
            if len(exposition.body) < GZIP_IN_LOOP_BYTES:
                return gzipped(exposition)
            # zlib runs without the GIL: in the render thread it leaves the event loop free
            # (and, with a CPU to spare, takes none of its time).
            return await asyncio.get_running_loop().run_in_executor(
                _render_thread(), gzipped, exposition)
        except Exception:
            logger.exception("rendering the metrics exposition failed")
            return Exposition.plain_text(500, "Internal Server Error\n")

    def _should_offload(self) -> bool:
        threshold = self.render_offload_seconds
        return threshold == 0 or self._last_render_seconds > threshold

    def _timed_render(self, accept: str, names: list[str], compress: bool,
                      pause: Callable[[], None] | None = None) -> Exposition:
        """The answer, gzip-compressed if ``compress``.

        Only the encoding is timed, which is what holds the GIL, and in this thread's CPU time:
        the pauses of an offloaded render, and the time its thread waits for a CPU, are not
        rendering (counted, they would keep every later render offloaded)."""
        started = time.thread_time()
        try:
            exposition = _encoded(
                self.registry,
                accept=accept,
                names=names,
                vary_encoding=self.gzip,
                created_series=self.created_series,
                reap_dead_workers=self.reap_dead_workers,
                pause=pause,
            )
        finally:
            self._last_render_seconds = time.thread_time() - started
        return gzipped(exposition) if compress else exposition


#: The render thread's niceness on Linux (0 is a normal thread's, 19 the lowest priority).  Not
#: 19: next to busy normal-priority threads or processes the kernel gives a niceness-19 thread
#: about 1/70 of a CPU, so a 10k-series render took over 10 s (a scrape timeout) on a busy
#: 2-CPU machine, and a render preempted while it holds the GIL stalls the event loop until
#: it runs again.  At 10 it gets about a tenth: the app's threads still come first.
RENDER_NICENESS = 10

_render_executor: concurrent.futures.ThreadPoolExecutor | None = None
_render_executor_lock = threading.Lock()


def _render_thread() -> concurrent.futures.ThreadPoolExecutor:
    """The one thread offloaded renders run in, made at the first.

    Its own thread, not the event loop's default executor: its lower priority is no other
    work's, and an app's own ``to_thread`` calls never wait behind a scrape.  When every CPU is
    busy, the kernel runs the app's threads first; gzip (which runs without the GIL) and the
    encoder's slices then take longer, the requests do not.
    """
    global _render_executor
    with _render_executor_lock:
        if _render_executor is None:
            _render_executor = concurrent.futures.ThreadPoolExecutor(
                1, thread_name_prefix="asgi-mcp-metrics-render", initializer=_lower_priority)
        return _render_executor


def _forget_render_thread() -> None:
    # A forked child has the executor but not its thread: it would queue renders for good.
    global _render_executor, _render_executor_lock
    _render_executor = None
    _render_executor_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_render_thread)


def _lower_priority() -> None:
    # On Linux a thread is a task of its own, with its own niceness; elsewhere (or where it is
    # not allowed) the thread keeps the process's priority.
    setpriority = getattr(os, "setpriority", None)
    if setpriority is not None and sys.platform.startswith("linux"):
        try:
            setpriority(os.PRIO_PROCESS, threading.get_native_id(),
                        max(os.getpriority(os.PRIO_PROCESS, 0), RENDER_NICENESS))
        except OSError:
            logger.debug("the render thread keeps the process's priority", exc_info=True)


def _release_gil() -> None:
    """Let the event loop's thread run.  ``sleep(0)`` would give the GIL up only to take it back
    at once, before a waiting thread wakes up; a sleep of its own lets that thread in."""
    time.sleep(RENDER_PAUSE_SECONDS)


def _header_map(raw_headers: Sequence[tuple[bytes, bytes]]) -> dict[str, str]:
    # Repeated headers are joined as HTTP defines; a doubled Authorization then matches nothing.
    headers: dict[str, str] = {}
    for raw_name, raw_value in raw_headers:
        name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return headers


async def _serve_lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return

"""Memory per open MCP session with its GET stream: under uvicorn (RSS) and in-process
(``tracemalloc``, the library's own allocations).

Under uvicorn: the official SDK's streamable HTTP app in its default, stateful mode (JSON
answers to POSTs), bare and wrapped by ``MetricsMiddleware``, one uvicorn process each on
127.0.0.1.  A client in this process opens sessions as the SDK's client does (``initialize``,
``notifications/initialized``) and holds each session's GET stream open on a connection of its
own.  After a warm-up of :data:`WARMUP_SESSIONS` sessions the server's RSS is read from
``/proc``; then N more sessions are opened and RSS is read again: the growth divided by N is
the memory per session, and the instrumented server's minus the bare one's is the library's
share.  The servers are measured one after the other, each with the machine to itself as far
as this benchmark is concerned.

In-process: the same app and sessions driven through ASGI directly, with ``tracemalloc``
snapshots before and after N sessions, filtered to the files under ``asgi_mcp_metrics/``:
the bytes the library itself still holds per session, and the ten lines that hold the most.

Verification: every ``initialize`` must answer a session id and every GET a 200
``text/event-stream``; the instrumented variant's registry must show exactly the open sessions
(``mcp_server_sessions_active``) and their open streams (``http_server_streams_active``).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import resource
import tracemalloc
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import CollectorRegistry

from apps import Variant, sample_total
from asgi_driver import ASGIApp, Lifespan, Message, Request, UnexpectedReply, call
from loadgen import header_value, read_body, request_bytes, status_of
from mcp_app import (
    MCP_BARE,
    build_mcp_variant,
    build_session_app,
    initialize,
    initialized,
    parsed_variant_name,
    session_stream,
)
from server_load import HOST, LoadError, Server, Stack, recorded, running_servers

#: Sessions opened (and kept open) before the first measurement: code paths, caches and
#: allocator pools are warm before anything is counted.
WARMUP_SESSIONS = 50
#: Sessions opened at a time by the client.
CONCURRENCY = 8
LIBRARY_DIR = Path(__file__).resolve().parent.parent / "asgi_mcp_metrics"


def open_sessions_and_streams(registry: CollectorRegistry) -> int:
    """Open sessions plus open streams, as asgi_mcp_metrics' gauges say."""
    return sample_total(registry, "mcp_server_sessions_active", "http_server_streams_active")


def session_variant(name: str, mcp_parsing: str) -> Variant:
    """The stateful SDK app, bare or instrumented; the latter reads its open sessions."""
    return build_mcp_variant(name, mcp_parsing=mcp_parsing, base=build_session_app,
                             recorded=open_sessions_and_streams)


def variant_names(mcp_parsing: str) -> tuple[str, str]:
    return MCP_BARE, parsed_variant_name(mcp_parsing)


def _session_id(status: int, session_id: bytes | None, where: str) -> str:
    if status != 200 or not session_id:
        raise UnexpectedReply(f"{where}: initialize answered {status} without a session id")
    return session_id.decode("ascii")


# -- under uvicorn ---------------------------------------------------------------------------


async def _send(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, port: int,
                request: Request) -> bytes:
    """Send ``request`` and return the response head (the caller reads or keeps the body)."""
    headers = [(name.decode("latin-1"), value.decode("latin-1")) for name, value
               in request.headers if name not in (b"host", b"content-length")]
    writer.write(request_bytes(f"{HOST}:{port}", request.method, request.path, headers,
                               request.body))
    return await reader.readuntil(b"\r\n\r\n")


@dataclass
class _Client:
    """Sessions opened against one server, their GET streams held open."""

    port: int
    streams: list[asyncio.StreamWriter]

    async def open(self, count: int) -> None:
        queue: asyncio.Queue[int] = asyncio.Queue()
        for index in range(count):
            queue.put_nowait(index)
        await asyncio.gather(*(self._worker(queue) for _ in range(CONCURRENCY)))

    async def _worker(self, queue: asyncio.Queue[int]) -> None:
        reader, writer = await asyncio.open_connection(HOST, self.port)
        try:
            while not queue.empty():
                queue.get_nowait()
                head = await _send(reader, writer, self.port, initialize())
                await read_body(reader, head)
                session_id = _session_id(status_of(head), header_value(head, b"mcp-session-id"),
                                         f"port {self.port}")
                head = await _send(reader, writer, self.port, initialized(session_id))
                await read_body(reader, head)
                if status_of(head) != 202:
                    raise UnexpectedReply(f"initialized answered {status_of(head)}")
                await self._hold_stream(session_id)
        finally:
            writer.close()

    async def _hold_stream(self, session_id: str) -> None:
        reader, writer = await asyncio.open_connection(HOST, self.port)
        head = await _send(reader, writer, self.port, session_stream(session_id))
        content_type = header_value(head, b"content-type") or b""
        if status_of(head) != 200 or not content_type.startswith(b"text/event-stream"):
            writer.close()
            raise UnexpectedReply(f"the session's GET answered {head!r}")
        self.streams.append(writer)

    def close(self) -> None:
        for writer in self.streams:
            writer.close()
        self.streams.clear()


def rss_bytes(pid: int) -> int:
    """Resident set size of process ``pid``, from ``/proc``."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise LoadError(f"no VmRSS for process {pid}")


@dataclass(frozen=True)
class ServerMemory:
    """One server's RSS before and after ``sessions`` more sessions, in one round."""

    variant: str
    round: int
    sessions: int
    rss_before: int
    rss_after: int
    recorded: int | None
    internal_errors: int

    @property
    def per_session(self) -> float:
        return (self.rss_after - self.rss_before) / self.sessions


@dataclass(frozen=True)
class ServerMemoryResults:
    runs: list[ServerMemory]
    bare: str
    instrumented: str

    def per_session(self, variant: str) -> list[float]:
        return [run.per_session for run in self.runs if run.variant == variant]

    def library_share(self) -> list[float]:
        """Per round: the instrumented server's growth per session minus the bare one's."""
        return [ours - bare for ours, bare in zip(
            self.per_session(self.instrumented), self.per_session(self.bare), strict=True)]


def _raise_file_limit(needed: int) -> None:
    # Every held stream is a socket here and in the server (which inherits this limit).
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        if hard != resource.RLIM_INFINITY and hard < needed:
            raise LoadError(f"{needed} open files needed, the hard limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


async def _measure_server(server: Server, sessions: int, round_number: int) -> ServerMemory:
    client = _Client(server.port, [])
    try:
        await client.open(WARMUP_SESSIONS)
        # The probe is served after every earlier request: the server is idle when it answers.
        await asyncio.to_thread(recorded, server)
        before = rss_bytes(server.process.pid)
        await client.open(sessions)
        value, errors = await asyncio.to_thread(recorded, server)
        after = rss_bytes(server.process.pid)
        opened = WARMUP_SESSIONS + sessions
        if value is not None and value != 2 * opened:
            raise LoadError(f"{server.variant} shows {value} open sessions and streams; "
                            f"{opened} sessions with a stream each are open")
        return ServerMemory(server.variant, round_number, sessions, before, after, value,
                            errors)
    finally:
        client.close()


def run_server_memory(sessions: int, rounds: int, mcp_parsing: str,
                      stack: Stack) -> ServerMemoryResults:
    """RSS growth per session of the bare and the instrumented SDK app under uvicorn.

    Every round starts a fresh server per variant, one after the other, bare first in even
    rounds and last in odd ones.
    """
    _raise_file_limit(2 * (WARMUP_SESSIONS + sessions) + 256)
    bare, instrumented = variant_names(mcp_parsing)
    runs = []
    for round_number in range(rounds):
        order = (bare, instrumented) if round_number % 2 == 0 else (instrumented, bare)
        for name in order:
            with running_servers("sessions", [name], mcp_parsing, stack) as servers:
                runs.append(asyncio.run(_measure_server(servers[0], sessions, round_number)))
    runs.sort(key=lambda run: run.round)
    return ServerMemoryResults(runs, bare, instrumented)


# -- in-process ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Site:
    where: str
    """file:line under asgi_mcp_metrics/."""
    bytes_per_session: float
    blocks_per_session: float


@dataclass(frozen=True)
class TracedMemory:
    sessions: int
    bytes_per_session: float
    blocks_per_session: float
    top: list[Site]
    recorded: int
    internal_errors: int


class _HeldStream:
    """A session's GET stream, running as a task until :meth:`close`."""

    def __init__(self, app: ASGIApp, request: Request) -> None:
        self.started: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self._closed = asyncio.Event()
        self._request_given = False
        self.task = asyncio.create_task(app(request.scope(), self._receive, self._send))

    async def _receive(self) -> Message:
        # As uvicorn: the (empty) request body first, then nothing until the client leaves.
        if not self._request_given:
            self._request_given = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await self._closed.wait()
        return {"type": "http.disconnect"}

    async def _send(self, message: Message) -> None:
        if message["type"] == "http.response.start" and not self.started.done():
            self.started.set_result(message)

    def close(self) -> None:
        self._closed.set()


async def _open_in_process(app: ASGIApp, count: int, held: list[_HeldStream]) -> None:
    for _ in range(count):
        reply = await call(app, initialize(), keep_body=True)
        session_id = _session_id(reply.status, reply.header(b"mcp-session-id"), "in-process")
        reply = await call(app, initialized(session_id))
        if reply.status != 202:
            raise UnexpectedReply(f"initialized answered {reply.status}")
        stream = _HeldStream(app, session_stream(session_id))
        held.append(stream)
        start = await asyncio.wait_for(stream.started, timeout=30)
        if start["status"] != 200:
            raise UnexpectedReply(f"the session's GET answered {start['status']}")


@contextlib.asynccontextmanager
async def _streams_closed_after() -> AsyncIterator[list[_HeldStream]]:
    held: list[_HeldStream] = []
    try:
        yield held
    finally:
        for stream in held:
            stream.close()
        await asyncio.wait_for(asyncio.gather(*(s.task for s in held),
                                              return_exceptions=True), timeout=60)


def _library_only(snapshot: tracemalloc.Snapshot) -> tracemalloc.Snapshot:
    return snapshot.filter_traces([tracemalloc.Filter(True, f"{LIBRARY_DIR}/*")])


async def run_traced_memory(sessions: int, mcp_parsing: str, top: int = 10) -> TracedMemory:
    """The library's own allocations still held per open session (with its GET stream)."""
    variant = session_variant(parsed_variant_name(mcp_parsing), mcp_parsing)
    async with Lifespan(variant.app), _streams_closed_after() as held:
        await _open_in_process(variant.app, WARMUP_SESSIONS, held)
        gc.collect()
        tracemalloc.start()
        try:
            before = _library_only(tracemalloc.take_snapshot())
            await _open_in_process(variant.app, sessions, held)
            gc.collect()
            after = _library_only(tracemalloc.take_snapshot())
        finally:
            tracemalloc.stop()
        opened = WARMUP_SESSIONS + sessions
        value = variant.recorded()
        if value != 2 * opened:
            raise UnexpectedReply(f"{variant.name} shows {value} open sessions and streams; "
                                  f"{opened} sessions with a stream each are open")
        errors = variant.internal_errors()
    stats = after.compare_to(before, "lineno")
    root = str(LIBRARY_DIR.parent) + "/"
    sites = [Site(f"{stat.traceback[0].filename.removeprefix(root)}:{stat.traceback[0].lineno}",
                  stat.size_diff / sessions, stat.count_diff / sessions)
             for stat in sorted(stats, key=lambda stat: stat.size_diff, reverse=True)[:top]
             if stat.size_diff > 0]
    return TracedMemory(
        sessions=sessions,
        bytes_per_session=sum(stat.size_diff for stat in stats) / sessions,
        blocks_per_session=sum(stat.count_diff for stat in stats) / sessions,
        top=sites, recorded=value, internal_errors=errors)

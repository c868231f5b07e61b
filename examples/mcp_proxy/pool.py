"""The proxy's backend pool: lazy connections, an idle reaper, and a tool cache.

Each backend connection lives in a task of its own (the SDK's transports are task-bound
context managers), started on first use and ended by the reaper after ``idle_timeout``
seconds without calls.  Every step reports to the backend's ``BackendMonitor``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.abc
from mcp import Client
from mcp_types import Tool
from prometheus_client import CollectorRegistry

from asgi_mcp_metrics import BackendMonitor, instrument_client_session

from .child_process import child_process

logger = logging.getLogger("mcp_proxy")

Clock = Callable[[], float]


@dataclass(frozen=True)
class BackendConfig:
    """A backend: ``url`` for Streamable HTTP, or ``command`` (argv) for a stdio child."""

    name: str
    url: str | None = None
    command: Sequence[str] = ()

    @property
    def transport(self) -> str:
        return "stdio" if self.command else "streamable_http"


@dataclass
class Backend:
    config: BackendConfig
    monitor: BackendMonitor
    clock: Clock
    client: Client | None = None
    tools: list[Tool] | None = None  # the tool cache; None until first listed
    last_used: float = 0.0
    in_flight: int = 0
    ever_connected: bool = False
    _lock: anyio.Lock = field(default_factory=anyio.Lock)
    _release: anyio.Event | None = None
    _released: anyio.Event | None = None

    @property
    def name(self) -> str:
        return self.config.name

    def cached_tool_count(self) -> int:
        return len(self.tools or ())

    def _transport(self) -> Any:
        if self.config.command:
            return child_process(self.config.command, self.monitor)
        return self.config.url

    async def _hold(self, *, task_status: anyio.abc.TaskStatus[Client]) -> None:
        """Own one connection from connect to disconnect (one task, as the SDK requires)."""
        release, released = anyio.Event(), anyio.Event()
        started = False
        try:
            async with Client(self._transport(), cache=None) as client:
                instrument_client_session(client.session, self.monitor)
                self._release, self._released = release, released
                started = True
                task_status.started(client)
                await release.wait()
        except Exception:
            if not started:
                raise  # a failed connect: reported to the caller of connect()
            logger.exception("backend %s: connection failed", self.name)
            self.client = None
            self.monitor.disconnected("error")
        finally:
            released.set()

    @asynccontextmanager
    async def use(self, tasks: anyio.abc.TaskGroup) -> AsyncIterator[Client]:
        """A connected client for one call; connects lazily (or again after a reap)."""
        async with self._lock:
            if self.client is None:
                trigger = "reconnect" if self.ever_connected else "lazy"
                async with self.monitor.connect(trigger):
                    self.client = await tasks.start(self._hold)
                self.ever_connected = True
            client = self.client
            self.in_flight += 1
        try:
            yield client
        finally:
            self.in_flight -= 1
            self.last_used = self.clock()

    async def disconnect(self, reason: str, *, idle_for: float | None = None) -> None:
        """Disconnect; with ``idle_for``, only if still unused for that long once locked (a
        call may have taken the connection between the reaper's look and the lock)."""
        async with self._lock:
            if self.client is None or self._release is None or self._released is None:
                return
            if idle_for is not None and (self.in_flight
                                         or self.clock() - self.last_used < idle_for):
                return
            self._release.set()
            await self._released.wait()
            self.client = None
            self.monitor.disconnected(reason)

    async def list_tools(self, tasks: anyio.abc.TaskGroup) -> list[Tool]:
        """The backend's tools, from the cache when it holds them."""
        if self.tools is not None:
            self.monitor.cache_hit()
            return self.tools
        self.monitor.cache_miss()
        async with self.use(tasks) as client:
            listing = await client.list_tools()
        self.tools = list(listing.tools)
        self.monitor.tools_discovered(tool.name for tool in self.tools)
        return self.tools


class BackendPool:
    def __init__(self, configs: Sequence[BackendConfig], *, idle_timeout: float,
                 reap_interval: float, registry: CollectorRegistry | None = None,
                 clock: Clock = time.monotonic) -> None:
        self.idle_timeout = idle_timeout
        self.reap_interval = reap_interval
        self.clock = clock
        self.backends: list[Backend] = []
        for config in configs:
            monitor = BackendMonitor(config.name, transport=config.transport, registry=registry)
            backend = Backend(config, monitor, clock)
            monitor.track_tool_cache(backend.cached_tool_count)
            self.backends.append(backend)
        self._owners: dict[str, Backend] = {}
        self._tasks: anyio.abc.TaskGroup | None = None

    def running(self) -> AbstractAsyncContextManager[BackendPool]:
        return self._running()

    @asynccontextmanager
    async def _running(self) -> AsyncIterator[BackendPool]:
        async with anyio.create_task_group() as tasks:
            self._tasks = tasks
            tasks.start_soon(self._reap_forever)
            try:
                yield self
            finally:
                with anyio.CancelScope(shield=True):
                    for backend in self.backends:
                        await backend.disconnect("shutdown")
                tasks.cancel_scope.cancel()

    @property
    def tasks(self) -> anyio.abc.TaskGroup:
        if self._tasks is None:
            raise RuntimeError("the pool is not running (use it inside pool.running())")
        return self._tasks

    async def list_tools(self) -> list[Tool]:
        tools: list[Tool] = []
        for backend in self.backends:
            for tool in await backend.list_tools(self.tasks):
                self._owners.setdefault(tool.name, backend)
                tools.append(tool)
        return tools

    async def route(self, tool: str) -> Backend | None:
        """The backend serving ``tool``: a cache hit, or a miss that lists unlisted backends."""
        backend = self._owners.get(tool)
        if backend is not None:
            backend.monitor.cache_hit()
            return backend
        for candidate in self.backends:
            if candidate.tools is None:
                for listed in await candidate.list_tools(self.tasks):
                    self._owners.setdefault(listed.name, candidate)
        return self._owners.get(tool)

    async def reap_idle(self) -> None:
        now = self.clock()
        for backend in self.backends:
            if (backend.client is not None and backend.in_flight == 0
                    and now - backend.last_used >= self.idle_timeout):
                await backend.disconnect("idle_reaped", idle_for=self.idle_timeout)

    async def _reap_forever(self) -> None:
        while True:
            await anyio.sleep(self.reap_interval)
            await self.reap_idle()

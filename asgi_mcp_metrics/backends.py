"""``BackendMonitor``: what an MCP proxy reports about one backend of its pool.

A proxy creates one monitor per backend and calls it where its pool already does the work:

.. code-block:: python

    monitor = BackendMonitor("github", transport="streamable_http")

    async with monitor.connect(trigger="lazy"):      # connects_total, connect duration, up=1
        session = await open_session()
    ...
    monitor.disconnected(reason="idle_reaped")       # disconnects_total, lifetime, up=0

    async with monitor.call("tools/call", tool="search") as call:
        result = await session.call_tool("search", {...})
        call.result(result)                          # isError -> error_type="tool_error"

    monitor.track_tool_cache(lambda: len(cache))     # read at scrape time
    monitor.cache_hit()                              # / cache_miss() / cache_stale()
    monitor.watch_process(process)                   # stdio child: started, running, exited

Every method is failsafe: an error inside the library is logged and counted, never raised
into the proxy.  The registry is bound on first use (see :mod:`asgi_mcp_metrics._binding`).
"""

from __future__ import annotations

import asyncio
import math
import subprocess
import threading
import time
import weakref
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Iterable
from time import perf_counter
from types import TracebackType
from typing import Any, Literal, TypeVar

from prometheus_client import CollectorRegistry

from ._binding import Binding
from ._outcomes import error_type_of, is_timeout, is_tool_error
from ._wrapping import wrap
from .config import Settings
from .recorder import Recorder

__all__ = ["BackendMonitor", "ClientCall"]

ConnectTrigger = Literal["startup", "lazy", "reconnect", "refresh"]
DisconnectReason = Literal["idle_reaped", "error", "remote_closed", "shutdown", "config_change"]

CLIENT_OPERATION = "mcp_client_operation_duration_seconds"


def _result_error_type(result: Any) -> str:
    return "tool_error" if is_tool_error(result) else ""


TimedT = TypeVar("TimedT", bound="_Timed")
F = TypeVar("F", bound=Callable[..., Any])


class _Timed(ABC):
    """A sync and async context manager that reports its block's duration and exception."""

    __slots__ = ("_started",)

    def __init__(self) -> None:
        self._started = 0.0

    def _enter(self) -> None:
        self._started = perf_counter()

    @abstractmethod
    def _exit(self, elapsed: float, error: BaseException | None) -> None:
        """What this kind records; each subclass says."""

    def _finish(self, error: BaseException | None) -> None:
        self._exit(perf_counter() - self._started, error)

    def __enter__(self: TimedT) -> TimedT:
        self._enter()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self._finish(error)

    async def __aenter__(self: TimedT) -> TimedT:
        self._enter()
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        traceback: TracebackType | None) -> None:
        self._finish(error)


class _Connect(_Timed):
    __slots__ = ("_monitor", "_trigger")

    def __init__(self, monitor: BackendMonitor, trigger: str) -> None:
        super().__init__()
        self._monitor = monitor
        self._trigger = trigger

    def _exit(self, elapsed: float, error: BaseException | None) -> None:
        self._monitor._connect_finished(self._trigger, elapsed, error)


class ClientCall(_Timed):
    """One proxy-to-backend call being timed; ``result(value)`` checks a tool result.

    Applied to a function (``@monitor.call("tools/call", tool="x")``), it times every call of
    that function instead.
    """

    __slots__ = ("_error_type", "_method", "_monitor", "_tool")

    def __init__(self, monitor: BackendMonitor, method: str, tool: str | None) -> None:
        super().__init__()
        self._monitor = monitor
        self._method = method
        self._tool = tool
        self._error_type = ""

    def result(self, value: Any) -> Any:
        """Look at the call's result (a ``CallToolResult`` with ``is_error`` is a failure)."""
        try:
            self._error_type = _result_error_type(value)
        except Exception:
            self._monitor._internal_error("client_call.result")
        return value

    def fail(self, error_type: str) -> None:
        """Mark the call as failed without an exception (e.g. an error response object)."""
        self._error_type = error_type

    def _exit(self, elapsed: float, error: BaseException | None) -> None:
        error_type = error_type_of(error) if error is not None else self._error_type
        self._monitor.observe_call(self._method, self._tool, error_type, elapsed)

    def __call__(self, func: F) -> F:
        wrapper: F = wrap(func, _CallProbe(self._monitor, self._method, self._tool))
        return wrapper


class _CallProbe:
    """``monitor.call(...)`` used as a decorator: one probe per decorated function."""

    def __init__(self, monitor: BackendMonitor, method: str, tool: str | None) -> None:
        self.monitor = monitor
        self.method = method
        self.tool = tool

    def begin(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> float:
        return perf_counter()

    def end(self, state: float, result: Any, error: BaseException | None) -> None:
        if error is not None:
            error_type = "" if isinstance(error, GeneratorExit) else error_type_of(error)
        else:
            error_type = _result_error_type(result)
        self.monitor.observe_call(self.method, self.tool, error_type, perf_counter() - state)

    def internal_error(self, where: str) -> None:
        self.monitor._internal_error(f"client_call.{where}")


_monitors: weakref.WeakSet[BackendMonitor] = weakref.WeakSet()


def monitors_of(recorder: Recorder) -> list[BackendMonitor]:
    """The live monitors bound to ``recorder``, by backend name (for the health surface)."""
    found = [m for m in list(_monitors) if m._binding.bound and m._binding.recorder is recorder]
    return sorted(found, key=lambda monitor: monitor.backend)


class BackendMonitor:
    """Metrics of one backend of a proxy: connection, calls, tool cache, child processes."""

    def __init__(self, backend: str, *, transport: str = "",
                 registry: CollectorRegistry | None = None,
                 settings: Settings | None = None) -> None:
        self.backend = backend
        self.transport = transport
        self._lock = threading.Lock()
        # perf_counter() of each open connection, oldest first: a pool may hold several.
        self._open: deque[float] = deque()
        self._pids: set[int] = set()
        self._running_without_pid = 0
        self._labels: tuple[str, str] | None = None
        #: For the health surface: wall-clock time of the last successful connect, the last
        #: connect error (text and time) and the duration of the last call.
        self.last_connect: float | None = None
        self.last_error: str | None = None
        self.last_error_at: float | None = None
        self.last_call_seconds: float | None = None
        _monitors.add(self)
        # Writes the tracked tool-cache size to this worker's files (multiprocess mode only).
        self._refresh_cache: Callable[[], None] | None = None
        # A configured backend is visible (at 0) as soon as the registry is bound, before its
        # first connection, so count(mcp_backend_up) is the number of configured backends.
        self._binding = Binding(registry, settings, on_bind=self._show, layer="backend",
                                who="BackendMonitor()")

    def __repr__(self) -> str:
        return f"BackendMonitor({self.backend!r}, transport={self.transport!r})"

    # -- binding -------------------------------------------------------------------------------
    def _show(self, recorder: Recorder) -> None:
        backend = self._backend_label(recorder)
        if not self._open:
            recorder["mcp_backend_up"].labels(backend, self.transport).set(0)

    def _backend_label(self, recorder: Recorder) -> str:
        if self._labels is None:
            # The backend name goes through the bounded-label guard once; a proxy with more
            # backends than max_label_values reports the rest as _OTHER.
            self._labels = (recorder.guard("backend")(self.backend, "mcp_backend_up"),
                            self.transport)
        return self._labels[0]

    def _bound(self) -> tuple[Recorder, str]:
        recorder = self._binding.recorder
        return recorder, self._backend_label(recorder)

    def _internal_error(self, where: str) -> None:
        self._binding.internal_error(f"backend_monitor.{where}")

    # -- connection ----------------------------------------------------------------------------
    def connect(self, trigger: ConnectTrigger | str = "lazy") -> _Connect:
        """Time a connection attempt: ``with monitor.connect("startup"): ...`` (or ``async with``).

        Success counts ``outcome="ok"`` and marks the backend up; an exception counts
        ``timeout`` (``TimeoutError`` and ``*Timeout*`` classes) or ``error`` and propagates.
        """
        return _Connect(self, trigger)

    def connected(self, trigger: ConnectTrigger | str = "lazy", *, duration: float = 0.0) -> None:
        """Report a successful connection made elsewhere (no timing block)."""
        self._connect_finished(trigger, duration, None)

    def _connect_finished(self, trigger: str, elapsed: float, error: BaseException | None) -> None:
        try:
            recorder, backend = self._bound()
            if error is None:
                outcome = "ok"
            elif is_timeout(error):
                outcome = "timeout"
            else:
                outcome = "error"
            if error is not None:
                self.last_error, self.last_error_at = error_type_of(error), time.time()
            recorder["mcp_backend_connects_total"].labels(backend, trigger, outcome).inc()
            recorder["mcp_backend_connect_duration_seconds"].labels(backend).observe(elapsed)
            if error is None:
                self.last_connect = time.time()
                with self._lock:
                    self._open.append(perf_counter())
                recorder["mcp_backend_up"].labels(backend, self.transport).set(1)
            self._sample_cache()
        except Exception:
            self._internal_error("connect")

    def disconnected(self, reason: DisconnectReason | str = "shutdown") -> None:
        """The oldest open connection ended: count it, observe its lifetime, mark the backend
        down when it was the last one.  Without an open connection this does nothing, so a
        pool may call it defensively."""
        try:
            recorder, backend = self._bound()
            with self._lock:
                if not self._open:
                    return
                opened = self._open.popleft()
                still_open = bool(self._open)
            recorder["mcp_backend_disconnects_total"].labels(backend, reason).inc()
            recorder["mcp_client_session_duration_seconds"].labels(
                backend, self.transport, reason).observe(perf_counter() - opened)
            if not still_open:
                recorder["mcp_backend_up"].labels(backend, self.transport).set(0)
            self._sample_cache()
        except Exception:
            self._internal_error("disconnect")

    @property
    def open_connections(self) -> int:
        return len(self._open)

    # -- calls -----------------------------------------------------------------------------------
    def call(self, method: str, *, tool: str | None = None) -> ClientCall:
        """Time a proxy-to-backend call into ``mcp_client_operation_duration_seconds``.

        A context manager (sync or async; ``call.result(value)`` marks a tool result with
        ``isError`` as ``error_type="tool_error"``), or a decorator of a function of any kind.
        """
        return ClientCall(self, method, tool)

    def observe_call(self, method: str, tool: str | None, error_type: str,
                     elapsed: float) -> None:
        """Record a call timed elsewhere (``error_type`` empty for success)."""
        self.last_call_seconds = elapsed
        try:
            recorder, backend = self._bound()
            from .mcp.wire.vocabulary import method_label

            tool_label = recorder.tool_label(tool, CLIENT_OPERATION) if tool else ""
            recorder[CLIENT_OPERATION].labels(backend, method_label(method), tool_label,
                                              error_type).observe(elapsed)
        except Exception:
            self._internal_error("call")

    # -- tool cache ----------------------------------------------------------------------------
    def track_tool_cache(self, size: Callable[[], int]) -> None:
        """Report ``mcp_tool_cache_entries`` by calling ``size()`` at every scrape.

        A ``size`` that raises is counted as a callback error and the last good value is
        reported.  With several workers (``PROMETHEUS_MULTIPROC_DIR``) a scrape reads files,
        not callbacks, so each worker writes ``size()`` to its file whenever it answers a
        scrape and at this monitor's own events (cache lookups, connects, disconnects, tools
        discovered); the scrape shows the largest cache among the live workers.
        """
        last = [0.0]

        def read() -> float:
            try:
                value = float(size())
            except Exception:
                self._binding.callback_error("track_tool_cache")
                return last[0]
            if not math.isfinite(value):
                return last[0]
            last[0] = value
            return value

        try:
            recorder, backend = self._bound()
            child = recorder["mcp_tool_cache_entries"].labels(backend)
            child.set_function(read)
            if recorder.multiprocess:
                self._refresh_cache = lambda: child.set(read())
                recorder.add_refresher(self._refresh_cache)
                self._refresh_cache()
        except Exception:
            self._internal_error("track_tool_cache")

    def set_tool_cache_size(self, entries: int) -> None:
        try:
            recorder, backend = self._bound()
            recorder["mcp_tool_cache_entries"].labels(backend).set(entries)
        except Exception:
            self._internal_error("tool_cache_size")

    def tools_discovered(self, names: Iterable[str]) -> None:
        """Make tool names the backend listed known label values (the tool-name allowlist)."""
        try:
            self._binding.recorder.learn_tools(names)
            self._sample_cache()
        except Exception:
            self._internal_error("tools_discovered")

    def cache_hit(self) -> None:
        self._cache("hit")

    def cache_miss(self) -> None:
        self._cache("miss")

    def cache_stale(self) -> None:
        self._cache("stale")

    def _cache(self, result: str) -> None:
        try:
            recorder, backend = self._bound()
            recorder["mcp_tool_cache_requests_total"].labels(backend, result).inc()
            self._sample_cache()
        except Exception:
            self._internal_error("cache")

    def _sample_cache(self) -> None:
        """A moment the cache may have changed: write its size to this worker's files."""
        if self._refresh_cache is not None:
            self._refresh_cache()

    # -- child processes -------------------------------------------------------------------------
    def process_started(self, pid: int | None = None) -> None:
        """A stdio child process of this backend started."""
        try:
            recorder, backend = self._bound()
            with self._lock:
                if pid is None:
                    self._running_without_pid += 1
                elif pid in self._pids:
                    return
                else:
                    self._pids.add(pid)
            recorder["mcp_backend_process_starts_total"].labels(backend).inc()
            recorder["mcp_backend_processes"].labels(backend).inc()
        except Exception:
            self._internal_error("process_started")

    def process_exited(self, returncode: int | None, pid: int | None = None) -> None:
        """A child exited: ``kind`` is ``clean`` (0), ``nonzero`` (> 0) or ``signal`` (< 0, the
        convention of ``subprocess`` and ``asyncio`` for a death by signal)."""
        try:
            recorder, backend = self._bound()
            with self._lock:
                if pid is not None:
                    if pid not in self._pids:
                        return  # not started through this monitor, or already reported
                    self._pids.discard(pid)
                elif self._running_without_pid:
                    self._running_without_pid -= 1
                else:
                    return
            if returncode is None or returncode == 0:
                kind = "clean"
            elif returncode < 0:
                kind = "signal"
            else:
                kind = "nonzero"
            recorder["mcp_backend_process_exits_total"].labels(backend, kind).inc()
            recorder["mcp_backend_processes"].labels(backend).dec()
        except Exception:
            self._internal_error("process_exited")

    def watch_process(self, process: Any) -> asyncio.Task[None] | threading.Thread:
        """Report a child process as started now and as exited when it exits.

        ``process`` is an ``asyncio.subprocess.Process`` or an ``anyio`` process (anything
        with ``pid`` and an async ``wait()``; watched by a task on the running loop), or a
        ``subprocess.Popen`` (watched by a daemon thread).  Returns the task or thread.
        """
        pid = getattr(process, "pid", None)
        self.process_started(pid)
        if isinstance(process, subprocess.Popen):
            thread = threading.Thread(target=self._wait_popen, args=(process,),
                                      name=f"asgi-mcp-metrics-watch-{pid}", daemon=True)
            thread.start()
            return thread
        return asyncio.get_running_loop().create_task(self._wait_async(process, pid))

    def _wait_popen(self, process: subprocess.Popen[Any]) -> None:
        returncode = process.wait()
        self.process_exited(returncode, process.pid)

    async def _wait_async(self, process: Any, pid: int | None) -> None:
        try:
            returncode = await process.wait()
        except asyncio.CancelledError:
            raise
        except Exception:
            returncode = getattr(process, "returncode", None)
        self.process_exited(returncode, pid)

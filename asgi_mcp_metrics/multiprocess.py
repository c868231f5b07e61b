"""Several worker processes: ``PROMETHEUS_MULTIPROC_DIR`` under gunicorn or ``uvicorn --workers``.

Each worker writes its values to files in the directory and a scrape, answered by any worker,
merges them (counters and histograms summed, gauges as the catalog says: ``livesum`` or
``livemax``).  What this module adds to ``prometheus_client``'s multiprocess mode:

* :func:`child_exit` and :func:`on_starting`, gunicorn server hooks: a dead worker's live gauges
  are dropped at once (its counters stay), and the directory starts empty;
* :func:`reap_dead_workers`, run at every scrape: a worker that died without a hook (a
  ``SIGKILL`` under ``uvicorn --workers``) stops counting in the live gauges;
* :func:`warn_about_leftovers`, run once when a worker binds its metrics: files older than the
  server (a previous run) are counted and logged, because their counters are still summed.

Use the hooks from a gunicorn config file::

    from asgi_mcp_metrics.multiprocess import child_exit, on_starting
"""

from __future__ import annotations

import glob
import logging
import os
import re
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import multiprocess as prometheus_multiprocess
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

__all__ = ["ENV_VARS", "child_exit", "clear_directory", "directory", "on_starting",
           "reap_dead_workers", "warn_about_leftovers"]

logger = logging.getLogger("asgi_mcp_metrics")

# prometheus_client still honours the old lower-case spelling when writing, so read both.
ENV_VARS = ("PROMETHEUS_MULTIPROC_DIR", "prometheus_multiproc_dir")
# The files prometheus_client writes: counter_<pid>.db, gauge_livesum_<pid>.db, ...
_FILE = re.compile(r"(counter|histogram|summary|gauge_[a-z]+)_(\d+)\.db")
_LIVE_FILE = re.compile(r"gauge_live[a-z]+_(\d+)\.db")

#: A value file starts with the number of bytes in use (4) and padding (4).
_HEADER_BYTES = 8

_checked: set[str] = set()


def directory() -> str | None:
    """The multiprocess directory from the environment (read now), or None."""
    return next((os.environ[name] for name in ENV_VARS if os.environ.get(name)), None)


def child_exit(server: Any, worker: Any) -> None:
    """gunicorn ``child_exit`` hook: the worker's live gauges stop counting, its counters stay."""
    path = directory()
    if path is not None:
        prometheus_multiprocess.mark_process_dead(worker.pid, path)  # type: ignore[no-untyped-call]


def on_starting(server: Any) -> None:
    """gunicorn ``on_starting`` hook: start with an empty directory (:func:`clear_directory`)."""
    path = directory()
    if path is not None:
        removed = clear_directory(path)
        if removed:
            logger.info("asgi_mcp_metrics: removed %d metric files of a previous run from %s",
                        removed, path)


def clear_directory(path: str | None = None) -> int:
    """Remove the metric files ``prometheus_client`` wrote in ``path`` (default: the
    environment's directory) and nothing else; returns how many.  Run it before the server
    starts, never while workers are running."""
    path = directory() if path is None else path
    if path is None:
        return 0
    removed = 0
    for name in os.listdir(path):
        if _FILE.fullmatch(name):
            os.remove(os.path.join(path, name))
            removed += 1
    return removed


def reap_dead_workers(path: str) -> list[int]:
    """Mark dead the processes whose live-gauge files are in ``path`` but that no longer run.

    A process counts as running while its pid exists in this pid namespace and is not a zombie;
    so all workers must share the pid namespace of the one that answers the scrape (true for
    gunicorn and ``uvicorn --workers``; set ``reap_dead_workers`` off otherwise).
    """
    dead = sorted({int(match.group(1)) for name in os.listdir(path)
                   if (match := _LIVE_FILE.fullmatch(name)) and not _running(int(match.group(1)))})
    for pid in dead:
        prometheus_multiprocess.mark_process_dead(pid, path)  # type: ignore[no-untyped-call]
    return dead


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. another user's process: it exists
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            # "pid (comm) state ...": comm may hold spaces and parentheses, state follows the last.
            return stat.read().rpartition(b")")[2].split()[0] != b"Z"
    except (OSError, IndexError):
        return True


def warn_about_leftovers(path: str) -> int:
    """Count (and log, once per process and directory) the metric files older than the server.

    The server's start is its supervisor's (this process's parent) start, read from ``/proc``;
    where that cannot be read nothing is reported.  Returns the number of such files.
    """
    if path in _checked:
        return 0
    _checked.add(path)
    started = _process_start(os.getppid())
    if started is None:
        return 0
    old: list[str] = []
    pids: set[str] = set()
    for file in glob.glob(os.path.join(path, "*.db")):
        match = _FILE.fullmatch(os.path.basename(file))
        try:
            if match and os.stat(file).st_mtime < started:
                old.append(file)
                pids.add(match.group(2))
        except OSError:  # removed meanwhile
            continue
    if old:
        logger.warning(
            "asgi_mcp_metrics: %s holds %d metric files of %d processes that ended before this "
            "server started; their counters are still summed into every scrape. Empty the "
            "directory before starting the server (docs/deployment.md).", path, len(old),
            len(pids))
    return len(old)


def _process_start(pid: int) -> float | None:
    """When ``pid`` started, as a Unix time; None where ``/proc`` cannot tell."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rpartition(b")")[2].split()
        with open("/proc/stat", "rb") as system:
            boot = next(float(line.split()[1]) for line in system
                        if line.startswith(b"btime "))
        # Field 22 of stat (index 19 after "pid (comm)") is the start in clock ticks after boot.
        return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def merged_collector(*, reap: bool, before: Callable[[], None]) -> Collector | None:
    """A collector merging every worker's files, or None outside multiprocess mode.

    ``before`` runs first, so that this worker's scrape-time values are in its files.
    """
    path = directory()
    if path is None:
        return None
    before()
    if reap:
        reap_dead_workers(path)
    return _Merged(path)


class _Merged(Collector):
    """``MultiProcessCollector`` without its start-up race: a worker creates a file empty and
    sizes it a moment later, and reading it in between fails the whole scrape.  A file without
    its 8-byte header has no values yet, so it is left out."""

    def __init__(self, path: str) -> None:
        self._path = path

    def collect(self) -> Iterable[Metric]:
        files = []
        for file in glob.glob(os.path.join(self._path, "*.db")):
            try:
                if os.path.getsize(file) >= _HEADER_BYTES:
                    files.append(file)
            except OSError:  # a dead worker's live gauges, removed meanwhile
                continue
        merged: Iterable[Metric] = prometheus_multiprocess.MultiProcessCollector.merge(
            files, accumulate=True)  # type: ignore[no-untyped-call]
        return merged

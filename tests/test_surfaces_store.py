"""The dashboard history in an SQLite file: kept across instances, bounded, and a locked,
corrupt or unwritable file survived (logged once, counted, never raised)."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.testclient import TestClient

from asgi_mcp_metrics._binding import get_recorder
from asgi_mcp_metrics.config import Settings
from asgi_mcp_metrics.starlette import instrument
from asgi_mcp_metrics.surfaces.history import FLUSH_EVERY, History

from .asgi import total
from .helpers import FakeClock

STORE_ERRORS = {"where": "history.store"}


def rows(path: Path) -> list[tuple[int, float]]:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT resolution, t FROM samples ORDER BY resolution, t").fetchall()


def history(registry: CollectorRegistry, path: Path, wall: FakeClock, **sizes: int) -> History:
    return History(get_recorder(registry, Settings()), clock=wall, path=str(path), **sizes)


def test_samples_are_written_in_batches_and_loaded_again(registry: CollectorRegistry,
                                                         tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite3"
    wall = FakeClock(1000.0)
    first = history(registry, path, wall)
    for _ in range(FLUSH_EVERY + 2):
        first.sample()
        wall.advance(1)
    assert [t for r, t in rows(path) if r == 1] == [1000.0 + i for i in range(FLUSH_EVERY)]
    first.stop()  # writes the rest
    assert [t for r, t in rows(path) if r == 1] == [1000.0 + i for i in range(FLUSH_EVERY + 2)]
    assert [t for r, t in rows(path) if r == 60] == [1006.0]  # 1000..1006 share one minute

    again = history(CollectorRegistry(), path, FakeClock(2000.0))
    again.load()
    assert [s.t for s in again.fine] == [s.t for s in first.fine]
    assert [s.values for s in again.fine] == [s.values for s in first.fine]
    assert [s.t for s in again.coarse] == [1006.0]
    assert total(registry, "asgi_mcp_metrics_internal_errors_total", **STORE_ERRORS) == 0


def test_the_file_is_bounded(registry: CollectorRegistry, tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite3"
    wall = FakeClock(0.0)
    bounded = history(registry, path, wall, seconds=3, minutes=2)
    for _ in range(6 * 60):
        bounded.sample()
        wall.advance(1)
    bounded.stop()
    stored = rows(path)
    assert [t for r, t in stored if r == 1] == [357.0, 358.0, 359.0]
    assert [t for r, t in stored if r == 60] == [299.0, 359.0]


def test_a_corrupt_file_is_logged_once_counted_and_survived(
        registry: CollectorRegistry, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "history.sqlite3"
    path.write_bytes(b"this is not a database " * 200)
    app = instrument(Starlette(), registry=registry, history_path=str(path))
    surfaces = app.state.asgi_mcp_metrics_surfaces
    with caplog.at_level(logging.WARNING, logger="asgi_mcp_metrics"), TestClient(app) as client:
        assert client.get("/metrics/ui/history?range=60").status_code == 200
        for _ in range(FLUSH_EVERY):
            surfaces.history.sample()
        assert client.get("/metrics/ui/history?range=60").status_code == 200
        surfaces.history.stop()
    warnings = [r for r in caplog.records if "history file" in r.getMessage()]
    assert len(warnings) == 1
    assert "DatabaseError" in warnings[0].getMessage()
    # the load and at least one batch failed; each failure is counted
    assert total(registry, "asgi_mcp_metrics_internal_errors_total", **STORE_ERRORS) >= 2
    assert path.read_bytes().startswith(b"this is not a database")


@pytest.mark.parametrize("where", ["under a file", "read-only directory"])
def test_an_unwritable_location_is_survived(registry: CollectorRegistry, tmp_path: Path,
                                            where: str) -> None:
    if where == "under a file":
        blocker = tmp_path / "a-file"
        blocker.write_text("not a directory")
        path = blocker / "history.sqlite3"
    else:
        # /proc takes no new files, not even from root (which a chmod would not stop).
        path = Path("/proc/asgi-mcp-metrics-history.sqlite3")
    wall = FakeClock(0.0)
    unwritable = history(registry, path, wall)
    unwritable.load()
    for _ in range(FLUSH_EVERY):
        unwritable.sample()
    assert len(unwritable.fine) == FLUSH_EVERY  # the memory rings carry on
    assert total(registry, "asgi_mcp_metrics_internal_errors_total", **STORE_ERRORS) == 2


def test_a_locked_file_is_retried_with_the_next_batch(registry: CollectorRegistry,
                                                      tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite3"
    wall = FakeClock(0.0)
    store = history(registry, path, wall)
    store.load()  # creates the table
    locker = sqlite3.connect(path, isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    for _ in range(FLUSH_EVERY):
        store.sample()
        wall.advance(1)
    assert total(registry, "asgi_mcp_metrics_internal_errors_total", **STORE_ERRORS) == 1
    locker.execute("ROLLBACK")
    locker.close()
    for _ in range(FLUSH_EVERY):
        store.sample()
        wall.advance(1)
    # The failed batch is not kept for later: the file holds the batch after the lock.
    assert [t for r, t in rows(path) if r == 1] == [5.0, 6.0, 7.0, 8.0, 9.0]

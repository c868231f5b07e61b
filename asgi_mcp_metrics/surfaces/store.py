"""The dashboard history on disk: an SQLite file (stdlib ``sqlite3``) that outlives a restart.

The sampler thread hands over its new samples in batches; every write opens the file, writes,
prunes what is older than the rings keep, and closes it, so nothing here runs on the event
loop and no connection is shared between threads.  The file stays bounded: per worker at most
``seconds`` 1 s rows and ``minutes`` 1 min rows.  A file that is locked, corrupt or cannot be
written is logged once, counted in ``asgi_mcp_metrics_internal_errors_total{where=
"history.store"}`` each time, and otherwise ignored: the history then lives in memory only.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
from collections.abc import Sequence
from contextlib import closing
from dataclasses import dataclass

from ..recorder import Recorder

__all__ = ["HistoryStore", "Loaded", "StoredSample"]

logger = logging.getLogger("asgi_mcp_metrics")

FINE, COARSE = 1, 60
LOCK_TIMEOUT_SECONDS = 0.5
SCHEMA = """
CREATE TABLE IF NOT EXISTS samples (
    resolution INTEGER NOT NULL,
    worker INTEGER NOT NULL,
    slot INTEGER NOT NULL,
    t REAL NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (resolution, worker, slot)
)
"""


@dataclass(frozen=True)
class StoredSample:
    t: float
    values: tuple[float, ...]
    buckets: tuple[float, ...]
    bounds: tuple[float, ...]


@dataclass(frozen=True)
class Loaded:
    fine: list[StoredSample]
    coarse: list[StoredSample]


class HistoryStore:
    """One SQLite file; several workers may share it (each writes its own rows)."""

    def __init__(self, path: str, recorder: Recorder, *, seconds: int, minutes: int) -> None:
        self.path = path
        self.recorder = recorder
        self.seconds = seconds
        self.minutes = minutes
        self.worker = os.getpid()
        self._warned = False

    def load(self) -> Loaded:
        """Every worker's rows still within reach, oldest first, one per second (minute)."""
        try:
            with closing(self._connect()) as db:
                rows = db.execute("SELECT resolution, data FROM samples ORDER BY t").fetchall()
        except (sqlite3.Error, OSError, ValueError) as error:
            self._failed(error)
            return Loaded([], [])
        fine: list[StoredSample] = []
        coarse: list[StoredSample] = []
        for resolution, data in rows:
            sample = _decode(data)
            if sample is None:
                continue
            ring = fine if resolution == FINE else coarse
            # Two workers sampled the same moment: keep one of them.
            if not ring or int(sample.t // resolution) > int(ring[-1].t // resolution):
                ring.append(sample)
        return Loaded(fine, coarse)

    def write(self, fine: Sequence[StoredSample], coarse: Sequence[StoredSample]) -> bool:
        """Write one batch and prune; False (counted, logged once) when the file failed."""
        if not fine and not coarse:
            return True
        rows = [(FINE, self.worker, int(s.t), s.t, _encode(s)) for s in fine]
        rows += [(COARSE, self.worker, int(s.t // 60), s.t, _encode(s)) for s in coarse]
        # Pruned relative to the newest sample: rows the rings would no longer hold.
        now = max(s.t for s in (*fine, *coarse))
        try:
            with closing(self._connect()) as db, db:
                db.executemany("INSERT OR REPLACE INTO samples VALUES (?, ?, ?, ?, ?)", rows)
                db.execute("DELETE FROM samples WHERE resolution = ? AND t <= ?",
                           (FINE, now - self.seconds))
                db.execute("DELETE FROM samples WHERE resolution = ? AND t <= ?",
                           (COARSE, now - 60 * self.minutes))
        except (sqlite3.Error, OSError, ValueError) as error:
            self._failed(error)
            return False
        return True

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=LOCK_TIMEOUT_SECONDS)
        try:
            db.execute(SCHEMA)
        except BaseException:
            db.close()
            raise
        return db

    def _failed(self, error: BaseException) -> None:
        if not self._warned:
            self._warned = True
            logger.warning("asgi_mcp_metrics: the history file %s cannot be used (%s: %s); "
                           "the dashboard history is kept in memory only", self.path,
                           type(error).__name__, error)
        with contextlib.suppress(Exception):  # the registry itself is broken: nothing to do
            self.recorder.internal_errors.labels("history.store").inc()


def _encode(sample: StoredSample) -> str:
    return json.dumps({"t": sample.t, "v": sample.values, "b": sample.buckets,
                       "bounds": [repr(b) for b in sample.bounds]}, separators=(",", ":"))


def _decode(data: str) -> StoredSample | None:
    try:
        raw = json.loads(data)
        return StoredSample(float(raw["t"]), tuple(float(v) for v in raw["v"]),
                            tuple(float(v) for v in raw["b"]),
                            tuple(float(b) for b in raw["bounds"]))
    except (ValueError, KeyError, TypeError):
        return None

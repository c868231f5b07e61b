"""Dashboard history: a sampler that reads the registry once a second into ring buffers.

One sampler per recorder, a daemon thread started the first time a dashboard surface is viewed
(so an app nobody looks at pays nothing, not even the sampling).  The last ``history_seconds``
are kept at 1 s resolution and the last ``history_minutes`` at 1 min resolution.  Each sample
holds cumulative counters, gauges and the tool-call latency buckets; rates, error ratios and
quantiles are derived when a window is asked for, so any window is exact over its samples.
"""

from __future__ import annotations

import atexit
import math
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client.registry import Collector

from ..exposition import scrape_source
from ..recorder import Recorder
from .store import HistoryStore, StoredSample
from .totals import RowReader, Rows, increase

__all__ = ["COLUMNS", "History", "Sample", "history_of"]

#: Summed values kept per sample, in this order (bucket counts follow them).
COLUMNS = ("requests", "http_errors", "tool_calls", "tool_errors", "active_requests",
           "streams", "sessions", "acl_denials", "tokens", "backends_up", "backend_errors")
QUANTILES = (0.5, 0.95, 0.99)
# A 1 s sample rarely holds enough tool calls for a quantile: fine points look back this far.
QUANTILE_LOOKBACK = 10
#: Samples handed to the history file at once (from the sampler thread).
FLUSH_EVERY = 5


@dataclass(frozen=True, slots=True)
class Sample:
    t: float
    values: tuple[float, ...]
    buckets: tuple[float, ...]


class History:
    """The ring buffers of one recorder and the thread that fills them."""

    def __init__(self, recorder: Recorder, *, seconds: int = 3600, minutes: int = 1440,
                 interval: float = 1.0, clock: Callable[[], float] = time.time,
                 path: str | None = None) -> None:
        self.recorder = recorder
        self.store = (HistoryStore(path, recorder, seconds=seconds, minutes=minutes)
                      if path else None)
        self._unsaved: list[Sample] = []
        # Totals rows at the start of each of the last 60 minutes and 24 hours, for totals
        # over a window; and the latest rows.
        self._rows = RowReader(recorder.namespace)
        self.minute_rows: deque[tuple[float, Rows]] = deque(maxlen=61)
        self.hour_rows: deque[tuple[float, Rows]] = deque(maxlen=25)
        self.latest_rows: tuple[float, Rows] | None = None
        self._saving = threading.Lock()
        self.interval = interval
        self.clock = clock
        self.fine: deque[Sample] = deque(maxlen=seconds)
        self.coarse: deque[Sample] = deque(maxlen=minutes)
        self.bounds: tuple[float, ...] = ()
        #: Steps by one per sample taken: a live viewer sees every sample, in order.
        self.version = 0
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        prefix = f"{recorder.namespace}_" if recorder.namespace else ""
        self._names = {name: prefix + name for name in (
            "http_server_request_duration_seconds_count", "mcp_tool_calls_total",
            "http_server_active_requests", "http_server_streams_active",
            "mcp_server_sessions_active", "mcp_acl_decisions_total",
            "gen_ai_client_tokens_total", "mcp_backend_up", "mcp_backend_connects_total",
            "mcp_client_operation_duration_seconds_count",
            "mcp_server_operation_duration_seconds_bucket",
            "mcp_tool_call_duration_seconds_bucket")}

    # -- sampling ------------------------------------------------------------------------------
    def ensure_started(self) -> None:
        """Start the sampler thread once; later calls do nothing."""
        if self._thread is not None:
            return
        with self._lock:
            if self._thread is None:
                self.load()
                self.sample()
                if self.store is not None:
                    # What the last batch did not hold yet is written when the process ends.
                    atexit.register(self.flush)
                thread = threading.Thread(target=self._run, name="asgi-mcp-metrics-history",
                                          daemon=True)
                self._thread = thread
                thread.start()

    def stop(self) -> None:
        self._stop.set()
        thread = self._thread
        if thread is not None:
            thread.join(5)
        self.flush()

    def load(self) -> None:
        """Fill the rings from the history file (what earlier runs sampled)."""
        if self.store is None:
            return
        loaded = self.store.load()
        for ring, stored in ((self.fine, loaded.fine), (self.coarse, loaded.coarse)):
            ring.extend(Sample(s.t, s.values, s.buckets) for s in stored)
        latest = loaded.fine or loaded.coarse
        if latest and not self.bounds:
            self.bounds = latest[-1].bounds

    def flush(self) -> None:
        """Write the samples taken since the last flush to the history file."""
        if self.store is None or not self._unsaved:
            return
        with self._saving:  # the sampler thread and the exit handler may both flush
            unsaved, self._unsaved = self._unsaved, []
        minute = self.coarse[-1] if self.coarse else None
        self.store.write([self._stored(s) for s in unsaved],
                         [self._stored(minute)] if minute is not None else [])

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def sample(self) -> None:
        """Read the registry once and append the sample; an error is counted, never raised."""
        try:
            sample, rows = self._read(scrape_source(self.recorder.registry))
        except Exception:
            self.recorder.internal_error("history.sample")
            return
        self._keep_rows(sample.t, rows)
        self.fine.append(sample)
        last = self.coarse[-1] if self.coarse else None
        if last is None or int(last.t // 60) != int(sample.t // 60):
            self.coarse.append(sample)
        else:
            self.coarse[-1] = sample  # the minute's point is its latest sample
        self.version += 1
        if self.store is not None:
            with self._saving:
                self._unsaved.append(sample)
                due = len(self._unsaved) >= FLUSH_EVERY
            if due:
                self.flush()

    def _stored(self, sample: Sample) -> StoredSample:
        return StoredSample(sample.t, sample.values, sample.buckets, self.bounds)

    def _keep_rows(self, t: float, rows: Rows) -> None:
        previous = self.latest_rows
        self.latest_rows = (t, rows)
        if previous is None or int(previous[0] // 60) != int(t // 60):
            self.minute_rows.append((t, rows))
        if previous is None or int(previous[0] // 3600) != int(t // 3600):
            self.hour_rows.append((t, rows))

    def totals_since(self, seconds: float, now: tuple[float, Rows] | None = None
                     ) -> tuple[float, Rows] | None:
        """``(since, rows)``: what the totals gained from about ``seconds`` ago until ``now``
        (time and rows; default: the latest sample).  The start is the newest minute (within
        the hour) or hour start at least that old, else the oldest one kept."""
        now = now if now is not None else self.latest_rows
        if now is None or not self.minute_rows:
            return None
        target = now[0] - seconds
        kept = self.minute_rows if seconds <= 3600 else self.hour_rows
        older = [entry for entry in kept if entry[0] <= target]
        start = older[-1] if older else min((*self.minute_rows, *self.hour_rows),
                                            key=lambda entry: entry[0])
        return start[0], increase(now[1], start[1])

    def _read(self, source: Collector) -> tuple[Sample, Rows]:
        n = self._names
        rows = self._rows.empty()
        values = dict.fromkeys(COLUMNS, 0.0)
        server_buckets: dict[float, float] = {}
        tool_buckets: dict[float, float] = {}
        for family in source.collect():
            for s in family.samples:
                name, labels, value = s.name, s.labels, s.value
                self._rows.take(rows, name, labels, value)
                if name == n["http_server_request_duration_seconds_count"]:
                    values["requests"] += value
                    if labels.get("http_response_status_code", "").startswith("5"):
                        values["http_errors"] += value
                elif name == n["mcp_tool_calls_total"]:
                    values["tool_calls"] += value
                    if labels.get("outcome") != "ok":
                        values["tool_errors"] += value
                elif name == n["http_server_active_requests"]:
                    values["active_requests"] += value
                elif name == n["http_server_streams_active"]:
                    values["streams"] += value
                elif name == n["mcp_server_sessions_active"]:
                    values["sessions"] += value
                elif name == n["mcp_acl_decisions_total"]:
                    if labels.get("decision") == "deny":
                        values["acl_denials"] += value
                elif name == n["gen_ai_client_tokens_total"]:
                    values["tokens"] += value
                elif name == n["mcp_backend_up"]:
                    values["backends_up"] += value
                elif name == n["mcp_backend_connects_total"]:
                    if labels.get("outcome") != "ok":
                        values["backend_errors"] += value
                elif name == n["mcp_client_operation_duration_seconds_count"]:
                    if labels.get("error_type"):
                        values["backend_errors"] += value
                elif name == n["mcp_server_operation_duration_seconds_bucket"]:
                    if labels.get("mcp_method_name") == "tools/call":
                        _add_bucket(server_buckets, labels["le"], value)
                elif name == n["mcp_tool_call_duration_seconds_bucket"]:
                    _add_bucket(tool_buckets, labels["le"], value)
        # Calls parsed on the wire when there are any, else the ones timed in code: never both,
        # a call seen both ways would count twice.
        buckets = server_buckets if any(server_buckets.values()) else tool_buckets
        if not self.bounds and buckets:
            self.bounds = tuple(sorted(buckets))
        counts = tuple(buckets.get(bound, 0.0) for bound in self.bounds)
        return Sample(self.clock(), tuple(values[c] for c in COLUMNS), counts), rows

    # -- reading -------------------------------------------------------------------------------
    def window(self, seconds: float) -> dict[str, Any]:
        """Derived series over the last ``seconds``: 1 s points within the fine ring's reach,
        1 min points beyond it."""
        fine = seconds <= (self.fine.maxlen or 0)
        ring = list(self.fine if fine else self.coarse)
        if ring:
            start = ring[-1].t - seconds
            first = next((i for i, s in enumerate(ring) if s.t >= start), len(ring))
            ring = ring[max(first - 1, 0):]  # one earlier sample: the first point's baseline
        return {"resolution": 1 if fine else 60, **self.derive(ring, QUANTILE_LOOKBACK if fine
                                                               else 1)}

    def derive(self, samples: Sequence[Sample], lookback: int) -> dict[str, Any]:
        series: dict[str, list[float | None]] = {key: [] for key in SERIES}
        times: list[float] = []
        index = {column: i for i, column in enumerate(COLUMNS)}
        for i in range(1, len(samples)):
            before, now = samples[i - 1], samples[i]
            dt = now.t - before.t
            if dt <= 0:
                continue
            delta = [max(a - b, 0.0) for a, b in zip(now.values, before.values, strict=True)]
            times.append(round(now.t, 3))
            calls = delta[index["tool_calls"]]
            series["requests_per_second"].append(delta[index["requests"]] / dt)
            series["tool_calls_per_second"].append(calls / dt)
            series["tool_error_percent"].append(
                100.0 * delta[index["tool_errors"]] / calls if calls else None)
            series["http_error_percent"].append(
                100.0 * delta[index["http_errors"]] / delta[index["requests"]]
                if delta[index["requests"]] else None)
            series["acl_denials_per_second"].append(delta[index["acl_denials"]] / dt)
            series["tokens_per_second"].append(delta[index["tokens"]] / dt)
            series["backend_errors_per_second"].append(delta[index["backend_errors"]] / dt)
            for gauge in ("active_requests", "streams", "sessions", "backends_up"):
                series[gauge].append(now.values[index[gauge]])
            base = samples[max(i - lookback, 0)]
            # A sample taken before the first tool call has no buckets yet: zeros.
            earlier = base.buckets or (0.0,) * len(now.buckets)
            increase = [max(a - b, 0.0) for a, b in zip(now.buckets, earlier, strict=False)]
            for q, key in zip(QUANTILES, ("p50", "p95", "p99"), strict=True):
                series[key].append(bucket_quantile(q, self.bounds, increase))
        return {"t": times, "series": series}


SERIES = ("requests_per_second", "tool_calls_per_second", "tool_error_percent",
          "http_error_percent", "p50", "p95", "p99", "active_requests", "streams", "sessions",
          "backends_up", "backend_errors_per_second", "acl_denials_per_second",
          "tokens_per_second")


def _add_bucket(buckets: dict[float, float], le: str, value: float) -> None:
    bound = float(le)
    buckets[bound] = buckets.get(bound, 0.0) + value


def bucket_quantile(q: float, bounds: Sequence[float], cumulative: Sequence[float]
                    ) -> float | None:
    """PromQL's ``histogram_quantile``: linear interpolation inside the bucket holding rank
    ``q * count``; the +Inf bucket answers the highest finite bound.  None without data."""
    if not cumulative or cumulative[-1] <= 0:
        return None
    rank = q * cumulative[-1]
    previous_bound, previous_count = 0.0, 0.0
    for bound, count in zip(bounds, cumulative, strict=False):
        if count >= rank:
            if math.isinf(bound):
                return previous_bound
            if count == previous_count:
                return bound
            return previous_bound + (bound - previous_bound) * (
                (rank - previous_count) / (count - previous_count))
        previous_bound, previous_count = bound, count
    return previous_bound


_histories: weakref.WeakKeyDictionary[Recorder, History] = weakref.WeakKeyDictionary()
_histories_lock = threading.Lock()


def history_of(recorder: Recorder, *, seconds: int, minutes: int,
               path: str | None = None) -> History:
    """The one history of ``recorder`` (created on first use, not started)."""
    with _histories_lock:
        found = _histories.get(recorder)
        if found is None:
            found = _histories[recorder] = History(recorder, seconds=seconds, minutes=minutes,
                                                   path=path)
        return found

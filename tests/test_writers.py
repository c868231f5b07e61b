"""``HistogramWriter`` stores exactly what ``prometheus_client``'s own ``observe`` stores.

It reads the child's internals, so this runs in every ``pc0xx`` tox environment (one per
supported ``prometheus_client`` minor version), in-process and in multiprocess mode.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from asgi_mcp_metrics.writers import HistogramWriter, LockedValue, value_of

BUCKETS = (0.005, 0.01, 0.1, 1.0, 10.0)
#: Every bound, just below and above each, zero, negatives and far past the last bound.
VALUES = [-1.0, 0.0, 1e-9, 0.004999, 0.005, 0.0050001, 0.01, 0.05, 0.1, 0.1000001, 0.99, 1,
          1.0, 2, 9.999, 10.0, 10.5, 1e12, 3, 0.007]


def _pair() -> tuple[CollectorRegistry, CollectorRegistry]:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    for registry, values in ((ours, "writer"), (theirs, "observe")):
        histogram = Histogram("latency_seconds", "Latency.", ["way"], buckets=BUCKETS,
                              registry=registry)
        child = histogram.labels(values)
        if values == "writer":
            writer = HistogramWriter(child)
            for value in VALUES:
                writer.observe(value)
        else:
            for value in VALUES:
                child.observe(value)
    return ours, theirs


def _samples(registry: CollectorRegistry) -> list[tuple[str, str, float]]:
    return sorted((sample.name, sample.labels.get("le", ""), sample.value)
                  for metric in registry.collect() for sample in metric.samples
                  if not sample.name.endswith("_created"))


def test_the_same_buckets_count_and_sum_as_observe() -> None:
    ours, theirs = _pair()
    assert _samples(ours) == _samples(theirs)
    buckets = {le: value for name, le, value in _samples(ours) if name.endswith("_bucket")}
    # Two negatives/zero/tiny values and 0.004999 and 0.005 itself: the first bucket.
    assert buckets["0.005"] == 5.0
    assert buckets["+Inf"] == float(len(VALUES))
    assert buckets["10.0"] == float(len(VALUES) - 2)  # all but 10.5 and 1e12


def test_an_exemplar_is_stored_as_observe_stores_it() -> None:
    registry = CollectorRegistry()
    child = Histogram("h_seconds", "H.", buckets=BUCKETS, registry=registry)
    writer = HistogramWriter(child)
    writer.observe(0.05, {"trace_id": "abc"})
    (metric,) = registry.collect()
    (bucket,) = [s for s in metric.samples if s.labels.get("le") == "0.1"]
    assert bucket.value == 1.0
    assert bucket.exemplar is not None and bucket.exemplar.labels == {"trace_id": "abc"}


def test_a_parent_histogram_is_refused_like_observe_refuses_it() -> None:
    histogram = Histogram("p_seconds", "P.", ["way"], registry=CollectorRegistry())
    with pytest.raises(ValueError) as theirs:
        histogram.observe(1.0)
    with pytest.raises(ValueError) as ours:
        HistogramWriter(histogram)
    assert str(ours.value) == str(theirs.value)


def test_value_of_counts_as_inc_and_dec_do() -> None:
    registry = CollectorRegistry()
    counter = Counter("calls", "Calls.", ["way"], registry=registry)
    gauge = Gauge("busy", "Busy.", ["way"], registry=registry)
    for _ in range(3):
        value_of(counter.labels("value")).inc(1)
        counter.labels("inc").inc()
    for step in (1, 1, -1, 1, -1):
        value_of(gauge.labels("value")).inc(step)
        if step > 0:
            gauge.labels("inc").inc()
        else:
            gauge.labels("inc").dec()
    assert registry.get_sample_value("calls_total", {"way": "value"}) == 3.0
    assert registry.get_sample_value("calls_total", {"way": "inc"}) == 3.0
    assert registry.get_sample_value("busy", {"way": "value"}) == 1.0
    assert registry.get_sample_value("busy", {"way": "inc"}) == 1.0


def test_in_process_writes_take_each_values_own_lock() -> None:
    """An in-process value is added to under the lock its ``inc`` takes: while another holder
    has it, the write waits, then lands."""
    registry = CollectorRegistry()
    counter = Counter("held", "Held.", registry=registry)
    histogram = Histogram("held_seconds", "Held.", buckets=BUCKETS, registry=registry)
    calls = value_of(counter)
    writer = HistogramWriter(histogram)
    assert isinstance(calls, LockedValue)
    for value, write in ((counter._value, lambda: calls.inc(1)),
                         (histogram._sum, lambda: writer.observe(0.05))):
        started = threading.Event()

        def run(write=write, started=started):  # type: ignore[no-untyped-def]
            started.set()
            write()

        with value._lock:
            thread = threading.Thread(target=run)
            thread.start()
            started.wait()
            thread.join(0.2)
            assert thread.is_alive()  # waiting for the lock
            assert value._value == 0.0
        thread.join()
    assert registry.get_sample_value("held_total") == 1.0
    assert registry.get_sample_value("held_seconds_count") == 1.0
    assert registry.get_sample_value("held_seconds_bucket", {"le": "0.1"}) == 1.0
    assert registry.get_sample_value("held_seconds_bucket", {"le": "0.01"}) == 0.0


def test_writes_from_many_threads_are_all_counted() -> None:
    registry = CollectorRegistry()
    calls = value_of(Counter("raced", "Raced.", registry=registry))
    writer = HistogramWriter(Histogram("raced_seconds", "Raced.", buckets=BUCKETS,
                                       registry=registry))
    threads, rounds = 8, 2000
    barrier = threading.Barrier(threads)

    def run() -> None:
        barrier.wait()
        for _ in range(rounds):
            calls.inc(1)
            writer.observe(0.5)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # threads take turns often
    try:
        workers = [threading.Thread(target=run) for _ in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    finally:
        sys.setswitchinterval(interval)
    assert registry.get_sample_value("raced_total") == threads * rounds
    assert registry.get_sample_value("raced_seconds_count") == threads * rounds
    assert registry.get_sample_value("raced_seconds_sum") == threads * rounds * 0.5
    assert registry.get_sample_value("raced_seconds_bucket", {"le": "0.1"}) == 0.0


MULTIPROCESS_WRITER = """
import sys
from prometheus_client import Counter, Gauge, Histogram
from asgi_mcp_metrics.writers import HistogramWriter, LockedValue, value_of
values = [float(v) for v in sys.argv[2].split(",")]
child = Histogram("mp_seconds", "M.", ["way"], buckets=(0.005, 0.01, 0.1, 1.0, 10.0)).labels(
    sys.argv[1])
calls = Counter("mp_calls", "C.", ["way"]).labels(sys.argv[1])
busy = Gauge("mp_busy", "B.", ["way"], multiprocess_mode="livesum").labels(sys.argv[1])
if sys.argv[1] == "writer":
    writer = HistogramWriter(child)
    for value in values:
        writer.observe(value)
        value_of(calls).inc(1)
    value_of(busy).inc(1)
    value_of(busy).inc(1)
    value_of(busy).inc(-1)
else:
    for value in values:
        child.observe(value)
        calls.inc()
    busy.inc()
    busy.inc()
    busy.dec()
"""

MULTIPROCESS_READER = """
import json
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector
registry = CollectorRegistry()
MultiProcessCollector(registry)
print(json.dumps(sorted([s.name, s.labels.get("way", ""), s.labels.get("le", ""), s.value]
                        for m in registry.collect() for s in m.samples
                        if "pid" not in s.labels)))
"""


def test_multiprocess_files_hold_what_observe_writes(tmp_path: Path) -> None:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    values = ",".join(str(v) for v in VALUES)
    for way in ("writer", "observe"):
        subprocess.run([sys.executable, "-c", MULTIPROCESS_WRITER, way, values], env=env,
                       check=True)
    out = subprocess.run([sys.executable, "-c", MULTIPROCESS_READER], env=env, check=True,
                         capture_output=True, text=True).stdout
    by_way: dict[str, list[tuple[str, str, float]]] = {"writer": [], "observe": []}
    for name, way, le, value in json.loads(out):
        by_way[way].append((name, le, value))
    assert by_way["writer"] == by_way["observe"]
    assert ("mp_seconds_count", "", float(len(VALUES))) in by_way["writer"]
    assert ("mp_calls_total", "", float(len(VALUES))) in by_way["writer"]
    assert ("mp_busy", "", 1.0) in by_way["writer"]

"""The exposition encoder writes exactly what ``prometheus_client`` writes, faster.

Registries are generated: families of every kind the library builds, namespaces, constant
labels, label values with escapes and unicode, histograms with their own buckets, families with
no child yet, unlabelled metrics, and collectors that are not the library's (process, GC, a
user's own metric, a custom collector) between them.  Both the text format and OpenMetrics are
compared byte for byte with ``prometheus_client``'s own encoders on the same registry.

These tests are what the ``pc020`` ... ``pc026`` tox environments run against each supported
``prometheus_client`` minor version.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import choose_encoder
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.registry import Collector

from asgi_mcp_metrics import MetricsMiddleware
from asgi_mcp_metrics import encoder as encoder_module
from asgi_mcp_metrics._binding import library_metrics
from asgi_mcp_metrics.encoder import OPENMETRICS, TEXT, encode, fast_format
from asgi_mcp_metrics.exposition import render

OPENMETRICS_ACCEPT = "application/openmetrics-text; version=1.0.0"

names = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True)
label_values = st.text(
    st.one_of(st.sampled_from(['\\', '\n', '"', "{", "}", ",", "=", " ", "é", "日", "🙂"]),
              st.characters(codec="utf-8", exclude_categories=("Cs",))),
    max_size=12)
amounts = st.one_of(st.integers(0, 10**7).map(float),
                    st.floats(0, 1e9, allow_nan=False, allow_infinity=False),
                    st.floats(0, 1e-3, allow_nan=False))
gauge_values = st.one_of(amounts, amounts.map(lambda v: -v),
                         st.sampled_from([float("inf"), float("-inf"), float("nan")]))
bucket_lists = st.lists(st.floats(-10, 1e7, allow_nan=False), min_size=1, max_size=6,
                        unique=True).map(sorted)


class UserCollector(Collector):
    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily("user_custom", 'custom "help"\nline', labels=["k"])
        family.add_metric(["v\\"], 1.5)
        yield family


def _platform() -> Collector:
    """Python's own metrics (``python_info``); the process and GC collectors go through the
    same generic path, but their values move between two renders."""
    return PlatformCollector(registry=None)


@st.composite
def registries(draw: st.DrawFn) -> tuple[CollectorRegistry, list[Any]]:
    """A registry and the metric objects on it that the encoder renders itself."""
    registry = CollectorRegistry()
    namespace = draw(st.sampled_from(["", "ns", "my_app"]))
    const_names = draw(st.lists(names.map(lambda n: "c_" + n), max_size=2, unique=True))
    own: list[Any] = []
    used: set[str] = set()
    for index in range(draw(st.integers(1, 5))):
        kind = draw(st.sampled_from(["counter", "gauge", "histogram"]))
        name = f"{draw(names)}_{index}"
        labels = draw(st.lists(names.filter(lambda n: n not in ("le", "quantile")),
                               max_size=3, unique=True))
        labels = [label for label in labels if label not in const_names] + const_names
        documentation = draw(st.text(max_size=20))
        if kind == "counter":
            metric: Any = Counter(name, documentation, labels, namespace=namespace,
                                  registry=None)
        elif kind == "gauge":
            metric = Gauge(name, documentation, labels, namespace=namespace, registry=None)
        else:
            metric = Histogram(name, documentation, labels, namespace=namespace, registry=None,
                               buckets=draw(bucket_lists))
        for _ in range(draw(st.integers(0, 4)) if labels else 1):
            child = metric.labels(*[draw(label_values) for _ in labels]) if labels else metric
            for _ in range(draw(st.integers(0, 3))):
                if kind == "counter":
                    child.inc(draw(amounts))
                elif kind == "gauge":
                    child.set(draw(gauge_values))
                else:
                    child.observe(draw(st.one_of(amounts, st.floats(-20, 0))))
        if name in used:
            continue
        used.add(name)
        if draw(st.booleans()):  # someone else's collector between ours
            registry.register(draw(st.sampled_from([UserCollector, _platform]))())
        registry.register(metric)
        own.append(metric)
    return registry, own


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(registries(), st.booleans())
def test_byte_identical_to_prometheus_client(generated: tuple[CollectorRegistry, list[Any]],
                                             twice: bool) -> None:
    registry, own = generated
    for _ in range(2 if twice else 1):  # the second render comes from the cached prefixes
        assert encode(registry, TEXT, own, generate_latest) == generate_latest(registry)
        assert (encode(registry, OPENMETRICS, own, generate_openmetrics)
                == generate_openmetrics(registry))
    # Pausing (as an offloaded render does) changes nothing of the bytes.
    pauses: list[None] = []
    assert (encode(registry, TEXT, own, generate_latest, pause=lambda: pauses.append(None))
            == generate_latest(registry))
    assert (encode(registry, OPENMETRICS, own, generate_openmetrics,
                   pause=lambda: pauses.append(None)) == generate_openmetrics(registry))


def _change(data: st.DataObject, metric: Any) -> None:
    """One change a service makes between two scrapes: a value moves, a child appears, is
    removed, is made again, a family is cleared or a counter reset."""
    kind = metric._type
    labelled = bool(metric._labelnames)
    action = data.draw(st.sampled_from(["write", "write", "write", "new", "remove", "clear",
                                        "reset"] if labelled else ["write", "write", "reset"]))
    if labelled:
        children = list(metric._metrics)
        if action in ("new", "remove", "clear") or not children:
            if action == "clear":
                metric.clear()
                return
            if action == "remove" and children:
                metric.remove(*data.draw(st.sampled_from(children)))
                return
            values = [data.draw(label_values) for _ in metric._labelnames]
        else:
            values = list(data.draw(st.sampled_from(children)))
        child = metric.labels(*values)
    else:
        child = metric
    if action == "reset" and hasattr(child, "reset"):
        child.reset()
    elif kind == "counter":
        child.inc(data.draw(amounts))
    elif kind == "gauge":
        child.set(data.draw(gauge_values))
    elif kind == "histogram":
        child.observe(data.draw(st.one_of(amounts, st.floats(-20, 0))))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(registries(), st.data())
def test_byte_identical_scrape_after_scrape_while_values_change(
        generated: tuple[CollectorRegistry, list[Any]], data: st.DataObject) -> None:
    """What a scrape keeps for the next (each child's text, when its values have not moved)
    never shows a stale value: between renders in both formats, values change, children come,
    go and come back, families are cleared, counters reset."""
    registry, own = generated
    for _ in range(data.draw(st.integers(1, 6))):
        for _ in range(data.draw(st.integers(0, 4))):
            _change(data, data.draw(st.sampled_from(own)))
        assert encode(registry, TEXT, own, generate_latest) == generate_latest(registry)
        assert (encode(registry, OPENMETRICS, own, generate_openmetrics)
                == generate_openmetrics(registry))


def test_a_reset_counter_shows_its_new_creation_time() -> None:
    registry = CollectorRegistry()
    counter = Counter("c", "C.", ["n"], registry=registry)
    counter.labels("a").inc(2)
    before = encode(registry, OPENMETRICS, [counter], generate_openmetrics)
    counter.labels("a")._created -= 100.0  # as if made 100 s earlier
    counter.labels("a").inc(0)
    after = encode(registry, OPENMETRICS, [counter], generate_openmetrics)
    assert after == generate_openmetrics(registry) and after != before


def test_a_paused_render_pauses_after_each_slice_of_work(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A pause comes once a child's rendering ends ``PAUSE_AFTER_SECONDS`` or more after the
    last one, and once more before the body's final join; with no time allowed, after every
    child, and the bytes do not change."""
    registry = CollectorRegistry()
    histogram = Histogram("h_seconds", "H.", ["n"], registry=registry)
    counter = Counter("c", "C.", ["n"], registry=registry)
    for n in range(49):
        histogram.labels(str(n)).observe(0.1)
    for n in range(32):
        counter.labels(str(n)).inc()
    pauses: list[None] = []
    for allowed, expected in ((0.0, 49 + 32 + 1), (3600.0, 0)):
        monkeypatch.setattr(encoder_module, "PAUSE_AFTER_SECONDS", allowed)
        for fmt, reference in ((TEXT, generate_latest), (OPENMETRICS, generate_openmetrics)):
            pauses.clear()
            body = encode(registry, fmt, [histogram, counter], reference,
                          pause=lambda: pauses.append(None))
            assert body == reference(registry)
            assert len(pauses) == expected


def test_small_families_add_up_to_a_slice(monkeypatch: pytest.MonkeyPatch) -> None:
    """One clock for the whole body: families of one child each, none of them a slice long,
    still pause once their work adds up to one."""
    registry = CollectorRegistry()
    counters = [Counter(f"c{n}", "C.", registry=registry) for n in range(12)]
    for counter in counters:
        counter.inc()
    ticks = iter(range(10_000))
    # Each reading of the clock is one second after the one before; a slice is 2.5 seconds.
    monkeypatch.setattr(encoder_module.time, "perf_counter", lambda: float(next(ticks)))
    monkeypatch.setattr(encoder_module, "PAUSE_AFTER_SECONDS", 2.5)
    pauses: list[None] = []
    body = encode(registry, TEXT, counters, generate_latest, pause=lambda: pauses.append(None))
    assert body == generate_latest(registry)
    # The clock is read at the start (0), after each family, and after each pause: a pause
    # after every third family (readings 3, 7, 11, 15), and none left before the join.
    assert len(pauses) == 4


def test_the_pieces_of_a_slice_become_one_chunk_at_its_pause(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The body's final join copies one chunk per slice, not every piece."""
    monkeypatch.setattr(encoder_module, "PAUSE_AFTER_SECONDS", 0.0)
    parts = [b"a", b"b"]
    seen: list[list[bytes]] = []
    pacer = encoder_module._Pacer(lambda: seen.append(list(parts)), parts)
    parts += [b"c", b"d", b"e"]
    pacer.check()
    parts += [b"f"]
    pacer.check()
    parts += [b"g", b"h"]
    assert list(pacer.paced(["child"])) == ["child"]  # type: ignore[list-item]
    assert seen == [[b"abcde"], [b"abcde", b"f"], [b"abcde", b"f", b"gh"]]
    assert b"".join(parts) == b"abcdefgh"


def test_an_offloaded_render_pauses(monkeypatch: pytest.MonkeyPatch) -> None:
    """The endpoint's worker-thread renders give the event loop its turns; the loop's own
    renders do not pause."""
    from asgi_mcp_metrics import MetricsEndpoint, exposition

    registry = CollectorRegistry()
    histogram = Histogram("h_seconds", "H.", ["n"], registry=registry)
    for n in range(20):
        histogram.labels(str(n)).observe(0.1)
    pauses: list[None] = []
    monkeypatch.setattr(encoder_module, "PAUSE_AFTER_SECONDS", 0.0)
    monkeypatch.setattr(exposition, "_release_gil", lambda: pauses.append(None))
    monkeypatch.setattr(exposition, "library_metrics", lambda registry: [histogram])
    for offload, expected in ((None, 0), (0.0, 20 + 1)):  # each child, then the final join
        pauses.clear()
        endpoint = MetricsEndpoint(registry=registry, render_offload_seconds=offload) \
            if offload is not None else MetricsEndpoint(registry=registry)
        answer = asyncio.run(endpoint.answer("GET", {}, ""))
        assert answer.status == 200 and b'h_seconds_count{n="0"} 1.0' in answer.body
        assert len(pauses) == expected


def _served_registry() -> CollectorRegistry:
    """A registry the middleware filled, with a user's metric and the platform collector."""
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from tests.asgi import call, http_scope

    registry = CollectorRegistry()
    user = Counter("user_jobs", "a user's own counter", ["queue"], registry=registry)
    user.labels("a").inc(3)
    registry.register(_platform())
    app = MetricsMiddleware(
        Starlette(routes=[Route("/items/{n}", lambda r: PlainTextResponse("ok"))]),
        registry=registry, namespace="svc", constant_labels={"zone": 'eu "1"\n'})
    for path in ("/items/1", "/items/2", "/nope"):
        asyncio.run(call(app, http_scope(path)))
    return registry


@pytest.mark.parametrize("accept", ["", "text/plain", OPENMETRICS_ACCEPT])
def test_the_endpoint_renders_as_prometheus_client_does(accept: str) -> None:
    registry = _served_registry()
    own = library_metrics(registry)
    assert own  # the library's families do go through this encoder
    encoder, _ = choose_encoder(accept)
    assert fast_format(encoder) is not None
    body = render(registry, accept=accept, accept_encoding="", names=[], gzip=False).body
    assert body == encoder(registry)
    assert b'svc_http_server_request_duration_seconds_bucket{' in body
    assert b'user_jobs_total{queue="a"} 3.0\n' in body


def test_without_created_series_as_the_filter_leaves_them() -> None:
    registry = _served_registry()
    for accept in ("", OPENMETRICS_ACCEPT):
        body = render(registry, accept=accept, accept_encoding="", names=[], gzip=False,
                      created_series=False).body
        encoder, _ = choose_encoder(accept)
        assert b"_created" not in body
        # The same lines, less every _created family and sample.
        full = encoder(registry).decode().splitlines(keepends=True)
        assert body.decode() == "".join(line for line in full if "_created" not in line)


@pytest.mark.parametrize("accept", [
    "application/openmetrics-text; version=1.0.0; escaping=dots",
    "text/plain; version=1.0.0; escaping=allow-utf-8",
])
def test_other_negotiated_encodings_stay_with_prometheus_client(accept: str) -> None:
    registry = _served_registry()
    encoder, _ = choose_encoder(accept)
    body = render(registry, accept=accept, accept_encoding="", names=[], gzip=False).body
    assert body == encoder(registry)

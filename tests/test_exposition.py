from __future__ import annotations

import asyncio
import base64
import gzip
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from asgiref import testing as asgiref_testing
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client import parser as text_parser
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.openmetrics import parser as openmetrics_parser

from asgi_mcp_metrics.exposition import (
    AuthResult,
    Exposition,
    MetricsEndpoint,
    authorize,
    render,
)
from tests.promtool import check_metrics

pytestmark = pytest.mark.anyio

# Neither asgiref's test communicator nor the exposition parsers carry type hints.
ApplicationCommunicator: Any = asgiref_testing.ApplicationCommunicator
parse_om: Callable[[str], Iterable[Metric]] = openmetrics_parser.text_string_to_metric_families
parse_text: Callable[[str], Iterable[Metric]] = text_parser.text_string_to_metric_families

TEXT_0_0_4 = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS_1_0_0 = (
    "application/openmetrics-text; version=1.0.0; charset=utf-8; escaping=underscores"
)
# The Accept header Prometheus 2.x sends on every scrape.
PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;"
    "q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)

FIXED_TEXT = """\
# HELP demo_requests_total Requests served.
# TYPE demo_requests_total counter
demo_requests_total{route="/a"} 3.0
# HELP demo_in_flight Requests in flight.
# TYPE demo_in_flight gauge
demo_in_flight 2.0
# HELP demo_duration_seconds Request duration.
# TYPE demo_duration_seconds histogram
demo_duration_seconds_bucket{le="0.1"} 1.0
demo_duration_seconds_bucket{le="1.0"} 3.0
demo_duration_seconds_bucket{le="+Inf"} 4.0
demo_duration_seconds_count 4.0
demo_duration_seconds_sum 2.5
"""


class FixedCollector:
    """Fixed values (no ``_created`` timestamps), so whole bodies can be compared exactly."""

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily("demo_requests", "Requests served.", labels=["route"])
        requests.add_metric(["/a"], 3)
        yield requests
        yield GaugeMetricFamily("demo_in_flight", "Requests in flight.", value=2)
        duration = HistogramMetricFamily("demo_duration_seconds", "Request duration.")
        duration.add_metric([], buckets=[("0.1", 1), ("1.0", 3), ("+Inf", 4)], sum_value=2.5)
        yield duration


class ThreadRecordingCollector:
    """Many series; remembers which thread each collect() ran on.  The first collect() spends
    ``first_cpu_seconds`` of its thread's CPU time."""

    def __init__(self, series: int, first_cpu_seconds: float = 0.0) -> None:
        self.series = series
        self.first_cpu_seconds = first_cpu_seconds
        self.threads: list[threading.Thread] = []

    def collect(self) -> Iterator[Metric]:
        self.threads.append(threading.current_thread())
        if len(self.threads) == 1:
            spent_by = time.thread_time() + self.first_cpu_seconds
            while time.thread_time() < spent_by:
                pass
        family = GaugeMetricFamily("demo_shard_items", "Items per shard.", labels=["shard"])
        for shard in range(self.series):
            family.add_metric([str(shard)], shard)
        yield family


class FailingCollector:
    def collect(self) -> Iterator[Metric]:
        raise RuntimeError("backend gone")


@dataclass
class Reply:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes

    def values(self, name: str) -> list[str]:
        return [v.decode("latin-1") for k, v in self.headers if k.decode("latin-1").lower() == name]

    def header(self, name: str) -> str | None:
        values = self.values(name)
        assert len(values) <= 1, f"{name} sent {len(values)} times"
        return values[0] if values else None


#: Seconds after which a scrape that has not answered counts as hung.
HANG = 300


async def call(
    app: Any,
    method: str = "GET",
    headers: Sequence[tuple[str, str]] = (),
    query: bytes = b"",
) -> Reply:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": "/metrics",
        "raw_path": b"/metrics",
        "query_string": query,
        "root_path": "",
        "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    communicator = ApplicationCommunicator(app, scope)
    await communicator.send_input({"type": "http.request", "body": b"", "more_body": False})
    # (A bound against a hang, not a timing: a render in the lower-priority thread on a
    # machine whose CPUs other processes keep busy takes as long as the kernel lets it.)
    start = await communicator.receive_output(timeout=HANG)
    assert start["type"] == "http.response.start"
    body = await communicator.receive_output(timeout=HANG)
    assert body["type"] == "http.response.body"
    assert not body.get("more_body", False)
    await communicator.wait(timeout=HANG)
    return Reply(start["status"], list(start["headers"]), body["body"])


def basic(username: str, password: str) -> tuple[str, str]:
    token = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
    return ("Authorization", f"Basic {token}")


@pytest.fixture(autouse=True)
def single_process(monkeypatch: pytest.MonkeyPatch) -> None:
    # A suite run with multiprocess mode on must not change what these tests render.
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    monkeypatch.delenv("prometheus_multiproc_dir", raising=False)


@pytest.fixture
def registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(FixedCollector())
    return registry


# --- negotiation -------------------------------------------------------------------------------


async def test_plain_scrape_gets_text_format_0_0_4(registry: CollectorRegistry) -> None:
    reply = await call(MetricsEndpoint(registry=registry))

    assert reply.status == 200
    assert reply.body.decode() == FIXED_TEXT
    assert reply.header("content-type") == TEXT_0_0_4
    assert reply.header("content-length") == str(len(FIXED_TEXT))
    assert reply.header("cache-control") == "no-cache"
    assert reply.header("content-encoding") is None
    assert reply.header("vary") == "Accept, Accept-Encoding"


@pytest.mark.parametrize(
    ("accept", "content_type"),
    [
        (PROMETHEUS_ACCEPT, OPENMETRICS_1_0_0),
        ("application/openmetrics-text; version=1.0.0", OPENMETRICS_1_0_0),
        (
            "application/openmetrics-text",
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        ),
    ],
)
async def test_openmetrics_is_served_when_asked_for(
    registry: CollectorRegistry, accept: str, content_type: str
) -> None:
    reply = await call(MetricsEndpoint(registry=registry), headers=[("Accept", accept)])

    assert reply.status == 200
    assert reply.header("content-type") == content_type
    assert reply.body.endswith(b"# EOF\n")
    # promtool only reads the text format, so OpenMetrics goes through the strict parser.
    families = {f.name: f for f in parse_om(reply.body.decode())}
    assert [(s.name, s.labels, s.value) for s in families["demo_requests"].samples] == [
        ("demo_requests_total", {"route": "/a"}, 3.0)
    ]
    assert families["demo_in_flight"].samples[0].value == 2.0
    buckets = [(s.labels["le"], s.value) for s in families["demo_duration_seconds"].samples[:3]]
    assert buckets == [("0.1", 1.0), ("1.0", 3.0), ("+Inf", 4.0)]


@pytest.mark.parametrize(
    ("accept", "content_type"),
    [
        ("text/plain", TEXT_0_0_4),
        ("*/*", TEXT_0_0_4),
        ("application/json", TEXT_0_0_4),
        (
            "text/plain;version=1.0.0",
            "text/plain; version=1.0.0; charset=utf-8; escaping=underscores",
        ),
    ],
)
async def test_other_accept_headers_get_the_text_format(
    registry: CollectorRegistry, accept: str, content_type: str
) -> None:
    reply = await call(MetricsEndpoint(registry=registry), headers=[("Accept", accept)])

    assert reply.header("content-type") == content_type
    assert reply.body.decode() == FIXED_TEXT


# --- gzip --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "accept_encoding", ["gzip", "deflate, gzip;q=0.5", "br, *", "*;q=0, GZIP;q=1"]
)
async def test_gzip_round_trip(registry: CollectorRegistry, accept_encoding: str) -> None:
    reply = await call(
        MetricsEndpoint(registry=registry), headers=[("Accept-Encoding", accept_encoding)]
    )

    assert reply.header("content-encoding") == "gzip"
    assert reply.header("content-length") == str(len(reply.body))
    assert reply.header("vary") == "Accept, Accept-Encoding"
    assert gzip.decompress(reply.body).decode() == FIXED_TEXT


@pytest.mark.parametrize(
    "accept_encoding", ["", "identity", "deflate, br", "gzip;q=0", "gzip;q=x", "gzip;q=0.0, *"]
)
async def test_no_gzip_unless_accepted(registry: CollectorRegistry, accept_encoding: str) -> None:
    reply = await call(
        MetricsEndpoint(registry=registry), headers=[("Accept-Encoding", accept_encoding)]
    )

    assert reply.header("content-encoding") is None
    assert reply.body.decode() == FIXED_TEXT


async def test_gzip_option_off(registry: CollectorRegistry) -> None:
    endpoint = MetricsEndpoint(registry=registry, gzip=False)
    reply = await call(endpoint, headers=[("Accept-Encoding", "gzip")])

    assert reply.header("content-encoding") is None
    assert reply.header("vary") == "Accept"
    assert reply.body.decode() == FIXED_TEXT


# --- name[] filter -----------------------------------------------------------------------------


async def test_name_filter_keeps_only_the_named_series(registry: CollectorRegistry) -> None:
    query = b"name[]=demo_requests_total&name[]=demo_in_flight"
    reply = await call(MetricsEndpoint(registry=registry), query=query)

    assert reply.body.decode() == (
        "# HELP demo_requests_total Requests served.\n"
        "# TYPE demo_requests_total counter\n"
        'demo_requests_total{route="/a"} 3.0\n'
        "# HELP demo_in_flight Requests in flight.\n"
        "# TYPE demo_in_flight gauge\n"
        "demo_in_flight 2.0\n"
    )


async def test_name_filter_selects_single_samples_of_a_histogram(
    registry: CollectorRegistry,
) -> None:
    reply = await call(
        MetricsEndpoint(registry=registry), query=b"name%5B%5D=demo_duration_seconds_count"
    )

    assert reply.body.decode() == (
        "# HELP demo_duration_seconds Request duration.\n"
        "# TYPE demo_duration_seconds histogram\n"
        "demo_duration_seconds_count 4.0\n"
    )


async def test_unknown_name_gives_empty_body_and_plain_name_is_not_a_filter(
    registry: CollectorRegistry,
) -> None:
    endpoint = MetricsEndpoint(registry=registry)

    assert (await call(endpoint, query=b"name[]=nothing_here")).body == b""
    assert (await call(endpoint, query=b"name=demo_in_flight")).body.decode() == FIXED_TEXT


# --- methods -----------------------------------------------------------------------------------


async def test_head_sends_the_get_headers_without_a_body(registry: CollectorRegistry) -> None:
    endpoint = MetricsEndpoint(registry=registry)
    headers = [("Accept-Encoding", "gzip")]
    get = await call(endpoint, "GET", headers)
    head = await call(endpoint, "HEAD", headers)

    assert head.status == 200
    assert head.body == b""
    assert head.headers == get.headers
    assert head.header("content-length") == str(len(get.body))


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
async def test_other_methods_get_405(registry: CollectorRegistry, method: str) -> None:
    reply = await call(MetricsEndpoint(registry=registry), method)

    assert reply.status == 405
    assert reply.header("allow") == "GET, HEAD"
    assert reply.body == b"Method Not Allowed\n"
    assert reply.header("content-length") == str(len(reply.body))


# --- auth --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ([], 401),
        ([("Authorization", "Bearer wrong-token")], 403),
        ([("Authorization", "Bearer s3cret-token-1")], 200),
        ([("Authorization", "bearer   s3cret-token-1")], 200),
        ([("Authorization", "Bearer s3cret-token-1x")], 403),
        ([("Authorization", "Bearer")], 403),
        ([basic("s3cret-token-1", "")], 403),
        (
            [
                ("Authorization", "Bearer s3cret-token-1"),
                ("Authorization", "Bearer s3cret-token-1"),
            ],
            403,
        ),
    ],
)
async def test_bearer_auth(
    registry: CollectorRegistry, headers: list[tuple[str, str]], status: int
) -> None:
    endpoint = MetricsEndpoint(registry=registry, auth_bearer_token="s3cret-token-1")
    reply = await call(endpoint, headers=headers)

    assert reply.status == status
    assert reply.values("www-authenticate") == (['Bearer realm="metrics"'] if status == 401 else [])
    assert (reply.body.decode() == FIXED_TEXT) == (status == 200)


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ([], 401),
        ([basic("scraper", "pa:ss wörd")], 200),
        ([basic("scraper", "wrong")], 403),
        ([basic("scrape", "pa:ss wörd")], 403),
        ([basic("Scraper", "pa:ss wörd")], 403),
        ([("Authorization", "Basic not*base64")], 403),
        ([("Authorization", "Basic " + base64.b64encode(b"scraper").decode())], 403),
        ([("Authorization", "Bearer pa:ss wörd")], 403),
    ],
)
async def test_basic_auth(
    registry: CollectorRegistry, headers: list[tuple[str, str]], status: int
) -> None:
    endpoint = MetricsEndpoint(
        registry=registry, auth_basic_username="scraper", auth_basic_password="pa:ss wörd"
    )
    reply = await call(endpoint, headers=headers)

    assert reply.status == status
    assert reply.values("www-authenticate") == (['Basic realm="metrics"'] if status == 401 else [])


async def test_bearer_and_basic_together_accept_either(registry: CollectorRegistry) -> None:
    endpoint = MetricsEndpoint(
        registry=registry,
        auth_bearer_token="tok",
        auth_basic_username="scraper",
        auth_basic_password="pw",
    )

    missing = await call(endpoint)
    assert missing.status == 401
    assert missing.values("www-authenticate") == ['Bearer realm="metrics"', 'Basic realm="metrics"']
    assert (await call(endpoint, headers=[("Authorization", "Bearer tok")])).status == 200
    assert (await call(endpoint, headers=[basic("scraper", "pw")])).status == 200
    assert (await call(endpoint, headers=[basic("scraper", "tok")])).status == 403


def api_key_check(headers: Mapping[str, str]) -> bool:
    return headers.get("x-api-key") == "k-123"


async def async_api_key_check(headers: Mapping[str, str]) -> bool:
    return headers.get("x-api-key") == "k-123"


@pytest.mark.parametrize("check", [api_key_check, async_api_key_check])
async def test_auth_callable(registry: CollectorRegistry, check: Any) -> None:
    endpoint = MetricsEndpoint(registry=registry, auth=check)

    allowed = await call(endpoint, headers=[("X-Api-Key", "k-123")])
    refused = await call(endpoint, headers=[("X-Api-Key", "nope")])
    missing = await call(endpoint)

    assert allowed.status == 200
    assert allowed.body.decode() == FIXED_TEXT
    # The callable decides what credentials are, so there is no challenge to send: 403.
    assert (refused.status, refused.values("www-authenticate")) == (403, [])
    assert (missing.status, missing.values("www-authenticate")) == (403, [])


async def test_auth_callable_is_an_alternative_to_a_token(registry: CollectorRegistry) -> None:
    endpoint = MetricsEndpoint(registry=registry, auth_bearer_token="tok", auth=api_key_check)

    assert (await call(endpoint, headers=[("X-Api-Key", "k-123")])).status == 200
    assert (await call(endpoint, headers=[("Authorization", "Bearer tok")])).status == 200
    assert (await call(endpoint)).status == 401
    assert (await call(endpoint, headers=[("Authorization", "Bearer no")])).status == 403


@pytest.mark.parametrize("verdict", ["yes", 1, None])
async def test_auth_callable_must_return_true_itself(
    registry: CollectorRegistry, verdict: object
) -> None:
    def check(headers: Mapping[str, str]) -> Any:
        return verdict

    endpoint = MetricsEndpoint(registry=registry, auth=check)

    assert (await call(endpoint)).status == 403


async def test_auth_callable_that_raises_is_logged_and_refused(
    registry: CollectorRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(headers: Mapping[str, str]) -> bool:
        raise LookupError("identity service down")

    endpoint = MetricsEndpoint(registry=registry, auth=broken)
    with caplog.at_level(logging.ERROR, logger="asgi_mcp_metrics.exposition"):
        reply = await call(endpoint, headers=[("Authorization", "Bearer secret-value")])

    assert reply.status == 403
    [record] = caplog.records
    assert record.exc_info is not None and isinstance(record.exc_info[1], LookupError)
    assert "secret-value" not in caplog.text


async def test_authorize_without_configuration_allows() -> None:
    result = await authorize(
        {}, bearer_token=None, basic_username=None, basic_password=None, auth=None
    )

    assert result == AuthResult(200)
    assert result.allowed


def test_denial_response() -> None:
    denial = AuthResult(401, ('Bearer realm="metrics"',)).denial()

    assert denial == Exposition(
        401,
        [
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", b"13"),
            (b"cache-control", b"no-cache"),
            (b"www-authenticate", b'Bearer realm="metrics"'),
        ],
        b"Unauthorized\n",
    )
    assert AuthResult(403).denial().body == b"Forbidden\n"


# --- the framework-free render() ---------------------------------------------------------------


def test_render_without_an_endpoint(registry: CollectorRegistry) -> None:
    exposition = render(registry, accept="", accept_encoding="gzip", names=[], gzip=True)

    assert exposition.status == 200
    assert exposition.headers == [
        (b"content-type", TEXT_0_0_4.encode()),
        (b"cache-control", b"no-cache"),
        (b"vary", b"Accept, Accept-Encoding"),
        (b"content-encoding", b"gzip"),
        (b"content-length", str(len(exposition.body)).encode()),
    ]
    assert gzip.decompress(exposition.body).decode() == FIXED_TEXT


def test_text_output_passes_promtool(registry: CollectorRegistry) -> None:
    live = CollectorRegistry()
    Counter("demo_jobs", "Jobs done.", ["queue"], registry=live).labels("mail").inc(4)
    Gauge("demo_queue_depth", "Queued jobs.", registry=live).set(7)
    Histogram("demo_job_duration_seconds", "Job duration.", registry=live).observe(0.2)

    for source in (registry, live):
        exposition = render(source, accept="", accept_encoding="", names=[], gzip=True)
        check_metrics(exposition.body)


def test_promtool_helper_rejects_bad_expositions() -> None:
    with pytest.raises(AssertionError, match="text format parsing error"):
        check_metrics(b"broken{{ 1\n")
    # A lint finding (counter without _total) counts as a failure too.
    with pytest.raises(AssertionError, match="_total"):
        check_metrics("# HELP jobs Jobs.\n# TYPE jobs counter\njobs 1\n")


# --- rendering off the event loop --------------------------------------------------------------


async def test_large_registry_moves_rendering_to_a_worker_thread() -> None:
    loop_thread = threading.current_thread()
    collector = ThreadRecordingCollector(series=10_000)
    registry = CollectorRegistry()
    registry.register(collector)
    endpoint = MetricsEndpoint(registry=registry)

    first = await call(endpoint)
    second = await call(endpoint)

    assert first.body == second.body
    assert first.body.count(b"\ndemo_shard_items{") == 10_000
    # Nothing is known about the registry before the first scrape, so it renders in place; 10k
    # series take far longer than the 5 ms default, so the next scrape is moved off the loop.
    assert collector.threads[0] is loop_thread
    assert collector.threads[1] is not loop_thread


async def test_zero_offload_threshold_always_uses_a_thread(registry: CollectorRegistry) -> None:
    collector = ThreadRecordingCollector(series=1)
    registry.register(collector)
    endpoint = MetricsEndpoint(registry=registry, render_offload_seconds=0)

    await call(endpoint)
    await call(endpoint)

    assert len(collector.threads) == 2
    assert threading.current_thread() not in collector.threads


async def test_renders_faster_than_the_threshold_stay_on_the_loop() -> None:
    collector = ThreadRecordingCollector(series=10_000)
    registry = CollectorRegistry()
    registry.register(collector)
    endpoint = MetricsEndpoint(registry=registry, render_offload_seconds=3600)

    await call(endpoint)
    await call(endpoint)

    assert collector.threads == [threading.current_thread()] * 2


async def test_an_offloaded_render_is_timed_by_its_cpu_not_its_pauses(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The pauses of an offloaded render (and waiting for a CPU) are not rendering: a render
    that became cheap comes back to the event loop however long its last one took."""
    from asgi_mcp_metrics import encoder as encoder_module
    from asgi_mcp_metrics import exposition

    pauses: list[str] = []

    def long_pause() -> None:
        pauses.append(threading.current_thread().name)
        time.sleep(0.05)

    monkeypatch.setattr(exposition, "_release_gil", long_pause)
    monkeypatch.setattr(encoder_module, "PAUSE_AFTER_SECONDS", 0.0)
    registry = CollectorRegistry()
    jobs = Counter("jobs", "Jobs.", ["queue"], registry=registry)
    for queue in ("a", "b", "c"):
        jobs.labels(queue).inc()
    monkeypatch.setattr(exposition, "library_metrics", lambda registry: [jobs])
    costly = ThreadRecordingCollector(series=1, first_cpu_seconds=0.05)
    registry.register(costly)
    endpoint = MetricsEndpoint(registry=registry, render_offload_seconds=0.02)

    replies = [await call(endpoint) for _ in range(3)]

    loop_thread = threading.current_thread()
    # 1: nothing known yet, in place (50 ms of CPU); 2: offloaded, cheap, but its pauses make
    # it take over 150 ms; 3: back on the loop.
    assert costly.threads[0] is loop_thread
    assert costly.threads[1] is not loop_thread
    assert costly.threads[2] is loop_thread
    assert len(pauses) >= 3 and set(pauses) == {"asgi-mcp-metrics-render_0"}
    assert {reply.body for reply in replies} == {replies[0].body}
    assert b'jobs_total{queue="c"} 1.0\n' in replies[0].body


@pytest.mark.parametrize(("series", "compressed_in"), [(10_000, "render thread"), (10, "loop")])
async def test_a_large_body_is_compressed_off_the_event_loop(
        monkeypatch: pytest.MonkeyPatch, series: int, compressed_in: str) -> None:
    """Encoding holds the GIL and stays on the loop while it is quick; zlib does not need the
    GIL, so a large body is compressed in the render thread while the loop serves requests."""
    from asgi_mcp_metrics import exposition

    compressing: list[threading.Thread] = []
    original = exposition.gzipped

    def recorded_gzipped(answer: Exposition) -> Exposition:
        compressing.append(threading.current_thread())
        return original(answer)

    monkeypatch.setattr(exposition, "gzipped", recorded_gzipped)
    collector = ThreadRecordingCollector(series=series)
    registry = CollectorRegistry()
    registry.register(collector)
    endpoint = MetricsEndpoint(registry=registry, render_offload_seconds=3600)

    plain = await call(endpoint)
    compressed = await call(endpoint, headers=[("Accept-Encoding", "gzip")])

    loop_thread = threading.current_thread()
    assert collector.threads == [loop_thread, loop_thread]
    [thread] = compressing
    if compressed_in == "loop":
        assert len(plain.body) < exposition.GZIP_IN_LOOP_BYTES
        assert thread is loop_thread
    else:
        assert len(plain.body) >= exposition.GZIP_IN_LOOP_BYTES
        assert thread.name == "asgi-mcp-metrics-render_0"
    assert compressed.header("content-encoding") == "gzip"
    assert compressed.header("content-length") == str(len(compressed.body))
    assert gzip.decompress(compressed.body) == plain.body
    assert plain.header("content-length") == str(len(plain.body))
    assert compressed.header("vary") == plain.header("vary") == "Accept, Accept-Encoding"


@pytest.mark.parametrize("offload", [0, 3600])
async def test_failing_collector_gives_500_and_a_log_line(
    caplog: pytest.LogCaptureFixture, offload: float
) -> None:
    registry = CollectorRegistry()
    registry.register(FailingCollector())
    endpoint = MetricsEndpoint(registry=registry, render_offload_seconds=offload)
    with caplog.at_level(logging.ERROR, logger="asgi_mcp_metrics.exposition"):
        reply = await call(endpoint)

    assert reply.status == 500
    assert reply.body == b"Internal Server Error\n"
    [record] = caplog.records
    assert record.exc_info is not None and isinstance(record.exc_info[1], RuntimeError)


# --- other scopes ------------------------------------------------------------------------------


async def test_lifespan_startup_and_shutdown_complete() -> None:
    communicator = ApplicationCommunicator(MetricsEndpoint(), {"type": "lifespan"})

    await communicator.send_input({"type": "lifespan.startup"})
    assert await communicator.receive_output(timeout=5) == {"type": "lifespan.startup.complete"}
    await communicator.send_input({"type": "lifespan.shutdown"})
    assert await communicator.receive_output(timeout=5) == {"type": "lifespan.shutdown.complete"}
    await communicator.wait(timeout=5)


async def test_websocket_is_closed() -> None:
    scope = {"type": "websocket", "path": "/metrics", "headers": [], "query_string": b""}
    communicator = ApplicationCommunicator(MetricsEndpoint(), scope)

    await communicator.send_input({"type": "websocket.connect"})
    assert await communicator.receive_output(timeout=5) == {"type": "websocket.close", "code": 1000}
    await communicator.wait(timeout=5)


# --- construction ------------------------------------------------------------------------------


def test_defaults() -> None:
    endpoint = MetricsEndpoint()

    assert endpoint.registry is REGISTRY
    assert endpoint.gzip is True
    assert endpoint.render_offload_seconds == 0.001


@pytest.mark.parametrize(
    ("options", "option_named"),
    [
        ({"registry": "REGISTRY"}, "registry"),
        ({"auth_bearer_token": ""}, "auth_bearer_token"),
        ({"auth_bearer_token": b"hunter2hunter2"}, "auth_bearer_token"),
        ({"auth_bearer_token": "hunter2 hunter2"}, "auth_bearer_token"),
        ({"auth_basic_username": "scraper"}, "auth_basic_password"),
        ({"auth_basic_password": "hunter2hunter2"}, "auth_basic_username"),
        (
            {"auth_basic_username": "", "auth_basic_password": "hunter2hunter2"},
            "auth_basic_username",
        ),
        ({"auth_basic_username": "scraper", "auth_basic_password": ""}, "auth_basic_password"),
        (
            {"auth_basic_username": "a:b", "auth_basic_password": "hunter2hunter2"},
            "auth_basic_username",
        ),
        ({"auth_basic_username": "scraper", "auth_basic_password": 42}, "auth_basic_password"),
        ({"auth": "hunter2hunter2"}, "auth"),
        ({"gzip": 1}, "gzip"),
        ({"gzip": "yes"}, "gzip"),
        ({"render_offload_seconds": -0.001}, "render_offload_seconds"),
        ({"render_offload_seconds": float("nan")}, "render_offload_seconds"),
        ({"render_offload_seconds": float("inf")}, "render_offload_seconds"),
        ({"render_offload_seconds": "0.1"}, "render_offload_seconds"),
        ({"render_offload_seconds": True}, "render_offload_seconds"),
    ],
)
def test_invalid_options_are_refused_by_name(options: dict[str, Any], option_named: str) -> None:
    with pytest.raises(ValueError, match=rf"\b{option_named}\b") as raised:
        MetricsEndpoint(**options)

    assert "hunter2" not in str(raised.value)


def test_options_are_keyword_only() -> None:
    with pytest.raises(TypeError):
        MetricsEndpoint(CollectorRegistry())  # type: ignore[call-arg]


def test_repr_names_schemes_but_never_secrets() -> None:
    endpoint = MetricsEndpoint(
        auth_bearer_token="hunter2-token",
        auth_basic_username="scraper-user",
        auth_basic_password="hunter2-password",
        auth=api_key_check,
    )

    assert repr(endpoint) == (
        "MetricsEndpoint(auth=['bearer', 'basic', 'callable'], gzip=True, "
        "render_offload_seconds=0.001)"
    )


# --- multiprocess ------------------------------------------------------------------------------

WORKER = """
import sys
from prometheus_client import Counter, Gauge, Histogram

jobs, busy, seconds = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
Counter("worker_jobs", "Jobs done.").inc(jobs)
Gauge("worker_busy_slots", "Busy slots.", multiprocess_mode="livesum").set(busy)
Histogram("worker_job_duration_seconds", "Job duration.", buckets=(0.5, 1.0)).observe(seconds)
print("ready", flush=True)
sys.stdin.read()  # stay alive until the test has scraped
"""


@pytest.fixture
def two_workers(tmp_path: Path) -> Iterator[Path]:
    """Two live processes that wrote metrics into one multiprocess directory."""
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, *arguments],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        for arguments in (("3", "10", "0.3"), ("4", "20", "2.0"))
    ]
    try:
        for worker in workers:
            assert worker.stdout is not None
            assert worker.stdout.readline() == b"ready\n"
        yield tmp_path
    finally:
        for worker in workers:
            assert worker.stdin is not None
            worker.stdin.close()
            worker.wait(timeout=10)
            assert worker.stdout is not None
            worker.stdout.close()


# prometheus_client's writers still honour the old lower-case spelling, so the reader does too.
@pytest.mark.parametrize("variable", ["PROMETHEUS_MULTIPROC_DIR", "prometheus_multiproc_dir"])
async def test_multiprocess_values_are_summed_across_workers(
    two_workers: Path, monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    own = CollectorRegistry()
    Gauge("only_in_this_process", "Not written to the multiprocess directory.", registry=own)
    endpoint = MetricsEndpoint(registry=own)
    # Set after the endpoint exists: the variable is read at render time.
    monkeypatch.setenv(variable, str(two_workers))

    reply = await call(endpoint)

    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in parse_text(reply.body.decode())
        for s in family.samples
    }
    assert samples == {
        ("worker_jobs_total", ()): 7.0,
        ("worker_busy_slots", ()): 30.0,
        ("worker_job_duration_seconds_bucket", (("le", "0.5"),)): 1.0,
        ("worker_job_duration_seconds_bucket", (("le", "1.0"),)): 1.0,
        ("worker_job_duration_seconds_bucket", (("le", "+Inf"),)): 2.0,
        ("worker_job_duration_seconds_count", ()): 2.0,
        ("worker_job_duration_seconds_sum", ()): 2.3,
    }
    check_metrics(reply.body)


async def test_multiprocess_with_name_filter(
    two_workers: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(two_workers))

    reply = await call(MetricsEndpoint(), query=b"name[]=worker_busy_slots")

    assert reply.body.decode() == (
        "# HELP worker_busy_slots Busy slots.\n"
        "# TYPE worker_busy_slots gauge\n"
        "worker_busy_slots 30.0\n"
    )


# --- _created samples ----------------------------------------------------------------------------


@pytest.mark.parametrize("accept", ["", PROMETHEUS_ACCEPT])
async def test_created_samples_are_left_out_unless_asked_for(accept: str) -> None:
    registry = CollectorRegistry()
    Counter("jobs", "Jobs.", ["kind"], registry=registry).labels("a").inc(2)
    Histogram("wait_seconds", "Wait.", registry=registry, buckets=(1.0,)).observe(0.5)
    Gauge("busy", "Busy.", registry=registry).set(1)
    headers = [("accept", accept)]

    def created_lines(body: bytes) -> list[str]:
        return [line for line in body.decode().splitlines() if "_created" in line]

    default = await call(MetricsEndpoint(registry=registry), headers=headers)
    assert created_lines(default.body) == []
    assert 'jobs_total{kind="a"} 2.0' in default.body.decode()
    assert "wait_seconds_count 1.0" in default.body.decode()
    with_created = await call(MetricsEndpoint(registry=registry, created_series=True),
                              headers=headers)
    assert [line.split("{")[0].split(" ")[0] for line in created_lines(with_created.body)
            if not line.startswith("#")] == ["jobs_created", "wait_seconds_created"]
    filtered = await call(MetricsEndpoint(registry=registry), headers=headers,
                          query=b"name[]=jobs_total&name[]=jobs_created")
    assert created_lines(filtered.body) == []
    assert 'jobs_total{kind="a"} 2.0' in filtered.body.decode()
    if accept:
        list(parse_om(default.body.decode()))  # valid OpenMetrics without them
    else:
        check_metrics(default.body)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="thread niceness is Linux's")
def test_offloaded_renders_run_in_a_thread_of_their_own_at_a_lower_priority(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The scrape's thread yields the CPUs to the app's threads; the app's own ``to_thread``
    work keeps its priority and never queues behind a render."""
    from asgi_mcp_metrics import encoder as encoder_module
    from asgi_mcp_metrics import exposition

    seen: list[tuple[str, int]] = []

    def pause() -> None:
        seen.append((threading.current_thread().name, os.getpriority(os.PRIO_PROCESS, 0)))

    monkeypatch.setattr(exposition, "_release_gil", pause)
    monkeypatch.setattr(encoder_module, "PAUSE_AFTER_SECONDS", 0.0)
    registry = CollectorRegistry()
    jobs = Counter("jobs", "Jobs.", registry=registry)
    jobs.inc()
    monkeypatch.setattr(exposition, "library_metrics", lambda registry: [jobs])
    endpoint = MetricsEndpoint(registry=registry, render_offload_seconds=0)

    async def scrape_and_work() -> tuple[Exposition, int]:
        answer = await endpoint.answer("GET", {}, "")
        own = await asyncio.to_thread(os.getpriority, os.PRIO_PROCESS, 0)
        return answer, own

    answer, app_thread_niceness = asyncio.run(scrape_and_work())
    assert answer.status == 200 and b"jobs_total 1.0\n" in answer.body
    assert seen and {name for name, _ in seen} == {"asgi-mcp-metrics-render_0"}
    floor = max(os.getpriority(os.PRIO_PROCESS, 0), exposition.RENDER_NICENESS)
    assert {niceness for _, niceness in seen} == {floor}
    assert app_thread_niceness == os.getpriority(os.PRIO_PROCESS, 0)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_worker_renders_in_a_render_thread_of_its_own() -> None:
    """A process forked after a scrape (a pre-forking server's worker) must not queue its
    renders on the parent's render thread, which does not exist in the child."""
    import multiprocessing

    registry = CollectorRegistry()
    Counter("jobs", "Jobs.", registry=registry).inc()
    endpoint = MetricsEndpoint(registry=registry, render_offload_seconds=0)
    assert asyncio.run(endpoint.answer("GET", {}, "")).status == 200  # the thread now exists

    def scrape_in_child(results: Any) -> None:
        answer = asyncio.run(asyncio.wait_for(endpoint.answer("GET", {}, ""), timeout=20))
        results.put((answer.status, b"jobs_total 1.0\n" in answer.body))

    context = multiprocessing.get_context("fork")
    results = context.Queue()
    child = context.Process(target=scrape_in_child, args=(results,))
    child.start()
    try:
        assert results.get(timeout=30) == (200, True)
    finally:
        child.join(timeout=30)
    assert child.exitcode == 0

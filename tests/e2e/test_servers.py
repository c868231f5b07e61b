"""One scenario under every ASGI server: the metrics must be the same, sample for sample.

Each server serves ``server_app`` (plain routes, an SSE stream, an ``MCPServer`` streamable HTTP
endpoint) and gets the same traffic: plain requests, an SSE stream read to its end, a client
that vanishes mid-stream and one that vanishes mid-upload, two websockets (one closed by
each side), an MCP session with the real ``mcp``
client (initialize, tools/call, DELETE), and a session left open until the server shuts down.
Counts, sizes and labels are compared exactly, across servers and with the values the scenario
drove; only what a clock decides (duration sums and buckets, ``_created``) is left out.
"""

from __future__ import annotations

import asyncio
import functools
import os
import socket
import tempfile
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from mcp import Client
from prometheus_client.parser import text_string_to_metric_families
from websockets.exceptions import ConnectionClosedOK
from websockets.sync.client import connect

from ..promtool import check_metrics
from .server_app import DUMP_ENV, LIFESPAN, TICKS
from .servers import SERVERS, serve, wait_until

pytestmark = pytest.mark.e2e

APP = "tests.e2e.server_app:make_app"
REFERENCE = SERVERS[0]
HANDSHAKE = "2025-11-25"
DURATION = "http_server_request_duration_seconds_count"
STREAMS = "http_server_streams_total"

Labels = tuple[tuple[str, str], ...]
Samples = dict[tuple[str, Labels], float]


def parse(text: str) -> Samples:
    """Every sample whose value the traffic decides, not the clock."""
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            name = sample.name
            if name.endswith("_created") or (name.endswith(("_seconds_bucket", "_seconds_sum"))):
                continue
            samples[name, tuple(sorted(sample.labels.items()))] = sample.value
    return samples


#: The mcp client closes an SDK stream as soon as it has what it waited for (its answer, its
#: session's end), racing the server's last chunk: either end reason is a true account, and which
#: one a run sees depends on scheduling, not on the server (docs/servers.md).
RACED = ("completed", "client_disconnect")


def settle_races(samples: Samples) -> Samples:
    """The SDK's own streams (on /mcp) counted per kind, whichever side closed first."""
    settled: Samples = {}
    for (name, labels), value in samples.items():
        fields = dict(labels)
        if fields.get("http_route") == "/mcp" and fields.get("end_reason") in RACED:
            fields["end_reason"] = "|".join(RACED)
            labels = tuple(sorted(fields.items()))
        settled[name, labels] = settled.get((name, labels), 0.0) + value
    return settled


def pick(samples: Samples, name: str, **match: str) -> float:
    """Sum of the samples called ``name`` whose labels include ``match``."""
    return sum(value for (sample, labels), value in samples.items()
               if sample == name and all(dict(labels).get(k) == v for k, v in match.items()))


def vanish_mid_stream(url: str, target: bytes) -> None:
    """Read the stream's first frame, then close the socket."""
    port = int(url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        received = b""
        while b"data: 0" not in received:
            received += sock.recv(4096)


def vanish_mid_upload(url: str, scrape: Callable[[], Samples]) -> None:
    port = int(url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n"
                     + b"y" * 1000)
        wait_until(lambda: pick(scrape(), "http_server_active_requests") == 1)


def websockets(url: str) -> None:
    """One socket the client closes, one the server closes."""
    address = "ws" + url.removeprefix("http") + "/ws"
    with connect(address) as socket_:
        socket_.send("hi")
        assert socket_.recv() == "hi"
    with connect(address) as socket_:
        socket_.send("bye")
        with pytest.raises(ConnectionClosedOK):
            socket_.recv()


async def mcp_session(url: str, scrape: Callable[[], Samples]) -> None:
    async with Client(url + "/mcp", mode="legacy") as client:
        result = await client.call_tool("add", {"a": 2, "b": 3})
        assert not result.is_error
        # The client opens its GET stream in the background; end the session once it is open.
        await asyncio.to_thread(wait_until, lambda: pick(
            scrape(), "http_server_streams_active", stream_kind="get_notifications") == 1)


def open_session(url: str) -> None:
    """A client that initializes and never says goodbye."""
    reply = httpx.post(url + "/mcp", headers={"accept": "application/json, text/event-stream"},
                       json={"jsonrpc": "2.0", "id": 0, "method": "initialize",
                             "params": {"protocolVersion": HANDSHAKE, "capabilities": {},
                                        "clientInfo": {"name": "raw", "version": "1"}}})
    assert reply.status_code == 200 and reply.headers["mcp-session-id"]


@functools.cache
def scenario(server: str) -> Samples:
    """Runs the traffic under ``server``; the final exposition, written after shutdown."""
    dump = Path(tempfile.mkdtemp()) / "metrics.txt"
    os.environ[DUMP_ENV] = str(dump)
    try:
        with serve(APP, server=server) as url, httpx.Client(base_url=url) as http:
            def scrape() -> Samples:
                return parse(http.get("/metrics").text)

            assert pick(scrape(), LIFESPAN, event="startup") == 1
            for i in range(3):
                assert http.get(f"/items/{i}").json() == {"id": str(i)}
            assert http.post("/upload", content=b"x" * 100_000).json() == {"size": 100_000}
            with http.stream("GET", "/events?n=3") as response:
                frames = [line for line in response.iter_lines() if line.startswith("data:")]
            assert frames == ["data: 0", "data: 1", "data: 2"]

            vanish_mid_stream(url, b"/events?n=100000")
            wait_until(lambda: pick(scrape(), STREAMS, http_route="/events") == 2)
            vanish_mid_stream(url, b"/ticks")
            wait_until(lambda: pick(scrape(), STREAMS, http_route="/ticks") == 1, timeout=30)
            vanish_mid_upload(url, scrape)
            wait_until(lambda: pick(scrape(), DURATION, http_route="/upload") == 2)

            websockets(url)
            wait_until(lambda: pick(scrape(), STREAMS, stream_kind="websocket") == 2)
            asyncio.run(mcp_session(url, scrape))
            open_session(url)

            def settled() -> bool:
                now = scrape()
                return (pick(now, "http_server_active_requests") == 0
                        and pick(now, "http_server_streams_active") == 0
                        and pick(now, "mcp_server_sessions_active") == 1
                        and pick(now, "mcp_server_sessions_ended_total") == 1)

            wait_until(settled)
            assert pick(scrape(), LIFESPAN, event="shutdown") == 0
        text = dump.read_text()
    finally:
        del os.environ[DUMP_ENV]
    check_metrics(text.encode())
    return parse(text)


@pytest.mark.parametrize("server", SERVERS)
def test_what_each_server_reports(server: str) -> None:
    final = scenario(server)
    # Lifespan: both halves reached the app through the middleware.
    assert pick(final, LIFESPAN, event="startup") == 1
    assert pick(final, LIFESPAN, event="shutdown") == 1
    # Plain requests, exact sizes.
    assert pick(final, DURATION, http_route="/items/{item_id}", http_request_method="GET",
                http_response_status_code="200", error_type="") == 3
    assert pick(final, DURATION, http_route="/upload", http_response_status_code="200",
                error_type="") == 1
    assert pick(final, "http_server_request_body_size_bytes_sum", http_route="/upload") == 101_000
    # The client that vanished mid-upload: 499, not a server error.
    assert pick(final, DURATION, http_route="/upload", http_response_status_code="499",
                error_type="client_disconnect") == 1
    # SSE: one stream completed, one ended by the client; neither is a request.
    assert pick(final, STREAMS, http_route="/events", stream_kind="sse",
                end_reason="completed") == 1
    assert pick(final, STREAMS, http_route="/events", stream_kind="sse",
                end_reason="client_disconnect") == 1
    assert pick(final, DURATION, http_route="/events") == 0
    # A stream that never listens for http.disconnect: no server here makes send() raise once
    # the client has gone (ASGI spec < 2.4), so it runs to its end and counts as completed,
    # with every byte the server then discarded (docs/servers.md).
    assert pick(final, STREAMS, http_route="/ticks", end_reason="completed") == 1
    assert pick(final, "http_server_response_body_size_bytes_sum", http_route="/ticks") == sum(
        len(b"data: %d\n\n" % i) for i in range(TICKS))
    # Websockets: one closed by the client, one by the app.
    assert pick(final, STREAMS, http_route="/ws", stream_kind="websocket",
                end_reason="client_disconnect") == 1
    assert pick(final, STREAMS, http_route="/ws", stream_kind="websocket",
                end_reason="completed") == 1
    # MCP: the SDK client's session (initialize, tools/call, DELETE) and the one left open.
    assert pick(final, "mcp_tool_calls_total", gen_ai_tool_name="add", outcome="ok") == 1
    assert pick(final, "mcp_server_sessions_started_total") == 2
    assert pick(final, "mcp_server_sessions_ended_total", end_reason="client_delete") == 1
    assert pick(final, "mcp_server_sessions_ended_total", end_reason="shutdown") == 1
    assert pick(final, DURATION, http_request_method="DELETE", http_route="/mcp",
                http_response_status_code="200") == 1
    # Two initialize answers, a tools/list and a tools/call over SSE; the session's GET stream.
    assert pick(final, STREAMS, http_route="/mcp", stream_kind="post_response") == 4
    assert pick(final, STREAMS, http_route="/mcp", stream_kind="get_notifications") == 1
    assert pick(final, STREAMS, http_route="/mcp", end_reason="server_error") == 0
    # Nothing left open, nothing of ours went wrong.
    for gauge in ("http_server_active_requests", "http_server_streams_active",
                  "mcp_server_sessions_active"):
        assert pick(final, gauge) == 0
    assert pick(final, "asgi_mcp_metrics_internal_errors_total") == 0
    # And the same, sample for sample, as under the reference server.
    if server != REFERENCE:
        reference = settle_races(scenario(REFERENCE))
        final = settle_races(final)
        assert {key: final.get(key) for key in reference if final.get(key) != reference[key]} \
            == {}
        assert set(final) == set(reference)

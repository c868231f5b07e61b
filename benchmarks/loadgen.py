"""A small keep-alive HTTP/1.1 load generator, for machines without ``wrk``.

Run as its own process (``python loadgen.py URL --requests FILE ...``) so it does not share the
server's core.  It keeps a fixed number of connections busy, one request in flight on each, and
stops at the duration or at ``--max-requests``, whichever comes first.  ``FILE`` is a JSON list
of requests (``method``, ``path``, ``headers`` as ``[name, value]`` pairs, ``body`` as a
latin-1 string); each connection sends them in turn, starting at its own offset, so a mixed
workload keeps its proportions.  Responses are read by ``Content-Length`` or as chunks (an SSE
stream).  The result is one line, ``BENCH_RESULT {json}``, the same line the ``wrk`` script
prints.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

RESULT_MARKER = "BENCH_RESULT "


@dataclass
class Tally:
    budget: int
    requests: int = 0
    errors: int = 0
    bad_status: int = 0
    latencies: list[float] = field(default_factory=list)

    def take(self) -> bool:
        """Reserve one request from the budget; False once it is spent."""
        if self.budget <= 0:
            return False
        self.budget -= 1
        return True


def request_bytes(host: str, method: str, path: str, headers: Sequence[tuple[str, str]],
                  body: bytes) -> bytes:
    """One HTTP/1.1 request; Host and Content-Length are written here."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    lines += [f"{name}: {value}" for name, value in headers]
    if body or method == "POST":
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def header_value(head: bytes, wanted: bytes) -> bytes | None:
    """The value of header ``wanted`` (lower case) in a response ``head``, or None."""
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == wanted:
            return value.strip()
    return None


async def read_body(reader: asyncio.StreamReader, head: bytes) -> bytes:
    """Read the body announced by ``head``: by its length, or chunk by chunk."""
    length = header_value(head, b"content-length")
    if length is not None:
        return await reader.readexactly(int(length))
    if (header_value(head, b"transfer-encoding") or b"").lower() != b"chunked":
        raise ValueError("response without Content-Length or chunked encoding")
    chunks = []
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
        if size == 0:
            # No trailers from the benchmarked apps: the empty line ends the body.
            await reader.readuntil(b"\r\n")
            return b"".join(chunks)
        chunks.append((await reader.readexactly(size + 2))[:-2])


def status_of(head: bytes) -> int:
    return int(head[9:12])


async def _connection(host: str, port: int, payloads: list[bytes], offset: int,
                      deadline: float, tally: Tally) -> None:
    try:
        reader, writer = await asyncio.open_connection(host, port)
    except OSError:
        tally.errors += 1
        return
    sent = offset
    try:
        while time.perf_counter() < deadline and tally.take():
            started = time.perf_counter()
            writer.write(payloads[sent % len(payloads)])
            sent += 1
            head = await reader.readuntil(b"\r\n\r\n")
            status = status_of(head)
            await read_body(reader, head)
            tally.latencies.append(time.perf_counter() - started)
            tally.requests += 1
            if not 200 <= status < 400:
                tally.bad_status += 1
    except (OSError, asyncio.IncompleteReadError, ValueError):
        tally.errors += 1
    finally:
        writer.close()


async def generate(url: str, *, connections: int, seconds: float, max_requests: int,
                   requests: list[dict[str, Any]]) -> dict[str, float]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    payloads = [request_bytes(f"{host}:{port}", request["method"], request["path"],
                              request["headers"], request["body"].encode("latin-1"))
                for request in requests]
    tally = Tally(budget=max_requests)
    started = time.perf_counter()
    deadline = started + seconds
    await asyncio.gather(*(_connection(host, port, payloads, index, deadline, tally)
                           for index in range(connections)))
    elapsed = time.perf_counter() - started
    latencies = sorted(tally.latencies) or [0.0]
    return {
        "requests": tally.requests,
        "duration_us": elapsed * 1e6,
        "errors": tally.errors,
        "bad_status": tally.bad_status,
        "p50_us": statistics.median(latencies) * 1e6,
        "p99_us": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("url", help="http://HOST:PORT of the server")
    parser.add_argument("--requests", required=True, help="JSON file: the requests to send")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--max-requests", type=int, default=1_000_000)
    arguments = parser.parse_args()
    with open(arguments.requests, encoding="utf-8") as file:
        requests = json.load(file)
    result = asyncio.run(generate(
        arguments.url, connections=arguments.connections, seconds=arguments.seconds,
        max_requests=arguments.max_requests, requests=requests))
    print(RESULT_MARKER + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()

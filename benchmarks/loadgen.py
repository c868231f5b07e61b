"""A small keep-alive HTTP/1.1 load generator, for machines without ``wrk``.

Run as its own process (``python loadgen.py URL ...``) so it does not share the server's core.
It keeps a fixed number of connections busy, one request in flight on each, and stops at the
duration or at ``--max-requests``, whichever comes first.  It reads responses by
``Content-Length`` only, which is all the benchmarked routes send.  The result is one line,
``BENCH_RESULT {json}``, the same line the ``wrk`` script prints.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from dataclasses import dataclass, field
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


def _request_bytes(method: str, host: str, path: str, headers: list[str], body: bytes) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    lines += headers
    if body or method == "POST":
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


async def _connection(host: str, port: int, payload: bytes, deadline: float,
                      tally: Tally) -> None:
    try:
        reader, writer = await asyncio.open_connection(host, port)
    except OSError:
        tally.errors += 1
        return
    try:
        while time.perf_counter() < deadline and tally.take():
            started = time.perf_counter()
            writer.write(payload)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = None
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if length is None:
                raise ValueError("response without Content-Length")
            await reader.readexactly(length)
            tally.latencies.append(time.perf_counter() - started)
            tally.requests += 1
            if not 200 <= status < 400:
                tally.bad_status += 1
    except (OSError, asyncio.IncompleteReadError, ValueError):
        tally.errors += 1
    finally:
        writer.close()


async def generate(url: str, *, connections: int, seconds: float, max_requests: int,
                   method: str, headers: list[str], body: bytes) -> dict[str, float]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    payload = _request_bytes(method, f"{host}:{port}", parts.path or "/", headers, body)
    tally = Tally(budget=max_requests)
    started = time.perf_counter()
    deadline = started + seconds
    await asyncio.gather(*(_connection(host, port, payload, deadline, tally)
                           for _ in range(connections)))
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
    parser.add_argument("url")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--max-requests", type=int, default=1_000_000)
    parser.add_argument("--method", default="GET")
    parser.add_argument("--header", action="append", default=[], help="'Name: value'")
    parser.add_argument("--body-file", help="file whose bytes are the request body")
    arguments = parser.parse_args()
    body = b""
    if arguments.body_file:
        with open(arguments.body_file, "rb") as file:
            body = file.read()
    result = asyncio.run(generate(
        arguments.url, connections=arguments.connections, seconds=arguments.seconds,
        max_requests=arguments.max_requests, method=arguments.method,
        headers=arguments.header, body=body))
    print(RESULT_MARKER + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()

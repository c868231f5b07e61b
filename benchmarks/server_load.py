"""Throughput under uvicorn: one server process per variant, load from another process.

All servers start first and stay up; every round then loads each of them in turn, in a new
random order, for the same time with the same number of keep-alive connections.  The load
generator is ``wrk`` when it is installed, else :mod:`loadgen`.  Every run is bounded in time
and in request count, and every address is 127.0.0.1.

At the end each server is asked (outside its instrumentation) how many requests it recorded;
that must match what the load generator completed, give or take the requests still in flight
when a run stopped, or the benchmark fails.
"""

from __future__ import annotations

import contextlib
import dataclasses
import http.client
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from loadgen import RESULT_MARKER
from serve import APP_ENV, MCP_PARSING_ENV, RECORDED_PATH, VARIANT_ENV
from timing import middle_half

BENCH_DIR = Path(__file__).resolve().parent
HOST = "127.0.0.1"
#: Ceiling on requests per load run: bounds each run by count as well as by time.
MAX_REQUESTS_PER_RUN = 2_000_000

_WRK_SCRIPT = """\
local requests = {{}}
local sent = 0
init = function(args)
{formats}
end
request = function()
  sent = sent % #requests + 1
  return requests[sent]
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{marker}{{"requests":%d,"duration_us":%d,"errors":%d,"bad_status":%d,'
    .. '"p50_us":%d,"p99_us":%d}}\\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(99)))
end
"""


class LoadError(RuntimeError):
    """A server did not start, a load run failed, or the counts do not add up."""


@dataclass(frozen=True)
class Load:
    """A request the connections send over and over."""

    path: str
    method: str = "GET"
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""


#: The requests of one load run: every connection sends them in turn (one: a single route).
Mix = Sequence[Load]


def _mix(load: Load | Mix) -> tuple[Load, ...]:
    return (load,) if isinstance(load, Load) else tuple(load)


@dataclass(frozen=True)
class RunResult:
    requests: int
    seconds: float
    errors: int
    bad_status: int
    p50_us: float
    p99_us: float
    server_cpu_seconds: float | None = None
    """CPU time the server process used during the run (Linux only)."""

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds

    @property
    def cpu_us_per_request(self) -> float | None:
        if self.server_cpu_seconds is None or not self.requests:
            return None
        return self.server_cpu_seconds / self.requests * 1e6


def process_cpu_seconds(pid: int) -> float | None:
    """User plus system CPU time of process ``pid``, from ``/proc`` (None elsewhere)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    # After the command name: state is field 3, utime field 14, stime field 15 (1-based).
    ticks = int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


@dataclass
class Server:
    variant: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    runs: list[RunResult] = field(default_factory=list)
    warmup: list[RunResult] = field(default_factory=list)
    extra_requests: int = 0
    """Requests sent outside the load runs (e.g. an MCP ``tools/list``), counted as recorded."""


def load_generator() -> str:
    return "wrk" if shutil.which("wrk") else "loadgen.py (Python, asyncio)"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass(frozen=True)
class Stack:
    """uvicorn's ``--http`` and ``--loop`` choices (``auto`` takes the fast ones if installed)."""

    http: str = "auto"
    loop: str = "auto"


def _start(app_kind: str, variant: str, mcp_parsing: str, stack: Stack,
           log_dir: Path, extra_env: Mapping[str, str]) -> Server:
    port = free_port()
    env = {**os.environ, **extra_env, APP_ENV: app_kind, VARIANT_ENV: variant,
           MCP_PARSING_ENV: mcp_parsing}
    log_path = log_dir / f"{app_kind}-{port}.log"
    command = [sys.executable, "-m", "uvicorn", "serve:app_from_environment", "--factory",
               "--app-dir", str(BENCH_DIR), "--host", HOST, "--port", str(port),
               "--workers", "1", "--no-access-log", "--log-level", "warning",
               "--http", stack.http, "--loop", stack.loop]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    return Server(variant, port, process, log_path)


def _get(port: int, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def post(port: int, load: Load) -> tuple[int, bytes]:
    """One request of ``load``'s shape (used to prepare a server before the load runs)."""
    connection = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        connection.request(load.method, load.path, body=load.body, headers=dict(load.headers))
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def _wait_ready(server: Server, deadline_seconds: float = 60.0) -> None:
    deadline = time.monotonic() + deadline_seconds
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            break
        try:
            status, _ = _get(server.port, RECORDED_PATH, timeout=1.0)
            if status == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    log = server.log_path.read_text(errors="replace")
    raise LoadError(f"uvicorn for {server.variant} did not start:\n{log}")


def recorded(server: Server) -> tuple[int | None, int]:
    """(requests the variant recorded or None for bare, asgi_mcp_metrics' internal errors)."""
    status, body = _get(server.port, RECORDED_PATH)
    if status != 200:
        raise LoadError(f"{server.variant}: {RECORDED_PATH} answered {status}")
    answer = json.loads(body)
    value = answer["recorded"]
    return (None if value is None else int(value)), int(answer["internal_errors"])


@contextlib.contextmanager
def running_servers(app_kind: str, variants: Sequence[str], mcp_parsing: str,
                    stack: Stack, extra_env: Mapping[str, str] | None = None,
                    ) -> Iterator[list[Server]]:
    """Start one uvicorn per variant (``extra_env`` added to each one's environment); stop
    exactly those processes afterwards."""
    with tempfile.TemporaryDirectory(prefix="asgi-mcp-metrics-bench-") as log_dir:
        servers: list[Server] = []
        try:
            for variant in variants:
                servers.append(_start(app_kind, variant, mcp_parsing, stack, Path(log_dir),
                                      extra_env or {}))
            for server in servers:
                _wait_ready(server)
            yield servers
        finally:
            for server in servers:
                server.process.terminate()
            for server in servers:
                try:
                    server.process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    server.process.kill()
                    server.process.wait()


def _lua_string(value: str) -> str:
    return "[==[" + value + "]==]"


def _run_wrk(port: int, mix: Mix, *, connections: int, seconds: float,
             work_dir: Path) -> RunResult:
    formats = []
    for index, load in enumerate(mix, start=1):
        headers = ", ".join(f"[ {_lua_string(name)} ] = {_lua_string(value)}"
                            for name, value in load.headers)
        body = _lua_string(load.body.decode("utf-8")) if load.body else "nil"
        formats.append(f"  requests[{index}] = wrk.format({_lua_string(load.method)}, "
                       f"{_lua_string(load.path)}, {{{headers}}}, {body})")
    script = work_dir / "load.lua"
    script.write_text(_WRK_SCRIPT.format(formats="\n".join(formats), marker=RESULT_MARKER))
    command = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s",
               "-s", str(script), f"http://{HOST}:{port}{mix[0].path}"]
    return _parse(subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60))


def _run_loadgen(port: int, mix: Mix, *, connections: int, seconds: float,
                 work_dir: Path) -> RunResult:
    requests = work_dir / "requests.json"
    requests.write_text(json.dumps([
        {"method": load.method, "path": load.path, "headers": list(load.headers),
         "body": load.body.decode("latin-1")} for load in mix]), encoding="utf-8")
    command = [sys.executable, str(BENCH_DIR / "loadgen.py"), f"http://{HOST}:{port}",
               "--requests", str(requests), "--connections", str(connections),
               "--seconds", str(seconds), "--max-requests", str(MAX_REQUESTS_PER_RUN)]
    return _parse(subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60))


def _parse(finished: subprocess.CompletedProcess[str]) -> RunResult:
    for line in finished.stdout.splitlines():
        if line.startswith(RESULT_MARKER):
            data = json.loads(line[len(RESULT_MARKER):])
            return RunResult(requests=int(data["requests"]),
                             seconds=float(data["duration_us"]) / 1e6,
                             errors=int(data["errors"]), bad_status=int(data["bad_status"]),
                             p50_us=float(data["p50_us"]), p99_us=float(data["p99_us"]))
    raise LoadError(f"load generator failed ({finished.returncode}):\n{finished.stdout}\n"
                    f"{finished.stderr}")


def load_once(server: Server, load: Load | Mix, *, connections: int,
              seconds: float) -> RunResult:
    runner = _run_wrk if shutil.which("wrk") else _run_loadgen
    with tempfile.TemporaryDirectory(prefix="asgi-mcp-metrics-load-") as work_dir:
        cpu_before = process_cpu_seconds(server.process.pid)
        result = runner(server.port, _mix(load), connections=connections, seconds=seconds,
                        work_dir=Path(work_dir))
        cpu_after = process_cpu_seconds(server.process.pid)
    if cpu_before is not None and cpu_after is not None:
        result = dataclasses.replace(result, server_cpu_seconds=cpu_after - cpu_before)
    if result.errors or result.bad_status:
        raise LoadError(f"{server.variant}: {result.errors} socket errors, "
                        f"{result.bad_status} bad statuses in one run")
    return result


@dataclass(frozen=True)
class Plan:
    rounds: int
    seconds: float
    warmup_seconds: float
    connections: int
    seed: int


def interleave_load(servers: Sequence[Server], load: Load | Mix, plan: Plan) -> None:
    """A warm-up run per server, then ``plan.rounds`` rounds in shuffled order."""
    for server in servers:
        server.warmup.append(load_once(server, load, connections=plan.connections,
                                       seconds=plan.warmup_seconds))
    shuffler = random.Random(plan.seed)
    order = list(servers)
    for _ in range(plan.rounds):
        shuffler.shuffle(order)
        for server in order:
            server.runs.append(load_once(server, load, connections=plan.connections,
                                         seconds=plan.seconds))


@dataclass(frozen=True)
class Verified:
    variant: str
    completed: int
    recorded: int
    internal_errors: int


def verify(servers: Sequence[Server], connections: int) -> list[Verified]:
    """Each server recorded every completed request, plus at most the ones in flight."""
    checked = []
    for server in servers:
        value, errors = recorded(server)
        if value is None:
            continue
        runs = server.warmup + server.runs
        completed = sum(run.requests for run in runs) + server.extra_requests
        in_flight = connections * len(runs)
        if not completed <= value <= completed + in_flight:
            raise LoadError(f"{server.variant} recorded {value} requests; the load generator "
                            f"completed {completed} (up to {in_flight} more may be in flight)")
        checked.append(Verified(server.variant, completed, value, errors))
    return checked


@dataclass(frozen=True)
class Throughput:
    variant: str
    per_second: float
    ratio: float
    p50_ms: float
    p99_ms: float
    spread: tuple[float, float]
    cpu_us: float | None
    """Median server CPU time per request."""
    cpu_ratio: float | None
    """Median per-round ratio of the baseline's CPU per request to this variant's."""
    ratio_spread: tuple[float, float]
    """First and third quartile of the per-round ratios to the baseline."""


def summarize(servers: Sequence[Server], baseline: str) -> list[Throughput]:
    """Median requests/s per variant, baseline first.

    The ratio is the median of the per-round ratios to the baseline's run of the same round,
    so a round that was slow for everyone does not tilt it.
    """
    base = next(s for s in servers if s.variant == baseline)
    rows = []
    for server in sorted(servers, key=lambda s: s.variant != baseline):
        rates = [run.per_second for run in server.runs]
        paired = [run.per_second / other.per_second
                  for run, other in zip(server.runs, base.runs, strict=True)]
        quartiles = middle_half(rates)
        rows.append(Throughput(
            variant=server.variant,
            per_second=statistics.median(rates),
            ratio=statistics.median(paired),
            p50_ms=statistics.median(run.p50_us for run in server.runs) / 1000,
            p99_ms=statistics.median(run.p99_us for run in server.runs) / 1000,
            spread=quartiles,
            ratio_spread=middle_half(paired),
            cpu_us=_median_or_none([run.cpu_us_per_request for run in server.runs]),
            cpu_ratio=_median_or_none([
                None if mine.cpu_us_per_request is None or theirs.cpu_us_per_request is None
                else theirs.cpu_us_per_request / mine.cpu_us_per_request
                for mine, theirs in zip(server.runs, base.runs, strict=True)]),
        ))
    return rows


def _median_or_none(values: Sequence[float | None]) -> float | None:
    known = [value for value in values if value is not None]
    return statistics.median(known) if known and len(known) == len(values) else None


"""Several real worker processes sharing ``PROMETHEUS_MULTIPROC_DIR``: gunicorn with uvicorn
workers (and the shipped config file's hooks) and ``uvicorn --workers``.

Counts merged across workers are exact; live gauges sum (or take the largest value) over the
workers that run; a worker killed with SIGKILL leaves the live gauges while its counters stay;
a previous run's files are cleared (gunicorn hook) or reported (uvicorn).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from ..docs import doc_block
from ..promtool import check_metrics, running_in_ci
from .servers import free_port, wait_until

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
GUNICORN_CONF = ROOT / "examples" / "gunicorn" / "gunicorn.conf.py"
DEPLOYMENT = ROOT / "docs" / "deployment.md"
APP = "tests.e2e.multiworker_app:app"
WORKERS = 2
#: Bounds for loops that wait for the kernel to hand connections to both workers.
MAX_ATTEMPTS = 400
#: The first event of a held response (inside a chunk of the chunked body).
PID_EVENT = re.compile(rb"data: (\d+)\n\n")
#: What a worker logs when it finds a previous run's files.
WARNING = "ended before this server started"


def documented(server: str) -> str:
    """The start commands docs/deployment.md gives for ``server``."""
    return doc_block(DEPLOYMENT, server)


def command(script: str, directory: Path, port: int, app: str = APP) -> list[str]:
    """A documented start command, for this test's directory, port, app and worker count."""
    for documented_text, ours in (
            ("/dev/shm/metrics", str(directory)),
            ("-c gunicorn.conf.py", f"-c {GUNICORN_CONF}"),
            ("--workers 4", f"--workers {WORKERS}"),
            ("0.0.0.0:8000", f"127.0.0.1:{port}"),
            ("--host 0.0.0.0 --port 8000", f"--host 127.0.0.1 --port {port}"),
            ("myapp:app", app)):
        script = script.replace(documented_text, ours)
    return ["bash", "-euc", script]


def require(module: str) -> None:
    if shutil.which(module) is None and not _importable(module):
        if running_in_ci():
            pytest.fail(f"{module} is not installed; required in CI (the test extra)")
        pytest.skip(f"{module} is not installed")


def _importable(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


@dataclass
class Server:
    url: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path
    #: Held-open connections by kind ("plain": a request in flight, "sse": a stream) and pid.
    held: dict[str, Counter[int]] = field(default_factory=lambda: {"plain": Counter(),
                                                                    "sse": Counter()})
    sockets: list[tuple[str, int, socket.socket]] = field(default_factory=list)

    def scrape(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        response = httpx.get(f"{self.url}/metrics", timeout=10)
        response.raise_for_status()
        check_metrics(response.text)
        return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
                for family in text_string_to_metric_families(response.text)
                for sample in family.samples}

    def total(self, name: str, **labels: str) -> float:
        return sum(value for (sample, sample_labels), value in self.scrape().items()
                   if sample == name and labels.items() <= dict(sample_labels).items())

    def requests_counted(self, route: str, expected: float) -> float:
        """The requests counted for ``route``, once they are at least ``expected`` (a worker
        records a request a moment after its client has the response), or after 30 s."""
        def count() -> float:
            return self.total("http_server_request_duration_seconds_count", http_route=route)

        # (Past the deadline, the caller's assertion says what was counted.)
        with suppress(AssertionError):
            wait_until(lambda: count() >= expected, timeout=30)
        return count()

    def hold(self, kind: str) -> int:
        """Open one held connection; returns the pid of the worker holding it."""
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        sock.sendall(f"GET /hold?kind={kind} HTTP/1.1\r\nHost: test\r\n\r\n".encode())
        received = b""
        while (found := PID_EVENT.search(received)) is None:
            chunk = sock.recv(4096)
            if not chunk:
                raise AssertionError(f"connection closed early: {received!r}")
            received += chunk
        pid = int(found.group(1))
        self.held[kind][pid] += 1
        self.sockets.append((kind, pid, sock))
        return pid

    def release(self, pid: int | None = None) -> None:
        for entry in [e for e in self.sockets if pid is None or e[1] == pid]:
            entry[2].close()
            self.sockets.remove(entry)
            self.held[entry[0]][entry[1]] -= 1


@contextmanager
def running(server: str, directory: Path, tmp_path: Path, script: str | None = None, *,
            app: str = APP, cwd: Path = ROOT) -> Iterator[Server]:
    """Start ``server`` with its documented commands (or ``script``) in a session of its own,
    serving ``app`` from ``cwd``; up once its metrics endpoint answers, which is not measured
    (a probe that timed out on a busy machine may still reach the app later)."""
    require(server)
    if server == "gunicorn":
        require("uvicorn_worker")
    port = free_port()
    tmp_path.mkdir(exist_ok=True)
    log = tmp_path / f"{server}.log"
    # The commands find the servers installed next to this interpreter.
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)  # the documented commands export it
    argv = command(documented(server) if script is None else script, directory, port, app)
    with log.open("wb") as output:
        process = subprocess.Popen(argv, cwd=cwd, env=env, stdout=output,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    running_server = Server(f"http://127.0.0.1:{port}", port, process, log)
    try:
        wait_until(lambda: _answers(running_server), timeout=60)
        yield running_server
    finally:
        running_server.release()
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(30)


def _answers(server: Server) -> bool:
    if server.process.poll() is not None:
        raise AssertionError(f"server exited: {server.log.read_text()}")
    try:
        return httpx.get(f"{server.url}/metrics", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def spread(server: Server) -> Counter[int]:
    """Plain requests, each on a new connection, until both workers have answered."""
    pids: Counter[int] = Counter()
    for _ in range(MAX_ATTEMPTS):
        pids[httpx.get(f"{server.url}/work", timeout=10).json()["pid"]] += 1
        if len(pids) == WORKERS and min(pids.values()) >= 3:
            return pids
    raise AssertionError(f"requests never reached {WORKERS} workers: {pids}")


def hold_on_every_worker(server: Server, kind: str) -> None:
    for _ in range(MAX_ATTEMPTS):
        server.hold(kind)
        if len(+server.held[kind]) == WORKERS:
            return
    raise AssertionError(f"held {kind} connections never reached {WORKERS} workers")


def fill_caches(server: Server) -> tuple[dict[int, int], int]:
    """Grow the tool cache of the worker that answers, until both have answered with different
    sizes; returns the sizes by pid and the number of lookups made."""
    sizes: dict[int, int] = {}
    for lookups in range(1, MAX_ATTEMPTS + 1):
        answer = httpx.get(f"{server.url}/cache", params={"add": 1 + len(sizes)},
                           timeout=10).json()
        sizes[answer["pid"]] = answer["size"]
        if len(sizes) == WORKERS and len(set(sizes.values())) == WORKERS:
            return sizes, lookups
    raise AssertionError(f"cache requests never reached {WORKERS} workers: {sizes}")


@pytest.mark.parametrize("server_name", ["gunicorn", "uvicorn"])
def test_workers_merge_and_a_killed_worker_leaves_the_live_gauges(
        server_name: str, tmp_path: Path) -> None:
    with running(server_name, tmp_path / "metrics", tmp_path) as server:
        work = spread(server)
        requests = sum(work.values())
        assert server.requests_counted("/work", requests) == requests

        hold_on_every_worker(server, "plain")
        hold_on_every_worker(server, "sse")
        plain, sse = server.held["plain"], server.held["sse"]
        assert server.total("http_server_active_requests") == sum(plain.values())
        assert server.total("http_server_streams_active") == sum(sse.values())

        sizes, lookups = fill_caches(server)
        # The scrape-time cache size of every worker is merged: the largest cache shows.
        assert server.total("mcp_tool_cache_entries", backend="upstream") == max(sizes.values())

        victim, survivor = sorted(sizes, key=sizes.__getitem__, reverse=True)
        os.kill(victim, signal.SIGKILL)
        wait_until(lambda: server.total("http_server_active_requests") == plain[survivor],
                   timeout=30)
        assert server.total("http_server_streams_active") == sse[survivor]
        assert server.total("mcp_tool_cache_entries", backend="upstream") == sizes[survivor]
        # The dead worker's counters stay.
        assert server.total("http_server_request_duration_seconds_count",
                            http_route="/work") == requests
        assert server.total("mcp_tool_cache_requests_total", backend="upstream") == lookups

        server.release()
        wait_until(lambda: server.total("http_server_active_requests") == 0
                   and server.total("http_server_streams_active") == 0, timeout=30)


def age(directory: Path, seconds: float) -> None:
    """Make the files look written ``seconds`` ago, as a previous run's would."""
    then = time.time() - seconds
    for file in directory.glob("*.db"):
        os.utime(file, (then, then))


@pytest.mark.parametrize("variant", ["gunicorn", "uvicorn", "uvicorn without emptying"])
def test_a_previous_runs_files_are_cleared_or_reported(variant: str, tmp_path: Path) -> None:
    server_name = variant.split()[0]
    script = documented(server_name)
    if variant == "uvicorn without emptying":
        emptying = 'rm -rf "$PROMETHEUS_MULTIPROC_DIR" && '
        assert emptying in script
        script = script.replace(emptying, "")
    directory = tmp_path / "metrics"
    with running(server_name, directory, tmp_path / "first", script) as first:
        earlier = sum(spread(first).values())
    assert WARNING not in first.log.read_text()
    age(directory, 60)
    assert list(directory.glob("histogram_*.db"))

    with running(server_name, directory, tmp_path / "second", script) as second:
        now = sum(spread(second).values())
        expected = earlier + now if variant == "uvicorn without emptying" else now
        count = second.requests_counted("/work", expected)
        log = second.log.read_text()
    if variant == "uvicorn without emptying":
        # The old counts are summed in, and every worker says so.
        assert count == earlier + now
        assert log.count(WARNING) == WORKERS
    else:
        # The hook (gunicorn) or the command (uvicorn) emptied the directory: only this run
        # counts, and nothing is reported.
        assert count == now
        assert WARNING not in log


def test_django_under_gunicorn(tmp_path: Path) -> None:
    """The example Django project, started with the documented gunicorn command."""
    require("django")
    directory = tmp_path / "metrics"
    with running("gunicorn", directory, tmp_path, app="mysite.asgi:application",
                 cwd=ROOT / "examples" / "django_project") as server:
        requests = 0

        def writers() -> set[str]:
            return {file.name.rpartition("_")[2] for file in directory.glob("histogram_*.db")}

        for _ in range(MAX_ATTEMPTS):
            if len(writers()) == WORKERS:
                break
            assert httpx.get(f"{server.url}/items/", timeout=10).status_code == 200
            requests += 1
        assert len(writers()) == WORKERS
        assert server.requests_counted("/items/", requests) == requests

        victim = int(sorted(writers())[0].removesuffix(".db"))
        os.kill(victim, signal.SIGKILL)
        wait_until(lambda: not list(directory.glob(f"gauge_live*_{victim}.db")), timeout=30)
        # Its counts stay; the replacement worker serves and counts on.
        assert server.total("http_server_request_duration_seconds_count",
                            http_route="/items/") == requests
        assert httpx.get(f"{server.url}/items/", timeout=10).status_code == 200
        assert server.requests_counted("/items/", requests + 1) == requests + 1
        assert server.total("asgi_mcp_metrics_info") == 1

"""The production kit on a real Prometheus.

Three copies of the example proxy (``examples/mcp_proxy``) run under a scripted load:
``production``; ``canary``, whose weather backend answers 0.6 s late and whose clients also
call a tool that always fails; and ``staging``, whose weather backend is gone.  A fourth target
does not exist.  Prometheus (1 s scrapes, ``variant`` set per target as a relabelled pod label
would) loads the generated rules with a 20 s window and 2 s ``for:``.  Then

* every query of every dashboard panel is evaluated through the HTTP API, and each panel the
  load exercises returns data (the others are listed below, with the reason);
* the alerts the faults trigger are ``firing`` in ``/api/v1/alerts`` for the right series, and
  no other alert fires.

Nothing sleeps for a fixed time: the test waits for conditions, with generous deadlines.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from mcp.shared.exceptions import MCPError
from prometheus_client import CollectorRegistry

from asgi_mcp_metrics.__main__ import render
from asgi_mcp_metrics.kit import dashboard
from examples.mcp_proxy.app import ProxyConfig, build_proxy, default_backends
from examples.mcp_proxy.weather_server import build_weather_app

from ..promtool import prometheus_binary
from .servers import free_port, serve
from .test_proxy_example import call, client

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(400)]

WINDOW = "20s"
CANARY_DELAY = 0.6
P95_THRESHOLD = 0.45  # production answers in milliseconds, the canary in 0.6 s and more
JOB = "mcp-proxy"
DEADLINE = 150.0

#: Panels the proxy cannot fill, and why: it is no LLM gateway, and nothing inside the
#: library fails.
NOT_EXERCISED = {
    "Tokens/s by model and direction": "no LLM traffic",
    "Upstream call latency (p95) by model": "no LLM traffic",
    "Upstream errors by type": "no LLM traffic",
    "Tokens per call (p95)": "no LLM traffic",
    "Rate limit": "no LLM traffic",
    "Circuit breakers": "no LLM traffic",
    "Response cache hit ratio": "no LLM traffic",
    "Internal and callback errors": "the library has no internal errors to count",
}


def delayed(app: Any, seconds: float) -> Any:
    """An ASGI wrapper that answers every HTTP request ``seconds`` late (a slow backend)."""
    async def wrapper(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await asyncio.sleep(seconds)
        await app(scope, receive, send)
    return wrapper


class Load:
    """Rounds of calls against the three proxies, in a thread, until stopped."""

    def __init__(self, production: str, canary: str, staging: str) -> None:
        self.production, self.canary, self.staging = production, canary, staging
        self.rounds = 0
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="load", daemon=True)

    async def production_round(self) -> None:
        async with client(f"{self.production}/mcp", "analyst") as analyst:
            for _ in range(8):
                assert not await call(analyst, "get_forecast", city="paris")
                assert not await call(analyst, "read_note", name="todo")
            assert await call(analyst, "delete_note", name="todo")  # denied by the ACL
            with pytest.raises(MCPError):  # a caller fault; the name overflows to _OTHER
                await call(analyst, "no_such_tool")
        async with httpx.AsyncClient(timeout=10) as http:
            # A body that is not JSON: a protocol rejection and a parse-limit count.
            response = await http.post(
                f"{self.production}/mcp", content=b"{not json",
                headers={"content-type": "application/json",
                         "accept": "application/json, text/event-stream"})
            assert response.status_code == 400
            # A request for a session this replica does not hold (no sticky load balancer).
            response = await http.post(
                f"{self.production}/mcp", json={"jsonrpc": "2.0", "id": 1,
                                                "method": "tools/list"},
                headers={"mcp-session-id": "0123456789abcdef",
                         "accept": "application/json, text/event-stream"})
            assert response.status_code == 404

    async def canary_round(self) -> None:
        async with client(f"{self.canary}/mcp", "analyst") as analyst:
            assert not await call(analyst, "get_forecast", city="oslo")
            assert await call(analyst, "get_alerts", region="mars")  # always a tool error

    async def staging_round(self) -> None:
        try:
            async with client(f"{self.staging}/mcp", "analyst") as analyst:
                await call(analyst, "read_note", name="todo")
        except Exception:  # the proxy cannot reach its backends: every call fails
            pass

    async def round(self) -> None:
        await self.production_round()
        await self.canary_round()
        await self.staging_round()
        self.rounds += 1

    def _run(self) -> None:
        async def loop() -> None:
            while not self._stop.is_set():
                try:
                    await self.round()
                except BaseException as error:  # reported by the test, not swallowed
                    self.errors.append(error)
                    return
        asyncio.run(loop())

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(60)


@contextmanager
def proxies() -> Iterator[tuple[str, str, str]]:
    with ExitStack() as stack:
        weather = stack.enter_context(serve(build_weather_app()))
        slow_weather = stack.enter_context(serve(delayed(build_weather_app(), CANARY_DELAY)))
        gone = f"http://127.0.0.1:{free_port()}/mcp"
        # The canary reaps idle backends quickly: its notes backend, listed but never called,
        # is disconnected (idle is not down: no alert), which fills the pool panels.
        configs = (
            ProxyConfig(backends=default_backends(f"{weather}/mcp"), idle_timeout=300),
            ProxyConfig(backends=default_backends(f"{slow_weather}/mcp"), idle_timeout=2,
                        reap_interval=0.5),
            ProxyConfig(backends=default_backends(gone), idle_timeout=300),
        )
        urls = [stack.enter_context(serve(build_proxy(config, registry=CollectorRegistry())))
                for config in configs]
        yield urls[0], urls[1], urls[2]


@contextmanager
def prometheus(tmp_path: Path, targets: dict[str, str], rules: str) -> Iterator[str]:
    binary = prometheus_binary()
    port = free_port()
    (tmp_path / "rules.yml").write_text(rules)
    static = "".join(
        f"      - targets: ['{target}']\n        labels: {{variant: {variant}}}\n"
        for variant, target in targets.items())
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        f"rule_files: ['{tmp_path / 'rules.yml'}']\n"
        f"scrape_configs:\n  - job_name: {JOB}\n    scrape_timeout: 1s\n"
        f"    static_configs:\n{static}")
    process = subprocess.Popen(
        [binary, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=(tmp_path / "prometheus.log").open("wb"))
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(20)


def query(base: str, promql: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{base}/api/v1/query", params={"query": promql}, timeout=10)
    response.raise_for_status()
    result: list[dict[str, Any]] = response.json()["data"]["result"]
    return result


def wait_until(what: str, condition: Callable[[], Any], load: Load,
               timeout: float = DEADLINE) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        assert not load.errors, f"the load failed: {load.errors[0]!r}"
        try:
            last = condition()
        except httpx.HTTPError as error:
            last = error
        else:
            if last is True or (last and not isinstance(last, (str, dict, list))):
                return last
        time.sleep(0.5)
    raise AssertionError(f"{what} never happened; last: {json.dumps(last, default=str)[:4000]}")


def panel_queries(board: dict[str, Any], instances: str) -> dict[str, list[str]]:
    substitutions = {"$job": JOB, "$instance": instances, "$variant": ".*",
                     "$__rate_interval": WINDOW}
    queries: dict[str, list[str]] = {}
    for panel in dashboard.all_panels(board):
        exprs = []
        for target in panel["targets"]:
            expr = target["expr"]
            for variable, value in substitutions.items():
                expr = expr.replace(variable, value)
            exprs.append(expr)
        queries[panel["title"]] = exprs
    return queries


# Which series each alert must fire for (at least one), and may fire for (any other is a
# failure); an alert not listed must not fire at all.
def expected_alerts(instance: dict[str, str]) -> dict[str, tuple[Callable[[dict[str, str]], bool],
                                                                 Callable[[dict[str, str]], bool]]]:
    def labels_are(**wanted: str) -> Callable[[dict[str, str]], bool]:
        return lambda labels: all(labels.get(k) == v for k, v in wanted.items())

    return {
        "MCPToolErrorRatioHigh": (
            labels_are(variant="canary", gen_ai_tool_name="get_alerts", backend="weather"),
            # Also legitimately: the production delete_note (ACL denials), the unknown tool
            # (_OTHER) and the staging proxy (no backend): not get_forecast or read_note.
            lambda labels: labels.get("variant") == "staging"
            or labels.get("gen_ai_tool_name") not in ("get_forecast", "read_note")),
        "MCPToolLatencyHigh": (labels_are(variant="canary", gen_ai_tool_name="get_forecast"),
                               labels_are(variant="canary")),
        "MCPSessionNotFoundSpike": (labels_are(instance=instance["production"]),) * 2,
        "MCPBackendDown": (labels_are(instance=instance["staging"], backend="weather"),) * 2,
        "MCPAllBackendsDown": (labels_are(instance=instance["staging"]),) * 2,
        "MCPCanaryErrorRatioHigh": (lambda labels: True,) * 2,
        "MCPCanaryLatencyHigh": (lambda labels: True,) * 2,
        "MCPACLDenialSpike": (labels_are(job=JOB),) * 2,
        "MCPMetricsLabelOverflow": (labels_are(instance=instance["production"],
                                               label="gen_ai_tool_name"),
                                    labels_are(instance=instance["production"])),
        "MCPTargetMissing": (labels_are(instance=instance["missing"]),) * 2,
    }


def test_dashboard_and_alerts_on_a_real_prometheus(tmp_path: Path) -> None:
    rules, _ = render(["rules", "--job", JOB, "--window", WINDOW, "--for", "2s",
                       "--p95-seconds", str(P95_THRESHOLD),
                       "--session-not-found-per-second", "0.05",
                       "--acl-denials-per-second", "0.05"])
    board = json.loads(render(["dashboard"])[0])
    with proxies() as (production, canary, staging):
        load = Load(production, canary, staging)
        # One round first: backends connect and the stdio child starts before Prometheus
        # looks, so start-up latency never counts as a slow tool.
        asyncio.run(load.round())
        instance = {name: url.removeprefix("http://") for name, url in
                    (("production", production), ("canary", canary), ("staging", staging))}
        instance["missing"] = f"127.0.0.1:{free_port()}"
        targets = {"production": instance["production"], "canary": instance["canary"],
                   "staging": instance["staging"]}
        with prometheus(tmp_path, targets | {"production ": instance["missing"]},
                        rules) as base:
            load.start()
            try:
                check(base, board, yaml.safe_load(rules), instance, load)
            finally:
                load.stop()
        assert not load.errors, load.errors
        assert load.rounds >= 3


def check(base: str, board: dict[str, Any], rules_file: dict[str, Any],
          instance: dict[str, str], load: Load) -> None:
    wait_until("three targets up", lambda: len(query(base, f'up{{job="{JOB}"}} == 1')) == 3,
               load)
    # -- every panel the load exercises shows data ------------------------------------------
    queries = panel_queries(board, ".*")
    assert set(NOT_EXERCISED) <= set(queries)

    def empty_panels() -> list[str]:
        return [title for title, exprs in queries.items()
                if title not in NOT_EXERCISED and not any(query(base, e) for e in exprs)]

    deadline = time.monotonic() + DEADLINE
    while (empty := empty_panels()) and time.monotonic() < deadline:
        assert not load.errors, load.errors
        time.sleep(1)
    assert not empty, f"panels without data: {empty}"
    # Every query is valid PromQL, including those of the panels nothing fills.
    for exprs in queries.values():
        for expr in exprs:
            query(base, expr)  # raises on a 400
    # -- the alerts the faults trigger fire, and only those -------------------------------------
    expected = expected_alerts(instance)

    def verdict() -> tuple[list[str], list[str]]:
        response = httpx.get(f"{base}/api/v1/alerts", timeout=10)
        response.raise_for_status()
        firing = [alert["labels"] for alert in response.json()["data"]["alerts"]
                  if alert["state"] == "firing"]
        missing = [name for name, (required, _) in expected.items()
                   if not any(a["alertname"] == name and required(a) for a in firing)]
        unexpected = [json.dumps(a, sort_keys=True) for a in firing
                      if a["alertname"] not in expected or not expected[a["alertname"]][1](a)]
        return missing, unexpected

    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        assert not load.errors, load.errors
        missing, unexpected = verdict()
        if not missing and not unexpected:
            break
        time.sleep(1)
    assert (missing, unexpected) == ([], []), "alerts not as expected"
    # -- the recording rules hold the RED series per tool and backend -----------------------------
    for group in rules_file["groups"]:
        for rule in group["rules"]:
            if "record" in rule:
                series = query(base, rule["record"])
                assert series, rule["record"]
                assert {"job", "variant", "gen_ai_tool_name", "backend"} <= set(
                    series[0]["metric"]), series[0]

"""A plain route's latency while ``/metrics`` is scraped once a second, against no scraping.

One uvicorn process serves the instrumented app and, on ``/metrics``, a
:class:`~asgi_mcp_metrics.MetricsEndpoint` over a registry of about ten thousand sample lines
(filled as :mod:`render_bench` fills it), in the same process, so every scrape competes with
the requests for the event loop and the GIL.  The load generator drives ``GET /items/42``;
rounds with a scraper (one ``GET /metrics`` a second, asking for gzip-compressed OpenMetrics as a
Prometheus server does) and rounds without alternate in a shuffled order, and the tables give
the median over rounds of each round's p50 and p99 latency.  A p99 moves by a fifth between two
rounds of the same arm on a 2-CPU machine, so the rise under scraping is the median over rounds
of a scraped round's p99 against its own round's baseline, with the approximate 95 % interval
of that median.

The render keeps the text of every label child whose values have not moved since the last
scrape, so a scraped round is run twice: scraping the registry as it is (only the load's own
route moves, and it records into the app's registry, not this one), and scraping
``/metrics/churned``, where every series of the registry has changed since the last scrape
(see :class:`serve.ChurnedScrapes`).  The changes are work of their own in the event loop, so
the churned scrapes are compared with rounds that make the same changes without scraping.

``python benchmarks/scrape_load.py`` compares the two ways the endpoint can encode (always on
the event loop, always in its render thread), each arm in the same server and rounds; run.py
measures the endpoint's defaults.
"""

from __future__ import annotations

import argparse
import http.client
import random
import statistics
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from server_load import (
    HOST,
    Load,
    LoadError,
    RunResult,
    Stack,
    load_once,
    running_servers,
)
from timing import median_interval

SCRAPE_PATH = "/metrics"
ITEMS = Load("/items/42")
SCRAPE_HEADERS = {"Accept": "application/openmetrics-text; version=1.0.0",
                  "Accept-Encoding": "gzip"}


@dataclass(frozen=True)
class ScrapeResults:
    rounds: int
    seconds: float
    series: int
    scrapes: int
    runs: dict[str, list[RunResult]]

    @staticmethod
    def _median(runs: list[RunResult], attribute: str) -> float:
        return statistics.median(getattr(run, attribute) for run in runs)

    def arm(self, name: str) -> list[RunResult]:
        """That arm's rounds: ``"quiet"``, ``"churn_only"``, or ``"scraped"`` / ``"churned"``
        with an :data:`serve.ENCODE_MODES` suffix (``"scraped/in-loop"``)."""
        return self.runs[name]

    def p99_ms(self, name: str) -> float:
        return self._median(self.arm(name), "p99_us") / 1000

    def p50_ms(self, name: str) -> float:
        return self._median(self.arm(name), "p50_us") / 1000

    def rise(self, name: str, baseline: str = "quiet") -> tuple[float, tuple[float, float]]:
        """How much a scraped round's p99 exceeds the same round's baseline: the median over
        rounds of their ratio (minus one), and its approximate 95 % interval."""
        ratios = [s.p99_us / q.p99_us - 1
                  for s, q in zip(self.arm(name), self.arm(baseline), strict=True)]
        return statistics.median(ratios), median_interval(ratios)


class Scraper(threading.Thread):
    """``GET /metrics`` once a second until stopped; counts the scrapes and their series."""

    def __init__(self, port: int, path: str) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.path = path
        self.stop = threading.Event()
        self.scrapes = 0
        self.failure: str | None = None

    def run(self) -> None:
        while not self.stop.is_set():
            connection = http.client.HTTPConnection(HOST, self.port, timeout=30)
            try:
                connection.request("GET", self.path, headers=SCRAPE_HEADERS)
                response = connection.getresponse()
                response.read()
                if response.status != 200:
                    self.failure = f"{self.path} answered {response.status}"
                    return
                self.scrapes += 1
            except OSError as error:
                self.failure = str(error)
                return
            finally:
                connection.close()
            self.stop.wait(1.0)


def run_scrape_load(*, rounds: int, seconds: float, connections: int, stack: Stack,
                    seed: int = 7, modes: Sequence[str] = ("",)) -> ScrapeResults:
    """Rounds of the quiet and churn-only arms, and of a scraped and a churned arm per encode
    mode (``serve.ENCODE_MODES`` suffixes; ``""``: the endpoint's defaults)."""
    from serve import CHURN_ONLY_PATH, CHURNED_SCRAPE_PATH, SCRAPE_SERIES

    paths: dict[str, str | None] = {"quiet": None, "churn_only": CHURN_ONLY_PATH}
    for mode in modes:
        paths[f"scraped{mode}"] = SCRAPE_PATH + mode
        paths[f"churned{mode}"] = CHURNED_SCRAPE_PATH + mode
    with running_servers("scrape", ["asgi_mcp_metrics"], "full", stack) as servers:
        server = servers[0]
        load_once(server, ITEMS, connections=connections, seconds=1.0)  # warm-up
        runs: dict[str, list[RunResult]] = {name: [] for name in paths}
        scrapes = 0
        order = random.Random(seed)
        for _ in range(rounds):
            arms = list(paths)
            order.shuffle(arms)
            for arm in arms:
                path = paths[arm]
                if path is None:
                    runs[arm].append(load_once(server, ITEMS, connections=connections,
                                               seconds=seconds))
                    continue
                scraper = Scraper(server.port, path)
                scraper.start()
                try:
                    runs[arm].append(load_once(server, ITEMS, connections=connections,
                                               seconds=seconds))
                finally:
                    scraper.stop.set()
                    scraper.join()
                if scraper.failure is not None or not scraper.scrapes:
                    raise LoadError(f"scraper: {scraper.failure or 'no scrape finished'}")
                scrapes += scraper.scrapes
    return ScrapeResults(rounds, seconds, SCRAPE_SERIES, scrapes, runs)


def main() -> None:
    """Encoding on the event loop against encoding in the render thread, in one server."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--connections", type=int, default=4)
    arguments = parser.parse_args()
    modes = ("/in-loop", "/in-thread")
    results = run_scrape_load(rounds=arguments.rounds, seconds=arguments.seconds,
                              connections=arguments.connections, stack=Stack("h11", "asyncio"),
                              modes=modes)
    print(f"{results.rounds} rounds of {results.seconds:g} s per arm, {results.scrapes} "
          f"scrapes of a {results.series:,}-line registry; p99 rise over the same round's "
          "baseline, median over rounds (approximate 95 % interval)\n")
    print("| one scrape a second | encoded on the event loop | encoded in the render thread |")
    print("|---|---:|---:|")
    for arm, baseline, case in (("scraped", "quiet", "nothing changed since the last scrape"),
                                ("churned", "churn_only", "every series changed")):
        cells = []
        for mode in modes:
            rise, (low, high) = results.rise(arm + mode, baseline)
            cells.append(f"{100 * rise:+.0f} % ({100 * low:+.0f} - {100 * high:+.0f} %)")
        print(f"| {case} | {' | '.join(cells)} |")


if __name__ == "__main__":
    main()

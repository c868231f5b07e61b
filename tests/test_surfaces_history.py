"""Dashboard history: samples, derived rates and quantiles, the two resolutions, failures."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from starlette.applications import Starlette
from starlette.testclient import TestClient

from asgi_mcp_metrics import BackendMonitor, instrument_tool
from asgi_mcp_metrics._binding import get_recorder
from asgi_mcp_metrics.config import Settings
from asgi_mcp_metrics.llm import LLMMetrics
from asgi_mcp_metrics.starlette import instrument
from asgi_mcp_metrics.surfaces.history import History, bucket_quantile

from .asgi import total
from .helpers import FakeClock


def test_quantiles_interpolate_like_promql() -> None:
    bounds = (0.1, 0.5, float("inf"))
    assert bucket_quantile(0.5, bounds, (0, 10, 10)) == pytest.approx(0.3)
    assert bucket_quantile(0.5, bounds, (10, 10, 10)) == pytest.approx(0.05)
    assert bucket_quantile(0.99, bounds, (0, 0, 4)) == 0.5  # +Inf answers the last bound
    assert bucket_quantile(0.5, bounds, (0, 0, 0)) is None


def test_rates_errors_and_quantiles_from_driven_traffic(registry: CollectorRegistry,
                                                       clock: FakeClock) -> None:
    settings = Settings()
    recorder = get_recorder(registry, settings)
    wall = FakeClock(0.0)
    history = History(recorder, seconds=60, minutes=3, clock=wall)

    @instrument_tool(registry=registry, settings=settings)
    def lookup(fail: bool) -> str:
        clock.advance(0.015)  # every call lands in the (0.01, 0.02] bucket
        if fail:
            raise RuntimeError("no")
        return "ok"

    history.sample()
    wall.advance(1)
    for i in range(10):
        with contextlib.suppress(RuntimeError):
            lookup(i < 2)
    LLMMetrics(registry=registry, settings=settings).record_tokens("p", "m", input=30, output=6)
    backend = BackendMonitor("git", registry=registry, settings=settings)
    backend.connected("startup")
    history.sample()
    wall.advance(1)
    history.sample()

    window = history.window(10)
    assert window["resolution"] == 1
    assert window["t"] == [1.0, 2.0]
    series = window["series"]
    assert series["tool_calls_per_second"] == [10.0, 0.0]
    assert series["tool_error_percent"] == [20.0, None]
    assert series["tokens_per_second"] == [36.0, 0.0]
    assert series["backends_up"] == [1.0, 1.0]
    assert series["p50"][0] == pytest.approx(0.015)
    assert series["p99"][0] == pytest.approx(0.0199)
    # The second point looks back over the last ten samples: the same calls.
    assert series["p50"][1] == pytest.approx(0.015)
    assert total(registry, "mcp_tool_calls_total") == 10
    assert history.version == 3


def test_rings_are_bounded_and_coarse_points_are_minutes(registry: CollectorRegistry) -> None:
    recorder = get_recorder(registry, Settings())
    wall = FakeClock(0.0)
    history = History(recorder, seconds=5, minutes=3, clock=wall)
    for at in (0, 1, 2, 61, 62, 125, 190, 250):
        wall.now = float(at)
        history.sample()
    assert [s.t for s in history.fine] == [61, 62, 125, 190, 250]
    assert [s.t for s in history.coarse] == [125, 190, 250]  # one per minute, the last 3
    window = history.window(3600)
    assert window["resolution"] == 60
    assert window["t"] == [190.0, 250.0]


class Broken(Collector):
    def collect(self) -> Iterator[Metric]:
        raise OSError("the registry is broken")


def test_a_failing_sample_is_counted_not_raised(registry: CollectorRegistry) -> None:
    recorder = get_recorder(registry, Settings())
    registry.register(Broken())
    history = History(recorder)
    history.sample()
    assert history.version == 0
    registry.unregister(next(c for c in list(registry._collector_to_names) if
                             isinstance(c, Broken)))
    assert total(registry, "asgi_mcp_metrics_internal_errors_total",
                 where="history.sample") == 1


def test_history_endpoint_and_its_range(registry: CollectorRegistry) -> None:
    app = instrument(Starlette(), registry=registry)
    with TestClient(app) as client:
        doc = client.get("/metrics/ui/history?range=60").json()
        assert doc["resolution"] == 1
        assert set(doc) >= {"t", "series", "top_tools", "backends", "scope"}
        assert doc["scope"].startswith("one worker (pid ")
        for bad in ("0", "abc", str(8 * 86400)):
            assert client.get(f"/metrics/ui/history?range={bad}").status_code == 400
    app.state.asgi_mcp_metrics_surfaces.history.stop()


def test_totals_over_a_window(registry: CollectorRegistry) -> None:
    settings = Settings()
    recorder = get_recorder(registry, settings)
    wall = FakeClock(3600.0 * 10)  # on the hour
    history = History(recorder, clock=wall)
    llm = LLMMetrics(registry=registry, settings=settings)

    @instrument_tool(backend="git", registry=registry, settings=settings)
    def push() -> str:
        return "ok"

    history.sample()                       # 10:00:00
    push()
    llm.record_tokens("p", "m", input=10)
    wall.advance(60)
    history.sample()                       # 10:01:00
    push()
    push()
    wall.advance(30)
    history.sample()                       # 10:01:30: same minute, no new start
    wall.advance(40)
    push()
    history.sample()                       # 10:02:10
    assert [t - 36000 for t, _ in history.minute_rows] == [0, 60, 130]

    def calls(seconds: float) -> tuple[float, float]:
        found = history.totals_since(seconds)
        assert found is not None
        since, rows = found
        return since - 36000, sum(rows["tool_calls"].values())

    assert calls(60) == (60, 3)      # from 10:01:00 (the newest minute start >= 60 s old)
    assert calls(100) == (0, 4)      # from 10:00:00
    assert calls(30) == (60, 3)      # 10:01:00 is the newest start at least 30 s old
    assert calls(7200) == (0, 4)     # before the history began: from its start
    assert sum(history.totals_since(100)[1]["tokens"].values()) == 10  # type: ignore[index]


def test_window_totals_endpoint(registry: CollectorRegistry) -> None:
    app = instrument(Starlette(), registry=registry)
    with TestClient(app) as client:
        doc = client.get("/metrics/totals?window=3600&tool=x*").json()
        assert doc["window"]["seconds"] == 3600
        assert isinstance(doc["window"]["since"], float)
        assert doc["tool_calls"] == {"total": 0}
        assert doc["filters"] == {"tool": "x*"}
        for bad in ("0", "soon", str(8 * 86400)):
            answer = client.get(f"/metrics/totals?window={bad}")
            assert answer.status_code == 400
            assert "window" in answer.json()["error"]
    app.state.asgi_mcp_metrics_surfaces.history.stop()

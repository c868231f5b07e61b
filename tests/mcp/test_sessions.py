"""Session idle reaping, driven with explicit times: which sessions end, when, and how many."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from asgi_mcp_metrics._binding import get_recorder
from asgi_mcp_metrics.catalog import BY_NAME
from asgi_mcp_metrics.config import Settings
from asgi_mcp_metrics.mcp import sessions as sessions_module
from asgi_mcp_metrics.mcp.recording import McpRecording
from asgi_mcp_metrics.mcp.sessions import IDLE_TIMEOUT, Sessions
from asgi_mcp_metrics.mcp.wire.vocabulary import SESSION_END_REASONS
from tests.asgi import total, value

STREAMABLE = "streamable_http"


def make(registry: CollectorRegistry, timeout: float = 10.0) -> Sessions:
    return Sessions(McpRecording(get_recorder(registry, Settings())), timeout)


def ended(registry: CollectorRegistry, reason: str = IDLE_TIMEOUT) -> float:
    return value(registry, "mcp_server_sessions_ended_total", transport=STREAMABLE,
                 end_reason=reason)


def test_idle_sessions_end_in_the_order_they_fell_idle(registry: CollectorRegistry) -> None:
    sessions = make(registry)
    for name in ("a", "b", "c"):
        sessions.start(name, STREAMABLE, 0.0)
    sessions.idle["a"].last_active, sessions.idle["b"].last_active = 100.0, 105.0
    sessions.idle["c"].last_active = 120.0
    sessions.sweep(109.0)
    assert ended(registry) == 0
    sessions.sweep(110.5)
    assert list(sessions.live) == ["b", "c"]
    sessions.sweep(130.5)
    assert ended(registry) == 3
    assert total(registry, "mcp_server_sessions_active") == 0
    assert sessions.idle == {}
    assert value(registry, "mcp_server_session_duration_seconds_sum", transport=STREAMABLE,
                 end_reason=IDLE_TIMEOUT) == 110.5 + 130.5 + 130.5


def test_a_session_in_use_is_not_idle(registry: CollectorRegistry) -> None:
    sessions = make(registry)
    sessions.start("a", STREAMABLE, 0.0)
    sessions.enter("a")  # e.g. its GET stream, open for an hour
    sessions.enter("a")  # a request
    sessions.leave("a", 50.0)
    sessions.sweep(3600.0)
    assert ended(registry) == 0
    sessions.leave("a", 3600.0)
    sessions.sweep(3609.0)
    assert ended(registry) == 0
    sessions.sweep(3610.5)
    assert ended(registry) == 1


def test_an_exchange_keeps_the_live_sessions_own_id(registry: CollectorRegistry) -> None:
    """A stream's id, decoded from its own header, is an equal string of its own: the exchange
    keeps the session's string instead, so a long GET stream holds no second copy."""
    sessions = make(registry)
    own = "".join(["3f2a", "-session"])
    sessions.start(own, STREAMABLE, 0.0)
    from_header = b"3f2a-session".decode("latin-1")
    assert from_header == own and from_header is not own
    assert sessions.enter(from_header) is own
    unknown = b"not-started".decode("latin-1")
    assert sessions.enter(unknown) is unknown


def test_a_stream_opened_before_its_session_was_seen_to_start(
        registry: CollectorRegistry) -> None:
    """The client has its initialize answer and opens the GET stream before the initialize
    exchange has finished on the server."""
    sessions = make(registry)
    sessions.enter("a")
    sessions.start("a", STREAMABLE, 0.0)
    sessions.sweep(1e9)
    assert ended(registry) == 0
    sessions.leave("a", 100.0)
    assert sessions.early == {}
    sessions.sweep(110.5)
    assert ended(registry) == 1


def test_exchanges_on_unknown_session_ids_are_forgotten_and_capped(
        registry: CollectorRegistry) -> None:
    sessions = make(registry)
    for i in range(sessions_module.MAX_EARLY + 10):
        sessions.enter(f"unknown-{i}")
    assert len(sessions.early) == sessions_module.MAX_EARLY
    for i in range(sessions_module.MAX_EARLY + 10):
        sessions.leave(f"unknown-{i}", 1.0)
    assert sessions.early == {}


def test_work_per_sweep_is_bounded(registry: CollectorRegistry) -> None:
    sessions = make(registry, timeout=1.0)
    count = sessions_module.MAX_REAPED_PER_SWEEP + 10
    for i in range(count):
        sessions.start(str(i), STREAMABLE, 0.0)
    for session in sessions.idle.values():
        session.last_active = 0.0
    sessions.sweep(5.0)
    assert ended(registry) == sessions_module.MAX_REAPED_PER_SWEEP
    sessions.sweep(5.0)
    assert ended(registry) == count


def test_legacy_sessions_and_a_zero_timeout_are_never_idle(registry: CollectorRegistry) -> None:
    legacy = make(registry)
    legacy.start("a", "sse", 0.0)
    never = make(CollectorRegistry(), timeout=0.0)
    never.start("b", STREAMABLE, 0.0)
    for sessions in (legacy, never):
        sessions.sweep(1e9)
        assert len(sessions.live) == 1 and sessions.idle == {}


def test_idle_timeout_is_in_the_end_reason_vocabulary() -> None:
    assert IDLE_TIMEOUT in SESSION_END_REASONS
    help_text = BY_NAME["mcp_server_sessions_ended_total"].help
    assert all(reason in help_text for reason in SESSION_END_REASONS)

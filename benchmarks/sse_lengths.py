"""The SSE route at several stream lengths: the cost per stream, per event, and whether the
per-event cost depends on how long a stream lives.

Every variant streams ``/events`` at each of :data:`LENGTHS` events, interleaved in shuffled
rounds like the other in-process runs.  A batch holds streams of one length that add up to the
same number of events, so a long stream is not timed on fewer events than a short one.  Per
round, the per-event cost is a slope: (time of an L2-event stream - time of an L1-event stream)
/ (L2 - L1).  The overhead per event is that slope minus the bare app's slope of the same round.

"Independent of stream length" compares the overhead per event over the first part of a long
stream (events 10 to 100) with the last part (events 100 to 200), round by round.  The
tolerance is the rounds' own spread: the approximate 95 % interval of the median of the
per-round differences, ``median ± 1.58 * IQR / sqrt(rounds)`` (the notch of a box plot).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from apps import BARE, SSE_EVENTS, VARIANTS, build_variant, sse_request
from asgi_driver import UnexpectedReply, call
from inprocess import Verified, check_sse, verify
from timing import CLOCKS, Contender, interleave, median_interval, request_batch

#: Stream lengths in events: short, the middle of a long stream, a long stream.
LENGTHS = (SSE_EVENTS, 100, 200)
SHORT, MIDDLE, LONG = LENGTHS


@dataclass(frozen=True)
class Plan:
    rounds: int
    events_per_batch: int
    seed: int
    clock: str = "cpu"


@dataclass(frozen=True)
class PerEvent:
    """One variant's SSE costs, in microseconds (medians over rounds)."""

    variant: str
    per_stream_us: dict[int, float]
    """Time per stream at each of :data:`LENGTHS`."""
    overhead_per_stream_us: dict[int, float]
    """Paired difference to bare per stream at each length (0 for bare)."""
    per_event_us: float
    """Slope from the short to the long stream."""
    overhead_per_event_us: float
    """That slope minus bare's, paired by round (0 for bare)."""
    early_overhead_us: float
    """Overhead per event over events SHORT..MIDDLE."""
    late_overhead_us: float
    """Overhead per event over events MIDDLE..LONG."""
    growth_us: float
    """Median per-round (late - early) overhead per event."""
    growth_interval_us: tuple[float, float]
    """Approximate 95 % interval of that median, from the rounds' spread."""


@dataclass(frozen=True)
class Results:
    rows: list[PerEvent]
    verified: list[Verified]
    rounds: int
    events_per_batch: int


def _slopes(times: dict[int, list[float]], first: int, last: int) -> list[float]:
    """Per-round seconds per event between streams of ``first`` and ``last`` events."""
    return [(late - early) / (last - first)
            for early, late in zip(times[first], times[last], strict=True)]


def _minus(values: Sequence[float], base: Sequence[float]) -> list[float]:
    return [value - other for value, other in zip(values, base, strict=True)]


def _row(variant: str, times: dict[int, list[float]],
         bare: dict[int, list[float]]) -> PerEvent:
    us = 1e6
    slope = _slopes(times, SHORT, LONG)
    early = _minus(_slopes(times, SHORT, MIDDLE), _slopes(bare, SHORT, MIDDLE))
    late = _minus(_slopes(times, MIDDLE, LONG), _slopes(bare, MIDDLE, LONG))
    growth = _minus(late, early)
    low, high = median_interval(growth)
    return PerEvent(
        variant=variant,
        per_stream_us={n: statistics.median(times[n]) * us for n in LENGTHS},
        overhead_per_stream_us={n: statistics.median(_minus(times[n], bare[n])) * us
                                for n in LENGTHS},
        per_event_us=statistics.median(slope) * us,
        overhead_per_event_us=statistics.median(
            _minus(slope, _slopes(bare, SHORT, LONG))) * us,
        early_overhead_us=statistics.median(early) * us,
        late_overhead_us=statistics.median(late) * us,
        growth_us=statistics.median(growth) * us,
        growth_interval_us=(low * us, high * us),
    )


async def run_sse_lengths(plan: Plan, *, mcp_parsing: str) -> Results:
    """Every variant of :data:`apps.VARIANTS` at every stream length, then verified."""
    variants = [build_variant(name, mcp_parsing=mcp_parsing) for name in VARIANTS]
    probes = {}
    for variant in variants:
        reply = await call(variant.app, sse_request(LONG), keep_body=True)
        if reply.body.count(b"event: tick") != LONG:
            raise UnexpectedReply(f"{variant.name}: a {LONG}-event stream answered {reply}")
        probes[variant.name] = 1
    contenders = [
        Contender(f"SSE, {events} events", variant.name,
                  request_batch(variant.app, sse_request(events), check_sse(events)),
                  per_round=max(1, plan.events_per_batch // events))
        for variant in variants for events in LENGTHS]
    await interleave(contenders, rounds=plan.rounds, per_round=1, warmup=1, seed=plan.seed,
                     clock=CLOCKS[plan.clock])
    verified = [verify(variant, probes[variant.name] + sum(
        c.sent for c in contenders if c.variant == variant.name)) for variant in variants]
    times = {variant.name: {events: next(
        c.seconds_per_request for c in contenders
        if c.variant == variant.name and c.workload == f"SSE, {events} events")
        for events in LENGTHS} for variant in variants}
    rows = [_row(name, times[name], times[BARE]) for name in VARIANTS]
    return Results(rows, [v for v in verified if v.variant != BARE], plan.rounds,
                   plan.events_per_batch)


def independence(row: PerEvent) -> bool | None:
    """Whether ``row``'s overhead per event is the same late in a long stream as early on.

    Met when the late part costs no more than the early part beyond the interval the rounds'
    spread allows; inconclusive when that interval is so wide that it could hide a rise of
    half the early per-event overhead (or of 0.5 µs, if that is larger); not met when the
    whole interval lies above zero.
    """
    low, high = row.growth_interval_us
    if low > 0:
        return False
    if high - row.growth_us > max(0.5 * abs(row.early_overhead_us), 0.5):
        return None
    return True

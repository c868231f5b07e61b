"""Interleaved in-process timing: every round runs every contender, in a new random order.

Machine noise (another process waking up, frequency changes, a cache going cold) then lands on
all contenders alike instead of on whichever ran during the bad second.  Each round gives one
per-request time per contender; the summaries are medians over rounds, and the overhead is the
median of the per-round differences to the baseline, which cancels slow drift.

Batches are timed with the process's CPU clock by default: the loop never waits on I/O, so on
an idle machine CPU time equals wall time, and on a busy one the time the OS gave to other
processes is not charged to whichever contender happened to be running.
"""

from __future__ import annotations

import gc
import math
import random
import statistics
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from time import perf_counter, process_time

from asgi_driver import ASGIApp, Reply, Request, UnexpectedReply, call

Batch = Callable[[int], Awaitable[None]]
Clock = Callable[[], float]
CLOCKS: dict[str, Clock] = {"cpu": process_time, "wall": perf_counter}


@dataclass
class Contender:
    """One thing to time: ``batch(n)`` performs ``n`` requests."""

    workload: str
    variant: str
    batch: Batch
    per_round: int | None = None
    """Requests per round (and for the warm-up) instead of the run's, for a heavier request."""
    sent: int = 0
    seconds_per_request: list[float] = field(default_factory=list)


def request_batch(app: ASGIApp, request: Request,
                  check: Callable[[Reply], str | None]) -> Batch:
    """A batch that replays ``request`` and fails loudly on a reply ``check`` rejects."""

    async def run(count: int) -> None:
        for _ in range(count):
            reply = await call(app, request)
            problem = check(reply)
            if problem is not None:
                raise UnexpectedReply(f"{request.method} {request.path}: {problem}")

    return run


async def interleave(contenders: Sequence[Contender], *, rounds: int, per_round: int,
                     warmup: int, seed: int, clock: Clock = process_time) -> None:
    """Warm every contender up, then time ``rounds`` shuffled rounds of ``per_round`` requests."""
    shuffler = random.Random(seed)
    for contender in contenders:
        count = contender.per_round or warmup
        await contender.batch(count)
        contender.sent += count
    order = list(contenders)
    for _ in range(rounds):
        shuffler.shuffle(order)
        for contender in order:
            count = contender.per_round or per_round
            # Garbage left by the previous contender is collected now, not on this one's clock.
            gc.collect()
            started = clock()
            await contender.batch(count)
            elapsed = clock() - started
            contender.sent += count
            contender.seconds_per_request.append(elapsed / count)


@dataclass(frozen=True)
class Summary:
    """A contender's numbers, in microseconds, against the workload's baseline."""

    variant: str
    median_us: float
    overhead_us: float
    ratio: float
    spread_us: tuple[float, float]
    """First and third quartile of the per-round times."""
    overhead_spread_us: tuple[float, float]
    """First and third quartile of the per-round differences to the baseline."""


def summarize(contenders: Sequence[Contender], baseline: str) -> list[Summary]:
    """Summaries of one workload's contenders, baseline first."""
    base = next(c for c in contenders if c.variant == baseline)
    base_median = statistics.median(base.seconds_per_request)
    rows = []
    for contender in sorted(contenders, key=lambda c: c.variant != baseline):
        times = contender.seconds_per_request
        paired = [t - b for t, b in zip(times, base.seconds_per_request, strict=True)]
        quartiles = middle_half(times)
        low, high = middle_half(paired)
        rows.append(Summary(
            variant=contender.variant,
            median_us=statistics.median(times) * 1e6,
            overhead_us=statistics.median(paired) * 1e6,
            ratio=statistics.median(times) / base_median,
            spread_us=(quartiles[0] * 1e6, quartiles[1] * 1e6),
            overhead_spread_us=(low * 1e6, high * 1e6),
        ))
    return rows


def middle_half(values: Sequence[float]) -> tuple[float, float]:
    """First and third quartile."""
    if len(values) < 2:
        return values[0], values[0]
    first, _, third = statistics.quantiles(values, n=4)
    return first, third


def median_interval(values: Sequence[float]) -> tuple[float, float]:
    """Approximate 95 % interval of the median of ``values`` (McGill's notch)."""
    center = statistics.median(values)
    low, high = middle_half(values)
    half_width = 1.58 * (high - low) / math.sqrt(len(values))
    return center - half_width, center + half_width

"""In-process benchmarks: the ASGI apps called directly, interleaved, then verified.

After timing, every instrumented variant's registry is read back: the number of requests it
recorded must equal the number the benchmark sent, or the run fails.  A variant that silently
recorded nothing would otherwise look wonderfully cheap.
"""

from __future__ import annotations

import json
from contextlib import AsyncExitStack
from dataclasses import dataclass

from apps import (
    BARE,
    JSON_REQUEST,
    SSE_EVENTS,
    SSE_REQUEST,
    VARIANTS,
    Variant,
    build_variant,
)
from asgi_driver import Lifespan, Reply, UnexpectedReply, call
from mcp_app import (
    ERAS,
    MCP_BARE,
    MCP_HTTP_ONLY,
    MODERN_ERA,
    build_mcp_variant,
    check_tool_body,
    check_tool_result,
    mcp_variant_names,
    tool_call,
    tools_list,
)
from timing import CLOCKS, Contender, Summary, interleave, request_batch, summarize

JSON_WORKLOAD = "JSON route (/items/{item_id})"
SSE_WORKLOAD = f"SSE route (/events, {SSE_EVENTS} events)"


class VerificationError(RuntimeError):
    """A variant did not record what was sent to it."""


@dataclass(frozen=True)
class Verified:
    variant: str
    sent: int
    recorded: int


@dataclass(frozen=True)
class Results:
    tables: dict[str, list[Summary]]
    verified: list[Verified]


@dataclass(frozen=True)
class Plan:
    rounds: int
    per_round: int
    warmup: int
    seed: int
    clock: str = "cpu"
    """A key of :data:`timing.CLOCKS`."""


def _check_json(reply: Reply) -> str | None:
    return None if reply.status == 200 and reply.body_messages == 1 else f"got {reply}"


def _check_sse(reply: Reply) -> str | None:
    # Ten events plus Starlette's closing empty body message.
    if reply.status == 200 and reply.body_messages == SSE_EVENTS + 1:
        return None
    return f"got {reply}"


async def _probe_plain(variant: Variant) -> int:
    """One full look at each route's answer before timing; returns the requests it sent."""
    reply = await call(variant.app, JSON_REQUEST, keep_body=True)
    if reply.status != 200 or json.loads(reply.body).get("id") != 42:
        raise UnexpectedReply(f"{variant.name}: JSON route answered {reply}")
    reply = await call(variant.app, SSE_REQUEST, keep_body=True)
    if reply.body.count(b"event: tick") != SSE_EVENTS:
        raise UnexpectedReply(f"{variant.name}: SSE route answered {reply}")
    return 2


async def run_plain(plan: Plan, *, mcp_parsing: str) -> Results:
    """The plain JSON and SSE routes, every variant of :data:`apps.VARIANTS`."""
    variants = [build_variant(name, mcp_parsing=mcp_parsing) for name in VARIANTS]
    probes = {variant.name: await _probe_plain(variant) for variant in variants}
    contenders: list[Contender] = []
    for variant in variants:
        contenders.append(Contender(JSON_WORKLOAD, variant.name,
                                    request_batch(variant.app, JSON_REQUEST, _check_json)))
        contenders.append(Contender(SSE_WORKLOAD, variant.name,
                                    request_batch(variant.app, SSE_REQUEST, _check_sse)))
    await interleave(contenders, rounds=plan.rounds, per_round=plan.per_round,
                     warmup=plan.warmup, seed=plan.seed, clock=CLOCKS[plan.clock])
    verified = []
    for variant in variants:
        sent = probes[variant.name] + sum(c.sent for c in contenders
                                          if c.variant == variant.name)
        verified.append(_verify(variant, sent))
    tables = {workload: summarize([c for c in contenders if c.workload == workload], BARE)
              for workload in (JSON_WORKLOAD, SSE_WORKLOAD)}
    return Results(tables, [v for v in verified if v.variant != BARE])


def mcp_workload(era: str) -> str:
    return f"MCP tools/call, protocol {era}"


async def run_mcp(plan: Plan, *, mcp_parsing: str) -> Results:
    """``tools/call`` on the SDK app: bare, HTTP metrics only, and with MCP parsing."""
    names = list(mcp_variant_names(mcp_parsing))
    variants = [build_mcp_variant(name, mcp_parsing=mcp_parsing) for name in names]
    contenders: list[Contender] = []
    async with AsyncExitStack() as stack:
        for variant in variants:
            await stack.enter_async_context(Lifespan(variant.app))
        requests_sent = dict.fromkeys(names, 0)
        for variant in variants:
            for era in ERAS:
                # A client lists the tools before calling one; the tracker learns names there.
                listed = await call(variant.app, tools_list(era), keep_body=True)
                if listed.status != 200 or b'"add"' not in listed.body:
                    raise UnexpectedReply(f"{variant.name}: tools/list answered {listed}")
                called = await call(variant.app, tool_call(era), keep_body=True)
                problem = check_tool_body(called)
                if problem is not None:
                    raise UnexpectedReply(f"{variant.name}, {era}: {problem}")
                requests_sent[variant.name] += 2
        for variant in variants:
            for era in ERAS:
                contenders.append(Contender(mcp_workload(era), variant.name, request_batch(
                    variant.app, tool_call(era), check_tool_result)))
        await interleave(contenders, rounds=plan.rounds, per_round=plan.per_round,
                         warmup=plan.warmup, seed=plan.seed, clock=CLOCKS[plan.clock])
    verified = []
    for variant in variants:
        mine = [c for c in contenders if c.variant == variant.name]
        if variant.name == MCP_BARE:
            continue
        if variant.name == MCP_HTTP_ONLY:
            sent = requests_sent[variant.name] + sum(c.sent for c in mine)
        else:
            # One probe tools/call per era, plus the timed ones, in the eras the mode can see.
            visible = [era for era in ERAS if mcp_parsing != "headers_only" or era == MODERN_ERA]
            sent = sum(1 + c.sent for c in mine
                       if any(c.workload == mcp_workload(era) for era in visible))
        verified.append(_verify(variant, sent))
    tables = {mcp_workload(era): summarize(
        [c for c in contenders if c.workload == mcp_workload(era)], MCP_BARE) for era in ERAS}
    return Results(tables, verified)


def _verify(variant: Variant, sent: int) -> Verified:
    recorded = variant.recorded()
    if recorded is None:
        return Verified(variant.name, sent, sent)
    if recorded != sent:
        raise VerificationError(
            f"{variant.name} recorded {recorded} requests but {sent} were sent; its numbers "
            "would not mean anything")
    return Verified(variant.name, sent, recorded)

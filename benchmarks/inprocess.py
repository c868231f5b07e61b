"""In-process benchmarks: the ASGI apps called directly, interleaved, then verified.

After timing, every instrumented variant's registry is read back: the number of requests it
recorded must equal the number the benchmark sent, or the run fails.  A variant that silently
recorded nothing would otherwise look wonderfully cheap.
"""

from __future__ import annotations

import json
from collections.abc import Callable
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
    MCP_PATH,
    MODERN_ERA,
    build_mcp_variant,
    build_sdk_app,
    check_tool_body,
    check_tool_result,
    counts_every_request,
    mcp_variant_names,
    tool_call,
    tools_list,
)
from mcp_replay import capture, replay_app
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
    internal_errors: int = 0


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


def check_sse(events: int) -> Callable[[Reply], str | None]:
    """A check for a stream of ``events`` events."""

    def check(reply: Reply) -> str | None:
        # The events plus Starlette's closing empty body message.
        if reply.status == 200 and reply.body_messages == events + 1:
            return None
        return f"got {reply}"

    return check


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
                                    request_batch(variant.app, SSE_REQUEST,
                                                  check_sse(SSE_EVENTS))))
    await interleave(contenders, rounds=plan.rounds, per_round=plan.per_round,
                     warmup=plan.warmup, seed=plan.seed, clock=CLOCKS[plan.clock])
    verified = []
    for variant in variants:
        sent = probes[variant.name] + sum(c.sent for c in contenders
                                          if c.variant == variant.name)
        verified.append(verify(variant, sent))
    tables = {workload: summarize([c for c in contenders if c.workload == workload], BARE)
              for workload in (JSON_WORKLOAD, SSE_WORKLOAD)}
    return Results(tables, [v for v in verified if v.variant != BARE])


def mcp_workload(era: str) -> str:
    return f"MCP tools/call, protocol {era}"


def replay_workload(era: str) -> str:
    return f"MCP tools/call, protocol {era}, SDK answers replayed"


def parsing_workload(era: str) -> str:
    """The replayed run's table against ``mcp_parsing="off"`` instead of the bare stub."""
    return f"MCP tools/call, protocol {era}, replayed, against HTTP metrics only"


async def run_mcp(sdk_plan: Plan, replay_plan: Plan, *, mcp_parsing: str) -> Results:
    """``tools/call``: bare, HTTP metrics only, with MCP parsing, and the peers; real SDK and
    replayed."""
    sdk = await _run_mcp_sdk(sdk_plan, mcp_parsing)
    replayed = await _run_mcp_replay(replay_plan, mcp_parsing)
    return Results({**sdk.tables, **replayed.tables}, sdk.verified + replayed.verified)


async def _list_tools(variant: Variant, era: str) -> None:
    # A client lists the tools before calling one; the tracker learns the names there.
    listed = await call(variant.app, tools_list(era), keep_body=True)
    if listed.status != 200 or b'"add"' not in listed.body:
        raise UnexpectedReply(f"{variant.name}: tools/list answered {listed}")


async def _run_mcp_sdk(plan: Plan, mcp_parsing: str) -> Results:
    names = mcp_variant_names(mcp_parsing, peers=True)
    variants = [build_mcp_variant(name, mcp_parsing=mcp_parsing) for name in names]
    contenders: list[Contender] = []
    async with AsyncExitStack() as stack:
        for variant in variants:
            await stack.enter_async_context(Lifespan(variant.app))
        for variant in variants:
            for era in ERAS:
                await _list_tools(variant, era)
                called = await call(variant.app, tool_call(era), keep_body=True)
                problem = check_tool_body(called)
                if problem is not None:
                    raise UnexpectedReply(f"{variant.name}, {era}: {problem}")
        for variant in variants:
            for era in ERAS:
                contenders.append(Contender(mcp_workload(era), variant.name, request_batch(
                    variant.app, tool_call(era), check_tool_result)))
        await interleave(contenders, rounds=plan.rounds, per_round=plan.per_round,
                         warmup=plan.warmup, seed=plan.seed, clock=CLOCKS[plan.clock])
    verified = _verify_mcp(variants, contenders, mcp_parsing, probe_calls=1, where="SDK")
    tables = {mcp_workload(era): summarize(
        [c for c in contenders if c.workload == mcp_workload(era)], MCP_BARE) for era in ERAS}
    return Results(tables, verified)


async def _run_mcp_replay(plan: Plan, mcp_parsing: str) -> Results:
    source = build_sdk_app()
    exchanges = []
    async with Lifespan(source):
        for era in ERAS:
            exchanges.append(await capture(source, tools_list(era)))
            called = await capture(source, tool_call(era))
            problem = check_tool_body(called.reply())
            if problem is not None:
                raise UnexpectedReply(f"captured tools/call, {era}: {problem}")
            exchanges.append(called)
    names = mcp_variant_names(mcp_parsing, peers=True)
    variants = [build_mcp_variant(name, mcp_parsing=mcp_parsing,
                                  base=lambda: replay_app(exchanges, MCP_PATH))
                for name in names]
    for variant in variants:
        for era in ERAS:
            await _list_tools(variant, era)
    contenders = [Contender(replay_workload(era), variant.name, request_batch(
        variant.app, tool_call(era), check_tool_result)) for variant in variants for era in ERAS]
    await interleave(contenders, rounds=plan.rounds, per_round=plan.per_round,
                     warmup=plan.warmup, seed=plan.seed, clock=CLOCKS[plan.clock])
    verified = _verify_mcp(variants, contenders, mcp_parsing, probe_calls=0, where="replayed")
    tables = {}
    for era in ERAS:
        mine = [c for c in contenders if c.workload == replay_workload(era)]
        tables[replay_workload(era)] = summarize(mine, MCP_BARE)
        # Against HTTP metrics alone, paired by round: what the MCP parsing itself costs.
        tables[parsing_workload(era)] = summarize(mine, MCP_HTTP_ONLY)
    return Results(tables, verified)


def _verify_mcp(variants: list[Variant], contenders: list[Contender], mcp_parsing: str, *,
                probe_calls: int, where: str) -> list[Verified]:
    """HTTP-level variants (ours with parsing off, the peers) must count every request, the
    parsed one every visible tools/call."""
    verified = []
    for variant in variants:
        mine = [c for c in contenders if c.variant == variant.name]
        if variant.name == MCP_BARE:
            continue
        if counts_every_request(variant.name):
            # Per era: one tools/list, the probe calls, the timed calls.
            sent = sum(1 + probe_calls + c.sent for c in mine)
        else:
            # headers_only cannot name the tool of a handshake-era call (no Mcp-Name header).
            visible = [era for era in ERAS if mcp_parsing != "headers_only" or era == MODERN_ERA]
            sent = sum(probe_calls + c.sent for c in mine
                       if any(c.workload.startswith(mcp_workload(era)) for era in visible))
        checked = verify(variant, sent)
        verified.append(Verified(f"{checked.variant} ({where})", checked.sent, checked.recorded,
                                 checked.internal_errors))
    return verified


def verify(variant: Variant, sent: int) -> Verified:
    """What ``variant`` recorded, which must be ``sent``."""
    recorded = variant.recorded()
    if recorded is None:
        return Verified(variant.name, sent, sent)
    if recorded != sent:
        raise VerificationError(
            f"{variant.name} recorded {recorded} requests but {sent} were sent; its numbers "
            "would not mean anything")
    return Verified(variant.name, sent, recorded, variant.internal_errors())


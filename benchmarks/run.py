"""Benchmark asgi_mcp_metrics against the bare app and its peers, in one interleaved run.

    python benchmarks/run.py                 # everything, about 10 minutes on 2 cores
    python benchmarks/run.py --quick         # a smoke run, about two minutes
    python benchmarks/run.py --output docs/performance.md

Prints the results as Markdown.  ``--output`` writes them into a file: between the
``<!-- benchmark-results:start -->`` and ``<!-- benchmark-results:end -->`` markers when the
file has them (the text around them is kept), else as the whole file.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import re
import shlex
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import report
from apps import BARE, JSON_REQUEST, OURS, SSE_EVENTS, SSE_REQUEST, VARIANTS
from asgi_driver import Request
from inprocess import (
    JSON_WORKLOAD,
    SSE_WORKLOAD,
    Results,
    VerificationError,
    mcp_workload,
    parsing_workload,
    replay_workload,
    run_mcp,
    run_plain,
)
from inprocess import Plan as InProcessPlan
from inprocess import Verified as InProcessVerified
from mcp_app import (
    HANDSHAKE_ERA,
    MCP_BARE,
    MCP_PEERS,
    MODERN_ERA,
    TOOL,
    counts_every_request,
    mcp_variant_names,
    parsed_variant_name,
    tool_call,
    tools_list,
)
from render_bench import RenderResults, run_render
from scrape_load import run_scrape_load
from server_load import (
    Load,
    Server,
    Stack,
    Throughput,
    interleave_load,
    load_generator,
    post,
    running_servers,
)
from server_load import Plan as ServerPlan
from server_load import Verified as ServerVerified
from server_load import summarize as summarize_load
from server_load import verify as verify_load
from session_memory import WARMUP_SESSIONS, run_server_memory, run_traced_memory
from sse_lengths import LENGTHS, independence, run_sse_lengths
from sse_lengths import Plan as SsePlan
from timing import middle_half

START_MARKER = "<!-- benchmark-results:start -->"
END_MARKER = "<!-- benchmark-results:end -->"
PARTS = ("inprocess", "sse", "mcp", "render", "scrape", "server", "mixed", "memory")


@dataclass(frozen=True)
class Settings:
    plain: InProcessPlan
    mcp: InProcessPlan
    mcp_replay: InProcessPlan
    sse: SsePlan
    server: ServerPlan
    mcp_server: ServerPlan
    mixed_server: ServerPlan
    render_series: int
    render_repeats: int
    memory_sessions: int
    memory_rounds: int
    clock: str = "cpu"
    stack: Stack = field(default_factory=Stack)


FULL = Settings(
    plain=InProcessPlan(rounds=25, per_round=250, warmup=300, seed=1),
    mcp=InProcessPlan(rounds=30, per_round=20, warmup=20, seed=2),
    mcp_replay=InProcessPlan(rounds=30, per_round=300, warmup=200, seed=5),
    sse=SsePlan(rounds=30, events_per_batch=2000, seed=6),
    # Short runs, many rounds: the runs paired in one round lie close together in time.
    server=ServerPlan(rounds=8, seconds=3, warmup_seconds=2, connections=32, seed=3),
    mcp_server=ServerPlan(rounds=8, seconds=3, warmup_seconds=2, connections=16, seed=4),
    mixed_server=ServerPlan(rounds=8, seconds=3, warmup_seconds=2, connections=32, seed=7),
    render_series=10_000,
    render_repeats=15,
    memory_sessions=1_000,
    memory_rounds=3,
)
QUICK = Settings(
    plain=InProcessPlan(rounds=5, per_round=150, warmup=50, seed=1),
    mcp=InProcessPlan(rounds=4, per_round=15, warmup=5, seed=2),
    mcp_replay=InProcessPlan(rounds=5, per_round=100, warmup=50, seed=5),
    sse=SsePlan(rounds=6, events_per_batch=1000, seed=6),
    server=ServerPlan(rounds=2, seconds=2, warmup_seconds=1, connections=32, seed=3),
    mcp_server=ServerPlan(rounds=2, seconds=2, warmup_seconds=1, connections=16, seed=4),
    mixed_server=ServerPlan(rounds=2, seconds=2, warmup_seconds=1, connections=32, seed=7),
    render_series=10_000,
    render_repeats=5,
    memory_sessions=200,
    memory_rounds=1,
)


@dataclass
class Collected:
    allow_internal_errors: bool = False
    sections: list[str] = field(default_factory=list)
    in_process_checks: list[InProcessVerified] = field(default_factory=list)
    server_checks: list[ServerVerified] = field(default_factory=list)
    targets: list[report.Target] = field(default_factory=list)

    def checked(self, checks: Sequence[InProcessVerified | ServerVerified]) -> None:
        """Keep ``checks``; fail when asgi_mcp_metrics caught errors in its own code."""
        for check in checks:
            if isinstance(check, InProcessVerified):
                self.in_process_checks.append(check)
            else:
                self.server_checks.append(check)
        failed = [check for check in checks if check.internal_errors]
        if failed and not self.allow_internal_errors:
            details = ", ".join(f"{check.variant}: {check.internal_errors}" for check in failed)
            raise VerificationError(
                f"asgi_mcp_metrics counted internal errors ({details}); its log says where. "
                "The timings of a failing code path mean nothing; rerun with "
                "--allow-internal-errors to see them anyway.")


def _load_of(request: Request) -> Load:
    # The load generator writes Host and Content-Length itself.
    headers = tuple((name.decode("latin-1"), value.decode("latin-1"))
                    for name, value in request.headers
                    if name not in (b"host", b"content-length"))
    return Load(request.path, request.method, headers, request.body)


def _clock_words(clock: str) -> str:
    if clock == "cpu":
        return "times are the process's CPU time (see Method)"
    return "times are wall-clock time"


def _progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def in_process_plain(settings: Settings, mcp_parsing: str, out: Collected) -> None:
    _progress("in-process: JSON and SSE routes, 5 variants")
    results = asyncio.run(run_plain(settings.plain, mcp_parsing=mcp_parsing))
    out.checked(results.verified)
    plan = settings.plain
    text = [f"## In-process: the ASGI app called directly\n\n{plan.rounds} rounds x "
            f"{plan.per_round} requests per variant and route, after {plan.warmup} warm-up "
            "requests; variants in a new random order every round; "
            f"{_clock_words(plan.clock)}."]
    for workload, rows in results.tables.items():
        text.append(f"### {workload}\n\n{report.timing_table(rows)}")
    out.sections.append("\n\n".join(text))
    _plain_targets(results, out)


def _plain_targets(results: Results, out: Collected) -> None:
    for workload, name, goal_us, unit in (
            (JSON_WORKLOAD, "JSON route (`GET /items/{id}`): overhead in-process", 8, "request"),
            (SSE_WORKLOAD, f"SSE route ({SSE_EVENTS} events): overhead in-process", 30,
             "stream")):
        rows = {row.variant: row for row in results.tables[workload]}
        ours = rows[OURS]
        low, high = ours.overhead_spread_us
        peers = ", ".join(f"{rows[peer].overhead_us:.1f} µs ({peer})"
                          for peer in VARIANTS if peer not in (BARE, OURS))
        out.targets.append(report.Target(
            name, f"<= {goal_us} µs per {unit}",
            f"{ours.overhead_us:.1f} µs; middle half of rounds {low:.1f} - {high:.1f} µs. "
            f"Peers: {peers}",
            report.verdict(ours.overhead_us, ours.overhead_spread_us, at_most=goal_us)))


def sse_stream_lengths(settings: Settings, mcp_parsing: str, out: Collected) -> None:
    lengths = ", ".join(str(n) for n in LENGTHS)
    _progress(f"in-process: SSE streams of {lengths} events, 5 variants")
    results = asyncio.run(run_sse_lengths(settings.sse, mcp_parsing=mcp_parsing))
    out.checked(results.verified)
    short, middle, long = LENGTHS
    out.sections.append(
        f"## In-process: SSE cost per stream and per event\n\n`GET /events` streaming "
        f"{lengths} events; {results.rounds} rounds, each batch streams of one length adding "
        f"up to {results.events_per_batch:,} events; variants and lengths in a new random "
        f"order every round; {_clock_words(settings.sse.clock)}. Per event: the slope from "
        f"{short} to {long} events, per round; its overhead is the slope minus bare's. "
        f"Independence of the stream's length: the overhead per event over events "
        f"{middle}-{long} of a long stream against events {short}-{middle}, paired by "
        "round, with the approximate 95 % interval of the median difference (median ± "
        "1.58 x IQR / sqrt(rounds)).\n\n" + report.sse_lengths_table(results))
    ours = next(row for row in results.rows if row.variant == OURS)
    low, high = ours.growth_interval_us
    out.targets.append(report.Target(
        "SSE route: per-event cost independent of stream length",
        f"overhead per event over events {middle}-{long} no higher than over {short}-{middle}, "
        "beyond the rounds' spread",
        f"{ours.early_overhead_us:.2f} µs then {ours.late_overhead_us:.2f} µs per event: "
        f"{ours.growth_us:+.2f} µs (95 % interval {low:+.2f} - {high:+.2f}); "
        f"{ours.overhead_per_event_us:.2f} µs per event over {short}-{long}",
        independence(ours)))


def in_process_mcp(settings: Settings, mcp_parsing: str, out: Collected) -> None:
    _progress("in-process: MCP tools/call, on the SDK app and replayed")
    results = asyncio.run(run_mcp(settings.mcp, settings.mcp_replay, mcp_parsing=mcp_parsing))
    out.checked(results.verified)
    plan, replay = settings.mcp, settings.mcp_replay
    text = [f"## In-process: MCP `tools/call`\n\n`MCPServer` (mcp SDK), one trivial tool, "
            "`streamable_http_app(json_response=True, stateless_http=True)`, every client "
            f"starting with one `tools/list`; {_clock_words(plan.clock)}.",
            f"On the real SDK app: {plan.rounds} rounds x {plan.per_round} calls per variant "
            f"and protocol era, after {plan.warmup} warm-up calls. The SDK's own time varies "
            "by hundreds of microseconds from call to call, so these rows show the total "
            "picture but cannot resolve a cost of a few microseconds.",
            "Replayed: the same exchanges captured from the SDK once and answered byte for "
            f"byte by a stub app; {replay.rounds} rounds x {replay.per_round} calls. The "
            "overhead column here is the middleware's own cost on exactly the SDK's traffic."]
    for era in (HANDSHAKE_ERA, MODERN_ERA):
        text.append(f"### {mcp_workload(era)}\n\n"
                    f"{report.timing_table(results.tables[mcp_workload(era)])}")
        text.append(f"### {replay_workload(era)}\n\n" + report.timing_table(
            results.tables[replay_workload(era)], {MCP_BARE: "replaying stub, bare"}))
        if mcp_parsing == "off":
            continue
        _mcp_targets(era, results, mcp_parsing, out)
    out.sections.append("\n\n".join(text))


def _mcp_targets(era: str, results: Results, mcp_parsing: str, out: Collected) -> None:
    """The tools/call overhead and the parsing share, from the replayed exchanges."""
    sdk = {row.variant: row for row in results.tables[mcp_workload(era)]}[MCP_BARE].median_us
    replayed = {row.variant: row for row in results.tables[replay_workload(era)]}
    ours = replayed[parsed_variant_name(mcp_parsing)]
    low, high = ours.overhead_spread_us
    peers = sorted((replayed[peer] for peer in MCP_PEERS), key=lambda row: row.overhead_us)
    fastest = peers[0]
    out.targets.append(report.Target(
        f"`POST /mcp` tools/call, protocol {era}: overhead in-process, parsing "
        f"`{mcp_parsing}`, SDK answers replayed", "<= 25 µs per call",
        f"{ours.overhead_us:.1f} µs; middle half of rounds {low:.1f} - {high:.1f} µs; "
        f"{ours.overhead_us / fastest.overhead_us:.2f}x the fastest peer's "
        f"{fastest.overhead_us:.1f} µs ({fastest.variant}). Peers: " + ", ".join(
            f"{row.overhead_us:.1f} µs ({row.variant})" for row in peers),
        report.verdict(ours.overhead_us, ours.overhead_spread_us, at_most=25)))
    against_http = {row.variant: row
                    for row in results.tables[parsing_workload(era)]}[ours.variant]
    parsing = against_http.overhead_us
    spread = (100 * against_http.overhead_spread_us[0] / sdk,
              100 * against_http.overhead_spread_us[1] / sdk)
    out.targets.append(report.Target(
        f"MCP parsing cost, protocol {era}", "<= 3 % of the SDK's own per-call time",
        f"{parsing:.1f} µs on a {sdk:,.0f} µs call = {100 * parsing / sdk:.1f} % "
        f"(all of asgi_mcp_metrics: {ours.overhead_us:.1f} µs = "
        f"{100 * ours.overhead_us / sdk:.1f} %)",
        report.verdict(100 * parsing / sdk, spread, at_most=3)))


def render(settings: Settings, mcp_parsing: str, out: Collected) -> None:
    _progress("/metrics render time")
    results: RenderResults = asyncio.run(run_render(
        target_series=settings.render_series, repeats=settings.render_repeats,
        mcp_parsing=mcp_parsing, clock=settings.clock))
    out.sections.append(
        "## `/metrics` render time\n\nIn-process through `MetricsEndpoint` (default settings: "
        f"an encoding that took more than {_offload_ms():g} ms of CPU moves the next ones to its "
        "render thread, and a body over 64 KiB is compressed there), median of "
        f"{settings.render_repeats} scrapes per format of a registry that does not change "
        "between them (the encoder keeps the text of unchanged children; the encoder table "
        f"below has the case where every series changed); {_clock_words(settings.clock)}.\n\n"
        + report.render_table(results))
    for encoder in results.encoders:
        out.targets.append(report.Target(
            f"exposition encoder, {encoder.format}", ">= 3x faster than prometheus_client, "
            "same bytes", f"{encoder.speedup:.1f}x ({encoder.ours_ms:.1f} ms against "
            f"{encoder.reference_ms:.1f} ms); middle half {encoder.spread[0]:.1f} - "
            f"{encoder.spread[1]:.1f}x", report.verdict(encoder.speedup, encoder.spread,
                                                        at_least=3)))


def _offload_ms() -> float:
    """The endpoint's default ``render_offload_seconds``, in milliseconds."""
    from asgi_mcp_metrics.config import Settings as EndpointSettings

    return EndpointSettings().render_offload_seconds * 1000


def scrape_while_serving(settings: Settings, out: Collected) -> None:
    _progress("uvicorn: a plain route's latency with and without a scrape a second")
    rounds, seconds = (2, 3.0) if settings.render_repeats < 10 else (20, 4.0)
    results = run_scrape_load(rounds=rounds, seconds=seconds, connections=4,
                              stack=settings.stack)
    arms = (("quiet", "no scrape", None, ""),
            ("scraped", "a scrape a second", "quiet", "registry unchanged between scrapes"),
            ("churn_only", "every series changed each second, no scrape", None, ""),
            ("churned", "every series changed each second, a scrape a second", "churn_only",
             "every series changed between scrapes (against the same changes unscraped)"))
    out.sections.append(
        "## A plain route while `/metrics` is scraped\n\n"
        f"One uvicorn process; `GET /items/42` on 4 connections, {rounds} rounds of "
        f"{seconds:.0f} s per arm, the arms in a shuffled order within each round; a scrape a "
        f"second asks for gzip-compressed OpenMetrics of a {results.series:,}-line registry in "
        f"the same process ({results.scrapes} scrapes in all). In two arms every series of "
        "that registry changes during each second (a few children every 10 ms, in the event "
        "loop, as traffic would change them: the worst case for a render that keeps the text "
        "of unchanged children); the churned scrapes are compared with the churn alone. "
        "Medians over rounds. A round's p99 moves by about a fifth between rounds of the same "
        "arm here, so the targets compare each scraped round's p99 with its own round's "
        "baseline: the median of those ratios, with its approximate 95 % interval.\n\n"
        "| | p50 (ms) | p99 (ms) |\n|---|---:|---:|\n"
        + "\n".join(f"| {title} | {results.p50_ms(arm):.2f} | {results.p99_ms(arm):.2f} |"
                    for arm, title, _, _ in arms))
    for arm, _, baseline, case in arms:
        if baseline is None:
            continue
        rise, (low, high) = results.rise(arm, baseline)
        out.targets.append(report.Target(
            f"plain route's p99 while scraped once a second, {case}", "rises by <= 20 %",
            f"{results.p99_ms(baseline):.2f} ms without, {results.p99_ms(arm):.2f} ms with "
            f"(medians); paired rounds: {100 * rise:+.0f} % (95 % interval {100 * low:+.0f} - "
            f"{100 * high:+.0f} %)", report.verdict(rise, (low, high), at_most=0.2)))


def _prepare_mcp(servers: Sequence[Server], era: str, *, every_request: bool = False) -> None:
    """List the tools (as a client does first) and check one call's answer on each server.

    ``every_request``: every variant counts HTTP requests (the mixed app), not tool calls.
    """
    for server in servers:
        status, body = post(server.port, _load_of(tools_list(era)))
        if status != 200 or f'"{TOOL}"'.encode() not in body:
            raise RuntimeError(f"{server.variant}: tools/list answered {status} {body!r}")
        status, body = post(server.port, _load_of(tool_call(era)))
        answer = json.loads(body)
        if status != 200 or answer["result"]["structuredContent"] != {"result": 3}:
            raise RuntimeError(f"{server.variant}: tools/call answered {status} {body!r}")
        # What each server's own count includes besides the load runs.
        counted = every_request or counts_every_request(server.variant)
        server.extra_requests += 2 if counted else 1


def _prepare_plain(servers: Sequence[Server]) -> None:
    """Check the JSON and the SSE route's answers on each server (both count as requests)."""
    for server in servers:
        status, body = post(server.port, _load_of(JSON_REQUEST))
        if status != 200 or json.loads(body).get("id") != 42:
            raise RuntimeError(f"{server.variant}: {JSON_REQUEST.path} answered {status}")
        status, body = post(server.port, _load_of(SSE_REQUEST))
        if status != 200 or body.count(b"event: tick") != SSE_EVENTS:
            raise RuntimeError(f"{server.variant}: {SSE_REQUEST.path} answered {body!r}")
        server.extra_requests += 2


def under_uvicorn(settings: Settings, mcp_parsing: str, out: Collected) -> None:
    plan = settings.server
    _progress(f"uvicorn: JSON route, 5 servers, {plan.rounds} rounds x {plan.seconds} s")
    with running_servers("plain", VARIANTS, mcp_parsing, settings.stack) as servers:
        interleave_load(servers, _load_of(JSON_REQUEST), plan)
        out.checked(verify_load(servers, plan.connections))
        rows = summarize_load(servers, BARE)
    out.sections.append(
        f"## Under uvicorn: JSON route (`GET {JSON_REQUEST.path}`)\n\nOne uvicorn process per "
        f"variant, {load_generator()} with {plan.connections} keep-alive connections from a "
        f"separate process; {plan.rounds} rounds x {plan.seconds:g} s per variant after a "
        f"{plan.warmup_seconds:g} s warm-up, variants in a new random order every round. The "
        "ratio is the median of per-round ratios to bare.\n\n" + report.throughput_table(rows))

    plan = settings.mcp_server
    era = MODERN_ERA if mcp_parsing == "headers_only" else HANDSHAKE_ERA
    names = mcp_variant_names(mcp_parsing)
    _progress(f"uvicorn: MCP tools/call, {len(names)} servers")
    with running_servers("mcp", names, mcp_parsing, settings.stack) as servers:
        _prepare_mcp(servers, era)
        interleave_load(servers, _load_of(tool_call(era)), plan)
        out.checked(verify_load(servers, plan.connections))
        rows = summarize_load(servers, MCP_BARE)
    out.sections.append(
        f"## Under uvicorn: MCP `tools/call` (protocol {era})\n\nThe SDK app as above, one "
        f"uvicorn process per variant, {plan.connections} connections POSTing `tools/call`; "
        f"{plan.rounds} rounds x {plan.seconds:g} s.\n\n" + report.throughput_table(rows))


def _throughput_target(name: str, goal: float, row: Throughput) -> report.Target:
    low, high = row.ratio_spread
    cpu = "" if row.cpu_ratio is None else f"; CPU-based ratio {row.cpu_ratio:.3f}"
    return report.Target(name, f">= {goal} of bare requests/s",
                         f"{row.ratio:.3f} (middle half of rounds {low:.3f} - {high:.3f}){cpu}",
                         report.verdict(row.ratio, row.ratio_spread, at_least=goal))


def mixed_workload(settings: Settings, mcp_parsing: str, out: Collected) -> None:
    plan = settings.mixed_server
    stack = report.uvicorn_stack(settings.stack.http, settings.stack.loop)
    _progress(f"uvicorn: mixed items / mcp / stream, 5 servers, {plan.rounds} rounds x "
              f"{plan.seconds} s")
    mix = [_load_of(JSON_REQUEST), _load_of(tool_call(HANDSHAKE_ERA)), _load_of(SSE_REQUEST)]
    with running_servers("mixed", VARIANTS, mcp_parsing, settings.stack) as servers:
        _prepare_plain(servers)
        _prepare_mcp(servers, HANDSHAKE_ERA, every_request=True)
        interleave_load(servers, mix, plan)
        out.checked(verify_load(servers, plan.connections))
        rows = summarize_load(servers, BARE)
    out.sections.append(
        "## Under uvicorn: mixed workload (items / mcp / stream)\n\nThe 51-route app with the "
        f"SDK's `/mcp` route added (its stateless JSON configuration, as above); one uvicorn "
        f"process per variant ({stack}), {load_generator()} with {plan.connections} "
        "keep-alive connections from a separate process, each sending in turn "
        f"`GET {JSON_REQUEST.path}`, `POST /mcp` (`tools/call`, protocol {HANDSHAKE_ERA}) and "
        f"`GET {SSE_REQUEST.path}` ({SSE_EVENTS} events); {plan.rounds} rounds x "
        f"{plan.seconds:g} s per variant after a {plan.warmup_seconds:g} s warm-up, variants "
        "in a new random order every round. Requests/s counts all three kinds; the ratio is "
        "the median of per-round ratios to bare.\n\n" + report.throughput_table(rows))
    ours = next(row for row in rows if row.variant == OURS)
    out.targets.append(_throughput_target(
        f"uvicorn, mixed workload (items / mcp / stream), {stack}", 0.93, ours))


def session_memory(settings: Settings, mcp_parsing: str, out: Collected) -> None:
    sessions, rounds = settings.memory_sessions, settings.memory_rounds
    _progress(f"memory: {sessions:,} open MCP sessions with their GET streams")
    served = run_server_memory(sessions, rounds, mcp_parsing, settings.stack)
    opened = 2 * (WARMUP_SESSIONS + sessions)
    out.checked([ServerVerified(f"{run.variant} (sessions + GET streams open)", opened,
                                run.recorded, run.internal_errors)
                 for run in served.runs if run.recorded is not None])
    traced = asyncio.run(run_traced_memory(sessions, mcp_parsing))
    out.checked([InProcessVerified(f"{served.instrumented} (tracemalloc; sessions + GET "
                                   "streams open)", opened, traced.recorded,
                                   traced.internal_errors)])
    stack = report.uvicorn_stack(settings.stack.http, settings.stack.loop)
    out.sections.append(
        "## Memory per open MCP session with its GET stream\n\nThe SDK app in its default, "
        "stateful mode (JSON answers to POSTs), bare and wrapped by `MetricsMiddleware`, one "
        f"uvicorn process each ({stack}), measured one after the other. A client opens "
        f"{WARMUP_SESSIONS} sessions (`initialize`, `notifications/initialized`, then the "
        "session's GET stream, held open), the server's RSS is read, then "
        f"{sessions:,} more sessions are opened the same way and RSS is read again; "
        f"{rounds} round(s), each with fresh servers.\n\n" + report.server_memory_table(served)
        + f"\n\nIn-process, `tracemalloc`: the same sessions driven through ASGI, snapshots "
        f"before and after {sessions:,} sessions (after the same warm-up), only allocations "
        "made in files under `asgi_mcp_metrics/` that are still held: "
        f"**{traced.bytes_per_session:,.0f} bytes** ({traced.blocks_per_session:.1f} blocks) "
        "per session. Where they are held:\n\n" + report.allocation_sites_table(traced))
    share = served.library_share()
    low, high = middle_half(share)
    kib = 1024
    out.targets.append(report.Target(
        "memory per open MCP session with its GET stream: the library's own, in-process "
        "(`tracemalloc`)", "<= 2.5 KiB",
        f"{traced.bytes_per_session / kib:.2f} KiB ({traced.bytes_per_session:,.0f} bytes) "
        f"per session, {sessions:,} sessions",
        traced.bytes_per_session <= 2.5 * kib))
    out.targets.append(report.Target(
        "memory per open MCP session with its GET stream: RSS under uvicorn, instrumented "
        "minus bare", "<= 2.5 KiB",
        f"{statistics.median(share) / kib:.2f} KiB per session ({sessions:,} sessions; bare "
        f"{statistics.median(served.per_session(served.bare)) / kib:.1f} KiB per session); "
        f"middle half of rounds {low / kib:.2f} - {high / kib:.2f} KiB",
        report.verdict(statistics.median(share), (low, high), at_most=2.5 * kib)))


def _write(path: Path, text: str, block: str) -> None:
    """Replace the ``block`` between its markers in ``path``, or write ``text`` as the file."""
    start, end = _markers(block)
    marked = f"{start}\n{text}\n{end}"
    if path.exists():
        current = path.read_text(encoding="utf-8")
        pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
        if pattern.search(current):
            path.write_text(pattern.sub(lambda _: marked, current), encoding="utf-8")
            return
    path.write_text(text + "\n", encoding="utf-8")


def _markers(block: str) -> tuple[str, str]:
    if block == "main":
        return START_MARKER, END_MARKER
    return f"<!-- benchmark-results:{block}:start -->", f"<!-- benchmark-results:{block}:end -->"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer rounds; a smoke run")
    parser.add_argument("--mcp-parsing", default="full",
                        choices=("full", "request_body", "headers_only", "off"),
                        help="asgi_mcp_metrics' mcp_parsing setting (default: full, the "
                             "library default)")
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu",
                        help="in-process timing clock: the process's CPU time (default; robust "
                             "on a busy machine) or wall time")
    parser.add_argument("--http", default="h11", choices=("auto", "h11", "httptools"),
                        help="uvicorn --http (default: h11; auto: httptools when installed)")
    parser.add_argument("--loop", default="asyncio", choices=("auto", "asyncio", "uvloop"),
                        help="uvicorn --loop (default: asyncio; auto: uvloop when installed)")
    parser.add_argument("--only", action="append", choices=PARTS,
                        help="run only this part (repeatable)")
    parser.add_argument("--output", type=Path, help="write the Markdown into this file")
    parser.add_argument("--output-block", default="main", metavar="NAME",
                        help="with --output: the marked block to replace, "
                             "<!-- benchmark-results:NAME:start/end --> (default: the unnamed "
                             "<!-- benchmark-results:start/end --> block)")
    parser.add_argument("--heading-offset", type=int, default=0, metavar="N",
                        help="demote every Markdown heading by N levels (to nest the output)")
    parser.add_argument("--allow-internal-errors", action="store_true",
                        help="report timings even when asgi_mcp_metrics counted internal errors")
    arguments = parser.parse_args(argv)
    settings = QUICK if arguments.quick else FULL
    settings = dataclasses.replace(
        settings, clock=arguments.clock, stack=Stack(arguments.http, arguments.loop),
        plain=dataclasses.replace(settings.plain, clock=arguments.clock),
        mcp=dataclasses.replace(settings.mcp, clock=arguments.clock),
        mcp_replay=dataclasses.replace(settings.mcp_replay, clock=arguments.clock),
        sse=dataclasses.replace(settings.sse, clock=arguments.clock))
    parts = arguments.only or list(PARTS)
    command = "python benchmarks/run.py " + shlex.join(sys.argv[1:] if argv is None else argv)

    started = time.monotonic()
    load_before = report.load_average()
    out = Collected(allow_internal_errors=arguments.allow_internal_errors)
    if "inprocess" in parts:
        in_process_plain(settings, arguments.mcp_parsing, out)
    if "sse" in parts:
        sse_stream_lengths(settings, arguments.mcp_parsing, out)
    if "mcp" in parts:
        in_process_mcp(settings, arguments.mcp_parsing, out)
    if "render" in parts:
        render(settings, arguments.mcp_parsing, out)
    if "scrape" in parts:
        scrape_while_serving(settings, out)
    if "server" in parts:
        under_uvicorn(settings, arguments.mcp_parsing, out)
    if "mixed" in parts:
        mixed_workload(settings, arguments.mcp_parsing, out)
    if "memory" in parts:
        session_memory(settings, arguments.mcp_parsing, out)
    minutes = (time.monotonic() - started) / 60

    text = ["## Environment\n\n" + report.environment(
        load_before=load_before, load_after=report.load_average(),
        mcp_parsing=arguments.mcp_parsing, command=command.strip(),
        stack=report.uvicorn_stack(arguments.http, arguments.loop))
        + f"\nThe run took {minutes:.1f} minutes."]
    if out.targets:
        text.append("## Targets\n\n" + report.targets_table(out.targets))
    text += out.sections
    text.append("## Verification\n\nEach instrumented variant's registry, read back after the "
                "run: what it recorded against what was sent (in-process) or completed by the "
                "load generator (uvicorn; requests still in flight when a run stopped may be "
                "recorded too). A mismatch fails the run.\n\n"
                + report.verification_table(out.in_process_checks, out.server_checks))
    markdown = "\n\n".join(text)
    if arguments.heading_offset > 0:
        markdown = re.sub(r"^#", "#" * (arguments.heading_offset + 1), markdown, flags=re.M)
    print(markdown)
    if arguments.output is not None:
        _write(arguments.output, markdown, arguments.output_block)
        _progress(f"wrote {arguments.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

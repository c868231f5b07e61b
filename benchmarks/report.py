"""Markdown for the results: the machine, the versions, one table per measurement, the targets."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import platform
import statistics
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from apps import BARE
from inprocess import Verified as InProcessVerified
from render_bench import RenderResults
from server_load import Throughput
from server_load import Verified as ServerVerified
from session_memory import ServerMemoryResults, TracedMemory
from sse_lengths import LONG, MIDDLE, SHORT
from sse_lengths import Results as SseResults
from timing import Summary

PACKAGES = (
    "asgi-mcp-metrics", "starlette", "uvicorn", "h11", "httptools", "uvloop",
    "prometheus-client", "prometheus-fastapi-instrumentator", "starlette-exporter",
    "opentelemetry-sdk", "opentelemetry-instrumentation-asgi",
    "opentelemetry-exporter-prometheus", "mcp", "fastapi",
)


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _load_generator() -> str:
    try:
        finished = subprocess.run(["wrk", "-v"], capture_output=True, text=True, timeout=10)
    except OSError:
        return "benchmarks/loadgen.py (wrk is not installed)"
    first = (finished.stdout or finished.stderr).splitlines()
    return first[0].split(" Copyright")[0] if first else "unknown"


def uvicorn_stack(http: str, loop: str) -> str:
    """The ``--http``/``--loop`` options and, for ``auto``, what uvicorn will pick."""
    if http == "auto":
        http = "auto (" + ("httptools" if importlib.util.find_spec("httptools") else "h11") + ")"
    if loop == "auto":
        loop = "auto (" + ("uvloop" if importlib.util.find_spec("uvloop") else "asyncio") + ")"
    return f"`--http {http}`, `--loop {loop}`"


def library_revision() -> str:
    """The commit the library was measured at, and whether its files had local changes."""
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root,
                                capture_output=True, text=True, timeout=10).stdout.strip()
        changed = subprocess.run(["git", "status", "--porcelain", "--", "asgi_mcp_metrics"],
                                 cwd=root, capture_output=True, text=True, timeout=10).stdout
    except OSError:
        return "unknown (no git)"
    if not commit:
        return "unknown (not a git checkout)"
    return f"{commit}, with local changes in asgi_mcp_metrics/" if changed.strip() else commit


def load_average() -> str:
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:
        return "unknown"
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f}"


def environment(*, load_before: str, load_after: str, mcp_parsing: str, command: str,
                stack: str) -> str:
    lines = [
        "| | |",
        "|---|---|",
        f"| command | `{command}` |",
        f"| machine | {os.cpu_count()} CPUs ({_cpu_model()}), {platform.system()} "
        f"{platform.release()} |",
        f"| Python | {platform.python_implementation()} {platform.python_version()} |",
        f"| asgi_mcp_metrics revision | {library_revision()} |",
        f"| load average (1/5/15 min) before → after | {load_before} → {load_after} |",
        f"| uvicorn | {stack}, `--workers 1 --no-access-log --log-level warning` |",
        f"| load generator | {_load_generator()} |",
        f"| asgi_mcp_metrics settings | defaults, `mcp_parsing=\"{mcp_parsing}\"` |",
    ]
    versions = ", ".join(f"{name} {_version(name)}" for name in PACKAGES)
    return "\n".join(lines) + f"\n\nPackages: {versions}.\n"


def _us(value: float) -> str:
    return f"{value:,.1f}"


def timing_table(rows: Sequence[Summary], rename: Mapping[str, str] | None = None) -> str:
    lines = ["| variant | µs / request (median) | overhead vs bare (µs) | ratio | "
             "middle half of rounds (µs) |",
             "|---|---:|---:|---:|---:|"]
    for row in rows:
        overhead = "-" if row.overhead_us == 0 and row.ratio == 1 else _us(row.overhead_us)
        name = (rename or {}).get(row.variant, row.variant)
        lines.append(f"| {name} | {_us(row.median_us)} | {overhead} | "
                     f"{row.ratio:.3f} | {_us(row.spread_us[0])} - {_us(row.spread_us[1])} |")
    return "\n".join(lines)


def sse_lengths_table(results: SseResults) -> str:
    lines = [f"| variant | µs / stream, {SHORT} events | µs / stream, {LONG} events | "
             f"overhead / stream, {SHORT} / {LONG} events (µs) | µs / event | "
             f"overhead / event (µs) | overhead / event, events {SHORT}-{MIDDLE} / "
             f"{MIDDLE}-{LONG} (µs) | late - early, 95 % interval (µs) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for row in results.rows:
        bare = row.variant == BARE
        overhead_stream = "-" if bare else (f"{_us(row.overhead_per_stream_us[SHORT])} / "
                                            f"{_us(row.overhead_per_stream_us[LONG])}")
        low, high = row.growth_interval_us
        lines.append(
            f"| {row.variant} | {_us(row.per_stream_us[SHORT])} | "
            f"{_us(row.per_stream_us[LONG])} | {overhead_stream} | {row.per_event_us:.2f} | "
            + ("- | - | - |" if bare else
               f"{row.overhead_per_event_us:.2f} | {row.early_overhead_us:.2f} / "
               f"{row.late_overhead_us:.2f} | {row.growth_us:+.2f} ({low:+.2f} - {high:+.2f}) |"))
    return "\n".join(lines)


def server_memory_table(results: ServerMemoryResults) -> str:
    mib, kib = 1024 * 1024, 1024
    lines = ["| round | variant | RSS before (MiB) | RSS after (MiB) | growth per session (KiB) |",
             "|---:|---|---:|---:|---:|"]
    for run in results.runs:
        lines.append(f"| {run.round + 1} | {run.variant} | {run.rss_before / mib:.1f} | "
                     f"{run.rss_after / mib:.1f} | {run.per_session / kib:.2f} |")
    lines.append("")
    lines.append("| per session, median over rounds | KiB |")
    lines.append("|---|---:|")
    for name in (results.bare, results.instrumented):
        lines.append(f"| {name} | {statistics.median(results.per_session(name)) / kib:.2f} |")
    lines.append(f"| the library's share (instrumented minus bare, paired by round) | "
                 f"{statistics.median(results.library_share()) / kib:.2f} |")
    return "\n".join(lines)


def allocation_sites_table(traced: TracedMemory) -> str:
    lines = ["| where | bytes per session | blocks per session |", "|---|---:|---:|"]
    for site in traced.top:
        lines.append(f"| `{site.where}` | {site.bytes_per_session:,.0f} | "
                     f"{site.blocks_per_session:.1f} |")
    return "\n".join(lines)


def throughput_table(rows: Sequence[Throughput]) -> str:
    lines = ["| variant | requests/s (median) | ratio to bare | middle half of rounds (req/s) | "
             "p50 / p99 latency (ms) | server CPU µs / request | CPU-based ratio |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        cpu = "-" if row.cpu_us is None else f"{row.cpu_us:,.0f}"
        cpu_ratio = "-" if row.cpu_ratio is None else f"{row.cpu_ratio:.3f}"
        lines.append(f"| {row.variant} | {row.per_second:,.0f} | {row.ratio:.3f} | "
                     f"{row.spread[0]:,.0f} - {row.spread[1]:,.0f} | "
                     f"{row.p50_ms:.2f} / {row.p99_ms:.2f} | {cpu} | {cpu_ratio} |")
    return "\n".join(lines)


def render_table(results: RenderResults) -> str:
    lines = [f"{results.routes} routes x 3 statuses (200, 404, 500) through the middleware: "
             f"{results.label_sets:,} label sets, **{results.series:,} series** "
             "(sample lines).", "",
             "| format | median render (ms) | body (bytes) |", "|---|---:|---:|"]
    for row in results.rows:
        lines.append(f"| {row.format} | {row.median_ms:.1f} | {row.body_bytes:,} |")
    lines += ["", "The exposition core's encoder against `prometheus_client`'s on the same "
              "registry, alternating, same bytes checked:", "",
              "| format | asgi_mcp_metrics (ms) | prometheus_client (ms) | speed-up | "
              "middle half |", "|---|---:|---:|---:|---:|"]
    for encoder in results.encoders:
        lines.append(f"| {encoder.format} | {encoder.ours_ms:.1f} | {encoder.reference_ms:.1f} "
                     f"| {encoder.speedup:.1f}x | {encoder.spread[0]:.1f} - "
                     f"{encoder.spread[1]:.1f}x |")
    return "\n".join(lines)


def verification_table(in_process: Sequence[InProcessVerified],
                       servers: Sequence[ServerVerified]) -> str:
    lines = ["| where | variant | sent / completed | recorded | internal errors |",
             "|---|---|---:|---:|---:|"]
    for checked in in_process:
        lines.append(f"| in-process | {checked.variant} | {checked.sent:,} | "
                     f"{checked.recorded:,} | {checked.internal_errors} |")
    for served in servers:
        lines.append(f"| uvicorn | {served.variant} | {served.completed:,} | "
                     f"{served.recorded:,} | {served.internal_errors} |")
    return "\n".join(lines)


@dataclass(frozen=True)
class Target:
    name: str
    goal: str
    measured: str
    met: bool | None
    """None: inconclusive, the middle half of the rounds lies on both sides of the goal."""


def verdict(value: float, spread: tuple[float, float], *, at_most: float | None = None,
            at_least: float | None = None) -> bool | None:
    """Whether ``value`` meets the goal, or None when the rounds' middle half straddles it."""
    low, high = spread
    if at_most is not None:
        if low <= at_most < high:
            return None
        return value <= at_most
    if at_least is not None:
        if low < at_least <= high:
            return None
        return value >= at_least
    raise ValueError("give at_most or at_least")


def targets_table(targets: Sequence[Target]) -> str:
    lines = ["| target | goal | measured | met |", "|---|---|---|---|"]
    for target in targets:
        verdict = ("inconclusive (noise)" if target.met is None
                   else "yes" if target.met else "**no**")
        lines.append(f"| {target.name} | {target.goal} | {target.measured} | {verdict} |")
    return "\n".join(lines)

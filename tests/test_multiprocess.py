"""``asgi_mcp_metrics.multiprocess`` on real metric files, written by real (short-lived)
processes: prometheus_client picks its multiprocess mode at import, so writers run apart."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Gauge

from asgi_mcp_metrics import multiprocess
from asgi_mcp_metrics._binding import get_recorder
from asgi_mcp_metrics.catalog import METRICS, MULTIPROCESS_MODES
from asgi_mcp_metrics.exposition import render

from .docs import doc_block

WRITER = """
from prometheus_client import Counter, Gauge
Counter("jobs", "Jobs.").inc(3)
Gauge("busy", "Busy.", multiprocess_mode="livesum").set(2)
"""


def write_as_another_process(directory: Path) -> int:
    """Run a process that writes a counter (3) and a live gauge (2); returns its pid."""
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)}
    process = subprocess.run([sys.executable, "-c", WRITER], env=env, check=True)
    assert process.returncode == 0
    (pid,) = {int(file.stem.rpartition("_")[2]) for file in directory.glob("*.db")}
    return pid


def scraped(monkeypatch: pytest.MonkeyPatch, directory: Path, **options: Any) -> str:
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(directory))
    return render(CollectorRegistry(), accept="", accept_encoding="", names=(), gzip=False,
                  **options).body.decode()


def test_a_dead_writer_leaves_the_live_gauges_at_scrape(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    write_as_another_process(tmp_path)
    kept = scraped(monkeypatch, tmp_path, reap_dead_workers=False)
    assert "busy 2.0" in kept and "jobs_total 3.0" in kept
    text = scraped(monkeypatch, tmp_path)
    assert "busy" not in text
    assert "jobs_total 3.0" in text


BUILDS = """
from prometheus_client import CollectorRegistry
from asgi_mcp_metrics import LLMMetrics
metrics = LLMMetrics(registry=CollectorRegistry())
metrics.set_build_info("1.0.0", "aaa", variant="")
metrics.set_build_info("1.2.0", "bbb", variant="")
"""


def test_a_replaced_build_reads_zero_in_the_metric_files(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The files keep every child a process wrote: the replaced build must read 0, and no
    warning is printed (prometheus_client warns on a removal it cannot do there)."""
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    process = subprocess.run([sys.executable, "-W", "error", "-c", BUILDS], env=env, check=True,
                             capture_output=True, text=True)
    assert process.stderr == ""
    lines = [line for line in scraped(monkeypatch, tmp_path, reap_dead_workers=False)
             .splitlines() if line.startswith("build_info{")]
    assert sorted(lines) == [
        'build_info{commit="aaa",variant="",version="1.0.0"} 0.0',
        'build_info{commit="bbb",variant="",version="1.2.0"} 1.0',
    ]


def test_reap_dead_workers_keeps_running_processes(tmp_path: Path) -> None:
    pid = write_as_another_process(tmp_path)
    mine = tmp_path / f"gauge_livesum_{os.getpid()}.db"
    mine.write_bytes((tmp_path / f"gauge_livesum_{pid}.db").read_bytes())
    assert multiprocess.reap_dead_workers(str(tmp_path)) == [pid]
    assert sorted(file.name for file in tmp_path.iterdir()) == [
        f"counter_{pid}.db", mine.name]


def test_child_exit_marks_the_worker_dead(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    pid = write_as_another_process(tmp_path)
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))

    class Worker:
        def __init__(self, pid: int) -> None:
            self.pid = pid

    multiprocess.child_exit(None, Worker(pid))
    assert [file.name for file in tmp_path.iterdir()] == [f"counter_{pid}.db"]


def test_clear_directory_removes_metric_files_only(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    write_as_another_process(tmp_path)
    (tmp_path / "notes.db").write_text("not ours")
    (tmp_path / "counter_x.db").write_text("not a pid")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    multiprocess.on_starting(None)
    assert sorted(file.name for file in tmp_path.iterdir()) == ["counter_x.db", "notes.db"]
    assert multiprocess.clear_directory(str(tmp_path)) == 0


def test_outside_multiprocess_mode_the_hooks_do_nothing(tmp_path: Path) -> None:
    assert multiprocess.directory() is None
    multiprocess.on_starting(None)
    multiprocess.child_exit(None, object())
    assert multiprocess.clear_directory() == 0


def test_a_file_being_created_does_not_fail_the_scrape(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    write_as_another_process(tmp_path)
    (tmp_path / "counter_999999999.db").write_bytes(b"")  # opened, not yet sized
    assert "jobs_total 3.0" in scraped(monkeypatch, tmp_path, reap_dead_workers=False)


def test_leftovers_are_counted_relative_to_the_servers_start(tmp_path: Path) -> None:
    """The check runs in a process whose parent (the "server") starts after the files."""
    write_as_another_process(tmp_path)
    then = os.stat(tmp_path).st_mtime - 60
    for file in tmp_path.iterdir():
        os.utime(file, (then, then))
    check = ("import sys; from asgi_mcp_metrics.multiprocess import warn_about_leftovers; "
             f"print(warn_about_leftovers({str(tmp_path)!r}))")
    server = subprocess.run(["sh", "-c", f'"{sys.executable}" -c "{check}"'], check=True,
                            capture_output=True, text=True)
    assert server.stdout.strip() == "2"
    assert "holds 2 metric files of 1 processes that ended before this server" in server.stderr


def test_every_gauge_has_a_documented_multiprocess_mode() -> None:
    recorder = get_recorder(CollectorRegistry())
    for spec in METRICS:
        if spec.kind == "gauge":
            assert spec.multiprocess_mode in MULTIPROCESS_MODES, spec.name
            metric = recorder[spec.name].metric
            assert isinstance(metric, Gauge)
            assert metric._multiprocess_mode == spec.multiprocess_mode
        else:
            assert spec.multiprocess_mode == "", spec.name


def test_the_documented_gunicorn_config_is_the_example_the_tests_run() -> None:
    root = Path(__file__).resolve().parents[1]
    example = root / "examples" / "gunicorn" / "gunicorn.conf.py"
    assert doc_block(root / "docs" / "deployment.md", str(example.relative_to(root))) == \
        example.read_text()

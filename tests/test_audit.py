"""The JSON audit line: fields, time format, trace id sources."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta, timezone

import pytest

from asgi_mcp_metrics.audit import audit_line, write_audit_line


def test_line_fields_and_order() -> None:
    when = datetime(2026, 3, 11, 12, 23, 45, 123456, tzinfo=timezone(timedelta(hours=2)))
    line = audit_line(tool="search", backend="github", identity="client-a", outcome="ok",
                      duration_seconds=0.01234567, now=when, trace_id="abc")
    assert line == ('{"time":"2026-03-11T10:23:45.123456Z","trace_id":"abc","tool":"search",'
                    '"backend":"github","identity":"client-a","outcome":"ok",'
                    '"duration_seconds":0.012346}')


def test_missing_values_are_json_null() -> None:
    record = json.loads(audit_line(tool="t", backend="", identity=None, outcome="error",
                                   duration_seconds=1.0))
    assert record["identity"] is None
    assert record["trace_id"] is None
    assert datetime.fromisoformat(record["time"].replace("Z", "+00:00")).tzinfo is not None


def test_written_to_the_named_logger(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="my.audit"):
        write_audit_line("my.audit", tool="t", backend="b", identity="i", outcome="tool_error",
                         duration_seconds=0.5)
    [record] = caplog.records
    assert record.name == "my.audit"
    assert record.levelno == logging.INFO
    assert json.loads(record.getMessage())["outcome"] == "tool_error"


def test_not_formatted_when_the_logger_is_off(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="my.audit"):
        write_audit_line("my.audit", tool="t", backend="b", identity="i", outcome="ok",
                         duration_seconds=0.5)
    assert caplog.records == []


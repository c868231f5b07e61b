"""Run ``promtool check metrics`` on an exposition; tests import ``check_metrics`` from here.

promtool (Debian package ``prometheus``) reads the Prometheus text format only: OpenMetrics
output has to be checked with prometheus_client's OpenMetrics parser instead.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

PROMTOOL_TIMEOUT_SECONDS = 30


def running_in_ci() -> bool:
    return os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


def required_binary(name: str, install: str) -> str:
    """``name``'s path; a test without it fails in CI and skips elsewhere."""
    path = shutil.which(name)
    if path is None:
        if running_in_ci():
            pytest.fail(f"{name} not installed ({install}); required in CI")
        pytest.skip(f"{name} not installed")
    return path


def promtool_binary() -> str:
    return required_binary("promtool", "apt-get install -y prometheus")


def prometheus_binary() -> str:
    return required_binary("prometheus", "apt-get install -y prometheus")


def check_metrics(text: bytes | str) -> None:
    """Fail the test unless promtool parses ``text`` and finds nothing to lint.

    promtool exits non-zero for lint findings too (a counter without ``_total``, a histogram
    without a unit suffix, ...); those are failures, because our names are meant to be clean.
    """
    promtool = promtool_binary()
    data = text.encode("utf-8") if isinstance(text, str) else text
    completed = subprocess.run(
        [promtool, "check", "metrics"],
        input=data,
        capture_output=True,
        timeout=PROMTOOL_TIMEOUT_SECONDS,
        check=False,
    )
    if completed.returncode != 0:
        output = (completed.stdout + completed.stderr).decode("utf-8", "replace")
        raise AssertionError(f"promtool check metrics exited {completed.returncode}:\n{output}")

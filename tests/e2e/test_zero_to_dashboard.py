"""docs/zero-to-dashboard.md, run as written: its files and commands, in order.

The one substitution: the page's `.venv` is the venv running this test (which has the package
installed from this checkout: `pip install "asgi-mcp-metrics[starlette]" mcp uvicorn` would
fetch the published release), and its ports 8000 and 9090 become free ports.  The Grafana
import (no Grafana here) is checked by validating the JSON it posts against Grafana's dashboard
schema.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import jsonschema
import pytest

from asgi_mcp_metrics.kit import rules

from ..promtool import prometheus_binary
from .servers import free_port

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "zero-to-dashboard.md"
INSTALL = ('python3 -m venv .venv',
           '.venv/bin/pip install "asgi-mcp-metrics[starlette]" mcp uvicorn')
GRAFANA_POST = "http://admin:admin@localhost:3000/api/dashboards/db"


def blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.S)


def commands(block: str) -> list[str]:
    """Shell commands of a block, continuation lines joined."""
    return [line.strip() for line in block.replace("\\\n", " ").splitlines() if line.strip()]


def wait_ready(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} never answered")


def test_zero_to_dashboard_as_written(tmp_path: Path) -> None:
    prometheus_binary()
    text = DOC.read_text()
    app_port, prom_port = free_port(), free_port()

    def local(command: str) -> str:
        return command.replace("localhost:8000", f"localhost:{app_port}").replace(
            "localhost:9090", f"localhost:{prom_port}").replace("--port 8000",
                                                                f"--port {app_port}")

    # 1. Install: the extras exist; the venv is this one.
    install, *shell_blocks = blocks(text, "bash")
    assert tuple(commands(install)) == INSTALL
    assert re.search(r"^starlette = \[", (ROOT / "pyproject.toml").read_text(), flags=re.M)
    (tmp_path / ".venv").symlink_to(Path(sys.prefix), target_is_directory=True)
    assert (tmp_path / ".venv" / "bin" / "uvicorn").exists()
    # 2.-3. The files.
    (app,) = blocks(text, "python")
    (tmp_path / "app.py").write_text(app)
    (config,) = blocks(text, "yaml")
    (tmp_path / "prometheus.yml").write_text(local(config))

    background: list[subprocess.Popen[bytes]] = []
    outputs: dict[str, str] = {}
    env = {**os.environ, "PATH": f"{tmp_path / '.venv' / 'bin'}:{os.environ['PATH']}"}
    try:
        for block in shell_blocks:
            for command in commands(block):
                if GRAFANA_POST in command:
                    # The payload the page posts to Grafana is a valid dashboard.
                    payload = subprocess.run(
                        ["bash", "-c", command.split(" -d ", 1)[1].split(" http://")[0]
                         .join(["printf '%s' ", ""])], cwd=tmp_path, capture_output=True,
                        text=True, check=True).stdout
                    schema = json.loads(
                        (ROOT / "tests/data/schemas/grafana-dashboard.jsonschema.json")
                        .read_text())
                    jsonschema.validate(json.loads(payload)["dashboard"], schema)
                    outputs[command] = payload
                    continue
                command = local(command)
                if command.endswith("&"):
                    background.append(subprocess.Popen(
                        ["bash", "-c", f"exec {command[:-1].strip()}"], cwd=tmp_path, env=env,
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                        start_new_session=True))
                    if "uvicorn" in command:
                        wait_ready(f"http://localhost:{app_port}/metrics")
                    else:
                        wait_ready(f"http://localhost:{prom_port}/-/ready")
                    continue
                completed = subprocess.run(["bash", "-c", f"set -o pipefail; {command}"],
                                           cwd=tmp_path, env=env, capture_output=True,
                                           text=True, timeout=60, check=False)
                assert completed.returncode == 0, (command, completed.stdout, completed.stderr)
                outputs[command] = completed.stdout
    finally:
        for process in background:
            os.killpg(process.pid, signal.SIGTERM)
        for process in background:
            process.wait(20)

    assert "asgi_mcp_metrics_info{" in outputs[local(
        "curl -s localhost:8000/metrics | grep asgi_mcp_metrics_info")]
    generated = (tmp_path / "mcp-rules.yml").read_text()
    assert 'up{job="my-mcp-server"}' in generated
    listed = outputs[local("curl -s localhost:9090/api/v1/rules | grep -o "
                           "'\"name\":\"MCP[A-Za-z]*\"' | sort -u")]
    assert sorted(re.findall(r'"name":"(MCP\w+)"', listed)) == sorted(
        alert.name for alert in rules.alerts(rules.RuleOptions()))
    assert shutil.which("promtool")

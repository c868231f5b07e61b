"""Deep health: 200 while enough backends are up, 503 otherwise, details behind the auth."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.testclient import TestClient

from asgi_mcp_metrics import BackendMonitor
from asgi_mcp_metrics.config import Settings
from asgi_mcp_metrics.starlette import instrument


def test_health_flips_as_backends_go_down_and_come_back(registry: CollectorRegistry) -> None:
    settings = Settings(surfaces_health=True, health_min_backends=2,
                        auth_bearer_token="tok")
    app = instrument(Starlette(), registry=registry, settings=settings)
    git = BackendMonitor("git", transport="stdio", registry=registry, settings=settings)
    jira = BackendMonitor("jira", transport="http", registry=registry, settings=settings)
    auth = {"authorization": "Bearer tok"}
    with TestClient(app) as client:
        down = client.get("/health")
        assert down.status_code == 503
        assert down.headers["cache-control"] == "no-cache"
        assert down.json() == {"status": "unavailable", "healthy_backends": 0, "required": 2}
        git.connected("startup")
        assert client.get("/health").status_code == 503
        jira.connected("startup")
        up = client.get("/health")
        assert up.status_code == 200
        assert up.json() == {"status": "ok", "healthy_backends": 2, "required": 2}
        with pytest.raises(ConnectionError), jira.connect("lazy"):
            raise ConnectionError("refused")
        jira.disconnected("idle")
        assert client.get("/health").json()["healthy_backends"] == 1
        assert client.get("/health").status_code == 503
        # Details only for an authorised caller.
        assert client.get("/health?details").status_code == 401
        detailed = client.get("/health?details", headers=auth).json()
        assert detailed["backends"]["jira"]["up"] is False
        assert detailed["backends"]["jira"]["last_error"] == "ConnectionError"
        assert detailed["backends"]["git"]["up"] is True
        assert detailed["backends"]["git"]["transport"] == "stdio"
        assert detailed["backends"]["git"]["last_call_latency_seconds"] is None
        git.observe_call("tools/call", None, "", 0.25)
        detailed = client.get("/health?details", headers=auth).json()
        assert detailed["backends"]["git"]["last_call_latency_seconds"] == 0.25
        jira.connected("lazy")
        assert client.get("/health").status_code == 200


def test_health_is_opt_in_and_its_path_configurable(registry: CollectorRegistry) -> None:
    with TestClient(instrument(Starlette(), registry=registry)) as client:
        assert client.get("/health").status_code == 404
    other = CollectorRegistry()
    app = instrument(Starlette(), registry=other, surfaces_health=True,
                     health_path="/-/deep", health_min_backends=0)
    with TestClient(app) as client:
        assert client.get("/-/deep").json() == {
            "status": "ok", "healthy_backends": 0, "required": 0}

"""Identity resolution from the ASGI scope, and the per-request ContextVar."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from prometheus_client import CollectorRegistry
from starlette.authentication import SimpleUser, UnauthenticatedUser

from asgi_mcp_metrics._binding import get_recorder
from asgi_mcp_metrics.config import Settings
from asgi_mcp_metrics.identity import (
    MAX_IDENTITY_LENGTH,
    current_identity,
    identity_from_user,
    identity_label,
    reset_identity,
    resolve_identity,
    set_identity,
    use_identity,
)
from tests.asgi import http_scope, value

pytestmark = pytest.mark.anyio

def scope_with(headers: tuple[tuple[bytes, bytes], ...] | list[tuple[bytes, bytes]] = (),
               user: Any = None) -> dict[str, Any]:
    scope = http_scope("/mcp", "POST", headers=headers)
    if user is not None:
        scope["user"] = user
    return scope


def test_off_resolves_nothing() -> None:
    scope = scope_with([(b"x-client-id", b"a")], user=SimpleUser("bob"))
    assert resolve_identity(scope, Settings()) is None


def test_header_is_case_insensitive_and_stripped() -> None:
    settings = Settings(identity="header:X-Client-Id")
    assert resolve_identity(scope_with([(b"x-client-id", b"  agent-7 ")]), settings) == "agent-7"
    assert resolve_identity(scope_with([(b"X-CLIENT-ID", b"agent-8")]), settings) == "agent-8"
    assert resolve_identity(scope_with([(b"x-client-id", b"   ")]), settings) is None
    assert resolve_identity(scope_with([(b"x-other", b"a")]), settings) is None


def test_header_value_is_cut_to_a_bounded_length() -> None:
    settings = Settings(identity="header:X-Client-Id")
    long_value = b"a" * 1000
    resolved = resolve_identity(scope_with([(b"x-client-id", long_value)]), settings)
    assert resolved == "a" * MAX_IDENTITY_LENGTH


def test_user_from_the_mcp_sdk_access_token() -> None:
    token = AccessToken(token="secret", client_id="claude-desktop", scopes=["read"],
                        subject="user-42")
    user = AuthenticatedUser(token)
    settings = Settings(identity="user")
    assert resolve_identity(scope_with(user=user), settings) == "claude-desktop"


def test_user_objects_of_other_shapes() -> None:
    class Account:
        is_authenticated = True
        identity = "svc-billing"

    class Named:
        username = "carol"

    assert identity_from_user(SimpleUser("dave")) == "dave"
    assert identity_from_user(Account()) == "svc-billing"
    assert identity_from_user(Named()) == "carol"
    assert identity_from_user(UnauthenticatedUser()) is None
    assert identity_from_user(object()) is None
    assert identity_from_user("plain") == "plain"
    assert resolve_identity(scope_with(), Settings(identity="user")) is None


def test_resolver_wins_over_the_option() -> None:
    settings = Settings(identity="header:X-Client-Id",
                        identity_resolver=lambda scope: f"tenant-{scope['path'].strip('/')}")
    assert resolve_identity(scope_with([(b"x-client-id", b"a")]), settings) == "tenant-mcp"


def test_resolver_returning_a_non_string_means_no_identity() -> None:
    settings = Settings(identity_resolver=lambda scope: 42)  # type: ignore[arg-type,return-value]
    assert resolve_identity(scope_with(), settings) is None


def test_raising_resolver_is_counted_and_ignored(registry: CollectorRegistry) -> None:
    def resolver(scope: Any) -> str:
        raise RuntimeError("directory down")

    settings = Settings(identity_resolver=resolver)
    recorder = get_recorder(registry, settings)
    assert resolve_identity(scope_with(), settings, recorder=recorder) is None
    assert value(registry, "asgi_mcp_metrics_callback_errors_total",
                 callback="identity_resolver") == 1
    # Without a recorder it is logged only, and still does not raise.
    assert resolve_identity(scope_with(), settings) is None


def test_use_identity_nests_and_restores() -> None:
    assert current_identity() is None
    with use_identity("outer"):
        assert current_identity() == "outer"
        with use_identity("inner"):
            assert current_identity() == "inner"
        with use_identity(""):
            assert current_identity() is None
        assert current_identity() == "outer"
    assert current_identity() is None


def test_token_api() -> None:
    token = set_identity("t")
    try:
        assert current_identity() == "t"
    finally:
        reset_identity(token)
    assert current_identity() is None


async def test_identity_is_per_task() -> None:
    seen: dict[str, str | None] = {}

    async def request(name: str) -> None:
        with use_identity(name):
            await asyncio.sleep(0)
            seen[name] = current_identity()

    await asyncio.gather(request("a"), request("b"))
    assert seen == {"a": "a", "b": "b"}


def test_identity_label_applies_allowlist_and_cap(registry: CollectorRegistry) -> None:
    recorder = get_recorder(registry, Settings(max_identities=1))
    assert identity_label(recorder, "m") == ""
    assert identity_label(recorder, "m", "first") == "first"
    assert identity_label(recorder, "m", "second") == "_OTHER"
    with use_identity("first"):
        assert identity_label(recorder, "m") == "first"
    assert value(registry, "asgi_mcp_metrics_label_overflow_total", metric="m",
                 label="identity") == 1

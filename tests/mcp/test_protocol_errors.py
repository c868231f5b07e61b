"""The MCP wire tracker's protocol errors: rejections by reason.

Driven in-process with hand-made ASGI messages through ``MetricsMiddleware``; every test
asserts exact metric values.
"""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from asgi_mcp_metrics.mcp.wire.vocabulary import is_modern, rejection_reason
from tests.asgi import total, value
from tests.mcp.wire_server import (
    PARSE_LIMITS,
    PROTOCOL_ERRORS,
    FakeServer,
    Reply,
    dumps,
    failure,
    instrument,
    json_reply,
    post,
    request,
    requests_of,
)

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(("status", "body", "headers", "reason"), [
    (400, failure(None, -32600, "Bad Request: Missing session ID"), [], "missing_session_id"),
    (400, failure(None, -32600, "Unsupported protocol version"),
     [(b"mcp-protocol-version", b"1999-01-01")], "unsupported_protocol_version"),
    (406, None, [], "not_acceptable"),
    (415, None, [], "unsupported_media_type"),
    (421, None, [], "misdirected_request"),
    (403, None, [], "forbidden"),
    (401, {"detail": "Unauthorized"}, [], "unauthorized"),
    (429, None, [], "rate_limited"),
    (409, None, [], "conflict"),
    (418, None, [], "http_418"),
])
async def test_protocol_error_reasons(registry: CollectorRegistry, status: int,
                                      body: dict[str, Any] | None,
                                      headers: list[tuple[bytes, bytes]], reason: str) -> None:
    reply = json_reply(body, status) if body is not None else Reply(status, [], [b""])
    mw = instrument(registry, FakeServer(lambda b, scope: reply))
    await post(mw, dumps(request("tools/list", 1)), version=None, extra=headers)
    assert value(registry, PROTOCOL_ERRORS, reason=reason) == 1
    assert total(registry, PROTOCOL_ERRORS) == 1
    assert requests_of(registry, "tools/list", "rejected") == 1
    assert total(registry, PARSE_LIMITS) == 0


def test_rejection_reason_vocabulary() -> None:
    assert rejection_reason(400, -32700) == "parse_error"
    assert rejection_reason(400, None, unparsable=True) == "parse_error"
    assert rejection_reason(400, -32602) == "invalid_params"
    assert rejection_reason(400, -32600) == "invalid_request"
    assert rejection_reason(400, None) == "bad_request"
    assert rejection_reason(400, -32602, batch=True) == "batch_rejected"
    assert rejection_reason(422, -32021) == "missing_client_capability"
    assert rejection_reason(422, None) == "http_422"
    assert rejection_reason(999, None) == "_OTHER"
    assert is_modern("2026-07-28") and is_modern("2099-01-01")
    assert not is_modern("2025-11-25") and not is_modern(None) and not is_modern("")

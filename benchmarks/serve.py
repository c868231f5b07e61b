"""The app factory uvicorn imports in each benchmark server process.

``uvicorn serve:app_from_environment --factory --app-dir benchmarks`` builds the variant named
by ``BENCH_VARIANT`` of the app named by ``BENCH_APP`` (``plain`` or ``mcp``).  One outer path,
:data:`RECORDED_PATH`, answers how many requests the variant has recorded so far; it sits in
front of every variant, the bare one included, so it costs them all the same string compare.
"""

from __future__ import annotations

import json
import os

from apps import Variant, build_variant
from asgi_driver import ASGIApp, Receive, Scope, Send
from mcp_app import build_mcp_variant

RECORDED_PATH = "/__bench__/recorded"
APP_ENV = "BENCH_APP"
VARIANT_ENV = "BENCH_VARIANT"
MCP_PARSING_ENV = "BENCH_MCP_PARSING"


class RecordedProbe:
    """Answers :data:`RECORDED_PATH` itself and passes everything else to the variant."""

    def __init__(self, variant: Variant) -> None:
        self.variant = variant
        self.app: ASGIApp = variant.app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != RECORDED_PATH:
            await self.app(scope, receive, send)
            return
        body = json.dumps({"variant": self.variant.name,
                           "recorded": self.variant.recorded(),
                           "internal_errors": self.variant.internal_errors()}).encode("utf-8")
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode("ascii"))]})
        await send({"type": "http.response.body", "body": body})


def app_from_environment() -> ASGIApp:
    kind = os.environ[APP_ENV]
    name = os.environ[VARIANT_ENV]
    mcp_parsing = os.environ.get(MCP_PARSING_ENV, "full")
    if kind == "plain":
        variant = build_variant(name, mcp_parsing=mcp_parsing)
    elif kind == "mcp":
        variant = build_mcp_variant(name, mcp_parsing=mcp_parsing)
    else:
        raise ValueError(f"{APP_ENV} must be 'plain' or 'mcp', got {kind!r}")
    return RecordedProbe(variant)

"""ASGI entry point: Django and an MCP server side by side, measured by one middleware.

    uvicorn mysite.asgi:application

``/mcp`` goes to the ``mcp`` SDK's Streamable HTTP app, everything else to Django.  Both run
inside one ``MetricsMiddleware`` (configured from ``settings.ASGI_MCP_METRICS``), so the MCP
traffic is parsed on the wire and Django's streaming responses are measured to the last byte.
A project without an MCP server needs only::

    from asgi_mcp_metrics.django import get_asgi_application

    application = get_asgi_application()
"""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")
django_app = get_asgi_application()  # sets Django up; import project code after this line

from shop.mcp_server import mcp  # noqa: E402

from asgi_mcp_metrics.django import instrument  # noqa: E402
from asgi_mcp_metrics.types import Receive, Scope, Send  # noqa: E402

MCP_PATH = "/mcp"
# The SDK app serves MCP_PATH itself; its lifespan runs the session manager.
mcp_app = mcp.streamable_http_app(streamable_http_path=MCP_PATH)


async def router(scope: Scope, receive: Receive, send: Send) -> None:
    """Send ``/mcp`` to the MCP app, the rest to Django."""
    if scope["type"] == "lifespan":
        # Django does not speak the lifespan protocol; the MCP app needs it to start.
        await mcp_app(scope, receive, send)
    elif scope["path"] == MCP_PATH:
        await mcp_app(scope, receive, send)
    else:
        await django_app(scope, receive, send)


application = instrument(router)

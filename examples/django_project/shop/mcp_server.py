"""The shop's MCP server: the same items as the JSON API, as tools."""

from __future__ import annotations

from mcp.server import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

from .inventory import ITEMS


def list_items() -> list[dict[str, object]]:
    """Every item in the shop."""
    return list(ITEMS.values())


def get_item(item_id: int) -> dict[str, object]:
    """One item by id."""
    try:
        return ITEMS[item_id]
    except KeyError:
        # A ToolError becomes a result with isError: true (HTTP 200), counted as a tool error.
        raise ToolError(f"no item {item_id}") from None


def build_server() -> MCPServer:
    server = MCPServer("shop")
    server.tool()(list_items)
    server.tool()(get_item)
    return server


mcp = build_server()

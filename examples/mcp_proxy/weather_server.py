"""The proxy's HTTP backend: a small weather server (Streamable HTTP at ``/mcp``)."""

from __future__ import annotations

from mcp.server.mcpserver import MCPServer
from mcp_types import CallToolResult, TextContent
from starlette.applications import Starlette

FORECASTS: dict[str, str] = {"paris": "sunny, 21°C", "oslo": "snow, -3°C"}
REGIONS: frozenset[str] = frozenset({"europe"})


def build_weather_app() -> Starlette:
    weather = MCPServer("weather")

    @weather.tool()
    def get_forecast(city: str) -> str:
        """Tomorrow's forecast for a city."""
        return FORECASTS.get(city.lower(), "no forecast")

    @weather.tool()
    def get_alerts(region: str) -> CallToolResult:
        """Weather alerts for a region; an unknown region is a tool error."""
        if region.lower() not in REGIONS:
            return CallToolResult(content=[TextContent(type="text", text="unknown region")],
                                  is_error=True)
        return CallToolResult(content=[TextContent(type="text", text="no alerts")])

    return weather.streamable_http_app()

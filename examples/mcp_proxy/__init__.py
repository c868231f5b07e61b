"""An instrumented MCP proxy; see README.md."""

"""The proxy's stdio backend: a small notes server, run by the proxy as a child process.

Run by hand with ``python examples/mcp_proxy/notes_server.py``; it speaks MCP on stdin/stdout.
"""

from __future__ import annotations

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

notes = MCPServer("notes")

NOTES: dict[str, str] = {
    "todo": "renew the TLS certificate",
    "ideas": "a dashboard for the proxy",
}


@notes.tool()
def list_notes() -> list[str]:
    """Names of all notes."""
    return sorted(NOTES)


@notes.tool()
def read_note(name: str) -> str:
    """The text of one note."""
    if name not in NOTES:
        raise ToolError(f"no note called {name!r}")
    return NOTES[name]


@notes.tool()
def delete_note(name: str) -> str:
    """Delete a note (the ACL lets only operators do this)."""
    NOTES.pop(name, None)
    return f"deleted {name}"


if __name__ == "__main__":
    notes.run()  # stdio

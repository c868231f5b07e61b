"""What the tracker reads of each exchange: by ``mcp_parsing``, and up to which size."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..config import Settings


@dataclass(frozen=True, slots=True)
class ReadPolicy:
    parse_requests: bool
    """``full`` and ``request_body``: request bodies are read."""
    parse_responses: bool
    """``full``: every JSON and SSE answer is read."""
    max_body_bytes: int
    max_frame_bytes: int

    @classmethod
    def from_settings(cls, settings: Settings) -> ReadPolicy:
        mode = settings.mcp_parsing
        return cls(parse_requests=mode in ("full", "request_body"),
                   parse_responses=mode == "full",
                   max_body_bytes=settings.max_body_bytes,
                   max_frame_bytes=settings.max_frame_bytes)

"""How a result says that a tool call failed."""

from __future__ import annotations

from asgi_mcp_metrics._outcomes import is_tool_error


class Result:
    """A result with ``is_error`` and FastMCP's deprecated ``isError`` alias, which warns."""

    reads = 0

    def __init__(self, is_error: bool) -> None:
        self.is_error = is_error

    @property
    def isError(self) -> bool:
        Result.reads += 1
        return self.is_error


def test_the_first_field_present_decides_and_the_alias_is_not_read() -> None:
    assert is_tool_error(Result(False)) is False
    assert is_tool_error(Result(True)) is True
    assert Result.reads == 0


def test_the_camel_case_field_alone_counts() -> None:
    class Legacy:
        isError = True

    assert is_tool_error(Legacy()) is True
    assert is_tool_error({"isError": True}) is True
    assert is_tool_error({"isError": False}) is False

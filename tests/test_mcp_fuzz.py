"""Property tests: the wire parsers take untrusted input and must never raise or grow unbounded."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mcp.shared.inbound import encode_header_value
from starlette.datastructures import QueryParams

from asgi_mcp_metrics.mcp.body import BoundedBuffer
from asgi_mcp_metrics.mcp.headers import (
    INVALID_HEADER_VALUE,
    decode_header_value,
    mcp_request_headers,
    session_id_from_query,
)
from asgi_mcp_metrics.mcp.jsonrpc import INVALID_REASONS, Parsed, parse_messages
from asgi_mcp_metrics.mcp.sse import SSEEvent, SSEParser, legacy_endpoint

MAIN = settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SECONDARY = settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --- JSON-RPC ---------------------------------------------------------------------------

# Keys the classifier looks at, so generated objects reach its deeper branches.
MCP_KEYS = st.sampled_from(
    [
        "jsonrpc",
        "id",
        "method",
        "params",
        "result",
        "error",
        "code",
        "name",
        "tools",
        "isError",
        "resultType",
        "protocolVersion",
        "clientInfo",
        "_meta",
        "requestId",
        "io.modelcontextprotocol/protocolVersion",
        "io.modelcontextprotocol/clientInfo",
    ]
)
MCP_STRINGS = st.sampled_from(
    ["2.0", "tools/call", "prompts/get", "initialize", "notifications/cancelled", "tools/list"]
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**60), max_value=10**60),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    MCP_STRINGS,
)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(MCP_KEYS, st.text(max_size=4)), children, max_size=6),
    ),
    max_leaves=24,
)
# An envelope that passes the "jsonrpc" check, so the per-kind readers are exercised.
envelopes = st.fixed_dictionaries(
    {"jsonrpc": st.just("2.0")},
    optional={
        "id": scalars,
        "method": st.one_of(MCP_STRINGS, scalars),
        "params": json_values,
        "result": json_values,
        "error": json_values,
    },
)


def check_parsed(parsed: Parsed) -> None:
    assert parsed.invalid is None or parsed.invalid in INVALID_REASONS
    assert (parsed.invalid is None) == bool(parsed.messages)
    for message in parsed.messages:
        assert message.kind in ("request", "notification", "response", "error")
        for text in (
            message.method,
            message.tool_name,
            message.prompt_name,
            message.protocol_version,
            message.client_name,
            message.result_type,
            *(message.tool_names or ()),
        ):
            if text is not None:
                text.encode("utf-8")  # every label candidate must be exportable
        if message.id_key is not None:
            assert message.id_key[0] in ("str", "int", "null")
        assert message.error_code is None or type(message.error_code) is int


@MAIN
@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_raise(data: bytes) -> None:
    check_parsed(parse_messages(data))


@MAIN
@given(st.one_of(json_values, envelopes, st.lists(envelopes, max_size=4)))
def test_arbitrary_json_values_never_raise(value: Any) -> None:
    text = json.dumps(value)
    parsed = parse_messages(text)
    check_parsed(parsed)
    assert parse_messages(text.encode()) == parsed
    if isinstance(value, list) and value:
        assert parsed.batch is True
        assert len(parsed.messages) + parsed.invalid_elements == len(value)


@SECONDARY
@given(st.integers(min_value=1, max_value=3000), st.sampled_from("[{"))
def test_deep_nesting_never_raises(depth: int, opener: str) -> None:
    payload = '{"a":' * depth if opener == "{" else "[" * depth
    check_parsed(parse_messages(payload))


# --- SSE --------------------------------------------------------------------------------

field_text = st.text(
    alphabet=st.characters(blacklist_characters="\r\n\x00", blacklist_categories=("Cs",)),
    max_size=12,
)
sse_blocks = st.lists(
    st.fixed_dictionaries(
        {
            "data": st.lists(field_text, max_size=3),
            "comments": st.lists(field_text, max_size=2),
        },
        optional={"event": field_text, "id": field_text, "retry": field_text},
    ),
    max_size=6,
)


def render_stream(blocks: list[dict[str, Any]], endings: list[str], compact: bool) -> bytes:
    """Serialise generated blocks as an event stream, cycling through the given line endings."""
    lines: list[str] = []
    for block in blocks:
        lines.extend(":" + comment for comment in block["comments"])
        for field in ("event", "id", "retry"):
            if field in block:
                value = block[field]
                separator = ":" if compact and not value.startswith(" ") else ": "
                lines.append(field + separator + value)
        lines.extend("data: " + value for value in block["data"])
        lines.append("")
    out: list[str] = []
    previous = ""
    for index, line in enumerate(lines):
        ending = endings[index % len(endings)]
        if previous == "\r" and not line and ending == "\n":
            # "\r" + "\n" would be one line ending and swallow this blank line.
            ending = "\r\n"
        out.append(line + ending)
        previous = ending
    return "".join(out).encode("utf-8")


def expected_events(blocks: list[dict[str, Any]]) -> list[SSEEvent]:
    events: list[SSEEvent] = []
    last_id = ""
    for block in blocks:
        if "id" in block:
            last_id = block["id"]
        data = "\n".join(block["data"])
        if block["data"] and data:
            events.append(SSEEvent(block.get("event") or "message", data, last_id or None))
    return events


def split(stream: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(cut, len(stream)) for cut in cuts})
    chunks: list[bytes] = []
    start = 0
    for point in [*points, len(stream)]:
        chunks.append(stream[start:point])
        start = point
    return chunks


def feed_all(parser: SSEParser, chunks: list[bytes]) -> list[SSEEvent]:
    events: list[SSEEvent] = []
    for chunk in chunks:
        events.extend(parser.feed(chunk))
        # Memory stays bounded after every chunk, whatever the input.
        assert parser._partial_len <= parser._max_line_bytes
        assert sum(len(part) for part in parser._partial) == parser._partial_len
        assert parser._data_len <= parser._max_line_bytes
    events.extend(parser.close())
    return events


@MAIN
@given(
    sse_blocks,
    st.lists(st.sampled_from(["\r\n", "\n", "\r"]), min_size=1, max_size=4),
    st.booleans(),
    st.lists(st.integers(min_value=0, max_value=400), max_size=12),
)
def test_sse_any_chunking_yields_the_generated_events(
    blocks: list[dict[str, Any]], endings: list[str], compact: bool, cuts: list[int]
) -> None:
    stream = render_stream(blocks, endings, compact)
    expected = expected_events(blocks)
    assert feed_all(SSEParser(1 << 16), [stream]) == expected
    assert feed_all(SSEParser(1 << 16), split(stream, cuts)) == expected


@MAIN
@given(
    st.binary(max_size=200).map(lambda raw: raw.replace(b"x", b"\r").replace(b"y", b"\n")),
    st.lists(st.integers(min_value=0, max_value=200), max_size=10),
    st.integers(min_value=1, max_value=40),
)
def test_sse_arbitrary_bytes_chunking_invariant_and_bounded(
    stream: bytes, cuts: list[int], max_line_bytes: int
) -> None:
    whole = SSEParser(max_line_bytes)
    chunked = SSEParser(max_line_bytes)
    assert feed_all(chunked, split(stream, cuts)) == feed_all(whole, [stream])
    assert chunked.overflowed == whole.overflowed
    assert chunked.decode_errors == whole.decode_errors
    assert chunked.last_event_id == whole.last_event_id


@SECONDARY
@given(st.text(max_size=80), st.sampled_from(["endpoint", "message"]))
def test_legacy_endpoint_never_raises(data: str, event: str) -> None:
    endpoint = legacy_endpoint(SSEEvent(event, data, None))
    assert endpoint is None or event == "endpoint"


# --- headers ----------------------------------------------------------------------------


@MAIN
@given(
    st.one_of(
        st.binary(max_size=40),
        st.binary(max_size=40).map(lambda raw: b"=?base64?" + raw + b"?="),
    )
)
def test_decode_header_value_never_raises(raw: bytes) -> None:
    value = decode_header_value(raw)
    assert isinstance(value, str)
    value.encode("utf-8")


@MAIN
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=30))
def test_sdk_encoded_header_values_round_trip(value: str) -> None:
    encoded = encode_header_value(value).encode("latin-1")
    assert decode_header_value(encoded) == value
    assert decode_header_value(encoded) != INVALID_HEADER_VALUE or value == INVALID_HEADER_VALUE


header_names = st.one_of(
    st.sampled_from([b"mcp-method", b"Mcp-Name", b"ACCEPT", b"accept", b"mcp-session-id"]),
    st.binary(max_size=12),
)


@SECONDARY
@given(st.lists(st.tuples(header_names, st.binary(max_size=20)), max_size=8))
def test_mcp_request_headers_never_raise(headers: list[tuple[bytes, bytes]]) -> None:
    result = mcp_request_headers(headers)
    if not any(name.lower() == b"mcp-method" for name, _ in headers):
        assert result.method is None


@MAIN
@given(
    st.lists(
        st.one_of(
            st.sampled_from(["session_id", "session%5Fid", "session_id=", "=", "&", "+", "%"]),
            st.text(max_size=6),
        ),
        max_size=8,
    ).map("".join)
)
def test_session_id_from_query_agrees_with_starlette(query: str) -> None:
    raw = query.encode("utf-8")
    starlette_value = QueryParams(raw.decode("latin-1")).get("session_id")
    assert session_id_from_query(raw) == (starlette_value or None)


# --- body buffer ------------------------------------------------------------------------


@MAIN
@given(st.integers(min_value=1, max_value=64), st.lists(st.binary(max_size=24), max_size=12))
def test_bounded_buffer_never_exceeds_its_cap(cap: int, chunks: list[bytes]) -> None:
    buffer = BoundedBuffer(cap)
    total = 0
    for chunk in chunks:
        buffer.feed(chunk)
        total += len(chunk)
        assert buffer.size <= cap
        assert sum(len(part) for part in buffer._chunks) == buffer.size
        assert buffer.overflowed == (total > cap)
    assert buffer.getvalue() == (b"" if total > cap else b"".join(chunks))

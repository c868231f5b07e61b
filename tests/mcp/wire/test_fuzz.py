"""Property tests: the wire parsers take untrusted input and must never raise or grow unbounded."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mcp.shared.inbound import encode_header_value
from starlette.datastructures import QueryParams

from asgi_mcp_metrics.mcp.wire.body import BoundedBuffer
from asgi_mcp_metrics.mcp.wire.headers import (
    INVALID_HEADER_VALUE,
    decode_header_value,
    mcp_request_headers,
    session_id_from_query,
)
from asgi_mcp_metrics.mcp.wire.jsonrpc import INVALID_REASONS, Parsed, parse_messages
from asgi_mcp_metrics.mcp.wire.sse import SSEEvent, SSEParser, legacy_endpoint


# Example counts are set per property: several thousand inputs in all, while the whole
# module stays within a few seconds of CPU. Generation cost, not the parsers, dominates.
def budget(examples: int) -> settings:
    return settings(
        max_examples=examples, deadline=None, suppress_health_check=[HealthCheck.too_slow]
    )


# --- JSON-RPC ---------------------------------------------------------------------------

# Keys and strings the classifier looks at, so generated objects reach its deeper branches.
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
        "other",
    ]
)
MCP_STRINGS = st.sampled_from(
    ["2.0", "tools/call", "prompts/get", "initialize", "notifications/cancelled", "a\ud800", ""]
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**60), max_value=10**60),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=6),
    MCP_STRINGS,
)
# Three explicit levels rather than st.recursive: as deep as any member we read
# (result.tools[i].name, params._meta[clientInfo].name) and several times cheaper to draw.
level1 = st.one_of(scalars, st.dictionaries(MCP_KEYS, scalars, max_size=3))
level2 = st.one_of(
    scalars, st.dictionaries(MCP_KEYS, level1, max_size=3), st.lists(level1, max_size=3)
)
json_values = st.one_of(
    scalars, st.dictionaries(MCP_KEYS, level2, max_size=4), st.lists(level2, max_size=3)
)
# An envelope that passes the "jsonrpc" check, so the per-kind readers are exercised.
envelopes = st.fixed_dictionaries(
    {"jsonrpc": st.just("2.0")},
    optional={
        "id": scalars,
        "method": st.one_of(MCP_STRINGS, scalars),
        "params": json_values,
        "result": json_values,
        "error": level2,
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


@budget(3000)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_raise(data: bytes) -> None:
    check_parsed(parse_messages(data))


@budget(1500)
@given(st.one_of(json_values, envelopes, st.lists(envelopes, max_size=4)))
def test_arbitrary_json_values_never_raise(value: Any) -> None:
    text = json.dumps(value)
    parsed = parse_messages(text)
    check_parsed(parsed)
    assert parse_messages(text.encode()) == parsed
    if isinstance(value, list) and value:
        assert parsed.batch is True
        assert len(parsed.messages) + parsed.invalid_elements == len(value)


@budget(100)
@given(st.integers(min_value=1, max_value=3000), st.sampled_from("[{"))
def test_deep_nesting_never_raises(depth: int, opener: str) -> None:
    payload = '{"a":' * depth if opener == "{" else "[" * depth
    check_parsed(parse_messages(payload))


# --- SSE --------------------------------------------------------------------------------

# Spaces and colons (field syntax), multi-byte characters and a BOM; no line breaks or NUL.
field_text = st.text(alphabet="ab :\t\u00e9\u20ac\ufeff\U0001f600", max_size=6)
optional_field = st.none() | field_text
# One event block: (data lines, comment lines, event, id, retry); None = field absent.
Block = tuple[list[str], list[str], "str | None", "str | None", "str | None"]
sse_blocks = st.lists(
    st.tuples(
        st.lists(field_text, max_size=3),
        st.lists(field_text, max_size=1),
        optional_field,
        optional_field,
        optional_field,
    ),
    max_size=5,
)
line_endings = st.lists(st.sampled_from(["\r\n", "\n", "\r"]), min_size=1, max_size=4)
cut_points = st.lists(st.integers(min_value=0, max_value=300), max_size=10)
# Raw streams built from field syntax, line breaks and junk, so that short limits,
# split line endings, BOMs and bad UTF-8 all turn up often.
STREAM_PIECES = [
    b"data:", b"data: ", b"event:", b"id:", b"retry:", b":", b" ",
    b"\r", b"\n", b"\r\n", b"x", b"\xff", b"\xe2\x82", b"\xef\xbb\xbf", b"\x00",
]  # fmt: skip
raw_streams = st.lists(
    st.one_of(st.sampled_from(STREAM_PIECES), st.binary(max_size=4)), max_size=40
).map(b"".join)


def render_stream(blocks: list[Block], endings: list[str], compact: bool) -> bytes:
    """Serialise generated blocks as an event stream, cycling through the given line endings."""
    lines: list[str] = []
    for data, comments, event, event_id, retry in blocks:
        lines.extend(":" + comment for comment in comments)
        for name, value in (("event", event), ("id", event_id), ("retry", retry)):
            if value is not None:
                separator = ":" if compact and not value.startswith(" ") else ": "
                lines.append(name + separator + value)
        lines.extend("data: " + value for value in data)
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


def expected_events(blocks: list[Block]) -> list[SSEEvent]:
    """What the standard says these blocks mean (with empty-data events not dispatched)."""
    events: list[SSEEvent] = []
    last_id = ""
    for data_lines, _comments, event, event_id, _retry in blocks:
        if event_id is not None:
            last_id = event_id
        data = "\n".join(data_lines)
        if data:
            events.append(SSEEvent(event or "message", data, last_id or None))
    return events


def chunkings(stream: bytes, cuts: list[int]) -> list[list[bytes]]:
    """The stream whole, split at the given points, and one byte at a time."""
    points = sorted({min(cut, len(stream)) for cut in cuts})
    at_cuts: list[bytes] = []
    start = 0
    for point in [*points, len(stream)]:
        at_cuts.append(stream[start:point])
        start = point
    return [[stream], at_cuts, [stream[i : i + 1] for i in range(len(stream))]]


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


@budget(1000)
@given(sse_blocks, line_endings, st.booleans(), cut_points)
def test_sse_any_chunking_yields_the_generated_events(
    blocks: list[Block], endings: list[str], compact: bool, cuts: list[int]
) -> None:
    stream = render_stream(blocks, endings, compact)
    expected = expected_events(blocks)
    for chunks in chunkings(stream, cuts):
        assert feed_all(SSEParser(1 << 16), chunks) == expected


@budget(1500)
@given(raw_streams, cut_points, st.integers(min_value=1, max_value=40))
def test_sse_arbitrary_bytes_chunking_invariant_and_bounded(
    stream: bytes, cuts: list[int], max_line_bytes: int
) -> None:
    whole, *others = chunkings(stream, cuts)
    reference = SSEParser(max_line_bytes)
    expected = feed_all(reference, whole)
    for chunks in others:
        parser = SSEParser(max_line_bytes)
        assert feed_all(parser, chunks) == expected
        assert parser.overflows == reference.overflows
        assert parser.decode_errors == reference.decode_errors
        assert parser.last_event_id == reference.last_event_id


@budget(300)
@given(st.text(max_size=80), st.sampled_from(["endpoint", "message"]))
def test_legacy_endpoint_never_raises(data: str, event: str) -> None:
    endpoint = legacy_endpoint(SSEEvent(event, data, None))
    assert endpoint is None or event == "endpoint"


# --- headers ----------------------------------------------------------------------------


@budget(1000)
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


@budget(1000)
@given(st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=30))
def test_sdk_encoded_header_values_round_trip(value: str) -> None:
    encoded = encode_header_value(value).encode("latin-1")
    assert decode_header_value(encoded) == value
    assert decode_header_value(encoded) != INVALID_HEADER_VALUE or value == INVALID_HEADER_VALUE


header_names = st.one_of(
    st.sampled_from([b"mcp-method", b"Mcp-Name", b"ACCEPT", b"accept", b"mcp-session-id"]),
    st.binary(max_size=12),
)


@budget(300)
@given(st.lists(st.tuples(header_names, st.binary(max_size=20)), max_size=8))
def test_mcp_request_headers_never_raise(headers: list[tuple[bytes, bytes]]) -> None:
    result = mcp_request_headers(headers)
    if not any(name.lower() == b"mcp-method" for name, _ in headers):
        assert result.method is None


@budget(500)
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


@budget(600)
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

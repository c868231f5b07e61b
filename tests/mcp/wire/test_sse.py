from __future__ import annotations

import pytest

from asgi_mcp_metrics.mcp.wire.sse import (
    HEAD_BYTES,
    LegacyEndpoint,
    SSEEvent,
    SSEParser,
    legacy_endpoint,
)

MAX = 1 << 20

# What SDK v1 (sse-starlette) writes on a Streamable HTTP POST stream in 2025-11-25,
# including a priming event, a ping, a progress notification and the response.
SDK_STREAM = (
    b"id: 0\r\ndata: \r\nretry: 3000\r\n\r\n"
    b": ping - 2026-11-23 19:06:49.606341+00:00\r\n\r\n"
    b"event: message\r\nid: 1\r\n"
    b'data: {"jsonrpc":"2.0","method":"notifications/progress","params":{"progress":1}}\r\n\r\n'
    b"event: message\r\nid: 2\r\n"
    b'data: {"jsonrpc":"2.0","id":1,"result":{"content":[],"isError":false}}\r\n\r\n'
)
SDK_EVENTS = [
    SSEEvent(
        "message",
        '{"jsonrpc":"2.0","method":"notifications/progress","params":{"progress":1}}',
        "1",
    ),
    SSEEvent("message", '{"jsonrpc":"2.0","id":1,"result":{"content":[],"isError":false}}', "2"),
]


def parse_whole(stream: bytes, max_line_bytes: int = MAX) -> list[SSEEvent]:
    parser = SSEParser(max_line_bytes)
    events = parser.feed(stream)
    assert parser.close() == []
    return events


def parse_chunks(chunks: list[bytes], max_line_bytes: int = MAX) -> list[SSEEvent]:
    parser = SSEParser(max_line_bytes)
    events: list[SSEEvent] = []
    for chunk in chunks:
        events.extend(parser.feed(chunk))
    assert parser.close() == []
    return events


def test_sdk_stream_whole() -> None:
    assert parse_whole(SDK_STREAM) == SDK_EVENTS


def test_sdk_stream_at_every_split_point() -> None:
    for cut in range(len(SDK_STREAM) + 1):
        assert parse_chunks([SDK_STREAM[:cut], SDK_STREAM[cut:]]) == SDK_EVENTS, cut


def test_sdk_stream_at_every_pair_of_split_points() -> None:
    stream = SDK_STREAM[: SDK_STREAM.index(b"event: message\r\nid: 2")]
    expected = SDK_EVENTS[:1]
    for first in range(len(stream) + 1):
        for second in range(first, len(stream) + 1, 7):
            chunks = [stream[:first], stream[first:second], stream[second:]]
            assert parse_chunks(chunks) == expected, (first, second)


def test_one_byte_chunks() -> None:
    assert parse_chunks([bytes([b]) for b in SDK_STREAM]) == SDK_EVENTS


@pytest.mark.parametrize("newline", [b"\r\n", b"\n", b"\r"])
def test_every_line_ending(newline: bytes) -> None:
    stream = newline.join([b"event: endpoint", b"data: /messages/?session_id=ab", b"", b""])
    expected = [SSEEvent("endpoint", "/messages/?session_id=ab", None)]
    assert parse_whole(stream) == expected
    for cut in range(len(stream) + 1):
        assert parse_chunks([stream[:cut], stream[cut:]]) == expected


def test_crlf_split_across_chunks_is_one_line_ending() -> None:
    # If the "\n" after a chunk-final "\r" were read as an empty line, the first event
    # would be dispatched before its second data line.
    parser = SSEParser(MAX)
    assert parser.feed(b"data: a\r") == []
    assert parser.feed(b"\ndata: b\r") == []
    assert parser.feed(b"\n\r") == [SSEEvent("message", "a\nb", None)]
    assert parser.feed(b"\n") == []
    assert parser.feed(b"data: c\r\n\r\n") == [SSEEvent("message", "c", None)]


def test_cr_only_stream_dispatches_without_waiting_for_more() -> None:
    parser = SSEParser(MAX)
    assert parser.feed(b"data: x\r\r") == [SSEEvent("message", "x", None)]


def test_mixed_line_endings() -> None:
    stream = b"data: a\ndata: b\r\ndata: c\r\rdata: d\n\r\n"
    expected = [SSEEvent("message", "a\nb\nc", None), SSEEvent("message", "d", None)]
    assert parse_whole(stream) == expected
    assert parse_chunks([bytes([b]) for b in stream]) == expected


def test_lf_then_cr_is_two_line_endings() -> None:
    assert parse_whole(b"data: a\n\rdata: b\n\n") == [
        SSEEvent("message", "a", None),
        SSEEvent("message", "b", None),
    ]


def test_comments_and_pings_are_ignored() -> None:
    stream = b": ping\r\n\r\n:\r\n\r\ndata: x\r\n: inside an event\r\ndata: y\r\n\r\n"
    assert parse_whole(stream) == [SSEEvent("message", "x\ny", None)]


def test_multiline_data_and_space_stripping() -> None:
    stream = b"data:no-space\ndata:  two-spaces\ndata\ndata:\ndata: end\n\n"
    assert parse_whole(stream) == [SSEEvent("message", "no-space\n two-spaces\n\n\nend", None)]


def test_colon_inside_the_value_is_kept() -> None:
    assert parse_whole(b'data: {"a":"b: c"}\n\n') == [SSEEvent("message", '{"a":"b: c"}', None)]


def test_event_type_resets_after_each_dispatch() -> None:
    stream = b"event: endpoint\ndata: /m\n\ndata: x\n\nevent:\ndata: y\n\n"
    assert parse_whole(stream) == [
        SSEEvent("endpoint", "/m", None),
        SSEEvent("message", "x", None),
        SSEEvent("message", "y", None),
    ]


def test_event_type_is_reset_even_when_nothing_is_dispatched() -> None:
    assert parse_whole(b"event: endpoint\n\ndata: x\n\n") == [SSEEvent("message", "x", None)]


def test_priming_event_is_not_dispatched_but_its_id_is_remembered() -> None:
    parser = SSEParser(MAX)
    assert parser.feed(b"id: evt-0\r\ndata: \r\n\r\n") == []
    assert parser.last_event_id == "evt-0"
    assert parser.feed(b"id: evt-0\r\n\r\n") == []
    assert parser.feed(b"data: x\r\n\r\n") == [SSEEvent("message", "x", "evt-0")]


def test_id_persists_and_can_be_reset() -> None:
    stream = b"id: 7\ndata: a\n\ndata: b\n\nid\ndata: c\n\nid: 8\x00\ndata: d\n\n"
    assert parse_whole(stream) == [
        SSEEvent("message", "a", "7"),
        SSEEvent("message", "b", "7"),
        SSEEvent("message", "c", None),
        SSEEvent("message", "d", None),
    ]


def test_retry_and_unknown_fields_and_wrong_case_are_ignored() -> None:
    assert parse_whole(b"retry: 3000\nData: x\nfoo: bar\ndata: y\n\n") == [
        SSEEvent("message", "y", None)
    ]


def test_trailing_event_without_blank_line_is_not_dispatched() -> None:
    parser = SSEParser(MAX)
    assert parser.feed(b"data: complete\n\ndata: cut off\n") == [
        SSEEvent("message", "complete", None)
    ]
    assert parser.close() == []
    assert parser.truncated is True
    assert parser.feed(b"\n") == []


def test_trailing_partial_line_is_not_dispatched() -> None:
    parser = SSEParser(MAX)
    assert parser.feed(b"data: x\n\ndata: y") == [SSEEvent("message", "x", None)]
    assert parser.close() == []
    assert parser.truncated is True


def test_clean_end_is_not_truncated() -> None:
    parser = SSEParser(MAX)
    parser.feed(b"data: x\n\n: ping\n")
    parser.close()
    assert parser.truncated is False


def test_leading_bom_is_stripped_once() -> None:
    bom = b"\xef\xbb\xbf"
    stream = bom + b"data: x\n\n" + bom + b"data: y\n\n"
    # The second BOM is not at the start of the stream, so that line's field name is
    # "\ufeffdata" and it is ignored.
    assert parse_whole(stream) == [SSEEvent("message", "x", None)]
    assert parse_chunks([bytes([b]) for b in stream]) == [SSEEvent("message", "x", None)]


def test_invalid_utf8_is_replaced_and_counted() -> None:
    parser = SSEParser(MAX)
    events = parser.feed(b"event: m\xffsg\ndata: \xe2\x82\ndata: ok\n\n")
    assert events == [SSEEvent("m\ufffdsg", "\ufffd\nok", None)]
    assert parser.decode_errors == 2


def test_multibyte_character_split_across_chunks() -> None:
    stream = "data: überblick €\n\n".encode()
    for cut in range(len(stream) + 1):
        parser = SSEParser(MAX)
        events = parser.feed(stream[:cut]) + parser.feed(stream[cut:])
        assert events == [SSEEvent("message", "überblick €", None)]
        assert parser.decode_errors == 0


def test_json_rpc_batch_in_one_frame() -> None:
    stream = (
        b'data: [{"jsonrpc":"2.0","id":1,"result":{}},{"jsonrpc":"2.0","id":2,"result":{}}]\n\n'
    )
    (event,) = parse_whole(stream)
    assert event.data.startswith("[{")


# --- bounded memory ---------------------------------------------------------------------


def test_line_at_the_limit_is_accepted() -> None:
    line = b"data: " + b"x" * 10  # 16 bytes
    assert parse_whole(line + b"\n\n", max_line_bytes=16) == [SSEEvent("message", "x" * 10, None)]


def test_overlong_line_is_skipped_and_parsing_resumes_at_the_next_event() -> None:
    parser = SSEParser(16)
    assert parser.feed(b"data: ok\n\ndata: " + b"x" * 11 + b"\n\ndata: late\n\n") == [
        SSEEvent("message", "ok", None),
        SSEEvent("message", "x" * 10, None, oversized=True),  # 16 - len("data: ") kept
        SSEEvent("message", "late", None),
    ]
    assert parser.overflows == 1
    assert parser.feed(b"data: more\n\n") == [SSEEvent("message", "more", None)]
    assert parser.close() == []
    assert parser.truncated is False


# An SDK answer too large for the cap, between two that fit, with the event's own fields.
BIG = b'{"jsonrpc":"2.0","id":7,"result":{"content":[{"type":"text","text":"' + b"x" * 5000
OVERSIZED_STREAM = (
    b"event: message\r\ndata: " + b'{"jsonrpc":"2.0","id":6,"result":{}}' + b"\r\n\r\n"
    + b": ping\r\n\r\n"
    + b"event: message\r\nid: 9\r\ndata: " + BIG + b'"}]}}\r\n\r\n'
    + b"event: message\r\ndata: " + b'{"jsonrpc":"2.0","id":8,"result":{}}' + b"\r\n\r\n"
)
OVERSIZED_EVENTS = [
    SSEEvent("message", '{"jsonrpc":"2.0","id":6,"result":{}}', None),
    SSEEvent("message", BIG[:HEAD_BYTES].decode(), "9", oversized=True),
    SSEEvent("message", '{"jsonrpc":"2.0","id":8,"result":{}}', "9"),
]


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64, 1500, 4096])
def test_oversized_event_in_chunks_of_every_size(size: int) -> None:
    chunks = [OVERSIZED_STREAM[i : i + size] for i in range(0, len(OVERSIZED_STREAM), size)]
    parser = SSEParser(2048)
    events: list[SSEEvent] = []
    for chunk in chunks:
        events.extend(parser.feed(chunk))
    assert events == OVERSIZED_EVENTS
    assert parser.overflows == 1
    assert parser.close() == []
    assert parser.truncated is False


def test_oversized_event_at_every_split_point() -> None:
    for cut in range(1, len(OVERSIZED_STREAM)):
        parser = SSEParser(2048)
        events = parser.feed(OVERSIZED_STREAM[:cut]) + parser.feed(OVERSIZED_STREAM[cut:])
        assert events == OVERSIZED_EVENTS, cut
        assert parser.overflows == 1


def test_overlong_partial_line_is_dropped_before_its_end_arrives() -> None:
    parser = SSEParser(16)
    assert parser.feed(b"data: 0123456789") == []
    assert parser.overflows == 0
    assert parser.feed(b"a") == []
    assert parser.overflows == 1
    assert not parser._partial
    # The rest of the line is dropped as it comes, not kept.
    assert parser.feed(b"b" * 10_000) == []
    assert not parser._partial
    assert parser.feed(b"c\n\ndata: next\n\n") == [
        SSEEvent("message", "0123456789", None, oversized=True),
        SSEEvent("message", "next", None),
    ]


def test_overlong_line_in_many_small_chunks() -> None:
    parser = SSEParser(1000)
    for _ in range(999):
        assert parser.feed(b"x") == []
    assert parser.overflows == 0
    assert parser.feed(b"xx") == []
    assert parser.overflows == 1
    # Not a data line: nothing to dispatch, but the next event is read.
    assert parser.feed(b"\n\ndata: y\n\n") == [SSEEvent("message", "y", None)]


def test_event_data_is_capped_across_lines() -> None:
    parser = SSEParser(16)
    # Every line is short, but the event's data would grow without bound.
    assert parser.feed(b"data: 12345\n" * 2) == []
    assert parser.overflows == 0
    assert parser.feed(b"data: 12345\n") == []
    assert parser.overflows == 1
    assert not parser._data_lines
    assert parser.feed(b"data: 12345\n" * 1000) == []
    assert not parser._data_lines
    assert parser.feed(b"\n") == [
        SSEEvent("message", "12345\n1234", None, oversized=True)]
    assert parser.overflows == 1


def test_head_of_an_oversized_event_is_capped() -> None:
    parser = SSEParser(HEAD_BYTES * 4)
    events = parser.feed(b"data: " + b"y" * HEAD_BYTES * 8 + b"\n\n")
    assert events == [SSEEvent("message", "y" * HEAD_BYTES, None, oversized=True)]


def test_stream_ending_inside_an_oversized_event_is_not_also_truncated() -> None:
    parser = SSEParser(16)
    assert parser.feed(b"data: " + b"z" * 40 + b"\n") == []
    assert parser.close() == []
    assert parser.overflows == 1
    assert parser.truncated is False


def test_many_comment_lines_do_not_accumulate() -> None:
    parser = SSEParser(16)
    assert parser.feed(b": ping\n" * 10_000 + b"data: x\n\n") == [SSEEvent("message", "x", None)]
    assert parser.overflows == 0


def test_feed_after_close_is_ignored() -> None:
    parser = SSEParser(MAX)
    parser.close()
    assert parser.feed(b"data: x\n\n") == []


def test_invalid_limit() -> None:
    with pytest.raises(ValueError, match="max_line_bytes"):
        SSEParser(0)


# --- legacy HTTP+SSE endpoint event ---------------------------------------------------------


def test_legacy_endpoint_from_the_sdk_stream() -> None:
    stream = (
        b"event: endpoint\r\ndata: /messages/?session_id=4f1c2a9b0e7d4c3a8b6e5d4c3b2a1f0e\r\n\r\n"
    )
    (event,) = parse_whole(stream)
    assert legacy_endpoint(event) == LegacyEndpoint(
        path="/messages/", session_id="4f1c2a9b0e7d4c3a8b6e5d4c3b2a1f0e"
    )


def test_legacy_endpoint_with_quoted_root_path() -> None:
    event = SSEEvent("endpoint", "/tenant%20a/r%C3%A9/messages/?session_id=ab12", None)
    assert legacy_endpoint(event) == LegacyEndpoint(
        path="/tenant a/ré/messages/", session_id="ab12"
    )


def test_legacy_endpoint_absolute_url_and_extra_params() -> None:
    event = SSEEvent("endpoint", "https://h.example:8443/m/?x=1&session_id=ff#frag", None)
    assert legacy_endpoint(event) == LegacyEndpoint(path="/m/", session_id="ff")


def test_legacy_endpoint_without_session() -> None:
    assert legacy_endpoint(SSEEvent("endpoint", "/messages/", None)) == LegacyEndpoint(
        path="/messages/", session_id=None
    )


def test_other_events_are_not_endpoints() -> None:
    assert legacy_endpoint(SSEEvent("message", "/messages/?session_id=ab", None)) is None


def test_malformed_endpoint_url() -> None:
    assert legacy_endpoint(SSEEvent("endpoint", "http://[::1/x?session_id=a", None)) is None

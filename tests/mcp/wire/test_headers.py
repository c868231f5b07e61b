from __future__ import annotations

import base64

import pytest
from mcp.shared.inbound import encode_header_value

from asgi_mcp_metrics.mcp.wire.headers import (
    INVALID_HEADER_VALUE,
    McpHeaders,
    decode_header_value,
    mcp_request_headers,
    media_type,
    session_id_from_query,
)


def sentinel(payload: bytes) -> bytes:
    return b"=?base64?" + payload + b"?="


# --- decode_header_value ---------------------------------------------------------------


def test_plain_value_is_returned_verbatim() -> None:
    assert decode_header_value(b"get_weather") == "get_weather"
    assert decode_header_value(b"") == ""


def test_none_passes_through() -> None:
    assert decode_header_value(None) is None


@pytest.mark.parametrize(
    "value", ["wetter-überblick", "名前", " padded ", "tab\there", "=?base64?abc?=", ""]
)
def test_values_encoded_by_the_sdk_round_trip(value: str) -> None:
    encoded = encode_header_value(value).encode("ascii")
    assert decode_header_value(encoded) == value


def test_sentinel_is_used_for_non_ascii() -> None:
    raw = sentinel(base64.b64encode("überblick".encode()))
    assert decode_header_value(raw) == "überblick"


@pytest.mark.parametrize(
    "raw",
    [
        sentinel(b"not base64!"),  # outside the alphabet
        sentinel(b"YWJj="),  # wrong padding
        sentinel(b"YR=="),  # non-canonical: non-zero padding bits ("YQ==" is canonical)
        sentinel(b" YWJj"),  # whitespace is not tolerated
        sentinel(base64.b64encode(b"\xff\xfe")),  # valid base64, not UTF-8
        sentinel(base64.b64encode(b"\xed\xa0\x80")),  # an encoded surrogate is not UTF-8
        sentinel("ü".encode()),  # non-ASCII inside the sentinel
    ],
)
def test_malformed_sentinel_is_invalid(raw: bytes) -> None:
    assert decode_header_value(raw) == INVALID_HEADER_VALUE == "_invalid"


def test_canonical_padding_is_accepted() -> None:
    assert decode_header_value(sentinel(b"YQ==")) == "a"


@pytest.mark.parametrize(
    "raw",
    [b"=?BASE64?YWJj?=", b"=?Base64?YWJj?=", b"=?base64?YWJj?", b"?base64?YWJj?=", b"=?base64?="],
)
def test_near_sentinels_are_plain_values(raw: bytes) -> None:
    # The markers are lowercase and case-sensitive; anything else is an ordinary value.
    assert decode_header_value(raw) == raw.decode("latin-1")


def test_empty_payload_sentinel_is_the_empty_string() -> None:
    assert decode_header_value(b"=?base64??=") == ""


def test_raw_non_ascii_is_read_as_latin1_like_frameworks_do() -> None:
    assert decode_header_value("ü".encode()) == "Ã¼"


# --- mcp_request_headers ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        pytest.param(
            [
                (b"host", b"127.0.0.1:8000"),
                (b"accept", b"application/json, text/event-stream"),
                (b"content-type", b"application/json"),
                (b"mcp-protocol-version", b"2026-07-28"),
                (b"mcp-method", b"tools/call"),
                (b"mcp-name", sentinel(base64.b64encode("überblick".encode()))),
                (b"content-length", b"120"),
            ],
            McpHeaders(
                method="tools/call",
                name="überblick",
                protocol_version="2026-07-28",
                accept="application/json, text/event-stream",
                content_type="application/json",
            ),
            id="modern",
        ),
        pytest.param(
            [
                (b"mcp-session-id", b"4f1c2a9b0e7d4c3a8b6e5d4c3b2a1f0e"),
                (b"mcp-protocol-version", b"2025-11-25"),
                (b"last-event-id", b"evt-41"),
            ],
            McpHeaders(
                protocol_version="2025-11-25",
                session_id="4f1c2a9b0e7d4c3a8b6e5d4c3b2a1f0e",
                last_event_id="evt-41",
            ),
            id="handshake_era_session_and_resume",
        ),
        pytest.param(
            [
                (b"Mcp-Method", b"prompts/get"),
                (b"MCP-NAME", b"greet"),
                (b"Mcp-Session-Id", b"abc"),
                (b"Content-Type", b"application/json"),
            ],
            McpHeaders(
                method="prompts/get", name="greet", session_id="abc",
                content_type="application/json",
            ),
            id="names_match_case_insensitively",
        ),
        pytest.param([(b"host", b"x"), (b"user-agent", b"curl")], McpHeaders(),
                     id="no_relevant_headers"),
        pytest.param([], McpHeaders(), id="no_headers"),
    ],
)
def test_request_headers(headers: list[tuple[bytes, bytes]], expected: McpHeaders) -> None:
    assert mcp_request_headers(headers) == expected


def test_first_occurrence_wins_but_accept_is_joined() -> None:
    headers = [
        (b"mcp-method", b"tools/call"),
        (b"mcp-method", b"tools/list"),
        (b"accept", b"application/json"),
        (b"Accept", b"text/event-stream"),
    ]
    result = mcp_request_headers(headers)
    assert result.method == "tools/call"
    assert result.accept == "application/json, text/event-stream"


def test_malformed_name_sentinel() -> None:
    assert mcp_request_headers([(b"mcp-name", sentinel(b"%%%"))]).name == "_invalid"


def test_method_and_name_texts_are_shared_within_bounds(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from asgi_mcp_metrics.mcp.wire import headers as module

    monkeypatch.setattr(module, "_SHARED_TEXT", {})
    first = mcp_request_headers([(b"mcp-method", b"tools/call"), (b"mcp-name", b"add")])
    again = mcp_request_headers([(b"mcp-method", b"tools/call"), (b"mcp-name", b"add")])
    # The same string objects: neither copied nor hashed again for the second request.
    assert (again.method, again.name) == ("tools/call", "add")
    assert again.method is first.method and again.name is first.name
    long_name = b"t" * (module._MAX_SHARED_LENGTH + 1)
    assert mcp_request_headers([(b"mcp-name", long_name)]).name == long_name.decode()
    names = [f"tool{i}".encode() for i in range(module._MAX_SHARED_TEXTS + 100)]
    for name in names:
        assert mcp_request_headers([(b"mcp-name", name)]).name == name.decode()
    # Full: the first names are kept, the rest (and the long one) are read every time.
    assert len(module._SHARED_TEXT) == module._MAX_SHARED_TEXTS
    assert long_name not in module._SHARED_TEXT and names[-1] not in module._SHARED_TEXT
    assert mcp_request_headers([(b"mcp-name", names[-1])]).name == names[-1].decode()


def test_response_headers_work_too() -> None:
    headers = [
        (b"content-type", b"text/event-stream"),
        (b"mcp-session-id", b"0123456789abcdef0123456789abcdef"),
        (b"cache-control", b"no-cache, no-transform"),
    ]
    result = mcp_request_headers(headers)
    assert (result.content_type, result.session_id) == (
        "text/event-stream",
        "0123456789abcdef0123456789abcdef",
    )


# --- media_type -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("application/json", "application/json"),
        ("Application/JSON; charset=utf-8", "application/json"),
        (" text/event-stream ;charset=utf-8", "text/event-stream"),
        ("", ""),
        (None, None),
    ],
)
def test_media_type(value: str | None, expected: str | None) -> None:
    assert media_type(value) == expected


# --- session_id_from_query ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (b"session_id=4f1c2a9b0e7d4c3a8b6e5d4c3b2a1f0e", "4f1c2a9b0e7d4c3a8b6e5d4c3b2a1f0e"),
        (b"a=1&session_id=ab&b=2", "ab"),
        (b"session_id=first&session_id=last", "last"),
        (b"session%5Fid=quoted-name", "quoted-name"),
        (b"session_id=a%2Fb+c", "a/b c"),
        (b"session_id=", None),
        (b"session_id", None),
        (b"sessionid=ab", None),
        (b"xsession_id=ab", None),
        (b"", None),
        ("session_id=from-str", "from-str"),
    ],
)
def test_session_id_from_query(query: bytes | str, expected: str | None) -> None:
    assert session_id_from_query(query) == expected

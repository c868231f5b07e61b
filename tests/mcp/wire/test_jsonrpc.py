from __future__ import annotations

import json

import mcp_types
import pytest

from asgi_mcp_metrics.mcp.wire.jsonrpc import (
    MAX_LISTED_TOOLS,
    Message,
    Parsed,
    answer_id,
    parse_messages,
)


def one(payload: bytes | str) -> Message:
    parsed = parse_messages(payload)
    assert parsed.invalid is None
    assert parsed.batch is False
    assert len(parsed.messages) == 1
    return parsed.messages[0]


# --- requests and notifications -------------------------------------------------------


def test_tools_call_request() -> None:
    payload = (
        b'{"jsonrpc":"2.0","id":7,"method":"tools/call",'
        b'"params":{"name":"echo","arguments":{"text":"hi"}}}'
    )
    assert one(payload) == Message(
        kind="request", method="tools/call", id_key=("int", 7), tool_name="echo"
    )


def test_prompts_get_request_reads_the_prompt_name_not_the_tool_name() -> None:
    message = one('{"jsonrpc":"2.0","id":"p-1","method":"prompts/get","params":{"name":"greet"}}')
    assert message == Message(
        kind="request", method="prompts/get", id_key=("str", "p-1"), prompt_name="greet"
    )


def test_name_is_only_read_for_the_methods_that_carry_one() -> None:
    message = one('{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"name":"x"}}')
    assert message.tool_name is None
    assert message.prompt_name is None


def test_initialize_request_version_and_client() -> None:
    payload = json.dumps(
        {
            "jsonrpc": "2.0",
            "id": 0,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "claude-code", "version": "1.0"},
            },
        }
    )
    assert one(payload) == Message(
        kind="request",
        method="initialize",
        id_key=("int", 0),
        protocol_version="2025-06-18",
        client_name="claude-code",
    )


def test_modern_request_reads_version_and_client_from_meta() -> None:
    payload = json.dumps(
        {
            "jsonrpc": "2.0",
            "id": 3,
            "method": "tools/call",
            "params": {
                "name": "add",
                "arguments": {"a": 1, "b": 2},
                "_meta": {
                    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                    "io.modelcontextprotocol/clientCapabilities": {},
                    "io.modelcontextprotocol/clientInfo": {"name": "inspector", "version": "2"},
                },
            },
        }
    )
    assert one(payload) == Message(
        kind="request",
        method="tools/call",
        id_key=("int", 3),
        tool_name="add",
        protocol_version="2026-07-28",
        client_name="inspector",
    )


def test_initialize_params_win_over_meta() -> None:
    payload = json.dumps(
        {
            "jsonrpc": "2.0",
            "id": 0,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-11-25",
                "clientInfo": {"name": "a"},
                "_meta": {
                    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                    "io.modelcontextprotocol/clientInfo": {"name": "b"},
                },
            },
        }
    )
    message = one(payload)
    assert (message.protocol_version, message.client_name) == ("2025-11-25", "a")


def test_notification_has_no_id_key() -> None:
    assert one('{"jsonrpc":"2.0","method":"notifications/initialized"}') == Message(
        kind="notification", method="notifications/initialized"
    )


def test_notification_is_decided_by_key_presence_not_value() -> None:
    # "id": null is present, so this is a (discouraged) request, not a notification.
    assert one('{"jsonrpc":"2.0","id":null,"method":"ping"}') == Message(
        kind="request", method="ping", id_key=("null", "")
    )


def test_cancelled_notification_names_the_request() -> None:
    message = one(
        '{"jsonrpc":"2.0","method":"notifications/cancelled",'
        '"params":{"requestId":"abc","reason":"user"}}'
    )
    assert message.kind == "notification"
    assert message.cancelled_id_key == ("str", "abc")


# --- responses ------------------------------------------------------------------------


def test_success_response_v1_shape() -> None:
    payload = (
        b'{"jsonrpc":"2.0","id":2,"result":{"content":[{"type":"text","text":"4"}],'
        b'"structuredContent":{"result":4},"isError":false}}'
    )
    assert one(payload) == Message(kind="response", id_key=("int", 2))


def test_tool_error_comes_back_as_a_result_with_is_error() -> None:
    payload = (
        b'{"jsonrpc":"2.0","id":5,"result":{"content":[{"type":"text",'
        b'"text":"Error executing tool boom: kaboom"}],"isError":true}}'
    )
    assert one(payload) == Message(kind="response", id_key=("int", 5), is_error=True)


@pytest.mark.parametrize("value", ["true", '"true"', "1", "null"])
def test_is_error_must_be_literally_true(value: str) -> None:
    message = one('{"jsonrpc":"2.0","id":5,"result":{"isError":' + value + "}}")
    assert message.is_error is (value == "true")


def test_modern_result_type_input_required() -> None:
    payload = json.dumps(
        {
            "jsonrpc": "2.0",
            "id": 9,
            "result": {
                "resultType": "input_required",
                "inputRequests": {"r1": {"method": "elicitation/create", "params": {}}},
                "requestState": "opaque",
            },
        }
    )
    assert one(payload) == Message(kind="response", id_key=("int", 9), result_type="input_required")


def test_modern_result_type_complete() -> None:
    message = one('{"jsonrpc":"2.0","id":9,"result":{"content":[],"resultType":"complete"}}')
    assert message.result_type == "complete"
    assert message.is_error is False


def test_initialize_result_negotiated_version() -> None:
    payload = json.dumps(
        {
            "jsonrpc": "2.0",
            "id": 0,
            "result": {
                "protocolVersion": "2025-03-26",
                "capabilities": {"tools": {"listChanged": False}},
                "serverInfo": {"name": "demo", "version": "1.0"},
            },
        }
    )
    assert one(payload) == Message(
        kind="response", id_key=("int", 0), protocol_version="2025-03-26"
    )


def test_tools_list_result_names() -> None:
    payload = json.dumps(
        {
            "jsonrpc": "2.0",
            "id": 1,
            "result": {
                "tools": [
                    {"name": "echo", "inputSchema": {"type": "object"}},
                    {"name": "add", "title": "Add", "inputSchema": {"type": "object"}},
                    {"title": "nameless"},
                    {"name": 42},
                    "not-a-tool",
                    {"name": "boom"},
                ],
                "nextCursor": "c2",
            },
        }
    )
    assert one(payload).tool_names == ("echo", "add", "boom")


def test_tools_list_empty_and_malformed() -> None:
    assert one('{"jsonrpc":"2.0","id":1,"result":{"tools":[]}}').tool_names == ()
    assert one('{"jsonrpc":"2.0","id":1,"result":{"tools":{"name":"x"}}}').tool_names is None
    assert one('{"jsonrpc":"2.0","id":1,"result":{}}').tool_names is None


def test_prompts_list_names() -> None:
    payload = ('{"jsonrpc":"2.0","id":7,"result":{"prompts":[{"name":"summarize"},'
               '{"name":3},{"title":"no name"},{"name":"review"}]}}')
    message = one(payload)
    assert message.prompt_names == ("summarize", "review")
    assert message.tool_names is None
    assert one('{"jsonrpc":"2.0","id":1,"result":{"prompts":"x"}}').prompt_names is None


def test_tools_list_is_capped() -> None:
    tools = [{"name": f"t{i}"} for i in range(MAX_LISTED_TOOLS + 5)]
    payload = json.dumps({"jsonrpc": "2.0", "id": 1, "result": {"tools": tools}})
    names = one(payload).tool_names
    assert names is not None
    assert len(names) == MAX_LISTED_TOOLS
    assert names[-1] == f"t{MAX_LISTED_TOOLS - 1}"


def test_non_object_result_is_a_plain_response() -> None:
    assert one('{"jsonrpc":"2.0","id":1,"result":[1,2]}') == Message(
        kind="response", id_key=("int", 1)
    )


# --- error responses ------------------------------------------------------------------


def test_session_not_found_sdk_v1_uses_server_error_id() -> None:
    payload = (
        b'{"jsonrpc":"2.0","id":"server-error",'
        b'"error":{"code":-32600,"message":"Session not found"}}'
    )
    assert one(payload) == Message(kind="error", id_key=("str", "server-error"), error_code=-32600)


def test_session_not_found_sdk_v2_uses_null_id() -> None:
    payload = b'{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"Session not found"}}'
    assert one(payload) == Message(kind="error", id_key=("null", ""), error_code=-32600)


@pytest.mark.parametrize(
    "code", [-32700, -32600, -32601, -32602, -32603, -32000, -32002, -32042, -32020, -32022, 0]
)
def test_error_codes_are_read_as_ints(code: int) -> None:
    message = one(f'{{"jsonrpc":"2.0","id":4,"error":{{"code":{code},"message":"m"}}}}')
    assert message.kind == "error"
    assert message.error_code == code


def test_sdk_v1_generic_handler_failure_code_zero_is_not_lost() -> None:
    message = one('{"jsonrpc":"2.0","id":4,"error":{"code":0,"message":"boom"}}')
    assert message.error_code == 0
    assert message.error_code is not None


@pytest.mark.parametrize(
    "error", ['{"code":"-32600"}', '{"code":true}', '{"code":1.5}', "{}", '"oops"', "null"]
)
def test_malformed_error_member_keeps_kind_without_code(error: str) -> None:
    message = one('{"jsonrpc":"2.0","id":4,"error":' + error + "}")
    assert message.kind == "error"
    assert message.error_code is None


def test_error_wins_over_result_when_both_present() -> None:
    message = one('{"jsonrpc":"2.0","id":1,"result":{},"error":{"code":-32603}}')
    assert (message.kind, message.error_code) == ("error", -32603)


# --- ids ------------------------------------------------------------------------------


def test_int_and_str_ids_differ() -> None:
    as_int = one('{"jsonrpc":"2.0","id":1,"method":"ping"}').id_key
    as_str = one('{"jsonrpc":"2.0","id":"1","method":"ping"}').id_key
    null = one('{"jsonrpc":"2.0","id":null,"result":{}}').id_key
    assert as_int == ("int", 1)
    assert as_str == ("str", "1")
    assert len({as_int, as_str, null}) == 3


@pytest.mark.parametrize("raw_id", ["true", "false", "1.0", "[1]", '{"a":1}'])
def test_bool_float_and_structured_ids_are_invalid(raw_id: str) -> None:
    message = one('{"jsonrpc":"2.0","id":' + raw_id + ',"method":"tools/call"}')
    assert message.kind == "request"
    assert message.id_key is None
    assert message.invalid_id is True


def test_huge_int_id_is_kept_exactly() -> None:
    big = 10**100
    assert one(f'{{"jsonrpc":"2.0","id":{big},"result":{{}}}}').id_key == ("int", big)


# --- batches --------------------------------------------------------------------------


def test_batch_classifies_each_element() -> None:
    payload = json.dumps(
        [
            {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "a"}},
            {"jsonrpc": "2.0", "method": "notifications/initialized"},
            7,
            {"jsonrpc": "2.0", "id": "x", "result": {"isError": True}},
            {"id": 3, "method": "no-jsonrpc-member"},
            {"jsonrpc": "2.0", "id": 2, "error": {"code": -32601, "message": "Method not found"}},
        ]
    )
    parsed = parse_messages(payload)
    assert parsed.batch is True
    assert parsed.invalid is None
    assert parsed.invalid_elements == 2
    assert parsed.messages == [
        Message(kind="request", method="tools/call", id_key=("int", 1), tool_name="a"),
        Message(kind="notification", method="notifications/initialized"),
        Message(kind="response", id_key=("str", "x"), is_error=True),
        Message(kind="error", id_key=("int", 2), error_code=-32601),
    ]


def test_empty_batch() -> None:
    assert parse_messages(b"[]") == Parsed(invalid="empty_batch", batch=True)


def test_batch_without_a_single_message() -> None:
    assert parse_messages(b'[1, "x", {}]') == Parsed(
        invalid="invalid_batch", batch=True, invalid_elements=3
    )


# --- invalid payloads -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", "empty"),
        (b"\xff\xfe{}", "invalid_utf8"),
        (b'{"jsonrpc":"2.0","method":"\xc3"}', "invalid_utf8"),
        (b"{", "invalid_json"),
        (b"   ", "invalid_json"),
        (b'{"jsonrpc":"2.0"}garbage', "invalid_json"),
        (b"\xef\xbb\xbf{}", "invalid_json"),
        (b"1" * 5000, "invalid_json"),
        (b"[" * 100_000, "too_deep"),
        (b'{"a":' * 100_000, "too_deep"),
        (b"42", "not_an_object"),
        (b'"tools/call"', "not_an_object"),
        (b"null", "not_an_object"),
        (b"NaN", "not_an_object"),
        (b"{}", "not_jsonrpc"),
        (b'{"jsonrpc":"1.0","id":1,"method":"ping"}', "not_jsonrpc"),
        (b'{"jsonrpc":2.0,"id":1,"method":"ping"}', "not_jsonrpc"),
        (b'{"jsonrpc":"2.0","id":1}', "not_jsonrpc"),
        (b'{"jsonrpc":"2.0","id":1,"method":7}', "not_jsonrpc"),
        (b'{"jsonrpc":"2.0","id":1,"method":null}', "not_jsonrpc"),
    ],
)
def test_invalid_payload_reasons(payload: bytes, reason: str) -> None:
    parsed = parse_messages(payload)
    assert parsed.invalid == reason
    assert parsed.messages == []


def test_odd_params_shapes_leave_fields_empty() -> None:
    for params in ("[1,2]", '"s"', "null", '{"name":["x"]}', '{"name":null}', '{"_meta":[1]}'):
        message = one('{"jsonrpc":"2.0","id":1,"method":"tools/call","params":' + params + "}")
        assert message == Message(kind="request", method="tools/call", id_key=("int", 1))


def test_odd_meta_and_client_info_shapes() -> None:
    payload = json.dumps(
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": 20250618,
                "clientInfo": "claude",
                "_meta": {"io.modelcontextprotocol/clientInfo": {"name": ["x"]}},
            },
        }
    )
    message = one(payload)
    assert (message.protocol_version, message.client_name) == (None, None)


def test_nan_and_infinity_do_not_break_classification() -> None:
    message = one('{"jsonrpc":"2.0","id":NaN,"error":{"code":Infinity}}')
    assert message == Message(kind="error", invalid_id=True)


def test_lone_surrogates_in_label_fields_are_replaced() -> None:
    message = one(r'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a\ud800b"}}')
    assert message.tool_name == "a?b"
    assert message.tool_name.encode("utf-8") == b"a?b"


def test_non_ascii_names_pass_unchanged() -> None:
    message = one(
        '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"wetter-überblick"}}'
    )
    assert message.tool_name == "wetter-überblick"


def test_str_and_bytearray_input() -> None:
    text = '{"jsonrpc":"2.0","id":1,"method":"ping"}'
    assert parse_messages(text) == parse_messages(bytearray(text.encode()))
    assert parse_messages(text).messages[0].method == "ping"


# --- what the official SDK actually serialises ----------------------------------------


def test_sdk_serialised_call_tool_request_and_error_result() -> None:
    request = mcp_types.JSONRPCRequest(
        jsonrpc="2.0",
        id=11,
        method="tools/call",
        params={"name": "boom", "arguments": {}},
    )
    assert one(request.model_dump_json(by_alias=True, exclude_none=True)) == Message(
        kind="request", method="tools/call", id_key=("int", 11), tool_name="boom"
    )
    result = mcp_types.CallToolResult(content=[], is_error=True, result_type="input_required")
    response = mcp_types.JSONRPCResponse(
        jsonrpc="2.0", id=11, result=result.model_dump(by_alias=True, exclude_none=True)
    )
    assert one(response.model_dump_json(by_alias=True, exclude_none=True)) == Message(
        kind="response", id_key=("int", 11), is_error=True, result_type="input_required"
    )


@pytest.mark.parametrize(("head", "expected"), [
    ('{"jsonrpc":"2.0","id":7,"result":{"content":[{"type":"text","text":"xxx', ("int", 7)),
    ('{ "jsonrpc" : "2.0" ,\n "id" : "a\\"b" , "error": {"code": -32603, "mess', ("str", 'a"b')),
    ('{"id":null,"result":', ("null", "")),
    ('  {"id":3,"jsonrpc":"2.0","result":', ("int", 3)),
    # The id comes after the result, or the head ends before it: not known.
    ('{"jsonrpc":"2.0","result":{"content":"xx', None),
    ('{"jsonrpc":"2.0","id":12', None),
    ('{"jsonrpc":"2.0","id":1', None),
    ('{"jsonrpc":"2.0","id":1}', None),
    # A request from the server shares the id space of no client request.
    ('{"jsonrpc":"2.0","id":0,"method":"sampling/createMessage","params":{"x', None),
    ('{"jsonrpc":"2.0","id":true,"result":{', None),
    ('{"jsonrpc":"2.0","id":1.5,"result":{', None),
    ('[{"jsonrpc":"2.0","id":1,"result":{', None),
    ('{"jsonrpc":"2.0" "id":1,"result":{', None),
    ('{1:2,"id":1,"result":{', None),
    ('{"a":' + "[" * 5000, None),
    ("", None),
    ("data", None),
])
def test_answer_id_from_the_head_of_an_answer(head: str, expected: object) -> None:
    assert answer_id(head) == expected

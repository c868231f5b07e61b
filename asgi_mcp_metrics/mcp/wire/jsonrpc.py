"""Classify JSON-RPC payloads seen on the MCP wire, without ever raising.

Request bodies, JSON response bodies and the ``data`` of SSE frames all go through
:func:`parse_messages`. It decodes the payload once with :func:`json.loads` and
then reads only the few members the metrics need. Payloads come from untrusted
clients, so every member is type-checked before use; an odd shape leaves a field
``None`` (or the whole payload ``invalid``) rather than raising.

String fields that may end up as label values (``method``, tool and prompt names,
versions, client name, ``resultType``) are guaranteed to be encodable as UTF-8:
JSON allows lone surrogates such as ``"\\ud800"``, which would otherwise break the
exposition later. Bounding their *cardinality* is the recorder's job.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import islice
from json.scanner import make_scanner
from typing import Any, Final, Literal

MessageKind = Literal["request", "notification", "response", "error"]
IdKey = tuple[str, str | int]
"""A JSON-RPC id tagged with its JSON type: ``("int", 1)``, ``("str", "1")``, ``("null", "")``.

The tag keeps ``1`` and ``"1"`` apart, as JSON-RPC requires when correlating.
"""

# Reasons a payload is not usable; a fixed, low-cardinality set fit for a label.
INVALID_EMPTY: Final = "empty"
INVALID_UTF8: Final = "invalid_utf8"
INVALID_JSON: Final = "invalid_json"
INVALID_TOO_DEEP: Final = "too_deep"
INVALID_NOT_AN_OBJECT: Final = "not_an_object"
INVALID_NOT_JSONRPC: Final = "not_jsonrpc"
INVALID_EMPTY_BATCH: Final = "empty_batch"
INVALID_BATCH: Final = "invalid_batch"
INVALID_REASONS: Final = (
    INVALID_EMPTY,
    INVALID_UTF8,
    INVALID_JSON,
    INVALID_TOO_DEEP,
    INVALID_NOT_AN_OBJECT,
    INVALID_NOT_JSONRPC,
    INVALID_EMPTY_BATCH,
    INVALID_BATCH,
)

MAX_LISTED_TOOLS: Final = 10_000
"""Entries of a ``tools/list`` result examined for names; bounds the work per response."""

PROTOCOL_VERSION_META_KEY: Final = "io.modelcontextprotocol/protocolVersion"
CLIENT_INFO_META_KEY: Final = "io.modelcontextprotocol/clientInfo"

_NULL_ID: Final[IdKey] = ("null", "")
_DECODER: Final = json.JSONDecoder()
#: What ``json.loads`` runs under its Python layers (the C scanner where there is one).
_SCAN: Final[Callable[[str, int], tuple[Any, int]]] = make_scanner(
    _DECODER)  # type: ignore[arg-type]  # (the stubs type the class, not its argument)
_SPACE: Final = re.compile(r"[ \t\n\r]*")


@dataclass(slots=True)
class Message:
    """What the metrics need from one JSON-RPC message. Treat as read-only."""

    kind: MessageKind
    method: str | None = None
    id_key: IdKey | None = None
    invalid_id: bool = False
    """The ``id`` member is present but neither a string, an integer nor null (e.g. a bool)."""
    tool_name: str | None = None
    prompt_name: str | None = None
    error_code: int | None = None
    is_error: bool = False
    result_type: str | None = None
    protocol_version: str | None = None
    client_name: str | None = None
    tool_names: tuple[str, ...] | None = None
    prompt_names: tuple[str, ...] | None = None
    cancelled_id_key: IdKey | None = None
    """``params.requestId`` of a ``notifications/cancelled``."""


@dataclass(slots=True)
class Parsed:
    """The outcome of :func:`parse_messages`."""

    messages: list[Message] = field(default_factory=list)
    invalid: str | None = None
    """One of :data:`INVALID_REASONS` when nothing usable was found, else ``None``."""
    batch: bool = False
    invalid_elements: int = 0
    """Batch elements skipped because they are not JSON-RPC message objects."""


def parse_messages(data: bytes | bytearray | str) -> Parsed:
    """Decode and classify a JSON-RPC payload: one message object or a batch (array)."""
    return messages_of(*decode(data))


def decode(data: bytes | bytearray | str) -> tuple[Any, str | None]:
    """``(value, None)`` for a JSON payload, ``(None, reason)`` (one of
    :data:`INVALID_REASONS`) for one that is not JSON."""
    if not data:
        return None, INVALID_EMPTY
    if isinstance(data, str):
        text = data
    else:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            return None, INVALID_UTF8
    try:
        # json.loads(text) minus its Python layers: the C scanner is called directly.  It
        # raises StopIteration ("no value here") or ValueError where json.loads raises
        # JSONDecodeError.
        start = 0 if text[0] in "{[" else _skip_space(text, 0)
        value, end = _SCAN(text, start)
        if end != len(text) and _skip_space(text, end) != len(text):
            raise ValueError("extra data after the JSON value")
    except RecursionError:
        return None, INVALID_TOO_DEEP
    except (ValueError, StopIteration):
        # Not JSON; also the int-digits limit for absurdly long numbers.
        return None, INVALID_JSON
    return value, None


def plain_result(value: Any) -> tuple[int | str, dict[str, Any]] | None:
    """``(id, result)`` of one successful answer as servers send it - a JSON-RPC 2.0 object
    with an integer or string id and an object result, no error, no method - as :func:`decode`
    gives it; None for anything else (which :func:`messages_of` classifies)."""
    if (type(value) is dict and "result" in value and "error" not in value
            and "method" not in value and value.get("jsonrpc") == "2.0"):
        result = value["result"]
        raw = value.get("id")
        if type(result) is dict and (type(raw) is int or type(raw) is str):
            return raw, result
    return None


def messages_of(value: Any, invalid: str | None = None) -> Parsed:
    """Classify a payload as :func:`decode` gives it: its value, or why it is not JSON."""
    if invalid is not None:
        return Parsed(invalid=invalid)
    if isinstance(value, dict):
        message = classify(value)
        if message is None:
            return Parsed(invalid=INVALID_NOT_JSONRPC)
        return Parsed([message])
    if isinstance(value, list):
        if not value:
            return Parsed(invalid=INVALID_EMPTY_BATCH, batch=True)
        messages: list[Message] = []
        skipped = 0
        for element in value:
            message = classify(element) if isinstance(element, dict) else None
            if message is None:
                skipped += 1
            else:
                messages.append(message)
        return Parsed(
            messages=messages,
            invalid=None if messages else INVALID_BATCH,
            batch=True,
            invalid_elements=skipped,
        )
    return Parsed(invalid=INVALID_NOT_AN_OBJECT)


def classify(obj: dict[str, Any]) -> Message | None:
    """What one decoded JSON object is as a JSON-RPC message; None when it is not one."""
    if obj.get("jsonrpc") != "2.0":
        return None

    if "id" in obj:
        raw = obj["id"]
        # (The two common ids first: a plain int and a string.)
        id_key = (("int", raw) if type(raw) is int else ("str", raw) if type(raw) is str
                  else _id_key(raw))
        invalid_id = id_key is None
    else:
        id_key = None
        invalid_id = False

    if "method" in obj:
        method = obj["method"]
        if not isinstance(method, str):
            return None
        message = Message("request" if "id" in obj else "notification",
                          method if method.isascii() else label_text(method), id_key,
                          invalid_id)
        params = obj.get("params")
        if isinstance(params, dict):
            _read_params(message, method, params)
        return message

    if "error" in obj:
        # An object carrying both "result" and "error" is malformed; the error wins
        # because that is the reading that does not hide a failure.
        message = Message("error", None, id_key, invalid_id)
        error = obj["error"]
        if isinstance(error, dict):
            code = error.get("code")
            if type(code) is int:
                message.error_code = code
        return message

    if "result" in obj:
        message = Message("response", None, id_key, invalid_id)
        result = obj["result"]
        if isinstance(result, dict):
            _read_result(message, result)
        return message

    return None


def answer_id(head: str) -> IdKey | None:
    """The id of a JSON-RPC answer known only by the first characters of its text.

    Members are read in order up to ``"result"`` or ``"error"``; only an ``id`` seen before that
    counts.  A request (``"method"``), a batch, or a head that ends first shows no answer's id.
    """
    pos = _skip_space(head, 0)
    if head[pos : pos + 1] != "{":
        return None
    id_key: IdKey | None = None
    pos += 1
    try:
        while True:
            key, pos = _DECODER.raw_decode(head, _skip_space(head, pos))
            pos = _skip_space(head, pos)
            if not isinstance(key, str) or head[pos : pos + 1] != ":":
                return None
            if key in ("result", "error"):
                return id_key
            if key == "method":
                return None
            member, pos = _DECODER.raw_decode(head, _skip_space(head, pos + 1))
            if key == "id":
                id_key = _id_key(member)
            pos = _skip_space(head, pos)
            if head[pos : pos + 1] != ",":
                return None
            pos += 1
    except (ValueError, RecursionError):
        return None  # the head ended, or was not JSON, before the answer began


def _skip_space(text: str, pos: int) -> int:
    return _SPACE.match(text, pos).end()  # type: ignore[union-attr]


def _read_params(message: Message, method: str, params: dict[str, Any]) -> None:
    if method == "tools/call":
        name = params.get("name")
        message.tool_name = name if type(name) is str and name.isascii() else label_text(name)
    elif method == "prompts/get":
        message.prompt_name = label_text(params.get("name"))
    elif method == "initialize":
        message.protocol_version = label_text(params.get("protocolVersion"))
        client_info = params.get("clientInfo")
        if isinstance(client_info, dict):
            message.client_name = label_text(client_info.get("name"))
    elif method == "notifications/cancelled" and "requestId" in params:
        message.cancelled_id_key = _id_key(params["requestId"])

    # Modern-era (2026-07-28) requests carry version and client in every _meta.
    meta = params.get("_meta")
    if type(meta) is dict:
        if message.protocol_version is None:
            message.protocol_version = label_text(meta.get(PROTOCOL_VERSION_META_KEY))
        if message.client_name is None:
            client_info = meta.get(CLIENT_INFO_META_KEY)
            if isinstance(client_info, dict):
                message.client_name = label_text(client_info.get("name"))


def _read_result(message: Message, result: dict[str, Any]) -> None:
    # A response does not name its method; these members are specific enough
    # (isError: tools/call, protocolVersion: initialize, tools: tools/list) to be
    # read from any result.  Only the members present are looked at.
    message.is_error = result.get("isError") is True
    value = result.get("resultType")
    if value is not None:
        message.result_type = (value if type(value) is str and value.isascii()
                               else label_text(value))
    value = result.get("protocolVersion")
    if value is not None:
        message.protocol_version = label_text(value)
    value = result.get("tools")
    if value is not None:
        message.tool_names = listed_names(value)
    value = result.get("prompts")
    if value is not None:
        message.prompt_names = listed_names(value)


def listed_names(entries: object) -> tuple[str, ...] | None:
    """The ``name`` members of a ``tools/list`` or ``prompts/list`` result's entries."""
    if not isinstance(entries, list):
        return None
    names: list[str] = []
    for entry in islice(entries, MAX_LISTED_TOOLS):
        if isinstance(entry, dict):
            name = label_text(entry.get("name"))
            if name is not None:
                names.append(name)
    return tuple(names)


def _id_key(raw: object) -> IdKey | None:
    if isinstance(raw, str):
        return ("str", raw)
    # bool is an int subclass, and a bool id is invalid (so is a float: the SDKs reject it).
    if isinstance(raw, int) and not isinstance(raw, bool):
        return ("int", raw)
    if raw is None:
        return _NULL_ID
    return None


def label_text(value: object) -> str | None:
    """``value`` if it is a string that can be encoded as UTF-8, repaired if it cannot."""
    if not isinstance(value, str):
        return None
    if value.isascii():
        return value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        # Lone surrogates from "\\udXXX" escapes: replace them rather than drop the value.
        return value.encode("utf-8", "replace").decode("utf-8")
    return value

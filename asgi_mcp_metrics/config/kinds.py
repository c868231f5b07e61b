"""Kinds of option values: how each is parsed from text and checked, and the error they raise."""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

MCP_PARSING_MODES = ("full", "request_body", "headers_only", "off")


class ConfigError(ValueError):
    """An option has an invalid value or an unknown name; ``location`` says where it came from."""

    def __init__(self, location: str, problem: str) -> None:
        super().__init__(f"{location}: {problem}")
        self.location = location
        self.problem = problem


_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
# RFC 9110 token: the characters allowed in HTTP method and header field names.
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_MEDIA_TYPE = re.compile(r"[!#$%&'*+.^_`|~0-9a-z-]+/[!#$%&'*+.^_`|~0-9a-z-]+")
_TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
_FALSE_WORDS = frozenset({"0", "false", "no", "off"})


class Rejected(Exception):
    """Raised by a kind's checks; ``expected`` overrides the kind's general description."""

    def __init__(self, expected: str | None = None) -> None:
        super().__init__(expected)
        self.expected = expected


@dataclass(frozen=True)
class Kind:
    """How values of one option are parsed from environment text and checked."""

    expected: str
    convert: Callable[[object], object]
    parse_text: Callable[[str], object] | None = None
    """None: the option cannot be set from files or the environment (Python objects only)."""


# --- kinds: one function per type ---------------------------------------------------------


def _is_name(text: str) -> bool:
    """A Prometheus metric/label name; ``__`` is reserved for Prometheus itself."""
    return _NAME.fullmatch(text) is not None and not text.startswith("__")


def _is_path(text: str) -> bool:
    return text.startswith("/") and "*" not in text


def _is_path_pattern(text: str) -> bool:
    return text.startswith("/") and "*" not in text[:-1]


def _is_identity(text: str) -> bool:
    if text in ("off", "user"):
        return True
    kind, _, header = text.partition(":")
    return kind == "header" and _TOKEN.fullmatch(header) is not None


def _split_list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def _string(expected: str, accept: Callable[[str], bool] = lambda text: True) -> Kind:
    def convert(value: object) -> str:
        if not isinstance(value, str) or not accept(value):
            raise Rejected
        return value

    return Kind(expected, convert, parse_text=lambda text: text)


def _optional_string(expected: str = "a non-empty string",
                     accept: Callable[[str], bool] = lambda text: True) -> Kind:
    def convert(value: object) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str) or not value or not accept(value):
            raise Rejected
        return value

    # An empty variable is how container environments spell "unset".
    return Kind(expected, convert, parse_text=lambda text: text or None)


def _integer(minimum: int) -> Kind:
    def convert(value: object) -> int:
        # bool is an int subclass; `max_identities = true` is a mistake, not 1.
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise Rejected
        return value

    def parse_text(text: str) -> int:
        try:
            return int(text.strip())
        except ValueError:
            raise Rejected from None

    expected = "an integer > 0" if minimum == 1 else f"an integer >= {minimum}"
    return Kind(expected, convert, parse_text)


def _as_number(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise Rejected
    number = float(value)
    if not math.isfinite(number):
        raise Rejected
    return number


def _parse_number(text: str) -> float:
    try:
        return float(text.strip())
    except ValueError:
        raise Rejected from None


def _seconds(*, positive: bool = False) -> Kind:
    def convert(value: object) -> float:
        number = _as_number(value)
        if number < 0 or (positive and number == 0):
            raise Rejected
        return number

    expected = "a finite number > 0" if positive else "a finite number >= 0"
    return Kind(expected, convert, _parse_number)


def _boolean() -> Kind:
    def convert(value: object) -> bool:
        if not isinstance(value, bool):
            raise Rejected
        return value

    def parse_text(text: str) -> bool:
        word = text.strip().lower()
        if word in _TRUE_WORDS:
            return True
        if word in _FALSE_WORDS:
            return False
        raise Rejected("one of 1/0, true/false, yes/no, on/off")

    return Kind("true or false", convert, parse_text)


def _as_list(value: object) -> Sequence[object]:
    # A bare string is a sequence too, but "/health" meant as a list is almost always a mistake.
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        raise Rejected
    return value


def _strings(
    item: str, accept: Callable[[str], bool], normalise: Callable[[str], str] = lambda s: s
) -> Kind:
    def convert(value: object) -> tuple[str, ...]:
        items: list[str] = []
        for entry in _as_list(value):
            if not isinstance(entry, str) or not accept(entry):
                raise Rejected
            items.append(normalise(entry))
        return tuple(items)

    return Kind(f"a list of {item}", convert, _split_list)


def _buckets() -> Kind:
    expected = "a non-empty list of finite positive numbers in strictly increasing order"

    def convert(value: object) -> tuple[float, ...]:
        bounds = tuple(_as_number(entry) for entry in _as_list(value))
        if not bounds or bounds[0] <= 0:
            raise Rejected
        if any(low >= high for low, high in itertools.pairwise(bounds)):
            raise Rejected
        return bounds

    def parse_text(text: str) -> list[float]:
        return [_parse_number(entry) for entry in _split_list(text)]

    return Kind(expected, convert, parse_text)


def _labels() -> Kind:
    expected = (
        "a table of label name to string value, names matching [a-zA-Z_][a-zA-Z0-9_]* "
        "and not starting with '__'"
    )

    def convert(value: object) -> Mapping[str, str]:
        if not isinstance(value, Mapping):
            raise Rejected
        for name, label_value in value.items():
            if not isinstance(name, str) or not _is_name(name) or not isinstance(label_value, str):
                raise Rejected
        return MappingProxyType(dict(value))

    def parse_text(text: str) -> dict[str, str]:
        pairs: dict[str, str] = {}
        for entry in _split_list(text):
            name, equals, label_value = entry.partition("=")
            name = name.strip()
            if not equals or name in pairs:
                raise Rejected("comma-separated name=value pairs with distinct names")
            pairs[name] = label_value.strip()
        return pairs

    return Kind(expected, convert, parse_text)


def _callable() -> Kind:
    def convert(value: object) -> object:
        if value is not None and not callable(value):
            raise Rejected
        return value

    return Kind("a callable or None", convert, parse_text=None)


NAMESPACE = _string(
    "empty or a name matching [a-zA-Z_][a-zA-Z0-9_]* and not starting with '__'",
    lambda text: text == "" or _is_name(text),
)
PATH = _string("a path starting with '/' and without '*'", _is_path)
PATH_PATTERNS = _strings("paths starting with '/' ('*' only at the end)", _is_path_pattern)
PATHS = _strings("paths starting with '/' and without '*'", _is_path)
METHODS = _strings("HTTP method names", lambda text: _TOKEN.fullmatch(text) is not None, str.upper)
MEDIA_TYPES = _strings(
    "media types such as 'text/event-stream'",
    lambda text: _MEDIA_TYPE.fullmatch(text.lower()) is not None,
    str.lower,
)
MCP_PARSING = _string(
    "one of " + ", ".join(repr(mode) for mode in MCP_PARSING_MODES),
    lambda text: text in MCP_PARSING_MODES,
)
IDENTITY = _string("'off', 'user' or 'header:<Header-Name>'", _is_identity)
NON_EMPTY_STRINGS = _strings("non-empty strings", bool)
LOGGER_NAME = _string("a non-empty logger name", bool)
ANY_STRING = _string("a string")
SECRET = _optional_string()
# A token has to survive a trip through an HTTP header unchanged.
BEARER_TOKEN = _optional_string("a non-empty string of printable ASCII without spaces",
                          lambda text: all("!" <= char <= "~" for char in text))
USERNAME = _optional_string("a non-empty string without ':'",
                             lambda text: ":" not in text)
BUCKETS = _buckets()
LABELS = _labels()
SECONDS = _seconds()
POSITIVE_SECONDS = _seconds(positive=True)
OPTIONAL_STRING = _optional_string()
OPTIONAL_PATH = _optional_string("a path starting with '/' and without '*'", _is_path)
POSITIVE = _integer(1)
COUNT = _integer(0)
BOOLEAN = _boolean()
CALLABLE = _callable()



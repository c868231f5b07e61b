"""One frozen ``Settings`` object, loaded from defaults, TOML, Django settings, env and kwargs.

Every option is declared once, as a dataclass field whose metadata holds its documentation and
its *kind* (how a value is parsed from text and checked). Validation, the environment variable
names and ``docs/configuration.md`` are all derived from those declarations, so adding an
option is one field.

Precedence, lowest to highest: built-in defaults < TOML file < Django ``settings.ASGI_MCP_METRICS``
< ``ASGI_MCP_METRICS_<OPTION>`` environment variables < keyword arguments. A higher layer replaces
a value as a whole (a ``constant_labels`` table is not merged key by key).

``Settings`` is hashable: ``constant_labels`` (a read-only ``MappingProxyType``) and the two
callables take part in equality but not in the hash, which keeps ``a == b`` implying
``hash(a) == hash(b)``.

Regenerate the documentation with ``python -m asgi_mcp_metrics.config --markdown``.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import itertools
import math
import os
import re
import sys
from collections.abc import Awaitable, Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeAlias

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

__all__ = [
    "CONFIG_FILE_ENV",
    "DEFAULT_OPERATION_DURATION_BUCKETS",
    "DEFAULT_REQUEST_DURATION_BUCKETS",
    "DEFAULT_STREAM_DURATION_BUCKETS",
    "ENV_PREFIX",
    "MCP_PARSING_MODES",
    "TOML_TABLE",
    "AuthCheck",
    "ConfigError",
    "IdentityResolver",
    "Settings",
    "render_markdown",
]

ENV_PREFIX = "ASGI_MCP_METRICS_"
CONFIG_FILE_ENV = "ASGI_MCP_METRICS_CONFIG"
TOML_TABLE = "tool.asgi_mcp_metrics"
MCP_PARSING_MODES = ("full", "request_body", "headers_only", "off")

DEFAULT_REQUEST_DURATION_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
)  # fmt: skip
# Streams and sessions live for minutes to a day; request-sized buckets would put them all in +Inf.
DEFAULT_STREAM_DURATION_BUCKETS = (
    1.0, 5.0, 15.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0, 86400.0,
)  # fmt: skip
DEFAULT_OPERATION_DURATION_BUCKETS = (
    0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
)  # fmt: skip

Scope: TypeAlias = MutableMapping[str, Any]
AuthCheck: TypeAlias = Callable[[Mapping[str, str]], bool | Awaitable[bool]]
"""Decides whether a scrape may read the metrics; gets the ASGI scope, may be async."""
IdentityResolver: TypeAlias = Callable[[Scope], str | None]
"""Maps an ASGI scope to the identity label value (None: no identity)."""

_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
# RFC 9110 token: the characters allowed in HTTP method and header field names.
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_MEDIA_TYPE = re.compile(r"[!#$%&'*+.^_`|~0-9a-z-]+/[!#$%&'*+.^_`|~0-9a-z-]+")
_TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
_FALSE_WORDS = frozenset({"0", "false", "no", "off"})


class ConfigError(ValueError):
    """An option has an invalid value or an unknown name; ``location`` says where it came from."""

    def __init__(self, location: str, problem: str) -> None:
        super().__init__(f"{location}: {problem}")
        self.location = location
        self.problem = problem


class _Rejected(Exception):
    """Raised by a kind's checks; ``expected`` overrides the kind's general description."""

    def __init__(self, expected: str | None = None) -> None:
        super().__init__(expected)
        self.expected = expected


@dataclass(frozen=True)
class _Kind:
    """How values of one option are parsed from environment text and checked."""

    expected: str
    convert: Callable[[object], object]
    parse_text: Callable[[str], object] | None = None
    """None: the option cannot be set from files or the environment (Python objects only)."""


@dataclass(frozen=True)
class _Source:
    """One configuration layer: how it names an option in messages."""

    spell: Callable[[str], str]
    locate: Callable[[str], str]
    textual: bool = False
    programmatic: bool = False


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


def _string(expected: str, accept: Callable[[str], bool] = lambda text: True) -> _Kind:
    def convert(value: object) -> str:
        if not isinstance(value, str) or not accept(value):
            raise _Rejected
        return value

    return _Kind(expected, convert, parse_text=lambda text: text)


def _optional_string(expected: str = "a non-empty string",
                     accept: Callable[[str], bool] = lambda text: True) -> _Kind:
    def convert(value: object) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str) or not value or not accept(value):
            raise _Rejected
        return value

    # An empty variable is how container environments spell "unset".
    return _Kind(expected, convert, parse_text=lambda text: text or None)


def _integer(minimum: int) -> _Kind:
    def convert(value: object) -> int:
        # bool is an int subclass; `max_identities = true` is a mistake, not 1.
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise _Rejected
        return value

    def parse_text(text: str) -> int:
        try:
            return int(text.strip())
        except ValueError:
            raise _Rejected from None

    expected = "an integer > 0" if minimum == 1 else f"an integer >= {minimum}"
    return _Kind(expected, convert, parse_text)


def _as_number(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _Rejected
    number = float(value)
    if not math.isfinite(number):
        raise _Rejected
    return number


def _parse_number(text: str) -> float:
    try:
        return float(text.strip())
    except ValueError:
        raise _Rejected from None


def _seconds(*, positive: bool = False) -> _Kind:
    def convert(value: object) -> float:
        number = _as_number(value)
        if number < 0 or (positive and number == 0):
            raise _Rejected
        return number

    expected = "a finite number > 0" if positive else "a finite number >= 0"
    return _Kind(expected, convert, _parse_number)


def _boolean() -> _Kind:
    def convert(value: object) -> bool:
        if not isinstance(value, bool):
            raise _Rejected
        return value

    def parse_text(text: str) -> bool:
        word = text.strip().lower()
        if word in _TRUE_WORDS:
            return True
        if word in _FALSE_WORDS:
            return False
        raise _Rejected("one of 1/0, true/false, yes/no, on/off")

    return _Kind("true or false", convert, parse_text)


def _as_list(value: object) -> Sequence[object]:
    # A bare string is a sequence too, but "/health" meant as a list is almost always a mistake.
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        raise _Rejected
    return value


def _strings(
    item: str, accept: Callable[[str], bool], normalise: Callable[[str], str] = lambda s: s
) -> _Kind:
    def convert(value: object) -> tuple[str, ...]:
        items: list[str] = []
        for entry in _as_list(value):
            if not isinstance(entry, str) or not accept(entry):
                raise _Rejected
            items.append(normalise(entry))
        return tuple(items)

    return _Kind(f"a list of {item}", convert, _split_list)


def _buckets() -> _Kind:
    expected = "a non-empty list of finite positive numbers in strictly increasing order"

    def convert(value: object) -> tuple[float, ...]:
        bounds = tuple(_as_number(entry) for entry in _as_list(value))
        if not bounds or bounds[0] <= 0:
            raise _Rejected
        if any(low >= high for low, high in itertools.pairwise(bounds)):
            raise _Rejected
        return bounds

    def parse_text(text: str) -> list[float]:
        return [_parse_number(entry) for entry in _split_list(text)]

    return _Kind(expected, convert, parse_text)


def _labels() -> _Kind:
    expected = (
        "a table of label name to string value, names matching [a-zA-Z_][a-zA-Z0-9_]* "
        "and not starting with '__'"
    )

    def convert(value: object) -> Mapping[str, str]:
        if not isinstance(value, Mapping):
            raise _Rejected
        for name, label_value in value.items():
            if not isinstance(name, str) or not _is_name(name) or not isinstance(label_value, str):
                raise _Rejected
        return MappingProxyType(dict(value))

    def parse_text(text: str) -> dict[str, str]:
        pairs: dict[str, str] = {}
        for entry in _split_list(text):
            name, equals, label_value = entry.partition("=")
            name = name.strip()
            if not equals or name in pairs:
                raise _Rejected("comma-separated name=value pairs with distinct names")
            pairs[name] = label_value.strip()
        return pairs

    return _Kind(expected, convert, parse_text)


def _callable() -> _Kind:
    def convert(value: object) -> object:
        if value is not None and not callable(value):
            raise _Rejected
        return value

    return _Kind("a callable or None", convert, parse_text=None)


_NO_LABELS: Mapping[str, str] = MappingProxyType({})
_KEYWORDS = _Source(
    spell=lambda key: key, locate=lambda key: f"{key} (keyword argument)", programmatic=True
)


def _meta(kind: _Kind, doc: str, *, secret: bool = False) -> dict[str, object]:
    """Field metadata; it drives validation, the environment variable names and the docs."""
    return {"doc": doc, "kind": kind, "secret": secret}


_NAMESPACE = _string(
    "empty or a name matching [a-zA-Z_][a-zA-Z0-9_]* and not starting with '__'",
    lambda text: text == "" or _is_name(text),
)
_PATH = _string("a path starting with '/' and without '*'", _is_path)
_PATH_PATTERNS = _strings("paths starting with '/' ('*' only at the end)", _is_path_pattern)
_PATHS = _strings("paths starting with '/' and without '*'", _is_path)
_METHODS = _strings("HTTP method names", lambda text: _TOKEN.fullmatch(text) is not None, str.upper)
_MEDIA_TYPES = _strings(
    "media types such as 'text/event-stream'",
    lambda text: _MEDIA_TYPE.fullmatch(text.lower()) is not None,
    str.lower,
)
_MCP_PARSING = _string(
    "one of " + ", ".join(repr(mode) for mode in MCP_PARSING_MODES),
    lambda text: text in MCP_PARSING_MODES,
)
_IDENTITY = _string("'off', 'user' or 'header:<Header-Name>'", _is_identity)
_NON_EMPTY_STRINGS = _strings("non-empty strings", bool)
_LOGGER_NAME = _string("a non-empty logger name", bool)
_ANY_STRING = _string("a string")
_SECRET = _optional_string()
# A token has to survive a trip through an HTTP header unchanged.
_BEARER_TOKEN = _optional_string("a non-empty string of printable ASCII without spaces",
                          lambda text: all("!" <= char <= "~" for char in text))
_USERNAME = _optional_string("a non-empty string without ':'",
                             lambda text: ":" not in text)
_BUCKETS = _buckets()
_LABELS = _labels()
_SECONDS = _seconds()
_POSITIVE_SECONDS = _seconds(positive=True)
_OPTIONAL_STRING = _optional_string()
_OPTIONAL_PATH = _optional_string("a path starting with '/' and without '*'", _is_path)
_POSITIVE = _integer(1)
_COUNT = _integer(0)
_BOOLEAN = _boolean()
_CALLABLE = _callable()


# --- the settings ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class Settings:
    """Every option of the library; build it with ``Settings.load()`` or ``Settings(...)``."""

    namespace: str = field(
        default="",
        metadata=_meta(
            _NAMESPACE, "Prefix for every metric name, as `<namespace>_<name>`. Empty: no prefix."
        ),
    )
    metrics_path: str = field(
        default="/metrics",
        metadata=_meta(
            _PATH, "Where the metrics endpoint is served. Always excluded from request metrics."
        ),
    )
    exclude_paths: tuple[str, ...] = field(
        default=(),
        metadata=_meta(
            _PATH_PATTERNS,
            "Extra paths that are not measured: exact match, or a prefix when it ends with `*`.",
        ),
    )
    exclude_methods: tuple[str, ...] = field(
        default=(),
        metadata=_meta(_METHODS, "HTTP methods that are not measured (upper-cased)."),
    )
    stream_content_types: tuple[str, ...] = field(
        default=("text/event-stream",),
        metadata=_meta(
            _MEDIA_TYPES,
            "Response media types counted as streams rather than requests (lower-cased).",
        ),
    )
    request_duration_buckets: tuple[float, ...] = field(
        default=DEFAULT_REQUEST_DURATION_BUCKETS,
        metadata=_meta(_BUCKETS, "Histogram buckets (seconds) for HTTP request duration."),
    )
    stream_duration_buckets: tuple[float, ...] = field(
        default=DEFAULT_STREAM_DURATION_BUCKETS,
        metadata=_meta(
            _BUCKETS, "Histogram buckets (seconds) for SSE / streaming response duration."
        ),
    )
    operation_duration_buckets: tuple[float, ...] = field(
        default=DEFAULT_OPERATION_DURATION_BUCKETS,
        metadata=_meta(_BUCKETS, "Histogram buckets (seconds) for MCP operations and tool calls."),
    )
    session_duration_buckets: tuple[float, ...] = field(
        default=DEFAULT_STREAM_DURATION_BUCKETS,
        metadata=_meta(_BUCKETS, "Histogram buckets (seconds) for MCP session duration."),
    )
    # A read-only mapping is unhashable, so it is compared but left out of the hash.
    constant_labels: Mapping[str, str] = field(
        default_factory=lambda: _NO_LABELS,
        hash=False,
        metadata=_meta(
            _LABELS,
            'Labels added to every series, e.g. `{"region": "eu"}`. A read-only mapping.',
        ),
    )
    mcp_parsing: str = field(
        default="full",
        metadata=_meta(
            _MCP_PARSING,
            "How much MCP traffic is parsed: `full`, `request_body`, `headers_only` or `off`.",
        ),
    )
    mcp_paths: tuple[str, ...] = field(
        default=(),
        metadata=_meta(_PATHS, "Pin the MCP endpoint paths. Empty: detected from the traffic."),
    )
    max_body_bytes: int = field(
        default=4 * 1024 * 1024,
        metadata=_meta(
            _POSITIVE,
            "Request-body bytes parsed at most per message; past it parsing stops and is counted.",
        ),
    )
    max_frame_bytes: int = field(
        default=4 * 1024 * 1024,
        metadata=_meta(_POSITIVE, "SSE line/frame or JSON response bytes parsed at most."),
    )
    session_idle_timeout_seconds: float = field(
        default=1800.0,
        metadata=_meta(
            _SECONDS,
            "A handshake-era session with no request in flight and no open stream for this long "
            "ends as `idle_timeout` (the mcp SDK's own default; 0: never).",
        ),
    )
    max_tool_names: int = field(
        default=200,
        metadata=_meta(
            _COUNT, "Distinct tool-name label values kept; further names become `_OTHER`."
        ),
    )
    max_label_values: int = field(
        default=100,
        metadata=_meta(
            _COUNT,
            "Cap for the other bounded labels (backend, rule, model, ...); overflow is `_OTHER`.",
        ),
    )
    identity: str = field(
        default="off",
        metadata=_meta(
            _IDENTITY,
            'Identity label source: `off`, `user` (`scope["user"]`) or `header:<Header-Name>`.',
        ),
    )
    identity_allowlist: tuple[str, ...] = field(
        default=(),
        metadata=_meta(
            _NON_EMPTY_STRINGS,
            "If non-empty, only these identities become label values; others are `_OTHER`.",
        ),
    )
    max_identities: int = field(
        default=50,
        metadata=_meta(
            _COUNT, "Distinct identity label values kept; further identities become `_OTHER`."
        ),
    )
    audit_log: bool = field(
        default=False,
        metadata=_meta(_BOOLEAN, "Write one JSON log line per tool call."),
    )
    audit_logger: str = field(
        default="asgi_mcp_metrics.audit",
        metadata=_meta(_LOGGER_NAME, "Name of the logger the audit lines go to."),
    )
    auth_bearer_token: str | None = field(
        default=None,
        metadata=_meta(
            _BEARER_TOKEN,
            "Bearer token required to read the metrics endpoint. Secret: never shown.",
            secret=True,
        ),
    )
    auth_basic_username: str | None = field(
        default=None,
        metadata=_meta(
            _USERNAME,
            "Basic-auth user name for the metrics endpoint; set together with the password.",
            secret=True,
        ),
    )
    auth_basic_password: str | None = field(
        default=None,
        metadata=_meta(
            _SECRET,
            "Basic-auth password for the metrics endpoint. Secret: never shown.",
            secret=True,
        ),
    )
    gzip: bool = field(
        default=True,
        metadata=_meta(_BOOLEAN, "Gzip the exposition when the client accepts it."),
    )
    reap_dead_workers: bool = field(
        default=True,
        metadata=_meta(
            _BOOLEAN,
            "With `PROMETHEUS_MULTIPROC_DIR`: at each scrape, drop workers that no longer run "
            "from the live gauges. Off when workers do not share the scraping worker's pid "
            "namespace.",
        ),
    )
    created_series: bool = field(
        default=False,
        metadata=_meta(
            _BOOLEAN,
            "Expose the `_created` samples (creation time) of counters, histograms and summaries. "
            "Off: the text format would store each as one more series.",
        ),
    )
    # --- operator surfaces (dashboard, in-flight, totals, health; docs/surfaces.md) -------
    surfaces: bool = field(
        default=True,
        metadata=_meta(
            _BOOLEAN,
            "Master switch of the operator surfaces served next to the metrics endpoint "
            "(dashboard, in-flight requests, totals, health).",
        ),
    )
    surfaces_ui: bool = field(
        default=True,
        metadata=_meta(_BOOLEAN, "Serve the live dashboard and its history API."),
    )
    surfaces_active: bool = field(
        default=True,
        metadata=_meta(
            _BOOLEAN, "Track requests in flight and serve them as JSON and as an SSE stream."
        ),
    )
    surfaces_totals: bool = field(
        default=True,
        metadata=_meta(_BOOLEAN, "Serve running totals by backend/tool and provider/model."),
    )
    surfaces_health: bool = field(
        default=False,
        metadata=_meta(_BOOLEAN, "Serve the deep health check at `health_path` (opt-in)."),
    )
    ui_path: str | None = field(
        default=None,
        metadata=_meta(_OPTIONAL_PATH, "Dashboard path. None: `<metrics_path>/ui`."),
    )
    active_path: str | None = field(
        default=None,
        metadata=_meta(
            _OPTIONAL_PATH,
            "In-flight snapshot path (the stream is `<active_path>/stream`). "
            "None: `<metrics_path>/active`.",
        ),
    )
    totals_path: str | None = field(
        default=None,
        metadata=_meta(_OPTIONAL_PATH, "Running totals path. None: `<metrics_path>/totals`."),
    )
    health_path: str = field(
        default="/health",
        metadata=_meta(_PATH, "Deep health check path (with `surfaces_health`)."),
    )
    health_min_backends: int = field(
        default=1,
        metadata=_meta(
            _COUNT, "Healthy backends needed for the health check to answer 200 (else 503)."
        ),
    )
    sse_interval: float = field(
        default=0.5,
        metadata=_meta(
            _POSITIVE_SECONDS, "How often (seconds) an SSE viewer checks for a change to push."
        ),
    )
    sse_heartbeat: float = field(
        default=15.0,
        metadata=_meta(
            _POSITIVE_SECONDS, "Seconds between `: heartbeat` comments on an idle SSE stream."
        ),
    )
    sse_max_viewers: int = field(
        default=20,
        metadata=_meta(
            _POSITIVE,
            "Concurrent SSE viewers allowed per registry; over it: 503 with Retry-After.",
        ),
    )
    history_seconds: int = field(
        default=3600,
        metadata=_meta(_POSITIVE, "Dashboard history kept at 1 s resolution (seconds)."),
    )
    history_minutes: int = field(
        default=1440,
        metadata=_meta(_POSITIVE, "Dashboard history kept at 1 min resolution (minutes)."),
    )
    history_path: str | None = field(
        default=None,
        metadata=_meta(
            _OPTIONAL_STRING,
            "SQLite file that keeps the dashboard history across restarts (None: memory only).",
        ),
    )
    # --- end of operator surfaces ---------------------------------------------------------
    render_offload_seconds: float = field(
        default=0.005,
        metadata=_meta(
            _SECONDS,
            "When a render took longer than this, later renders run in a worker thread "
            "(0: always).",
        ),
    )
    variant: str = field(
        default="",
        metadata=_meta(
            _ANY_STRING,
            "Deployment variant (e.g. `canary`, `production`) written into the build info.",
        ),
    )
    # Callables may be unhashable objects; like constant_labels they stay out of the hash.
    auth: AuthCheck | None = field(
        default=None,
        hash=False,
        metadata=_meta(
            _CALLABLE,
            "Callable deciding whether a scrape may read the metrics; gets the request headers "
            "(a mapping with lower-case names) and returns a bool (or an awaitable of one).",
            secret=True,
        ),
    )
    identity_resolver: IdentityResolver | None = field(
        default=None,
        hash=False,
        metadata=_meta(
            _CALLABLE,
            "Callable mapping the ASGI scope to an identity string (or None); used instead of "
            "`identity`.",
        ),
    )

    def __post_init__(self) -> None:
        # Direct construction and replace() get the same checks as load(); values are also
        # normalised here (lists to tuples, dicts to read-only mappings).
        for option in dataclasses.fields(self):
            value = _convert(option.name, getattr(self, option.name), _KEYWORDS)
            object.__setattr__(self, option.name, value)
        _check_combinations(_values(self), lambda key: _KEYWORDS)

    def __repr__(self) -> str:
        shown: list[str] = []
        for option in dataclasses.fields(self):
            value = getattr(self, option.name)
            if option.metadata["secret"] and value is not None:
                shown.append(f"{option.name}='***'")
            else:
                shown.append(f"{option.name}={value!r}")
        return f"{type(self).__name__}({', '.join(shown)})"

    def replace(self, **changes: Any) -> Settings:
        """A copy with ``changes`` applied, checked like keyword arguments to ``load()``."""
        _reject_unknown(changes, _KEYWORDS)
        return dataclasses.replace(self, **changes)

    @classmethod
    def load(
        cls,
        *,
        overrides: Mapping[str, Any] | None = None,
        django: Mapping[str, Any] | None = None,
        environ: Mapping[str, str] | None = None,
        toml_path: str | os.PathLike[str] | None = None,
        search_dir: str | os.PathLike[str] | None = None,
    ) -> Settings:
        """Merge every configuration layer; raise ``ConfigError`` naming the first bad key.

        ``environ`` defaults to ``os.environ``. The TOML file is ``toml_path``, else the file
        named by ``ASGI_MCP_METRICS_CONFIG``, else ``pyproject.toml`` in ``search_dir`` (default:
        the current directory) when it has a ``[tool.asgi_mcp_metrics]`` table.
        """
        environ = os.environ if environ is None else environ
        layers: list[tuple[_Source, Mapping[str, object]]] = []
        toml_layer = _toml_layer(toml_path, environ, search_dir)
        if toml_layer is not None:
            layers.append(toml_layer)
        if django is not None:
            layers.append(_django_layer(django))
        layers.append(_environment_layer(environ))
        if overrides is not None:
            layers.append((_KEYWORDS, overrides))

        merged: dict[str, Any] = {}
        origin: dict[str, _Source] = {}
        for source, values in layers:
            _reject_unknown(values, source)
            for key, raw in values.items():
                merged[key] = _convert(key, raw, source)
                origin[key] = source
        _check_combinations(merged, lambda key: origin.get(key, _KEYWORDS))
        return cls(**merged)


def _values(settings: Settings) -> dict[str, object]:
    """The options of ``settings`` as a plain dict (slotted classes have no ``__dict__``)."""
    return {option.name: getattr(settings, option.name) for option in dataclasses.fields(settings)}


# --- validation -------------------------------------------------------------------------------

_FIELDS = {option.name: option for option in dataclasses.fields(Settings)}
_FILE_OPTIONS = tuple(
    name for name, option in _FIELDS.items() if option.metadata["kind"].parse_text is not None
)


def _convert(key: str, raw: object, source: _Source) -> object:
    option = _FIELDS[key]
    kind: _Kind = option.metadata["kind"]
    try:
        if source.textual:
            if kind.parse_text is None or not isinstance(raw, str):
                raise _Rejected
            return kind.convert(kind.parse_text(raw))
        return kind.convert(raw)
    except _Rejected as rejected:
        expected = rejected.expected or kind.expected
        shown = "a value that is not shown (secret)" if option.metadata["secret"] else repr(raw)
        raise ConfigError(source.locate(key), f"expected {expected}, got {shown}") from None


def _reject_unknown(values: Mapping[str, object], source: _Source) -> None:
    allowed = tuple(_FIELDS) if source.programmatic else _FILE_OPTIONS
    for key in values:
        if not isinstance(key, str):
            raise ConfigError(source.locate(str(key)), f"option names must be strings, got {key!r}")
        if key in allowed:
            continue
        if key in _FIELDS:
            raise ConfigError(
                source.locate(key), "holds a Python object; pass it as a keyword argument"
            )
        problem = "unknown option"
        close = difflib.get_close_matches(key, allowed, n=1)
        if close:
            problem += f"; did you mean {source.spell(close[0])!r}?"
        raise ConfigError(source.locate(key), problem)


def _check_combinations(values: Mapping[str, object], origin: Callable[[str], _Source]) -> None:
    username = values.get("auth_basic_username")
    password = values.get("auth_basic_password")
    if (username is None) != (password is None):
        given, missing = (
            ("auth_basic_username", "auth_basic_password")
            if username is not None
            else ("auth_basic_password", "auth_basic_username")
        )
        raise ConfigError(
            origin(given).locate(given),
            f"basic auth needs both {given} and {missing}; {missing} is not set",
        )


# --- layers -----------------------------------------------------------------------------------


def _environment_layer(environ: Mapping[str, str]) -> tuple[_Source, Mapping[str, object]]:
    variables = {
        name[len(ENV_PREFIX) :].lower(): name
        for name in environ
        if name.startswith(ENV_PREFIX) and name != CONFIG_FILE_ENV
    }
    source = _Source(
        spell=lambda key: ENV_PREFIX + key.upper(),
        locate=lambda key: f"{variables.get(key, ENV_PREFIX + key.upper())} (environment)",
        textual=True,
    )
    return source, {key: environ[name] for key, name in variables.items()}


def _django_layer(django: object) -> tuple[_Source, Mapping[str, object]]:
    source = _Source(
        spell=lambda key: key,
        locate=lambda key: f"ASGI_MCP_METRICS[{key!r}] (Django settings)",
    )
    if not isinstance(django, Mapping):
        raise ConfigError(
            "ASGI_MCP_METRICS (Django settings)", f"expected a dict, got {type(django).__name__}"
        )
    return source, django


def _toml_layer(
    toml_path: str | os.PathLike[str] | None,
    environ: Mapping[str, str],
    search_dir: str | os.PathLike[str] | None,
) -> tuple[_Source, Mapping[str, object]] | None:
    if toml_path is not None or environ.get(CONFIG_FILE_ENV):
        path = Path(toml_path if toml_path is not None else environ[CONFIG_FILE_ENV])
        document = _read_toml(path)
        table = _tool_table(path, document)
        return _toml_source(path, nested=table is not None), document if table is None else table

    path = Path(search_dir if search_dir is not None else ".") / "pyproject.toml"
    if not path.is_file():
        return None
    table = _tool_table(path, _read_toml(path))
    return None if table is None else (_toml_source(path, nested=True), table)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as file:
            return tomllib.load(file)
    except OSError as error:
        raise ConfigError(str(path), f"cannot read the file: {error.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(str(path), f"invalid TOML: {error}") from None


def _tool_table(path: Path, document: Mapping[str, Any]) -> Mapping[str, object] | None:
    tool = document.get("tool")
    if not isinstance(tool, Mapping) or "asgi_mcp_metrics" not in tool:
        return None
    table = tool["asgi_mcp_metrics"]
    if not isinstance(table, Mapping):
        raise ConfigError(f"{path} [{TOML_TABLE}]", "expected a table")
    return table


def _toml_source(path: Path, *, nested: bool) -> _Source:
    prefix = f"{path} [{TOML_TABLE}] " if nested else f"{path} "
    return _Source(spell=lambda key: key, locate=lambda key: prefix + key)


# --- documentation ----------------------------------------------------------------------------

EXAMPLE_KWARGS = """\
from asgi_mcp_metrics.config import Settings

settings = Settings.load(
    overrides={
        "namespace": "gateway",
        "exclude_paths": ("/health", "/static/*"),
        "constant_labels": {"region": "eu"},
        "max_tool_names": 500,
        "audit_log": True,
        "request_duration_buckets": (0.01, 0.1, 1.0, 10.0),
    }
)
"""

EXAMPLE_ENV = """\
export ASGI_MCP_METRICS_NAMESPACE=gateway
export ASGI_MCP_METRICS_EXCLUDE_PATHS='/health,/static/*'
export ASGI_MCP_METRICS_CONSTANT_LABELS='region=eu'
export ASGI_MCP_METRICS_MAX_TOOL_NAMES=500
export ASGI_MCP_METRICS_AUDIT_LOG=true
export ASGI_MCP_METRICS_REQUEST_DURATION_BUCKETS='0.01,0.1,1,10'
"""

EXAMPLE_PYPROJECT = """\
[tool.asgi_mcp_metrics]
namespace = "gateway"
exclude_paths = ["/health", "/static/*"]
constant_labels = { region = "eu" }
max_tool_names = 500
audit_log = true
request_duration_buckets = [0.01, 0.1, 1, 10]
"""

EXAMPLE_DJANGO = """\
ASGI_MCP_METRICS = {
    "namespace": "gateway",
    "exclude_paths": ["/health", "/static/*"],
    "constant_labels": {"region": "eu"},
    "max_tool_names": 500,
    "audit_log": True,
    "request_duration_buckets": [0.01, 0.1, 1, 10],
}
"""


def _show_default(value: object) -> str:
    if isinstance(value, str):
        return '`"' + value + '"`'
    if isinstance(value, float):
        return f"`{value:g}`"
    if isinstance(value, tuple):
        shown = [f"{item:g}" if isinstance(item, float) else f'"{item}"' for item in value]
        return "`(" + ", ".join(shown) + ("," if len(shown) == 1 else "") + ")`"
    if isinstance(value, Mapping):
        return "`{}`" if not value else f"`{dict(value)!r}`"
    return f"`{value!r}`"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render_markdown() -> str:
    """The text of ``docs/configuration.md``, generated from the ``Settings`` fields."""
    defaults = Settings()
    rows = [
        "| option | type | default | environment variable | description |",
        "|---|---|---|---|---|",
    ]
    for name, option in _FIELDS.items():
        env = f"`{ENV_PREFIX}{name.upper()}`" if name in _FILE_OPTIONS else "keyword only"
        default = getattr(defaults, name)
        rows.append(
            f"| `{name}` | `{_cell(str(option.type))}` | {_cell(_show_default(default))} "
            f"| {env} | {_cell(option.metadata['doc'])} |"
        )
    sections = [
        "# Configuration",
        "<!-- Generated by `python -m asgi_mcp_metrics.config --markdown`; do not edit. -->",
        "Every option lives in one frozen `asgi_mcp_metrics.config.Settings` object. The same "
        "names are the keyword arguments of `MetricsMiddleware`, `MetricsEndpoint` and "
        "`instrument()`. An invalid value or an unknown name raises `ConfigError` at start-up; "
        "its message names the source and the key, and never shows a secret.",
        "## Options",
        "\n".join(rows),
        "`auth` and `identity_resolver` are Python callables and can only be passed as keyword "
        "arguments: `AuthCheck` is `Callable[[scope], bool | Awaitable[bool]]` and "
        "`IdentityResolver` is `Callable[[scope], str | None]`, where `scope` is the ASGI scope. "
        "`Settings` is hashable; `constant_labels`, `auth` and `identity_resolver` are left out "
        "of the hash but not out of equality.",
        "## Precedence",
        "From lowest to highest; a higher layer replaces a value as a whole (a "
        "`constant_labels` table is not merged key by key), and options set in different layers "
        "combine:\n\n"
        "1. built-in defaults (the table above);\n"
        "2. a TOML file: the file named by `ASGI_MCP_METRICS_CONFIG` (either the options at its "
        "top level, or a `[tool.asgi_mcp_metrics]` table, which then is the only part read), "
        "else `pyproject.toml` in the current directory when it has a "
        "`[tool.asgi_mcp_metrics]` table (`Settings.load(toml_path=..., search_dir=...)` "
        "chooses another file or directory);\n"
        "3. Django `settings.ASGI_MCP_METRICS` (a dict);\n"
        "4. environment variables `ASGI_MCP_METRICS_<OPTION>`;\n"
        "5. keyword arguments.\n\n"
        "Unknown option names are errors in every layer, including any variable starting with "
        "`ASGI_MCP_METRICS_` other than `ASGI_MCP_METRICS_CONFIG`.",
        "## Environment variable values",
        "- booleans: `1`/`0`, `true`/`false`, `yes`/`no`, `on`/`off`, any case;\n"
        "- lists and buckets: comma-separated, e.g. `/health,/static/*` or `0.1,1,10`;\n"
        "- `constant_labels`: comma-separated `name=value` pairs, e.g. `region=eu,tier=gold`;\n"
        "- `auth_*`: an empty value means unset.",
        "## Examples",
        "Keyword arguments:\n\n```python\n" + EXAMPLE_KWARGS + "```",
        "Environment:\n\n```sh\n" + EXAMPLE_ENV + "```",
        "`pyproject.toml` (or a file named by `ASGI_MCP_METRICS_CONFIG`):\n\n```toml\n"
        + EXAMPLE_PYPROJECT
        + "```",
        "Django `settings.py`:\n\n```python\n" + EXAMPLE_DJANGO + "```",
    ]
    return "\n\n".join(sections) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m asgi_mcp_metrics.config")
    parser.add_argument(
        "--markdown", action="store_true", help="print docs/configuration.md to standard output"
    )
    arguments = parser.parse_args(argv)
    if not arguments.markdown:
        parser.print_usage(sys.stderr)
        return 2
    sys.stdout.write(render_markdown())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

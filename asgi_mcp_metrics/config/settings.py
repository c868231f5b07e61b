"""The ``Settings`` object: every option declared once, checked, merged from every layer.

Every option is a dataclass field whose metadata holds its documentation and its *kind* (how a
value is parsed from text and checked). Validation, the environment variable names and
``docs/configuration.md`` are all derived from those declarations, so adding an option is one
field. Default buckets are the catalog's.

Precedence, lowest to highest: built-in defaults < TOML file < Django ``settings.ASGI_MCP_METRICS``
< ``ASGI_MCP_METRICS_<OPTION>`` environment variables < keyword arguments. A higher layer replaces
a value as a whole (a ``constant_labels`` table is not merged key by key).

``Settings`` is hashable: ``constant_labels`` (a read-only ``MappingProxyType``) and the two
callables take part in equality but not in the hash, which keeps ``a == b`` implying
``hash(a) == hash(b)``.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, TypeAlias

from ..catalog import default_buckets
from .kinds import (
    ANY_STRING,
    BEARER_TOKEN,
    BOOLEAN,
    BUCKETS,
    CALLABLE,
    COUNT,
    IDENTITY,
    LABELS,
    LOGGER_NAME,
    MCP_PARSING,
    MEDIA_TYPES,
    METHODS,
    NAMESPACE,
    NON_EMPTY_STRINGS,
    OPTIONAL_PATH,
    OPTIONAL_STRING,
    OTLP_ENDPOINT,
    OTLP_PROTOCOL,
    PATH,
    PATH_PATTERNS,
    PATHS,
    POSITIVE,
    POSITIVE_SECONDS,
    SECONDS,
    SECRET,
    USERNAME,
    ConfigError,
    Kind,
    Rejected,
)
from .sources import KEYWORDS, Source, django_layer, environment_layer, toml_layer

Scope: TypeAlias = MutableMapping[str, Any]
AuthCheck: TypeAlias = Callable[[Mapping[str, str]], bool | Awaitable[bool]]
"""Decides whether a scrape may read the metrics; gets the request headers (lower-case names),
may be async."""
IdentityResolver: TypeAlias = Callable[[Scope], str | None]
"""Maps an ASGI scope to the identity label value (None: no identity)."""

_NO_LABELS: Mapping[str, str] = MappingProxyType({})


def _meta(kind: Kind, doc: str, *, secret: bool = False) -> dict[str, object]:
    """Field metadata; it drives validation, the environment variable names and the docs."""
    return {"doc": doc, "kind": kind, "secret": secret}



@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class Settings:
    """Every option of the library; build it with ``Settings.load()`` or ``Settings(...)``."""

    namespace: str = field(
        default="",
        metadata=_meta(
            NAMESPACE, "Prefix for every metric name, as `<namespace>_<name>`. Empty: no prefix."
        ),
    )
    metrics_path: str = field(
        default="/metrics",
        metadata=_meta(
            PATH, "Where the metrics endpoint is served. Always excluded from request metrics."
        ),
    )
    exclude_paths: tuple[str, ...] = field(
        default=(),
        metadata=_meta(
            PATH_PATTERNS,
            "Extra paths that are not measured: exact match, or a prefix when it ends with `*`.",
        ),
    )
    exclude_methods: tuple[str, ...] = field(
        default=(),
        metadata=_meta(METHODS, "HTTP methods that are not measured (upper-cased)."),
    )
    stream_content_types: tuple[str, ...] = field(
        default=("text/event-stream",),
        metadata=_meta(
            MEDIA_TYPES,
            "Response media types counted as streams rather than requests (lower-cased).",
        ),
    )
    request_duration_buckets: tuple[float, ...] = field(
        default=default_buckets("request_duration_buckets"),
        metadata=_meta(BUCKETS, "Histogram buckets (seconds) for HTTP request duration."),
    )
    stream_duration_buckets: tuple[float, ...] = field(
        default=default_buckets("stream_duration_buckets"),
        metadata=_meta(
            BUCKETS, "Histogram buckets (seconds) for SSE / streaming response duration."
        ),
    )
    operation_duration_buckets: tuple[float, ...] = field(
        default=default_buckets("operation_duration_buckets"),
        metadata=_meta(BUCKETS, "Histogram buckets (seconds) for MCP operations and tool calls."),
    )
    session_duration_buckets: tuple[float, ...] = field(
        default=default_buckets("session_duration_buckets"),
        metadata=_meta(BUCKETS, "Histogram buckets (seconds) for MCP session duration."),
    )
    # A read-only mapping is unhashable, so it is compared but left out of the hash.
    constant_labels: Mapping[str, str] = field(
        default_factory=lambda: _NO_LABELS,
        hash=False,
        metadata=_meta(
            LABELS,
            'Labels added to every series, e.g. `{"region": "eu"}`. A read-only mapping.',
        ),
    )
    mcp_parsing: str = field(
        default="full",
        metadata=_meta(
            MCP_PARSING,
            "How much MCP traffic is parsed: `full`, `request_body`, `headers_only` or `off`.",
        ),
    )
    mcp_paths: tuple[str, ...] = field(
        default=(),
        metadata=_meta(PATHS, "Pin the MCP endpoint paths. Empty: detected from the traffic."),
    )
    max_body_bytes: int = field(
        default=4 * 1024 * 1024,
        metadata=_meta(
            POSITIVE,
            "Request-body bytes parsed at most per message; past it parsing stops and is counted.",
        ),
    )
    max_frame_bytes: int = field(
        default=4 * 1024 * 1024,
        metadata=_meta(POSITIVE, "SSE line/frame or JSON response bytes parsed at most."),
    )
    session_idle_timeout_seconds: float = field(
        default=1800.0,
        metadata=_meta(
            SECONDS,
            "A handshake-era session with no request in flight and no open stream for this long "
            "ends as `idle_timeout` (the mcp SDK's own default; 0: never).",
        ),
    )
    max_tool_names: int = field(
        default=200,
        metadata=_meta(
            COUNT, "Distinct tool-name label values kept; further names become `_OTHER`."
        ),
    )
    max_label_values: int = field(
        default=100,
        metadata=_meta(
            COUNT,
            "Cap for the other bounded labels (backend, rule, model, ...); overflow is `_OTHER`.",
        ),
    )
    identity: str = field(
        default="off",
        metadata=_meta(
            IDENTITY,
            'Identity label source: `off`, `user` (`scope["user"]`) or `header:<Header-Name>`.',
        ),
    )
    identity_allowlist: tuple[str, ...] = field(
        default=(),
        metadata=_meta(
            NON_EMPTY_STRINGS,
            "If non-empty, only these identities become label values; others are `_OTHER`.",
        ),
    )
    max_identities: int = field(
        default=50,
        metadata=_meta(
            COUNT, "Distinct identity label values kept; further identities become `_OTHER`."
        ),
    )
    audit_log: bool = field(
        default=False,
        metadata=_meta(BOOLEAN, "Write one JSON log line per tool call."),
    )
    audit_logger: str = field(
        default="asgi_mcp_metrics.audit",
        metadata=_meta(LOGGER_NAME, "Name of the logger the audit lines go to."),
    )
    auth_bearer_token: str | None = field(
        default=None,
        metadata=_meta(
            BEARER_TOKEN,
            "Bearer token required to read the metrics endpoint. Secret: never shown.",
            secret=True,
        ),
    )
    auth_basic_username: str | None = field(
        default=None,
        metadata=_meta(
            USERNAME,
            "Basic-auth user name for the metrics endpoint; set together with the password.",
            secret=True,
        ),
    )
    auth_basic_password: str | None = field(
        default=None,
        metadata=_meta(
            SECRET,
            "Basic-auth password for the metrics endpoint. Secret: never shown.",
            secret=True,
        ),
    )
    gzip: bool = field(
        default=True,
        metadata=_meta(BOOLEAN, "Gzip the exposition when the client accepts it."),
    )
    reap_dead_workers: bool = field(
        default=True,
        metadata=_meta(
            BOOLEAN,
            "With `PROMETHEUS_MULTIPROC_DIR`: at each scrape, drop workers that no longer run "
            "from the live gauges. Off when workers do not share the scraping worker's pid "
            "namespace.",
        ),
    )
    created_series: bool = field(
        default=False,
        metadata=_meta(
            BOOLEAN,
            "Expose the `_created` samples (creation time) of counters, histograms and summaries. "
            "Off: the text format would store each as one more series.",
        ),
    )
    # --- operator surfaces (dashboard, in-flight, totals, health; docs/surfaces.md) -------
    surfaces: bool = field(
        default=True,
        metadata=_meta(
            BOOLEAN,
            "Master switch of the operator surfaces served next to the metrics endpoint "
            "(dashboard, in-flight requests, totals, health).",
        ),
    )
    surfaces_ui: bool = field(
        default=True,
        metadata=_meta(BOOLEAN, "Serve the live dashboard and its history API."),
    )
    surfaces_active: bool = field(
        default=True,
        metadata=_meta(
            BOOLEAN, "Track requests in flight and serve them as JSON and as an SSE stream."
        ),
    )
    surfaces_totals: bool = field(
        default=True,
        metadata=_meta(BOOLEAN, "Serve running totals by backend/tool and provider/model."),
    )
    surfaces_health: bool = field(
        default=False,
        metadata=_meta(BOOLEAN, "Serve the deep health check at `health_path` (opt-in)."),
    )
    ui_path: str | None = field(
        default=None,
        metadata=_meta(OPTIONAL_PATH, "Dashboard path. None: `<metrics_path>/ui`."),
    )
    active_path: str | None = field(
        default=None,
        metadata=_meta(
            OPTIONAL_PATH,
            "In-flight snapshot path (the stream is `<active_path>/stream`). "
            "None: `<metrics_path>/active`.",
        ),
    )
    totals_path: str | None = field(
        default=None,
        metadata=_meta(OPTIONAL_PATH, "Running totals path. None: `<metrics_path>/totals`."),
    )
    health_path: str = field(
        default="/health",
        metadata=_meta(PATH, "Deep health check path (with `surfaces_health`)."),
    )
    health_min_backends: int = field(
        default=1,
        metadata=_meta(
            COUNT, "Healthy backends needed for the health check to answer 200 (else 503)."
        ),
    )
    sse_interval: float = field(
        default=0.5,
        metadata=_meta(
            POSITIVE_SECONDS, "How often (seconds) an SSE viewer checks for a change to push."
        ),
    )
    sse_heartbeat: float = field(
        default=15.0,
        metadata=_meta(
            POSITIVE_SECONDS, "Seconds between `: heartbeat` comments on an idle SSE stream."
        ),
    )
    sse_max_viewers: int = field(
        default=20,
        metadata=_meta(
            POSITIVE,
            "Concurrent SSE viewers allowed per registry; over it: 503 with Retry-After.",
        ),
    )
    history_seconds: int = field(
        default=3600,
        metadata=_meta(POSITIVE, "Dashboard history kept at 1 s resolution (seconds)."),
    )
    history_minutes: int = field(
        default=1440,
        metadata=_meta(POSITIVE, "Dashboard history kept at 1 min resolution (minutes)."),
    )
    history_path: str | None = field(
        default=None,
        metadata=_meta(
            OPTIONAL_STRING,
            "SQLite file that keeps the dashboard history across restarts (None: memory only).",
        ),
    )
    # --- end of operator surfaces ---------------------------------------------------------
    render_offload_seconds: float = field(
        default=0.001,
        metadata=_meta(
            SECONDS,
            "When encoding a scrape took more CPU time than this, later ones are encoded in "
            "a thread of their own, at a lower priority on Linux, in slices that let the "
            "event loop run between them (0: always). Bodies over 64 KiB are gzip-compressed "
            "in that thread either way.",
        ),
    )
    variant: str = field(
        default="",
        metadata=_meta(
            ANY_STRING,
            "Deployment variant (e.g. `canary`, `production`) written into the build info.",
        ),
    )
    # -- OpenTelemetry: OTLP export and exemplars ----------------------------------------------
    otlp_endpoint: str = field(
        default="",
        metadata=_meta(
            OTLP_ENDPOINT,
            "Export the metrics over OTLP to this collector URL (e.g. `http://collector:4318`; "
            "for `http/protobuf` a URL without a path gets `/v1/metrics`). Empty: no export, "
            "and nothing of OpenTelemetry is imported. Needs the `otlp` extra.",
        ),
    )
    otlp_protocol: str = field(
        default="http/protobuf",
        metadata=_meta(OTLP_PROTOCOL, "OTLP transport: `http/protobuf` or `grpc`."),
    )
    otlp_interval_seconds: float = field(
        default=60.0,
        metadata=_meta(
            POSITIVE_SECONDS, "Seconds between two OTLP exports (cumulative temporality)."
        ),
    )
    exemplars: bool = field(
        default=False,
        metadata=_meta(
            BOOLEAN,
            "Attach the request's trace id (W3C `traceparent`, or the current OpenTelemetry "
            "span) as an OpenMetrics exemplar to the HTTP request, MCP operation and tool call "
            "duration histograms. Not in multiprocess mode.",
        ),
    )
    # Callables may be unhashable objects; like constant_labels they stay out of the hash.
    auth: AuthCheck | None = field(
        default=None,
        hash=False,
        metadata=_meta(
            CALLABLE,
            "Callable deciding whether a scrape may read the metrics; gets the request headers "
            "(a mapping with lower-case names) and returns a bool (or an awaitable of one).",
            secret=True,
        ),
    )
    identity_resolver: IdentityResolver | None = field(
        default=None,
        hash=False,
        metadata=_meta(
            CALLABLE,
            "Callable mapping the ASGI scope to an identity string (or None); used instead of "
            "`identity`.",
        ),
    )

    def __post_init__(self) -> None:
        # Direct construction and replace() get the same checks as load(); values are also
        # normalised here (lists to tuples, dicts to read-only mappings).
        for option in dataclasses.fields(self):
            value = convert_option(option.name, getattr(self, option.name), KEYWORDS)
            object.__setattr__(self, option.name, value)
        check_combinations(values_of(self), lambda key: KEYWORDS)

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
        reject_unknown(changes, KEYWORDS)
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
        return load_configured(overrides=overrides, django=django, environ=environ,
                               toml_path=toml_path, search_dir=search_dir).settings


@dataclass(frozen=True)
class Configured:
    """A ``Settings`` and where each option that is not at its default came from."""

    settings: Settings
    origins: Mapping[str, str] = field(default_factory=dict)

    def origin(self, option: str) -> str:
        """``"constant_labels (keyword argument)"``, ``"ASGI_MCP_METRICS_… (environment)"``..."""
        return self.origins.get(option, f"{option} (default)")


def load_configured(
    *,
    overrides: Mapping[str, Any] | None = None,
    django: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    toml_path: str | os.PathLike[str] | None = None,
    search_dir: str | os.PathLike[str] | None = None,
) -> Configured:
    """``Settings.load()``, remembering which layer set each option."""
    environ = os.environ if environ is None else environ
    layers: list[tuple[Source, Mapping[str, object]]] = []
    from_file = toml_layer(toml_path, environ, search_dir)
    if from_file is not None:
        layers.append(from_file)
    if django is not None:
        layers.append(django_layer(django))
    layers.append(environment_layer(environ))
    if overrides is not None:
        layers.append((KEYWORDS, overrides))

    merged: dict[str, Any] = {}
    origin: dict[str, Source] = {}
    for source, values in layers:
        reject_unknown(values, source)
        for key, raw in values.items():
            merged[key] = convert_option(key, raw, source)
            origin[key] = source
    check_combinations(merged, lambda key: origin.get(key, KEYWORDS))
    return Configured(Settings(**merged),
                      {key: source.locate(key) for key, source in origin.items()})


def values_of(settings: Settings) -> dict[str, object]:
    """The options of ``settings`` as a plain dict (slotted classes have no ``__dict__``)."""
    return {option.name: getattr(settings, option.name) for option in dataclasses.fields(settings)}


FIELDS = {option.name: option for option in dataclasses.fields(Settings)}
FILE_OPTIONS = tuple(
    name for name, option in FIELDS.items() if option.metadata["kind"].parse_text is not None
)


def convert_option(key: str, raw: object, source: Source) -> object:
    option = FIELDS[key]
    kind: Kind = option.metadata["kind"]
    try:
        if source.textual:
            if kind.parse_text is None or not isinstance(raw, str):
                raise Rejected
            return kind.convert(kind.parse_text(raw))
        return kind.convert(raw)
    except Rejected as rejected:
        expected = rejected.expected or kind.expected
        shown = "a value that is not shown (secret)" if option.metadata["secret"] else repr(raw)
        raise ConfigError(source.locate(key), f"expected {expected}, got {shown}") from None


def reject_unknown(values: Mapping[str, object], source: Source) -> None:
    allowed = tuple(FIELDS) if source.programmatic else FILE_OPTIONS
    for key in values:
        if not isinstance(key, str):
            raise ConfigError(source.locate(str(key)), f"option names must be strings, got {key!r}")
        if key in allowed:
            continue
        if key in FIELDS:
            raise ConfigError(
                source.locate(key), "holds a Python object; pass it as a keyword argument"
            )
        problem = "unknown option"
        close = difflib.get_close_matches(key, allowed, n=1)
        if close:
            problem += f"; did you mean {source.spell(close[0])!r}?"
        raise ConfigError(source.locate(key), problem)


def check_combinations(values: Mapping[str, object], origin: Callable[[str], Source]) -> None:
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

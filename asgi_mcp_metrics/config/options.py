"""The options each public constructor takes, typed, and the one helper that reads them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypedDict

from .settings import FIELDS, AuthCheck, Configured, IdentityResolver, Settings, load_configured


class ShapeOptions(TypedDict, total=False):
    """How the metrics look; every configuration of one registry must agree on these."""

    namespace: str
    constant_labels: Mapping[str, str]
    request_duration_buckets: Sequence[float]
    stream_duration_buckets: Sequence[float]
    operation_duration_buckets: Sequence[float]
    session_duration_buckets: Sequence[float]
    max_tool_names: int
    max_label_values: int
    identity_allowlist: Sequence[str]
    max_identities: int


class IdentityOptions(TypedDict, total=False):
    identity: str
    identity_resolver: IdentityResolver | None


class ServerOptions(ShapeOptions, IdentityOptions, total=False):
    """``MetricsServerMiddleware``: the binding and the identity of a call."""


class SurfaceOptions(TypedDict, total=False):
    """The operator surfaces (``docs/surfaces.md``): which are on, where, and how they stream.
    The middleware reads the switches and paths too (it keeps the in-flight table and leaves
    the surfaces' paths unmeasured)."""

    surfaces: bool
    surfaces_ui: bool
    surfaces_active: bool
    surfaces_totals: bool
    surfaces_health: bool
    ui_path: str | None
    active_path: str | None
    totals_path: str | None
    health_path: str
    health_min_backends: int
    sse_interval: float
    sse_heartbeat: float
    sse_max_viewers: int
    history_seconds: int
    history_minutes: int
    history_path: str | None


class MiddlewareOptions(ServerOptions, SurfaceOptions, total=False):
    """``MetricsMiddleware``: what is measured, and the binding the app's code records into."""

    metrics_path: str
    exclude_paths: Sequence[str]
    exclude_methods: Sequence[str]
    stream_content_types: Sequence[str]
    mcp_parsing: str
    mcp_paths: Sequence[str]
    max_body_bytes: int
    max_frame_bytes: int
    session_idle_timeout_seconds: float
    audit_log: bool
    audit_logger: str
    variant: str


class EndpointOptions(TypedDict, total=False):
    """``MetricsEndpoint``: who may scrape, and how the exposition is sent."""

    auth_bearer_token: str | None
    auth_basic_username: str | None
    auth_basic_password: str | None
    auth: AuthCheck | None
    gzip: bool
    reap_dead_workers: bool
    created_series: bool
    render_offload_seconds: float


class InstrumentOptions(MiddlewareOptions, EndpointOptions, total=False):
    """``instrument()``: the middleware, the endpoint and the surfaces it adds."""


class SurfacesOptions(ShapeOptions, IdentityOptions, SurfaceOptions, total=False):
    """``Surfaces``: the surfaces, behind the endpoint's auth, on the registry's binding."""

    metrics_path: str
    auth_bearer_token: str | None
    auth_basic_username: str | None
    auth_basic_password: str | None
    auth: AuthCheck | None


#: The public constructors and the options each uses, for the error naming the right one.
FRONT_ENDS: dict[str, frozenset[str]] = {
    "MetricsMiddleware()": frozenset(MiddlewareOptions.__annotations__),
    "MetricsEndpoint()": frozenset(EndpointOptions.__annotations__),
    "instrument()": frozenset(InstrumentOptions.__annotations__),
    "MetricsServerMiddleware()": frozenset(ServerOptions.__annotations__),
    "Surfaces()": frozenset(SurfacesOptions.__annotations__),
}


def configure(settings: Settings | None, options: Mapping[str, Any],
              front_end: str | None = None) -> Configured:
    """What a front end was given: ``settings=`` and/or keyword options, as one ``Configured``.

    Without ``settings`` the options are merged over the environment and configuration files;
    with it, they replace its values.  ``front_end`` (a key of :data:`FRONT_ENDS`) rejects
    options that constructor does not use with a ``TypeError`` naming the ones that do.
    """
    if front_end is not None:
        _reject_unused(front_end, options)
    if settings is None:
        return load_configured(overrides=options)
    if options:
        settings = settings.replace(**options)
    defaults = Settings()
    origins = {name: f"{name} (settings= argument)" for name in FIELDS
               if getattr(settings, name) != getattr(defaults, name)}
    origins.update({key: f"{key} (keyword argument)" for key in options})
    return Configured(settings, origins)


def _reject_unused(front_end: str, options: Mapping[str, Any]) -> None:
    used = FRONT_ENDS[front_end]
    for key in options:
        if key in used or key not in FIELDS:
            continue  # an unknown name gets ConfigError's "did you mean" below
        users = " and ".join(name for name, names in FRONT_ENDS.items() if key in names)
        raise TypeError(f"{front_end} does not use the option {key!r}; {users} "
                        f"{'does' if ' and ' not in users else 'do'}")

from __future__ import annotations

import dataclasses
import math
import shlex
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

from asgi_mcp_metrics import config, docgen
from asgi_mcp_metrics.config import ConfigError, Settings

DOCS = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"


def load(**kwargs: Any) -> Settings:
    """``Settings.load`` with an empty environment unless the test passes one."""
    kwargs.setdefault("environ", {})
    return Settings.load(**kwargs)


def error_of(**kwargs: Any) -> str:
    with pytest.raises(ConfigError) as raised:
        load(**kwargs)
    return str(raised.value)


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# --- defaults and the object itself -----------------------------------------------------------


def test_defaults_match_the_option_table() -> None:
    settings = Settings()
    assert settings.namespace == ""
    assert settings.metrics_path == "/metrics"
    assert settings.exclude_paths == ()
    assert settings.exclude_methods == ()
    assert settings.stream_content_types == ("text/event-stream",)
    assert settings.request_duration_buckets == (
        0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10,
    )  # fmt: skip
    long = (1, 5, 15, 30, 60, 300, 900, 1800, 3600, 7200, 14400, 28800, 86400)
    assert settings.stream_duration_buckets == long
    assert settings.session_duration_buckets == long
    assert settings.operation_duration_buckets == (
        0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30, 60, 120, 300,
    )  # fmt: skip
    assert dict(settings.constant_labels) == {}
    assert settings.mcp_parsing == "full"
    assert settings.mcp_paths == ()
    assert settings.max_body_bytes == 4194304
    assert settings.max_frame_bytes == 4194304
    assert settings.session_idle_timeout_seconds == 1800.0
    assert settings.max_tool_names == 200
    assert settings.max_label_values == 100
    assert settings.identity == "off"
    assert settings.identity_allowlist == ()
    assert settings.max_identities == 50
    assert settings.audit_log is False
    assert settings.audit_logger == "asgi_mcp_metrics.audit"
    assert settings.auth_bearer_token is None
    assert settings.auth_basic_username is None
    assert settings.auth_basic_password is None
    assert settings.gzip is True
    assert settings.created_series is False
    assert settings.reap_dead_workers is True
    assert settings.render_offload_seconds == 0.001
    assert settings.variant == ""
    assert settings.auth is None
    assert settings.identity_resolver is None
    assert settings.otlp_endpoint == ""
    assert settings.otlp_protocol == "http/protobuf"
    assert settings.otlp_interval_seconds == 60.0
    assert settings.exemplars is False
    # + the surfaces options (test_surfaces), + the OpenTelemetry options above
    assert len(dataclasses.fields(Settings)) == 32 + 16 + 4


def test_every_field_is_documented() -> None:
    for option in dataclasses.fields(Settings):
        assert option.metadata["doc"].strip(), option.name


def test_settings_are_frozen() -> None:
    settings = Settings(constant_labels={"region": "eu"})
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.namespace = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        settings.constant_labels["region"] = "us"  # type: ignore[index]


def test_keyword_values_are_normalised_to_immutable_values() -> None:
    labels = {"region": "eu"}
    settings = Settings(
        exclude_paths=["/health", "/static/*"],  # type: ignore[arg-type]
        exclude_methods=["options", "Head"],  # type: ignore[arg-type]
        stream_content_types=["Text/Event-Stream"],  # type: ignore[arg-type]
        request_duration_buckets=[1, 2.5],  # type: ignore[arg-type]
        constant_labels=labels,
        render_offload_seconds=0,
    )
    labels["region"] = "changed later"
    assert settings.exclude_paths == ("/health", "/static/*")
    assert settings.exclude_methods == ("OPTIONS", "HEAD")
    assert settings.stream_content_types == ("text/event-stream",)
    assert settings.request_duration_buckets == (1.0, 2.5)
    assert all(type(bound) is float for bound in settings.request_duration_buckets)
    assert dict(settings.constant_labels) == {"region": "eu"}
    assert type(settings.render_offload_seconds) is float


def test_settings_are_hashable_and_equal_by_value() -> None:
    first = Settings(namespace="app", constant_labels={"region": "eu"})
    second = Settings(namespace="app", constant_labels={"region": "eu"})
    assert first == second
    assert hash(first) == hash(second)
    assert first != Settings(namespace="app", constant_labels={"region": "us"})
    assert len({first, second, Settings()}) == 2


def test_construction_validates_like_keyword_arguments() -> None:
    with pytest.raises(ConfigError) as raised:
        Settings(max_body_bytes=0)
    assert str(raised.value) == "max_body_bytes (keyword argument): expected an integer > 0, got 0"


def test_replace_returns_a_validated_copy() -> None:
    original = Settings(namespace="app")
    changed = original.replace(max_tool_names=7, exclude_methods=["get"])
    assert (changed.namespace, changed.max_tool_names, changed.exclude_methods) == (
        "app",
        7,
        ("GET",),
    )
    assert original.max_tool_names == 200
    with pytest.raises(ConfigError) as raised:
        original.replace(max_tool_names=-1)
    assert str(raised.value) == (
        "max_tool_names (keyword argument): expected an integer >= 0, got -1"
    )
    with pytest.raises(ConfigError) as raised:
        original.replace(max_tool_name=5)
    assert str(raised.value) == (
        "max_tool_name (keyword argument): unknown option; did you mean 'max_tool_names'?"
    )


def test_callables_are_accepted_as_keyword_arguments() -> None:
    def allow(scope: Any) -> bool:
        return True

    def resolve(scope: Any) -> str | None:
        return None

    settings = load(overrides={"auth": allow, "identity_resolver": resolve})
    assert settings.auth is allow
    assert settings.identity_resolver is resolve
    assert error_of(overrides={"auth": "allow-all"}) == (
        "auth (keyword argument): expected a callable or None, "
        "got a value that is not shown (secret)"
    )


# --- precedence -------------------------------------------------------------------------------

LAYERS = ("toml", "django", "environ", "overrides")


def layered(tmp_path: Path, layers: tuple[str, ...]) -> dict[str, Any]:
    """``load`` arguments that set ``namespace`` to the layer's name in each of ``layers``."""
    arguments: dict[str, Any] = {"search_dir": tmp_path, "environ": {}}
    for layer in layers:
        if layer == "toml":
            write(tmp_path / "pyproject.toml", '[tool.asgi_mcp_metrics]\nnamespace = "toml"\n')
        elif layer == "django":
            arguments["django"] = {"namespace": "django"}
        elif layer == "environ":
            arguments["environ"] = {"ASGI_MCP_METRICS_NAMESPACE": "environ"}
        else:
            arguments["overrides"] = {"namespace": "overrides"}
    return arguments


@pytest.mark.parametrize("top", range(len(LAYERS)))
def test_each_layer_overrides_the_layers_below(tmp_path: Path, top: int) -> None:
    settings = Settings.load(**layered(tmp_path, LAYERS[: top + 1]))
    assert settings.namespace == LAYERS[top]


@pytest.mark.parametrize("only", LAYERS)
def test_each_layer_alone_overrides_the_default(tmp_path: Path, only: str) -> None:
    assert Settings.load(**layered(tmp_path, (only,))).namespace == only


def test_unrelated_keys_from_all_layers_merge(tmp_path: Path) -> None:
    write(tmp_path / "pyproject.toml", "[tool.asgi_mcp_metrics]\nmax_body_bytes = 11\n")
    settings = load(
        search_dir=tmp_path,
        django={"max_frame_bytes": 12},
        environ={"ASGI_MCP_METRICS_MAX_TOOL_NAMES": "13"},
        overrides={"max_identities": 14},
    )
    assert (
        settings.max_body_bytes,
        settings.max_frame_bytes,
        settings.max_tool_names,
        settings.max_identities,
        settings.max_label_values,
    ) == (11, 12, 13, 14, 100)


def test_a_higher_layer_replaces_constant_labels_as_a_whole(tmp_path: Path) -> None:
    write(
        tmp_path / "pyproject.toml",
        '[tool.asgi_mcp_metrics.constant_labels]\nregion = "eu"\ntier = "gold"\n',
    )
    settings = load(search_dir=tmp_path, environ={"ASGI_MCP_METRICS_CONSTANT_LABELS": "zone=a"})
    assert dict(settings.constant_labels) == {"zone": "a"}


def test_environ_defaults_to_the_process_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ASGI_MCP_METRICS_VARIANT", "canary")
    assert Settings.load(search_dir=tmp_path).variant == "canary"


# --- validation: one case per kind of mistake -------------------------------------------------

NAME_RULE = "empty or a name matching [a-zA-Z_][a-zA-Z0-9_]* and not starting with '__'"
BUCKET_RULE = "a non-empty list of finite positive numbers in strictly increasing order"
LABEL_RULE = (
    "a table of label name to string value, names matching [a-zA-Z_][a-zA-Z0-9_]* "
    "and not starting with '__'"
)

INVALID = [
    ("namespace", "1app", NAME_RULE),
    ("namespace", "__app", NAME_RULE),
    ("namespace", "my-app", NAME_RULE),
    ("metrics_path", "metrics", "a path starting with '/' and without '*'"),
    ("exclude_paths", "/health", "a list of paths starting with '/' ('*' only at the end)"),
    ("exclude_paths", ["/a*/b"], "a list of paths starting with '/' ('*' only at the end)"),
    ("exclude_paths", ["health"], "a list of paths starting with '/' ('*' only at the end)"),
    ("exclude_methods", ["GET POST"], "a list of HTTP method names"),
    ("stream_content_types", ["event-stream"], "a list of media types such as 'text/event-stream'"),
    ("request_duration_buckets", [], BUCKET_RULE),
    ("request_duration_buckets", [0, 1], BUCKET_RULE),
    ("request_duration_buckets", [-1, 1], BUCKET_RULE),
    ("stream_duration_buckets", [1, 1], BUCKET_RULE),
    ("operation_duration_buckets", [2, 1], BUCKET_RULE),
    ("session_duration_buckets", [1, "2"], BUCKET_RULE),
    ("session_duration_buckets", [1, True], BUCKET_RULE),
    ("request_duration_buckets", [1, math.inf], BUCKET_RULE),
    ("request_duration_buckets", 5, BUCKET_RULE),
    ("constant_labels", {"__name": "x"}, LABEL_RULE),
    ("constant_labels", {"1st": "x"}, LABEL_RULE),
    ("constant_labels", {"shard": 3}, LABEL_RULE),
    ("constant_labels", "region=eu", LABEL_RULE),
    ("mcp_parsing", "partial", "one of 'full', 'request_body', 'headers_only', 'off'"),
    ("mcp_paths", ["/mcp*"], "a list of paths starting with '/' and without '*'"),
    ("max_body_bytes", 0, "an integer > 0"),
    ("max_frame_bytes", 1.5, "an integer > 0"),
    ("max_frame_bytes", True, "an integer > 0"),
    ("max_tool_names", -1, "an integer >= 0"),
    ("max_label_values", "10", "an integer >= 0"),
    ("max_identities", None, "an integer >= 0"),
    ("identity", "users", "'off', 'user' or 'header:<Header-Name>'"),
    ("identity", "header:", "'off', 'user' or 'header:<Header-Name>'"),
    ("identity", "header:X User", "'off', 'user' or 'header:<Header-Name>'"),
    ("identity_allowlist", ["alice", ""], "a list of non-empty strings"),
    ("audit_log", "yes", "true or false"),
    ("audit_log", 1, "true or false"),
    ("audit_logger", "", "a non-empty logger name"),
    ("gzip", None, "true or false"),
    ("render_offload_seconds", -0.1, "a finite number >= 0"),
    ("render_offload_seconds", math.nan, "a finite number >= 0"),
    ("session_idle_timeout_seconds", -1, "a finite number >= 0"),
    ("session_idle_timeout_seconds", math.inf, "a finite number >= 0"),
    ("session_idle_timeout_seconds", "30", "a finite number >= 0"),
    ("variant", 2, "a string"),
    ("identity_resolver", 42, "a callable or None"),
]


@pytest.mark.parametrize(("key", "value", "expected"), INVALID)
def test_invalid_keyword_values_name_the_key(key: str, value: object, expected: str) -> None:
    assert error_of(overrides={key: value}) == (
        f"{key} (keyword argument): expected {expected}, got {value!r}"
    )


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("namespace", "app_1"),
        ("metrics_path", "/internal/metrics"),
        ("exclude_paths", ("/health", "/static/*", "/*")),
        ("identity", "user"),
        ("identity", "header:X-Forwarded-User"),
        ("max_tool_names", 0),
        ("render_offload_seconds", 0),
        ("session_idle_timeout_seconds", 0),
        ("constant_labels", {"_region": "eu", "tier": ""}),
        ("request_duration_buckets", (0.5,)),
    ],
)
def test_boundary_values_are_accepted(key: str, value: object) -> None:
    assert getattr(load(overrides={key: value}), key) == value


def test_basic_auth_needs_both_parts_and_names_the_source() -> None:
    message = error_of(environ={"ASGI_MCP_METRICS_AUTH_BASIC_USERNAME": "admin"})
    assert message == (
        "ASGI_MCP_METRICS_AUTH_BASIC_USERNAME (environment): basic auth needs both "
        "auth_basic_username and auth_basic_password; auth_basic_password is not set"
    )
    message = error_of(overrides={"auth_basic_password": "hunter2"})
    assert message == (
        "auth_basic_password (keyword argument): basic auth needs both "
        "auth_basic_password and auth_basic_username; auth_basic_username is not set"
    )
    with pytest.raises(ConfigError):
        Settings(auth_basic_username="admin")


def test_basic_auth_parts_may_come_from_different_layers() -> None:
    settings = load(
        django={"auth_basic_username": "admin"},
        environ={"ASGI_MCP_METRICS_AUTH_BASIC_PASSWORD": "hunter2"},
    )
    assert (settings.auth_basic_username, settings.auth_basic_password) == ("admin", "hunter2")


# --- unknown names ----------------------------------------------------------------------------


def test_unknown_keyword_suggests_the_close_option() -> None:
    assert error_of(overrides={"max_tool_name": 5}) == (
        "max_tool_name (keyword argument): unknown option; did you mean 'max_tool_names'?"
    )


def test_unknown_keyword_without_a_close_option() -> None:
    assert error_of(overrides={"colour": "blue"}) == "colour (keyword argument): unknown option"


def test_unknown_pyproject_key_is_located_in_the_table(tmp_path: Path) -> None:
    # The default search directory is the current one (the conftest moves it to a temp dir).
    write(Path("pyproject.toml"), "[tool.asgi_mcp_metrics]\nmax_tool_name = 5\n")
    assert error_of() == (
        "pyproject.toml [tool.asgi_mcp_metrics] max_tool_name: unknown option; "
        "did you mean 'max_tool_names'?"
    )


def test_unknown_django_key() -> None:
    assert error_of(django={"max_tool_name": 5}) == (
        "ASGI_MCP_METRICS['max_tool_name'] (Django settings): unknown option; "
        "did you mean 'max_tool_names'?"
    )


def test_unknown_environment_variable_with_the_prefix() -> None:
    assert error_of(environ={"ASGI_MCP_METRICS_MAX_TOOL_NAME": "5"}) == (
        "ASGI_MCP_METRICS_MAX_TOOL_NAME (environment): unknown option; "
        "did you mean 'ASGI_MCP_METRICS_MAX_TOOL_NAMES'?"
    )
    assert error_of(environ={"ASGI_MCP_METRICS_DEBUG": "1"}) == (
        "ASGI_MCP_METRICS_DEBUG (environment): unknown option"
    )


def test_unrelated_environment_variables_are_ignored() -> None:
    settings = load(environ={"ASGI_MCP_METRICSX": "1", "PATH": "/bin", "MCP_METRICS_GZIP": "x"})
    assert settings == Settings()


def test_callables_cannot_come_from_text_sources(tmp_path: Path) -> None:
    assert error_of(environ={"ASGI_MCP_METRICS_AUTH": "x"}) == (
        "ASGI_MCP_METRICS_AUTH (environment): holds a Python object; pass it as a keyword argument"
    )
    path = write(tmp_path / "metrics.toml", 'identity_resolver = "module:function"\n')
    assert error_of(toml_path=path) == (
        f"{path} identity_resolver: holds a Python object; pass it as a keyword argument"
    )


def test_django_settings_must_be_a_dict() -> None:
    assert error_of(django=["namespace"]) == (
        "ASGI_MCP_METRICS (Django settings): expected a dict, got list"
    )


def test_django_keys_must_be_strings() -> None:
    assert error_of(django={1: "x"}) == (
        "ASGI_MCP_METRICS['1'] (Django settings): option names must be strings, got 1"
    )


# --- environment value parsing ----------------------------------------------------------------


def env_value(key: str, text: str) -> object:
    return getattr(load(environ={config.ENV_PREFIX + key.upper(): text}), key)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1", True), ("true", True), ("TRUE", True), ("Yes", True), ("on", True), (" On ", True),
        ("0", False), ("false", False), ("False", False), ("NO", False), ("off", False),
    ],
)  # fmt: skip
def test_environment_booleans(text: str, expected: bool) -> None:
    assert env_value("audit_log", text) is expected
    assert env_value("gzip", text) is expected


def test_environment_boolean_rejects_other_words() -> None:
    assert error_of(environ={"ASGI_MCP_METRICS_GZIP": "maybe"}) == (
        "ASGI_MCP_METRICS_GZIP (environment): expected one of 1/0, true/false, yes/no, on/off, "
        "got 'maybe'"
    )


def test_environment_integers() -> None:
    assert env_value("max_body_bytes", " 4096 ") == 4096
    assert env_value("max_tool_names", "0") == 0
    assert error_of(environ={"ASGI_MCP_METRICS_MAX_BODY_BYTES": "abc"}) == (
        "ASGI_MCP_METRICS_MAX_BODY_BYTES (environment): expected an integer > 0, got 'abc'"
    )
    assert error_of(environ={"ASGI_MCP_METRICS_MAX_BODY_BYTES": "1.5"}) == (
        "ASGI_MCP_METRICS_MAX_BODY_BYTES (environment): expected an integer > 0, got '1.5'"
    )
    assert error_of(environ={"ASGI_MCP_METRICS_MAX_IDENTITIES": "-3"}) == (
        "ASGI_MCP_METRICS_MAX_IDENTITIES (environment): expected an integer >= 0, got '-3'"
    )


def test_environment_floats() -> None:
    assert env_value("render_offload_seconds", "0.25") == 0.25
    assert env_value("render_offload_seconds", "0") == 0.0
    assert error_of(environ={"ASGI_MCP_METRICS_RENDER_OFFLOAD_SECONDS": "soon"}) == (
        "ASGI_MCP_METRICS_RENDER_OFFLOAD_SECONDS (environment): expected a finite number >= 0, "
        "got 'soon'"
    )


def test_session_idle_timeout_from_environment_and_toml(tmp_path: Path) -> None:
    assert env_value("session_idle_timeout_seconds", "90") == 90.0
    assert error_of(environ={"ASGI_MCP_METRICS_SESSION_IDLE_TIMEOUT_SECONDS": "-5"}) == (
        "ASGI_MCP_METRICS_SESSION_IDLE_TIMEOUT_SECONDS (environment): expected a finite "
        "number >= 0, got '-5'"
    )
    good = write(tmp_path / "good.toml", "session_idle_timeout_seconds = 120\n")
    assert load(toml_path=good).session_idle_timeout_seconds == 120.0
    bad = write(tmp_path / "bad.toml",
                '[tool.asgi_mcp_metrics]\nsession_idle_timeout_seconds = "soon"\n')
    assert error_of(toml_path=bad) == (
        f"{bad} [tool.asgi_mcp_metrics] session_idle_timeout_seconds: expected a finite "
        "number >= 0, got 'soon'"
    )


def test_environment_lists_are_comma_separated() -> None:
    assert env_value("exclude_paths", " /health, /static/* ,,") == ("/health", "/static/*")
    assert env_value("exclude_paths", "") == ()
    assert env_value("exclude_methods", "options,head") == ("OPTIONS", "HEAD")
    assert env_value("identity_allowlist", "alice,bob") == ("alice", "bob")


def test_environment_buckets() -> None:
    assert env_value("request_duration_buckets", "0.1, 1,10") == (0.1, 1.0, 10.0)
    assert error_of(environ={"ASGI_MCP_METRICS_STREAM_DURATION_BUCKETS": "1,x"}) == (
        f"ASGI_MCP_METRICS_STREAM_DURATION_BUCKETS (environment): expected {BUCKET_RULE}, got '1,x'"
    )
    assert error_of(environ={"ASGI_MCP_METRICS_STREAM_DURATION_BUCKETS": ""}) == (
        f"ASGI_MCP_METRICS_STREAM_DURATION_BUCKETS (environment): expected {BUCKET_RULE}, got ''"
    )


def test_environment_constant_labels() -> None:
    labels = env_value("constant_labels", "region=eu, tier = gold")
    assert isinstance(labels, MappingProxyType)
    assert labels == {"region": "eu", "tier": "gold"}
    assert env_value("constant_labels", "query=a=b") == {"query": "a=b"}
    assert env_value("constant_labels", "") == {}
    pairs_rule = "comma-separated name=value pairs with distinct names"
    for text in ("region", "region=eu,region=us"):
        assert error_of(environ={"ASGI_MCP_METRICS_CONSTANT_LABELS": text}) == (
            f"ASGI_MCP_METRICS_CONSTANT_LABELS (environment): expected {pairs_rule}, got {text!r}"
        )
    assert error_of(environ={"ASGI_MCP_METRICS_CONSTANT_LABELS": "__name__=x"}) == (
        f"ASGI_MCP_METRICS_CONSTANT_LABELS (environment): expected {LABEL_RULE}, got '__name__=x'"
    )


def test_environment_strings_and_optional_secrets() -> None:
    assert env_value("identity", "header:X-User") == "header:X-User"
    assert env_value("namespace", "") == ""
    assert env_value("auth_bearer_token", "") is None
    assert env_value("auth_bearer_token", "tok") == "tok"


# --- TOML files -------------------------------------------------------------------------------


def test_standalone_file_with_options_at_the_top_level(tmp_path: Path) -> None:
    path = write(
        tmp_path / "metrics.toml",
        'namespace = "edge"\nexclude_paths = ["/health"]\n\n[constant_labels]\nregion = "eu"\n',
    )
    settings = load(environ={"ASGI_MCP_METRICS_CONFIG": str(path)})
    assert settings.namespace == "edge"
    assert settings.exclude_paths == ("/health",)
    assert dict(settings.constant_labels) == {"region": "eu"}


def test_standalone_file_with_a_tool_table(tmp_path: Path) -> None:
    path = write(
        tmp_path / "metrics.toml",
        '[project]\nname = "x"\n\n[tool.asgi_mcp_metrics]\nmax_body_bytes = 1024\n',
    )
    assert load(environ={"ASGI_MCP_METRICS_CONFIG": str(path)}).max_body_bytes == 1024


def test_error_locations_in_toml_files(tmp_path: Path) -> None:
    flat = write(tmp_path / "flat.toml", 'max_body_bytes = "4096"\n')
    assert error_of(toml_path=flat) == (
        f"{flat} max_body_bytes: expected an integer > 0, got '4096'"
    )
    nested = write(tmp_path / "nested.toml", "[tool.asgi_mcp_metrics]\ngzip = 1\n")
    assert error_of(toml_path=nested) == (
        f"{nested} [tool.asgi_mcp_metrics] gzip: expected true or false, got 1"
    )


def test_toml_path_argument_wins_over_the_config_variable(tmp_path: Path) -> None:
    chosen = write(tmp_path / "chosen.toml", 'variant = "chosen"\n')
    ignored = write(tmp_path / "ignored.toml", 'variant = "ignored"\n')
    settings = load(toml_path=chosen, environ={"ASGI_MCP_METRICS_CONFIG": str(ignored)})
    assert settings.variant == "chosen"


def test_config_file_replaces_pyproject_discovery(tmp_path: Path) -> None:
    write(tmp_path / "pyproject.toml", '[tool.asgi_mcp_metrics]\nvariant = "pyproject"\n')
    other = write(tmp_path / "other.toml", "max_tool_names = 3\n")
    settings = load(search_dir=tmp_path, environ={"ASGI_MCP_METRICS_CONFIG": str(other)})
    assert (settings.variant, settings.max_tool_names) == ("", 3)


def test_pyproject_is_found_in_the_search_directory(tmp_path: Path) -> None:
    write(tmp_path / "pyproject.toml", '[tool.asgi_mcp_metrics]\nmcp_parsing = "headers_only"\n')
    assert load(search_dir=tmp_path).mcp_parsing == "headers_only"
    assert load(search_dir=str(tmp_path)).mcp_parsing == "headers_only"


def test_pyproject_is_found_in_the_current_directory() -> None:
    write(Path("pyproject.toml"), '[tool.asgi_mcp_metrics]\nmcp_parsing = "off"\n')
    assert load().mcp_parsing == "off"


def test_pyproject_without_our_table_or_missing_gives_defaults(tmp_path: Path) -> None:
    assert load(search_dir=tmp_path) == Settings()
    write(tmp_path / "pyproject.toml", '[project]\nname = "app"\n\n[tool.ruff]\nline-length = 99\n')
    assert load(search_dir=tmp_path) == Settings()


def test_tool_entry_that_is_not_a_table(tmp_path: Path) -> None:
    path = write(tmp_path / "pyproject.toml", "[tool]\nasgi_mcp_metrics = 5\n")
    assert error_of(search_dir=tmp_path) == f"{path} [tool.asgi_mcp_metrics]: expected a table"


def test_missing_config_file_names_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    assert error_of(environ={"ASGI_MCP_METRICS_CONFIG": str(missing)}) == (
        f"{missing}: cannot read the file: No such file or directory"
    )


def test_unreadable_config_file_names_the_file(tmp_path: Path) -> None:
    assert error_of(toml_path=tmp_path) == f"{tmp_path}: cannot read the file: Is a directory"


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path / "pyproject.toml", "[tool.asgi_mcp_metrics]\nnamespace = app\n")
    assert error_of(search_dir=tmp_path) == (
        f"{path}: invalid TOML: Invalid value (at line 2, column 13)"
    )
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b'namespace = "\xff"\n')
    assert error_of(toml_path=binary).startswith(f"{binary}: invalid TOML: ")


# --- secrets ----------------------------------------------------------------------------------


def test_secrets_are_masked_in_repr() -> None:
    settings = Settings(
        auth_bearer_token="tok-4f9a",
        auth_basic_username="admin-7c1",
        auth_basic_password="pw-91b2",
    )
    for shown in (repr(settings), str(settings)):
        assert "tok-4f9a" not in shown
        assert "admin-7c1" not in shown
        assert "pw-91b2" not in shown
        assert "auth_bearer_token='***'" in shown
        assert "auth_basic_password='***'" in shown
    assert "auth_bearer_token=None" in repr(Settings())
    assert repr(Settings()).startswith("Settings(namespace='', metrics_path='/metrics', ")


def test_secrets_never_appear_in_error_messages(tmp_path: Path) -> None:
    message = error_of(overrides={"auth_bearer_token": 918273645})
    assert message == (
        "auth_bearer_token (keyword argument): expected a non-empty string of printable ASCII "
        "without spaces, got a value that is not shown (secret)"
    )
    path = write(tmp_path / "m.toml", "auth_basic_password = 55501234\n")
    message = error_of(toml_path=path)
    assert "55501234" not in message
    assert message.startswith(f"{path} auth_basic_password: expected a non-empty string")
    broken = write(tmp_path / "broken.toml", 'auth_bearer_token = "tok-31337\n')
    message = error_of(toml_path=broken)
    assert "tok-31337" not in message
    assert message.startswith(f"{broken}: invalid TOML: ")
    message = error_of(environ={"ASGI_MCP_METRICS_AUTH_BASIC_PASSWORD": "pw-31337"})
    assert "pw-31337" not in message


# --- documentation ----------------------------------------------------------------------------


def test_docs_are_generated_from_the_settings() -> None:
    assert DOCS.read_text(encoding="utf-8") == docgen.configuration_markdown(), (
        "docs/configuration.md is out of date; regenerate it with "
        "`python -m asgi_mcp_metrics.docgen configuration > docs/configuration.md`"
    )


def test_docs_list_every_option_with_its_environment_variable() -> None:
    markdown = docgen.configuration_markdown()
    for option in dataclasses.fields(Settings):
        row = next(
            line for line in markdown.splitlines() if line.startswith(f"| `{option.name}` |")
        )
        if option.name in ("auth", "identity_resolver"):
            assert "| keyword only |" in row
        else:
            assert f"| `ASGI_MCP_METRICS_{option.name.upper()}` |" in row


EXAMPLE = Settings(
    namespace="gateway",
    exclude_paths=("/health", "/static/*"),
    constant_labels={"region": "eu"},
    max_tool_names=500,
    audit_log=True,
    request_duration_buckets=(0.01, 0.1, 1.0, 10.0),
)


def test_keyword_example_runs_as_documented() -> None:
    namespace: dict[str, Any] = {}
    exec(docgen.EXAMPLE_KWARGS, namespace)
    assert namespace["settings"] == EXAMPLE


def test_environment_example_runs_as_documented() -> None:
    environ = {}
    for line in docgen.EXAMPLE_ENV.splitlines():
        export, assignment = shlex.split(line)
        assert export == "export"
        name, _, value = assignment.partition("=")
        environ[name] = value
    assert load(environ=environ) == EXAMPLE


def test_pyproject_example_runs_as_documented(tmp_path: Path) -> None:
    write(tmp_path / "pyproject.toml", docgen.EXAMPLE_PYPROJECT)
    assert load(search_dir=tmp_path) == EXAMPLE


def test_django_example_runs_as_documented() -> None:
    namespace: dict[str, Any] = {}
    exec(docgen.EXAMPLE_DJANGO, namespace)
    django_settings: Mapping[str, Any] = namespace["ASGI_MCP_METRICS"]
    assert load(django=django_settings) == EXAMPLE


def test_markdown_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert docgen.main(["configuration"]) == 0
    assert capsys.readouterr().out == docgen.configuration_markdown()
    assert docgen.main(["metrics"]) == 0
    assert capsys.readouterr().out == docgen.metrics_markdown()
    with pytest.raises(SystemExit) as exited:
        docgen.main([])
    assert exited.value.code == 2
    assert "usage:" in capsys.readouterr().err


def test_module_runs_as_a_script() -> None:
    root = Path(__file__).resolve().parent.parent
    completed = subprocess.run(
        [sys.executable, "-m", "asgi_mcp_metrics.docgen", "configuration"],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    )
    assert completed.stdout == docgen.configuration_markdown()

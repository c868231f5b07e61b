"""Each public constructor takes exactly the options it uses, typed for editors and mypy."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette

from asgi_mcp_metrics import (
    ConfigError,
    MetricsEndpoint,
    MetricsMiddleware,
    MetricsServerMiddleware,
    Settings,
)
from asgi_mcp_metrics.config import (
    FRONT_ENDS,
    EndpointOptions,
    InstrumentOptions,
    MiddlewareOptions,
    ServerOptions,
)
from asgi_mcp_metrics.starlette import instrument


async def app(scope: Any, receive: Any, send: Any) -> None:  # pragma: no cover - never called
    raise AssertionError


def test_the_middleware_rejects_an_endpoint_option_naming_who_uses_it() -> None:
    with pytest.raises(TypeError) as raised:
        MetricsMiddleware(app, registry=CollectorRegistry(), gzip=False)  # type: ignore[call-arg]
    assert str(raised.value) == ("MetricsMiddleware() does not use the option 'gzip'; "
                                 "MetricsEndpoint() and instrument() do")


def test_the_endpoint_rejects_a_recording_option() -> None:
    with pytest.raises(TypeError) as raised:
        MetricsEndpoint(namespace="x")  # type: ignore[call-arg]
    assert str(raised.value) == (
        "MetricsEndpoint() does not use the option 'namespace'; MetricsMiddleware() and "
        "instrument() and MetricsServerMiddleware() and Surfaces() do")


def test_the_sdk_adapter_rejects_what_only_the_wire_uses() -> None:
    with pytest.raises(TypeError, match=r"^MetricsServerMiddleware\(\) does not use the option "
                                        r"'exclude_paths'; MetricsMiddleware\(\) and "
                                        r"instrument\(\) do$"):
        MetricsServerMiddleware(exclude_paths=["/health"])  # type: ignore[call-arg]


def test_an_unknown_name_is_still_a_config_error_with_a_suggestion() -> None:
    with pytest.raises(ConfigError, match=r"did you mean 'namespace'\?"):
        MetricsMiddleware(app, registry=CollectorRegistry(), namepsace="x")  # type: ignore[call-arg]


@pytest.mark.parametrize("option", [field.name for field in dataclasses.fields(Settings)])
def test_instrument_takes_every_option(option: str) -> None:
    registry = CollectorRegistry()
    value = getattr(Settings(), option)
    instrument(Starlette(), registry=registry, **{option: value})  # type: ignore[misc]


def test_every_option_is_used_by_a_front_end_and_typed_like_its_setting() -> None:
    fields = {field.name: str(field.type) for field in dataclasses.fields(Settings)}
    assert set().union(*FRONT_ENDS.values()) == set(fields)
    assert set(InstrumentOptions.__annotations__) == set(fields)
    assert set(MiddlewareOptions.__annotations__) | set(EndpointOptions.__annotations__) == \
        set(fields)
    assert set(ServerOptions.__annotations__) < set(MiddlewareOptions.__annotations__)
    for name, annotation in InstrumentOptions.__annotations__.items():
        # Sequences are accepted where the settings keep tuples.
        expected = fields[name].replace("tuple[str, ...]", "Sequence[str]").replace(
            "tuple[float, ...]", "Sequence[float]")
        assert getattr(annotation, "__forward_arg__", annotation) == expected, name


def test_mypy_sees_the_options_of_each_constructor(tmp_path: Path) -> None:
    snippet = tmp_path / "snippet.py"
    snippet.write_text(textwrap.dedent("""\
        from starlette.applications import Starlette

        from asgi_mcp_metrics import MetricsEndpoint, MetricsMiddleware, MetricsServerMiddleware
        from asgi_mcp_metrics.starlette import instrument

        instrument(Starlette(), namespace="gw", gzip=False, exclude_paths=["/health"])
        MetricsMiddleware(Starlette(), max_tool_names=5, constant_labels={"region": "eu"})
        MetricsEndpoint(auth_bearer_token="t", render_offload_seconds=0.1)
        MetricsServerMiddleware(identity="header:x-user", transport="stdio")
        MetricsMiddleware(Starlette(), gzip=False)
        MetricsEndpoint(namespace="gw")
        MetricsMiddleware(Starlette(), max_tool_names="5")
        MetricsServerMiddleware(mcp_parsing="off")
        """))
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental",
         # The project's own mypy settings (which third-party modules have no stubs).
         "--config-file", str(Path(__file__).resolve().parents[1] / "pyproject.toml"),
         # This interpreter's version: on 3.10 the package imports tomli, installed only there.
         "--python-version", f"{sys.version_info[0]}.{sys.version_info[1]}", str(snippet)],
        capture_output=True, text=True, cwd=tmp_path, check=False,
        # The package as checked out (an editable install is invisible to mypy).
        env={**os.environ, "MYPYPATH": str(Path(__file__).resolve().parents[1])})
    assert "Found 4 errors in 1 file" in result.stdout, result.stdout + result.stderr
    errors = [line.split(": error: ", 1)[1] for line in result.stdout.splitlines()
              if ": error: " in line]
    lines = sorted(int(line.split(":")[1]) for line in result.stdout.splitlines()
                   if ": error: " in line)
    assert lines == [10, 11, 12, 13], result.stdout
    assert 'Unexpected keyword argument "gzip" for "MetricsMiddleware"' in errors[0]
    assert 'Unexpected keyword argument "namespace" for "MetricsEndpoint"' in errors[1]
    assert '"max_tool_names"' in errors[2] and '"int"' in errors[2]
    assert 'Unexpected keyword argument "mcp_parsing"' in errors[3]

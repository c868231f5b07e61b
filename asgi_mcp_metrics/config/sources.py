"""The configuration layers other than keyword arguments: TOML files, Django, the environment.

Each layer is a ``Source`` (how it names an option in messages) and the raw values it holds;
:mod:`.settings` checks and merges them.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .kinds import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

ENV_PREFIX = "ASGI_MCP_METRICS_"
CONFIG_FILE_ENV = "ASGI_MCP_METRICS_CONFIG"
TOML_TABLE = "tool.asgi_mcp_metrics"


@dataclass(frozen=True)
class Source:
    """One configuration layer: how it names an option in messages."""

    spell: Callable[[str], str]
    locate: Callable[[str], str]
    textual: bool = False
    programmatic: bool = False


KEYWORDS = Source(
    spell=lambda key: key, locate=lambda key: f"{key} (keyword argument)", programmatic=True
)



def environment_layer(environ: Mapping[str, str]) -> tuple[Source, Mapping[str, object]]:
    variables = {
        name[len(ENV_PREFIX) :].lower(): name
        for name in environ
        if name.startswith(ENV_PREFIX) and name != CONFIG_FILE_ENV
    }
    source = Source(
        spell=lambda key: ENV_PREFIX + key.upper(),
        locate=lambda key: f"{variables.get(key, ENV_PREFIX + key.upper())} (environment)",
        textual=True,
    )
    return source, {key: environ[name] for key, name in variables.items()}


def django_layer(django: object) -> tuple[Source, Mapping[str, object]]:
    source = Source(
        spell=lambda key: key,
        locate=lambda key: f"ASGI_MCP_METRICS[{key!r}] (Django settings)",
    )
    if not isinstance(django, Mapping):
        raise ConfigError(
            "ASGI_MCP_METRICS (Django settings)", f"expected a dict, got {type(django).__name__}"
        )
    return source, django


def toml_layer(
    toml_path: str | os.PathLike[str] | None,
    environ: Mapping[str, str],
    search_dir: str | os.PathLike[str] | None,
) -> tuple[Source, Mapping[str, object]] | None:
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


def _toml_source(path: Path, *, nested: bool) -> Source:
    prefix = f"{path} [{TOML_TABLE}] " if nested else f"{path} "
    return Source(spell=lambda key: key, locate=lambda key: prefix + key)

"""Reads ``settings.ASGI_MCP_METRICS`` once into the library's ``Settings``.

Every option of the library is a key of that dict, spelled as in ``docs/configuration.md``.
Three keys hold Python objects, which other configuration sources cannot express; as usual in
Django they may be given as dotted import paths:

- ``registry``: the ``prometheus_client`` ``CollectorRegistry`` to record into and serve;
- ``auth``: a callable deciding whether a scrape may read the metrics;
- ``identity_resolver``: a callable mapping a request to an identity label value.

An invalid value raises ``ImproperlyConfigured`` naming the key.  The result is cached and
dropped when ``ASGI_MCP_METRICS`` changes (``override_settings`` in tests).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.utils.module_loading import import_string
from prometheus_client import CollectorRegistry

from .._binding import bind
from ..config import ConfigError, Configured, Settings, load_configured

SETTING = "ASGI_MCP_METRICS"
_CALLABLE_OPTIONS = ("auth", "identity_resolver")


@dataclass(frozen=True)
class DjangoConfig:
    """The validated configuration of one Django project."""

    configured: Configured
    registry: CollectorRegistry | None = None
    """None: ``prometheus_client.REGISTRY``."""

    @property
    def settings(self) -> Settings:
        return self.configured.settings


_cached: DjangoConfig | None = None


def get_config() -> DjangoConfig:
    """The project's configuration, validated on first use (``AppConfig.ready()``)."""
    global _cached
    if _cached is None:
        _cached = load_config()
    return _cached


def load_config() -> DjangoConfig:
    """Validate ``settings.ASGI_MCP_METRICS`` now; raise ``ImproperlyConfigured`` naming the key."""
    raw = getattr(django_settings, SETTING, None)
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ImproperlyConfigured(
            f"{SETTING} (Django settings): expected a dict, got {type(raw).__name__}")
    options = dict(raw)
    registry = _registry(options.pop("registry", None))
    objects = {name: _callable(name, options.pop(name)) for name in _CALLABLE_OPTIONS
               if name in options}
    try:
        configured = load_configured(django=options, overrides=objects)
    except ConfigError as error:
        raise ImproperlyConfigured(str(error)) from error
    # The callables came from the Django settings too, not from keyword arguments.
    origins = {**configured.origins, **{name: _location(name) for name in objects}}
    return DjangoConfig(configured=Configured(configured.settings, origins), registry=registry)


def bind_config(who: str) -> DjangoConfig:
    """The project's configuration, with its registry bound to it; a conflict with another
    configuration of that registry raises ``ImproperlyConfigured`` naming both."""
    config = get_config()
    try:
        bind(config.registry, config.configured, who)
    except ConfigError as error:
        raise ImproperlyConfigured(str(error)) from error
    return config


def _location(key: str) -> str:
    return f"{SETTING}[{key!r}] (Django settings)"


def _resolve(key: str, value: object) -> object:
    if not isinstance(value, str):
        return value
    try:
        return import_string(value)
    except ImportError as error:
        raise ImproperlyConfigured(f"{_location(key)}: cannot import {value!r}: {error}") from None


def _registry(value: object) -> CollectorRegistry | None:
    if value is None:
        return None
    registry = _resolve("registry", value)
    if not isinstance(registry, CollectorRegistry):
        raise ImproperlyConfigured(
            f"{_location('registry')}: expected a prometheus_client CollectorRegistry or the "
            f"dotted path of one, got {type(registry).__name__}")
    return registry


def _callable(key: str, value: object) -> Any:
    if value is None:
        return None
    resolved = _resolve(key, value)
    if not callable(resolved):
        raise ImproperlyConfigured(
            f"{_location(key)}: expected a callable or the dotted path of one, "
            f"got {type(resolved).__name__}")
    return resolved


def _forget_on_change(*, setting: str, **_: object) -> None:
    global _cached
    if setting == SETTING:
        _cached = None


setting_changed.connect(_forget_on_change, dispatch_uid="asgi_mcp_metrics.django.conf")

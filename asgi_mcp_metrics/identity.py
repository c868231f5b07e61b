"""Who is calling: the identity of the current request, resolved once and carried in a ContextVar.

The HTTP middleware publishes the request with :func:`publish_request`: the identity is resolved
from the scope the first time someone asks (:func:`current_identity`), because authentication
middleware inside the app fills ``scope["user"]`` only after the request has entered ours.  The
``mcp`` SDK middleware (or any code) can publish a resolved value with :func:`use_identity` (or
:func:`set_identity` / :func:`reset_identity`).  Code deeper down (the
tool decorator, the ACL decorator, the LLM recorder) reads it with :func:`current_identity`;
the ``mcp`` 2.x SDK carries the request's context into tool handlers, so the value set around
the ASGI call is visible there.

The ContextVar holds the raw identity.  It only becomes a label value through a recorder's
identity guard (:func:`identity_label`), which applies ``identity_allowlist`` and
``max_identities``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar, Token
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .config import Settings
    from .recorder import Recorder

__all__ = [
    "current_identity",
    "identity_from_header",
    "identity_from_user",
    "identity_label",
    "publish_request",
    "reset_identity",
    "resolve_identity",
    "set_identity",
    "use_identity",
]

#: Identities longer than this are cut: a label value is not a place for a token.
MAX_IDENTITY_LENGTH = 128

class _Deferred:
    """A request whose identity is resolved on first use, then remembered."""

    __slots__ = ("recorder", "resolved", "scope", "settings", "value")

    def __init__(self, scope: Mapping[str, Any], settings: Settings,
                 recorder: Recorder | None) -> None:
        self.scope = scope
        self.settings = settings
        self.recorder = recorder
        self.resolved = False
        self.value: str | None = None

    def get(self) -> str | None:
        if not self.resolved:
            self.value = resolve_identity(self.scope, self.settings, recorder=self.recorder)
            self.resolved = True
        return self.value


_current: ContextVar[str | _Deferred | None] = ContextVar("asgi_mcp_metrics.identity",
                                                          default=None)


def current_identity() -> str | None:
    """The identity of the request being handled, or None."""
    value = _current.get()
    if value is None or isinstance(value, str):
        return value
    return value.get()


def publish_request(scope: Mapping[str, Any], settings: Settings,
                    recorder: Recorder | None = None) -> Token[str | _Deferred | None]:
    """Make the request's identity available to code below; undo with :func:`reset_identity`."""
    return _current.set(_Deferred(scope, settings, recorder))


def set_identity(value: str | None) -> Token[str | _Deferred | None]:
    """Publish ``value`` as the current identity; undo with :func:`reset_identity`."""
    return _current.set(value or None)


def reset_identity(token: Token[str | _Deferred | None]) -> None:
    _current.reset(token)


@contextmanager
def use_identity(value: str | None) -> Iterator[None]:
    """The current identity is ``value`` inside the ``with`` block."""
    token = _current.set(value or None)
    try:
        yield
    finally:
        _current.reset(token)


def resolve_identity(scope: Mapping[str, Any], settings: Settings, *,
                     recorder: Recorder | None = None) -> str | None:
    """The identity of the request ``scope`` according to ``settings``; None when there is none.

    ``identity_resolver`` (a callable of the scope) wins over the ``identity`` option.  A
    resolver that raises is logged and counted in ``asgi_mcp_metrics_callback_errors_total``
    (when ``recorder`` is given) and the request simply has no identity.
    """
    resolver = settings.identity_resolver
    if resolver is not None:
        try:
            value = resolver(scope)  # type: ignore[arg-type]
        except Exception:
            _callback_failed(recorder)
            return None
        return _clean(value) if isinstance(value, str) else None
    mode = settings.identity
    if mode == "off":
        return None
    if mode == "user":
        return identity_from_user(scope.get("user"))
    return identity_from_header(scope, mode.partition(":")[2])


def identity_from_user(user: object) -> str | None:
    """The identity of an authenticated ``scope["user"]``.

    The ``mcp`` SDK's ``AuthenticatedUser`` carries the OAuth access token: its ``client_id``
    names the calling client (what a shared proxy wants to tell apart), else its ``subject``.
    Other user objects: ``identity``, then ``username``, then ``display_name``.  Users that say
    they are not authenticated (Starlette's ``UnauthenticatedUser``) have no identity.
    """
    if user is None:
        return None
    if isinstance(user, str):
        return _clean(user)
    if getattr(user, "is_authenticated", True) is False:
        return None
    token = getattr(user, "access_token", None)
    if token is not None:
        for field in ("client_id", "subject"):
            value = getattr(token, field, None)
            if isinstance(value, str) and value:
                return _clean(value)
    for field in ("identity", "username", "display_name"):
        value = getattr(user, field, None)
        if isinstance(value, str) and value:
            return _clean(value)
    return None


def identity_from_header(scope: Mapping[str, Any], header: str) -> str | None:
    """The first value of request header ``header`` (case-insensitive), stripped."""
    wanted = header.lower().encode("latin-1")
    for name, value in scope.get("headers") or ():
        if name.lower() == wanted:
            return _clean(value.decode("latin-1"))
    return None


def identity_label(recorder: Recorder, metric: str, value: str | None = None) -> str:
    """The identity label value for ``metric``: the current identity (or ``value``), guarded.

    Empty when there is no identity, so that metrics keep one series per other label set
    while identity is off.
    """
    identity = current_identity() if value is None else value
    if not identity:
        return ""
    return recorder.identities(identity, metric)


def _clean(value: str) -> str | None:
    value = value.strip()[:MAX_IDENTITY_LENGTH]
    return value or None


def _callback_failed(recorder: Recorder | None) -> None:
    if recorder is not None:
        recorder.callback_error("identity_resolver")
        return
    import logging

    logging.getLogger("asgi_mcp_metrics").exception(
        "asgi_mcp_metrics: user callable identity_resolver raised; recorded and ignored")

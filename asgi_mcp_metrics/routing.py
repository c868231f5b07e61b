"""The ``http_route`` label: a route template, never a raw path.

Frameworks already know which route served a request: Starlette (>= 1.7) and FastAPI put it in
``scope["route"]``, mounted apps grow ``scope["root_path"]``, and the Django adapter stashes the
normalised URL pattern under :data:`ROUTE_KEY`.  Reading that costs a few attribute look-ups.
Older Starlette releases do not set ``scope["route"]``; for them the app's routes are matched
once more after the response, which is the only case that re-matches.
"""

from __future__ import annotations

import functools
import re
from collections.abc import MutableMapping, Sequence
from typing import Any

#: Scope key under which an adapter (or the app) can give the route template directly.
ROUTE_KEY = "asgi_mcp_metrics.route"

UNMATCHED = "__unmatched__"
REDIRECT = "__redirect__"
METHOD_NOT_ALLOWED = "__method_not_allowed__"

_CONVERTER = re.compile(r"\{([^{}:]+):[^{}]*\}")
_REDIRECTS = frozenset({301, 302, 303, 307, 308})


def route_label(scope: MutableMapping[str, Any], entry_root_path: str, status: int) -> str:
    """The route template that served ``scope``, or a fixed value.

    ``entry_root_path`` is ``root_path`` as the middleware saw it on entry: what a Mount added
    after that is part of the template.
    """
    if status == 405:
        return METHOD_NOT_ALLOWED
    stashed = scope.get(ROUTE_KEY)
    if stashed is not None:
        return str(stashed)
    route = scope.get("route")
    if route is None:
        # Starlette < 1.7 does not record the matched route: match the outer router again.
        fallback_routes = getattr(scope.get("router"), "routes", None)
        if fallback_routes:
            template = match_template(fallback_routes, scope, entry_root_path)
            if template is not None:
                return template
        return _fixed(status)
    mount_prefix: str = scope.get("root_path", "")[len(entry_root_path):]
    if getattr(route, "routes", None):
        # The innermost router never matched: the last route seen is a Mount of a router.
        return _fixed(status)
    path = getattr(route, "path", None)
    if path is None:
        return _fixed(status)
    if hasattr(route, "routes"):
        # A Mount of a plain ASGI app: root_path already ends with what the Mount matched.
        return str(mount_prefix or path or "/")
    return mount_prefix + normalise(str(path))


@functools.lru_cache(maxsize=1024)
def normalise(path: str) -> str:
    """``/items/{id:int}`` -> ``/items/{id}``: the same label as Django's ``<int:id>``."""
    if ":" not in path:
        return path
    return str(_CONVERTER.sub(r"{\1}", path))


def _fixed(status: int) -> str:
    if status in _REDIRECTS:
        return REDIRECT
    return UNMATCHED if status == 404 else ""


def match_template(routes: Sequence[Any], scope: MutableMapping[str, Any],
                   entry_root_path: str) -> str | None:
    """Match ``scope`` against Starlette routes again (older Starlette only)."""
    try:
        from starlette.routing import Match
    except ImportError:  # pragma: no cover - starlette is an optional extra
        return None
    probe = dict(scope)
    probe["root_path"] = entry_root_path
    probe.pop("route", None)
    prefix = ""
    current = list(routes)
    while True:
        for route in current:
            match, child = route.matches(probe)
            if match is Match.FULL:
                break
        else:
            return None
        inner = getattr(route, "routes", None)
        if inner:
            probe.update(child)
            prefix += route.path
            current = list(inner)
            continue
        path = getattr(route, "path", "")
        if hasattr(route, "routes"):
            return (prefix + path) or "/"
        return prefix + normalise(path)

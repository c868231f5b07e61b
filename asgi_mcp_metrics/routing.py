"""The ``http_route`` label: a route template, never a raw path.

Frameworks already know which route served a request: Starlette (>= 1.7) and FastAPI put it in
``scope["route"]`` (FastAPI's included routers add their prefixes in a scope entry of their
own), and the Django adapter stashes the normalised URL pattern under
:data:`ROUTE_KEY`.  Reading that costs a few attribute look-ups.

What they do not keep is the *template* of the mounts a request went through: Starlette's
``Mount`` extends ``scope["root_path"]`` with the path it matched (``/t/acme``), not with its
pattern (``/t/{tenant}``), and records only the innermost route.  So when a request passed
through mounts, their templates are recovered by walking the mount chain from the outermost
router over that matched prefix - only the mounts, never the leaf routes.  Older Starlette
releases do not set ``scope["route"]``; for them the whole path is matched again.

Whatever cannot be known becomes a fixed value, never a client-controlled string.
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
#: Stands for a mount prefix whose template cannot be recovered (an app that extends
#: ``root_path`` by itself, outside any Starlette router).
UNKNOWN_MOUNT = "/{mount}"

_CONVERTER = re.compile(r"\{([^{}:]+):[^{}]*\}")
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
#: Deeper mount chains than this are not walked (and a mount that consumes nothing cannot loop).
_MAX_MOUNT_DEPTH = 32


def route_label(scope: MutableMapping[str, Any], entry_root_path: str, status: int) -> str:
    """The route template that served ``scope``, or a fixed value.

    ``entry_root_path`` is ``root_path`` as the middleware saw it on entry: a prefix set by the
    server (behind a reverse proxy) or by a router outside the middleware is not part of the
    label; what a mount added after that is, as its template.
    """
    if status == 405:
        return METHOD_NOT_ALLOWED
    stashed = scope.get(ROUTE_KEY)
    route = scope.get("route")
    if stashed is None and route is None:
        # Starlette < 1.7 does not record the matched route: match the outer router again.
        fallback_routes = getattr(scope.get("router"), "routes", None)
        if fallback_routes:
            template = match_template(fallback_routes, scope, entry_root_path)
            if template is not None:
                return template
        return _fixed(status)
    prefix = ""
    if scope.get("root_path", "") != entry_root_path:
        prefix = mount_template(scope, entry_root_path)
    if stashed is not None:
        # The Django adapter's pattern, relative to where Django was mounted.
        return prefix + str(stashed) if prefix else str(stashed)
    kind, template = _leaf(route)
    if kind is _LEAF_ROUTE:
        if "fastapi" in scope:
            template = _fastapi_template(scope, route, template)
        return prefix + template
    if kind is _LEAF_APP:
        # A Mount of a plain ASGI app: its own template ends the mount chain.
        return prefix or "/"
    # A router that never matched (the last route seen is a Mount of a router), or a route
    # without a path.
    return _fixed(status)


#: What a leaf route is, from its attributes alone: a route with a path template, a Mount of a
#: plain ASGI app, or something no template comes from.
_LEAF_ROUTE = "route"
_LEAF_APP = "app"
_LEAF_NONE = "none"
#: ``id(route)`` -> ``(route, kind, normalised path)``: a route's facts are read once.  The
#: route itself is kept, so its id cannot be reused while the entry lives.
_LEAVES: dict[int, tuple[Any, str, str]] = {}
_MAX_LEAVES = 4096


def _leaf(route: Any) -> tuple[str, str]:
    entry = _LEAVES.get(id(route))
    if entry is not None and entry[0] is route:
        return entry[1], entry[2]
    path = getattr(route, "path", None)
    template = ""
    if getattr(route, "routes", None) or path is None:
        kind = _LEAF_NONE
    elif hasattr(route, "routes"):
        kind = _LEAF_APP
    else:
        kind = _LEAF_ROUTE
        template = normalise(str(path))
    if len(_LEAVES) < _MAX_LEAVES:
        _LEAVES[id(route)] = (route, kind, template)
    return kind, template


def _fastapi_template(scope: MutableMapping[str, Any], route: Any, template: str) -> str:
    """The route as served, with the prefixes of FastAPI's included routers.

    FastAPI >= 0.16x keeps an included router's routes as they were declared (without the
    ``include_router(prefix=...)``) and puts the route as served, prefixes joined, in its own
    scope entry.
    """
    fastapi_scope = scope.get("fastapi")
    if isinstance(fastapi_scope, dict):
        context = fastapi_scope.get("effective_route_context")
        if context is not None and getattr(context, "original_route", None) is route:
            path = getattr(context, "path", None)
            if path:
                return normalise(str(path))
    return template


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


def mount_template(scope: MutableMapping[str, Any], entry_root_path: str) -> str:
    """The templates of the mounts that extended ``root_path`` past ``entry_root_path``.

    ``/t/acme/servers/git`` matched by ``Mount("/t/{tenant}")`` and ``Mount("/servers/{name}")``
    gives ``/t/{tenant}/servers/{name}``.  The walk starts at the outermost router, where
    ``root_path`` was ``app_root_path``, and follows the first mount (or host) that matches,
    as the router did; pieces matched before ``entry_root_path`` are left out.
    """
    root_path: str = scope.get("root_path", "")
    base: str = scope.get("app_root_path", entry_root_path)
    routes = getattr(scope.get("router"), "routes", None)
    if (not routes or not root_path.startswith(base)
            or not root_path.startswith(entry_root_path) or len(entry_root_path) < len(base)):
        return UNKNOWN_MOUNT
    try:
        from starlette.routing import Host, Match, Mount
    except ImportError:  # pragma: no cover - starlette is an optional extra
        return UNKNOWN_MOUNT
    position = len(base)
    template = ""
    for _ in range(_MAX_MOUNT_DEPTH):
        if position == len(entry_root_path):
            template = ""  # what was matched before the middleware saw the request
        if position == len(root_path):
            return template
        remaining = root_path[position:] + "/"
        for route in routes:
            if isinstance(route, Mount):
                matched = route.path_regex.match(remaining)
                if matched is not None:
                    consumed = matched.start("path") - 1
                    if consumed > 0:
                        position += consumed
                        template += normalise(route.path)
                    break
            elif isinstance(route, Host) and route.matches(scope)[0] is Match.FULL:
                break
        else:
            return UNKNOWN_MOUNT
        routes = route.routes
        if not routes and position != len(root_path):
            return UNKNOWN_MOUNT
    return UNKNOWN_MOUNT


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
            prefix += normalise(route.path)
            current = list(inner)
            continue
        path = getattr(route, "path", "")
        if hasattr(route, "routes"):
            return normalise(prefix + path) or "/"
        return prefix + normalise(path)

"""Django URL patterns as ``http_route`` label values.

Django knows which pattern served a request: ``request.resolver_match.route`` holds it, with the
prefixes of every ``include()`` already joined (``api/items/<int:id>``).  Other frameworks write
templates as ``/api/items/{id}``, so the pattern is rewritten into that form:

- ``path()`` parameters ``<int:id>`` / ``<slug>`` become ``{id}`` / ``{slug}``;
- ``re_path()`` named groups ``(?P<pk>[0-9]+)`` become ``{pk}``, anonymous groups ``([0-9]+)``
  become their position among the anonymous groups, ``{0}``, ``{1}``, ...;
- the ``^`` and ``$`` anchors go, escaped literals lose their backslash (``\\.`` -> ``.``);
- any other regular-expression syntax is kept as written.

The result only depends on the pattern, never on the requested path, so the label has as many
values as the URLconf has patterns.
"""

from __future__ import annotations

import re
from functools import lru_cache

from django.http import HttpRequest

# Django's own syntax for a path() parameter: <converter:name> or <name>.
_PATH_PARAMETER = re.compile(r"<(?:[^>:]+:)?([^>]+)>")
_NAMED_GROUP = re.compile(r"\(\?P<([^>]+)>")
_TRAILING_ANCHORS = ("\\Z", "\\z", "$")


def request_route(request: HttpRequest) -> str | None:
    """The route template of the pattern that served ``request``; None when nothing matched."""
    match = getattr(request, "resolver_match", None)
    if match is None:
        return None
    return route_template(match.route or "")


@lru_cache(maxsize=1024)
def route_template(pattern: str) -> str:
    """``api/items/<int:id>`` -> ``/api/items/{id}``, ``^items/(?P<pk>\\d+)/$`` -> ``/items/{pk}/``.

    Cached: a project has a fixed set of patterns.
    """
    body = _strip_anchors(pattern)
    template = _Rewriter(body).rewrite()
    return template if template.startswith("/") else "/" + template


def _strip_anchors(pattern: str) -> str:
    body = pattern.removeprefix("^")
    for anchor in _TRAILING_ANCHORS:
        if body.endswith(anchor) and not _escaped(body, len(body) - len(anchor)):
            return body[: -len(anchor)]
    return body


def _escaped(text: str, index: int) -> bool:
    """Whether the character at ``index`` is preceded by an odd number of backslashes."""
    backslashes = 0
    while index > 0 and text[index - 1] == "\\":
        backslashes += 1
        index -= 1
    return backslashes % 2 == 1


class _Rewriter:
    """One left-to-right pass over a pattern; regex groups are skipped as a whole."""

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        self.position = 0
        self.anonymous_groups = 0
        self.out: list[str] = []

    def rewrite(self) -> str:
        pattern = self.pattern
        while self.position < len(pattern):
            char = pattern[self.position]
            if char == "\\":
                self._escape()
            elif char == "[":
                self._copy(self._class_end(self.position))
            elif char == "(":
                self._group()
            elif char == "<":
                self._path_parameter()
            else:
                self._copy(self.position + 1)
        return "".join(self.out)

    def _copy(self, end: int) -> None:
        self.out.append(self.pattern[self.position : end])
        self.position = end

    def _escape(self) -> None:
        escaped = self.pattern[self.position + 1 : self.position + 2]
        if escaped and not escaped.isalnum():
            # An escaped literal such as "\." or "\-" means just that character.
            self.out.append(escaped)
            self.position += 2
        else:
            # A character class such as "\d" stays as written.
            self._copy(self.position + 2)

    def _group(self) -> None:
        rest = self.pattern[self.position :]
        if rest.startswith("(?") and not rest.startswith("(?P<"):
            # Non-capturing groups, look-arounds and inline flags capture nothing: keep the
            # opener and rewrite the inside like the rest of the pattern.
            opener = 4 if rest.startswith(("(?<=", "(?<!")) else 3
            self._copy(self.position + opener)
            return
        named = _NAMED_GROUP.match(rest)
        if named is not None:
            name = named.group(1)
        else:
            name = str(self.anonymous_groups)
            self.anonymous_groups += 1
        self.out.append("{" + name + "}")
        self.position = self._group_end(self.position)

    def _path_parameter(self) -> None:
        parameter = _PATH_PARAMETER.match(self.pattern, self.position)
        if parameter is None:
            self._copy(self.position + 1)
            return
        self.out.append("{" + parameter.group(1) + "}")
        self.position = parameter.end()

    def _group_end(self, start: int) -> int:
        """The index just past the ``)`` that closes the group opened at ``start``."""
        pattern = self.pattern
        depth = 0
        index = start
        while index < len(pattern):
            char = pattern[index]
            if char == "\\":
                index += 2
                continue
            if char == "[":
                index = self._class_end(index)
                continue
            if char == "(":
                depth += 1
            elif char == ")":
                depth -= 1
                if depth == 0:
                    return index + 1
            index += 1
        return len(pattern)  # unbalanced: Django would have rejected it; take the rest

    def _class_end(self, start: int) -> int:
        """The index just past the ``]`` that closes the character class opened at ``start``."""
        pattern = self.pattern
        index = start + 1
        if pattern[index : index + 1] == "^":
            index += 1
        if pattern[index : index + 1] == "]":
            index += 1  # a "]" right after "[" or "[^" is a literal
        while index < len(pattern):
            char = pattern[index]
            if char == "\\":
                index += 2
                continue
            if char == "]":
                return index + 1
            index += 1
        return len(pattern)

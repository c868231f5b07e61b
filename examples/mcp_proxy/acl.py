"""Which client may call which tool: glob patterns per client identity, default deny."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase

from prometheus_client import CollectorRegistry

from asgi_mcp_metrics import instrument_acl


class AccessDenied(PermissionError):
    pass


@dataclass(frozen=True)
class Decision:
    allowed: bool
    rule: str  # read by instrument_acl for the ``rule`` label


class AccessPolicy:
    def __init__(self, rules: Mapping[str, Sequence[str]], *,
                 registry: CollectorRegistry | None = None) -> None:
        self.rules = rules
        # Decorated at run time, for this policy's registry; the decision comes from the
        # returned Decision, tool/backend/identity from the arguments.
        self.decide = instrument_acl(
            tool=lambda self, identity, tool, backend: tool,
            backend=lambda self, identity, tool, backend: backend,
            identity=lambda self, identity, tool, backend: identity,
            registry=registry,
        )(self._decide)

    def _decide(self, identity: str | None, tool: str, backend: str) -> Decision:
        for pattern in self.rules.get(identity or "", ()):
            if fnmatchcase(tool, pattern):
                return Decision(allowed=True, rule=pattern)
        return Decision(allowed=False, rule="default-deny")

    def check(self, identity: str | None, tool: str, backend: str) -> None:
        if not self.decide(identity, tool, backend).allowed:
            raise AccessDenied(f"{identity or 'anonymous'} may not call {tool}")

"""PromQL built from the catalog: the one place the dashboard and the rules spell a query.

Every metric name goes through :meth:`Queries.metric`, which checks it against
:data:`asgi_mcp_metrics.catalog.BY_NAME` and applies the ``namespace`` prefix the way
``prometheus_client`` does (``<namespace>_<name>``), so a renamed metric fails generation
instead of leaving a dead panel or a silent alert behind.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..catalog import BY_NAME

#: ``outcome`` values of ``mcp_tool_calls_total`` that count as failures.
FAILED = 'outcome=~"error|tool_error"'
#: JSON-RPC codes that are the caller's fault (parse error, invalid request, unknown method,
#: invalid params, resource not found): left out of server error ratios.
CALLER_FAULTS = "-32700|-32600|-32601|-32602|-32002"

TOOL_CALLS = "mcp_tool_calls_total"
TOOL_DURATION = "mcp_tool_call_duration_seconds"
OPERATION_DURATION = "mcp_server_operation_duration_seconds"


@dataclass(frozen=True)
class Queries:
    """Query builders for one namespace and one series selector.

    ``selector`` is a list of label matchers added to every series: template variables in
    the dashboard (``job=~"$job"``), the user's ``--selector`` in rules.
    """

    namespace: str = ""
    selector: tuple[str, ...] = ()

    def metric(self, name: str, suffix: str = "") -> str:
        spec = BY_NAME.get(name)
        if spec is None:
            raise KeyError(f"{name} is not in the catalog")
        if suffix and spec.kind != "histogram":
            raise KeyError(f"{name} is a {spec.kind}: no {suffix} series")
        full = f"{self.namespace}_{name}" if self.namespace else name
        return full + suffix

    def series(self, name: str, *matchers: str, suffix: str = "") -> str:
        labels = ", ".join((*self.selector, *matchers))
        return f"{self.metric(name, suffix)}{{{labels}}}" if labels else self.metric(name, suffix)

    def rate(self, name: str, window: str, *matchers: str, by: Sequence[str] = (),
             suffix: str = "", func: str = "rate") -> str:
        inner = f"{func}({self.series(name, *matchers, suffix=suffix)}[{window}])"
        return f"sum{_by(by)}({inner})"

    def count_rate(self, name: str, window: str, *matchers: str,
                   by: Sequence[str] = ()) -> str:
        """Observations per second of a histogram."""
        return self.rate(name, window, *matchers, by=by, suffix="_count")

    def quantile(self, q: float, name: str, window: str, *matchers: str,
                 by: Sequence[str] = ()) -> str:
        buckets = self.rate(name, window, *matchers, by=("le", *by), suffix="_bucket")
        return f"histogram_quantile({q:g}, {buckets})"

    def mean(self, name: str, window: str, *matchers: str, by: Sequence[str] = ()) -> str:
        return (f"{self.rate(name, window, *matchers, by=by, suffix='_sum')}\n"
                f"  / {self.rate(name, window, *matchers, by=by, suffix='_count')}")

    def gauge(self, name: str, *matchers: str, by: Sequence[str] = (),
              agg: str = "sum") -> str:
        return f"{agg}{_by(by)}({self.series(name, *matchers)})"

    def ratio(self, numerator: str, denominator: str) -> str:
        return f"{numerator}\n  / {denominator}"

    def hit_ratio(self, name: str, window: str, by: Sequence[str] = ()) -> str:
        return self.ratio(self.rate(name, window, 'result="hit"', by=by),
                          self.rate(name, window, by=by))

    def server_error_ratio(self, window: str, by: Sequence[str] = ()) -> str:
        """MCP operations that failed, caller faults left out."""
        failed = self.count_rate(OPERATION_DURATION, window, 'error_type!=""',
                                 f'error_type!~"{CALLER_FAULTS}"', by=by)
        return self.ratio(failed, self.count_rate(OPERATION_DURATION, window, by=by))

    # -- the RED series shared by panels, recording rules and alerts ---------------------------
    def tool_calls(self, window: str, *matchers: str, by: Sequence[str] = ()) -> str:
        return self.rate(TOOL_CALLS, window, *matchers, by=by)

    def tool_failures(self, window: str, *matchers: str, by: Sequence[str] = ()) -> str:
        return self.rate(TOOL_CALLS, window, FAILED, *matchers, by=by)

    def tool_error_ratio(self, window: str, *matchers: str, by: Sequence[str] = ()) -> str:
        return self.ratio(self.tool_failures(window, *matchers, by=by),
                          self.tool_calls(window, *matchers, by=by))

    def tool_p(self, q: float, window: str, *matchers: str, by: Sequence[str] = ()) -> str:
        return self.quantile(q, TOOL_DURATION, window, *matchers, by=by)


def _by(labels: Sequence[str]) -> str:
    return f" by ({', '.join(labels)}) " if labels else " "

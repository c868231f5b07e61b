"""Binds the catalog to a ``prometheus_client`` registry and guards label values.

:mod:`asgi_mcp_metrics._binding` decides which recorder exists on which registry (one per
namespace); building two middlewares, an endpoint and a dozen decorators on one registry
reuses the same metric objects instead of failing with "Duplicated timeseries".  Label
children are cached so that a hot path pays one dict look-up instead of ``labels()``'s lock
and validation.

Every metric object is built at once (so names, labels and buckets are checked at start-up) but
registered, and so exposed, only when its feature is in use: a layer of the catalog (HTTP, MCP,
tool calls, ACL, backends, LLM) appears as a whole when its front end is bound (``enable``) or
when any of its metrics is first written.  The library's own counters appear one by one, when
they first count something.  A plain web app thus shows its HTTP metrics, not 40 empty families.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from ._version import __version__
from .catalog import METRICS, MetricSpec
from .declared_tools import is_declared_tool
from .multiprocess import directory, warn_about_leftovers
from .surfaces.inflight import InFlight

logger = logging.getLogger("asgi_mcp_metrics")

OTHER = "_OTHER"

#: Layers whose families are shown together; the rest ("self") show each family when written.
_WHOLE_LAYERS = frozenset({"http", "mcp", "tool", "acl", "backend", "llm"})


class Family:
    """A metric plus a cache of its label children (constant labels appended).

    The metric joins the registry at its first child (or when its layer is enabled).
    """

    __slots__ = ("children", "const", "metric", "recorder", "registered", "spec")

    def __init__(self, recorder: Recorder, spec: MetricSpec, metric: Any,
                 const: tuple[str, ...]) -> None:
        self.recorder = recorder
        self.spec = spec
        self.metric = metric
        self.const = const
        self.registered = False
        self.children: dict[tuple[str, ...], Any] = {}

    def labels(self, *values: str) -> Any:
        child = self.children.get(values)
        if child is None:
            if not self.registered:
                self.recorder.show(self)
            child = self.metric.labels(*values, *self.const)
            self.children[values] = child
        return child


class LabelGuard:
    """Keeps one label's values bounded.

    A value is kept when it is allowed (``allowed`` is None, or the value is in it, or
    ``known`` says so) and fewer than ``cap`` distinct values have been kept so far; anything
    else becomes ``_OTHER`` and the overflow is counted.
    """

    __slots__ = ("_lock", "admitted", "allowed", "cap", "label", "recorder")

    def __init__(self, recorder: Recorder, label: str, cap: int,
                 allowed: Iterable[str] | None = None) -> None:
        self.recorder = recorder
        self.label = label
        self.cap = cap
        self.allowed = frozenset(allowed) if allowed is not None else None
        self.admitted: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, value: str, metric: str, *, known: bool = True) -> str:
        if value in self.admitted or not value:
            return value
        if known and (self.allowed is None or value in self.allowed):
            with self._lock:
                if len(self.admitted) < self.cap:
                    self.admitted.add(value)
                    return value
        self.recorder.label_overflow.labels(metric, self.label).inc()
        return OTHER


class Recorder:
    """All metrics of the catalog on one registry, plus the label guards."""

    def __init__(self, registry: CollectorRegistry, *, namespace: str = "",
                 constant_labels: Mapping[str, str] | None = None,
                 buckets: Mapping[str, tuple[float, ...]] | None = None,
                 max_tool_names: int = 200, max_label_values: int = 100,
                 identity_allowlist: Iterable[str] = (), max_identities: int = 50) -> None:
        self.registry = registry
        self.namespace = namespace
        const = dict(constant_labels or {})
        self.constant_labels = const
        self.families: dict[str, Family] = {}
        self._register_lock = threading.Lock()
        overrides = dict(buckets or {})
        for spec in METRICS:
            # A constant label a metric already has (``variant`` on build_info) stays the
            # metric's own: its callers set it.
            extra = {name: value for name, value in const.items() if name not in spec.labels}
            self.families[spec.name] = Family(
                self, spec, _build(spec, namespace, tuple(extra), overrides),
                tuple(extra.values()))
        self.label_overflow = self.families["asgi_mcp_metrics_label_overflow_total"]
        self.internal_errors = self.families["asgi_mcp_metrics_internal_errors_total"]
        self.callback_errors = self.families["asgi_mcp_metrics_callback_errors_total"]
        self.parse_limits = self.families["asgi_mcp_metrics_parse_limit_total"]
        # Scrape-time gauges (set_function) are read by this process's collect only; with
        # several workers their values are written to this worker's files by these instead.
        path = directory()
        self.multiprocess = path is not None
        self._refreshers: list[Callable[[], None]] = []
        if path is not None:
            warn_about_leftovers(path)
        self.families["asgi_mcp_metrics_info"].labels(__version__).set(1)

        self.tool_names = LabelGuard(self, "gen_ai_tool_name", max_tool_names)
        self.identities = LabelGuard(self, "identity", max_identities,
                                     tuple(identity_allowlist) or None)
        self._guards: dict[str, LabelGuard] = {}
        self._max_label_values = max_label_values
        # Names learned on the wire (tools/list and prompts/list answers, successful calls);
        # bounded so that a hostile server response cannot grow them without limit.
        self.learned_tools: set[str] = set()
        self.learned_prompts: set[str] = set()
        self._max_learned = max(10 * max_tool_names, 1000)
        #: Requests in flight, for the operator surfaces (filled only when they are on).
        self.inflight = InFlight()

    def __getitem__(self, name: str) -> Family:
        return self.families[name]

    def enable(self, layer: str) -> None:
        """Expose every family of ``layer`` (``http``, ``mcp``, ``tool``, ``acl``, ``backend``,
        ``llm``): its front end is in use, so its families are shown even before they count."""
        for family in self.families.values():
            if family.spec.layer == layer and not family.registered:
                self._register(family)

    def show(self, family: Family) -> None:
        """``family`` is being written: expose it, with its whole layer where layers go together."""
        if family.spec.layer in _WHOLE_LAYERS:
            self.enable(family.spec.layer)
        else:
            self._register(family)

    def add_refresher(self, refresh: Callable[[], None]) -> None:
        """Run ``refresh`` before every scrape this worker answers (multiprocess mode)."""
        with self._register_lock:
            self._refreshers.append(refresh)

    def refresh(self) -> None:
        for refresh in tuple(self._refreshers):
            try:
                refresh()
            except Exception:
                self.internal_error("refresh")

    def _register(self, family: Family) -> None:
        with self._register_lock:
            if not family.registered:
                self.registry.register(family.metric)
                family.registered = True

    def guard(self, label: str) -> LabelGuard:
        """The guard of a bounded label other than tool and identity (backend, rule, model...)."""
        guard = self._guards.get(label)
        if guard is None:
            guard = self._guards.setdefault(
                label, LabelGuard(self, label, self._max_label_values))
        return guard

    def learn_tools(self, names: Iterable[str]) -> None:
        self._learn(self.learned_tools, names)

    def learn_prompts(self, names: Iterable[str]) -> None:
        self._learn(self.learned_prompts, names)

    def _learn(self, learned: set[str], names: Iterable[str]) -> None:
        for name in names:
            if len(learned) >= self._max_learned:
                break
            learned.add(name)

    def prompt_label(self, name: str | None, metric: str) -> str:
        """A prompt name as a label value: known prompts only, capped, else ``_OTHER``."""
        if not name:
            return ""
        return self.guard("gen_ai_prompt_name")(name, metric,
                                                known=name in self.learned_prompts)

    def tool_label(self, name: str | None, metric: str) -> str:
        """A tool name as a label value: known tools only, capped, else ``_OTHER``."""
        if not name:
            return ""
        known = name in self.learned_tools or is_declared_tool(name)
        return self.tool_names(name, metric, known=known)

    def adopt_labels(self, old: Recorder) -> None:
        """Take over the label values ``old`` admitted and the names it learned."""
        self.tool_names.admitted |= old.tool_names.admitted
        self.identities.admitted |= old.identities.admitted
        for label, guard in old._guards.items():
            self.guard(label).admitted |= guard.admitted
        self.learn_tools(old.learned_tools)
        self.learn_prompts(old.learned_prompts)

    def internal_error(self, where: str) -> None:
        """Record (and log) an error of ours that must not reach the application."""
        logger.exception("asgi_mcp_metrics: internal error in %s (the request is unaffected)",
                         where)
        with contextlib.suppress(Exception):  # the registry itself is broken: nothing to do
            self.internal_errors.labels(where).inc()

    def callback_error(self, callback: str) -> None:
        logger.exception("asgi_mcp_metrics: user callable %s raised; recorded and ignored",
                         callback)
        self.callback_errors.labels(callback).inc()


def _build(spec: MetricSpec, namespace: str, const_names: tuple[str, ...],
           overrides: Mapping[str, tuple[float, ...]]) -> Any:
    """The metric object, not yet registered (``registry=None``)."""
    labels = (*spec.labels, *const_names)
    if spec.kind == "counter":
        name = spec.name[: -len("_total")]
        return Counter(name, spec.help, labels, namespace=namespace, registry=None)
    if spec.kind == "gauge":
        return Gauge(spec.name, spec.help, labels, namespace=namespace, registry=None,
                     multiprocess_mode=spec.multiprocess_mode)  # type: ignore[arg-type]
    buckets = overrides.get(spec.buckets_option, spec.buckets) if spec.buckets_option else \
        spec.buckets
    return Histogram(spec.name, spec.help, labels, namespace=namespace, registry=None,
                     buckets=buckets)

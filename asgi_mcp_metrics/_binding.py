"""Which recorder each piece of instrumentation records into, decided once per registry.

A registry holds the catalog once per namespace; that *binding* is made by whoever configures
it, at the line that configures it:

* the front ends (``instrument()``, ``MetricsMiddleware``, Django's app config and
  ``get_asgi_application()``) and any instrumentation given ``settings=`` bind **explicitly**:
  their settings shape the metrics.  A second explicit configuration with another shape
  raises :class:`~asgi_mcp_metrics.config.ConfigError` right there, naming both values and
  where each came from;
* everything else (decorators, ``LLMMetrics``, ``BackendMonitor``, the SDK adapters and the
  metrics endpoint without ``settings=``) *joins* the registry's binding.  Used before any
  front end configured the registry, it binds **provisionally** with ``Settings.load()``
  (environment, TOML); the first explicit configuration then takes that binding over and
  carries over what was recorded so far, so set-up order never matters.

Joining shows the instrumentation's ``layer`` of the catalog in the exposition
(:meth:`Recorder.enable`) as soon as the registry is bound, and runs its ``on_bind`` callback
(series that exist from start-up: ``mcp_backend_up 0``, ACL decisions at 0).
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import weakref
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry

from .config import ConfigError, Configured, Settings, configure, load_configured
from .recorder import Family, Recorder

__all__ = ["Binding", "bind", "get_recorder"]

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))

#: The settings that decide how the metrics look; the others only steer what is recorded.
SHAPE_FIELDS = ("namespace", "constant_labels", "request_duration_buckets",
                "stream_duration_buckets", "operation_duration_buckets",
                "session_duration_buckets", "max_tool_names", "max_label_values",
                "identity_allowlist", "max_identities")


def caller() -> str:
    """``file:line`` of the first frame outside this package: the line that configured us."""
    frame = sys._getframe(1)
    while frame is not None:
        path = os.path.abspath(frame.f_code.co_filename)
        if not path.startswith(_PACKAGE_DIR + os.sep):
            return f"{frame.f_code.co_filename}:{frame.f_lineno}"
        frame = frame.f_back  # type: ignore[assignment]
    return "<unknown>"  # pragma: no cover


def _shape(settings: Settings) -> tuple[Any, ...]:
    values = []
    for name in SHAPE_FIELDS:
        value = getattr(settings, name)
        if isinstance(value, Mapping):
            value = tuple(sorted(value.items()))
        values.append(value)
    return tuple(values)


class Slot:
    """One namespace of one registry: its recorder and the configuration that shaped it."""

    __slots__ = ("configured", "provisional", "recorder", "shape", "who")

    def __init__(self, recorder: Recorder, configured: Configured, who: str,
                 provisional: bool) -> None:
        self.recorder = recorder
        self.configured = configured
        self.shape = _shape(configured.settings)
        self.who = who
        self.provisional = provisional

    @property
    def settings(self) -> Settings:
        return self.configured.settings


_slots: weakref.WeakKeyDictionary[CollectorRegistry, list[Slot]] = weakref.WeakKeyDictionary()
# Held strongly: a monitor created at import time and kept nowhere still shows its backend
# once the app binds the registry.
_waiting: weakref.WeakKeyDictionary[CollectorRegistry, list[Binding]] = (
    weakref.WeakKeyDictionary())
_lock = threading.RLock()


def bind(registry: CollectorRegistry | None, configured: Configured, who: str, *,
         provisional: bool = False) -> Slot:
    """The binding of ``registry`` for ``configured``; ``who`` says which call asked.

    Idempotent for one shape.  An explicit configuration takes over a provisional binding;
    a second explicit shape for one namespace raises ``ConfigError`` naming both.  The
    OpenTelemetry options take effect here: exemplars on the recorder, the OTLP export started.
    """
    registry = REGISTRY if registry is None else registry
    slot = _bind(registry, configured, who, provisional)
    _open_telemetry(registry, slot, configured, who)
    return slot


def _open_telemetry(registry: CollectorRegistry, slot: Slot, configured: Configured,
                    who: str) -> None:
    settings = configured.settings
    if settings.exemplars:
        slot.recorder.use_exemplars()
    if settings.otlp_endpoint:
        try:
            from .otlp import start_export
            start_export(registry, settings)
        except ImportError as exc:
            raise ConfigError(who, f"{configured.origin('otlp_endpoint')} needs the OTLP "
                                   f"exporter: pip install 'asgi-mcp-metrics[otlp]' ({exc})"
                              ) from exc


def _bind(registry: CollectorRegistry, configured: Configured, who: str,
          provisional: bool) -> Slot:
    shape = _shape(configured.settings)
    with _lock:
        slots = _slots.setdefault(registry, [])
        for slot in slots:
            if slot.shape == shape:
                if slot.provisional and not provisional:
                    slot.configured, slot.who, slot.provisional = configured, who, False
                return slot
        if not provisional:
            for slot in slots:
                if slot.provisional:
                    _take_over(registry, slot, configured, who)
                    return slot
        for slot in slots:
            if slot.shape[0] == shape[0]:
                raise ConfigError(who, _conflict(slot, configured, who))
        slot = Slot(_new_recorder(registry, configured.settings), configured, who, provisional)
        slots.append(slot)
        waiting = list(_waiting.pop(registry, ()))
    for binding in waiting:
        binding.joined()
    return slot


def get_recorder(registry: CollectorRegistry | None = None,
                 settings: Settings | None = None) -> Recorder:
    """The recorder of ``registry`` shaped by ``settings`` (default: ``Settings()``)."""
    configured = Configured(Settings() if settings is None else settings)
    return bind(registry, configured, f"get_recorder() at {caller()}").recorder


def _conflict(slot: Slot, configured: Configured, who: str) -> str:
    for name, old, new in zip(SHAPE_FIELDS, slot.shape, _shape(configured.settings),
                              strict=True):
        if old != new:
            return (f"{name}: this registry's metrics were already configured by {slot.who} "
                    f"with {name}={_show(old)} (from {slot.configured.origin(name)}); this "
                    f"configuration asks for {name}={_show(new)} (from "
                    f"{configured.origin(name)}). Use the same value, another namespace, or "
                    f"another registry.")
    return "conflicting settings for one registry"  # pragma: no cover


def _show(value: object) -> str:
    if isinstance(value, tuple) and all(isinstance(item, tuple) for item in value):
        return repr(dict(value))
    return repr(value)


def _new_recorder(registry: CollectorRegistry, settings: Settings) -> Recorder:
    return Recorder(
        registry,
        namespace=settings.namespace,
        constant_labels=dict(settings.constant_labels),
        buckets={name: tuple(getattr(settings, name)) for name in SHAPE_FIELDS
                 if name.endswith("_buckets")},
        max_tool_names=settings.max_tool_names,
        max_label_values=settings.max_label_values,
        identity_allowlist=tuple(settings.identity_allowlist),
        max_identities=settings.max_identities,
    )


def _take_over(registry: CollectorRegistry, slot: Slot, configured: Configured, who: str) -> None:
    """Rebuild a provisional binding with the app's settings, keeping what it recorded."""
    old = slot.recorder
    _check_histograms(slot, configured, who)
    shown = [name for name, family in old.families.items() if family.registered]
    for name in shown:
        registry.unregister(old[name].metric)
    try:
        new = _new_recorder(registry, configured.settings)
    except Exception:
        for name in shown:
            registry.register(old[name].metric)
        raise
    for name in shown:
        new.show(new[name])
    for name, family in old.families.items():
        _carry(family, new[name])
    new.adopt_labels(old)
    new.exemplars = old.exemplars
    slot.recorder, slot.configured, slot.who, slot.provisional = new, configured, who, False
    slot.shape = _shape(configured.settings)


def _check_histograms(slot: Slot, configured: Configured, who: str) -> None:
    """Observations cannot move into other buckets: that is a conflict, said at start-up."""
    for family in slot.recorder.families.values():
        option = family.spec.buckets_option
        if not option or getattr(configured.settings, option) == getattr(slot.settings, option):
            continue
        if any(child._sum.get() or child._buckets[-1].get()
               for child in family.children.values()):
            raise ConfigError(who, f"{option}: {family.spec.name} already holds observations "
                                   f"recorded by {slot.who} before this configuration; they "
                                   f"cannot move into other buckets. Configure the app first.")


def _carry(old: Family, new: Family) -> None:
    kind = old.spec.kind
    for values, child in old.children.items():
        target = new.labels(*values)
        if kind == "counter":
            amount = child._value.get()
            if amount:
                target.inc(amount)
        elif kind == "gauge":
            target.set(child._value.get())
        else:
            for source, bucket in zip(child._buckets, target._buckets, strict=True):
                bucket.inc(source.get())
            target._sum.inc(child._sum.get())


class Binding:
    """How one piece of in-code instrumentation finds its recorder; thread-safe.

    With ``settings`` it binds explicitly, at construction (a conflict raises there).
    Without, it joins the registry's binding as soon as there is one, or at first use, binding
    provisionally when the registry has none yet.  Joining enables ``layer`` and runs
    ``on_bind``.
    """

    __slots__ = ("_configured", "_layer", "_on_bind", "_slot", "registry", "settings", "who")

    def __init__(self, registry: CollectorRegistry | None = None,
                 settings: Settings | Configured | None = None,
                 on_bind: Callable[[Recorder], None] | None = None, *,
                 layer: str, who: str) -> None:
        self.registry = REGISTRY if registry is None else registry
        configured = configure(settings, {}) if isinstance(settings, Settings) else settings
        self._configured = configured
        self.settings = None if configured is None else configured.settings
        self.who = f"{who} at {caller()}"
        self._layer = layer
        self._on_bind = on_bind
        self._slot: Slot | None = None
        if configured is not None:
            try:
                self._bound(bind(self.registry, configured, self.who))
            except ConfigError:
                raise  # a conflict of configurations: said at the line that made it
            except Exception:
                self.internal_error("bind")  # a broken registry: the code keeps working
        else:
            with _lock:
                if len(_slots.get(self.registry, ())) != 1:
                    _waiting.setdefault(self.registry, []).append(self)
                    return
            self.joined()

    @property
    def bound(self) -> bool:
        return self._slot is not None

    def joined(self) -> None:
        """The registry got bound: join it now (``on_bind`` must not wait for a first use)."""
        try:
            self.resolve()
        except Exception:
            self.internal_error("bind")

    def resolve(self) -> tuple[Recorder, Settings]:
        """The recorder, and the settings: those given, else the binding's."""
        slot = self._slot
        if slot is None:
            slot = self._join()
        return slot.recorder, slot.settings if self.settings is None else self.settings

    def _join(self) -> Slot:
        with _lock:
            if self._slot is not None:
                return self._slot
            slots = _slots.get(self.registry, ())
            if self._configured is not None:
                slot = bind(self.registry, self._configured, self.who)
            elif len(slots) == 1:
                slot = slots[0]
            else:
                slot = bind(self.registry, load_configured(), self.who, provisional=True)
            return self._bound(slot)

    def _bound(self, slot: Slot) -> Slot:
        self._slot = slot
        slot.recorder.enable(self._layer)
        if self._on_bind is not None:
            self._on_bind(slot.recorder)
        return slot

    @property
    def recorder(self) -> Recorder:
        slot = self._slot
        if slot is None:
            slot = self._join()
        return slot.recorder

    def internal_error(self, where: str) -> None:
        """Log and count an error of ours; never raises, even when nothing can be bound."""
        try:
            recorder = self.recorder
        except Exception:
            logging.getLogger("asgi_mcp_metrics").exception(
                "asgi_mcp_metrics: %s failed and no registry could be bound", where)
            return
        recorder.internal_error(where)

    def callback_error(self, callback: str) -> None:
        """Log and count a user callable that raised; never raises."""
        try:
            recorder = self.recorder
        except Exception:
            logging.getLogger("asgi_mcp_metrics").exception(
                "asgi_mcp_metrics: user callable %s raised", callback)
            return
        recorder.callback_error(callback)


def refresh_callbacks(registry: object) -> None:
    """Write the scrape-time gauges of every recorder on ``registry`` to this worker's files."""
    if not isinstance(registry, CollectorRegistry):
        return
    for slot in bound_slots(registry):
        slot.recorder.refresh()


def library_metrics(registry: object) -> frozenset[Any]:
    """The metric objects the recorders on ``registry`` built (for the exposition encoder).

    With exemplars on, a recorder's histograms are left to ``prometheus_client``'s encoder,
    which writes the exemplars (the fast encoder renders values only)."""
    if not isinstance(registry, CollectorRegistry):
        return frozenset()
    return frozenset(family.metric for slot in bound_slots(registry)
                     for family in slot.recorder.families.values()
                     if not (slot.recorder.exemplars and family.spec.kind == "histogram"))


def bound_slots(registry: CollectorRegistry) -> Iterable[Slot]:
    """The bindings of ``registry`` (for tests and diagnostics)."""
    with _lock:
        return tuple(_slots.get(registry, ()))

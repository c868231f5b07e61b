"""Late binding of in-code instrumentation (decorators, monitors) to a recorder.

Decorators run at import time, long before the application builds its middleware, so they
cannot pick a registry or settings then: the settings the app ends up with may differ, and
binding early would make the middleware fail with a shape conflict.  A :class:`Binding`
resolves on first use instead:

* explicit ``registry=`` / ``settings=`` win;
* without ``settings=``, when the registry already holds exactly one recorder (the one the
  middleware built), that recorder is reused, so in-code metrics land next to the wire ones;
* otherwise the settings come from ``Settings.load()`` (environment, TOML) on the default
  ``prometheus_client.REGISTRY``.

Binding also shows the front end's ``layer`` of the catalog in the exposition
(:meth:`Recorder.enable`): from then on its families are listed, even before they count.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from prometheus_client import REGISTRY, CollectorRegistry

from .config import Settings
from .recorder import Recorder, existing_recorder, get_recorder


class Binding:
    """Resolves ``(recorder, settings)`` once, on first use; thread-safe."""

    __slots__ = ("_bound", "_layer", "_lock", "_on_bind", "registry", "settings")

    def __init__(self, registry: CollectorRegistry | None = None,
                 settings: Settings | None = None,
                 on_bind: Callable[[Recorder], None] | None = None, *, layer: str) -> None:
        self.registry = registry
        self.settings = settings
        self._layer = layer
        self._on_bind = on_bind
        self._bound: tuple[Recorder, Settings] | None = None
        self._lock = threading.Lock()

    @property
    def bound(self) -> bool:
        return self._bound is not None

    def resolve(self) -> tuple[Recorder, Settings]:
        bound = self._bound
        if bound is not None:
            return bound
        with self._lock:
            if self._bound is None:
                registry = REGISTRY if self.registry is None else self.registry
                settings = self.settings
                recorder = None if settings is not None else existing_recorder(registry)
                if settings is None:
                    settings = Settings.load()
                if recorder is None:
                    recorder = get_recorder(registry, settings)
                recorder.enable(self._layer)
                if self._on_bind is not None:
                    self._on_bind(recorder)
                self._bound = (recorder, settings)
            return self._bound

    def resolve_if_ready(self) -> None:
        """Bind now when that cannot conflict with the app's own settings.

        That is when settings were given explicitly, or the registry already holds the app's
        recorder.  Used to create series that must exist from start-up (ACL decisions at 0).
        """
        registry = REGISTRY if self.registry is None else self.registry
        if self.settings is not None or existing_recorder(registry) is not None:
            self.resolve()

    @property
    def recorder(self) -> Recorder:
        return self.resolve()[0]

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

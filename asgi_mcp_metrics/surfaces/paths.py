"""Where each surface is served, derived from the settings."""

from __future__ import annotations

from dataclasses import dataclass

from ..config import Settings

__all__ = ["SurfacePaths", "surface_paths"]


@dataclass(frozen=True)
class SurfacePaths:
    """The path of every surface that is switched on (None: off)."""

    ui: str | None
    history: str | None
    live: str | None
    active: str | None
    active_stream: str | None
    totals: str | None
    health: str | None

    @classmethod
    def of(cls, settings: Settings) -> SurfacePaths:
        on = settings.surfaces
        base = settings.metrics_path.rstrip("/")
        ui = (settings.ui_path or f"{base}/ui") if on and settings.surfaces_ui else None
        active = ((settings.active_path or f"{base}/active")
                  if on and settings.surfaces_active else None)
        totals = ((settings.totals_path or f"{base}/totals")
                  if on and settings.surfaces_totals else None)
        health = settings.health_path if on and settings.surfaces_health else None
        return cls(
            ui=ui,
            history=f"{ui.rstrip('/')}/history" if ui else None,
            live=f"{ui.rstrip('/')}/stream" if ui else None,
            active=active,
            active_stream=f"{active.rstrip('/')}/stream" if active else None,
            totals=totals,
            health=health,
        )

    def items(self) -> list[tuple[str, str]]:
        """``(name, path)`` of every surface that is on."""
        names = ("ui", "history", "live", "active", "active_stream", "totals", "health")
        return [(name, path) for name in names if (path := getattr(self, name)) is not None]


def surface_paths(settings: Settings) -> tuple[str, ...]:
    """Every path a surface answers on; the middleware does not measure them."""
    return tuple(path for _, path in SurfacePaths.of(settings).items())

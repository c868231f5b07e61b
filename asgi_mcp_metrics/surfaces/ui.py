"""The dashboard page: one HTML document with its script, uPlot and styles inlined.

No build step, no CDN: everything the page needs ships in ``surfaces/static`` and is served in
one response.
"""

from __future__ import annotations

import functools
from importlib.resources import files

__all__ = ["page"]


@functools.cache
def page() -> bytes:
    """The page, assembled once per process."""
    static = files(__package__).joinpath("static")

    def read(name: str) -> str:
        return static.joinpath(name).read_text(encoding="utf-8")

    html = read("ui.html")
    # The script text cannot close its own element.
    for marker, name in (("/*UPLOT_CSS*/", "uPlot.min.css"), ("/*UPLOT_JS*/", "uPlot.iife.min.js"),
                         ("/*UI_JS*/", "ui.js")):
        html = html.replace(marker, read(name).replace("</script", "<\\/script"))
    return html.encode("utf-8")

"""The exposition encoder: the same bytes as ``prometheus_client``, several times faster.

``prometheus_client`` renders a family by collecting it into ``Sample`` tuples (a new label dict
per sample, a sorted copy of it per line) and formatting each one. For the library's own
families (plain ``Counter``, ``Gauge`` and ``Histogram`` objects the
:class:`~.recorder.Recorder` built) this encoder keeps, per label child, the text of every line
up to its value, and the UTF-8 text of the whole child with the values it was rendered from: a
counter or histogram child whose values are still those it was last rendered from is not
formatted again, a creation time is formatted once per child, and the body is one join of
such pieces. Every other collector on the registry (process, GC, the user's own) goes through
``prometheus_client``'s encoder unchanged, in registry order, so the body is byte-identical to
``generate_latest`` in the Prometheus text format and in OpenMetrics 1.0.

It reads what ``collect()`` would read (``_metrics``, ``_value`` and the value objects' own
``_value``, ``_buckets``, ``_sum``, ``_created``, ``_upper_bounds``), internals of
``prometheus_client``: every supported minor version is pinned by its own tox environment
(``pc020`` ... ``pc026``) running the property test that compares both encoders. Anything the
fast path does not know (another escaping scheme or version, a registry with ``target_info``,
names outside the legacy character set) is rendered by ``prometheus_client`` as a whole.
"""

from __future__ import annotations

import re
import time
import weakref
from collections.abc import Callable, Collection, Iterable, Iterator
from typing import Any

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client import exposition as text_exposition
from prometheus_client import metrics as metrics_module
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics import exposition as om_exposition
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.utils import floatToGoString

__all__ = ["OPENMETRICS", "TEXT", "encode", "fast_format"]

TEXT = "text"
OPENMETRICS = "openmetrics"
_EOF = b"# EOF\n"
_INF = float("inf")
_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")

Encoder = Callable[[Collector], bytes]
_float_to_go: Callable[[float], str] = floatToGoString


def fast_format(encoder: Encoder) -> str | None:
    """``TEXT`` or ``OPENMETRICS`` when ``encoder`` (from ``choose_encoder``) is one this module
    reproduces; None for any other (an escaping scheme other than underscores, OpenMetrics 2)."""
    if encoder is text_exposition.generate_latest:
        return TEXT
    func = getattr(encoder, "func", encoder)
    keywords = getattr(encoder, "keywords", {})
    if (func is om_exposition.generate_latest
            and keywords.get("escaping", "underscores") == "underscores"
            and keywords.get("version", "1.0.0") == "1.0.0"
            and not getattr(encoder, "args", ())):
        return OPENMETRICS
    return None


def encode(registry: CollectorRegistry, fmt: str, own: Collection[Any], encoder: Encoder, *,
           created: bool = True, wrap: Callable[[Collector], Collector] | None = None,
           pause: Callable[[], None] | None = None) -> bytes:
    """``registry`` in format ``fmt``, the collectors in ``own`` by this module, the rest by
    ``encoder`` (each run of them through ``wrap`` first, when given); ``created=False`` leaves
    the ``_created`` samples of ``own`` out (``wrap`` does so for the rest).  ``pause`` is
    called each time :data:`PAUSE_AFTER_SECONDS` or more of rendering have passed since the last
    pause, checked after each label child of ``own``, before the other collectors' text and
    before the body's final join."""
    with registry._lock:
        collectors = list(registry._collector_to_names)
        target_info = registry._target_info
    if target_info:
        source: Collector = registry if wrap is None else wrap(registry)
        return encoder(source)
    created = created and metrics_module._use_created
    # Every piece of the body in order, the kept texts of label children among them: joined
    # once, at the end.
    parts: list[bytes] = []
    others: list[Collector] = []
    pacer = None if pause is None else _Pacer(pause, parts)

    def flush() -> None:
        if others:
            if pacer is not None:
                pacer.check()
            batch: Collector = _Collectors(tuple(others))
            body = encoder(batch if wrap is None else wrap(batch))
            parts.append(body[:-len(_EOF)] if fmt == OPENMETRICS else body)
            others.clear()

    for collector in collectors:
        family = _family(collector) if collector in own else None
        if family is None:
            others.append(collector)
        else:
            flush()
            family.render(collector, fmt, created, parts, pacer)
    flush()
    if fmt == OPENMETRICS:
        parts.append(_EOF)
    if pacer is not None:
        pacer.check()
    return b"".join(parts)


class _Collectors(Collector):
    """Some of a registry's collectors, in its order."""

    def __init__(self, collectors: tuple[Collector, ...]) -> None:
        self._collectors = collectors

    def collect(self) -> Iterator[Metric]:
        for collector in self._collectors:
            yield from collector.collect()


_families: weakref.WeakKeyDictionary[Any, _Family | None] = weakref.WeakKeyDictionary()


def _family(metric: Any) -> _Family | None:
    try:
        return _families[metric]
    except KeyError:
        family = _Family(metric) if _supported(metric) else None
        _families[metric] = family
        return family


def _supported(metric: Any) -> bool:
    kind = type(metric)
    if kind not in (Counter, Gauge, Histogram):
        return False
    names = [metric._name + suffix for suffix in ("_total", "_created", "_bucket")]
    return (all(_METRIC_NAME.fullmatch(name) for name in names)
            and all(_LABEL_NAME.fullmatch(label) for label in metric._labelnames))


def _escape_value(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _go(value: float) -> str:
    """``floatToGoString`` for the values a scrape formats; ``repr`` where both agree."""
    if -_INF < value < 1e6:
        return repr(value)
    return _float_to_go(value)


class _Child:
    """One label child of a family in one format: its line prefixes and, from the last scrape,
    the values it was rendered with and the text they gave."""

    __slots__ = ("child", "created", "created_text", "prefix", "state", "text")

    def __init__(self, child: Any, prefix: tuple[str, ...]) -> None:
        self.child = child
        self.prefix = prefix
        self.state: Any = None
        self.text = b""
        self.created: float | None = None
        self.created_text = b""

    def created_line(self) -> bytes:
        # A child's creation time changes only when it is reset; its text is the dearest
        # to format (``floatToGoString``), so it is kept.
        created = self.child._created
        if created != self.created:
            self.created = created
            self.created_text = f"{self.prefix[-1]}{_go(created)}\n".encode()
        return self.created_text


class _Family:
    """One metric object's headers and, per label child and format, its :class:`_Child`."""

    __slots__ = ("bounds", "children", "has_sum", "kind", "labelnames", "name", "om_doc",
                 "text_doc", "unit")

    def __init__(self, metric: Any) -> None:
        # No reference to ``metric``: it is the key this object is cached under, weakly.
        self.kind: str = metric._type
        self.name: str = metric._name
        self.unit: str = metric._unit
        self.labelnames: tuple[str, ...] = tuple(metric._labelnames)
        bounds: list[float] = list(getattr(metric, "_upper_bounds", ()))
        self.bounds = tuple(_float_to_go(bound) for bound in bounds)
        self.has_sum = bool(bounds) and bounds[0] >= 0
        documentation: str = metric._documentation
        self.text_doc = documentation.replace("\\", r"\\").replace("\n", r"\n")
        self.om_doc = _escape_value(documentation)
        # {(fmt, label values): child}; rebuilt from the live children at every scrape.
        self.children: dict[tuple[str, tuple[str, ...]], _Child] = {}

    def _live(self, metric: Any) -> list[tuple[tuple[str, ...], Any]]:
        if not self.labelnames:
            return [((), metric)]
        with metric._lock:
            return list(metric._metrics.items())

    def render(self, metric: Any, fmt: str, created: bool, out: list[bytes],
               pacer: _Pacer | None = None) -> None:
        """Append this family's text in format ``fmt``, in UTF-8, to ``out``."""
        live = self._live(metric)
        old = self.children
        children = {}
        for values, child in live:
            key = (fmt, values)
            entry = old.get(key)
            if entry is None or entry.child is not child:  # new, or removed and made again
                entry = _Child(child, self._prefix(fmt, values))
            children[key] = entry
        if len(old) != len(children) or any(key[0] != fmt for key in old):
            # Keep the other format's entries of live children; drop removed children.
            values_live = {values for values, _ in live}
            self.children = {**{k: v for k, v in old.items() if k[1] in values_live},
                             **children}
        else:
            self.children = children
        entries = pacer.paced(children.values()) if pacer is not None else children.values()
        if self.kind == "histogram":
            self._histogram(fmt, created, entries, out)
        elif self.kind == "counter":
            self._counter(fmt, created, entries, out)
        else:
            self._gauge(fmt, entries, out)

    def _header(self, fmt: str, name: str, kind: str) -> bytes:
        if fmt == TEXT:
            return f"# HELP {name} {self.text_doc}\n# TYPE {name} {kind}\n".encode()
        unit = f"# UNIT {name} {self.unit}\n" if self.unit else ""
        return f"# HELP {name} {self.om_doc}\n# TYPE {name} {kind}\n{unit}".encode()

    def _prefix(self, fmt: str, values: tuple[str, ...]) -> tuple[str, ...]:
        """The text of each line of one child up to its value (and the space before it)."""
        pairs = sorted(zip(self.labelnames, values, strict=True))
        before = "".join(f'{k}="{_escape_value(v)}",' for k, v in pairs if k < "le")
        after = "".join(f',{k}="{_escape_value(v)}"' for k, v in pairs if k > "le")
        labels = "{" + ",".join(f'{k}="{_escape_value(v)}"' for k, v in pairs) + "}" \
            if pairs else ""
        name = self.name
        if self.kind == "counter":
            return (f"{name}_total{labels} ", f"{name}_created{labels} ")
        if self.kind == "gauge":
            return (f"{name}{labels} ",)
        buckets = tuple(f'{name}_bucket{{{before}le="{bound}"{after}}} '
                        for bound in self.bounds)
        return (*buckets, f"{name}_count{labels} ", f"{name}_sum{labels} ",
                f"{name}_created{labels} ")

    def _counter(self, fmt: str, created: bool, entries: Iterable[_Child],
                 out: list[bytes]) -> None:
        text = fmt == TEXT
        out.append(self._header(fmt, f"{self.name}_total" if text else self.name, "counter"))
        append = out.append
        created_lines: list[bytes] = []
        for entry in entries:
            value = entry.child._value._value
            if value is not entry.state:
                entry.state = value
                # float(): ``reset()`` sets the integer 0.
                entry.text = f"{entry.prefix[0]}{_go(float(value))}\n".encode()
            append(entry.text)
            if created:
                if text:
                    created_lines.append(entry.created_line())
                else:
                    append(entry.created_line())
        if created_lines:
            append(self._header(fmt, f"{self.name}_created", "gauge"))
            out.extend(created_lines)

    def _gauge(self, fmt: str, entries: Iterable[_Child], out: list[bytes]) -> None:
        out.append(self._header(fmt, self.name, "gauge"))
        for entry in entries:
            child = entry.child
            if "_child_samples" in vars(child):  # set_function: the value is read now
                value = float(child._child_samples()[0][2])
            else:
                value = child._value.get()
            out.append(f"{entry.prefix[0]}{_go(value)}\n".encode())

    def _histogram(self, fmt: str, created: bool, entries: Iterable[_Child],
                   out: list[bytes]) -> None:
        out.append(self._header(fmt, self.name, "histogram"))
        has_sum = self.has_sum
        append = out.append
        created_lines: list[bytes] = []
        for entry in entries:
            child = entry.child
            # The values as read now (no lock: each read is of one float object); equal to
            # those of the last render, the child's text is the same too.
            state = [value._value for value in child._buckets]
            if has_sum:
                state.append(child._sum._value)
            if state != entry.state:
                entry.state = state
                entry.text = self._histogram_text(entry.prefix, state, has_sum)
            append(entry.text)
            if created:
                if fmt == TEXT:
                    created_lines.append(entry.created_line())
                else:
                    append(entry.created_line())
        if created_lines:
            append(self._header(fmt, f"{self.name}_created", "gauge"))
            out.extend(created_lines)

    @staticmethod
    def _histogram_text(prefix: tuple[str, ...], state: list[float], has_sum: bool) -> bytes:
        # Most buckets of a histogram hold no observation of their own: their cumulative count
        # is the one before, and so is its text, formatted once for the run of them.
        lines = []
        acc = 0.0
        count = "0.0\n"
        buckets = len(state) - 1 if has_sum else len(state)
        for bucket in range(buckets):
            observed = state[bucket]
            if observed:
                acc += observed
                count = f"{_go(acc)}\n"
            lines.append(prefix[bucket] + count)
        lines.append(prefix[buckets] + count)
        if has_sum:
            lines.append(f"{prefix[buckets + 1]}{_go(state[-1])}\n")
        return "".join(lines).encode()


#: Seconds of rendering between two calls of ``encode``'s ``pause``: about the longest a request
#: that arrives while an offloaded render holds the GIL waits for it (the other collectors' text
#: and the body's final join are single steps that can take longer).
PAUSE_AFTER_SECONDS = 0.0001


class _Pacer:
    """Calls ``pause`` once :data:`PAUSE_AFTER_SECONDS` of rendering have passed since the last
    call, on one clock for the whole body (many small families add up too).  At each pause the
    pieces appended since the one before become one: the body's final join then copies a few
    hundred chunks, not tens of thousands of pieces, in the one step it holds the GIL."""

    __slots__ = ("_joined", "_parts", "_pause", "_resumed")

    def __init__(self, pause: Callable[[], None], parts: list[bytes]) -> None:
        self._pause = pause
        self._parts = parts
        self._joined = 0
        self._resumed = time.perf_counter()

    def paced(self, entries: Iterable[_Child]) -> Iterator[_Child]:
        clock = time.perf_counter
        for entry in entries:
            yield entry
            if clock() - self._resumed >= PAUSE_AFTER_SECONDS:
                self._rest()

    def check(self) -> None:
        if time.perf_counter() - self._resumed >= PAUSE_AFTER_SECONDS:
            self._rest()

    def _rest(self) -> None:
        parts = self._parts
        if len(parts) - self._joined > 1:
            parts[self._joined:] = [b"".join(parts[self._joined:])]
        self._joined = len(parts)
        self._pause()
        self._resumed = time.perf_counter()

"""The exposition encoder: the same bytes as ``prometheus_client``, several times faster.

``prometheus_client`` renders a family by collecting it into ``Sample`` tuples (a new label
dict per sample, a sorted copy of it per line) and formatting each one.  For the library's own
families (plain ``Counter``, ``Gauge`` and ``Histogram`` objects the :class:`~.recorder.Recorder`
built) this encoder keeps, per label child, the text of every line up to its value, and a scrape
only formats the values.  Every other collector on the registry (process, GC, the user's own)
goes through ``prometheus_client``'s encoder unchanged, in registry order, so the body is
byte-identical to ``generate_latest`` in the Prometheus text format and in OpenMetrics 1.0.

It reads what ``collect()`` would read (``_metrics``, ``_value``, ``_buckets``, ``_sum``,
``_created``, ``_upper_bounds``), internals of ``prometheus_client``: every supported minor
version is pinned by its own tox environment (``pc020`` ... ``pc026``) running the property test
that compares both encoders.  Anything the fast path does not know (another escaping scheme or
version, a registry with ``target_info``, names outside the legacy character set) is rendered by
``prometheus_client`` as a whole.
"""

from __future__ import annotations

import re
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
    called after every :data:`PAUSE_EVERY` label children of ``own``."""
    with registry._lock:
        collectors = list(registry._collector_to_names)
        target_info = registry._target_info
    if target_info:
        source: Collector = registry if wrap is None else wrap(registry)
        return encoder(source)
    created = created and metrics_module._use_created
    parts: list[bytes] = []
    others: list[Collector] = []

    def flush() -> None:
        if others:
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
            parts.append(family.render(collector, fmt, created, pause).encode("utf-8"))
    flush()
    if fmt == OPENMETRICS:
        parts.append(_EOF)
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


class _Family:
    """One metric object's headers and, per label child and format, its line prefixes."""

    __slots__ = ("bounds", "has_sum", "kind", "labelnames", "name", "om_doc", "prefixes",
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
        # {(fmt, label values): line prefixes}; rebuilt from the live children at every scrape.
        self.prefixes: dict[tuple[str, tuple[str, ...]], tuple[str, ...]] = {}

    def _children(self, metric: Any) -> list[tuple[tuple[str, ...], Any]]:
        if not self.labelnames:
            return [((), metric)]
        with metric._lock:
            return list(metric._metrics.items())

    def render(self, metric: Any, fmt: str, created: bool,
               pause: Callable[[], None] | None = None) -> str:
        children = self._children(metric)
        old = self.prefixes
        prefixes = {}
        for values, _ in children:
            key = (fmt, values)
            prefix = old.get(key)
            prefixes[key] = prefix if prefix is not None else self._prefix(fmt, values)
        if len(old) != len(prefixes) or any(key[0] != fmt for key in old):
            # Keep the other format's prefixes of live children; drop removed children.
            live = {values for values, _ in children}
            self.prefixes = {**{k: v for k, v in old.items() if k[1] in live}, **prefixes}
        out: list[str] = []
        lines = [prefixes[(fmt, values)] for values, _ in children]
        rows = _rows(children, lines, pause)
        if self.kind == "histogram":
            self._histogram(fmt, created, rows, out)
        elif self.kind == "counter":
            self._counter(fmt, created, rows, out)
        else:
            self._gauge(fmt, rows, out)
        return "".join(out)

    def _header(self, fmt: str, name: str, kind: str) -> str:
        if fmt == TEXT:
            return f"# HELP {name} {self.text_doc}\n# TYPE {name} {kind}\n"
        unit = f"# UNIT {name} {self.unit}\n" if self.unit else ""
        return f"# HELP {name} {self.om_doc}\n# TYPE {name} {kind}\n{unit}"

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

    def _counter(self, fmt: str, created: bool, rows: Iterable[_Row], out: list[str]) -> None:
        if fmt == TEXT:
            out.append(self._header(fmt, f"{self.name}_total", "counter"))
            created_lines = []
            for (_, child), prefix in rows:
                out.append(f"{prefix[0]}{_go(child._value.get())}\n")
                if created:
                    created_lines.append(f"{prefix[1]}{_go(child._created)}\n")
            if created_lines:
                out.append(self._header(fmt, f"{self.name}_created", "gauge"))
                out.extend(created_lines)
            return
        out.append(self._header(fmt, self.name, "counter"))
        for (_, child), prefix in rows:
            out.append(f"{prefix[0]}{_go(child._value.get())}\n")
            if created:
                out.append(f"{prefix[1]}{_go(child._created)}\n")

    def _gauge(self, fmt: str, rows: Iterable[_Row], out: list[str]) -> None:
        out.append(self._header(fmt, self.name, "gauge"))
        for (_, child), prefix in rows:
            if "_child_samples" in vars(child):  # set_function: the value is read now
                value = float(child._child_samples()[0][2])
            else:
                value = child._value.get()
            out.append(f"{prefix[0]}{_go(value)}\n")

    def _histogram(self, fmt: str, created: bool, rows: Iterable[_Row], out: list[str]) -> None:
        out.append(self._header(fmt, self.name, "histogram"))
        has_sum = self.has_sum
        append = out.append
        created_lines = []
        for (_, child), prefix in rows:
            acc = 0.0
            bucket = 0
            for bucket, value in enumerate(child._buckets):
                acc += value.get()
                append(f"{prefix[bucket]}{_go(acc)}\n")
            append(f"{prefix[bucket + 1]}{_go(acc)}\n")
            if has_sum:
                append(f"{prefix[bucket + 2]}{_go(child._sum.get())}\n")
            if created:
                line = f"{prefix[bucket + 3]}{_go(child._created)}\n"
                if fmt == TEXT:
                    created_lines.append(line)
                else:
                    append(line)
        if created_lines:
            append(self._header(fmt, f"{self.name}_created", "gauge"))
            out.extend(created_lines)



#: One label child (its values and the child) with its line prefixes.
_Row = tuple[tuple[tuple[str, ...], Any], tuple[str, ...]]
#: Label children rendered between two calls of ``encode``'s ``pause``.
PAUSE_EVERY = 16


def _rows(children: list[tuple[tuple[str, ...], Any]], lines: list[tuple[str, ...]],
          pause: Callable[[], None] | None) -> Iterable[_Row]:
    rows = zip(children, lines, strict=True)
    return rows if pause is None else _paced(rows, pause)


def _paced(rows: Iterable[_Row], pause: Callable[[], None]) -> Iterator[_Row]:
    for index, row in enumerate(rows, 1):
        yield row
        if not index % PAUSE_EVERY:
            pause()

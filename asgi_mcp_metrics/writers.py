"""Observations and increments at the price the recording path can afford.

``prometheus_client``'s ``Histogram.observe`` checks that the child may be observed, then walks
the bucket bounds one by one in Python.  A :class:`HistogramWriter` is made once per label child
(the recording path caches its children): the check is done then, and an observation is a
binary search plus the same two increments of the child's own values - its sum and one bucket -
so the stored values, in-process or in ``PROMETHEUS_MULTIPROC_DIR`` files, are exactly what
``observe`` would have stored.  An observation with an exemplar goes through ``observe`` itself.

A counter's or gauge's child increments one value object: :func:`value_of` hands it out once
(after the same check), so the recording path calls ``inc`` on it directly - what the child's
``inc`` (and a gauge's ``dec``) would do, minus the checks.

In-process (not ``PROMETHEUS_MULTIPROC_DIR``) every value is a ``MutexValue``, whose ``inc`` adds
under the value's own lock in a ``with`` statement; the statement alone (two bound methods made
and ``__exit__`` called, per increment) costs about as much as the rest.  Such a value is written
through a :class:`LockedValue`: the same addition under the same lock, taken and released
directly.  Other values (multiprocess files) are written through their own ``inc``.

This reads the child's ``_value``, ``_sum``, ``_buckets`` and ``_upper_bounds`` and a
``MutexValue``'s ``_value`` and ``_lock``; the tox environments ``pc020`` ... ``pc026`` run
``tests/test_writers.py`` against every supported ``prometheus_client`` minor version, which
compares both ways of observing value by value.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Any

from prometheus_client.values import MutexValue


class LockedValue:
    """Adds to a ``MutexValue`` as its ``inc`` does, under its lock, minus the ``with``."""

    __slots__ = ("_lock", "value")

    def __init__(self, value: MutexValue) -> None:
        self.value = value
        self._lock = value._lock

    def inc(self, amount: float) -> None:
        lock = self._lock
        lock.acquire()
        try:
            self.value._value += amount
        finally:
            lock.release()


def writable(value: Any) -> Any:
    """What to call ``inc`` on to add to ``value``: a :class:`LockedValue` for a ``MutexValue``
    (in-process), the value itself otherwise (multiprocess mode)."""
    return LockedValue(value) if _is_locked(value) else value


def _is_locked(value: Any) -> bool:
    return type(value) is MutexValue and hasattr(value, "_lock") and hasattr(value, "_value")


class HistogramWriter:
    """Observes into one histogram child (the child's ``observe``, minus its overhead)."""

    __slots__ = ("_bounds", "_buckets", "_locked", "_sum", "child")

    def __init__(self, child: Any) -> None:
        self.child = child
        child._raise_if_not_observable()
        self._bounds: list[float] = list(child._upper_bounds)
        self._buckets: list[Any] = list(child._buckets)
        self._sum: Any = child._sum
        #: In-process: the additions are made here, as :class:`LockedValue` makes them.
        self._locked = all(map(_is_locked, (self._sum, *self._buckets)))

    def observe(self, amount: float, exemplar: dict[str, str] | None = None) -> None:
        """Like the child's ``observe``; ``amount`` is a duration or a size (never NaN)."""
        if exemplar:
            self.child.observe(amount, exemplar)
            return
        total = self._sum
        # The first bucket whose upper bound is >= amount, as observe() finds it (the last
        # bound is +Inf, so there always is one).
        bucket = self._buckets[bisect_left(self._bounds, amount)]
        if not self._locked:
            total.inc(amount)
            bucket.inc(1)
            return
        # (Two frames fewer than calling LockedValue.inc twice.)
        lock = total._lock
        lock.acquire()
        try:
            total._value += amount
        finally:
            lock.release()
        lock = bucket._lock
        lock.acquire()
        try:
            bucket._value += 1
        finally:
            lock.release()


def value_of(child: Any) -> Any:
    """The value a counter or gauge child increments: ``value_of(c).inc(1)`` is ``c.inc()``,
    ``value_of(g).inc(-1)`` is ``g.dec()`` (not for a gauge in ``mostrecent`` mode)."""
    child._raise_if_not_observable()
    return writable(child._value)

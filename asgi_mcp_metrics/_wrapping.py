"""Run a callable of any kind and tell a probe when the call began and how it ended.

The wrapper is a ``wrapt.FunctionWrapper``, so the decorated object keeps its signature,
``__wrapped__``, ``inspect.iscoroutinefunction`` and descriptor behaviour (methods,
classmethods, staticmethods).  The kind of the callable (sync, async, generator, async
generator) is decided once, at decoration; each kind has a small driver that only knows how to
wait for the end of the call.  What is recorded lives in the probe, once.

A probe must never change the outcome of the call: the drivers run its hooks behind a guard,
and a hook that raises is reported to the probe's ``internal_error`` and otherwise ignored.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable, Generator
from typing import Any, Literal, Protocol

import wrapt

logger = logging.getLogger("asgi_mcp_metrics")

Kind = Literal["sync", "async", "generator", "async_generator"]

#: Attribute (wrapt's ``_self_`` namespace: stored on the wrapper, not the wrapped function)
#: holding the probe, so code can recognise an instrumented callable.
PROBE_ATTRIBUTE = "_self_asgi_mcp_metrics_probe"


class Probe(Protocol):
    def begin(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Called when the call starts; returns the state handed to :meth:`end`.

        ``args`` are the call's positional arguments as the ``def`` declares them: for a
        method (also a bound method that was wrapped), the instance or class comes first.
        """

    def end(self, state: Any, result: Any, error: BaseException | None) -> None:
        """Called once when the call is over: returned (``error`` None) or raised."""

    def internal_error(self, where: str) -> None:
        """One of the hooks raised; log and count it, never raise."""


def kind_of(target: Any) -> Kind:
    """How a call of ``target`` ends: on return, on await, or when iteration stops."""
    func = getattr(target, "__func__", target)  # classmethod / staticmethod objects
    if inspect.isasyncgenfunction(func):
        return "async_generator"
    if inspect.isgeneratorfunction(func):
        return "generator"
    # A callable object with an ``async def __call__`` is awaited like a coroutine function.
    call_method = None if inspect.isroutine(func) else inspect.getattr_static(
        type(func), "__call__", None)
    if inspect.iscoroutinefunction(func) or inspect.iscoroutinefunction(call_method):
        return "async"
    return "sync"


def wrap(target: Any, probe: Probe) -> Any:
    """``target`` wrapped so that ``probe`` sees every call of it."""
    driver = _DRIVERS[kind_of(target)]

    def wrapper(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...],
                kwargs: dict[str, Any]) -> Any:
        declared = args if instance is None else (instance, *args)
        return driver(probe, wrapped, args, kwargs, declared)

    proxy = wrapt.FunctionWrapper(target, wrapper)
    setattr(proxy, PROBE_ATTRIBUTE, probe)
    return proxy


def probe_of(obj: Any) -> Any:
    """The probe of an object made by :func:`wrap`, else None."""
    if not isinstance(obj, wrapt.FunctionWrapper):
        return None
    return getattr(obj, PROBE_ATTRIBUTE, None)


def _begin(probe: Probe, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    try:
        return probe.begin(args, kwargs)
    except Exception:
        _internal_error(probe, "begin")
        return None


def _end(probe: Probe, state: Any, result: Any, error: BaseException | None) -> None:
    if state is None:
        return  # begin failed: there is nothing sound to record
    try:
        probe.end(state, result, error)
    except Exception:
        _internal_error(probe, "end")


def _internal_error(probe: Probe, where: str) -> None:
    try:
        probe.internal_error(where)
    except Exception:  # pragma: no cover - the last line of defence
        logger.exception("asgi_mcp_metrics: error while reporting an internal error")


def _call(probe: Probe, wrapped: Callable[..., Any], args: tuple[Any, ...],
          kwargs: dict[str, Any], declared: tuple[Any, ...]) -> Any:
    state = _begin(probe, declared, kwargs)
    try:
        result = wrapped(*args, **kwargs)
    except BaseException as exc:
        _end(probe, state, None, exc)
        raise
    _end(probe, state, result, None)
    return result


async def _await(probe: Probe, wrapped: Callable[..., Awaitable[Any]], args: tuple[Any, ...],
                 kwargs: dict[str, Any], declared: tuple[Any, ...]) -> Any:
    state = _begin(probe, declared, kwargs)
    try:
        result = await wrapped(*args, **kwargs)
    except BaseException as exc:
        _end(probe, state, None, exc)
        raise
    _end(probe, state, result, None)
    return result


def _iterate(probe: Probe, wrapped: Callable[..., Generator[Any, Any, Any]],
             args: tuple[Any, ...], kwargs: dict[str, Any],
             declared: tuple[Any, ...]) -> Generator[Any, Any, Any]:
    # The body of a generator starts at the first next(): so does the call.
    state = _begin(probe, declared, kwargs)
    try:
        result = yield from wrapped(*args, **kwargs)
    except BaseException as exc:  # GeneratorExit included: the consumer closed it early
        _end(probe, state, None, exc)
        raise
    _end(probe, state, result, None)
    return result


async def _aiterate(probe: Probe, wrapped: Callable[..., AsyncGenerator[Any, Any]],
                    args: tuple[Any, ...], kwargs: dict[str, Any],
                    declared: tuple[Any, ...]) -> AsyncGenerator[Any, Any]:
    state = _begin(probe, declared, kwargs)
    inner = wrapped(*args, **kwargs)
    error: BaseException | None = None
    try:
        # There is no ``yield from`` for async generators: forward values, sent values,
        # thrown exceptions and close by hand.
        value = await inner.__anext__()
        while True:
            try:
                sent = yield value
            except GeneratorExit:
                await inner.aclose()
                raise
            except BaseException as thrown:
                value = await inner.athrow(thrown)
            else:
                value = await inner.asend(sent)
    except StopAsyncIteration:
        pass
    except BaseException as exc:
        error = exc
        raise
    finally:
        _end(probe, state, None, error)


_DRIVERS: dict[Kind, Callable[..., Any]] = {
    "sync": _call,
    "async": _await,
    "generator": _iterate,
    "async_generator": _aiterate,
}

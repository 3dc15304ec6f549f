"""Listener bookkeeping for the client: ``on``, ``once``, ``off``, ``on_any``, ``listeners``.

Pure data structures, no I/O: the driver asks which callables to run for an event and runs
them itself, in its dispatcher task.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from .core import ConnectError, MessageDropped, StateChanged, StreamResumed

__all__ = [
    "AnyListener",
    "AttemptListener",
    "ConnectListener",
    "DisconnectListener",
    "DroppedListener",
    "ErrorListener",
    "Listener",
    "ListenerRegistry",
    "PayloadListener",
    "ResumeListener",
    "StateListener",
    "UserEventListener",
]

Listener = Callable[..., Any]

# What each ``on_*`` method takes, so that mypy checks a listener's parameters at the line
# that registers it (``rt.on_disconnect(lambda: ...)`` is an error: it must take the reason).
# Each is a TypeVar bound to the listener's shape, so a decorated function keeps its own type.
# A listener may return anything (an async one returns its coroutine, awaited).

#: ``fn()``: ``on_connect``, ``on_reconnect_failed``.
ConnectListener = TypeVar("ConnectListener", bound=Callable[[], object])
#: ``fn(reason)``: ``on_disconnect``.
DisconnectListener = TypeVar("DisconnectListener", bound=Callable[[str], object])
#: ``fn(error)``: ``on_error``.
ErrorListener = TypeVar("ErrorListener", bound=Callable[[ConnectError], object])
#: ``fn(attempt)``: ``on_reconnect_attempt``, ``on_reconnect``.
AttemptListener = TypeVar("AttemptListener", bound=Callable[[int], object])
#: ``fn(change)``: ``on_state_change``.
StateListener = TypeVar("StateListener", bound=Callable[[StateChanged], object])
#: ``fn(dropped)``: ``on_buffer_overflow``.
DroppedListener = TypeVar("DroppedListener", bound=Callable[[MessageDropped], object])
#: ``fn(resume)``: ``on_resume``.
ResumeListener = TypeVar("ResumeListener", bound=Callable[[StreamResumed], object])
#: ``fn(payload)``: ``on_join``, ``on_leave``, ``on_update``.
PayloadListener = TypeVar("PayloadListener", bound=Callable[[Any], object])
#: ``fn(event_name, session)``: ``on_user_event``.
UserEventListener = TypeVar("UserEventListener", bound=Callable[[str, Any], object])
#: ``fn(*args)`` or ``fn(event, *args)``: ``on``, ``once``, ``on_any`` (any arguments).
AnyListener = TypeVar("AnyListener", bound=Callable[..., object])

_EMPTY: list[Listener] = []


class _Once:
    """Wraps a listener registered with ``once`` so ``off(event, fn)`` still finds it."""

    __slots__ = ("fn",)

    def __init__(self, fn: Listener) -> None:
        self.fn = fn

    def __call__(self, *args: Any) -> Any:
        return self.fn(*args)


class ListenerRegistry:
    """Listeners by event name, plus catch-all listeners, each list in registration order.

    The lists are copy-on-write: every change builds a new list, so :meth:`take` can hand
    out the current one without copying it, per event, on the receive path.
    """

    __slots__ = ("_any", "_by_event", "_with_once")

    def __init__(self) -> None:
        self._by_event: dict[str, list[Listener]] = {}
        self._any: tuple[Listener, ...] = ()  # copy-on-write; the empty tuple costs nothing
        self._with_once: set[str] | None = None  # events with a ``once`` listener; lazily

    @property
    def has_any(self) -> bool:
        return bool(self._any)

    def __contains__(self, event: object) -> bool:
        """Whether ``event`` has a listener (catch-all listeners aside)."""
        return event in self._by_event

    def add(self, event: str, fn: Listener, *, once: bool = False) -> None:
        if not callable(fn):
            raise TypeError(f"listener must be callable, got {type(fn).__name__}")
        if not isinstance(event, str) or not event:
            raise ValueError("event name must be a non-empty str")
        self._by_event[event] = [*self._by_event.get(event, ()), _Once(fn) if once else fn]
        if once:
            if self._with_once is None:
                self._with_once = set()
            self._with_once.add(event)

    def remove(self, event: str | None = None, fn: Listener | None = None) -> None:
        """``off()``: all listeners; ``off(event)``: that event's; ``off(event, fn)``: one."""
        if event is None:
            if fn is None:
                self._by_event.clear()
                return
            for name in list(self._by_event):
                self._remove_fn(name, fn)
            return
        if fn is None:
            self._by_event.pop(event, None)
            return
        self._remove_fn(event, fn)

    def _remove_fn(self, event: str, fn: Listener) -> None:
        current = self._by_event.get(event)
        if not current:
            return
        kept = [x for x in current if x is not fn and not (isinstance(x, _Once) and x.fn is fn)]
        if kept:
            self._by_event[event] = kept
        else:
            del self._by_event[event]

    def add_any(self, fn: Listener) -> None:
        if not callable(fn):
            raise TypeError(f"listener must be callable, got {type(fn).__name__}")
        self._any = (*self._any, fn)

    def remove_any(self, fn: Listener | None = None) -> None:
        if fn is None:
            self._any = ()
        else:
            self._any = tuple(x for x in self._any if x is not fn)

    def listeners(self, event: str) -> list[Listener]:
        """The listeners registered for ``event``, as the user registered them."""
        return [x.fn if isinstance(x, _Once) else x for x in self._by_event.get(event, ())]

    def any_listeners(self) -> tuple[Listener, ...]:
        """The catch-all listeners."""
        return self._any

    def take(self, event: str) -> list[Listener]:
        """The callables to run for one occurrence of ``event``; ``once`` ones are removed.

        The returned list must not be modified (it may be the registry's own).
        """
        current = self._by_event.get(event)
        if not current:
            return _EMPTY
        with_once = self._with_once
        if with_once is not None and event in with_once:
            with_once.discard(event)
            remaining = [x for x in current if not isinstance(x, _Once)]
            if remaining:
                self._by_event[event] = remaining
            else:
                del self._by_event[event]
        return current

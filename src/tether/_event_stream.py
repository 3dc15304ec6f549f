"""``rt.events()``: incoming events as an async iterator, bounded and explicit on overflow."""

from __future__ import annotations

from collections import deque
from typing import Any

import anyio

from .core import TetherError

__all__ = ["EventStream", "EventsOverflow"]


class EventsOverflow(TetherError):
    """An ``events()`` iterator's queue overflowed: its consumer fell behind."""


class EventStream:
    """An async iterator over incoming events, from :meth:`RealtimeClient.events`.

    Yields ``(name, args)``. Its queue holds ``max_queued`` events; when the consumer falls
    further behind, iteration raises :class:`EventsOverflow` (after the queued events) instead
    of growing without bound or silently dropping events. The client holds the stream weakly:
    dropping it, or calling :meth:`aclose` / leaving ``async with``, unsubscribes it; so does
    the client leaving its own ``async with``.
    """

    __slots__ = ("__weakref__", "_closed", "_names", "_overflowed", "_queue", "_size", "_wake")

    def __init__(self, names: frozenset[str], size: int) -> None:
        if size < 1:
            raise ValueError(f"max_queued must be >= 1, got {size}")
        self._names = names
        self._size = size
        self._queue: deque[tuple[str, tuple[Any, ...]]] = deque()
        self._wake = anyio.Event()
        self._overflowed = False
        self._closed = False

    def push(self, name: str, args: tuple[Any, ...]) -> None:
        """Queue one event (the client calls it for every event the stream wants)."""
        if self._closed or (self._names and name not in self._names):
            return
        if len(self._queue) >= self._size:
            self._overflowed = True
        else:
            self._queue.append((name, args))
        self._wake.set()

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> tuple[str, tuple[Any, ...]]:
        while True:
            if self._queue:
                return self._queue.popleft()
            if self._overflowed:
                self._overflowed = False
                raise EventsOverflow(f"more than {self._size} events were waiting")
            if self._closed:
                raise StopAsyncIteration
            self._wake = anyio.Event()
            await self._wake.wait()

    def end(self) -> None:
        """Stop the stream: iteration ends after the events already queued. The client ends
        its streams when it leaves ``async with``."""
        self._closed = True
        self._wake.set()

    async def aclose(self) -> None:
        """Stop the stream: iteration ends after the events already queued."""
        self.end()

    async def __aenter__(self) -> EventStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

"""``rt.events()`` of the blocking client: incoming events as a blocking iterator."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from types import TracebackType
from typing import Any

import anyio
from anyio.from_thread import BlockingPortal

from tether._event_stream import EventStream

__all__ = ["EventIterator"]


class EventIterator:
    """A blocking iterator over incoming events, from :meth:`tether.sync.RealtimeClient.events`.

    ``for name, args in rt.events("chat"): ...`` waits in the calling thread for each event
    (``timeout`` seconds at most, then ``TimeoutError``; ``None``: no bound). It is an
    :class:`~tether.EventStream` of the client's event loop underneath: bounded by
    ``max_queued``, it raises :class:`~tether.EventsOverflow` when its consumer fell further
    behind. Iteration ends after :meth:`close`, and when the client leaves its ``with``
    block. Use one iterator from one thread at a time.
    """

    __slots__ = ("_portal", "_stream", "_timeout")

    def __init__(self, stream: EventStream, portal: BlockingPortal, timeout: float | None) -> None:
        self._stream = stream
        self._portal = portal
        self._timeout = timeout

    def __iter__(self) -> EventIterator:
        return self

    def __next__(self) -> tuple[str, tuple[Any, ...]]:
        try:
            future: Future[tuple[str, tuple[Any, ...]]] = self._portal.start_task_soon(self._next)
        except RuntimeError:
            raise StopIteration from None  # the client's event loop has stopped
        try:
            return future.result()
        except StopAsyncIteration:
            raise StopIteration from None
        except BaseException:
            # Interrupted (Ctrl-C): the wait in the loop is cancelled, so no event is taken
            # by a wait nobody will read.
            future.cancel()
            raise

    async def _next(self) -> tuple[str, tuple[Any, ...]]:
        if self._timeout is None:
            return await self._stream.__anext__()
        with anyio.fail_after(self._timeout):
            return await self._stream.__anext__()

    def close(self) -> None:
        """Stop the iterator: iteration ends after the events already queued."""
        _in_loop(self._portal, self._stream.end)

    def __enter__(self) -> EventIterator:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _in_loop(portal: BlockingPortal, fn: Callable[[], None]) -> None:
    """Run ``fn`` in the portal's loop; directly once the loop has stopped."""
    try:
        portal.call(fn)
    except RuntimeError:
        fn()

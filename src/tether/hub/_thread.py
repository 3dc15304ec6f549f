"""An embedded hub on its own asyncio loop in a background thread.

``tether demo`` and ``tether connect`` run a client on asyncio *or trio* in the main thread,
while the hub needs asyncio (uvicorn). A thread with its own loop serves both; every method of
``HubThread`` is thread-safe and blocking (it waits for the hub's loop to do the work).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import Awaitable, Callable
from typing import TypeVar

from ._app import Hub
from ._config import HubConfig

__all__ = ["HubThread", "start_hub_in_thread"]

T = TypeVar("T")


class HubThread:
    """Handle on a hub running in a background thread; see ``start_hub_in_thread``."""

    def __init__(
        self,
        hub: Hub,
        loop: asyncio.AbstractEventLoop,
        thread: threading.Thread,
        stop_requested: asyncio.Event,
    ) -> None:
        self.hub = hub
        self._loop = loop
        self._thread = thread
        self._stop_requested = stop_requested

    @property
    def url(self) -> str:
        """``http://HOST:PORT`` of the running hub."""
        return self.hub.url

    @property
    def host(self) -> str:
        return self.hub.host

    @property
    def port(self) -> int:
        return self.hub.port

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def drop(self, sid: str, timeout: float = 5.0) -> bool:
        """Cut ``sid``'s transport (no Socket.IO DISCONNECT): the client sees ``transport close``
        and reconnects. Returns ``False`` when no such client is connected to this hub."""
        return self._call(lambda: self.hub.drop(sid), timeout)

    def sids(self, timeout: float = 5.0) -> list[str]:
        """Socket.IO ids of the connected clients."""

        async def read() -> list[str]:
            return self.hub.sids()

        return self._call(read, timeout)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the hub gracefully and join the thread. Idempotent."""
        if self._thread.is_alive():
            # RuntimeError: the loop is already closed, the thread is finishing.
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._stop_requested.set)
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise TimeoutError(f"the hub thread did not stop within {timeout} s")

    def __enter__(self) -> HubThread:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _call(self, make: Callable[[], Awaitable[T]], timeout: float) -> T:
        if not self._thread.is_alive():
            raise RuntimeError("the hub thread is not running")

        async def run() -> T:
            return await make()

        future = asyncio.run_coroutine_threadsafe(run(), self._loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise TimeoutError(f"the hub did not answer within {timeout} s") from None


def start_hub_in_thread(config: HubConfig | None = None, *, timeout: float = 10.0) -> HubThread:
    """Start a hub in a daemon thread; return once it accepts connections.

    Raises whatever made the hub fail to start (``OSError`` for a busy port, Redis errors) in
    the calling thread. Stop it with ``HubThread.stop()`` or a ``with`` block.
    """
    hub = Hub(config or HubConfig(port=0))
    started: concurrent.futures.Future[HubThread] = concurrent.futures.Future()
    abandoned = threading.Event()  # the caller gave up waiting: stop as soon as started

    async def serve() -> None:
        stop_requested = asyncio.Event()
        try:
            await hub.start()
        except BaseException as exc:
            started.set_exception(exc)
            return
        loop = asyncio.get_running_loop()
        started.set_result(HubThread(hub, loop, thread, stop_requested))
        if abandoned.is_set():
            stop_requested.set()
        try:
            await stop_requested.wait()
        finally:
            await hub.stop()

    thread = threading.Thread(target=lambda: asyncio.run(serve()), name="tether-hub", daemon=True)
    thread.start()
    try:
        return started.result(timeout)
    except concurrent.futures.TimeoutError:
        abandoned.set()
        raise TimeoutError(f"the hub did not start within {timeout} s") from None

"""Running a call from another thread in the client's event loop, with a wait that ends.

``anyio.from_thread.run_sync`` schedules the call with ``loop.call_soon_threadsafe`` and then
waits for it without a bound. On asyncio a callback scheduled after the loop's last turn,
while it is stopped but not yet closed, is never run: ``asyncio.run`` closing its loop, or a
loop driven by ``run_until_complete`` that is not run again and then closed, would leave the
calling thread waiting for ever. So on asyncio tether schedules the call itself, the same
way, and the wait looks every :data:`LOOP_CHECK_INTERVAL` at whether the loop was closed
meanwhile. Trio's ``from_thread.run_sync`` already raises ``RunFinishedError`` when the run
ends first.
"""

from __future__ import annotations

import concurrent.futures
import sys
from collections.abc import Callable
from typing import Any, Final, TypeVar

import anyio.from_thread
import anyio.lowlevel

__all__ = ["LOOP_CHECK_INTERVAL", "run_in_loop"]

T = TypeVar("T")

#: How often a thread waiting for the client's asyncio loop checks that the loop still
#: exists. Only a wait that is not over within this long looks.
LOOP_CHECK_INTERVAL: Final = 0.25


def run_in_loop(token: anyio.lowlevel.EventLoopToken, fn: Callable[..., T], *args: Any) -> T:
    """Run ``fn(*args)`` in the event loop of ``token`` and return its result (or raise its
    exception) here; ``RuntimeError`` if that loop has finished, before or while waiting."""
    native = token.native_token
    asyncio = sys.modules.get("asyncio")  # not imported: the loop cannot be asyncio's
    if asyncio is not None and isinstance(native, asyncio.AbstractEventLoop):
        return _run_in_asyncio_loop(native, fn, args)
    try:
        return anyio.from_thread.run_sync(fn, *args, token=token)
    except anyio.RunFinishedError:
        raise _finished() from None


def _run_in_asyncio_loop(loop: Any, fn: Callable[..., T], args: Any) -> T:
    future: concurrent.futures.Future[T] = concurrent.futures.Future()

    def call() -> None:
        if not future.set_running_or_notify_cancel():
            return  # the waiting thread gave up: the loop was closed
        # What anyio's own hand-over does: in a bare callback sniffio (when installed)
        # cannot tell the loop is asyncio's, and anyio asks sniffio.
        sniffio = sys.modules.get("sniffio")
        cvar = None if sniffio is None else sniffio.current_async_library_cvar
        token = None if cvar is None else cvar.set("asyncio")
        try:
            future.set_result(fn(*args))
        except BaseException as exc:
            future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
        finally:
            if cvar is not None and token is not None:
                cvar.reset(token)

    try:
        loop.call_soon_threadsafe(call)
    except RuntimeError:  # closed
        raise _finished() from None
    while True:
        try:
            # exception(), not result(): a TimeoutError of fn's is returned, not raised,
            # so it is never mistaken for the end of this wait.
            future.exception(LOOP_CHECK_INTERVAL)
        except concurrent.futures.TimeoutError:
            if loop.is_closed() and future.cancel():
                raise _finished() from None
        else:
            return future.result()


def _finished() -> RuntimeError:
    return RuntimeError("the event loop that entered this RealtimeClient has finished")

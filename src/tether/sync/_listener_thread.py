"""The one thread where a blocking client's listeners run, one fact at a time, in order.

The dispatcher of the async client (``tether._driver._dispatch``) delivers each fact by
awaiting ``run_listeners(listeners, args, name)``; :meth:`ListenerThread.run_listeners` is
that step for :class:`tether.sync.RealtimeClient`: it hands the fact's listeners to this
thread and waits, in the event loop, until they have run. So a listener may block (a
database call, ``rt.call()``, a ``time.sleep``) without stalling the event loop, the
heartbeat or the reader; later facts wait for it, as they wait for a slow async listener,
within the dispatcher's bound (``specs/bounds.md``). The first value a listener returned
other than ``None`` is the ack to a server event that asks for one, as on the async client.
"""

from __future__ import annotations

import inspect
import logging
import queue
import threading
from collections.abc import Sequence
from typing import Any, Final

import anyio
import anyio.from_thread
import anyio.lowlevel

from tether._listeners import Listener

__all__ = ["ASYNC_LISTENER", "ListenerThread"]

logger = logging.getLogger("tether")

#: Why an ``async def`` listener is refused: nothing in this thread would await it.
ASYNC_LISTENER: Final = (
    "tether.sync.RealtimeClient runs its listeners in its listener thread: give it a plain "
    "function (an async listener belongs on tether.RealtimeClient)"
)


class _Job:
    """The listeners of one fact, handed to the thread; ``done`` is set in the loop."""

    __slots__ = ("args", "done", "listeners", "name", "reply")

    def __init__(self, listeners: Sequence[Listener], args: tuple[Any, ...], name: str) -> None:
        self.listeners = listeners
        self.args = args
        self.name = name
        self.done = anyio.Event()
        self.reply: Any = None


class ListenerThread:
    """Runs listeners in a thread of its own (a daemon: it never keeps the interpreter up)."""

    __slots__ = ("_jobs", "_thread", "_token")

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._token: anyio.lowlevel.EventLoopToken | None = None

    @property
    def ident(self) -> int | None:
        """The thread's ``threading.get_ident()`` while it runs."""
        thread = self._thread
        return None if thread is None else thread.ident

    def start(self, token: anyio.lowlevel.EventLoopToken) -> None:
        """Start the thread; ``token`` is the event loop whose dispatcher waits for it."""
        self._token = token
        self._jobs = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="tether-listeners", daemon=True)
        self._thread.start()

    def stop(self, timeout: float) -> bool:
        """Let the thread end after the listeners it runs; ``False`` if one of them still
        runs after ``timeout`` seconds (the thread is left to finish it on its own)."""
        thread = self._thread
        if thread is None:
            return True
        self._thread = None
        self._jobs.put(None)
        if thread is threading.current_thread():
            return True  # a listener left the client's `with`: the thread ends after it
        thread.join(timeout)
        return not thread.is_alive()

    async def run_listeners(
        self, listeners: Sequence[Listener], args: tuple[Any, ...], name: str
    ) -> Any:
        """Run ``listeners`` for one fact in the thread; their first reply."""
        if not listeners:
            return None  # nothing to run: no trip to the thread
        job = _Job(listeners, args, name)
        self._jobs.put(job)
        # Cancelled (the client leaves while a listener blocks): the thread finishes the job
        # and its wake-up finds nobody waiting.
        await job.done.wait()
        return job.reply

    def _run(self) -> None:
        jobs = self._jobs
        while (job := jobs.get()) is not None:
            job.reply = _call_listeners(job.listeners, job.args, job.name)
            token = self._token
            try:
                if token is not None:
                    anyio.from_thread.run_sync(job.done.set, token=token)
            except (anyio.RunFinishedError, RuntimeError):
                pass  # the event loop is gone: nobody waits for this job


def _call_listeners(listeners: Sequence[Listener], args: tuple[Any, ...], name: str) -> Any:
    """Call each listener; the first value other than ``None``. A listener's exception is
    logged and changes nothing (``specs/client.md``), as on the async client."""
    reply: Any = None
    for fn in listeners:
        try:
            value = fn(*args)
        except Exception:
            logger.exception("tether: listener %r for %r raised", fn, name)
            continue
        if inspect.isawaitable(value):
            # Refused at registration; this is a plain function that returned a coroutine.
            if inspect.iscoroutine(value):
                value.close()
            logger.error(
                "tether: listener %r for %r returned an awaitable: %s", fn, name, ASYNC_LISTENER
            )
            continue
        if reply is None:
            reply = value
    return reply

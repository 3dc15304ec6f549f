"""The way from the core's outbox to one transport: who writes now.

There is one queue between the core and the socket, the core's outbox: frames leave it only
when a task is about to write them (``Connection.data_to_send()``), so what a dying transport
never wrote is still in the core, whole, and goes back to the offline buffer. And there is
one serializer, the transport's send lock, which is first-come first-served: whoever takes
frames from the outbox hands them to ``send_many`` at once, without a checkpoint in
between, so frames go out in the order they left the outbox, whoever writes them.

Who writes:

* a ``call()`` writes its own packet when nothing else is being written (no task and no task
  switch per round trip), bounded by the call's own timeout and shielded from the caller's
  cancellation, which takes effect once the write is over;
* the reader writes what the handshake produced (the namespace CONNECT) before the connect,
  bounded by the deadline it keeps; once connected it never writes, so a peer that stopped
  reading cannot hold up the heartbeat;
* otherwise a writer task, started when output appears and ended when the outbox is empty.

A write cut off by its bound fails the transport (``"transport error"``) rather than leaving
half a frame on the stream; the driver then reconnects.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Final

import anyio
import anyio.abc

from tether.core import Connection
from tether.transport import TRANSPORT_ERROR, Transport, TransportError

__all__ = ["CLOSE_WRITE_GRACE", "WritePath"]

logger = logging.getLogger("tether")

#: How long a closing transport may take to write its last frames (the goodbye DISCONNECT)
#: and the write under way: against a peer that stopped reading a send can block until TCP
#: gives up, and with it ``aclose()``.
CLOSE_WRITE_GRACE: Final = 2.0


class WritePath:
    """Writes the core's output to ``transport``, from whichever task should.

    ``lost(reason)`` is told when a write finds the transport broken. ``end()`` ends the
    session once a closing write path has written its last frames.
    """

    __slots__ = (
        "_closing",
        "_core",
        "_end",
        "_lost",
        "_task_group",
        "_transport",
        "_writer_running",
        "_writes",
    )

    def __init__(
        self,
        core: Connection,
        transport: Transport,
        task_group: anyio.abc.TaskGroup,
        *,
        lost: Callable[[str], None],
        end: Callable[[], None],
    ) -> None:
        self._core = core
        self._transport = transport
        self._task_group = task_group
        self._lost = lost
        self._end = end
        self._writer_running = False
        self._writes = 0  # sends under way, from any task
        self._closing = False

    @property
    def writing(self) -> bool:
        """Whether a send is under way."""
        return self._writes > 0

    def wake(self) -> None:
        """The core may have output: a writer task writes it unless one is running."""
        if not self._writer_running and not self._closing and self._core.data_pending:
            self._writer_running = True
            self._task_group.start_soon(self._write_loop, name="tether writer")

    async def write_now(self, scope: anyio.CancelScope) -> None:
        """Write the core's output from the calling task, inside ``scope``, unless a send is
        under way (then the writer task, woken, writes it). A write that ``scope`` cuts off
        fails the transport.

        The reader bounds its write with its deadline. A ``call()`` passes a shielded scope
        without a deadline (no timer per call): its own cancellation waits for the write to
        end, since the frames have left the outbox and a send cancelled part-way would fail
        the transport for everyone using it (a call given up with a cancel scope, Ctrl-C in
        the blocking client); its timeout still bounds the write, as the core's deadline
        ends the call and the driver cancels the scope (``CallWaiter.writing``). Once
        connected a cut-off write reports the transport lost at once: the reader, which ran
        that deadline, may be waiting for the peer already. Before, the reader handles its
        own deadline (the attempt's timeout)."""
        if self._writes or self._closing:
            self.wake()
            return
        frames = self._core.data_to_send()
        if not frames:
            return
        with scope:
            await self._send(frames)
        if scope.cancelled_caught and self._core.is_connected:
            self._lost(TRANSPORT_ERROR)

    def finish(self, last: list[str | bytes]) -> None:
        """The core closed this transport: write ``last`` (what it queued before closing)
        after the write under way, within :data:`CLOSE_WRITE_GRACE`, then end the session."""
        self._closing = True
        if not last and not self._writes:
            self._end()
            return
        self._task_group.start_soon(self._finish, last, name="tether closer")

    async def _finish(self, last: list[str | bytes]) -> None:
        try:
            with anyio.move_on_after(CLOSE_WRITE_GRACE):
                # An empty send_many waits its turn at the send lock: the write under way is
                # over when it returns.
                await self._send(last)
        except Exception:  # a bug in tether: never into the task group (specs/client.md)
            logger.exception("tether: internal error while closing the transport")
        finally:
            self._end()

    async def _write_loop(self) -> None:
        core = self._core
        try:
            while not self._closing:
                frames = core.data_to_send()
                if not frames:
                    break
                await self._send(frames)
        except Exception:  # a bug in tether: never into the task group (specs/client.md)
            logger.exception("tether: internal error in the writer")
            self._lost(TRANSPORT_ERROR)
        finally:
            self._writer_running = False

    async def _send(self, frames: list[str | bytes]) -> None:
        self._writes += 1
        try:
            await self._transport.send_many(frames)
        except TransportError as exc:
            self._lost(exc.reason)
        except Exception:
            # A custom transport breaking its contract, or a bug: never into the user's task
            # group (a call() writing its own packet would raise it to its caller too).
            logger.exception("tether: internal error on the write path")
            self._lost(TRANSPORT_ERROR)
        finally:
            self._writes -= 1

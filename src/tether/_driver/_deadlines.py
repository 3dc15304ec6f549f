"""Who waits for the core's next deadline, and how the waiting is handed over.

The core says when it next needs ``handle_timer`` (``next_deadline()``: a retry, an attempt
timeout, the heartbeat, an ack timeout) and the driver must call it then. Whoever waits
anyway keeps that time, so an idle client costs one task (``specs/client.md`` "Tasks and
ordering"):

* **the reader** of a connected transport, from its first read until its session ends,
  through the transport's ``read_deadline`` (``receive()`` returns ``None`` when it passes);
* **a connecting session** keeps its own attempt's timeout (a cancel scope around
  ``connect()``), when no timer task runs;
* **the timer task** otherwise: backoff waits, and any deadline earlier than the one its
  keeper waits for. It ends when a reader takes over or no deadline is left, and starts
  again when one appears.

:class:`DeadlineKeeper` is the one place that knows which of them keeps time now.
"""

from __future__ import annotations

import logging
import math
from typing import Protocol

import anyio
import anyio.abc

from tether.core import Connection
from tether.transport import Transport

__all__ = ["DeadlineKeeper"]

logger = logging.getLogger("tether")


class _TimerRunner(Protocol):
    def run_timer(self, now: float) -> None: ...


class DeadlineKeeper:
    """Keeps the core's deadlines; ``driver.run_timer(now)`` runs the core's timer and drains
    it."""

    __slots__ = (
        "_connecting",
        "_core",
        "_driver",
        "_reader",
        "_task_group",
        "_timer_running",
        "_timer_wake",
        "target",
    )

    def __init__(self, core: Connection, driver: _TimerRunner) -> None:
        self._core = core
        self._driver = driver
        self._task_group: anyio.abc.TaskGroup | None = None
        #: The deadline the reader, the connecting session or the timer waits for now
        #: (``math.inf``: nobody waits for anything).
        self.target = math.inf
        self._timer_running = False
        self._timer_wake: anyio.Event | None = None  # while the timer task waits
        self._reader: Transport | None = None  # whose reader keeps the deadlines
        self._connecting: object | None = None  # the session keeping its attempt's timeout

    def start(self, task_group: anyio.abc.TaskGroup) -> None:
        """The client is entered: deadlines nobody keeps get a timer task from now on."""
        self._task_group = task_group
        self._ensure_timer()

    def stop(self) -> None:
        self._task_group = None

    @property
    def reader(self) -> Transport | None:
        """The transport whose reader keeps the deadlines, if one does."""
        return self._reader

    @property
    def timer_running(self) -> bool:
        return self._timer_running

    # --- after every call into the core ----------------------------------------------------

    def moved(self) -> None:
        """The core's next deadline may have moved earlier: make sure somebody keeps it."""
        deadline = self._core.next_deadline()
        if deadline is None or deadline >= self.target:
            return
        self.target = deadline
        if self._reader is not None:
            self._reader.read_deadline = deadline
        elif self._timer_wake is not None:
            self._timer_wake.set()
        elif not self._timer_running and not self._connect_keeps(deadline):
            self._start_timer()

    # --- the reader ------------------------------------------------------------------------

    def reader_keeps(self, transport: Transport) -> None:
        """The reader of ``transport`` keeps the deadlines from now on; the timer task ends.

        From here on that reader waits for nothing but ``receive()`` and, before the
        connect, its own short writes bounded by :attr:`target`.
        """
        self._reader = transport
        self._arm(transport)
        if self._timer_wake is not None:
            self._timer_wake.set()  # the timer task sees a reader keeping the time, and ends

    def reader_done(self, transport: Transport | None) -> None:
        """The reader of ``transport`` stops keeping the deadlines: the timer takes them."""
        if transport is not None and self._reader is transport:
            self._reader = None
            transport.read_deadline = math.inf
            self.target = math.inf  # the timer task computes it again
            self._ensure_timer()

    def deadline_passed(self, transport: Transport) -> None:
        """The keeping reader's ``receive()`` returned at its deadline: run the timer once."""
        if self._reader is not transport:
            return  # the deadlines went back to the timer task meanwhile
        now = anyio.current_time()
        deadline = self._core.next_deadline()
        if deadline is not None and now >= deadline:
            self._driver.run_timer(now)
        if self._reader is transport:  # still ours: the session did not end
            self._arm(transport)

    def _arm(self, transport: Transport) -> None:
        """Point the keeping reader's read deadline at the core's next deadline."""
        deadline = self._core.next_deadline()
        self.target = math.inf if deadline is None else deadline
        transport.read_deadline = self.target

    # --- a connecting session --------------------------------------------------------------

    def connect_keeps(self, session: object) -> None:
        """``session`` starts connecting and keeps the attempt's timeout itself (a timer
        task, if one runs, may see it first: the core handles it once)."""
        self._connecting = session

    def connect_done(self, session: object) -> None:
        """``session`` stopped keeping its attempt's timeout (connected, failed, ended)."""
        if self._connecting is session:
            self._connecting = None
            if self._reader is None and not self._timer_running:
                self.target = math.inf  # nobody waits: the next moved() starts a timer

    def ensure(self) -> None:
        """Start the timer task if the core has a deadline that nobody keeps."""
        self._ensure_timer()

    def _connect_keeps(self, deadline: float) -> bool:
        attempt_deadline = self._core.attempt_deadline
        return (
            self._connecting is not None
            and attempt_deadline is not None
            and deadline >= attempt_deadline
        )

    # --- the timer task ----------------------------------------------------------------------

    def _ensure_timer(self) -> None:
        """Start the timer task if the core has a deadline that nobody keeps."""
        deadline = self._core.next_deadline()
        if deadline is not None and not self._connect_keeps(deadline):
            self._start_timer()

    def _start_timer(self) -> None:
        task_group = self._task_group
        if task_group is not None and not self._timer_running and self._reader is None:
            self._timer_running = True
            task_group.start_soon(self._timer_loop, name="tether timer")

    async def _timer_loop(self) -> None:
        """Handle the core's deadlines until there are none, or a reader takes them over."""
        core = self._core
        try:
            while self._reader is None:
                deadline = core.next_deadline()
                if deadline is None:
                    break  # nothing to keep: the next deadline (moved) starts a timer again
                self.target = deadline
                now = anyio.current_time()
                if now >= deadline:
                    self._driver.run_timer(now)
                    continue
                wake = self._timer_wake = anyio.Event()
                with anyio.move_on_at(deadline):
                    await wake.wait()
        except Exception:
            # A bug in tether: never into the task group (specs/client.md). The timer task
            # ends; the next deadline that moves starts it again.
            logger.exception("tether: internal error in the timer")
        finally:
            self._timer_running = False
            self._timer_wake = None
            if self._reader is None:
                self.target = math.inf  # nobody waits for anything now

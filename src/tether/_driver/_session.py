"""One transport, from connecting to closed: its task connects, then reads.

The core asks for a transport with ``OpenTransport(token)``; the driver starts a
:class:`TransportSession` for it, whose task evaluates the attempt's credentials, connects
(both bounded by the attempt's timeout), reports ``transport_opened`` and then reads until
the session ends. It ends when the core closes it (``CloseTransport``: the last frames are
written first, see :mod:`._writing`), when the transport breaks (reported to the core as
``transport_closed``), or when the client leaves.

The reader is the receive path, which is hot: after each message it drains the core's
events and wakes the writer if there is output, and it looks at the deadlines only when a
lifecycle fact came out, because receiving alone can only move the heartbeat *later*.
"""

from __future__ import annotations

import logging
import math
import ssl
from typing import Any, Final, Protocol

import anyio
import anyio.abc
import anyio.lowlevel

from tether.core import Connection, DisconnectReason, EventReceived
from tether.transport import Connector, Transport, TransportError

from ._credentials import Credentials, CredentialsError
from ._deadlines import DeadlineKeeper
from ._dispatch import Dispatcher
from ._writing import WritePath

__all__ = ["DISPATCH_BACKLOG_BYTES", "DISPATCH_BACKLOG_LIMIT", "TransportSession"]

logger = logging.getLogger("tether")

#: How many facts may wait for slow listeners, and about how many wire bytes of server
#: events. The reader keeps reading (and the heartbeat keeps running) while listeners fall
#: behind; when a message takes the backlog to either bound the transport is dropped with
#: the reason ``"listeners fell behind"`` and the client reconnects, so memory stays bounded
#: (``specs/bounds.md``). With connection state recovery or the hub's continuity the events
#: not read yet are replayed after the reconnect. Each session reads them when it starts:
#: a test may lower them (``monkeypatch.setattr``) to reach the bound quickly.
DISPATCH_BACKLOG_LIMIT: Final = 100_000
DISPATCH_BACKLOG_BYTES: Final = 64 * 1024 * 1024


class Driver(Protocol):
    """What a session needs of the driver that owns it (``_driver.Driver``)."""

    core: Connection
    deadlines: DeadlineKeeper
    dispatcher: Dispatcher
    credentials: Credentials
    connector: Connector
    ssl: ssl.SSLContext | None
    max_message_size: int
    task_group: anyio.abc.TaskGroup | None
    caller_woken: bool

    def pump(self, *, wake_writer: bool = True) -> None: ...

    def route(self, events: list[Any], size: int = 0) -> bool: ...

    def run_timer(self, now: float) -> None: ...

    def session_ended(self, session: TransportSession) -> None: ...


class TransportSession:
    """The transport of one connection attempt, owned by one task."""

    __slots__ = ("_driver", "attempt", "closing", "task", "token", "transport", "writes")

    def __init__(self, driver: Driver, token: int, attempt: int) -> None:
        self._driver = driver
        self.token = token
        self.attempt = attempt
        self.transport: Transport | None = None
        #: The write path, once the transport is open.
        self.writes: WritePath | None = None
        self.closing = False
        #: The session's task, cancelled to end the session.
        self.task: anyio.TaskHandle[None] | None = None

    def __repr__(self) -> str:
        state = "closing" if self.closing else "open" if self.transport else "connecting"
        return f"<TransportSession {self.token} {state}>"

    # --- how a session ends ------------------------------------------------------------------

    def close(self, last: list[str | bytes]) -> None:
        """The core closed this transport: write ``last``, then end. While connecting, the
        attempt is abandoned at once."""
        self.closing = True
        self._driver.deadlines.reader_done(self.transport)
        if self.writes is None:
            self.end()
        else:
            self.writes.finish(last)

    def lost(self, reason: str) -> None:
        """The transport broke (a read or a write failed): tell the core, end the session."""
        if self.closing:
            return
        self.closing = True
        driver = self._driver
        driver.deadlines.reader_done(self.transport)
        self.end()
        driver.core.transport_closed(self.token, reason, now=anyio.current_time())
        driver.pump()

    def end(self) -> None:
        """Cancel the session's task: it closes the transport and ends."""
        if self.task is not None:
            self.task.cancel()

    def _broken(self) -> None:
        """The session's task failed unexpectedly (it ends now): the attempt fails, or the
        transport is lost, whichever the core was waiting for."""
        if self.closing:
            return
        self.closing = True
        driver = self._driver
        driver.deadlines.connect_done(self)
        driver.deadlines.reader_done(self.transport)
        core = driver.core
        now = anyio.current_time()
        core.transport_failed(self.token, DisconnectReason.TRANSPORT_ERROR, now=now)
        core.transport_closed(self.token, DisconnectReason.TRANSPORT_ERROR, now=now)
        driver.pump()

    # --- the task ------------------------------------------------------------------------------

    async def run(self) -> None:
        driver = self._driver
        try:
            transport = await self._connect()
            if transport is not None:
                await self._read(transport)
        except Exception:
            # A bug in tether, or a custom Connector breaking its contract: never into the
            # user's task group. The core hears of a failed attempt or a broken transport.
            logger.exception("tether: internal error in transport session %d", self.token)
            self._broken()
        finally:
            driver.deadlines.connect_done(self)
            driver.deadlines.ensure()
            if self.transport is not None:
                with anyio.CancelScope(shield=True):
                    await self.transport.aclose()
            driver.session_ended(self)

    async def _connect(self) -> Transport | None:
        """Open the transport; ``None`` when the attempt is over already."""
        driver = self._driver
        core = driver.core
        token = self.token
        deadline = core.attempt_deadline
        # This task keeps its attempt's timeout over the credentials and the connect: a
        # callable that hangs is bounded like a server that does not answer.
        with anyio.move_on_at(math.inf if deadline is None else deadline) as scope:
            try:
                credentials = await driver.credentials.resolve()
            except CredentialsError as exc:
                logger.warning("tether: credentials for attempt %d failed: %s", self.attempt, exc)
                driver.deadlines.connect_done(self)
                core.transport_failed(token, f"credentials failed: {exc}", now=anyio.current_time())
                driver.pump()
                return None
            try:
                transport = await driver.connector.connect(
                    credentials.url,
                    headers=credentials.headers,
                    ssl_context=driver.ssl,
                    max_message_size=driver.max_message_size,
                )
            except TransportError as exc:
                driver.deadlines.connect_done(self)
                core.transport_failed(token, str(exc), now=anyio.current_time())
                driver.pump()
                return None
        driver.deadlines.connect_done(self)
        if scope.cancelled_caught:
            driver.run_timer(anyio.current_time())  # the attempt's timeout: the core decides
            return None
        self.transport = transport
        if self.closing:
            return None
        # The reader keeps the deadlines from its first read on (the attempt's timeout, the
        # heartbeat, ack timeouts).
        driver.deadlines.reader_keeps(transport)
        assert driver.task_group is not None  # the client is entered while a session runs
        self.writes = WritePath(core, transport, driver.task_group, lost=self.lost, end=self.end)
        core.transport_opened(token, credentials.auth, now=anyio.current_time())
        driver.pump()
        return transport

    async def _read(self, transport: Transport) -> None:
        driver = self._driver
        core = driver.core
        deadlines = driver.deadlines
        dispatcher = driver.dispatcher
        writes = self.writes
        assert writes is not None
        receive = transport.receive
        current_time = anyio.current_time
        drain_events = core.drain_events
        route = driver.route
        max_backlog = DISPATCH_BACKLOG_LIMIT
        max_backlog_bytes = DISPATCH_BACKLOG_BYTES
        connected = False
        try:
            while True:
                message = await receive()
                if message is None:  # the read deadline: this task keeps the timer
                    deadlines.deadline_passed(transport)
                    continue
                if self.closing:
                    return
                core.receive(message, now=current_time())
                events = drain_events()
                lifecycle = bool(events) and route(events, len(message))
                if lifecycle:
                    deadlines.moved()
                    if not connected and core.is_connected:
                        connected = True
                        driver.caller_woken = True  # wait_connected() returns now
                if core.data_pending and not self.closing:
                    if connected:
                        # Once connected this task never writes (a peer that stopped
                        # reading must not hold up the heartbeat): the writer does.
                        writes.wake()
                    else:
                        # The namespace CONNECT, bounded by the deadline this task keeps.
                        await writes.write_now(anyio.CancelScope(deadline=deadlines.target))
                        if current_time() >= deadlines.target:
                            deadlines.deadline_passed(transport)
                if driver.caller_woken:
                    # A call() got its ack, or wait_connected() its connect: let it run
                    # before this task sets up its next read (one checkpoint per ack).
                    driver.caller_woken = False
                    await anyio.lowlevel.checkpoint()
                # Only a server event of a connected session takes the backlog past its
                # bound: a reconnect while listeners are still behind completes (its attempts
                # count from zero again), and then reads what recovery replays.
                if (
                    connected
                    and (
                        dispatcher.backlog_bytes >= max_backlog_bytes
                        or len(dispatcher.queue) + dispatcher.batch_left >= max_backlog
                    )
                    and events
                    and type(events[-1]) is EventReceived
                ):
                    logger.warning(
                        "tether: %d events (%d bytes) wait for slow listeners; "
                        "dropping the connection",
                        dispatcher.backlog,
                        dispatcher.backlog_bytes,
                    )
                    self.lost(DisconnectReason.LISTENERS_BEHIND)
                    return
        except TransportError as exc:
            self.lost(exc.reason)
        except Exception:  # a bug in tether: never let it escape into the user's task group
            logger.exception("tether: internal error on the receive path")
            self.lost(DisconnectReason.TRANSPORT_ERROR)
        finally:
            deadlines.reader_done(transport)

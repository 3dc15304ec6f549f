"""Acknowledgements the client waits for, and the tries of the messages that ask for them.

Socket.IO v5 §"Acknowledgement": an EVENT with an ack id asks the server to answer with an
ACK carrying the same id. Ids count up from 0 for the client's lifetime, so they are unique
per namespace and never reused within a session (socketio-protocol.md §2.5). Every try of
one message carries the same id: a late answer to an earlier try is as good as any.

Three kinds of waiting message (``specs/delivery.md`` §2, §4):

* a **call** (``call()``): the user waits for its outcome, exactly once, as
  :class:`~tether.core.AckReceived` or :class:`~tether.core.AckFailed`;
* a **tracked emit** (an ``emit``, ``send`` or ``broadcast`` made with ``retries > 0``): it
  asks for an ack only to know it arrived; its only outcome a user sees is a
  :class:`~tether.core.MessageDropped` ``"retries exhausted"``;
* a **notice** of the core's own (a ``join``): its answer is for the core (the position the
  hub gives back); it is never tried again, since every connect restores the channels.

A message is in one of three places, and its place decides how a try can end
(``specs/invariants.md`` I7):

* **buffered** (offline, with its buffer key): no try runs; the call's timeout withdraws it
  from the buffer, so it is never sent late;
* **queued** in the outbox of a connected session: its try has started (it is written
  without waiting); a timeout that ends the call makes the outbox skip it;
* **written**: its ACK resolves it; ``ack_timeout`` or the loss of its session ends the try.

A try that ends without an ACK starts the next one, while tries are left: at once after an
``ack_timeout`` (the message is sent again), after the reconnect after a disconnect (the
message goes back to the buffer, in order). After the last try a call fails with that try's
error and a tracked emit is reported dropped.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import Any, Final

from ._errors import AckTimeout, Disconnected, TetherError
from ._events import AckFailed, AckReceived, Event, MessageDropped
from ._outgoing import Outgoing

__all__ = ["Acks"]

#: Where a message is while it has no buffer key.
_QUEUED: Final = -1
_WRITTEN: Final = -2
_UNPLACED: Final = -3  # between expect() and place()

#: What a deadline in the heap ends: the whole call (its ``timeout``), or one try.
_CALL: Final = 0
_TRY: Final = 1

_RETRIES_EXHAUSTED: Final = "retries exhausted"


#: What a notice's answer is about: the channel joined, and the position it resumes from.
About = tuple[str, "str | None"]

#: An answer that is the caller's (a tracked emit's or a notice's): the message's event
#: name, and for a notice what it was about.
Answered = tuple[str, "About | None"]


@dataclass(slots=True)
class _Waiting:
    place: int  # a buffer key (>= 0), _QUEUED or _WRITTEN
    message: Outgoing
    user: bool  # a call() the user waits for, or a tracked emit (or a notice)
    tries_left: int
    ack_timeout: float | None
    try_deadline: float | None = None
    about: About | None = None  # set for a notice


class Acks:
    """The messages waiting for their ACK, their tries and their deadlines."""

    __slots__ = ("_deadlines", "_events", "_next_id", "_waiting")

    def __init__(self, events: list[Event]) -> None:
        self._events = events
        self._next_id = 0
        self._waiting: dict[int, _Waiting] = {}
        # (when, call id, _CALL or _TRY); stale entries are skipped when they come up. Made
        # by the first deadline: most clients never set one.
        self._deadlines: list[tuple[float, int, int]] | None = None

    def __contains__(self, call_id: object) -> bool:
        return call_id in self._waiting

    def new_id(self) -> int:
        call_id = self._next_id
        self._next_id += 1
        return call_id

    # --- a message's places -------------------------------------------------------------------

    def expect(
        self,
        message: Outgoing,
        *,
        user: bool,
        retries: int,
        ack_timeout: float | None,
        deadline: float | None,
    ) -> None:
        """Wait for the ACK of ``message`` (which carries its call id); ``deadline`` ends the
        whole call (``None``: only the tries do). Its place follows with :meth:`place`, or
        the buffer policy drops it (:meth:`refuse`)."""
        call_id = message.call_id
        assert call_id is not None
        self._waiting[call_id] = _Waiting(_UNPLACED, message, user, retries, ack_timeout)
        if deadline is not None:
            self._push(deadline, call_id, _CALL)

    def place(self, call_id: int, buffer_key: int | None, now: float) -> None:
        """Where the message went: the outbox (``buffer_key`` is ``None``: its first try
        starts now) or the buffer."""
        waiting = self._waiting[call_id]
        if buffer_key is None:
            self._start_try(call_id, waiting, now)
        else:
            waiting.place = buffer_key

    def expect_notice(self, message: Outgoing, about: About) -> None:
        """Wait for the answer to a notice of the core's own, queued in the outbox."""
        call_id = message.call_id
        assert call_id is not None
        self._waiting[call_id] = _Waiting(_QUEUED, message, False, 0, None, None, about)

    def forget(self, call_id: int) -> None:
        """The call raised at its call site (``BufferFull``): it never existed."""
        del self._waiting[call_id]

    def abandon(self, call_id: int) -> int | None:
        """The user stopped waiting for call ``call_id`` (its task was cancelled): it ends
        without an outcome and no try follows. Returns its buffer key while it is still
        buffered, to withdraw it; queued, the outbox skips it (:meth:`taken`); written, its
        ACK is ignored. A call that has ended already is left alone."""
        waiting = self._waiting.get(call_id)
        if waiting is None or not waiting.user:
            return None
        del self._waiting[call_id]
        return waiting.place if waiting.place >= 0 else None

    def queued(self, call_id: int, now: float) -> None:
        """The message left the buffer for the outbox (a connect's flush): a try starts."""
        waiting = self._waiting[call_id]
        self._start_try(call_id, waiting, now)

    def buffered(self, call_id: int, buffer_key: int) -> None:
        """The message went back to the buffer (its transport died): no try runs."""
        waiting = self._waiting[call_id]
        waiting.place = buffer_key
        waiting.try_deadline = None

    def taken(self, call_id: int) -> bool:
        """The driver takes the message's frames to write them; whether it still waits (a
        call that timed out meanwhile must not be written)."""
        waiting = self._waiting.get(call_id)
        if waiting is None:
            return False
        waiting.place = _WRITTEN
        return True

    def _start_try(self, call_id: int, waiting: _Waiting, now: float) -> None:
        waiting.place = _QUEUED
        if waiting.ack_timeout is not None:
            waiting.try_deadline = now + waiting.ack_timeout
            self._push(waiting.try_deadline, call_id, _TRY)

    def _push(self, when: float, call_id: int, kind: int) -> None:
        if self._deadlines is None:
            self._deadlines = []
        heapq.heappush(self._deadlines, (when, call_id, kind))

    # --- outcomes -----------------------------------------------------------------------------

    def refuse(self, call_id: int, error: TetherError) -> None:
        """The message was dropped by the buffer policy, wherever it was: a call fails with
        ``error``; a tracked emit's drop is reported already."""
        waiting = self._waiting.pop(call_id)
        if waiting.user:
            self._events.append(AckFailed(call_id, error))

    def resolve(self, call_id: int | None, args: list[Any]) -> Answered | None:
        """The server's ACK for ``call_id``; one for an id we do not wait for is ignored
        (Socket.IO v5 §2.5: the JS client does the same). Only a message that was written
        can be acknowledged. The answer to a tracked emit or a notice is for the caller:
        the message's event name, and what a notice was about."""
        waiting = self._waiting.get(call_id)  # type: ignore[arg-type]
        if waiting is None or waiting.place != _WRITTEN:
            return None
        del self._waiting[call_id]  # type: ignore[arg-type]
        if waiting.user:
            self._events.append(AckReceived(call_id, tuple(args)))  # type: ignore[arg-type]
            return None
        return waiting.message.event, waiting.about

    def session_lost(self, reason: str, *, goodbye: bool = False) -> list[Outgoing]:
        """The session is gone: each written message's try has ended. Those with tries left
        are returned, to go back to the buffer; the others fail with ``Disconnected``.

        On a goodbye (the user's ``close()``) no try follows, and the queued messages fail
        too: they are written after the session ended, where no ACK can come.
        """
        again: list[Outgoing] = []
        for call_id, waiting in list(self._waiting.items()):
            place = waiting.place
            if waiting.about is not None:
                del self._waiting[call_id]  # the next connect restores the channels
            elif place == _WRITTEN or (goodbye and place == _QUEUED):
                if waiting.tries_left and not goodbye:
                    waiting.tries_left -= 1
                    waiting.try_deadline = None
                    again.append(waiting.message)
                else:
                    self._end(call_id, Disconnected(reason))
        return again

    def next_deadline(self) -> float | None:
        deadlines = self._deadlines
        if deadlines is None:
            return None
        waiting = self._waiting
        while deadlines:
            when, call_id, kind = deadlines[0]
            # _current(), inlined: this runs after every call into the core.
            entry = waiting.get(call_id)
            if entry is not None and (kind == _CALL or entry.try_deadline == when):
                return when
            heapq.heappop(deadlines)
        return None

    def expire(self, now: float) -> tuple[list[int], list[Outgoing]]:
        """End what is due at ``now``: calls past their ``timeout`` fail with ``AckTimeout``
        (the buffer keys of those still buffered are returned, to withdraw them); tries past
        their ``ack_timeout`` end, and the messages with tries left are returned, to be sent
        again at once."""
        withdrawn: list[int] = []
        again: list[Outgoing] = []
        deadlines = self._deadlines
        if deadlines is None:
            return withdrawn, again
        while deadlines and deadlines[0][0] <= now:
            entry = heapq.heappop(deadlines)
            if not self._current(entry):
                continue
            _, call_id, kind = entry
            waiting = self._waiting[call_id]
            if kind == _CALL:
                if waiting.place >= 0:
                    withdrawn.append(waiting.place)
                    error = AckTimeout("not sent: still in the offline buffer at the timeout")
                else:
                    error = AckTimeout("no ack within the timeout")
                self._end(call_id, error)
            elif waiting.tries_left:
                waiting.tries_left -= 1
                waiting.try_deadline = None
                again.append(waiting.message)
            else:
                self._end(call_id, AckTimeout("no ack within the ack timeout"))
        return withdrawn, again

    def _current(self, entry: tuple[float, int, int]) -> bool:
        when, call_id, kind = entry
        waiting = self._waiting.get(call_id)
        if waiting is None:
            return False
        return kind == _CALL or waiting.try_deadline == when

    def _end(self, call_id: int, error: TetherError) -> None:
        """The last try ended without an ACK."""
        waiting = self._waiting.pop(call_id)
        if waiting.user:
            self._events.append(AckFailed(call_id, error))
        else:
            self._events.append(MessageDropped(waiting.message.event, call_id, _RETRIES_EXHAUSTED))

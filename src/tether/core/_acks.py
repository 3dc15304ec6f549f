"""Acknowledgements the client waits for: one entry per ``call``, from emit to outcome.

Socket.IO v5 §"Acknowledgement": an EVENT with an ack id asks the server to answer with an
ACK carrying the same id. Ids count up from 0 for the client's lifetime, so they are unique
per namespace and never reused within a session (socketio-protocol.md §2.5).

A call is in one of three places, and its place decides how it can end
(``specs/invariants.md`` I7):

* **buffered** (offline, with its buffer key): it waits; its timeout withdraws it from the
  buffer, so it is never sent late;
* **queued** in the outbox: it waits; its timeout makes the outbox skip it;
* **written**: its ACK resolves it, its timeout fails it, and the loss of its session fails it
  with :class:`~tether.core.Disconnected` (the ACK can no longer come).

Every call ends exactly once, as :class:`~tether.core.AckReceived` or
:class:`~tether.core.AckFailed` in the shared list of events.
"""

from __future__ import annotations

import heapq
from typing import Any, Final

from ._errors import AckTimeout, Disconnected, TetherError
from ._events import AckFailed, AckReceived, Event

__all__ = ["Acks"]

#: Where a call is while it has no buffer key.
_QUEUED: Final = -1
_WRITTEN: Final = -2


class Acks:
    """The calls waiting for their ACK, and their deadlines."""

    __slots__ = ("_deadlines", "_events", "_next_id", "_places")

    def __init__(self, events: list[Event]) -> None:
        self._events = events
        self._next_id = 0
        # call id -> its buffer key, or _QUEUED / _WRITTEN.
        self._places: dict[int, int] = {}
        self._deadlines: list[tuple[float, int]] = []

    def __contains__(self, call_id: object) -> bool:
        return call_id in self._places

    def new_id(self) -> int:
        call_id = self._next_id
        self._next_id += 1
        return call_id

    def expect(self, call_id: int, buffer_key: int | None, deadline: float | None) -> None:
        """Wait for the ACK of ``call_id``, queued in the outbox or buffered at ``buffer_key``,
        until ``deadline`` (``None``: no timeout)."""
        self._places[call_id] = _QUEUED if buffer_key is None else buffer_key
        if deadline is not None:
            heapq.heappush(self._deadlines, (deadline, call_id))

    def queued(self, call_id: int) -> None:
        """The call left the buffer for the outbox (a connect's flush)."""
        self._places[call_id] = _QUEUED

    def buffered(self, call_id: int, buffer_key: int) -> None:
        """The call went back to the buffer, never written (its transport died first)."""
        self._places[call_id] = buffer_key

    def taken(self, call_id: int) -> bool:
        """The driver takes the call's frames to write them; whether it still waits (a call
        that timed out meanwhile must not be written)."""
        places = self._places
        if call_id in places:
            places[call_id] = _WRITTEN
            return True
        return False

    def fail(self, call_id: int, error: TetherError) -> None:
        """End the call with ``error``: it was dropped by the buffer policy, wherever it was
        (even before it got a place)."""
        self._places.pop(call_id, None)
        self._events.append(AckFailed(call_id, error))

    def resolve(self, call_id: int | None, args: list[Any]) -> None:
        """The server's ACK for ``call_id``; one for an id we do not wait for is ignored
        (Socket.IO v5 §2.5: the JS client does the same)."""
        if self._places.get(call_id) == _WRITTEN:  # type: ignore[arg-type]
            del self._places[call_id]  # type: ignore[arg-type]
            self._events.append(AckReceived(call_id, tuple(args)))  # type: ignore[arg-type]

    def session_lost(self, reason: str, *, queued_too: bool = False) -> None:
        """The session is gone: every written call fails with ``Disconnected(reason)``, and
        with ``queued_too`` the queued ones as well (a goodbye writes them after the session
        ended: no ACK can come for them)."""
        places = self._places
        ending = (_WRITTEN, _QUEUED) if queued_too else (_WRITTEN,)
        for call_id in [c for c, place in places.items() if place in ending]:
            del places[call_id]
            self._events.append(AckFailed(call_id, Disconnected(reason)))

    def next_deadline(self) -> float | None:
        deadlines = self._deadlines
        while deadlines and deadlines[0][1] not in self._places:
            heapq.heappop(deadlines)
        return deadlines[0][0] if deadlines else None

    def expire(self, now: float) -> list[int]:
        """Fail the calls whose deadline is at or before ``now`` with ``AckTimeout``; the
        buffer keys of those that were still buffered, for the caller to withdraw."""
        withdrawn: list[int] = []
        deadlines = self._deadlines
        places = self._places
        while deadlines and deadlines[0][0] <= now:
            _, call_id = heapq.heappop(deadlines)
            place = places.pop(call_id, None)
            if place is None:
                continue
            if place >= 0:
                withdrawn.append(place)
            self._events.append(AckFailed(call_id, AckTimeout("no ack within the timeout")))
        return withdrawn

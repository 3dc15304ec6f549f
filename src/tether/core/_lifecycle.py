"""The connection lifecycle: every state rule of tether, as one table.

Theory of operation
-------------------

A client is always in exactly one of five states::

    IDLE          made, never opened
    CONNECTING    the first attempt after ``open()`` is in flight
    CONNECTED     the namespace CONNECT reply arrived; a Socket.IO sid is known
    RECONNECTING  the connection was lost (or the first attempt failed) and the client is
                  recovering: waiting out a backoff delay or running a retry attempt
    CLOSED        closed on purpose (by the user, by the server, by a refusal) or given up;
                  nothing happens until ``open()``

The table below (:data:`TRANSITIONS`) is the only place where a state may change. It is data:
``transitions.Machine`` enforces it (``auto_transitions=False``, so no implicit "to_X"
triggers exist, and any trigger that is not listed for the current state raises), and
``specs/lifecycle.md`` holds the same table with a Mermaid diagram drawn from it; a test
fails if the two disagree. Nothing else in tether assigns a state.

The machine is deliberately small: timers, backoff and buffers are not states. They live in
the parts :class:`~tether.core.Connection` composes, and the Connection decides *which*
trigger to fire; this module only says whether that trigger is legal from where we are. Each
row also says what its transition does (``effects``, rendered into ``specs/lifecycle.md``):
one method of the Connection fires each trigger and does exactly that, and a test checks
that no other method fires it. We use no ``transitions`` callbacks, conditions, timers or
async extensions: time stays an input of the core.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final

from transitions import EventData, Machine, MachineError
from transitions import State as MachineState

from ._errors import LocalProtocolError

__all__ = ["TRANSITIONS", "Lifecycle", "State", "Transition", "Trigger"]


class State(enum.Enum):
    """The five lifecycle states (contract 2.2, ``rt.state``)."""

    IDLE = "idle"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    CLOSED = "closed"

    def __repr__(self) -> str:
        return f"State.{self.name}"


class Trigger(enum.Enum):
    """The inputs that move the lifecycle. Named as what happened."""

    #: ``open()`` by the user.
    OPEN = "open"
    #: The namespace CONNECT reply arrived (Socket.IO v5 "CONNECT" from the server).
    CONNECT_SUCCEEDED = "connect_succeeded"
    #: A connected session was lost for a retryable reason (transport close/error,
    #: ping timeout, parse error) and reconnection is enabled.
    CONNECTION_LOST = "connection_lost"
    #: An attempt failed for a retryable reason and another attempt is allowed.
    ATTEMPT_FAILED = "attempt_failed"
    #: ``close()`` by the user.
    CLOSE = "close"
    #: The session ended for a reason that must not be retried: the server disconnected us,
    #: the server refused the namespace CONNECT, reconnection is disabled, or the reconnect
    #: attempts are exhausted.
    END = "end"


@dataclass(frozen=True, slots=True)
class Transition:
    """One row of the lifecycle table, with what the transition does besides moving."""

    trigger: Trigger
    sources: tuple[State, ...]
    dest: State
    effects: str


_S = State
_T = Trigger

#: The lifecycle table. Order matters only for the rendered docs.
TRANSITIONS: Final[tuple[Transition, ...]] = (
    Transition(
        _T.OPEN,
        (_S.IDLE, _S.CLOSED),
        _S.CONNECTING,
        "the attempt count starts at 0; the first attempt opens a transport",
    ),
    Transition(
        _T.CONNECT_SUCCEEDED,
        (_S.CONNECTING, _S.RECONNECTING),
        _S.CONNECTED,
        "the attempt count starts at 0; `connect` (and `reconnect`); channels re-joined, "
        "profile restored, buffer flushed; the events held before the reply delivered",
    ),
    Transition(
        _T.CONNECTION_LOST,
        (_S.CONNECTED,),
        _S.RECONNECTING,
        "`disconnect`, written calls fail; the transport closes and its unwritten messages "
        "go back to the buffer; the next attempt is scheduled",
    ),
    # A failed first attempt is retried like a lost connection (socket.io-client's
    # maybeReconnectOnOpen); a failed retry stays in RECONNECTING with a new delay.
    Transition(
        _T.ATTEMPT_FAILED,
        (_S.CONNECTING, _S.RECONNECTING),
        _S.RECONNECTING,
        "the transport closes; `connect_error`; the next attempt is scheduled",
    ),
    Transition(
        _T.CLOSE,
        (_S.IDLE, _S.CONNECTING, _S.CONNECTED, _S.RECONNECTING),
        _S.CLOSED,
        "a connected session writes its queued messages and DISCONNECT, then `disconnect`, "
        "and its calls fail; the transport closes; nothing is pending",
    ),
    Transition(
        _T.END,
        (_S.CONNECTING, _S.CONNECTED, _S.RECONNECTING),
        _S.CLOSED,
        "as `connection_lost` for a connected session, as `attempt_failed` for an attempt; "
        "nothing is pending",
    ),
)


class _QuietState(MachineState):
    """A ``transitions`` state that enters and exits without logging.

    ``transitions.State`` logs each enter and exit at INFO on ``transitions.core``: six lines
    per connect and close in any application with ``logging.basicConfig(level=INFO)``. The
    client logs its lifecycle itself, on the ``tether`` logger (``specs/client.md``
    "Logging"). The state's callbacks still run (this table has none).
    """

    def enter(self, event_data: EventData) -> None:
        event_data.machine.callbacks(self.on_enter, event_data)

    def exit(self, event_data: EventData) -> None:
        event_data.machine.callbacks(self.on_exit, event_data)


class _Machine(Machine):
    state_cls = _QuietState


#: The one ``transitions.Machine`` that enforces :data:`TRANSITIONS` for every client. It is
#: built once, holds no model, and is handed each client's :class:`Lifecycle` as the model of
#: one trigger call: ``transitions`` reads and writes only its ``state`` attribute. A Machine
#: per client would cost memory and time on every client (benchmarks/README.md); this one
#: costs nothing per client and still lets ``transitions`` decide every move.
_MACHINE: Final = _Machine(
    model=None,
    states=list(State),
    initial=State.IDLE,
    transitions=[
        {"trigger": row.trigger.value, "source": list(row.sources), "dest": row.dest}
        for row in TRANSITIONS
    ],
    auto_transitions=False,
    ignore_invalid_triggers=False,
    send_event=False,
)
_EVENTS: Final = {trigger: _MACHINE.events[trigger.value] for trigger in Trigger}
_ALLOWED: Final = {
    state: frozenset(Trigger(name) for name in _MACHINE.get_triggers(state)) for state in State
}


class Lifecycle:
    """The lifecycle table, enforced.

    ``fire(trigger)`` moves to the table's destination and returns ``(previous, current)``;
    a trigger the table does not list for the current state raises
    :class:`~tether.core.LocalProtocolError` naming both, and leaves the state unchanged.
    """

    __slots__ = ("state",)

    def __init__(self) -> None:
        #: The current state; ``transitions`` writes it when a trigger is legal.
        self.state = State.IDLE

    def allows(self, trigger: Trigger) -> bool:
        """Whether the table lists ``trigger`` for the current state."""
        return trigger in _ALLOWED[self.state]

    def fire(self, trigger: Trigger) -> tuple[State, State]:
        """Move by ``trigger``; ``(previous, current)``, or :class:`LocalProtocolError`."""
        previous = self.state
        try:
            _EVENTS[trigger].trigger(self)
        except MachineError:
            raise LocalProtocolError(
                f"the lifecycle does not allow {trigger.value!r} in state {previous.value!r}"
            ) from None
        return previous, self.state

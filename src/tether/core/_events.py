"""What the core tells its driver, as frozen dataclasses named as facts.

The driver drains them with :meth:`Connection.drain_events` after every call into the core,
in order. Two kinds:

* **Instructions to the driver** (:class:`OpenTransport`, :class:`CloseTransport`): the core
  decided that a transport must be opened or closed; it does no I/O itself.
* **Facts for the user** (everything else): the driver turns them into listener calls,
  resolved futures and the like. Their names match the contract's lifecycle events.

Don't subclass these; the driver dispatches on the exact type. All are frozen dataclasses
but :class:`EventReceived`, a named tuple (see there).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, NamedTuple

from ._errors import ConnectError, TetherError
from ._lifecycle import State

__all__ = [
    "AckFailed",
    "AckReceived",
    "CloseTransport",
    "ConnectFailed",
    "Event",
    "EventReceived",
    "MessageDropped",
    "OpenTransport",
    "ReconnectAttemptStarted",
    "ReconnectFailed",
    "Reconnected",
    "ResumeReason",
    "SocketConnected",
    "SocketDisconnected",
    "StateChanged",
    "StreamResumed",
]


@dataclass(frozen=True, slots=True)
class OpenTransport:
    """Open a transport for an attempt and report back with the same ``token``.

    ``attempt`` is 0 for the first attempt after ``open()``, then the reconnect attempt
    number. The driver evaluates ``auth``/``headers``/``query`` afresh for every attempt,
    connects, and calls ``transport_opened(token, auth, now=...)`` or
    ``transport_failed(token, message, now=...)``.
    """

    token: int
    attempt: int


@dataclass(frozen=True, slots=True)
class CloseTransport:
    """Close the transport opened for ``token`` after writing what is already queued.

    Also cancels a connect still in progress for that token. The core has already moved on:
    the driver must not report anything more for this token.
    """

    token: int


@dataclass(frozen=True, slots=True)
class StateChanged:
    """The lifecycle moved (contract 2.2 ``on_state_change``).

    ``reason`` says why (a disconnect reason, a connect error's message, ``"reconnect
    failed"``), or is ``None`` for ``open()`` and successful connects. ``attempt`` is the
    reconnect attempt the state is about (0 outside reconnection). ``retry_in`` is the delay
    in seconds before the next attempt, set on entering ``RECONNECTING``.
    """

    previous: State
    current: State
    reason: str | None = None
    attempt: int = 0
    retry_in: float | None = None


@dataclass(frozen=True, slots=True)
class SocketConnected:
    """The namespace CONNECT reply arrived: the ``connect`` event."""

    sid: str
    recovered: bool


@dataclass(frozen=True, slots=True)
class SocketDisconnected:
    """The ``disconnect`` event: fired once per connected → not-connected, with a reason."""

    reason: str


@dataclass(frozen=True, slots=True)
class ConnectFailed:
    """The ``connect_error`` event: one attempt failed (or the server refused)."""

    error: ConnectError


@dataclass(frozen=True, slots=True)
class ReconnectAttemptStarted:
    """The ``reconnect_attempt`` event: reconnect attempt ``attempt`` (1, 2, 3 ...) starts."""

    attempt: int


@dataclass(frozen=True, slots=True)
class Reconnected:
    """The ``reconnect`` event: reconnect attempt ``attempt`` succeeded."""

    attempt: int


@dataclass(frozen=True, slots=True)
class ReconnectFailed:
    """The ``reconnect_failed`` event: the reconnect attempts are exhausted."""


class EventReceived(NamedTuple):
    """The server emitted ``name`` with ``args``.

    When ``ack_id`` is not None the server waits for an acknowledgement: answer with
    :meth:`Connection.ack`.

    The one fact that is a named tuple rather than a frozen dataclass: it is made for every
    event received, the hot path, and is as immutable at a fraction of the cost.
    """

    name: str
    args: tuple[Any, ...]
    ack_id: int | None = None


@dataclass(frozen=True, slots=True)
class AckReceived:
    """The server acknowledged the call ``call_id`` with ``args``."""

    call_id: int
    args: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class AckFailed:
    """The call ``call_id`` will never be acknowledged: ``error`` says why.

    :class:`~tether.core.AckTimeout`, :class:`~tether.core.Disconnected` or
    :class:`~tether.core.BufferFull`.
    """

    call_id: int
    error: TetherError


@dataclass(frozen=True, slots=True)
class MessageDropped:
    """The ``buffer_overflow`` event: an offline message was dropped by the overflow policy."""

    event: str
    call_id: int | None
    reason: str


class ResumeReason:
    """Why a stream could not be resumed whole (``specs/delivery.md`` §4.5), as constants."""

    #: More was missed than the hub's history keeps (``--history``).
    TRIMMED: Final = "history trimmed"
    #: The last position seen is older than the history's age (``--history-ttl``).
    EXPIRED: Final = "history expired"
    #: The hub forgot its history (a restart without shared storage).
    RESTARTED: Final = "hub restarted"
    #: The hub never gave this position.
    UNKNOWN: Final = "unknown position"
    #: The hub keeps no history (``--history 0``).
    OFF: Final = "history off"
    #: The server answered without continuity (not a hub, or an older one).
    UNSUPPORTED: Final = "no continuity"


@dataclass(frozen=True, slots=True)
class StreamResumed:
    """The ``resume`` event: a stream the client had joined was resumed after a reconnect or
    a ``close()`` + ``open()`` (``rt.on_resume``).

    ``channel`` is the channel, or ``None`` for the broadcasts. ``resumed`` is ``True`` when
    nothing was missed or all of it was replayed (``replayed`` messages); otherwise
    ``reason`` says why (a :class:`ResumeReason` constant).
    """

    channel: str | None
    resumed: bool
    replayed: int
    reason: str | None


Event = (
    OpenTransport
    | CloseTransport
    | StateChanged
    | SocketConnected
    | SocketDisconnected
    | ConnectFailed
    | ReconnectAttemptStarted
    | Reconnected
    | ReconnectFailed
    | EventReceived
    | AckReceived
    | AckFailed
    | MessageDropped
    | StreamResumed
)
"""Any of the events :meth:`Connection.drain_events` returns; dispatch on the exact type."""

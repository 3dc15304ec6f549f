"""tether's sans-IO core: everything that decides, nothing that does I/O.

Feed it user calls, whole WebSocket messages and the current time; drain what to send and
what happened. Nothing here imports anyio, asyncio, trio, socket, ssl, select, time or
random (a test enforces it), so it runs under any event loop, in simulations and in
property-based tests. The shape of the API is described in ``specs/core.md``.
"""

from __future__ import annotations

from ._backoff import backoff_delay, backoff_window
from ._connection import Connection, DisconnectReason
from ._errors import (
    AckTimeout,
    BufferFull,
    ConnectError,
    DecodeError,
    Disconnected,
    LocalProtocolError,
    MessageTooLarge,
    ProtocolError,
    RemoteProtocolError,
    TetherError,
)
from ._events import (
    AckFailed,
    AckReceived,
    CloseTransport,
    ConnectFailed,
    Event,
    EventReceived,
    MessageDropped,
    OpenTransport,
    ReconnectAttemptStarted,
    Reconnected,
    ReconnectFailed,
    ResumeReason,
    SocketConnected,
    SocketDisconnected,
    StateChanged,
    StreamResumed,
)
from ._lifecycle import TRANSITIONS, Lifecycle, State, Transition, Trigger
from ._options import CoreOptions, OverflowPolicy

__all__ = [
    "TRANSITIONS",
    "AckFailed",
    "AckReceived",
    "AckTimeout",
    "BufferFull",
    "CloseTransport",
    "ConnectError",
    "ConnectFailed",
    "Connection",
    "CoreOptions",
    "DecodeError",
    "DisconnectReason",
    "Disconnected",
    "Event",
    "EventReceived",
    "Lifecycle",
    "LocalProtocolError",
    "MessageDropped",
    "MessageTooLarge",
    "OpenTransport",
    "OverflowPolicy",
    "ProtocolError",
    "ReconnectAttemptStarted",
    "ReconnectFailed",
    "Reconnected",
    "RemoteProtocolError",
    "ResumeReason",
    "SocketConnected",
    "SocketDisconnected",
    "State",
    "StateChanged",
    "StreamResumed",
    "TetherError",
    "Transition",
    "Trigger",
    "backoff_delay",
    "backoff_window",
]

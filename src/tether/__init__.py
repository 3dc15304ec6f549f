"""tether: a Socket.IO realtime client for asyncio and trio that stays connected.

::

    async with tether.RealtimeClient("https://rt.example.com", auth={"token": t}) as rt:
        rt.on_connect(lambda: print("Connected"))
        await rt.wait_connected()
        rt.join("technology-chat")
        rt.send("technology-chat", "chat-message", {"text": "hi"})

The sans-IO core lives in :mod:`tether.core`; the transports in :mod:`tether.transport`.
"""

from __future__ import annotations

from ._client import Member, RealtimeClient
from ._event_stream import EventsOverflow, EventStream
from .core import (
    AckTimeout,
    BufferFull,
    ConnectError,
    Disconnected,
    DisconnectReason,
    MessageDropped,
    OverflowPolicy,
    ProtocolError,
    ResumeReason,
    State,
    StateChanged,
    StreamResumed,
    TetherError,
)

__all__ = [
    "AckTimeout",
    "BufferFull",
    "ConnectError",
    "DisconnectReason",
    "Disconnected",
    "EventStream",
    "EventsOverflow",
    "Member",
    "MessageDropped",
    "OverflowPolicy",
    "ProtocolError",
    "RealtimeClient",
    "ResumeReason",
    "State",
    "StateChanged",
    "StreamResumed",
    "TetherError",
]

__version__ = "0.1.0"

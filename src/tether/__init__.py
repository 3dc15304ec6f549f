"""tether: a Socket.IO realtime client for asyncio and trio that stays connected.

::

    async with tether.RealtimeClient("https://rt.example.com", auth={"token": t}) as rt:
        rt.on_connect(lambda: print("Connected"))
        await rt.wait_connected()
        rt.join("technology-chat")
        rt.send("technology-chat", "chat-message", {"text": "hi"})

The sans-IO core lives in :mod:`tether.core`; the transports in :mod:`tether.transport`;
the blocking client, for code without an event loop, in :mod:`tether.sync`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._client import Member, RealtimeClient
from ._event_stream import EventsOverflow, EventStream
from .core import (
    AckTimeout,
    BufferFull,
    ConnectError,
    Disconnected,
    DisconnectReason,
    MessageDropped,
    MessageTooLarge,
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
    "MessageTooLarge",
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

if TYPE_CHECKING:
    from . import sync as sync


def __getattr__(name: str) -> Any:
    """:mod:`tether.sync` after a plain ``import tether``, imported on first use."""
    # Lazily: a program on an event loop does not load the blocking client (and anyio's
    # blocking portal) with tether.
    if name == "sync":
        import importlib

        return importlib.import_module(".sync", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

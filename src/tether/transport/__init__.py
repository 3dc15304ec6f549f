"""Transports: how whole Engine.IO messages travel between tether and a server.

The driver depends only on :class:`Connector` and :class:`Transport` (``_base``); the
WebSocket implementation (``_websocket``) is the real one, and the in-memory pair
(``_memory``) lets driver tests play the server without sockets.
"""

from __future__ import annotations

from ._base import (
    TRANSPORT_CLOSE,
    TRANSPORT_ERROR,
    Connector,
    Message,
    Transport,
    TransportError,
    TransportErrorReason,
    encode_headers,
)
from ._memory import ConnectAttempt, MemoryConnector, MemoryPeer, MemoryTransport
from ._websocket import WebSocketConnector, WebSocketTransport

__all__ = [
    "TRANSPORT_CLOSE",
    "TRANSPORT_ERROR",
    "ConnectAttempt",
    "Connector",
    "MemoryConnector",
    "MemoryPeer",
    "MemoryTransport",
    "Message",
    "Transport",
    "TransportError",
    "TransportErrorReason",
    "WebSocketConnector",
    "WebSocketTransport",
    "encode_headers",
]

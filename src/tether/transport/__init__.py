"""Transports: how whole Engine.IO messages travel between tether and a server.

The driver depends only on :class:`Connector` and :class:`Transport` (``_base``); the
WebSocket implementation (``_websocket``) is the default one, Engine.IO HTTP long-polling
(``_polling``) the other, :class:`EngineConnector` (``_engine``) chooses between them (the
fallback from WebSocket to polling, the upgrade from polling to WebSocket, cookies and
proxies: specs/transports.md), and the in-memory pair (``_memory``) lets driver tests play
the server without sockets.

:class:`FastWebSocketConnector` (``_websockets``) is the same transport on the ``websockets``
library's frame parser, several times faster than wsproto's. It needs the ``fast`` extra, so
it is imported on first use: this package imports without ``websockets``, and using the
connector without it raises an ``ImportError`` that says ``pip install 'tether[fast]'``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

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
from ._engine import TRANSPORT_NAMES, EngineConnector, EngineTransport, check_transports
from ._memory import ConnectAttempt, MemoryConnector, MemoryPeer, MemoryTransport
from ._polling import PollingConnector, PollingTransport
from ._proxy import Proxy, parse_proxy
from ._websocket import WebSocketConnector, WebSocketTransport

if TYPE_CHECKING:
    from ._websockets import FastWebSocketConnector as FastWebSocketConnector
    from ._websockets import FastWebSocketTransport as FastWebSocketTransport

__all__ = [
    "TRANSPORT_CLOSE",
    "TRANSPORT_ERROR",
    "TRANSPORT_NAMES",
    "ConnectAttempt",
    "Connector",
    "EngineConnector",
    "EngineTransport",
    "MemoryConnector",
    "MemoryPeer",
    "MemoryTransport",
    "Message",
    "PollingConnector",
    "PollingTransport",
    "Proxy",
    "Transport",
    "TransportError",
    "TransportErrorReason",
    "WebSocketConnector",
    "WebSocketTransport",
    "check_transports",
    "encode_headers",
    "parse_proxy",
]

# Not in __all__: a star import must not need the fast extra.
_LAZY = frozenset({"FastWebSocketConnector", "FastWebSocketTransport"})


if not TYPE_CHECKING:  # pragma: no branch - mypy sees the imports above, no catch-all

    def __getattr__(name: str) -> object:
        if name in _LAZY:
            from . import _websockets  # its ImportError, without websockets, says what to do

            return getattr(_websockets, name)
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

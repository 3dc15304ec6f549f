"""The exceptions tether raises, in two families.

    TetherError
    ├── ConnectError          an attempt failed; ``.data`` holds the server's data, if any
    ├── Disconnected          an acked packet was sent and its connection then dropped
    ├── AckTimeout            (also a TimeoutError) no ack arrived in time
    ├── BufferFull            the offline buffer is full and the policy is "raise"
    ├── MessageTooLarge       (also a ValueError) a message above the server's maxPayload
    └── ProtocolError
        ├── LocalProtocolError  the caller used the core in a way its state forbids
        └── RemoteProtocolError the peer sent something the protocol forbids
            └── DecodeError     a message could not be decoded (Engine.IO / Socket.IO)

Misuse of a public call with a bad value raises the standard ``ValueError`` or ``TypeError``
at the call site. Misbehaviour of the peer (RemoteProtocolError and below) never reaches user
code: the core turns it into a disconnect reason (``"parse error"``) and a reconnect.
"""

from __future__ import annotations

import reprlib
from typing import Any

__all__ = [
    "AckTimeout",
    "BufferFull",
    "ConnectError",
    "DecodeError",
    "Disconnected",
    "LocalProtocolError",
    "MessageTooLarge",
    "ProtocolError",
    "RemoteProtocolError",
    "TetherError",
]


class TetherError(Exception):
    """Base class of every exception tether defines."""


class ConnectError(TetherError):
    """A connection attempt failed.

    ``message`` is a human-readable reason. ``data`` is what the server attached to its
    refusal (Socket.IO CONNECT_ERROR ``data``), or ``None`` for network, TLS and timeout
    failures. ``refused`` is true when the server itself refused the namespace CONNECT: such a
    refusal is final and is not retried.
    """

    def __init__(self, message: str, data: Any = None, *, refused: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.data = data
        self.refused = refused

    def __repr__(self) -> str:
        return f"ConnectError({self.message!r}, data={self.data!r}, refused={self.refused})"


class Disconnected(TetherError):
    """The connection dropped after the packet was sent, so its ack can never arrive."""


class AckTimeout(TetherError, TimeoutError):
    """No acknowledgement arrived within the call's timeout."""


class BufferFull(TetherError):
    """The offline buffer holds ``max_buffered`` messages (or bytes) already."""


class MessageTooLarge(TetherError, ValueError):
    """A message is larger than the server's ``maxPayload``, which would close the whole
    connection: refused at the call site once the server announced its limit, or dropped
    (and reported) from the buffer when a server announces a smaller one."""


class ProtocolError(TetherError):
    """Base class of protocol violations."""


class LocalProtocolError(ProtocolError):
    """The caller asked the core for something its current state does not allow."""


class RemoteProtocolError(ProtocolError):
    """The peer sent something the protocol does not allow."""


class DecodeError(RemoteProtocolError):
    """An Engine.IO or Socket.IO message could not be decoded.

    The codecs raise this, and only this, for any malformed input.
    """


def _previewer() -> reprlib.Repr:
    shortened = reprlib.Repr()
    shortened.maxlevel = 3  # the nesting shown: a 1000-deep value must not recurse
    shortened.maxstring = shortened.maxother = shortened.maxlong = 60
    return shortened


_PREVIEW = _previewer()


def preview(value: object) -> str:
    """A short rendering of bad input for error messages: input can be megabytes long or
    nested a thousand deep, and an error text ends up in logs."""
    text = _PREVIEW.repr(value)
    return text if len(text) <= 60 else text[:57] + "..."

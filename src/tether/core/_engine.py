"""The Engine.IO v4 session on one transport: its phase, the handshake, the heartbeat.

Each connection attempt opens a transport, identified by a *token* the core hands out in
:class:`~tether.core.OpenTransport`. On it the Engine.IO session goes through phases that
are not lifecycle states (``specs/core.md`` "Tokens and phases")::

    CLOSED         no transport (waiting for a retry, connected-then-lost, closed, idle)
    OPENING        OpenTransport issued; waiting for transport_opened / transport_failed
    AWAITING_OPEN  the transport is open; the server speaks first (Engine.IO v4 §Handshake)
    OPEN           the OPEN packet arrived; Socket.IO packets flow (connected or not)

Engine.IO v4 §"Heartbeat": the server pings every ``pingInterval`` and expects the pong
within ``pingTimeout``; the client declares the connection dead when nothing arrives within
``pingInterval + pingTimeout``. Any inbound message proves the server alive, not only a ping
(as python-engineio and Ably do): a busy connection whose pings queue behind a burst of
events is not declared dead.
"""

from __future__ import annotations

import enum
from typing import Final

from ._engineio import EnginePacketType, decode_frame, encode_frame, parse_handshake
from ._errors import DecodeError, LocalProtocolError
from ._outgoing import Outbox
from ._socketio import Packet, PacketDecoder

__all__ = ["ZERO_PING_INTERVAL_MS", "EngineSession", "EngineSignal", "Phase"]

#: The pingInterval (ms) assumed when a server announces 0. python-engineio advertises
#: ``int(seconds) * 1000``, so a sub-second interval is announced as 0 (socketio-protocol.md
#: §1.3, pitfall 2); the real interval is then below one second, so one second is safe.
ZERO_PING_INTERVAL_MS: Final = 1000


class Phase(enum.Enum):
    """Where the current attempt's transport is (not a lifecycle state)."""

    CLOSED = "closed"
    OPENING = "opening"
    AWAITING_OPEN = "awaiting open"
    OPEN = "open"


class EngineSignal(enum.Enum):
    """What a received message meant, when it was not a Socket.IO packet."""

    #: The OPEN packet arrived: the namespace CONNECT is to be sent.
    HANDSHAKE = "handshake"
    #: The server's CLOSE packet: the transport is over ("transport close", contract 2.2).
    CLOSED_BY_SERVER = "closed by server"


_OPEN = Phase.OPEN
_MESSAGE = EnginePacketType.MESSAGE
_PING = EnginePacketType.PING
_PONG = EnginePacketType.PONG
_HANDSHAKE = EngineSignal.HANDSHAKE


class EngineSession:
    """The Engine.IO session of the current transport.

    A PING is answered at once with a PONG in ``outbox`` (§"Heartbeat"; the pong echoes the
    ping's data, as python-engineio expects): receiving produces output, which is why the
    core has an outbox (sans-io "Inputs and Outputs").
    """

    __slots__ = (
        "_decoder",
        "_default_max_payload",
        "_heartbeat_window",
        "_last_received",
        "_outbox",
        "max_payload",
        "phase",
        "token",
    )

    def __init__(self, default_max_payload: int, outbox: Outbox) -> None:
        self.token = 0
        self.phase = Phase.CLOSED
        self._decoder = PacketDecoder()
        self._outbox = outbox
        self._heartbeat_window: float | None = None
        self._last_received = 0.0
        self._default_max_payload = default_max_payload
        #: The largest frame the server accepts, as the last handshake announced it (the
        #: client's ``max_payload`` option for a handshake without one); ``None`` until a
        #: server has spoken: before the first connect nothing is refused for its size.
        self.max_payload: int | None = None

    # --- the transport's phases ------------------------------------------------------------

    def open_transport(self) -> int:
        """A new attempt opens a new transport; its token."""
        self.token += 1
        self.phase = Phase.OPENING
        return self.token

    def opening(self, token: int) -> bool:
        """Whether ``token`` is the transport being opened (late reports are ignored)."""
        return token == self.token and self.phase is Phase.OPENING

    def carried_by(self, token: int) -> bool:
        """Whether ``token`` is the open transport of this session."""
        return token == self.token and (self.phase is _OPEN or self.phase is Phase.AWAITING_OPEN)

    def transport_opened(self, now: float) -> None:
        self.phase = Phase.AWAITING_OPEN
        self._last_received = now

    def close(self) -> None:
        """The transport is gone or abandoned: no heartbeat, no half-received packet."""
        self.phase = Phase.CLOSED
        self._heartbeat_window = None
        self._decoder.reset()

    # --- the heartbeat ---------------------------------------------------------------------

    def size_of(self, message: str | bytes) -> int:
        """What the packet that ``message`` completed took on the wire (a binary packet's
        header and every attachment)."""
        return len(message) if isinstance(message, str) else self._decoder.completed_size

    def heartbeat_deadline(self) -> float | None:
        window = self._heartbeat_window
        return None if window is None else self._last_received + window

    def heartbeat_expired(self, now: float) -> bool:
        window = self._heartbeat_window
        return window is not None and now >= self._last_received + window

    # --- receiving -------------------------------------------------------------------------

    def receive(self, message: str | bytes, now: float) -> Packet | EngineSignal | None:
        """One whole message of the transport: a Socket.IO packet, a signal, or nothing
        (a ping answered, a noop, an attachment of a binary packet still incomplete).

        Raises :class:`DecodeError` for anything Engine.IO or Socket.IO forbids, and
        :class:`LocalProtocolError` when no transport is open (a driver bug).
        """
        phase = self.phase
        if phase is not _OPEN and (phase is Phase.CLOSED or phase is Phase.OPENING):
            raise LocalProtocolError("receive() without an open transport")
        kind, data = decode_frame(message)
        self._last_received = now
        if kind is _MESSAGE:
            if phase is not _OPEN:
                raise DecodeError("message before the Engine.IO handshake")
            if isinstance(data, str):
                return self._decoder.feed_text(data)
            return self._decoder.feed_binary(data)
        if kind is _PING:
            self._outbox.add_frame(encode_frame(_PONG, data))
            return None
        if kind is EnginePacketType.OPEN:
            if phase is _OPEN:
                raise DecodeError("a second Engine.IO OPEN packet")
            self._handshake(data)
            return _HANDSHAKE
        if kind is EnginePacketType.CLOSE:
            return EngineSignal.CLOSED_BY_SERVER
        return None  # NOOP, or a stray PONG/UPGRADE: nothing to do

    def _handshake(self, payload: str | bytes) -> None:
        handshake = parse_handshake(payload)
        # A 0 interval can only be python-engineio's truncation of a sub-second one; any
        # other value is taken as announced (Node's are exact).
        interval = handshake.ping_interval or ZERO_PING_INTERVAL_MS
        self._heartbeat_window = (interval + handshake.ping_timeout) / 1000.0
        self.max_payload = handshake.max_payload or self._default_max_payload
        self.phase = _OPEN

"""The Socket.IO v5 session on the client's namespace: CONNECT and its answer, the sid,
events that come before the answer, and connection state recovery.

Socket.IO v5 §"Connection to a namespace" (socketio-protocol.md §2.4): after the Engine.IO
handshake the client sends CONNECT with its auth payload; the server answers CONNECT with the
namespace's ``sid`` (and, with connection state recovery, a private ``pid``), or refuses with
CONNECT_ERROR. python-socketio's ``always_connect`` mode may refuse with DISCONNECT and a
payload instead (pitfall 12).

Connection state recovery (socketio-protocol.md §3): the server appends an *offset* to every
event it may replay; the client keeps the last one and the ``pid``, and offers both with its
next CONNECT. The server alone decides whether the session is restored, and says so by
answering with the same ``pid``.
"""

from __future__ import annotations

from typing import Any, Final

from . import _json
from ._errors import ConnectError, DecodeError
from ._events import EventReceived
from ._socketio import Packet, PacketType

__all__ = ["MAX_HELD_EVENTS", "NamespaceSession"]

#: Events the server may send before its CONNECT reply (recovery replays missed packets
#: first, socketio-protocol.md §3.6) are held until the reply. A server that sends more than
#: this many, or more bytes than the offline buffer may hold, before replying is treated as
#: broken ("parse error").
MAX_HELD_EVENTS: Final = 100_000

#: Why an attempt failed whose server closed the transport in answer to our CONNECT, before
#: any Socket.IO packet: a server with another parser does that (socket.io-msgpack-parser
#: cannot decode the CONNECT's text and drops the connection; over polling it answers NOOP,
#: then CLOSE), and so does one whose ``maxPayload`` the CONNECT (its auth) is over.
UNANSWERED_CONNECT: Final = (
    "transport close: the server closed the connection without answering the namespace "
    "CONNECT; it may use another parser, such as socket.io-msgpack-parser, or the CONNECT "
    "may be over its maxPayload"
)

_new_event = tuple.__new__


class NamespaceSession:
    """One namespace's Socket.IO session, across the client's transports.

    ``sid`` is set while connected. ``recovered`` says whether the last connect restored the
    previous session.
    """

    __slots__ = (
        "_held",
        "_held_bytes",
        "_max_held_bytes",
        "_offset",
        "_pid",
        "auth",
        "awaiting_reply",
        "name",
        "recovered",
        "sid",
    )

    def __init__(self, name: str, max_held_bytes: int) -> None:
        self.name = name
        self.sid: str | None = None
        self.recovered = False
        #: The auth payload of the attempt in flight (the driver evaluates it per attempt).
        self.auth: dict[str, Any] | None = None
        #: Our CONNECT went out on this transport and no Socket.IO packet came back since.
        self.awaiting_reply = False
        self._pid: str | None = None
        self._offset: str | None = None
        self._held: list[Packet] = []
        self._held_bytes = 0
        self._max_held_bytes = max_held_bytes

    # --- connecting ---------------------------------------------------------------------

    def connect_packet(self, identity: dict[str, Any] | None = None) -> Packet:
        """The CONNECT to send after the Engine.IO handshake, offering recovery when we can,
        and the client's ``identity`` for a hub (``specs/delivery.md`` §4.1) if given.

        §3.5: ``pid`` and ``offset`` ride in the CONNECT payload; the user's auth keys win on
        a collision, as in socket.io-client.
        """
        auth = self.auth
        if identity is not None:
            auth = {"tether": identity, **(auth or {})}
        if self._pid is not None and self._offset is not None:
            auth = {"pid": self._pid, "offset": self._offset, **(auth or {})}
        self.awaiting_reply = True
        return Packet(PacketType.CONNECT, self.name, auth)

    def accept(self, reply: Any) -> None:
        """The server's CONNECT reply: the session is open (sets ``sid`` and ``recovered``).

        Raises :class:`DecodeError` for a reply without a ``sid`` (socket.io-client treats it
        as an error: it comes from a v2 server).
        """
        if not isinstance(reply, dict) or not isinstance(reply.get("sid"), str):
            raise DecodeError("CONNECT reply without a sid")
        pid = reply.get("pid")
        pid = pid if isinstance(pid, str) else None
        self.recovered = pid is not None and pid == self._pid and self._offset is not None
        self._pid = pid
        if not self.recovered:
            self._offset = None
        self.sid = reply["sid"]

    @staticmethod
    def refusal(payload: Any) -> ConnectError:
        """The error for a refused CONNECT: Node sends ``{message, data?}``, python-socketio
        may send a bare string (socketio-protocol.md §2.4, pitfall 12)."""
        if isinstance(payload, dict):
            message = payload.get("message")
            return ConnectError(
                message if isinstance(message, str) else "connection refused",
                payload.get("data"),
                refused=True,
            )
        return ConnectError(
            payload if isinstance(payload, str) else "connection refused", None, refused=True
        )

    def forget_recovery(self) -> None:
        """Ask for no recovery at the next CONNECT: the session was ended on purpose."""
        self._pid = self._offset = None

    def ended(self) -> None:
        """The session is over (the sid is gone; recovery stays possible)."""
        self.sid = None

    # --- events ---------------------------------------------------------------------------

    def hold(self, packet: Packet, size: int) -> None:
        """Keep an event that came before the CONNECT reply (Socket.IO v5 §2.4, pitfall 10);
        ``size`` is what it took on the wire.

        Raises :class:`DecodeError` past :data:`MAX_HELD_EVENTS` or the byte bound.
        """
        if len(self._held) >= MAX_HELD_EVENTS:
            raise DecodeError("too many events before the CONNECT reply")
        self._held_bytes += size
        if self._held_bytes > self._max_held_bytes:
            raise DecodeError("too many bytes of events before the CONNECT reply")
        self._held.append(packet)

    def take_held(self) -> list[Packet]:
        held = self._held
        self._held = []
        self._held_bytes = 0
        return held

    def drop_held(self) -> None:
        self._held.clear()
        self._held_bytes = 0

    def event(self, data: list[Any], ack_id: int | None) -> EventReceived:
        """The fact for a server EVENT ``data`` (``[name, *args]``).

        With recovery (§3.2) the server appended the packet's offset as the last argument of
        an event without ack: it is kept and stripped before listeners see the event.
        """
        name = data[0]
        if type(name) is not str:
            # Node's validator lets an event be named by a number (socketio-protocol.md
            # §2.8); listeners are keyed by str, so it is delivered under its JSON spelling.
            name = _json.dumps(name)
        if self._pid is not None and ack_id is None and len(data) > 1:
            last = data[-1]
            if type(last) is str:
                self._offset = last
                return _new_event(EventReceived, (name, tuple(data[1:-1]), None))
        # Made without the named tuple's Python-level constructor: once per event received.
        return _new_event(EventReceived, (name, tuple(data[1:]), ack_id))

    def ack_packet(self, ack_id: int, args: tuple[Any, ...]) -> Packet:
        """Our ACK for the server's event ``ack_id``."""
        return Packet(PacketType.ACK, self.name, list(args), ack_id)

    def disconnect_packet(self) -> Packet:
        """Our DISCONNECT for the namespace (Socket.IO v5 §"Disconnection")."""
        return Packet(PacketType.DISCONNECT, self.name)

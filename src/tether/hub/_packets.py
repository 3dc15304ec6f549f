"""The hub's Socket.IO packet class: python-socketio's, with every client packet validated.

Given to ``socketio.AsyncServer(serializer=...)``, python-socketio's public way to change how
packets are decoded. A packet the hub cannot use raises ``MalformedPacketError`` here, before
python-socketio dispatches it, so it is dropped and logged once per connection at INFO
(``_app.py``) instead of surfacing as a traceback (specs/hub-wire-format.md §4.1).

Binary attachments are bounded while they arrive: at most ``MAX_ATTACHMENTS`` per packet, and
once their total passes the hub's payload limit the rest are counted but not kept; the packet
then completes with an ``OversizedPayload`` in place of its argument, which the hub refuses
with its usual ``message larger than N bytes`` error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from socketio import packet as sio_packet

from ._compat import MalformedPacketError

__all__ = ["MAX_ATTACHMENTS", "OversizedPayload", "hub_packet_class"]

#: Binary attachments one packet may announce (socketio-protocol.md §2: ``5<n>-...``).
MAX_ATTACHMENTS = 1000

#: What a client may send: everything but CONNECT_ERROR, and no ACK (the hub never asks a
#: client for one).
_CLIENT_TYPES = frozenset(
    {sio_packet.CONNECT, sio_packet.DISCONNECT, sio_packet.EVENT, sio_packet.BINARY_EVENT}
)


@dataclass(frozen=True)
class OversizedPayload:
    """Stands for the argument of an event whose binary attachments passed the limit."""

    size: int


def hub_packet_class(max_attachment_bytes: int) -> type[sio_packet.Packet]:
    """A ``Packet`` subclass for one hub: attachments above ``max_attachment_bytes`` in total
    are not kept (see the module docstring)."""

    class HubPacket(sio_packet.Packet):  # type: ignore[misc]
        data: Any
        attachment_bytes = 0
        oversized = False

        def decode(self, encoded_packet: Any) -> int:
            try:
                count: int = super().decode(encoded_packet) or 0
            except (ValueError, TypeError, IndexError, KeyError, RecursionError) as exc:
                raise MalformedPacketError(f"undecodable ({type(exc).__name__})") from None
            kind = self.packet_type
            if kind not in _CLIENT_TYPES:
                if kind in (sio_packet.ACK, sio_packet.BINARY_ACK):
                    raise MalformedPacketError("an ACK, but the hub asked for none")
                raise MalformedPacketError(f"packet type {kind!r} is not sent by clients")
            if kind != sio_packet.CONNECT and self.namespace not in (None, "/"):
                raise MalformedPacketError("namespace other than '/'")
            if kind in (sio_packet.EVENT, sio_packet.BINARY_EVENT):
                data = self.data
                if not (isinstance(data, list) and data and isinstance(data[0], str)):
                    raise MalformedPacketError("event without a name")
            if count > MAX_ATTACHMENTS:
                raise MalformedPacketError(f"more than {MAX_ATTACHMENTS} binary attachments")
            return count

        def add_attachment(self, attachment: Any) -> bool:
            self.attachment_bytes += len(attachment)
            if self.attachment_bytes > max_attachment_bytes:
                self.oversized = True
                attachment = b""
            try:
                done: bool = super().add_attachment(attachment)
            except ValueError as exc:
                raise MalformedPacketError(str(exc)) from None
            if done and self.oversized:
                self.data = [self.data[0], OversizedPayload(self.attachment_bytes)]
            return done

    return HubPacket
